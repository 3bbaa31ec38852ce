//! `noroshi simulate`: a synthetic surge, driven through the public HTTP API with the
//! demo organisations' tokens, so that every dashboard moves (docs/web.md). A client of
//! the public API only: it reads the demo file for tokens and facilities and speaks
//! HTTP/JSON, as any other client would.
//!
//! Time is compressed: the simulation's clock runs `--speed` times faster than the wall
//! clock, and its own decisions (arrivals of cases, deterioration, how long a facility
//! takes to answer, transport, length of stay) follow that clock. The server keeps real
//! time, so its deadlines (offer expiry, staleness) stay real. Every person is synthetic.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};

mod moving_on;
mod scenario;

use scenario::Script;
pub use scenario::{Hq, Organisation, Scenario};

/// How to drive the surge.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    /// Base URL of the HTTP API.
    #[arg(
        long,
        env = "NOROSHI_SIMULATE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Admin file with the organisations and their bearer tokens (the demo set).
    #[arg(
        long,
        env = "NOROSHI_SIMULATE_FILE",
        default_value = "ops/demo/yamaguchi.toml"
    )]
    pub file: std::path::PathBuf,
    /// New cases a day at the peak of the surge.
    #[arg(long, default_value_t = 300.0)]
    pub peak_per_day: f64,
    /// Simulated days; the surge rises to its peak halfway and falls again.
    #[arg(long, default_value_t = 14.0)]
    pub days: f64,
    /// Simulated seconds per real second (1440: a day per minute).
    #[arg(long, default_value_t = 1440.0)]
    pub speed: f64,
    /// Seed for a repeatable run.
    #[arg(long)]
    pub seed: Option<u64>,
}

/// Why the simulation could not run.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not an admin file: {reason}")]
    File { path: String, reason: String },
    #[error("{0}")]
    World(&'static str),
    #[error("the scenario has {} problem(s):\n  {}", .0.len(), .0.join("\n  "))]
    Scenario(Vec<String>),
    #[error("cannot write the report")]
    Output(#[source] std::io::Error),
}

/// What the simulation needs of the admin file (docs/admin.md): the facilities, and
/// the tokens it acts with. Everything else in the file is left alone.
#[derive(Debug, Deserialize)]
struct World {
    #[serde(default)]
    facility: Vec<FacilityEntry>,
    #[serde(default)]
    token: Vec<TokenEntry>,
}

#[derive(Debug, Deserialize)]
struct FacilityEntry {
    facility_id: String,
    kind: String,
    #[serde(default)]
    medical_area: String,
    #[serde(default)]
    jurisdiction: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct TokenEntry {
    token: String,
    organisation_id: String,
    role: String,
}

impl World {
    fn load(path: &std::path::Path) -> Result<Self, SimulateError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SimulateError::Read {
            path: shown.clone(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| SimulateError::File {
            path: shown,
            reason: e.message().to_owned(),
        })
    }

    /// The organisations of the file that have a token (the first token of each), as
    /// the simulation acts as them; an HQ token's organisation even without an entry.
    fn organisations(&self) -> Vec<Organisation> {
        let mut organisations: Vec<Organisation> = Vec::new();
        for token in &self.token {
            if organisations
                .iter()
                .any(|o| o.facility_id == token.organisation_id)
            {
                continue;
            }
            let entry = self
                .facility
                .iter()
                .find(|f| f.facility_id == token.organisation_id);
            let kind = match (entry, token.role.as_str()) {
                (_, "HQ") => "HQ".to_owned(),
                (Some(entry), _) => entry.kind.clone(),
                (None, _) => continue,
            };
            organisations.push(Organisation {
                facility_id: token.organisation_id.clone(),
                kind,
                medical_area: entry.map(|e| e.medical_area.clone()).unwrap_or_default(),
                jurisdiction: entry.map(|e| e.jurisdiction.clone()).unwrap_or_default(),
                token: token.token.clone(),
            });
        }
        organisations
    }
}

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
    /// The clinic or mobile clinic caring for the patient at home, if any.
    care_site: Option<String>,
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
    /// When HQ looks for a bed again after finding none.
    retry_at: f64,
    state: Step,
    /// Left live by an earlier run: its wait for a bed is not this run's to report.
    adopted: bool,
    /// The patient is to move on from this stay (a consult or a placement under way).
    moving: bool,
    /// The facility a move on leaves: it arranges the transport when the simulation
    /// does not know the case's health center (a patient adopted from an earlier run).
    origin: Option<String>,
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
    /// Placements of an earlier run carried on (live, or their patients admitted).
    adopted: u64,
    cases: u64,
    placements: u64,
    placed: u64,
    declines: u64,
    expiries: u64,
    deteriorations: u64,
    /// Patients at home put in a clinic's or mobile clinic's care.
    cared: u64,
    /// Remote consults asked for, escalations to a hospital and step-downs to a hotel.
    consults: u64,
    escalations: u64,
    step_downs: u64,
    discharges: u64,
    errors: u64,
    /// A scenario's incidents played (a hospital closing to admissions, …).
    incidents: u64,
    /// Requests refused for what they were or who sent them.
    refused: u64,
    /// Requests not sent while their organisation was backing off after a refusal.
    skipped: u64,
    /// Simulated minutes from request to acceptance.
    waits: Vec<f64>,
}

/// How long an organisation whose request was refused is left alone at first, and at
/// most: a simulator pointed at a deployment that does not know the demo set (another
/// database, a token that was revoked) would otherwise repeat the refused requests many
/// times a second.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
const LONGEST_BACKOFF: Duration = Duration::from_secs(300);

/// Failed requests in a row after which a token is left alone even when each could
/// have been a race (409, 412): a health center that is not registered is refused every
/// case it reports with 412.
const FAILURES_IN_A_ROW: u32 = 3;

/// The refusals of one token and how long it is left alone.
#[derive(Debug, Clone, Copy)]
struct Backoff {
    until: Instant,
    next: Duration,
    /// Failures since its last success.
    in_a_row: u32,
}

/// Why a request came back without an answer.
#[derive(Debug)]
enum Failure {
    /// Not sent: its token is backing off after a refusal.
    Skipped,
    /// Refused for what it is or who sent it (400, 401, 403, 404, 429, or a 409 or 412
    /// several times in a row): the same request as the same organisation would be
    /// refused again.
    Refused(String),
    /// Anything else (a race with another change, the server or the network).
    Failed(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Skipped => f.write_str("skipped while backing off"),
            Self::Refused(why) | Self::Failed(why) => f.write_str(why),
        }
    }
}

