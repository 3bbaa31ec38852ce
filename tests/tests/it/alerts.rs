//! Server-side alerts (DESIGN.md §5.6): the scheduler raises each kind from a real
//! scenario, read from the read models, with the clock moved rather than waited for;
//! each alert reaches exactly its audience, unary and live; it is acknowledged once,
//! resolved when its cause goes away, escalated to HQ when critical and unacknowledged;
//! HQ's rules change the thresholds; two schedulers record each step once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use noroshi::read_models::ReadModels;
use noroshi_app::scheduler::{self, Round};
use noroshi_app::timers::system_principal;
use noroshi_projections::views::ViewSettings;
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    Actor, ApiOptions, CONSULT, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, MOBILE, PUBLIC,
    TestApi, cid,
};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::sse::Events;
use serde_json::{Value, json};
use time::OffsetDateTime;

/// A world whose clock the test moves: the API (and so every command) and the
/// scheduler's rounds read it.
struct World {
    api: TestApi,
    offset: Arc<AtomicI64>,
    _read_side: (Pipeline, NatsServer),
}

impl World {
    async fn start() -> Self {
        let offset = Arc::new(AtomicI64::new(0));
        let read = offset.clone();
        let clock: noroshi_app::Clock = Arc::new(move || {
            OffsetDateTime::now_utc() + time::Duration::seconds(read.load(Ordering::SeqCst))
        });
        let nats = NatsServer::start().await;
        let api = TestApi::with(ApiOptions {
            clock,
            views: ViewSettings {
                read_your_writes_wait: Duration::from_secs(10),
                ..ViewSettings::default()
            },
            ..ApiOptions::default()
        })
        .await;
        api.seed().await;
        for (actor, facility) in [(HOSPITAL, "hofu-central"), (HOSPITAL_OTHER, "ube-medical")] {
            api.declare(actor, facility, pb::BedCategory::Moderate, 10, 10, 0)
                .await;
        }
        let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
        Self {
            api,
            offset,
            _read_side: (pipeline, nats),
        }
    }

    fn later(&self, by: time::Duration) {
        self.offset.fetch_add(by.whole_seconds(), Ordering::SeqCst);
    }

    /// Waits until the read models the scheduler reads have applied `results`.
    async fn fresh(&self, results: &[&pb::CommandResult]) {
        let versions = results
            .iter()
            .flat_map(|r| &r.streams)
            .map(|s| format!("{}:{}", s.stream_id, s.version))
            .collect::<Vec<_>>()
            .join(",");
        for view in [
            "placement_queue",
            "bed_board",
            "case_board",
            "consult_queue",
            "alerts",
            "bed_reconciliation",
        ] {
            let (status, answer) = self
                .api
                .http_get(
                    Some(HQ),
                    &format!("/api/v1/views/{view}?min_versions={versions}"),
                )
                .await;
            assert_eq!(status, 200, "{view}: {answer}");
        }
    }

    /// One scheduler round at the world's time.
    async fn round(&self) -> Round {
        scheduler::round(
            &self.api.handler,
            &ReadModels {
                pool: self.api.db.pool().clone(),
            },
            &system_principal().unwrap(),
        )
        .await
        .unwrap()
    }

    /// `actor`'s alerts, as the view answers them.
    async fn alerts(&self, actor: Actor) -> (u16, Vec<Value>) {
        let (status, answer) = self.api.http_get(Some(actor), "/api/v1/views/alerts").await;
        (
            status,
            answer["rows"].as_array().cloned().unwrap_or_default(),
        )
    }

