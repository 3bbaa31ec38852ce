//! Projections fed by the real relay through a real nats-server: the read models equal
//! an independent recomputation from the event store, also after the runner is killed
//! mid-scenario and restarted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_domain::case::{Case, CaseEvent};
use noroshi_domain::facility::{Facility, FacilityEvent};
use noroshi_domain::placement::Placement;
use noroshi_domain::placement::PlacementRecord;
use noroshi_domain::values::PlacementStatus;
use noroshi_event_store::{EventStore, StoreLimits, StreamId};
use noroshi_identity::tokens::{TokenEntry, Tokens};
use noroshi_projections::timeline::{self, TimelineEntry};
use noroshi_projections::{View, bed_board, case_board, facility_inbox, placement_queue};
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    ACTORS, ADMIN, Actor, ApiOptions, CONSULT, HOFU, HOSPITAL, HOSPITAL_OTHER, HQ, TestApi, UBE,
    authed, cid, token_entry,
};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::{NatsServer, TestDatabase, eventually, noroshi_bin};
use uuid::Uuid;

/// Waits until the projection has applied every committed event of every stream it
/// reads.
async fn caught_up(db: &TestDatabase, projection: &str) {
    let pool = db.pool().clone();
    let view = View::parse(projection).expect("a view");
    eventually("the projection catches up", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM (SELECT stream_id, max(version) AS version FROM events \
                 WHERE split_part(stream_id, '-', 1) = ANY($2) GROUP BY stream_id) s \
                 WHERE projection_applied_version($1, s.stream_id) IS DISTINCT FROM s.version",
            )
            .bind(view.name())
            .bind(view.sources())
            .fetch_one(&pool)
            .await
            .unwrap();
            behind == 0
        }
    })
    .await;
}

/// (facility, category) → (secured, ready, occupied, held, acceptance, constraints,
/// declared_at in µs), recomputed from the store with the domain's own `evolve`.
type Figures = (u32, u32, u32, u32, String, Vec<String>, Option<i128>);

async fn recomputed(db: &TestDatabase) -> BTreeMap<(String, String), Figures> {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'facility-%' ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut expected = BTreeMap::new();
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let events: Vec<FacilityEvent> = store
            .read_stream(&stream_id, 1, 100_000)
            .await
            .unwrap()
            .iter()
            .map(|e| match decode(e).unwrap() {
                DomainEvent::Facility(event) => event,
                other => panic!("{other:?} on a facility stream"),
            })
            .collect();
        let facility = Facility::from_events(&events);
        for (category, beds) in &facility.beds {
            expected.insert(
                (stream_id.aggregate_id().to_owned(), category.to_string()),
                (
                    beds.secured,
                    beds.ready,
                    beds.occupied,
                    beds.held,
                    beds.acceptance.to_string(),
                    beds.constraints.iter().map(ToString::to_string).collect(),
                    beds.declared_at.map(|at| at.unix_timestamp_nanos() / 1000),
                ),
            );
        }
    }
    expected
}

/// placement id → (status, target, declined by, the case's current priority, whether HQ
/// overrode it and why, whether it deteriorated since its last triage, case owner, offer
/// and hold deadlines in µs) of every live
/// placement, recomputed from the store with the domain's own `evolve` (and the reason of
/// the last override not followed by a new triage).
type QueueEntry = (
    String,
    Option<String>,
    Vec<String>,
    (i32, bool, Option<String>, bool),
    Option<String>,
    Option<i128>,
    Option<i128>,
);

async fn recomputed_queue(db: &TestDatabase) -> BTreeMap<Uuid, QueueEntry> {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'placement-%' OR stream_id LIKE 'case-%'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut cases = BTreeMap::new();
    let mut reasons = BTreeMap::new();
    let mut placements = BTreeMap::new();
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let id = Uuid::parse_str(stream_id.aggregate_id()).unwrap();
        let (mut placement, mut case) = (Placement::default(), Case::default());
        let mut reason = None;
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            match decode(&recorded).unwrap() {
                DomainEvent::Case(event) => {
                    match &event {
                        CaseEvent::PriorityOverridden { reason: why, .. } => {
                            reason = Some(why.to_string());
                        }
                        CaseEvent::Triaged { .. } => reason = None,
                        _ => {}
                    }
                    case.evolve(&event);
                }
                DomainEvent::Placement(event) => placement.evolve(&event),
                _ => {}
            }
        }
        if let Some(record) = placement.record {
            placements.insert(id, record);
        }
        if let Some(record) = case.record {
            cases.insert(id, record);
            reasons.insert(id, reason);
        }
    }
    let micros = |at: Option<time::OffsetDateTime>| at.map(|at| at.unix_timestamp_nanos() / 1000);
    placements
        .into_iter()
        .filter(|(_, record)| record.status.is_live())
        .map(|(id, record)| {
            (
                id,
                (
                    record.status.to_string(),
                    record.target.map(|t| t.to_string()),
                    record.declined_by.iter().map(ToString::to_string).collect(),
                    (
                        i32::from(cases[&record.case_id].priority.get()),
                        cases[&record.case_id].priority_overridden,
                        reasons[&record.case_id].clone(),
                        cases[&record.case_id].deteriorated,
                    ),
                    Some(cases[&record.case_id].report.health_center_id.to_string()),
                    micros(record.offer_deadline),
                    micros(record.hold_deadline),
                ),
            )
        })
        .collect()
}

/// case id → (owner, status) of every case, recomputed with `Case::evolve`.
async fn recomputed_case_status(db: &TestDatabase) -> BTreeMap<Uuid, (String, String)> {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'case-%'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut cases = BTreeMap::new();
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let mut case = Case::default();
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            if let DomainEvent::Case(event) = decode(&recorded).unwrap() {
                case.evolve(&event);
            }
        }
        let record = case.record.unwrap();
        cases.insert(
            Uuid::parse_str(stream_id.aggregate_id()).unwrap(),
            (
                record.report.health_center_id.to_string(),
                record.status.to_string(),
            ),
        );
    }
    cases
}