struct Api {
    base: String,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        http_body_util::Full<bytes::Bytes>,
    >,
    /// Tokens whose requests were refused, left alone for a while (doubling each time).
    backoff: std::sync::Mutex<HashMap<String, Backoff>>,
}

impl Api {
    fn backing_off(&self, token: &str) -> bool {
        self.backoffs()
            .get(token)
            .is_some_and(|b| Instant::now() < b.until)
    }

    /// Leaves `token` alone for longer than after its last refusal; how long.
    fn back_off(&self, token: &str) -> Duration {
        let mut backoffs = self.backoffs();
        let entry = backoffs.entry(token.to_owned()).or_insert(Backoff {
            until: Instant::now(),
            next: FIRST_BACKOFF,
            in_a_row: 0,
        });
        let wait = entry.next;
        entry.until = Instant::now() + wait;
        entry.next = (wait * 2).min(LONGEST_BACKOFF);
        entry.in_a_row = 0;
        wait
    }

    /// Counts a failure of `token` that may have been a race; whether it has failed
    /// too often in a row to go on.
    fn failed_again(&self, token: &str) -> bool {
        let mut backoffs = self.backoffs();
        let entry = backoffs.entry(token.to_owned()).or_insert(Backoff {
            until: Instant::now(),
            next: FIRST_BACKOFF,
            in_a_row: 0,
        });
        entry.in_a_row += 1;
        entry.in_a_row >= FAILURES_IN_A_ROW
    }

    fn succeeded(&self, token: &str) {
        if let Some(entry) = self.backoffs().get_mut(token) {
            entry.in_a_row = 0;
        }
    }

    fn backoffs(&self) -> std::sync::MutexGuard<'_, HashMap<String, Backoff>> {
        // Each holder sets one entry whole: a poisoned map is still consistent.
        self.backoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn send(
        &self,
        method: http::Method,
        token: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        if self.backing_off(token) {
            return Err(Failure::Skipped);
        }
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(
                body.map(|b| b.to_string()).unwrap_or_default(),
            )))
            .map_err(|e| Failure::Failed(e.to_string()))?;
        let response = match self.client.request(request).await {
            Ok(response) => response,
            Err(error) => {
                // The API cannot be reached: asking again at once would not help.
                let wait = self.back_off(token);
                tracing::warn!(path, error = %error, backoff = %humantime::format_duration(wait), "the API cannot be reached");
                return Err(Failure::Failed(error.to_string()));
            }
        };
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| Failure::Failed(e.to_string()))?
            .to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            self.succeeded(token);
            return Ok(json);
        }
        let why = format!("{status}: {}", json["message"].as_str().unwrap_or(""));
        let refused = match status.as_u16() {
            400 | 401 | 403 | 404 | 429 => true,
            409 | 412 => self.failed_again(token),
            _ => false,
        };
        match refused {
            true => {
                let wait = self.back_off(token);
                tracing::warn!(
                    path,
                    error = %why,
                    backoff = %humantime::format_duration(wait),
                    "request refused; this organisation is left alone for a while"
                );
                Err(Failure::Refused(why))
            }
            false => Err(Failure::Failed(why)),
        }
    }

    async fn command(&self, token: &str, name: &str, mut body: Value) -> Result<Value, Failure> {
        body["command_id"] = json!(uuid::Uuid::now_v7().to_string());
        self.send(
            http::Method::POST,
            token,
            &format!("/api/v1/commands/{name}"),
            Some(body),
        )
        .await
    }

    async fn get(&self, token: &str, path: &str) -> Result<Value, Failure> {
        self.send(http::Method::GET, token, path, None).await
    }
}

fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Seconds in a simulated day.
const DAY: f64 = 86_400.0;

/// The simulation's world: who it acts as, what it follows, what it counted.
struct Simulation {
    api: Api,
    rng: StdRng,
    /// Bearer token of each organisation.
    token_of: HashMap<String, String>,
    hq: String,
    /// Facilities that keep beds, and their kinds.
    facilities: Vec<(String, String)>,
    cases: Vec<SimCase>,
    placements: BTreeMap<String, SimPlacement>,
    /// The consult center that sees residents remotely, if the file has one with a token.
    consult_center: Option<String>,
    consults: Vec<moving_on::SimConsult>,
    /// Clinics and mobile clinics with tokens, which care for patients at home.
    care_sites: Vec<String>,
    /// What happens, when, and who offers beds.
    script: Script,
    /// The next incident of the script to play.
    next_incident: usize,
    /// Facilities closed to admissions by an incident, with what they say.
    closed: HashMap<String, String>,
    summary: Summary,
    /// The last simulated day logged.
    logged_day: u64,
}

pub async fn run(args: SimulateArgs) -> Result<(), SimulateError> {
    let organisations = World::load(&args.file)?.organisations();
    let health_centers = organisations
        .iter()
        .filter(|o| o.kind == "HEALTH_CENTER" && !o.jurisdiction.is_empty())
        .map(|o| (o.facility_id.clone(), o.jurisdiction.clone()))
        .collect();
    let script = Script::surge(args.peak_per_day, args.days, health_centers);
    let sim = Simulation::new(&args.url, &organisations, script, args.seed)?;
    let report = sim.drive(args.speed).await;
    use std::io::Write;
    writeln!(std::io::stdout().lock(), "{report}").map_err(SimulateError::Output)
}

/// Plays `scenario` through the HTTP API at `url` as `organisations` (a drill's), at
/// `speed` simulated seconds per real second; the summary of what happened. Every
/// problem of the scenario against the organisations comes back at once, before the
/// first request.
pub async fn play(
    url: &str,
    organisations: &[Organisation],
    scenario: &Scenario,
    speed: f64,
) -> Result<String, SimulateError> {
    let script = scenario
        .script(organisations)
        .map_err(SimulateError::Scenario)?;
    let sim = Simulation::new(url, organisations, script, scenario.seed)?;
    Ok(sim.drive(speed).await)
}

impl Simulation {
    fn new(
        url: &str,
        organisations: &[Organisation],
        script: Script,
        seed: Option<u64>,
    ) -> Result<Self, SimulateError> {
        let token_of: HashMap<String, String> = organisations
            .iter()
            .map(|o| (o.facility_id.clone(), o.token.clone()))
            .collect();
        let of_kind = |kinds: &[&str]| -> Vec<&Organisation> {
            organisations
                .iter()
                .filter(|o| kinds.contains(&o.kind.as_str()))
                .collect()
        };
        let hq = of_kind(&["HQ"])
            .first()
            .map(|o| o.token.clone())
            .ok_or(SimulateError::World("the file has no HQ token"))?;
        let facilities: Vec<(String, String)> = of_kind(&["HOSPITAL", "HOTEL", "TEMPORARY"])
            .into_iter()
            .map(|o| (o.facility_id.clone(), o.kind.clone()))
            .collect();
        if script.flows.iter().all(|f| f.health_centers.is_empty()) || facilities.is_empty() {
            return Err(SimulateError::World(
                "the file needs health centers and facilities with tokens",
            ));
        }
        let consult_center = of_kind(&["CONSULT_CENTER"])
            .first()
            .map(|o| o.facility_id.clone());
        let care_sites = of_kind(&["CLINIC", "MOBILE_CLINIC"])
            .into_iter()
            .map(|o| o.facility_id.clone())
            .collect();
        Ok(Self {
            api: Api {
                base: url.trim_end_matches('/').to_owned(),
                client: hyper_util::client::legacy::Client::builder(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .build_http(),
                backoff: std::sync::Mutex::default(),
            },
            rng: match seed {
                Some(seed) => StdRng::seed_from_u64(seed),
                None => StdRng::from_rng(&mut rand::rng()),
            },
            token_of,
            hq,
            facilities,
            cases: Vec::new(),
            placements: BTreeMap::new(),
            consult_center,
            consults: Vec::new(),
            care_sites,
            script,
            next_incident: 0,
            closed: HashMap::new(),
            summary: Summary::default(),
            logged_day: 0,
        })
    }

    /// Runs the script to its end at `speed`; the summary.
    async fn drive(mut self, speed: f64) -> String {
        let facilities = self.facilities.clone();
        self.declare_capacity(&facilities).await;
        self.adopt(&facilities).await;
        let total = self.script.duration;
        let days = total / DAY;
        let bar = progress_bar(days);
        let started = Instant::now();
        let mut due_cases = vec![0.0_f64; self.script.flows.len()];
        let mut last = 0.0_f64;
        let mut looked_at_offers = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = started.elapsed().as_secs_f64() * speed;
            if now >= total {
                break;
            }
            let dt = now - last;
            last = now;
            for (flow, due) in due_cases.iter_mut().enumerate() {
                *due += self.script.flows[flow].rate(now) * dt / DAY;
                while *due >= 1.0 {
                    *due -= 1.0;
                    self.new_case(now, flow).await;
                }
            }
            self.play_incidents(now).await;
            self.deteriorate(now, dt).await;
            self.residents_deteriorate(now, dt).await;
            self.cared_at_home(now, dt).await;
            self.advance_consults(now).await;
            if self.script.hq_offers {
                self.offer_waiting(now).await;
            } else if looked_at_offers.elapsed() >= Duration::from_secs(1) {
                looked_at_offers = Instant::now();
                self.notice_offers(now).await;
            }
            self.advance(now).await;
            self.take_back_expired().await;
            self.progress(now, days, &bar);
        }
        bar.finish_and_clear();
        self.summary.report(days, speed)
    }

