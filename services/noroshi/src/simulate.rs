//! `noroshi simulate`: a synthetic surge, driven through the public HTTP API with the
//! demo organisations' tokens, so that every dashboard moves (docs/simulate.md).
//!
//! Time is compressed: the simulation's clock runs `--speed` times faster than the wall
//! clock, and its own decisions (arrivals of cases, deterioration, how long a facility
//! takes to answer, transport, length of stay) follow that clock. The server keeps real
//! time, so its deadlines (offer expiry, staleness) stay real. Every person is synthetic.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use noroshi_api::admin::AdminFile;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde_json::{Value, json};

use crate::cli::SimulateArgs;
use crate::serve::ServeError;

const FAMILY: &[&str] = &[
    "試験", "見本", "仮野", "架空", "模擬", "例田", "想定", "検証", "演習", "訓練",
];
const GIVEN: &[&str] = &[
    "一郎", "花子", "次郎", "桜", "三郎", "葵", "四郎", "蓮", "五郎", "結衣", "健", "陽菜",
];

/// A case as the simulation follows it.
#[derive(Debug)]
struct SimCase {
    case_id: String,
    health_center: String,
    severity: &'static str,
    at_home: bool,
    placement: Option<String>,
}

/// A placement as the simulation follows it, with simulated times (seconds).
#[derive(Debug, Default)]
struct SimPlacement {
    case: usize,
    requested_at: f64,
    category: &'static str,
    offered_to: Option<String>,
    answer_at: Option<f64>,
    accepted_at: Option<f64>,
    departs_at: Option<f64>,
    arrives_at: Option<f64>,
    discharge_at: Option<f64>,
    state: Step,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum Step {
    #[default]
    Waiting,
    Offered,
    Accepted,
    Arranged,
    InTransit,
    Admitted,
    Done,
}

#[derive(Debug, Default)]
struct Summary {
    cases: u64,
    placements: u64,
    placed: u64,
    declines: u64,
    expiries: u64,
    deteriorations: u64,
    discharges: u64,
    errors: u64,
    /// Simulated minutes from request to acceptance.
    waits: Vec<f64>,
}

struct Api {
    base: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
}

impl Api {
    async fn send(
        &self,
        method: http::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, String> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| e.to_string())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(json)
        } else {
            Err(format!(
                "{status}: {}",
                json["message"].as_str().unwrap_or("")
            ))
        }
    }

    async fn command(&self, token: &str, name: &str, mut body: Value) -> Result<Value, String> {
        body["command_id"] = json!(uuid::Uuid::now_v7().to_string());
        self.send(
            http::Method::POST,
            token,
            &format!("/api/v1/commands/{name}"),
            Some(body),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> Result<Value, String> {
        self.send(http::Method::GET, token, path, None).await
    }
}

/// Cases a day at simulated time `day` of `days`: a surge that rises to `peak` halfway
/// and falls again.
fn daily_rate(peak: f64, day: f64, days: f64) -> f64 {
    peak * (std::f64::consts::PI * (day / days).clamp(0.0, 1.0))
        .sin()
        .max(0.05)
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

pub(crate) async fn run(args: SimulateArgs) -> Result<(), ServeError> {
    let file = AdminFile::load(&args.file).map_err(ServeError::Admin)?;
    let token_of: HashMap<String, String> = file
        .token
        .iter()
        .rev()
        .map(|t| (t.organisation_id.clone(), t.token.clone()))
        .collect();
    let hq = file
        .token
        .iter()
        .find(|t| t.role == "HQ")
        .map(|t| t.token.clone())
        .ok_or_else(|| simulation_error("the file has no HQ token"))?;
    let health_centers: Vec<(String, Vec<String>)> = file
        .facility
        .iter()
        .filter(|f| f.kind == "HEALTH_CENTER" && token_of.contains_key(&f.facility_id))
        .map(|f| (f.facility_id.clone(), f.jurisdiction.clone()))
        .filter(|(_, j)| !j.is_empty())
        .collect();
    let facilities: Vec<(String, String)> = file
        .facility
        .iter()
        .filter(|f| {
            matches!(f.kind.as_str(), "HOSPITAL" | "HOTEL") && token_of.contains_key(&f.facility_id)
        })
        .map(|f| (f.facility_id.clone(), f.kind.clone()))
        .collect();
    if health_centers.is_empty() || facilities.is_empty() {
        return Err(simulation_error(
            "the file needs health centers and facilities with tokens",
        ));
    }
    let api = Api {
        base: args.url.trim_end_matches('/').to_owned(),
        client: hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http(),
    };
    let mut rng = match args.seed {
        Some(seed) => StdRng::seed_from_u64(seed),
        None => StdRng::from_rng(&mut rand::rng()),
    };
    let mut summary = Summary::default();

    // Every facility declares its capacity first.
    for (facility, kind) in &facilities {
        let categories: Vec<Value> = if kind == "HOTEL" {
            vec![
                json!({"category": "BED_CATEGORY_HOTEL_ROOM", "secured": rng.random_range(40..120), "ready": rng.random_range(30..40), "occupied": 0}),
            ]
        } else {
            ["SEVERE", "MODERATE", "MILD"]
                .iter()
                .map(|c| {
                    let secured = rng.random_range(4..24);
                    json!({"category": format!("BED_CATEGORY_{c}"), "secured": secured,
                           "ready": secured * 3 / 4, "occupied": rng.random_range(0..=secured / 4)})
                })
                .collect()
        };
        if api
            .command(
                &token_of[facility],
                "DeclareCapacity",
                json!({"facility_id": facility, "categories": categories}),
            )
            .await
            .is_err()
        {
            summary.errors += 1;
        }
    }

    let day = 86_400.0;
    let total = args.days * day;
    let started = Instant::now();
    let mut cases: Vec<SimCase> = Vec::new();
    let mut placements: BTreeMap<String, SimPlacement> = BTreeMap::new();
    let mut due_cases = 0.0_f64;
    let mut last_sim = 0.0_f64;
    let tick = Duration::from_millis(250);
    loop {
        tokio::time::sleep(tick).await;
        let now = started.elapsed().as_secs_f64() * args.speed;
        if now >= total {
            break;
        }
        let dt = now - last_sim;
        last_sim = now;

        // New cases.
        due_cases += daily_rate(args.peak_per_day, now / day, args.days) * dt / day;
        while due_cases >= 1.0 {
            due_cases -= 1.0;
            let (hc, jurisdiction) = &health_centers[rng.random_range(0..health_centers.len())];
            let severity = match rng.random_range(0..100) {
                0..10 => "ASYMPTOMATIC",
                10..62 => "MILD",
                62..84 => "MODERATE_I",
                84..95 => "MODERATE_II",
                _ => "SEVERE",
            };
            let age: i32 = if rng.random_bool(0.55) {
                rng.random_range(65..98)
            } else {
                rng.random_range(1..65)
            };
            let name = format!(
                "{} {}",
                FAMILY[rng.random_range(0..FAMILY.len())],
                GIVEN[rng.random_range(0..GIVEN.len())]
            );
            let body = json!({
                "patient": {"name": name, "birth_date": format!("{}-{:02}-{:02}", 2026 - age, rng.random_range(1..13), rng.random_range(1..29)),
                            "sex": if rng.random_bool(0.5) { "SEX_FEMALE" } else { "SEX_MALE" },
                            "address": "架空町 1-2-3"},
                "municipality": jurisdiction[rng.random_range(0..jurisdiction.len())],
                "severity": format!("SEVERITY_{severity}"),
                "risk_factors": if age >= 65 { vec!["RISK_FACTOR_AGE_65_PLUS"] } else { vec![] },
            });
            match api.command(&token_of[hc], "ReportCase", body).await {
                Ok(result) => {
                    summary.cases += 1;
                    let case_id = result["stream_id"]
                        .as_str()
                        .unwrap_or("")
                        .trim_start_matches("case-")
                        .to_owned();
                    cases.push(SimCase {
                        case_id,
                        health_center: hc.clone(),
                        severity,
                        at_home: true,
                        placement: None,
                    });
                    let index = cases.len() - 1;
                    let needs_bed = match severity {
                        "SEVERE" | "MODERATE_II" => true,
                        "MODERATE_I" => rng.random_bool(0.7),
                        "MILD" => rng.random_bool(0.3),
                        _ => false,
                    };
                    if needs_bed {
                        request(
                            &api,
                            &token_of,
                            &mut cases,
                            index,
                            now,
                            &mut placements,
                            &mut summary,
                        )
                        .await;
                    } else if api
                        .command(
                            &token_of[hc],
                            "StartHomeCare",
                            json!({"case_id": cases[index].case_id}),
                        )
                        .await
                        .is_err()
                    {
                        summary.errors += 1;
                    }
                }
                Err(_) => summary.errors += 1,
            }
        }

        // Deterioration at home: 6 % a day, SpO₂ falls and a bed is requested.
        let p_worse = (0.06 * dt / day).min(1.0);
        for index in 0..cases.len() {
            if cases[index].at_home && cases[index].placement.is_none() && rng.random_bool(p_worse)
            {
                let token = &token_of[&cases[index].health_center];
                let observed = api
                    .command(token, "RecordObservation", json!({"case_id": cases[index].case_id,
                        "observed_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                        "spo2_percent": rng.random_range(86..92), "temperature_decicelsius": rng.random_range(380..395), "on_oxygen": false}))
                    .await;
                let triaged = api
                    .command(token, "TriageCase", json!({"case_id": cases[index].case_id, "severity": "SEVERITY_MODERATE_II"}))
                    .await;
                if observed.is_ok() && triaged.is_ok() {
                    summary.deteriorations += 1;
                    cases[index].severity = "MODERATE_II";
                    request(
                        &api,
                        &token_of,
                        &mut cases,
                        index,
                        now,
                        &mut placements,
                        &mut summary,
                    )
                    .await;
                } else {
                    summary.errors += 1;
                }
            }
        }

        // HQ offers waiting placements to the top candidate.
        for (placement_id, p) in placements
            .iter_mut()
            .filter(|(_, p)| p.state == Step::Waiting)
        {
            let Ok(list) = api
                .get(
                    &hq,
                    &format!("/api/v1/placements/{placement_id}/candidates"),
                )
                .await
            else {
                continue;
            };
            let Some(top) = list["candidates"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(|c| c["facility_id"].as_str())
            else {
                continue;
            };
            if api
                .command(
                    &hq,
                    "OfferPlacement",
                    json!({"placement_id": placement_id, "facility_id": top}),
                )
                .await
                .is_ok()
            {
                p.state = Step::Offered;
                p.offered_to = Some(top.to_owned());
                // A facility answers in 5 to 40 simulated minutes.
                p.answer_at = Some(now + rng.random_range(300.0..2400.0));
            }
        }

        // Facilities answer, arrange, admit and discharge.
        for (placement_id, p) in placements.iter_mut() {
            let facility = p.offered_to.clone().unwrap_or_default();
            let case = &cases[p.case];
            let hc_token = &token_of[&case.health_center];
            match p.state {
                Step::Offered if p.answer_at.is_some_and(|at| now >= at) => {
                    let Some(token) = token_of.get(&facility) else {
                        continue;
                    };
                    let roll = rng.random_range(0..100);
                    if roll < 75 {
                        match api
                            .command(
                                token,
                                "AcceptPlacement",
                                json!({"placement_id": placement_id}),
                            )
                            .await
                        {
                            Ok(_) => {
                                p.state = Step::Accepted;
                                p.accepted_at = Some(now);
                                summary.placed += 1;
                                summary.waits.push((now - p.requested_at) / 60.0);
                            }
                            // No free bed after all: it goes back to HQ.
                            Err(_) => {
                                decline(&api, token, placement_id, "満床", p, &mut summary).await
                            }
                        }
                    } else if roll < 95 {
                        decline(&api, token, placement_id, "人員不足", p, &mut summary).await;
                    } else {
                        // No answer: the server's offer timer expires it.
                        p.answer_at = None;
                        summary.expiries += 1;
                    }
                }
                Step::Offered => {}
                Step::Accepted => {
                    let arranged = api.command(hc_token, "ArrangeTransport", json!({"placement_id": placement_id, "vehicle": "VEHICLE_HEALTH_CENTER_VEHICLE"})).await;
                    if arranged.is_ok() {
                        p.state = Step::Arranged;
                        p.departs_at = Some(now + rng.random_range(900.0..3600.0));
                    }
                }
                Step::Arranged if p.departs_at.is_some_and(|at| now >= at) => {
                    let departed = api
                        .command(
                            hc_token,
                            "RecordDeparture",
                            json!({"placement_id": placement_id}),
                        )
                        .await;
                    if departed.is_ok() {
                        p.state = Step::InTransit;
                        p.arrives_at = Some(now + rng.random_range(900.0..2700.0));
                    }
                }
                Step::InTransit if p.arrives_at.is_some_and(|at| now >= at) => {
                    let Some(token) = token_of.get(&facility) else {
                        continue;
                    };
                    if api
                        .command(
                            token,
                            "RecordArrival",
                            json!({"placement_id": placement_id}),
                        )
                        .await
                        .is_ok()
                    {
                        p.state = Step::Admitted;
                        let stay_days = if p.category == "HOTEL_ROOM" {
                            rng.random_range(5.0..10.0)
                        } else {
                            rng.random_range(6.0..16.0)
                        };
                        p.discharge_at = Some(now + stay_days * day);
                    }
                }
                Step::Admitted if p.discharge_at.is_some_and(|at| now >= at) => {
                    let Some(token) = token_of.get(&facility) else {
                        continue;
                    };
                    let outcome = if p.category != "HOTEL_ROOM" && rng.random_bool(0.2) {
                        "DISCHARGE_OUTCOME_STEP_DOWN"
                    } else {
                        "DISCHARGE_OUTCOME_RECOVERED"
                    };
                    if api
                        .command(
                            token,
                            "RecordDischarge",
                            json!({"placement_id": placement_id, "outcome": outcome}),
                        )
                        .await
                        .is_ok()
                    {
                        p.state = Step::Done;
                        summary.discharges += 1;
                    }
                }
                _ => {}
            }
        }

        // Offers left unanswered come back once the server expires them.
        if summary.expiries > 0
            && let Ok(queue) = api.get(&hq, "/api/v1/views/placement_queue").await
        {
            for row in queue["rows"].as_array().into_iter().flatten() {
                let (Some(id), Some("REQUESTED")) =
                    (row["placement_id"].as_str(), row["status"].as_str())
                else {
                    continue;
                };
                if let Some(p) = placements
                    .get_mut(id)
                    .filter(|p| p.state == Step::Offered && p.answer_at.is_none())
                {
                    p.state = Step::Waiting;
                }
            }
        }

        let waiting = placements
            .values()
            .filter(|p| matches!(p.state, Step::Waiting | Step::Offered))
            .count();
        eprint!(
            "\rday {:>5.1}/{:<4} cases {:>5}  waiting {:>4}  placed {:>5}  declines {:>4}  expiries {:>3}  discharged {:>5}  errors {:>3} ",
            now / day,
            args.days,
            summary.cases,
            waiting,
            summary.placed,
            summary.declines,
            summary.expiries,
            summary.discharges,
            summary.errors
        );
    }
    eprintln!();
    summary.waits.sort_by(f64::total_cmp);
    let minutes = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |m| format!("{m:.0} min"));
    let report = format!(
        "simulated {} days at {}x: {} cases ({} deteriorated at home), {} placements requested, {} placed, \
         time to placement median {} p90 {}, {} declines, {} offers left to expire, {} discharges, {} failed commands",
        args.days,
        args.speed,
        summary.cases,
        summary.deteriorations,
        summary.placements,
        summary.placed,
        minutes(percentile(&summary.waits, 0.5)),
        minutes(percentile(&summary.waits, 0.9)),
        summary.declines,
        summary.expiries,
        summary.discharges,
        summary.errors,
    );
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{report}").map_err(ServeError::Output)
}

async fn decline(
    api: &Api,
    token: &str,
    placement_id: &str,
    reason: &str,
    p: &mut SimPlacement,
    summary: &mut Summary,
) {
    if api
        .command(
            token,
            "DeclinePlacement",
            json!({"placement_id": placement_id, "reason": reason}),
        )
        .await
        .is_ok()
    {
        summary.declines += 1;
        p.state = Step::Waiting;
        p.offered_to = None;
    } else {
        summary.errors += 1;
    }
}

/// The health center asks for a bed for case `index`.
async fn request(
    api: &Api,
    token_of: &HashMap<String, String>,
    cases: &mut [SimCase],
    index: usize,
    now: f64,
    placements: &mut BTreeMap<String, SimPlacement>,
    summary: &mut Summary,
) {
    let case = &mut cases[index];
    let category = match case.severity {
        "SEVERE" => "SEVERE",
        "MODERATE_I" | "MODERATE_II" => "MODERATE",
        _ => "HOTEL_ROOM",
    };
    let token = &token_of[&case.health_center];
    match api
        .command(
            token,
            "RequestPlacement",
            json!({"case_id": case.case_id, "category": format!("BED_CATEGORY_{category}")}),
        )
        .await
    {
        Ok(result) => {
            let placement_id = result["streams"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s["stream_id"].as_str())
                .find_map(|s| s.strip_prefix("placement-"))
                .unwrap_or_default()
                .to_owned();
            summary.placements += 1;
            case.at_home = false;
            case.placement = Some(placement_id.clone());
            placements.insert(
                placement_id,
                SimPlacement {
                    case: index,
                    requested_at: now,
                    category,
                    ..SimPlacement::default()
                },
            );
        }
        Err(_) => summary.errors += 1,
    }
}

fn simulation_error(message: &str) -> ServeError {
    ServeError::Output(std::io::Error::other(message.to_owned()))
}