async fn projected_case_status(db: &TestDatabase) -> BTreeMap<Uuid, (String, String)> {
    let rows: Vec<(Uuid, String, String)> =
        sqlx::query_as("SELECT case_id, health_center_id, status FROM case_status")
            .fetch_all(db.pool())
            .await
            .unwrap();
    rows.into_iter()
        .map(|(id, owner, status)| (id, (owner, status)))
        .collect()
}

async fn projected_queue(db: &TestDatabase) -> BTreeMap<Uuid, QueueEntry> {
    let micros = |at: Option<time::OffsetDateTime>| at.map(|at| at.unix_timestamp_nanos() / 1000);
    placement_queue::rows(db.pool(), None)
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                row.placement_id,
                (
                    row.status,
                    row.target,
                    row.declined_by,
                    (
                        row.priority,
                        row.priority_overridden,
                        row.priority_reason,
                        row.deteriorated_at.is_some(),
                    ),
                    row.case_owner,
                    micros(row.offer_deadline),
                    micros(row.hold_deadline),
                ),
            )
        })
        .collect()
}

async fn projected(db: &TestDatabase) -> BTreeMap<(String, String), Figures> {
    bed_board::rows(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|row| {
            (
                (row.facility_id.clone(), row.category.clone()),
                (
                    row.secured,
                    row.ready,
                    row.occupied,
                    row.held,
                    row.acceptance.clone(),
                    row.constraints.clone(),
                    row.declared_at.map(|at| at.unix_timestamp_nanos() / 1000),
                ),
            )
        })
        .collect()
}

/// Every placement and every case, folded from the store with the domain's `evolve`.
async fn folded(db: &TestDatabase) -> (BTreeMap<Uuid, PlacementRecord>, BTreeMap<Uuid, Case>) {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'placement-%' OR stream_id LIKE 'case-%'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let (mut placements, mut cases) = (BTreeMap::new(), BTreeMap::new());
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let id = Uuid::parse_str(stream_id.aggregate_id()).unwrap();
        let (mut placement, mut case) = (Placement::default(), Case::default());
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            match decode(&recorded).unwrap() {
                DomainEvent::Case(event) => case.evolve(&event),
                DomainEvent::Placement(event) => placement.evolve(&event),
                _ => {}
            }
        }
        if let Some(record) = placement.record {
            placements.insert(id, record);
        }
        if case.record.is_some() {
            cases.insert(id, case);
        }
    }
    (placements, cases)
}

/// case → (owner, status, severity, priority, latest placement, its state).
type CaseEntry = (String, String, String, i32, Option<Uuid>, Option<String>);

async fn recomputed_case_board(db: &TestDatabase) -> BTreeMap<Uuid, CaseEntry> {
    let (placements, cases) = folded(db).await;
    cases
        .into_iter()
        .map(|(id, case)| {
            let record = case.record.unwrap();
            let latest = placements
                .iter()
                .filter(|(_, p)| p.case_id == id)
                .max_by_key(|(_, p)| p.requested_at);
            let state = latest.map(|(_, p)| {
                if p.discharged {
                    "DISCHARGED".to_owned()
                } else {
                    p.status.to_string()
                }
            });
            (
                id,
                (
                    record.report.health_center_id.to_string(),
                    record.status.to_string(),
                    record.severity.to_string(),
                    i32::from(record.priority.get()),
                    latest.map(|(pid, _)| *pid),
                    state,
                ),
            )
        })
        .collect()
}

async fn projected_case_board(db: &TestDatabase) -> BTreeMap<Uuid, CaseEntry> {
    case_board::all(db.pool())
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.case_id,
                (
                    r.health_center_id,
                    r.status,
                    r.severity,
                    r.priority,
                    r.placement_id,
                    r.placement_status,
                ),
            )
        })
        .collect()
}

/// placement → (facility, state, case) of everything in some facility's inbox.
type InboxEntry = (String, String, Uuid);

async fn recomputed_inbox(db: &TestDatabase) -> BTreeMap<Uuid, InboxEntry> {
    let (placements, _) = folded(db).await;
    placements
        .into_iter()
        .filter(|(_, p)| {
            !p.discharged
                && !matches!(
                    p.status,
                    PlacementStatus::Requested | PlacementStatus::Cancelled
                )
        })
        .map(|(id, p)| {
            (
                id,
                (
                    p.target.unwrap().to_string(),
                    p.status.to_string(),
                    p.case_id,
                ),
            )
        })
        .collect()
}

async fn projected_inbox(db: &TestDatabase) -> BTreeMap<Uuid, InboxEntry> {
    facility_inbox::rows(db.pool(), None)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.placement_id, (r.target, r.status, r.case_id)))
        .collect()
}

/// position → (stream, case) of every case and placement event.
async fn recomputed_timeline(db: &TestDatabase) -> BTreeMap<i64, (String, Option<Uuid>)> {
    let (placements, _) = folded(db).await;
    // The case each alert is about, if any: only those are in a case's timeline.
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let mut alert_cases = BTreeMap::new();
    let alert_streams: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'alert-%'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    for stream in alert_streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let mut alert = noroshi_domain::alert::Alert::default();
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            if let DomainEvent::Alert(event) = decode(&recorded).unwrap() {
                alert.evolve(&event);
            }
        }
        if let Some(case) = alert.record.and_then(|r| r.alert.case_id) {
            alert_cases.insert(Uuid::parse_str(stream_id.aggregate_id()).unwrap(), case);
        }
    }
    let events: Vec<(i64, String)> = sqlx::query_as(
        "SELECT position, stream_id FROM events \
         WHERE stream_id LIKE 'placement-%' OR stream_id LIKE 'case-%' \
           OR stream_id LIKE 'alert-%'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    events
        .into_iter()
        .filter_map(|(position, stream)| {
            let id = StreamId::parse(&stream).unwrap().aggregate_id().to_owned();
            let id = Uuid::parse_str(&id).unwrap();
            let case = if stream.starts_with("case-") {
                Some(id)
            } else if stream.starts_with("alert-") {
                Some(*alert_cases.get(&id)?)
            } else {
                placements.get(&id).map(|p| p.case_id)
            };
            Some((position, (stream, case)))
        })
        .collect()
}