    /// A command as `organisation`; a failure is counted.
    async fn command(&mut self, organisation: &str, name: &str, body: Value) -> Option<Value> {
        let Some(token) = self.token_of.get(organisation) else {
            tracing::warn!(
                command = name,
                organisation,
                "command not sent: the file has no token of the organisation"
            );
            self.summary.errors += 1;
            return None;
        };
        let outcome = self.api.command(token, name, body).await;
        self.summary.count(&outcome);
        match outcome {
            Ok(result) => Some(result),
            Err(Failure::Failed(error)) => {
                tracing::warn!(command = name, organisation, error = %error, "command failed");
                None
            }
            Err(_) => None,
        }
    }

    /// Every facility declares its capacity first: as the script says, or drawn.
    async fn declare_capacity(&mut self, facilities: &[(String, String)]) {
        for (facility, categories) in self.script.declarations.clone() {
            self.command(
                &facility,
                "DeclareCapacity",
                json!({"facility_id": facility, "categories": categories}),
            )
            .await;
        }
        for (facility, kind) in facilities {
            let declared = self.script.declarations.iter().any(|(f, _)| f == facility);
            if declared || !self.script.random_others {
                continue;
            }
            let kinds: &[&str] = if kind == "TEMPORARY" {
                &["MODERATE", "MILD"]
            } else {
                &["SEVERE", "MODERATE", "MILD"]
            };
            let categories: Vec<Value> = if kind == "HOTEL" {
                let ready = self.rng.random_range(30..40);
                vec![json!({"category": "BED_CATEGORY_HOTEL_ROOM",
                            "secured": self.rng.random_range(40..120), "ready": ready, "occupied": 0})]
            } else {
                kinds
                    .iter()
                    .map(|c| {
                        let secured = self.rng.random_range(4..24);
                        json!({"category": format!("BED_CATEGORY_{c}"), "secured": secured,
                               "ready": secured * 3 / 4,
                               "occupied": self.rng.random_range(0..=secured / 4)})
                    })
                    .collect()
            };
            self.command(
                facility,
                "DeclareCapacity",
                json!({"facility_id": facility, "categories": categories}),
            )
            .await;
        }
    }

    /// HQ's placement queue; `None` when it cannot be read (the next step tries again).
    async fn queue(&self) -> Option<Value> {
        self.api
            .get(&self.hq, "/api/v1/views/placement_queue")
            .await
            .ok()
    }

    /// Carries on the placements an earlier run left (`noroshi dev` keeps its database):
    /// otherwise their offers would go unanswered and, once expired, they would wait in
    /// HQ's queue for good, and their patients would never leave their beds.
    async fn adopt(&mut self, facilities: &[(String, String)]) {
        let Some(queue) = self.queue().await else {
            return;
        };
        // Patients admitted by an earlier run, from each facility's own inbox.
        for (facility, _) in facilities {
            let Some(token) = self.token_of.get(facility) else {
                continue;
            };
            let Ok(inbox) = self.api.get(token, "/api/v1/views/facility_inbox").await else {
                continue;
            };
            for row in inbox["placed"].as_array().into_iter().flatten() {
                // A patient moving on (a transfer under way) leaves this bed when they
                // arrive there: the transfer is carried on from HQ's queue below, and the
                // server ends this stay; it is followed, but neither discharged nor
                // observed here, which would race that.
                let moving = row["moving_on_placement_id"].is_string();
                let discharge_at = (!moving).then(|| self.rng.random_range(1.0..8.0) * DAY);
                let placement = SimPlacement {
                    offered_to: Some(facility.clone()),
                    discharge_at,
                    state: Step::Admitted,
                    moving,
                    ..SimPlacement::default()
                };
                self.take_over(row, String::new(), placement);
            }
        }
        for row in queue["rows"].as_array().into_iter().flatten() {
            let state = match row["status"].as_str() {
                Some("PLACEMENT_STATUS_REQUESTED") => Step::Waiting,
                Some("PLACEMENT_STATUS_OFFERED") => Step::Offered,
                Some("PLACEMENT_STATUS_ACCEPTED") => Step::Accepted,
                Some("PLACEMENT_STATUS_TRANSPORT_ARRANGED") => Step::Arranged,
                Some("PLACEMENT_STATUS_IN_TRANSIT") => Step::InTransit,
                _ => continue,
            };
            let Some(owner) = row["case_owner"]
                .as_str()
                .filter(|owner| self.token_of.contains_key(*owner))
            else {
                continue;
            };
            // Whatever it waits for comes in the next simulated minutes.
            let soon = Some(self.rng.random_range(300.0..2400.0));
            let placement = SimPlacement {
                offered_to: row["target"].as_str().map(str::to_owned),
                answer_at: soon,
                departs_at: soon,
                arrives_at: soon,
                state,
                ..SimPlacement::default()
            };
            self.take_over(row, owner.to_owned(), placement);
        }
    }

