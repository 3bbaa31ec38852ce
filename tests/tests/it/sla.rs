//! `placement_sla` (DESIGN.md §6, §12): placements scripted on a movable clock, so that
//! each step takes a known time; the view's figures equal an independent computation
//! from the events (the domain's own events folded here, percentiles interpolated as
//! PostgreSQL's `percentile_cont`), follow the placements live, and are HQ's alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::facility::{Facility, FacilityEvent};
use noroshi_domain::placement::PlacementEvent;
use noroshi_event_store::{EventStore, StoreLimits};
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{ApiOptions, HC, HOSPITAL, HOSPITAL_OTHER, HQ, TestApi, authed};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::sse::Events;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

/// (area, severity, day) → (requested, [offer, accept, arrive] reached with p50 and p90
/// in seconds, cancelled).
type Figures = (u64, [(u64, Option<f64>, Option<f64>); 3], u64);

/// `percentile_cont`: linear interpolation between the closest ranks.
fn percentile(sorted: &[f64], p: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = p * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    Some(sorted[low] + (sorted[high] - sorted[low]) * (rank - low as f64))
}

fn jst_day(at: OffsetDateTime) -> String {
    at.to_offset(time::macros::offset!(+9)).date().to_string()
}

/// The figures and declines computed from the store, without the read models.
async fn computed(
    store: &EventStore,
) -> (
    BTreeMap<(String, String, String), Figures>,
    BTreeMap<String, u64>,
    BTreeMap<String, u64>,
) {
    let (head, _) = store.head().await.unwrap();
    let events = store
        .read_range(0, head, &["facility", "case", "placement"], 1_000_000)
        .await
        .unwrap();
    let mut facilities: BTreeMap<String, Vec<FacilityEvent>> = BTreeMap::new();
    let mut severity: BTreeMap<Uuid, String> = BTreeMap::new();
    // placement → (area key parts, requested, offered, accepted, arrived, cancelled)
    struct Steps {
        requested_by: String,
        case_id: Uuid,
        requested: OffsetDateTime,
        times: [Option<OffsetDateTime>; 4],
    }
    let mut placements: BTreeMap<Uuid, Steps> = BTreeMap::new();
    let (mut by_reason, mut by_facility) = (BTreeMap::new(), BTreeMap::new());
    for recorded in &events {
        let id = recorded.stream_id.aggregate_id().to_owned();
        match decode(recorded).unwrap() {
            DomainEvent::Facility(event) => facilities.entry(id).or_default().push(event),
            DomainEvent::Case(CaseEvent::Reported { report, .. }) => {
                severity.insert(Uuid::parse_str(&id).unwrap(), report.severity.to_string());
            }
            DomainEvent::Case(CaseEvent::Triaged { severity: s, .. }) => {
                severity.insert(Uuid::parse_str(&id).unwrap(), s.to_string());
            }
            DomainEvent::Placement(event) => {
                let id = Uuid::parse_str(&id).unwrap();
                let mut step = |i: usize, at: OffsetDateTime| {
                    let steps = placements.get_mut(&id).unwrap();
                    if steps.times[i].is_none() {
                        steps.times[i] = Some(at);
                    }
                };
                match event {
                    PlacementEvent::Requested {
                        case_id,
                        requested_by,
                        requested_at,
                        ..
                    } => {
                        placements.insert(
                            id,
                            Steps {
                                requested_by: requested_by.to_string(),
                                case_id,
                                requested: requested_at,
                                times: [None; 4],
                            },
                        );
                    }
                    PlacementEvent::Offered { offered_at, .. } => step(0, offered_at),
                    PlacementEvent::Accepted { accepted_at, .. } => step(1, accepted_at),
                    PlacementEvent::Arrived { arrived_at, .. } => step(2, arrived_at),
                    PlacementEvent::Cancelled { cancelled_at, .. } => step(3, cancelled_at),
                    PlacementEvent::Declined {
                        facility, reason, ..
                    } => {
                        *by_reason.entry(reason.to_string()).or_insert(0) += 1;
                        *by_facility.entry(facility.to_string()).or_insert(0) += 1;
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    let area = |facility: &str| {
        Facility::from_events(&facilities[facility])
            .profile
            .and_then(|p| p.medical_area)
            .map(|a| a.to_string())
            .unwrap_or_default()
    };
    let mut groups: BTreeMap<(String, String, String), Vec<&Steps>> = BTreeMap::new();
    for steps in placements.values() {
        groups
            .entry((
                area(&steps.requested_by),
                severity[&steps.case_id].clone(),
                jst_day(steps.requested),
            ))
            .or_default()
            .push(steps);
    }
    let figures = groups
        .into_iter()
        .map(|(key, members)| {
            let step = |i: usize| {
                let mut seconds: Vec<f64> = members
                    .iter()
                    .filter_map(|s| s.times[i].map(|t| (t - s.requested).as_seconds_f64()))
                    .collect();
                seconds.sort_by(f64::total_cmp);
                (
                    seconds.len() as u64,
                    percentile(&seconds, 0.5),
                    percentile(&seconds, 0.9),
                )
            };
            let cancelled = members.iter().filter(|s| s.times[3].is_some()).count() as u64;
            (
                key,
                (members.len() as u64, [step(0), step(1), step(2)], cancelled),
            )
        })
        .collect();
    (figures, by_reason, by_facility)
}

/// The view's figures, keyed as [`computed`] keys them.
fn shown(view: &Value) -> BTreeMap<(String, String, String), Figures> {
    let step = |s: &Value| {
        (
            s["count"].as_u64().unwrap_or(0),
            s["p50_seconds"].as_f64(),
            s["p90_seconds"].as_f64(),
        )
    };
    view["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["medical_area"].as_str().unwrap_or_default().to_owned(),
                    r["severity"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("SEVERITY_")
                        .to_owned(),
                    r["day"].as_str().unwrap().to_owned(),
                ),
                (
                    r["requested"].as_u64().unwrap_or(0),
                    [
                        step(&r["to_first_offer"]),
                        step(&r["to_acceptance"]),
                        step(&r["to_arrival"]),
                    ],
                    r["cancelled"].as_u64().unwrap_or(0),
                ),
            )
        })
        .collect()
}

fn counts(list: &Value) -> BTreeMap<String, u64> {
    list.as_array()
        .map(|items| {
            items
                .iter()
                .map(|d| {
                    (
                        d["key"].as_str().unwrap().to_owned(),
                        d["count"].as_u64().unwrap(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether two sets of figures agree: the same groups and counts, and the seconds within
/// 10 ms (the read models keep microseconds, the events nanoseconds).
fn agree(
    a: &BTreeMap<(String, String, String), Figures>,
    b: &BTreeMap<(String, String, String), Figures>,
) -> bool {
    let near = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) => (x - y).abs() < 0.01,
        (None, None) => true,
        _ => false,
    };
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, fa), (kb, fb))| {
            ka == kb
                && fa.0 == fb.0
                && fa.2 == fb.2
                && fa
                    .1
                    .iter()
                    .zip(&fb.1)
                    .all(|(sa, sb)| sa.0 == sb.0 && near(sa.1, sb.1) && near(sa.2, sb.2))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn placement_times_equal_an_independent_computation_and_follow_live() {
    let offset = Arc::new(AtomicI64::new(0));
    let read = offset.clone();
    let clock: noroshi_app::Clock = Arc::new(move || {
        OffsetDateTime::now_utc() + time::Duration::seconds(read.load(Ordering::SeqCst))
    });
    let later = |minutes: i64| offset.fetch_add(minutes * 60, Ordering::SeqCst);
    let nats = NatsServer::start().await;
    let api = TestApi::with(ApiOptions {
        clock,
        views: noroshi_projections::views::ViewSettings {
            read_your_writes_wait: Duration::from_secs(10),
            ..Default::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    for (actor, facility) in [(HOSPITAL, "hofu-central"), (HOSPITAL_OTHER, "ube-medical")] {
        api.declare(actor, facility, pb::BedCategory::Moderate, 10, 10, 0)
            .await;
    }
    let (_pipeline, _) = Pipeline::start(&api.db, &nats).await;

    // Five placements, each step a known number of minutes after the one before.
    let first = api.report_case(pb::Severity::ModerateI).await;
    let p1 = api
        .request_placement(&first, pb::BedCategory::Moderate)
        .await;
    later(10);
    api.offer(&p1, "ube-medical").await;
    later(5);
    api.decline(HOSPITAL_OTHER, &p1).await;
    later(5);
    api.offer(&p1, "hofu-central").await;
    later(5);
    api.accept(HOSPITAL, &p1).await.unwrap();
    api.transport(&p1).await;
    later(45);
    api.arrive(HOSPITAL, &p1).await;

    let second = api.report_case(pb::Severity::Severe).await;
    let p2 = api
        .request_placement(&second, pb::BedCategory::Moderate)
        .await;
    later(5);
    api.offer(&p2, "hofu-central").await;
    later(3);
    api.accept(HOSPITAL, &p2).await.unwrap();

    let third = api.report_case(pb::Severity::Mild).await;
    let p3 = api
        .request_placement(&third, pb::BedCategory::Moderate)
        .await;
    later(30);
    api.offer(&p3, "ube-medical").await;
    later(2);
    api.decline(HOSPITAL_OTHER, &p3).await;
    later(8);
    api.cancel(&p3).await;

    let fourth = api.report_case(pb::Severity::ModerateI).await;
    // Re-triaged: the case's current severity is what counts.
    api.triage(&fourth, pb::Severity::ModerateIi).await;
    let p4 = api
        .request_placement(&fourth, pb::BedCategory::Moderate)
        .await;
    later(12);
    api.offer(&p4, "hofu-central").await;
    later(8);
    api.accept(HOSPITAL, &p4).await.unwrap();
    api.transport(&p4).await;
    later(30);
    api.arrive(HOSPITAL, &p4).await;

    let fifth = api.report_case(pb::Severity::ModerateI).await;
    let p5 = api
        .request_placement(&fifth, pb::BedCategory::Moderate)
        .await;

    // The period around the clock's today, whatever day it has reached.
    let now = OffsetDateTime::now_utc() + time::Duration::seconds(offset.load(Ordering::SeqCst));
    let period = format!(
        "from_day={}&to_day={}",
        jst_day(now - time::Duration::days(1)),
        jst_day(now + time::Duration::days(1))
    );
    let path = format!("/api/v1/views/placement_sla?{period}");
    let store = EventStore::new(api.db.pool().clone(), StoreLimits::default());
    let expected = computed(&store).await;
    assert_eq!(expected.0.values().map(|f| f.0).sum::<u64>(), 5);
    noroshi_tests::eventually(
        "the view counts every step",
        Duration::from_secs(30),
        || {
            let (api, path, expected) = (&api, &path, &expected);
            async move {
                let (status, view) = api.http_get(Some(HQ), path).await;
                let same = status == 200 && agree(&shown(&view), &expected.0);
                if !same {
                    eprintln!("view {:?}\nexpected {:?}", shown(&view), expected.0);
                }
                same
            }
        },
    )
    .await;
    let (_, view) = api.http_get(Some(HQ), &path).await;
    assert_eq!(counts(&view["declines_by_reason"]), expected.1);
    assert_eq!(counts(&view["declines_by_facility"]), expected.2);
    assert_eq!(
        counts(&view["declines_by_facility"]),
        BTreeMap::from([("ube-medical".to_owned(), 2)])
    );
    // The prefecture: 5 requested, 4 offered, 3 accepted, 2 arrived, 1 cancelled;
    // first offers after 10, 5, 30 and 12 minutes (p50 11 min), arrivals after 70 and 50
    // (p50 60 min).
    let prefecture = &view["prefecture"];
    assert_eq!(prefecture["requested"], 5);
    assert_eq!(prefecture["to_first_offer"]["count"], 4);
    // (the commands themselves take a few milliseconds of real time)
    let about =
        |value: &Value, minutes: f64| (value.as_f64().unwrap() - minutes * 60.0).abs() < 1.0;
    assert!(
        about(&prefecture["to_first_offer"]["p50_seconds"], 11.0),
        "{prefecture}"
    );
    assert_eq!(prefecture["to_acceptance"]["count"], 3);
    assert_eq!(prefecture["to_arrival"]["count"], 2);
    assert!(
        about(&prefecture["to_arrival"]["p50_seconds"], 60.0),
        "{prefecture}"
    );
    assert_eq!(prefecture["cancelled"], 1);

    // Live: the fifth placement's offer moves the figures.
    let mut events = Events::open(
        &api,
        HQ,
        &path.replace("placement_sla?", "placement_sla/stream?"),
    )
    .await;
    let (name, _) = events.next(Duration::from_secs(10)).await.unwrap();
    assert_eq!(name, "snapshot");
    later(7);
    api.offer(&p5, "ube-medical").await;
    let (name, update) = events.next(Duration::from_secs(30)).await.unwrap();
    assert_eq!(name, "update");
    assert_eq!(update["prefecture"]["to_first_offer"]["count"], 5);

    // HQ's alone, over both transports.
    for actor in [HC, HOSPITAL] {
        let (status, _) = api.http_get(Some(actor), &path).await;
        assert_eq!(status, 403);
    }
    let refused = api
        .views()
        .get_placement_sla(authed(HC, pb::GetPlacementSlaRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let (status, body) = api
        .http_get(Some(HQ), "/api/v1/views/placement_sla?from_day=2026-13-01")
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["violations"][0]["field"], "from_day");
}