/// position → (stream, case) of every entry of every case's timeline; no event is in two.
async fn projected_timeline(db: &TestDatabase) -> BTreeMap<i64, (String, Option<Uuid>)> {
    let mut projected = BTreeMap::new();
    for (case, entries) in timelines(db).await {
        for entry in entries {
            let position = entry.position;
            let before = projected.insert(position, (entry.stream_id, Some(case)));
            assert!(before.is_none(), "position {position} is in two timelines");
        }
    }
    projected
}

/// Every case's whole timeline, read as the API reads it: the streams of the case and its
/// placements, each up to the version the projection applied, from the event store.
async fn timelines(db: &TestDatabase) -> BTreeMap<Uuid, Vec<TimelineEntry>> {
    let cases: Vec<Uuid> =
        sqlx::query_scalar("SELECT subject_id FROM timeline_subjects WHERE kind = 'CASE'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let store = db.store();
    let mut timelines = BTreeMap::new();
    for case in cases {
        let ranges: Vec<_> = timeline::streams(db.pool(), case, "CASE")
            .await
            .unwrap()
            .into_iter()
            .map(|(stream, applied)| (stream, 1..=applied))
            .collect();
        let entries = store
            .read_streams(&ranges, 0, u32::MAX)
            .await
            .unwrap()
            .iter()
            .map(|recorded| TimelineEntry::of(recorded, &decode(recorded).unwrap()))
            .collect();
        timelines.insert(case, entries);
    }
    timelines
}

/// Every view of beds, placements and cases equals its recomputation from the store.
async fn views_equal_their_recomputation(db: &TestDatabase) {
    assert_eq!(projected(db).await, recomputed(db).await);
    assert_eq!(projected_queue(db).await, recomputed_queue(db).await);
    assert_eq!(
        projected_case_board(db).await,
        recomputed_case_board(db).await
    );
    assert_eq!(projected_inbox(db).await, recomputed_inbox(db).await);
    assert_eq!(projected_timeline(db).await, recomputed_timeline(db).await);
    assert_eq!(projected_consults(db).await, recomputed_consults(db).await);
    assert_eq!(projected_alerts(db).await, recomputed_alerts(db).await);
}

/// alert id → (kind, severity, status, escalated, acknowledged by, resolved) of every alert.
type AlertEntry = (String, String, String, bool, Option<String>, bool);

/// Every alert recomputed from the store with `Alert::evolve`.
async fn recomputed_alerts(db: &TestDatabase) -> BTreeMap<Uuid, AlertEntry> {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'alert-%'")
            .fetch_all(db.pool())
            .await
            .unwrap();
    let mut alerts = BTreeMap::new();
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let mut alert = noroshi_domain::alert::Alert::default();
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            if let DomainEvent::Alert(event) = decode(&recorded).unwrap() {
                alert.evolve(&event);
            }
        }
        let record = alert.record.unwrap();
        alerts.insert(
            Uuid::parse_str(stream_id.aggregate_id()).unwrap(),
            (
                record.alert.kind.to_string(),
                record.alert.severity.to_string(),
                record.status.to_string(),
                record.escalated_at.is_some(),
                record.acknowledged.map(|a| a.by.to_string()),
                record.resolved_at.is_some(),
            ),
        );
    }
    alerts
}

async fn projected_alerts(db: &TestDatabase) -> BTreeMap<Uuid, AlertEntry> {
    sqlx::query_as::<_, (Uuid, String, String, String, bool, Option<String>, bool)>(
        "SELECT alert_id, kind, severity, status, escalated_at IS NOT NULL, acknowledged_by,            resolved_at IS NOT NULL FROM alerts",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|(id, kind, severity, status, escalated, by, resolved)| {
        (id, (kind, severity, status, escalated, by, resolved))
    })
    .collect()
}

/// consult id → (case, status, center, recommendation, escalation) of every consult.
type ConsultEntry = (Uuid, String, Option<String>, Option<String>, Option<Uuid>);

/// Every consult recomputed from the store with `Consult::evolve`.
async fn recomputed_consults(db: &TestDatabase) -> BTreeMap<Uuid, ConsultEntry> {
    let store = EventStore::new(db.pool().clone(), StoreLimits::default());
    let streams: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT stream_id FROM events WHERE stream_id LIKE 'consult-%'",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let mut consults = BTreeMap::new();
    for stream in streams {
        let stream_id = StreamId::parse(&stream).unwrap();
        let mut consult = noroshi_domain::consult::Consult::default();
        for recorded in store.read_stream(&stream_id, 1, 100_000).await.unwrap() {
            if let DomainEvent::Consult(event) = decode(&recorded).unwrap() {
                consult.evolve(&event);
            }
        }
        let record = consult.record.unwrap();
        consults.insert(
            Uuid::parse_str(stream_id.aggregate_id()).unwrap(),
            (
                record.request.case_id,
                record.status.to_string(),
                record.center.map(|c| c.to_string()),
                record.recommendation.map(|r| r.to_string()),
                record.escalated_to,
            ),
        );
    }
    consults
}