    /// Follows the placement a view's `row` names (its `placement_id`, `case_id` and
    /// `category`) from `placement`'s step on, unless the simulation follows it already.
    fn take_over(&mut self, row: &Value, health_center: String, placement: SimPlacement) {
        let (Some(placement_id), Some(case_id)) =
            (row["placement_id"].as_str(), row["case_id"].as_str())
        else {
            return;
        };
        if self.placements.contains_key(placement_id) {
            return;
        }
        self.cases.push(SimCase {
            case_id: case_id.to_owned(),
            health_center,
            severity: "MODERATE_I",
            at_home: false,
            placement: Some(placement_id.to_owned()),
            care_site: None,
        });
        self.placements.insert(
            placement_id.to_owned(),
            SimPlacement {
                case: self.cases.len() - 1,
                category: category_of(row["category"].as_str()),
                adopted: true,
                ..placement
            },
        );
        self.summary.adopted += 1;
    }

    /// A health center of `flow` reports a new case, then asks for a bed or starts home
    /// care.
    async fn new_case(&mut self, now: f64, flow: usize) {
        let flow = &self.script.flows[flow];
        if flow.health_centers.is_empty() {
            return;
        }
        let (hc, jurisdiction) =
            flow.health_centers[self.rng.random_range(0..flow.health_centers.len())].clone();
        let severity = flow.severity(self.rng.random_range(0..flow.total()));
        let rng = &mut self.rng;
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
            "patient": {"name": name,
                        "birth_date": format!("{}-{:02}-{:02}", 2026 - age, rng.random_range(1..13), rng.random_range(1..29)),
                        "sex": if rng.random_bool(0.5) { "SEX_FEMALE" } else { "SEX_MALE" },
                        "address": "架空町 1-2-3"},
            "municipality": jurisdiction[rng.random_range(0..jurisdiction.len())],
            "severity": format!("SEVERITY_{severity}"),
            "risk_factors": if age >= 65 { vec!["RISK_FACTOR_AGE_65_PLUS"] } else { vec![] },
        });
        let Some(result) = self.command(&hc, "ReportCase", body).await else {
            return;
        };
        self.summary.cases += 1;
        let case_id = result["stream_id"]
            .as_str()
            .unwrap_or("")
            .trim_start_matches("case-")
            .to_owned();
        self.cases.push(SimCase {
            case_id: case_id.clone(),
            health_center: hc.clone(),
            severity,
            at_home: true,
            placement: None,
            care_site: None,
        });
        let needs_bed = match severity {
            "SEVERE" | "MODERATE_II" => true,
            "MODERATE_I" => self.rng.random_bool(0.7),
            "MILD" => self.rng.random_bool(0.3),
            _ => false,
        };
        if needs_bed {
            self.request(self.cases.len() - 1, now).await;
        } else if self
            .command(&hc, "StartHomeCare", json!({"case_id": case_id}))
            .await
            .is_some()
        {
            self.assign_care_site(self.cases.len() - 1).await;
        }
    }

    /// Deterioration at home: 6 % a day, SpO₂ falls, triage, and a bed is requested.
    async fn deteriorate(&mut self, now: f64, dt: f64) {
        let p_worse = (0.06 * dt / DAY).min(1.0);
        for index in 0..self.cases.len() {
            let case = &self.cases[index];
            if !case.at_home || case.placement.is_some() || !self.rng.random_bool(p_worse) {
                continue;
            }
            let (hc, case_id) = (case.health_center.clone(), case.case_id.clone());
            // The care site, when there is one, is who sees the patient at home.
            let observer = case.care_site.clone().unwrap_or_else(|| hc.clone());
            let observation = json!({"case_id": case_id,
                "observed_at": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
                "spo2_percent": self.rng.random_range(86..92),
                "temperature_decicelsius": self.rng.random_range(380..395), "on_oxygen": false});
            let observed = self
                .command(&observer, "RecordObservation", observation)
                .await;
            let triage = json!({"case_id": case_id, "severity": "SEVERITY_MODERATE_II"});
            let triaged = self.command(&hc, "TriageCase", triage).await;
            if observed.is_some() && triaged.is_some() {
                self.summary.deteriorations += 1;
                self.cases[index].severity = "MODERATE_II";
                self.request(index, now).await;
            }
        }
    }

    /// The health center asks for a bed for case `index`.
    async fn request(&mut self, index: usize, now: f64) {
        let case = &self.cases[index];
        let category = match case.severity {
            "SEVERE" => "SEVERE",
            "MODERATE_I" | "MODERATE_II" => "MODERATE",
            _ => "HOTEL_ROOM",
        };
        let body = json!({"case_id": case.case_id, "category": format!("BED_CATEGORY_{category}")});
        let hc = case.health_center.clone();
        let Some(result) = self.command(&hc, "RequestPlacement", body).await else {
            return;
        };
        let placement_id = result["streams"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["stream_id"].as_str())
            .find_map(|s| s.strip_prefix("placement-"))
            .unwrap_or_default()
            .to_owned();
        self.summary.placements += 1;
        let case = &mut self.cases[index];
        case.at_home = false;
        case.placement = Some(placement_id.clone());
        self.placements.insert(
            placement_id,
            SimPlacement {
                case: index,
                requested_at: now,
                category,
                ..SimPlacement::default()
            },
        );
    }

    /// HQ offers each waiting placement to its top candidate; a facility answers in 5 to
    /// 40 simulated minutes.
    async fn offer_waiting(&mut self, now: f64) {
        let waiting: Vec<String> = self
            .placements
            .iter()
            .filter(|(_, p)| p.state == Step::Waiting && p.retry_at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for placement_id in waiting {
            let path = format!("/api/v1/placements/{placement_id}/candidates");
            let Ok(list) = self.api.get(&self.hq, &path).await else {
                continue;
            };
            let Some(top) = list["candidates"]
                .as_array()
                .and_then(|c| c.first())
                .and_then(|c| c["facility_id"].as_str())
                .map(str::to_owned)
            else {
                // No free bed anywhere: HQ looks again in half a simulated hour.
                if let Some(p) = self.placements.get_mut(&placement_id) {
                    p.retry_at = now + 1800.0;
                }
                continue;
            };
            let body = json!({"placement_id": placement_id, "facility_id": top});
            let offered = self.api.command(&self.hq, "OfferPlacement", body).await;
            self.summary.count_refusal(&offered);
            if offered.is_ok() {
                self.offered(&placement_id, top, now);
            }
        }
    }

    /// Facilities answer offers; transport is arranged, departs and arrives; stays end.
    async fn advance(&mut self, now: f64) {
        let due: Vec<String> = self.placements.keys().cloned().collect();
        for placement_id in due {
            let Some(p) = self.placements.get(&placement_id) else {
                continue;
            };
            let (state, facility, category) = (
                p.state,
                p.offered_to.clone().unwrap_or_default(),
                p.category,
            );
            let hc = self.cases[p.case].health_center.clone();
            // The case's health center arranges transport; for a transfer of a patient
            // whose health center the simulation does not know, the facility it leaves.
            let hc = match &p.origin {
                Some(origin) if !self.token_of.contains_key(&hc) => origin.clone(),
                _ => hc,
            };
            let due = |at: Option<f64>| at.is_some_and(|at| now >= at);
            let id = json!({"placement_id": placement_id});
            let (next, at): (Option<Step>, Option<f64>) = match state {
                Step::Offered if due(p.answer_at) => {
                    self.answer(&placement_id, &facility, now).await;
                    continue;
                }
                Step::Accepted => {
                    let body = json!({"placement_id": placement_id, "vehicle": "VEHICLE_HEALTH_CENTER_VEHICLE"});
                    let done = self.command(&hc, "ArrangeTransport", body).await;
                    let departs = now + self.rng.random_range(900.0..3600.0);
                    (done.map(|_| Step::Arranged), Some(departs))
                }
                Step::Arranged if due(p.departs_at) => {
                    let done = self.command(&hc, "RecordDeparture", id).await;
                    let arrives = now + self.rng.random_range(900.0..2700.0);
                    (done.map(|_| Step::InTransit), Some(arrives))
                }
                Step::InTransit if due(p.arrives_at) => {
                    let done = self.command(&facility, "RecordArrival", id).await;
                    let stay_days = if category == "HOTEL_ROOM" {
                        self.rng.random_range(5.0..10.0)
                    } else {
                        self.rng.random_range(6.0..16.0)
                    };
                    (done.map(|_| Step::Admitted), Some(now + stay_days * DAY))
                }
                Step::Admitted if due(p.discharge_at) && !p.moving => {
                    if self.step_down(&placement_id, now).await {
                        continue;
                    }
                    let body = json!({"placement_id": placement_id,
                                      "outcome": "DISCHARGE_OUTCOME_RECOVERED"});
                    let done = self.command(&facility, "RecordDischarge", body).await;
                    if done.is_some() {
                        self.summary.discharges += 1;
                    }
                    (done.map(|_| Step::Done), None)
                }
                _ => (None, None),
            };
            let (Some(next), Some(p)) = (next, self.placements.get_mut(&placement_id)) else {
                continue;
            };
            p.state = next;
            match next {
                Step::Arranged => p.departs_at = at,
                Step::InTransit => p.arrives_at = at,
                Step::Admitted => p.discharge_at = at,
                _ => {}
            }
        }
    }

    /// Follows an offer of `placement_id` to `facility`, made at `now` (by the
    /// simulation as HQ, or by people at HQ's page): the facility answers in the
    /// script's time.
    fn offered(&mut self, placement_id: &str, facility: String, now: f64) {
        let (shortest, longest) = self.script.answers_of(&facility).minutes;
        let answer_at = now + self.rng.random_range(shortest..longest) * 60.0;
        if let Some(p) = self.placements.get_mut(placement_id) {
            p.state = Step::Offered;
            p.offered_to = Some(facility);
            p.answer_at = Some(answer_at);
        }
    }

    /// The offers people made at HQ's page to placements the simulation follows.
    async fn notice_offers(&mut self, now: f64) {
        if !self.placements.values().any(|p| p.state == Step::Waiting) {
            return;
        }
        let Some(queue) = self.queue().await else {
            return;
        };
        for row in queue["rows"].as_array().into_iter().flatten() {
            let (Some(id), Some("PLACEMENT_STATUS_OFFERED"), Some(target)) = (
                row["placement_id"].as_str(),
                row["status"].as_str(),
                row["target"].as_str(),
            ) else {
                continue;
            };
            if self
                .placements
                .get(id)
                .is_some_and(|p| p.state == Step::Waiting)
            {
                self.offered(id, target.to_owned(), now);
            }
        }
    }

    /// The script's incidents due by `now`, in order.
    async fn play_incidents(&mut self, now: f64) {
        while let Some(incident) = self
            .script
            .incidents
            .get(self.next_incident)
            .filter(|i| i.at <= now)
            .cloned()
        {
            self.next_incident += 1;
            let facility = incident.facility.as_str();
            let kind = self
                .facilities
                .iter()
                .find(|(f, _)| f == facility)
                .map_or("HOSPITAL", |(_, kind)| kind.as_str());
            let categories: &[&str] = match kind {
                "HOTEL" => &["HOTEL_ROOM"],
                "TEMPORARY" => &["MODERATE", "MILD"],
                _ => &["SEVERE", "MODERATE", "MILD"],
            };
            let acceptance = match incident.action {
                scenario::Action::CloseAdmissions => Some("ACCEPTANCE_NOT_ACCEPTING"),
                scenario::Action::Reopen => Some("ACCEPTANCE_ACCEPTING"),
                scenario::Action::Declare => None,
            };
            let mut done = true;
            match (acceptance, &incident.figures) {
                (Some(acceptance), _) => {
                    for category in categories {
                        let body = json!({"facility_id": facility,
                                          "category": format!("BED_CATEGORY_{category}"),
                                          "acceptance": acceptance});
                        done &= self
                            .command(facility, "SetAcceptance", body)
                            .await
                            .is_some();
                    }
                }
                (None, Some(figures)) => {
                    let body = json!({"facility_id": facility, "categories": [figures]});
                    done = self
                        .command(facility, "DeclareCapacity", body)
                        .await
                        .is_some();
                }
                (None, None) => {}
            }
            match incident.action {
                scenario::Action::CloseAdmissions => {
                    let note = match incident.note.trim() {
                        "" => "受入停止".to_owned(),
                        note => note.to_owned(),
                    };
                    self.closed.insert(incident.facility.clone(), note);
                }
                scenario::Action::Reopen => {
                    self.closed.remove(facility);
                }
                scenario::Action::Declare => {}
            }
            if done {
                self.summary.incidents += 1;
            }
            tracing::info!(
                facility,
                action = ?incident.action,
                note = incident.note,
                done,
                "incident of the scenario"
            );
        }
    }

    /// A facility answers an offer as the script says (by default 75 % accept, a
    /// refusal for want of a bed becoming a decline, 20 % decline, the rest left to the
    /// server's offer timer); a facility closed to admissions declines every offer.
    async fn answer(&mut self, placement_id: &str, facility: &str, now: f64) {
        let rule = self.script.answers_of(facility);
        let closed = self.closed.get(facility).cloned();
        let roll = match closed {
            Some(_) => rule.accept,
            None => self.rng.random_range(0..100),
        };
        let id = json!({"placement_id": placement_id});
        let accepted = if roll < rule.accept {
            match self.token_of.get(facility) {
                Some(token) => {
                    let accepted = self.api.command(token, "AcceptPlacement", id).await;
                    // Refused for want of a bed: the facility declines instead.
                    self.summary.count_refusal(&accepted);
                    accepted.is_ok()
                }
                None => false,
            }
        } else {
            false
        };
        let Some(p) = self.placements.get_mut(placement_id) else {
            return;
        };
        if accepted {
            p.state = Step::Accepted;
            p.accepted_at = Some(now);
            self.summary.placed += 1;
            if !p.adopted {
                self.summary.waits.push((now - p.requested_at) / 60.0);
            }
        } else if closed.is_some() || roll < rule.accept + rule.decline {
            let reason = match &closed {
                Some(note) => note.clone(),
                None if roll < rule.accept => "満床".to_owned(),
                None => "人員不足".to_owned(),
            };
            let body = json!({"placement_id": placement_id, "reason": reason});
            if self
                .command(facility, "DeclinePlacement", body)
                .await
                .is_some()
            {
                self.summary.declines += 1;
                if let Some(p) = self.placements.get_mut(placement_id) {
                    p.state = Step::Waiting;
                    p.offered_to = None;
                }
            }
        } else {
            p.answer_at = None;
            self.summary.expiries += 1;
        }
    }

    /// Offers left unanswered come back once the server's timer expires them.
    async fn take_back_expired(&mut self) {
        if self.summary.expiries == 0 {
            return;
        }
        let Some(queue) = self.queue().await else {
            return;
        };
        for row in queue["rows"].as_array().into_iter().flatten() {
            let (Some(id), Some("PLACEMENT_STATUS_REQUESTED")) =
                (row["placement_id"].as_str(), row["status"].as_str())
            else {
                continue;
            };
            if let Some(p) = self
                .placements
                .get_mut(id)
                .filter(|p| p.state == Step::Offered && p.answer_at.is_none())
            {
                p.state = Step::Waiting;
            }
        }
    }

    /// The figures so far, on the progress bar (drawn only on a terminal) and, once a
    /// simulated day, as a log line.
    fn progress(&mut self, now: f64, days: f64, bar: &ProgressBar) {
        let waiting = self
            .placements
            .values()
            .filter(|p| matches!(p.state, Step::Waiting | Step::Offered))
            .count();
        let s = &self.summary;
        let figures = format!(
            "cases {} waiting {waiting} placed {} declines {} expiries {} discharged {} failed {} skipped {}",
            s.cases, s.placed, s.declines, s.expiries, s.discharges, s.errors, s.skipped
        );
        bar.set_position((now / DAY * 10.0) as u64);
        bar.set_message(figures.clone());
        let day = (now / DAY).floor() as u64;
        if day > self.logged_day {
            self.logged_day = day;
            tracing::info!(day, days, "{figures}");
        }
    }
}