    /// Waits until `actor`'s alert of `kind` satisfies `wanted`; returns it.
    async fn alert_of(&self, actor: Actor, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let (_, rows) = self.alerts(actor).await;
            if let Some(row) = rows
                .into_iter()
                .find(|r| r["kind"] == format!("ALERT_KIND_{kind}") && wanted(r))
            {
                return row;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} as wanted for {}",
                actor.organisation
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn kinds(&self, actor: Actor) -> Vec<String> {
        let (_, rows) = self.alerts(actor).await;
        rows.iter()
            .filter(|r| r["status"] != "ALERT_STATUS_RESOLVED")
            .map(|r| {
                r["kind"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches("ALERT_KIND_")
                    .to_owned()
            })
            .collect()
    }

    async fn acknowledge(&self, actor: Actor, alert_id: &str) -> (u16, Value) {
        self.api
            .http_post(
                Some(actor),
                "/api/v1/commands/AcknowledgeAlert",
                json!({"command_id": cid(), "alert_id": alert_id, "note": "電話で確認しました"})
                    .to_string(),
            )
            .await
    }
}

async fn raised_events(api: &TestApi) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'noroshi.v1.AlertRaised'")
        .fetch_one(api.db.pool())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_bed_held_past_its_deadline_tells_its_audience_once_until_the_patient_arrives() {
    let world = World::start().await;
    let api = &world.api;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement, "hofu-central").await;
    let accepted = api.accept(HOSPITAL, &placement).await.unwrap();
    world.fresh(&[&accepted]).await;
    assert_eq!(world.round().await, Round::default(), "nothing is due yet");
    let mut hospital_live = Events::open(api, HOSPITAL, "/api/v1/views/alerts/stream").await;
    let mut other_live = Events::open(api, HOSPITAL_OTHER, "/api/v1/views/alerts/stream").await;
    for live in [&mut hospital_live, &mut other_live] {
        let (name, snapshot) = live.next(Duration::from_secs(10)).await.unwrap();
        assert_eq!((name.as_str(), &snapshot["rows"]), ("snapshot", &json!([])));
    }

    // Seven hours on, the six-hour hold is overdue (the flag DESIGN.md §5.3 promised).
    world.later(time::Duration::hours(7));
    let done = world.round().await;
    assert_eq!(done.raised, 1, "HOLD_OVERDUE alone: {done:?}");
    let alert = world.alert_of(HOSPITAL, "HOLD_OVERDUE", |_| true).await;
    assert_eq!(alert["severity"], "ALERT_SEVERITY_WARNING");
    assert_eq!(alert["status"], "ALERT_STATUS_OPEN");
    assert_eq!(alert["subject_kind"], "ALERT_SUBJECT_KIND_PLACEMENT");
    assert_eq!(alert["subject_id"], placement.as_str());
    assert_eq!(alert["case_id"], case_id.as_str());
    let alert_id = alert["alert_id"].as_str().unwrap().to_owned();
    // Its audience: the hospital holding the bed, the case's health center, HQ.
    for actor in [HC, HQ] {
        world
            .alert_of(actor, "HOLD_OVERDUE", |r| {
                r["alert_id"] == alert_id.as_str()
            })
            .await;
    }
    for actor in [HOSPITAL_OTHER, HC_OTHER, HOTEL, CONSULT, MOBILE] {
        assert!(
            !world
                .kinds(actor)
                .await
                .contains(&"HOLD_OVERDUE".to_owned()),
            "{}",
            actor.organisation
        );
    }
    assert_eq!(world.alerts(PUBLIC).await.0, 403);
    // Live: the hospital hears of it; the other hospital hears nothing.
    let (name, delta) = hospital_live.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "delta", "{delta}");
    assert!(delta.to_string().contains(&alert_id), "{delta}");
    assert!(other_live.next(Duration::from_secs(2)).await.is_none());

    // A second round, and a second scheduler at once, raise nothing more.
    let before = raised_events(api).await;
    let (a, b) = tokio::join!(world.round(), world.round());
    assert_eq!((a.raised, b.raised), (0, 0));
    assert_eq!(raised_events(api).await, before);

