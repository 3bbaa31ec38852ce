//! Reading the views as of the past (DESIGN.md §6, time travel): for a scripted surge,
//! the bed board, the queue and a case board read `as_of` chosen moments equal what they
//! showed then and a recomputation from the events up to those moments, with and without
//! snapshots; the same access rules, PII reads audited with their moment, bad moments
//! refused.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_domain::facility::{Facility, FacilityEvent};
use noroshi_event_store::{EventStore, StoreLimits};
use noroshi_projections::View;
use noroshi_projections::history::{SnapshotConfig, snapshot};
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    Actor, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HQ, PUBLIC, TestApi, authed,
};
use noroshi_tests::pipeline::live_world;
use noroshi_tests::{TestDatabase, eventually};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

/// Waits until every projection has applied every event of the streams it reads.
async fn settled(db: &TestDatabase) {
    let pool = db.pool().clone();
    eventually("every view catches up", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move {
            let mut behind = 0;
            for view in View::ALL {
                let count: i64 = sqlx::query_scalar(
                    "SELECT count(*) FROM (SELECT stream_id, max(version) AS version FROM events \
                     WHERE split_part(stream_id, '-', 1) = ANY($2) GROUP BY stream_id) s \
                     WHERE projection_applied_version($1, s.stream_id) IS DISTINCT FROM s.version",
                )
                .bind(view.name())
                .bind(view.sources())
                .fetch_one(&pool)
                .await
                .unwrap();
                behind += count;
            }
            behind == 0
        }
    })
    .await;
}