/// A bar over the simulated days, in tenths of a day. Drawn on stderr when it is a
/// terminal; elsewhere (logs, CI) hidden, and the days are logged instead.
fn progress_bar(days: f64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(
        Some((days * 10.0).ceil() as u64),
        ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = ProgressStyle::with_template("day {pos:>4}/{len} (tenths) [{bar:30}] {msg}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

impl Summary {
    /// Counts a command's failure: refused and skipped apart, both failures.
    fn count<T>(&mut self, outcome: &Result<T, Failure>) {
        match outcome {
            Ok(_) => {}
            Err(Failure::Skipped) => self.skipped += 1,
            Err(Failure::Refused(_)) => {
                self.refused += 1;
                self.errors += 1;
            }
            Err(Failure::Failed(_)) => self.errors += 1,
        }
    }

    /// Counts only a refusal or a skip: for steps whose other failures are part of the
    /// simulation (an offer to a facility that just filled up becomes a decline).
    fn count_refusal<T>(&mut self, outcome: &Result<T, Failure>) {
        if matches!(outcome, Err(Failure::Skipped | Failure::Refused(_))) {
            self.count(outcome);
        }
    }

    fn report(&mut self, days: f64, speed: f64) -> String {
        self.waits.sort_by(f64::total_cmp);
        let minutes = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |m| format!("{m:.0} min"));
        format!(
            "simulated {days} days at {speed}x: {} placements of an earlier run carried on, \
             {} cases ({} deteriorated, {} cared for at home by a clinic), {} remote consults, \
             {} escalations and {} step-downs \
             from a bed, {} placements requested, {} placed, \
             time to placement median {} p90 {}, {} declines, {} offers left to expire, {} discharges, {} incidents of the scenario, {} failed commands \
             ({} refused), {} not sent while their organisation backed off after a refusal",
            self.adopted,
            self.cases,
            self.deteriorations,
            self.cared,
            self.consults,
            self.escalations,
            self.step_downs,
            self.placements,
            self.placed,
            minutes(percentile(&self.waits, 0.5)),
            minutes(percentile(&self.waits, 0.9)),
            self.declines,
            self.expiries,
            self.discharges,
            self.incidents,
            self.errors,
            self.refused,
            self.skipped,
        )
    }
}

/// A bed category as a view names it, as the simulation keeps it.
fn category_of(category: Option<&str>) -> &'static str {
    match category {
        Some("BED_CATEGORY_SEVERE") => "SEVERE",
        Some("BED_CATEGORY_MODERATE") => "MODERATE",
        Some("BED_CATEGORY_MILD") => "MILD",
        _ => "HOTEL_ROOM",
    }
}