async fn projected_consults(db: &TestDatabase) -> BTreeMap<Uuid, ConsultEntry> {
    sqlx::query_as::<
        _,
        (
            Uuid,
            Uuid,
            String,
            Option<String>,
            Option<String>,
            Option<Uuid>,
        ),
    >(
        "SELECT consult_id, case_id, status, center, recommendation, escalated_to \
         FROM consult_queue",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
    .into_iter()
    .map(|(id, case, status, center, recommendation, escalated)| {
        (id, (case, status, center, recommendation, escalated))
    })
    .collect()
}

/// Every read model as comparable values, to check a rebuild against the live views.
async fn every_view(db: &TestDatabase) -> String {
    format!(
        "{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}\n{:?}",
        projected(db).await,
        projected_queue(db).await,
        case_board::all(db.pool()).await.unwrap(),
        facility_inbox::rows(db.pool(), None).await.unwrap(),
        timelines(db).await,
        sqlx::query_as::<_, (Uuid, String, Uuid, Option<String>, Vec<String>)>(
            "SELECT subject_id, kind, case_id, case_owner, facilities FROM timeline_subjects \
             ORDER BY subject_id"
        )
        .fetch_all(db.pool())
        .await
        .unwrap(),
        projected_case_status(db).await,
        sqlx::query_as::<_, (Uuid, String, Option<i32>, Option<String>)>(
            "SELECT q.consult_id, q.status, c.last_spo2, c.severity FROM consult_queue q \
             LEFT JOIN consult_queue_cases c USING (case_id) ORDER BY q.consult_id"
        )
        .fetch_all(db.pool())
        .await
        .unwrap(),
        projected_alerts(db).await,
        sqlx::query_as::<_, (Uuid, Option<String>, String, bool, bool, bool, bool)>(
            "SELECT placement_id, (SELECT severity FROM placement_sla_cases c \
               WHERE c.case_id = p.case_id), requested_by, first_offered_at IS NOT NULL, \
             accepted_at IS NOT NULL, arrived_at IS NOT NULL, cancelled_at IS NOT NULL \
             FROM placement_sla p ORDER BY placement_id"
        )
        .fetch_all(db.pool())
        .await
        .unwrap(),
        sqlx::query_as::<_, (Uuid, String, String)>(
            "SELECT placement_id, facility_id, reason FROM placement_sla_declines \
             ORDER BY placement_id, declined_at, facility_id"
        )
        .fetch_all(db.pool())
        .await
        .unwrap(),
        noroshi_projections::bed_reconciliation::rows(db.pool(), None)
            .await
            .unwrap(),
    )
}

/// Where every projection stands: its checkpoint and the versions it has applied.
async fn checkpoints(db: &TestDatabase) -> Vec<(String, i64, i64, i64, i64)> {
    sqlx::query_as(
        "SELECT c.projection, c.stream_sequence, c.position, \
                count(v.stream_id), coalesce(sum(v.version), 0)::bigint \
         FROM projection_checkpoints c \
         LEFT JOIN projection_applied_versions v ON v.projection = c.projection \
         GROUP BY c.projection, c.stream_sequence, c.position ORDER BY c.projection",
    )
    .fetch_all(db.pool())
    .await
    .unwrap()
}

/// `noroshi rebuild --all --from <from>`, the real binary: every view rebuilt. In chunks
/// of 50 events, so that the scenario's events reach the views in many chunks, as a long
/// log's do, and rows written for one chunk are found again for the next.
async fn rebuild_all(db: &TestDatabase, nats: &NatsServer, from: &str) {
    // Asynchronously: runners that are stopping release their leadership on this runtime.
    let output = tokio::process::Command::new(noroshi_bin())
        .args(["--log", "info", "rebuild", "--all", "--from", from])
        .args(["--chunk-events", "50"])
        .env("NOROSHI_DATABASE_URL", db.url())
        .env("NOROSHI_NATS_URL", nats.url())
        .output()
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert_eq!(
        log.matches("view rebuilt").count(),
        View::ALL.len(),
        "{log}"
    );
    let rebuilding: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints WHERE rebuilding")
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(rebuilding, 0);
    // One baseline holds the versions of every view rebuilt; the baselines of earlier
    // rebuilds, finished or killed, are gone with their versions.
    let baselines: Vec<(i64, i64, i64)> = sqlx::query_as(
        "SELECT s.baseline, \
           (SELECT count(*) FROM projection_checkpoints c WHERE c.baseline = s.baseline), \
           (SELECT count(*) FROM projection_baselines b WHERE b.baseline = s.baseline) \
         FROM projection_baseline_sets s",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    let streams: i64 = sqlx::query_scalar("SELECT count(DISTINCT stream_id) FROM events")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert!(
        matches!(baselines[..], [(_, views, versions)]
            if views == View::ALL.len() as i64 && versions > 0 && versions <= streams),
        "{baselines:?}"
    );
    let orphans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM projection_baselines WHERE baseline <> $1")
            .bind(baselines[0].0)
            .fetch_one(db.pool())
            .await
            .unwrap();
    assert_eq!(orphans, 0);
}

/// `noroshi rebuild --all` killed after every view has replayed the whole stream into its
/// transaction, just before the checkpoints are written: meanwhile readers see the views
/// as they were, and afterwards nothing has changed.
async fn interrupted_rebuild_changes_nothing(
    db: &TestDatabase,
    nats: &NatsServer,
    live_views: &str,
) {
    let before = checkpoints(db).await;
    assert_eq!(before.len(), View::ALL.len(), "{before:?}");
    // Writing a checkpoint waits for this lock: every view's rebuild stops right there.
    let mut hold = db.pool().begin().await.unwrap();
    sqlx::query("LOCK TABLE projection_checkpoints IN SHARE ROW EXCLUSIVE MODE")
        .execute(&mut *hold)
        .await
        .unwrap();
    let mut rebuild = tokio::process::Command::new(noroshi_bin())
        .args(["--log", "warn", "rebuild", "--all"])
        .env("NOROSHI_DATABASE_URL", db.url())
        .env("NOROSHI_NATS_URL", nats.url())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let waiting = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() \
                   AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO projection_checkpoints%'";
    let pool = db.pool().clone();
    eventually(
        "every view's rebuild waits to write its checkpoint",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let pids: Vec<i32> = sqlx::query_scalar(waiting).fetch_all(&pool).await.unwrap();
                pids.len() == View::ALL.len()
            }
        },
    )
    .await;
    let pids: Vec<i32> = sqlx::query_scalar(waiting)
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert!(
        every_view(db).await == live_views,
        "readers see the views as they were while a rebuild runs"
    );

    rebuild.start_kill().unwrap();
    rebuild.wait().await.unwrap();
    hold.rollback().await.unwrap();
    // The rebuild's sessions end without a commit once they notice their client is gone.
    eventually(
        "the killed rebuild's sessions end",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            let pids = pids.clone();
            async move {
                let left: i64 =
                    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1)")
                        .bind(&pids)
                        .fetch_one(&pool)
                        .await
                        .unwrap();
                left == 0
            }
        },
    )
    .await;
    assert!(
        every_view(db).await == live_views,
        "an interrupted rebuild leaves every view as it was"
    );
    assert_eq!(checkpoints(db).await, before);
}