    // Acknowledged once, with two people clicking at the same moment.
    let (first, second) = tokio::join!(
        world.acknowledge(HOSPITAL, &alert_id),
        world.acknowledge(HC, &alert_id)
    );
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 412], "{first:?} {second:?}");
    let refused = if first.0 == 412 { &first.1 } else { &second.1 };
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("acknowledged already by"),
        "{refused}"
    );
    let (status, _) = world.acknowledge(HOSPITAL_OTHER, &alert_id).await;
    assert_eq!(status, 403, "outside the audience");
    let (status, _) = world
        .acknowledge(HQ, &uuid::Uuid::now_v7().to_string())
        .await;
    assert_eq!(status, 403, "an unknown alert reveals nothing");
    let acknowledged = world
        .alert_of(HQ, "HOLD_OVERDUE", |r| {
            r["status"] == "ALERT_STATUS_ACKNOWLEDGED"
        })
        .await;
    assert_eq!(acknowledged["acknowledgement_note"], "電話で確認しました");
    assert!(acknowledged["acknowledged_by"].as_str().is_some());

    // The patient arrives: the cause went away, the alert is resolved.
    api.transport(&placement).await;
    let arrived = api.arrive(HOSPITAL, &placement).await;
    world.fresh(&[&arrived]).await;
    let done = world.round().await;
    assert!(done.resolved >= 1, "{done:?}");
    let resolved = world
        .alert_of(HC, "HOLD_OVERDUE", |r| {
            r["status"] == "ALERT_STATUS_RESOLVED"
        })
        .await;
    assert!(resolved["resolved_at"].is_string());
    // And the case's timeline shows the alert's life.
    let (status, timeline) = api
        .http_get(
            Some(HC),
            &format!("/api/v1/views/timeline?case_id={case_id}"),
        )
        .await;
    assert_eq!(status, 200, "{timeline}");
    let types: Vec<&str> = timeline["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    for step in ["AlertRaised", "AlertAcknowledged", "AlertResolved"] {
        assert!(types.contains(&step), "{step} in {types:?}");
    }
}

/// `SetAlertRule` over HTTP as `actor`.
async fn set_rule(api: &TestApi, actor: Actor, rule: Value) -> (u16, Value) {
    api.http_post(
        Some(actor),
        "/api/v1/commands/SetAlertRule",
        json!({"command_id": cid(), "rule": rule}).to_string(),
    )
    .await
}