/// The views an answer is compared by, without what says when it was computed.
fn comparable(mut value: Value) -> Value {
    fn strip(value: &mut Value) {
        match value {
            Value::Object(map) => {
                for key in [
                    "generatedAt",
                    "generated_at",
                    "streamSequence",
                    "stream_sequence",
                    "waitingSeconds",
                    "waiting_seconds",
                ] {
                    map.remove(key);
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut value);
    value
}

/// What each reader's views showed at a moment.
#[derive(Debug)]
struct Seen {
    position: u64,
    time: String,
    bed_board: Value,
    queue: Value,
    case_board: Value,
}

const VIEWS: [(&str, Actor); 3] = [
    ("bed_board", HQ),
    ("placement_queue", HQ),
    ("case_board", HC),
];

async fn read(api: &TestApi, view: &str, actor: Actor, as_of: Option<&str>) -> Value {
    let path = match as_of {
        Some(moment) => format!("/api/v1/views/{view}?as_of={}", moment.replace('+', "%2B")),
        None => format!("/api/v1/views/{view}"),
    };
    let (status, body) = api.http_get(Some(actor), &path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

/// Waits until the views have caught up, then notes the moment and what they show.
async fn moment(api: &TestApi, store: &EventStore) -> Seen {
    settled(&api.db).await;
    let (position, _) = store.head().await.unwrap();
    let mut shown = Vec::new();
    for (view, actor) in VIEWS {
        shown.push(read(api, view, actor, None).await);
    }
    // The moment lies after every event so far and before the next.
    let time = time::OffsetDateTime::now_utc();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let case_board = shown.pop().unwrap();
    let queue = shown.pop().unwrap();
    let bed_board = shown.pop().unwrap();
    Seen {
        position,
        time: time
            .to_offset(time::macros::offset!(+9))
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap(),
        bed_board,
        queue,
        case_board,
    }
}

/// (facility, category) → (secured, ready, occupied, held): the domain's own fold of the
/// facility events up to and including `position`.
async fn recomputed_beds(
    store: &EventStore,
    position: u64,
) -> BTreeMap<(String, String), [u64; 4]> {
    let events = store
        .read_range(0, position, &["facility"], 1_000_000)
        .await
        .unwrap();
    let mut streams: BTreeMap<String, Vec<FacilityEvent>> = BTreeMap::new();
    for recorded in &events {
        if let DomainEvent::Facility(event) = decode(recorded).unwrap() {
            streams
                .entry(recorded.stream_id.aggregate_id().to_owned())
                .or_default()
                .push(event);
        }
    }
    let mut figures = BTreeMap::new();
    for (facility, events) in streams {
        for (category, beds) in &Facility::from_events(&events).beds {
            figures.insert(
                (facility.clone(), category.to_string()),
                [beds.secured, beds.ready, beds.occupied, beds.held].map(u64::from),
            );
        }
    }
    figures
}

/// The same figures as a bed board answer shows them.
fn shown_beds(board: &Value) -> BTreeMap<(String, String), [u64; 4]> {
    let number = |row: &Value, key: &str| row[key].as_u64().unwrap_or(0);
    board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                (
                    row["facility_id"].as_str().unwrap().to_owned(),
                    row["category"]
                        .as_str()
                        .unwrap()
                        .trim_start_matches("BED_CATEGORY_")
                        .to_owned(),
                ),
                [
                    number(row, "secured"),
                    number(row, "ready"),
                    number(row, "occupied"),
                    number(row, "held"),
                ],
            )
        })
        .collect()
}

/// Every moment read back by position and by time equals what the views showed then.
async fn read_back(api: &TestApi, store: &EventStore, moments: &[Seen]) {
    for (index, seen) in moments.iter().enumerate() {
        for as_of in [seen.position.to_string(), seen.time.clone()] {
            let answers = [
                (
                    &seen.bed_board,
                    read(api, "bed_board", HQ, Some(&as_of)).await,
                ),
                (
                    &seen.queue,
                    read(api, "placement_queue", HQ, Some(&as_of)).await,
                ),
                (
                    &seen.case_board,
                    read(api, "case_board", HC, Some(&as_of)).await,
                ),
            ];
            for (then, now) in answers {
                assert_eq!(
                    comparable(then.clone()),
                    comparable(now),
                    "moment {index} read as of {as_of}"
                );
            }
            let board = read(api, "bed_board", HQ, Some(&as_of)).await;
            // Categories registered but never declared show as zeros on the board.
            let nonzero = |beds: BTreeMap<(String, String), [u64; 4]>| {
                beds.into_iter()
                    .filter(|(_, figures)| figures.iter().any(|n| *n > 0))
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(
                nonzero(shown_beds(&board)),
                nonzero(recomputed_beds(store, seen.position).await),
                "moment {index}: the bed board as of {as_of} against the fold of the events"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn views_read_as_of_a_moment_equal_what_they_showed_then() {
    let (api, _read_side) = live_world(&[
        (HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10),
        (HOSPITAL_OTHER, "ube-medical", pb::BedCategory::Moderate, 6),
    ])
    .await;
    let store = EventStore::new(api.db.pool().clone(), StoreLimits::default());
    let mut moments = vec![moment(&api, &store).await];

    // The surge begins: three cases, two placement requests, one offer.
    let first = api.report_case(pb::Severity::ModerateI).await;
    let second = api.report_case(pb::Severity::Severe).await;
    api.report_case(pb::Severity::Mild).await;
    let placement = api
        .request_placement(&first, pb::BedCategory::Moderate)
        .await;
    let other = api
        .request_placement(&second, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement, "hofu-central").await;
    moments.push(moment(&api, &store).await);

    // Hofu Central takes the first patient; Ube declines the second; figures change.
    api.accept(HOSPITAL, &placement).await.unwrap();
    api.offer(&other, "ube-medical").await;
    api.decline(HOSPITAL_OTHER, &other).await;
    api.transport(&placement).await;
    api.arrive(HOSPITAL, &placement).await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        12,
        11,
        5,
    )
    .await;
    moments.push(moment(&api, &store).await);

    // The night goes on: the second patient to Hofu Central, Ube declares fewer beds.
    api.offer(&other, "hofu-central").await;
    api.accept(HOSPITAL, &other).await.unwrap();
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        6,
        3,
        2,
    )
    .await;
    moments.push(moment(&api, &store).await);

    // The moments differ from one another, or the test would prove little.
    for pair in moments.windows(2) {
        assert_ne!(
            comparable(pair[0].queue.clone()),
            comparable(pair[1].queue.clone())
        );
    }
    let live_before = comparable(read(&api, "bed_board", HQ, None).await);

    // Without snapshots: replayed from the start of the log.
    let snapshots: i64 = sqlx::query_scalar("SELECT count(*) FROM view_snapshots")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    assert_eq!(
        snapshots, 0,
        "the snapshotter has not run yet (its settle time)"
    );
    read_back(&api, &store, &moments).await;

    // With snapshots every few positions: restored, then a short replay.
    let database = PgConnectOptions::from_str(api.db.url()).unwrap();
    let round = snapshot(
        &database,
        &store,
        View::ALL,
        SnapshotConfig {
            every: 5,
            settle: Duration::ZERO,
            interval: Duration::from_secs(60),
            max_age: Duration::ZERO,
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let head = moments.last().unwrap().position;
    let bed_board_snapshots: Vec<u64> = round
        .taken
        .iter()
        .filter(|(view, _)| *view == View::BedBoard)
        .map(|(_, position)| *position)
        .collect();
    assert!(
        bed_board_snapshots.len() >= 3 && bed_board_snapshots.last() == Some(&head),
        "snapshots along the log up to its end: {bed_board_snapshots:?}"
    );
    read_back(&api, &store, &moments).await;
    // A second round finds nothing due.
    let again = snapshot(
        &database,
        &store,
        View::ALL,
        SnapshotConfig {
            every: 5,
            settle: Duration::ZERO,
            interval: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(again.taken.is_empty(), "{again:?}");

    // The live tables were never touched.
    assert_eq!(
        comparable(read(&api, "bed_board", HQ, None).await),
        live_before
    );

    // Before the first event: nothing at all.
    let empty = read(&api, "bed_board", HQ, Some("2020-01-01T00:00:00+09:00")).await;
    assert_eq!(empty["rows"].as_array().map(Vec::len), Some(0), "{empty}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reads_of_the_past_keep_the_access_rules_and_audit_identities() {
    let (api, _read_side) =
        live_world(&[(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10)]).await;
    let case = api.report_case(pb::Severity::ModerateI).await;
    let placement = api
        .request_placement(&case, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement, "hofu-central").await;
    settled(&api.db).await;
    let store = EventStore::new(api.db.pool().clone(), StoreLimits::default());
    let (position, _) = store.head().await.unwrap();
    let as_of = format!("as_of={position}");

    // The health center reads its own cases as they were, and the read is audited with
    // its moment.
    let answer = api
        .http_request(
            ::http::Method::GET,
            &format!("/api/v1/views/case_board?{as_of}"),
            &[("authorization", format!("Bearer {}", HC.token))],
            Vec::new(),
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.json);
    assert_eq!(answer.json["rows"].as_array().unwrap().len(), 1);
    assert_eq!(
        answer.headers["noroshi-as-of-position"].to_str().unwrap(),
        position.to_string()
    );
    assert!(answer.headers.contains_key("noroshi-as-of-time"));
    let audited: Vec<(String, uuid::Uuid)> = sqlx::query_as(
        "SELECT via, case_id FROM audit_log WHERE kind = 'PII_READ' AND organisation_id = 'hofu-hc' \
         AND via LIKE 'case_board as_of %'",
    )
    .fetch_all(api.db.pool())
    .await
    .unwrap();
    assert_eq!(
        audited,
        vec![(
            format!("case_board as_of {position}"),
            uuid::Uuid::parse_str(&case).unwrap()
        )]
    );

    // Another health center sees none of them, then as now.
    let (status, other) = api
        .http_get(Some(HC_OTHER), &format!("/api/v1/views/case_board?{as_of}"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(other["rows"].as_array().map(Vec::len), Some(0), "{other}");
    // The hospital reads its own inbox as it was: the offer, de-identified.
    let (status, inbox) = api
        .http_get(
            Some(HOSPITAL),
            &format!("/api/v1/views/facility_inbox?{as_of}"),
        )
        .await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(inbox["offers"].as_array().map(Vec::len), Some(1), "{inbox}");
    // ...but not HQ's queue, then as now.
    let (status, _) = api
        .http_get(
            Some(HOSPITAL),
            &format!("/api/v1/views/placement_queue?{as_of}"),
        )
        .await;
    assert_eq!(status, 403);
    // The public does not read the past at all.
    let (status, _) = api
        .http_get(Some(PUBLIC), &format!("/api/v1/views/public_stats?{as_of}"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = api
        .http_get(Some(PUBLIC), "/api/v1/views/public_stats")
        .await;
    assert_eq!(status, 200);

    // Bad moments are named.
    let future = (time::OffsetDateTime::now_utc() + time::Duration::hours(1))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    for (query, field, says) in [
        ("as_of=yesterday".to_owned(), "as_of", "neither a time"),
        (
            "as_of=2026-12-07T03:00:00".to_owned(),
            "as_of",
            "neither a time",
        ),
        (format!("as_of={future}"), "as_of.time", "in the future"),
        (
            format!("as_of={}", position + 1_000),
            "as_of.position",
            "beyond the end",
        ),
        (
            format!("{as_of}&min_versions=case-{case}:1"),
            "min_versions",
            "as_of",
        ),
    ] {
        let (status, body) = api
            .http_get(Some(HQ), &format!("/api/v1/views/bed_board?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        let violation = &body["violations"][0];
        assert_eq!(violation["field"], field, "{query}: {body}");
        assert!(
            violation["description"].as_str().unwrap().contains(says),
            "{query}: {body}"
        );
    }
    // A live stream follows the present only.
    let (status, body) = api
        .http_get(Some(HQ), &format!("/api/v1/views/bed_board/stream?{as_of}"))
        .await;
    assert_eq!(status, 400, "{body}");

    // gRPC: the same read, the moment in the answer's metadata; streams refuse it.
    let request = pb::GetBedBoardRequest {
        as_of: Some(pb::AsOf {
            point: Some(pb::as_of::Point::Position(position)),
        }),
        ..Default::default()
    };
    let answer = api
        .views()
        .get_bed_board(authed(HQ, request.clone()))
        .await
        .unwrap();
    assert_eq!(
        answer.metadata().get("noroshi-as-of-position").unwrap(),
        position.to_string().as_str()
    );
    let moderate = answer
        .get_ref()
        .rows
        .iter()
        .find(|row| {
            row.facility_id == "hofu-central" && row.category == pb::BedCategory::Moderate as i32
        })
        .unwrap();
    assert_eq!((moderate.secured, moderate.ready), (10, 10));
    let refused = api
        .views()
        .watch_bed_board(authed(HQ, request))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument);
    // A time no answer could name (before the year 1) is refused, not an internal error.
    let ancient = pb::GetBedBoardRequest {
        as_of: Some(pb::AsOf {
            point: Some(pb::as_of::Point::Time(
                noroshi_codec::timestamps::to_timestamp(
                    time::macros::datetime!(-0001-06-01 0:00 UTC),
                ),
            )),
        }),
        ..Default::default()
    };
    let refused = api
        .views()
        .get_bed_board(authed(HQ, ancient))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
}