/// The seed's two hospitals declare their moderate beds, which the episodes fill.
async fn declare_moderate_beds(api: &TestApi) {
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        30,
        12,
        3,
    )
    .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        20,
        9,
        1,
    )
    .await;
}

/// One patient's way through the system; `n` picks the hospital among `hospitals` and
/// how far it goes.
async fn episode(api: Arc<TestApi>, hospitals: Arc<Vec<Actor>>, n: usize) {
    let hospital = hospitals[n % hospitals.len()];
    let other = hospitals[(n + 7) % hospitals.len()];
    let (facility, other_facility) = (hospital.organisation, other.organisation);
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    // While it waits, the case's priority moves: the queue follows it.
    match n % 5 {
        1 => {
            api.triage(&case_id, pb::Severity::Severe).await;
        }
        2 => {
            api.override_priority(&case_id, 1).await;
        }
        3 => {
            api.override_priority(&case_id, 2).await;
            api.triage(&case_id, pb::Severity::Mild).await;
        }
        _ => {}
    }
    if n.is_multiple_of(3) {
        // First offered elsewhere, and declined there.
        api.offer(&placement_id, other_facility).await;
        api.decline(other, &placement_id).await;
        if n.is_multiple_of(6) {
            // Left waiting for a new offer, with the decline on record.
            return;
        }
    }
    api.offer(&placement_id, facility).await;
    if api.accept(hospital, &placement_id).await.is_err() {
        // No free bed left: HQ withdraws the request.
        api.cancel(&placement_id).await;
        return;
    }
    match n % 4 {
        0 => {
            api.cancel(&placement_id).await;
        }
        1 => {} // The bed stays held.
        _ => {
            api.transport(&placement_id).await;
            api.arrive(hospital, &placement_id).await;
            if n % 4 == 3 {
                api.discharge(hospital, &placement_id, pb::DischargeOutcome::Recovered)
                    .await;
            } else if n % 8 == 2 {
                transfer(&api, hospital, other, &case_id, n).await;
            } else if n % 8 == 6 {
                consult(&api, hospital, &case_id, n).await;
            }
        }
    }
}