#[tokio::test]
async fn hq_s_rules_set_the_thresholds_and_a_critical_alert_nobody_acknowledges_reaches_hq() {
    let world = World::start().await;
    let api = &world.api;
    // Only HQ sets rules; a bad one names its field and writes nothing.
    let occupancy = json!({"occupancy": {"medical_area": "3504", "category": "BED_CATEGORY_MODERATE",
        "warning_percent": 20, "critical_percent": 40}});
    let (status, _) = set_rule(api, HC, occupancy.clone()).await;
    assert_eq!(status, 403);
    let before = api.db.event_count().await;
    for (bad, field) in [
        (
            json!({"occupancy": {"medical_area": "3504", "category": "BED_CATEGORY_MODERATE",
                "warning_percent": 70, "critical_percent": 50}}),
            "rule.occupancy.critical_percent",
        ),
        (
            json!({"occupancy": {"medical_area": "nowhere", "category": "BED_CATEGORY_MODERATE",
                "warning_percent": 50, "critical_percent": 70}}),
            "rule.occupancy.medical_area",
        ),
        (
            json!({"escalation_delay": {"minutes": 0}}),
            "rule.escalation_delay.minutes",
        ),
        (json!({}), "rule"),
    ] {
        let (status, answer) = set_rule(api, HQ, bad).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["violations"][0]["field"], field, "{answer}");
    }
    assert_eq!(api.db.event_count().await, before);
    let (status, set) = set_rule(api, HQ, occupancy.clone()).await;
    assert_eq!(status, 200, "{set}");
    let (status, again) = set_rule(api, HQ, occupancy.clone()).await;
    assert_eq!(status, 412, "the same rule again: {again}");
    // The rules in force: HQ's own and the defaults of the rest; HQ's alone to read.
    let (status, in_force) = api.http_get(Some(HQ), "/api/v1/alert-rules").await;
    assert_eq!(status, 200, "{in_force}");
    let rules = in_force["rules"].as_array().unwrap();
    assert!(rules.contains(&occupancy), "{in_force}");
    assert!(
        rules.contains(
            &json!({"occupancy": {"medical_area": "", "category": "BED_CATEGORY_MODERATE",
        "warning_percent": 50, "critical_percent": 70}})
        ),
        "{in_force}"
    );
    assert!(
        rules.contains(&json!({"escalation_delay": {"minutes": 15}})),
        "{in_force}"
    );
    let (status, _) = api.http_get(Some(HC), "/api/v1/alert-rules").await;
    assert_eq!(status, 403);

    // hofu-central (area 3504) fills 3 of its 10 moderate beds: 30 %, over HQ's 20 %
    // warning, under its 40 % critical; ube-medical (3505, default 50/70) stays empty.
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            7,
            3,
        )
        .await;
    world.fresh(&[&declared]).await;
    world.round().await;
    let warning = world.alert_of(HQ, "OCCUPANCY_THRESHOLD", |_| true).await;
    assert_eq!(warning["severity"], "ALERT_SEVERITY_WARNING", "{warning}");
    assert_eq!(warning["subject_id"], "3504/MODERATE");
    assert!(
        !world
            .kinds(HOSPITAL)
            .await
            .contains(&"OCCUPANCY_THRESHOLD".to_owned())
    );
    // 5 of 10 is over 40 %: the critical alert; the warning's cause went away.
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            5,
            5,
        )
        .await;
    world.fresh(&[&declared]).await;
    let done = world.round().await;
    assert_eq!((done.raised, done.resolved), (1, 1), "{done:?}");
    world
        .alert_of(HQ, "OCCUPANCY_THRESHOLD", |r| {
            r["severity"] == "ALERT_SEVERITY_CRITICAL" && r["status"] == "ALERT_STATUS_OPEN"
        })
        .await;

    // A patient at home deteriorates: the health center is told, HQ not yet.
    let case_id = api.report_case(pb::Severity::Mild).await;
    let observed = api
        .cases()
        .record_observation(noroshi_tests::api::authed(
            HC,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                spo2_percent: 92,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    world.fresh(&[&observed]).await;
    world.round().await;
    let deterioration = world.alert_of(HC, "DETERIORATION", |_| true).await;
    assert_eq!(deterioration["severity"], "ALERT_SEVERITY_CRITICAL");
    assert!(!world.kinds(HQ).await.contains(&"DETERIORATION".to_owned()));
    assert!(
        !world
            .kinds(HC_OTHER)
            .await
            .contains(&"DETERIORATION".to_owned())
    );
    // Unacknowledged for the escalation delay (15 minutes by default): HQ is told.
    world.later(time::Duration::minutes(16));
    let done = world.round().await;
    assert!(done.escalated >= 1, "{done:?}");
    let escalated = world
        .alert_of(HQ, "DETERIORATION", |r| r["escalated_at"].is_string())
        .await;
    assert_eq!(escalated["alert_id"], deterioration["alert_id"]);
    // A new triage clears the flag: resolved.
    let triaged = api.triage(&case_id, pb::Severity::ModerateIi).await;
    world.fresh(&[&triaged]).await;
    world.round().await;
    world
        .alert_of(HC, "DETERIORATION", |r| {
            r["status"] == "ALERT_STATUS_RESOLVED"
        })
        .await;
}

#[tokio::test]
async fn offers_transport_waiting_consults_and_stale_capacity_each_raise_their_alert() {
    let world = World::start().await;
    let api = &world.api;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    let offered = api.offer(&placement, "hofu-central").await;
    world.fresh(&[&offered]).await;
    // Near the offer's deadline (30 minutes by default): the offered hospital only.
    world.later(time::Duration::minutes(25));
    world.round().await;
    world
        .alert_of(HOSPITAL, "OFFER_DEADLINE_NEAR", |_| true)
        .await;
    assert!(
        !world
            .kinds(HOSPITAL_OTHER)
            .await
            .contains(&"OFFER_DEADLINE_NEAR".to_owned())
    );
    assert!(
        !world
            .kinds(HQ)
            .await
            .contains(&"OFFER_DEADLINE_NEAR".to_owned())
    );
    // It expires unanswered: the reminder is resolved; HQ and the health center learn
    // the patient waits for another offer.
    world.later(time::Duration::minutes(6));
    let expired = noroshi_app::scheduler::expire_offers(
        &api.handler,
        &ReadModels {
            pool: api.db.pool().clone(),
        },
        &system_principal().unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(
        expired, 1,
        "the scheduler expires the offer it reads is due"
    );
    let versions = format!("placement-{placement}:3");
    let (status, _) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={versions}"),
        )
        .await;
    assert_eq!(status, 200);
    let done = world.round().await;
    assert_eq!((done.raised, done.resolved), (1, 1), "{done:?}");
    for actor in [HQ, HC] {
        world.alert_of(actor, "OFFER_EXPIRED", |_| true).await;
    }
    world
        .alert_of(HOSPITAL, "OFFER_DEADLINE_NEAR", |r| {
            r["status"] == "ALERT_STATUS_RESOLVED"
        })
        .await;

    // Three hours without an accepted offer (the default limit): waiting too long.
    world.later(time::Duration::hours(3));
    world.round().await;
    let waiting = world.alert_of(HQ, "WAITING_TOO_LONG", |_| true).await;
    assert_eq!(waiting["severity"], "ALERT_SEVERITY_CRITICAL");
    world.alert_of(HC, "WAITING_TOO_LONG", |_| true).await;

    // Offered again and accepted, with a pickup in ten minutes that passes without a
    // departure: transport late, for the health center and the receiving hospital.
    api.offer(&placement, "ube-medical").await;
    api.accept(HOSPITAL_OTHER, &placement).await.unwrap();
    let pickup = OffsetDateTime::now_utc()
        + time::Duration::seconds(world.offset.load(Ordering::SeqCst))
        + time::Duration::minutes(10);
    let arranged = api
        .placements()
        .arrange_transport(noroshi_tests::api::authed(
            HC,
            pb::ArrangeTransportRequest {
                command_id: cid(),
                placement_id: placement.clone(),
                vehicle: pb::Vehicle::Ambulance as i32,
                pickup_at: Some(noroshi_codec::timestamps::to_timestamp(pickup)),
                ..pb::ArrangeTransportRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    world.fresh(&[&arranged]).await;
    world.later(time::Duration::minutes(11));
    let done = world.round().await;
    assert!(done.resolved >= 2, "expired and waiting resolved: {done:?}");
    for actor in [HC, HOSPITAL_OTHER] {
        world.alert_of(actor, "TRANSPORT_LATE", |_| true).await;
    }
    assert!(
        !world
            .kinds(HOSPITAL)
            .await
            .contains(&"TRANSPORT_LATE".to_owned())
    );

    // An EMERGENCY consult nobody takes for ten minutes: every consult center, and the
    // requester.
    let resident = api.report_case(pb::Severity::Mild).await;
    let consult = api
        .consults()
        .request_consult(noroshi_tests::api::authed(
            HC,
            pb::RequestConsultRequest {
                command_id: cid(),
                case_id: resident,
                mode: pb::ConsultMode::DToP as i32,
                urgency: pb::ConsultUrgency::Emergency as i32,
                question: "呼吸苦".into(),
                contact: "0835-00-0000".into(),
                ..pb::RequestConsultRequest::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    world.fresh(&[&consult]).await;
    world.later(time::Duration::minutes(11));
    world.round().await;
    for actor in [CONSULT, HC] {
        let unanswered = world.alert_of(actor, "CONSULT_UNANSWERED", |_| true).await;
        assert_eq!(unanswered["severity"], "ALERT_SEVERITY_CRITICAL");
    }
    assert!(
        !world
            .kinds(HOSPITAL)
            .await
            .contains(&"CONSULT_UNANSWERED".to_owned())
    );

    // A day without a declaration: every facility's capacity is stale, for itself and HQ.
    world.later(time::Duration::hours(25));
    world.round().await;
    let stale = world.alert_of(HOSPITAL, "CAPACITY_STALE", |_| true).await;
    assert_eq!(stale["subject_id"], "hofu-central");
    assert_eq!(
        world
            .kinds(HOSPITAL)
            .await
            .iter()
            .filter(|k| *k == "CAPACITY_STALE")
            .count(),
        1,
        "its own only"
    );
    world
        .alert_of(HQ, "CAPACITY_STALE", |r| r["subject_id"] == "ube-medical")
        .await;
}

/// What a webhook receiver got: each request's headers of interest and body.
#[derive(Debug, Clone)]
struct Received {
    timestamp: String,
    signature: String,
    idempotency_key: String,
    body: Vec<u8>,
}

/// A webhook receiver on a free port that answers 503 while `down`, 200 otherwise, and
/// keeps every request.
async fn receiver() -> (
    String,
    Arc<std::sync::Mutex<Vec<Received>>>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    let got = Arc::new(std::sync::Mutex::new(Vec::new()));
    let down = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (kept, failing) = (got.clone(), down.clone());
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let (kept, failing) = (kept.clone(), failing.clone());
                async move {
                    let header = |name: &str| {
                        headers
                            .get(name)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    kept.lock().unwrap().push(Received {
                        timestamp: header("noroshi-timestamp"),
                        signature: header("noroshi-signature"),
                        idempotency_key: header("idempotency-key"),
                        body: body.to_vec(),
                    });
                    if failing.load(Ordering::SeqCst) {
                        axum::http::StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        axum::http::StatusCode::OK
                    }
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, got, down)
}

#[tokio::test]
async fn a_webhook_that_is_down_for_a_while_receives_every_alert_signed_once_it_is_back() {
    let world = World::start().await;
    let api = &world.api;
    let (url, got, down) = receiver().await;
    let register = |actor: Actor, body: Value| async move {
        api.http_post(Some(actor), "/api/v1/webhooks", body.to_string())
            .await
    };
    let (status, _) = register(HC, json!({"organisation_id": "hofu-hc", "url": url})).await;
    assert_eq!(status, 403, "a health center does not register endpoints");
    for (bad, field) in [
        (
            json!({"organisation_id": "hofu-hc", "url": "not a url"}),
            "url",
        ),
        (
            json!({"organisation_id": "hofu-hc", "url": "ftp://x.invalid/"}),
            "url",
        ),
        (
            json!({"organisation_id": "nowhere-hc", "url": url}),
            "organisation_id",
        ),
        (
            json!({"organisation_id": "hofu-hc", "url": url, "kinds": ["NOISE"]}),
            "kinds[0]",
        ),
    ] {
        let (status, answer) = register(HQ, bad).await;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["violations"][0]["field"], field, "{answer}");
    }
    let (status, registered) =
        register(HQ, json!({"organisation_id": "hofu-hc", "url": url})).await;
    assert_eq!(status, 201, "{registered}");
    let secret = registered["secret"].as_str().unwrap().to_owned();
    let webhook_id = registered["webhook"]["webhook_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Listed for its organisation, never with its secret; not for another.
    let (status, listed) = api.http_get(Some(HC), "/api/v1/webhooks").await;
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["webhooks"][0]["webhook_id"], webhook_id.as_str());
    assert!(
        !listed.to_string().contains(&secret),
        "the secret is shown once"
    );
    let (_, other) = api.http_get(Some(HC_OTHER), "/api/v1/webhooks").await;
    assert_eq!(other["webhooks"], json!([]));
    let audit: String = sqlx::query_scalar("SELECT string_agg(detail::text, ' ') FROM audit_log")
        .fetch_one(api.db.pool())
        .await
        .unwrap_or_default();
    assert!(!audit.contains(&secret), "the secret is not audited");

    // Two patients of hofu-hc deteriorate: two alerts of its audience.
    for spo2 in [92, 90] {
        let case_id = api.report_case(pb::Severity::Mild).await;
        let observed = api
            .cases()
            .record_observation(noroshi_tests::api::authed(
                HC,
                pb::RecordObservationRequest {
                    command_id: cid(),
                    case_id,
                    spo2_percent: spo2,
                    ..pb::RecordObservationRequest::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        world.fresh(&[&observed]).await;
    }
    world.round().await;
    let mut alerts = Vec::new();
    for _ in 0..200 {
        let (_, rows) = world.alerts(HC).await;
        alerts = rows
            .iter()
            .filter_map(|r| r["alert_id"].as_str().map(str::to_owned))
            .collect();
        if alerts.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alerts.len(), 2);
    let sender = noroshi_api::webhooks::Sender::new(Default::default()).unwrap();
    let now =
        || OffsetDateTime::now_utc() + time::Duration::seconds(world.offset.load(Ordering::SeqCst));
    // Down: three rounds, each after the backoff, each failing; the endpoint shows as
    // failing and its log says why.
    for _ in 0..3 {
        sender.round(api.db.pool(), now()).await.unwrap();
        world.later(time::Duration::minutes(1));
    }
    let (_, listed) = api.http_get(Some(HC), "/api/v1/webhooks").await;
    assert_eq!(listed["webhooks"][0]["failing"], true, "{listed}");
    assert_eq!(listed["webhooks"][0]["pending"], 2, "{listed}");
    let (status, log) = api
        .http_get(
            Some(HC),
            &format!("/api/v1/webhooks/{webhook_id}/deliveries"),
        )
        .await;
    assert_eq!(status, 200, "{log}");
    for delivery in log["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["status"], "PENDING", "{delivery}");
        assert_eq!(delivery["attempts"], 3, "{delivery}");
        assert_eq!(delivery["last_status_code"], 503, "{delivery}");
    }
    let (status, _) = api
        .http_get(
            Some(HC_OTHER),
            &format!("/api/v1/webhooks/{webhook_id}/deliveries"),
        )
        .await;
    assert_eq!(status, 404, "another organisation learns nothing of it");

    // Back up: both alerts arrive; nothing is sent again once delivered.
    down.store(false, Ordering::SeqCst);
    sender.round(api.db.pool(), now()).await.unwrap();
    world.later(time::Duration::hours(2));
    sender.round(api.db.pool(), now()).await.unwrap();
    let received = got.lock().unwrap().clone();
    assert_eq!(
        received.len(),
        8,
        "3 failed attempts and 1 delivery per alert"
    );
    for alert in &alerts {
        let attempts: Vec<&Received> = received
            .iter()
            .filter(|r| r.idempotency_key == *alert)
            .collect();
        assert_eq!(
            attempts.len(),
            4,
            "every attempt carries the alert id as its key"
        );
        let last = attempts.last().unwrap();
        let body: Value = serde_json::from_slice(&last.body).unwrap();
        assert_eq!(body["alert_id"], alert.as_str());
        assert_eq!(body["kind"], "ALERT_KIND_DETERIORATION");
        // The receiver's check: HMAC-SHA256 over "<timestamp>.<body>" with its secret.
        let timestamp: i64 = last.timestamp.parse().unwrap();
        assert_eq!(
            noroshi_api::webhooks::signature(&secret, timestamp, &last.body),
            last.signature
        );
        assert_ne!(
            noroshi_api::webhooks::signature("whsec_wrong", timestamp, &last.body),
            last.signature,
            "a wrong secret fails verification"
        );
    }
    let (_, log) = api
        .http_get(
            Some(HC),
            &format!("/api/v1/webhooks/{webhook_id}/deliveries"),
        )
        .await;
    for delivery in log["deliveries"].as_array().unwrap() {
        assert_eq!(delivery["status"], "DELIVERED", "{delivery}");
        assert_eq!(delivery["last_status_code"], 200, "{delivery}");
    }
    let (_, listed) = api.http_get(Some(HC), "/api/v1/webhooks").await;
    assert_eq!(listed["webhooks"][0]["failing"], false, "{listed}");
}

/// The row of `facility`'s MODERATE beds in `bed_reconciliation` as `actor` reads it.
async fn reconciled(world: &World, actor: Actor, query: &str) -> (u16, Value) {
    let (status, view) = world
        .api
        .http_get(
            Some(actor),
            &format!("/api/v1/views/bed_reconciliation?{query}"),
        )
        .await;
    let row = view["rows"]
        .as_array()
        .and_then(|rows| {
            rows.iter()
                .find(|r| {
                    r["facility_id"] == "hofu-central" && r["category"] == "BED_CATEGORY_MODERATE"
                })
                .cloned()
        })
        .unwrap_or(view);
    (status, row)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_facility_declaring_fewer_occupied_beds_than_patients_placed_raises_bed_mismatch() {
    let world = World::start().await;
    let api = &world.api;
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            20,
            20,
            0,
        )
        .await;
    // Twelve patients placed at Hofu Central through noroshi.
    let mut last = declared;
    for _ in 0..12 {
        let case = api.report_case(pb::Severity::ModerateI).await;
        let placement = api
            .request_placement(&case, pb::BedCategory::Moderate)
            .await;
        api.offer(&placement, "hofu-central").await;
        api.accept(HOSPITAL, &placement).await.unwrap();
        api.transport(&placement).await;
        last = api.arrive(HOSPITAL, &placement).await;
    }
    world.fresh(&[&last]).await;
    let (status, row) = reconciled(&world, HQ, "").await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        (row["occupied"].as_u64(), row["patients"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(row["mismatched"], false, "{row}");

    // The bed manager declares 10 occupied: two placed patients are not counted.
    let wrong = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            20,
            20,
            10,
        )
        .await;
    world.fresh(&[&wrong]).await;
    let (head, _) = noroshi_event_store::EventStore::new(api.db.pool().clone(), Default::default())
        .head()
        .await
        .unwrap();
    for actor in [HQ, HOSPITAL] {
        let (status, row) = reconciled(&world, actor, "").await;
        assert_eq!(status, 200, "{row}");
        assert_eq!(row["occupied"], 10, "{row}");
        assert_eq!(row["patients"], 12, "{row}");
        assert_eq!(row["unplaced"], -2, "{row}");
        assert_eq!(row["mismatched"], true, "{row}");
        assert!(row["mismatch_since"].is_string(), "{row}");
    }
    let (_, only) = world
        .api
        .http_get(
            Some(HQ),
            "/api/v1/views/bed_reconciliation?mismatched_only=true",
        )
        .await;
    assert_eq!(only["mismatches"], 1, "{only}");
    assert_eq!(only["rows"].as_array().map(Vec::len), Some(1), "{only}");
    // Another hospital, a health center and the public do not read it.
    for (actor, query) in [
        (HOSPITAL_OTHER, "facility_id=hofu-central"),
        (HC, ""),
        (PUBLIC, ""),
    ] {
        let (status, _) = reconciled(&world, actor, query).await;
        assert_eq!(status, 403, "{actor:?}");
    }

    // Not yet an alert; once it has lasted 30 minutes, HQ and the hospital hear of it.
    world.round().await;
    assert!(!world.kinds(HQ).await.contains(&"BED_MISMATCH".to_owned()));
    world.later(time::Duration::minutes(31));
    world.round().await;
    for actor in [HQ, HOSPITAL] {
        let alert = world.alert_of(actor, "BED_MISMATCH", |_| true).await;
        assert_eq!(alert["subject_id"], "hofu-central", "{alert}");
        assert!(
            alert["message"]
                .as_str()
                .unwrap()
                .contains("10 declared occupied for 12 patients"),
            "{alert}"
        );
    }
    assert!(
        !world
            .kinds(HOSPITAL_OTHER)
            .await
            .contains(&"BED_MISMATCH".to_owned())
    );

    // The figures agree again: the disagreement clears and so does the alert.
    let fixed = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            20,
            20,
            12,
        )
        .await;
    world.fresh(&[&fixed]).await;
    let (_, row) = reconciled(&world, HQ, "").await;
    assert_eq!(row["mismatched"], false, "{row}");
    assert!(row.get("mismatch_since").is_none(), "{row}");
    world.round().await;
    world
        .alert_of(HQ, "BED_MISMATCH", |r| {
            r["status"] == "ALERT_STATUS_RESOLVED"
        })
        .await;
    // More occupied beds than placed patients is not a disagreement.
    let more = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            20,
            20,
            14,
        )
        .await;
    world.fresh(&[&more]).await;
    let (_, row) = reconciled(&world, HQ, "").await;
    assert_eq!(
        (row["unplaced"].as_i64(), row["mismatched"].as_bool()),
        (Some(2), Some(false))
    );
    // ...and the past still shows the disagreement as it was.
    let (status, row) = reconciled(&world, HQ, &format!("as_of={head}")).await;
    assert_eq!(status, 200, "{row}");
    assert_eq!(
        (row["occupied"].as_u64(), row["mismatched"].as_bool()),
        (Some(10), Some(true))
    );
}