/// The hospital where the patient is records a low SpO₂ and asks for a transfer to
/// `other`, which keeps the bed until arrival (DESIGN.md §5.4); some transfers are
/// cancelled on the way.
async fn transfer(api: &TestApi, hospital: Actor, other: Actor, case_id: &str, n: usize) {
    api.cases()
        .record_observation(authed(
            hospital,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.into(),
                spo2_percent: 88,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .expect("the hospital records an observation");
    let transfer = api
        .placements()
        .request_placement(authed(
            hospital,
            pb::RequestPlacementRequest {
                command_id: cid(),
                case_id: case_id.into(),
                category: pb::BedCategory::Moderate as i32,
                ..pb::RequestPlacementRequest::default()
            },
        ))
        .await
        .expect("the hospital requests a transfer")
        .into_inner()
        .stream_id
        .trim_start_matches("placement-")
        .to_owned();
    if hospital.organisation == other.organisation {
        api.cancel(&transfer).await;
        return;
    }
    api.offer(&transfer, other.organisation).await;
    if api.accept(other, &transfer).await.is_err() || n % 16 == 10 {
        api.cancel(&transfer).await;
        return;
    }
    api.transport(&transfer).await;
    api.arrive(other, &transfer).await;
}

/// The hospital asks for a remote consultation of its patient, which a consult center
/// schedules; some are held and end with an escalation, others are cancelled.
async fn consult(api: &TestApi, hospital: Actor, case_id: &str, n: usize) {
    let mut consults = api.consults();
    let consult_id = consults
        .request_consult(authed(
            hospital,
            pb::RequestConsultRequest {
                command_id: cid(),
                case_id: case_id.into(),
                mode: pb::ConsultMode::DToD as i32,
                urgency: pb::ConsultUrgency::Routine as i32,
                question: "治療方針の相談".into(),
                contact: "0835-00-0000".into(),
                ..pb::RequestConsultRequest::default()
            },
        ))
        .await
        .expect("request a consult")
        .into_inner()
        .stream_id
        .trim_start_matches("consult-")
        .to_owned();
    let later = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    consults
        .schedule_consult(authed(
            CONSULT,
            pb::ScheduleConsultRequest {
                command_id: cid(),
                consult_id: consult_id.clone(),
                scheduled_for: Some(noroshi_codec::timestamps::to_timestamp(later)),
                doctor: "遠隔 一郎".into(),
                ..pb::ScheduleConsultRequest::default()
            },
        ))
        .await
        .expect("schedule the consult");
    if n % 16 == 6 {
        consults
            .cancel_consult(authed(
                hospital,
                pb::CancelConsultRequest {
                    command_id: cid(),
                    consult_id,
                    reason: "状態安定".into(),
                    ..pb::CancelConsultRequest::default()
                },
            ))
            .await
            .expect("cancel the consult");
        return;
    }
    consults
        .start_consult(authed(
            CONSULT,
            pb::StartConsultRequest {
                command_id: cid(),
                consult_id: consult_id.clone(),
                ..pb::StartConsultRequest::default()
            },
        ))
        .await
        .expect("start the consult");
    consults
        .complete_consult(authed(
            CONSULT,
            pb::CompleteConsultRequest {
                command_id: cid(),
                consult_id,
                findings: "経過観察".into(),
                recommendation: pb::Recommendation::Continue as i32,
                ..pb::CompleteConsultRequest::default()
            },
        ))
        .await
        .expect("complete the consult");
}

async fn run_episodes(
    api: &Arc<TestApi>,
    hospitals: &Arc<Vec<Actor>>,
    range: std::ops::Range<usize>,
) {
    let mut episodes = tokio::task::JoinSet::new();
    for n in range {
        episodes.spawn(episode(api.clone(), hospitals.clone(), n));
    }
    while let Some(done) = episodes.join_next().await {
        done.unwrap();
    }
}

#[tokio::test]
async fn bed_board_equals_the_store_also_after_a_kill_mid_scenario() {
    let nats = NatsServer::start().await;
    // Twenty hospitals: the two of the seed and eighteen more, each with its own token.
    let extra: Vec<Actor> = (0..18)
        .map(|i| Actor {
            token: Box::leak(format!("test-token-extra-hospital-{i:02}").into_boxed_str()),
            organisation: Box::leak(format!("extra-hospital-{i:02}").into_boxed_str()),
            role: "HOSPITAL",
        })
        .collect();
    let entries: Vec<TokenEntry> = ACTORS.iter().chain(&extra).map(token_entry).collect();
    let api = Arc::new(
        TestApi::with(ApiOptions {
            tokens: Tokens::from_entries(&entries).unwrap(),
            ..ApiOptions::default()
        })
        .await,
    );
    api.seed().await;
    for (i, hospital) in extra.iter().enumerate() {
        api.facilities()
            .register_facility(authed(
                ADMIN,
                pb::RegisterFacilityRequest {
                    command_id: cid(),
                    facility_id: hospital.organisation.into(),
                    name: format!("試験病院 {i}"),
                    kind: pb::FacilityKind::Hospital as i32,
                    prefecture: "35".into(),
                    medical_area: if i % 2 == 0 { "3504" } else { "3505" }.into(),
                    municipality: if i % 2 == 0 { HOFU } else { UBE }.into(),
                    capabilities: vec![pb::Capability::Oxygen as i32],
                    ..Default::default()
                },
            ))
            .await
            .unwrap();
        api.declare(
            HQ,
            hospital.organisation,
            pb::BedCategory::Moderate,
            20,
            5 + i as i64 % 10,
            i as i64 % 4,
        )
        .await;
    }
    let hospitals = Arc::new(
        [HOSPITAL, HOSPITAL_OTHER]
            .into_iter()
            .chain(extra)
            .collect::<Vec<_>>(),
    );
    let (pipeline, runner) = Pipeline::start(&api.db, &nats).await;

    declare_moderate_beds(&api).await;
    api.declare(HQ, "hofu-central", pb::BedCategory::Severe, 6, 4, 4)
        .await;
    run_episodes(&api, &hospitals, 0..100).await;

    // Killed while events keep coming: its open batch rolls back with it.
    let more = {
        let api = api.clone();
        let hospitals = hospitals.clone();
        tokio::spawn(async move { run_episodes(&api, &hospitals, 100..200).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    runner.abort();
    assert!(runner.await.unwrap_err().is_cancelled());
    more.await.unwrap();
    let live = pipeline.restart().await;
    caught_up(&api.db, "bed_board").await;

    let expected = recomputed(&api.db).await;
    assert!(expected.len() >= 3, "{expected:?}");
    caught_up(&api.db, "placement_queue").await;
    let queue = recomputed_queue(&api.db).await;
    assert!(!queue.is_empty(), "the scenario leaves live placements");
    assert!(
        queue.values().any(|entry| entry.3.2.is_some())
            && queue
                .values()
                .any(|entry| (entry.3.0, entry.3.1) == (1, false)),
        "live placements whose case HQ re-prioritised, or that was triaged anew: {queue:?}"
    );
    assert_eq!(projected_queue(&api.db).await, queue);
    assert_eq!(projected(&api.db).await, expected);
    let held: u32 = expected.values().map(|f| f.3).sum();
    assert!(held > 0, "the scenario leaves beds held");
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT stream_sequence FROM projection_checkpoints WHERE projection = 'bed_board'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert!(checkpoint > 0, "the runner that took over committed");

    // Totals add the rows up; the HQ's proxy entry is recorded.
    let rows = bed_board::rows(api.db.pool()).await.unwrap();
    let (areas, prefecture) = bed_board::totals(&rows);
    assert_eq!(
        prefecture.secured,
        rows.iter().map(|r| u64::from(r.secured)).sum::<u64>()
    );
    assert_eq!(
        areas.values().map(|t| t.occupied).sum::<u64>(),
        prefecture.occupied
    );
    let severe = rows
        .iter()
        .find(|r| r.facility_id == "hofu-central" && r.category == "SEVERE")
        .unwrap();
    assert_eq!(severe.proxy_by.as_deref(), Some("yamaguchi-hq"));

    // The patients' views equal their recomputation too.
    for projection in ["case_board", "facility_inbox", "timeline", "public_stats"] {
        caught_up(&api.db, projection).await;
    }

    // Alerts over the finished scenario: a patient at home deteriorates, a scheduler round
    // raises what holds, the health center acknowledges one; the alerts view equals the
    // alerts folded from their streams (and, below, its rebuild).
    let deteriorating = api.report_case(pb::Severity::Mild).await;
    api.cases()
        .record_observation(noroshi_tests::api::authed(
            noroshi_tests::api::HC,
            pb::RecordObservationRequest {
                command_id: noroshi_tests::api::cid(),
                case_id: deteriorating,
                spo2_percent: 90,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .unwrap();
    for projection in [
        "placement_queue",
        "case_board",
        "bed_board",
        "consult_queue",
    ] {
        caught_up(&api.db, projection).await;
    }
    let raised = noroshi_app::scheduler::round(
        &api.handler,
        &noroshi::read_models::ReadModels {
            pool: api.db.pool().clone(),
        },
        &noroshi_app::timers::system_principal().unwrap(),
    )
    .await
    .unwrap();
    assert!(raised.raised >= 1, "{raised:?}");
    caught_up(&api.db, "alerts").await;
    let deterioration: Uuid =
        sqlx::query_scalar("SELECT alert_id FROM alerts WHERE kind = 'DETERIORATION' LIMIT 1")
            .fetch_one(api.db.pool())
            .await
            .unwrap();
    let (status, answer) = api
        .http_post(
            Some(noroshi_tests::api::HC),
            "/api/v1/commands/AcknowledgeAlert",
            serde_json::json!({"command_id": noroshi_tests::api::cid(),
                "alert_id": deterioration, "note": "救急要請"})
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{answer}");
    caught_up(&api.db, "alerts").await;
    let alerts = recomputed_alerts(&api.db).await;
    assert!(alerts.values().any(|a| a.2 == "ACKNOWLEDGED"), "{alerts:?}");
    assert_eq!(projected_alerts(&api.db).await, alerts);
    assert_eq!(
        projected_case_board(&api.db).await,
        recomputed_case_board(&api.db).await
    );
    let inbox = recomputed_inbox(&api.db).await;
    assert!(inbox.values().any(|(_, state, _)| state == "ARRIVED"));
    assert_eq!(projected_inbox(&api.db).await, inbox);
    assert_eq!(
        projected_timeline(&api.db).await,
        recomputed_timeline(&api.db).await
    );

    // `noroshi rebuild --all`, the real binary, once the live runners have stopped:
    // every view rebuilt from the event store, and again from the stream, equals the live
    // one, and so do the checkpoints and versions the runners carry on from.
    for view in View::ALL {
        caught_up(&api.db, view.name()).await;
    }
    let live_views = every_view(&api.db).await;
    live.abort();
    let _ = live.await;
    drop(pipeline);
    interrupted_rebuild_changes_nothing(&api.db, &nats, &live_views).await;
    let live_checkpoints = checkpoints(&api.db).await;
    for from in ["store", "stream"] {
        rebuild_all(&api.db, &nats, from).await;
        let rebuilt = every_view(&api.db).await;
        // Which view differs, and where, when one does (each view is a line).
        let first_difference = live_views
            .lines()
            .zip(rebuilt.lines())
            .enumerate()
            .find(|(_, (live, rebuilt))| live != rebuilt)
            .map(|(view, (live, rebuilt))| {
                let at = live
                    .chars()
                    .zip(rebuilt.chars())
                    .take_while(|(a, b)| a == b)
                    .count();
                let around = |text: &str| {
                    text.chars()
                        .skip(at.saturating_sub(200))
                        .take(400)
                        .collect::<String>()
                };
                format!(
                    "view {view}: live …{}… rebuilt …{}…",
                    around(live),
                    around(rebuilt)
                )
            });
        assert!(
            rebuilt == live_views,
            "a view rebuilt from the {from} equals the live one: {first_difference:?}"
        );
        assert_eq!(
            checkpoints(&api.db).await,
            live_checkpoints,
            "from the {from}"
        );
    }

    // Events the relay has not published yet: a rebuild from the store holds them, and
    // the runners that follow pass over them when they arrive, applying nothing twice.
    run_episodes(&api, &hospitals, 200..205).await;
    assert!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM event_outbox")
            .fetch_one(api.db.pool())
            .await
            .unwrap()
            > 0
    );
    rebuild_all(&api.db, &nats, "store").await;
    views_equal_their_recomputation(&api.db).await;
    // The episodes took consults all the way, and cancelled some.
    let consults = recomputed_consults(&api.db).await;
    for status in ["COMPLETED", "CANCELLED"] {
        assert!(
            consults.values().any(|c| c.1 == status),
            "{status} consults: {consults:?}"
        );
    }
    assert_eq!(
        checkpoints(&api.db).await[0].1,
        live_checkpoints[0].1,
        "the checkpoint is where the stream stood, not past the unpublished events"
    );
    // Appends while a rebuild from the store runs: what its snapshot did not hold, the
    // runners apply once the relay publishes it, and the rest they pass over (checked
    // below, against the recomputation, once they have caught up).
    let during = {
        let api = api.clone();
        let hospitals = hospitals.clone();
        tokio::spawn(async move { run_episodes(&api, &hospitals, 205..210).await })
    };
    rebuild_all(&api.db, &nats, "store").await;
    during.await.unwrap();

    // An upgrade that replays views (placement_queue and case_board, as the migration does):
    // until their runners have caught up, readers are told so rather than shown them empty.
    sqlx::raw_sql(include_str!(
        "../../../projections/migrations/20261204100002_replay_queue_and_case_board.sql"
    ))
    .execute(api.db.pool())
    .await
    .unwrap();
    for view in ["placement_queue", "case_board"] {
        let (status, body) = api
            .http_get(Some(HQ), &format!("/api/v1/views/{view}"))
            .await;
        assert_eq!(status, 503, "{view}: {body}");
        assert!(body.to_string().contains("being rebuilt"), "{body}");
    }

    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    run_episodes(&api, &hospitals, 210..220).await;
    caught_up(&api.db, "bed_board").await;
    assert_eq!(projected(&api.db).await, recomputed(&api.db).await);
    caught_up(&api.db, "placement_queue").await;
    assert_eq!(
        projected_queue(&api.db).await,
        recomputed_queue(&api.db).await
    );
    caught_up(&api.db, "case_board").await;
    assert_eq!(
        projected_case_board(&api.db).await,
        recomputed_case_board(&api.db).await
    );
    // Each runner clears its mark in the statement after the batch that caught it up.
    let pool = api.db.pool().clone();
    eventually(
        "the replayed views answer again",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let rebuilding: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM projection_checkpoints WHERE rebuilding",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                rebuilding == 0
            }
        },
    )
    .await;
    let (status, body) = api
        .http_get(Some(HQ), "/api/v1/views/placement_queue")
        .await;
    assert_eq!(status, 200, "{body}");
    caught_up(&api.db, "public_stats").await;
    let statuses = recomputed_case_status(&api.db).await;
    // The scenario's 220 cases and the one that deteriorated for the alerts.
    assert_eq!(statuses.len(), 221);
    let events = api.db.event_count().await;
    assert!(
        events > 2_000,
        "a scenario of thousands of events, not {events}"
    );
    assert!(
        statuses.values().any(|(_, s)| s == "HOSPITALIZED")
            && statuses.values().any(|(_, s)| s == "PLACEMENT_IN_PROGRESS"),
        "{statuses:?}"
    );
    assert_eq!(projected_case_status(&api.db).await, statuses);
    for projection in ["case_board", "facility_inbox", "timeline"] {
        caught_up(&api.db, projection).await;
    }
    views_equal_their_recomputation(&api.db).await;
}

#[tokio::test]
async fn a_replayed_stretch_of_the_stream_wakes_no_live_view() {
    let nats = NatsServer::start().await;
    let api = TestApi::with(ApiOptions::default()).await;
    api.seed().await;
    let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
    for _ in 0..3 {
        let case_id = api.report_case(pb::Severity::ModerateI).await;
        api.request_placement(&case_id, pb::BedCategory::Moderate)
            .await;
    }
    caught_up(&api.db, "case_board").await;
    drop(pipeline);
    // Every runner has stopped, checkpoint written, once it let go of its leadership.
    let pool = api.db.pool().clone();
    eventually(
        "the runners stop",
        Duration::from_secs(60),
        || {
            let pool = pool.clone();
            async move {
                let held: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                held == 0
            }
        },
    )
    .await;
    let checkpoint = || async {
        let sequence: i64 = sqlx::query_scalar(
            "SELECT stream_sequence FROM projection_checkpoints WHERE projection = 'case_board'",
        )
        .fetch_one(api.db.pool())
        .await
        .unwrap();
        sequence
    };
    let reached = checkpoint().await;
    let board = case_board::all(api.db.pool()).await.unwrap();
    assert_eq!(board.len(), 3);

    // The next runner goes through the whole stream again, all of it applied before.
    let mut listener = sqlx::postgres::PgListener::connect_with(api.db.pool())
        .await
        .unwrap();
    listener.listen("noroshi_views").await.unwrap();
    sqlx::query(
        "UPDATE projection_checkpoints SET stream_sequence = 0 WHERE projection = 'case_board'",
    )
    .execute(api.db.pool())
    .await
    .unwrap();
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    eventually(
        "the runner goes through the stream again",
        Duration::from_secs(60),
        || async { checkpoint().await == reached },
    )
    .await;
    assert_eq!(case_board::all(api.db.pool()).await.unwrap(), board);
    // Notifications arrive in commit order: all the replay's come before this one.
    sqlx::query("SELECT pg_notify('noroshi_views', 'end-of-test')")
        .execute(api.db.pool())
        .await
        .unwrap();
    loop {
        let notification = listener.recv().await.unwrap();
        let payload = notification.payload();
        if payload == "end-of-test" {
            break;
        }
        assert!(
            !payload.starts_with("case_board"),
            "a batch of events applied before woke the live views: {payload:?}"
        );
    }
}

/// The stream is lost (deleted, as a failed JetStream disk would leave it) while events
/// keep coming: a rebuild from the event store brings every view back whole, and the
/// runners carry on from the stream the relay creates again, passing over what the rebuild
/// already applied and applying nothing twice.
#[tokio::test]
async fn views_come_back_from_the_store_after_the_stream_is_lost() {
    let nats = NatsServer::start().await;
    let api = Arc::new(TestApi::with(ApiOptions::default()).await);
    api.seed().await;
    declare_moderate_beds(&api).await;
    let hospitals = Arc::new(vec![HOSPITAL, HOSPITAL_OTHER]);
    let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
    run_episodes(&api, &hospitals, 0..12).await;
    for view in View::ALL {
        caught_up(&api.db, view.name()).await;
    }
    drop(pipeline);

    // The stream is gone with every event it held; more events come meanwhile.
    let stream = noroshi_event_store::relay::RelayConfig::new(
        noroshi_event_store::wire::SubjectPrefix::parse("noroshi").unwrap(),
    )
    .stream
    .name;
    async_nats::jetstream::new(nats.client().await)
        .delete_stream(&stream)
        .await
        .unwrap();
    run_episodes(&api, &hospitals, 12..16).await;
    rebuild_all(&api.db, &nats, "store").await;
    views_equal_their_recomputation(&api.db).await;
    assert!(
        checkpoints(&api.db).await.iter().all(|c| c.1 == 0),
        "the runners start from the first message of the stream to come"
    );

    // The relay creates the stream again and publishes what the outbox held: events the
    // rebuild applied already. Then more episodes.
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;
    run_episodes(&api, &hospitals, 16..24).await;
    for view in View::ALL {
        caught_up(&api.db, view.name()).await;
    }
    assert_eq!(recomputed_case_status(&api.db).await.len(), 24);
    assert_eq!(
        projected_case_status(&api.db).await,
        recomputed_case_status(&api.db).await
    );
    views_equal_their_recomputation(&api.db).await;
}

/// What the read models write through `text_array` (facilities, needs, risk factors and
/// constraints, free text among them) reads back from PostgreSQL as the same strings.
#[tokio::test]
async fn text_array_literals_read_back_as_the_same_strings() {
    let db = TestDatabase::create().await;
    let lists: Vec<Vec<String>> = [
        &[][..],
        &["ube-medical", "hofu-central"][..],
        &["妊娠後期、急変の恐れ", "透析中"][..],
        &[
            r#"a "quoted", {braced} \ back\slash"#,
            "",
            "NULL",
            " spaced ",
        ][..],
    ]
    .iter()
    .map(|list| list.iter().map(|s| (*s).to_owned()).collect())
    .collect();
    for list in lists {
        let literal = noroshi_projections::text_array(&list);
        let read: Vec<String> = sqlx::query_scalar("SELECT $1::text::text[]")
            .bind(&literal)
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(read, list, "{literal}");
    }
}
