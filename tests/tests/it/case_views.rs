//! The views about patients (`case_board`, `facility_inbox`, `timeline`): what each role
//! sees in unary reads and live streams, read-your-writes after `AcceptPlacement`, the
//! audit record of every identity read, and refusals of bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    ADMIN, Actor, HC, HC_OTHER, HOFU, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, PUBLIC, TestApi, authed,
    cid, min_versions,
};
use noroshi_tests::pipeline::{Pipeline, live_world};
use noroshi_tests::sse::Events;
use serde_json::Value;

/// The fictional patient of `report_request`.
const PATIENT_NAME: &str = "試験 花子";

async fn world() -> (TestApi, (Pipeline, NatsServer)) {
    live_world(&[]).await
}

/// `stream:version,…` of a command's result, for `min_versions`.
fn versions(result: &pb::CommandResult) -> String {
    min_versions(&[result])
}

/// The world with 10 ready MODERATE beds at Hofu Central, once both hospitals' inboxes
/// show them: a live stream opened next starts from a settled snapshot.
async fn settled_world() -> (TestApi, (Pipeline, NatsServer)) {
    let (api, read_side) = world().await;
    let declared = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            10,
            0,
        )
        .await;
    settled(&api, &declared).await;
    (api, read_side)
}

/// Waits until both hospitals' inboxes reflect the seed and `declared`.
async fn settled(api: &TestApi, declared: &pb::CommandResult) {
    for (actor, fresh) in [
        (HOSPITAL, versions(declared)),
        (HOSPITAL_OTHER, "facility-ube-medical:1".to_owned()),
    ] {
        let (status, inbox) = api
            .http_get(
                Some(actor),
                &format!("/api/v1/views/facility_inbox?min_versions={fresh}"),
            )
            .await;
        assert_eq!(status, 200, "{inbox}");
    }
}

/// Audit records of `actor` reading `case_id` through `via`.
async fn audits(api: &TestApi, actor: Actor, case_id: &str, via: &str) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PII_READ' AND principal_id = $1 \
         AND organisation_id = $2 AND case_id = $3::uuid AND via = $4",
    )
    .bind(format!("{}-user", actor.organisation))
    .bind(actor.organisation)
    .bind(case_id)
    .bind(via)
    .fetch_one(api.db.pool())
    .await
    .unwrap()
}

/// The MODERATE row of an inbox's own capacity.
fn moderate(inbox: &Value) -> &Value {
    inbox["capacity"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["category"] == "BED_CATEGORY_MODERATE")
        .unwrap_or_else(|| panic!("no MODERATE capacity: {inbox}"))
}

fn ids(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("a list: {list}"))
        .iter()
        .map(|row| row[key].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts an HTTP refusal: status, code, and (for 400) the offending field.
fn refused(answer: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got, json) = answer;
    assert_eq!(
        (*got, json["code"].as_str()),
        (status, Some(code)),
        "{json}"
    );
    if let Some(field) = field {
        assert_eq!(json["violations"][0]["field"], field, "{json}");
    }
}

#[tokio::test]
async fn each_role_sees_only_its_cases_offers_and_timelines() {
    let (api, _read_side) = world().await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        10,
        0,
    )
    .await;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    let offered = api.offer(&placement_id, "hofu-central").await;
    let fresh = versions(&offered);

    // case_board: the owning health center and HQ see the patient; the other health
    // center sees nothing of it; other roles are refused.
    let path = format!("/api/v1/views/case_board?min_versions={fresh}");
    let (status, board) = api.http_get(Some(HC), &path).await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(ids(&board["rows"], "case_id"), [case_id.as_str()]);
    let row = &board["rows"][0];
    assert_eq!(row["name"], PATIENT_NAME);
    assert_eq!(row["status"], "CASE_STATUS_PLACEMENT_IN_PROGRESS");
    assert_eq!(row["placement_status"], "OFFERED");
    assert_eq!(row["placement_target"], "hofu-central");
    assert_eq!(row["severity"], "SEVERITY_MODERATE_I");
    assert_eq!(row["birth_date"], "1950-04-01");
    assert_eq!(board["total"], 1);
    assert_eq!(audits(&api, HC, &case_id, "case_board").await, 1);

    let (status, board) = api
        .http_get(
            Some(HQ),
            "/api/v1/views/case_board?health_center_id=hofu-hc",
        )
        .await;
    assert_eq!((status, board["total"].as_i64()), (200, Some(1)), "{board}");
    assert_eq!(audits(&api, HQ, &case_id, "case_board").await, 1);

    let (status, board) = api
        .http_get(Some(HC_OTHER), "/api/v1/views/case_board")
        .await;
    assert_eq!((status, board["total"].as_i64()), (200, Some(0)), "{board}");
    assert!(!board.to_string().contains(PATIENT_NAME));
    refused(
        &api.http_get(
            Some(HC_OTHER),
            "/api/v1/views/case_board?health_center_id=hofu-hc",
        )
        .await,
        403,
        "PERMISSION_DENIED",
        None,
    );
    for actor in [HOSPITAL, HOTEL, PUBLIC] {
        refused(
            &api.http_get(Some(actor), "/api/v1/views/case_board").await,
            403,
            "PERMISSION_DENIED",
            None,
        );
    }

    // facility_inbox: the offered hospital sees the offer de-identified; nobody else
    // sees it; nobody opens another facility's inbox.
    let (status, inbox) = api
        .http_get(
            Some(HOSPITAL),
            &format!("/api/v1/views/facility_inbox?min_versions={fresh}"),
        )
        .await;
    assert_eq!(status, 200, "{inbox}");
    assert_eq!(
        ids(&inbox["offers"], "placement_id"),
        [placement_id.as_str()]
    );
    let offer = &inbox["offers"][0];
    assert_eq!(offer["age_band"], "70-79");
    assert_eq!(offer["sex"], "SEX_FEMALE");
    assert_eq!(offer["origin_area"], "3504");
    assert!(offer["offer_deadline"].is_string());
    let text = inbox.to_string();
    for identity in [PATIENT_NAME, "1950-04-01", "0835-00-0000", case_id.as_str()] {
        assert!(!text.contains(identity), "{identity} leaked into an offer");
    }
    assert_eq!(audits(&api, HOSPITAL, &case_id, "facility_inbox").await, 0);
    assert_eq!(moderate(&inbox)["ready"], 10);
    assert!(
        inbox["capacity"]
            .as_array()
            .unwrap()
            .iter()
            .all(|row| row["facility_id"] == "hofu-central")
    );

    let (_, other) = api
        .http_get(Some(HOSPITAL_OTHER), "/api/v1/views/facility_inbox")
        .await;
    assert_eq!(other["facility_id"], "ube-medical");
    assert!(other["offers"].as_array().unwrap().is_empty(), "{other}");
    refused(
        &api.http_get(
            Some(HOSPITAL_OTHER),
            "/api/v1/views/facility_inbox?facility_id=hofu-central",
        )
        .await,
        403,
        "PERMISSION_DENIED",
        None,
    );
    for actor in [HC, PUBLIC] {
        refused(
            &api.http_get(Some(actor), "/api/v1/views/facility_inbox")
                .await,
            403,
            "PERMISSION_DENIED",
            None,
        );
    }
    refused(
        &api.http_get(Some(HQ), "/api/v1/views/facility_inbox").await,
        400,
        "INVALID_ARGUMENT",
        Some("facility_id"),
    );
    let (status, proxy) = api
        .http_get(
            Some(HQ),
            "/api/v1/views/facility_inbox?facility_id=hofu-central",
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        ids(&proxy["offers"], "placement_id"),
        [placement_id.as_str()]
    );

    // timeline: a facility offered the patient sees the placement's history, not the
    // case's; another health center sees neither.
    let placement_path = format!("/api/v1/views/timeline?placement_id={placement_id}");
    let case_path = format!("/api/v1/views/timeline?case_id={case_id}");
    let (status, history) = api
        .http_get(
            Some(HOSPITAL),
            &format!("{placement_path}&min_versions={fresh}"),
        )
        .await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        ids(&history["entries"], "event_type"),
        ["PlacementRequested", "PlacementOffered"]
    );
    assert_eq!(history["entries"][0]["actor"], "hofu-hc-user");
    assert_eq!(history["entries"][1]["facility_id"], "hofu-central");
    refused(
        &api.http_get(Some(HOSPITAL), &case_path).await,
        403,
        "PERMISSION_DENIED",
        None,
    );
    for actor in [HC_OTHER, HOSPITAL_OTHER, PUBLIC] {
        for path in [&placement_path, &case_path] {
            refused(
                &api.http_get(Some(actor), path).await,
                403,
                "PERMISSION_DENIED",
                None,
            );
        }
    }
    let (status, history) = api.http_get(Some(HC), &case_path).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(
        ids(&history["entries"], "event_type"),
        [
            "CaseReported",
            "CaseStatusChanged",
            "PlacementRequested",
            "PlacementOffered"
        ]
    );

    // Accepting the patient opens the identity and the case's history to the hospital.
    let accepted = api.accept(HOSPITAL, &placement_id).await.unwrap();
    let (status, inbox) = api
        .http_get(
            Some(HOSPITAL),
            &format!(
                "/api/v1/views/facility_inbox?min_versions={}",
                versions(&accepted)
            ),
        )
        .await;
    assert_eq!(status, 200, "{inbox}");
    assert!(inbox["offers"].as_array().unwrap().is_empty());
    assert_eq!(ids(&inbox["inbound"], "case_id"), [case_id.as_str()]);
    assert_eq!(inbox["inbound"][0]["name"], PATIENT_NAME);
    assert_eq!(inbox["inbound"][0]["birth_date"], "1950-04-01");
    assert_eq!(inbox["inbound"][0]["status"], "PLACEMENT_STATUS_ACCEPTED");
    assert_eq!(moderate(&inbox)["held"], 1);
    assert_eq!(audits(&api, HOSPITAL, &case_id, "facility_inbox").await, 1);
    let (status, _) = api
        .http_get(
            Some(HOSPITAL),
            &format!("{case_path}&min_versions={}", versions(&accepted)),
        )
        .await;
    assert_eq!(status, 200);
    let (_, other) = api
        .http_get(Some(HOSPITAL_OTHER), "/api/v1/views/facility_inbox")
        .await;
    assert!(!other.to_string().contains(PATIENT_NAME));

    // HQ learns that a timeline does not exist; others only that they may not read it.
    let unknown = "/api/v1/views/timeline?case_id=0190a000-0000-7000-8000-000000000000";
    refused(
        &api.http_get(Some(HQ), unknown).await,
        404,
        "NOT_FOUND",
        None,
    );
    refused(
        &api.http_get(Some(HC), unknown).await,
        403,
        "PERMISSION_DENIED",
        None,
    );
}

#[tokio::test]
async fn an_accepted_placement_is_in_the_inbox_read_with_its_version_every_time() {
    let (api, _read_side) = world().await;
    const ROUNDS: usize = 200;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        ROUNDS as i64,
        ROUNDS as i64,
        0,
    )
    .await;
    for round in 0..ROUNDS {
        let case_id = api.report_case(pb::Severity::ModerateI).await;
        let placement_id = api
            .request_placement(&case_id, pb::BedCategory::Moderate)
            .await;
        api.offer(&placement_id, "hofu-central").await;
        let accepted = api.accept(HOSPITAL, &placement_id).await.unwrap();
        // Immediately, with the returned versions: no sleeping, no retrying.
        let (status, inbox) = api
            .http_get(
                Some(HOSPITAL),
                &format!(
                    "/api/v1/views/facility_inbox?min_versions={}",
                    versions(&accepted)
                ),
            )
            .await;
        assert_eq!(status, 200, "round {round}: {inbox}");
        let inbound = inbox["inbound"].as_array().unwrap();
        let row = inbound
            .iter()
            .find(|row| row["placement_id"] == placement_id.as_str())
            .unwrap_or_else(|| panic!("round {round}: the accepted placement is missing"));
        assert_eq!(row["status"], "PLACEMENT_STATUS_ACCEPTED", "round {round}");
        assert_eq!(inbound.len(), round + 1, "round {round}");
        assert_eq!(moderate(&inbox)["held"], round + 1, "round {round}");
    }
}

#[tokio::test]
async fn live_inbox_and_case_board_stream_only_what_the_subscriber_may_see() {
    let (api, _read_side) = settled_world().await;
    let wait = Duration::from_secs(10);
    let mut own = Events::open(&api, HOSPITAL, "/api/v1/views/facility_inbox/stream").await;
    let mut other = Events::open(&api, HOSPITAL_OTHER, "/api/v1/views/facility_inbox/stream").await;
    let mut board = Events::open(&api, HC, "/api/v1/views/case_board/stream").await;
    let mut other_board = Events::open(&api, HC_OTHER, "/api/v1/views/case_board/stream").await;
    for events in [&mut own, &mut other, &mut board, &mut other_board] {
        let (name, _) = events.next(wait).await.expect("a snapshot");
        assert_eq!(name, "snapshot");
    }

    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement_id, "hofu-central").await;

    // The health center's board follows its case to the offer.
    loop {
        let (name, delta) = board.next(wait).await.expect("a case board delta");
        assert_eq!(name, "delta");
        assert_eq!(ids(&delta["rows"], "case_id"), [case_id.as_str()]);
        if delta["rows"][0]["placement_status"] == "OFFERED" {
            assert_eq!(delta["rows"][0]["name"], PATIENT_NAME);
            break;
        }
    }
    // The hospital's inbox shows the offer, without identity.
    let delta = loop {
        let (name, delta) = own.next(wait).await.expect("an inbox delta");
        assert_eq!(name, "delta");
        if !delta["offers"].as_array().unwrap().is_empty() {
            break delta;
        }
    };
    assert_eq!(
        ids(&delta["offers"], "placement_id"),
        [placement_id.as_str()]
    );
    assert!(!delta.to_string().contains(PATIENT_NAME));

    let accept = api.accept(HOSPITAL, &placement_id).await.unwrap();
    let accepted = loop {
        let (_, delta) = own.next(wait).await.expect("an inbox delta");
        if !delta["inbound"].as_array().unwrap().is_empty() {
            break delta;
        }
    };
    assert_eq!(accepted["inbound"][0]["name"], PATIENT_NAME);
    // Every identity sent was audited: the board's snapshot held nothing, its deltas
    // carried the case; the inbox identified the patient once accepted.
    assert!(audits(&api, HC, &case_id, "case_board").await >= 1);
    assert!(audits(&api, HOSPITAL, &case_id, "facility_inbox").await >= 1);

    // Nothing of it reached the other hospital's inbox or the other health center's
    // board (only its own capacity might move, and it did not).
    assert!(other.next(Duration::from_millis(800)).await.is_none());
    assert!(other_board.next(Duration::from_millis(200)).await.is_none());
    assert_eq!(
        audits(&api, HOSPITAL_OTHER, &case_id, "facility_inbox").await,
        0
    );
    assert_eq!(audits(&api, HC_OTHER, &case_id, "case_board").await, 0);

    // The stream ends where a fresh read (with every write applied) is: the hold on
    // the bed may come in a later delta than the patient, from the bed_board projection.
    let (_, fresh) = api
        .http_get(
            Some(HOSPITAL),
            &format!(
                "/api/v1/views/facility_inbox?min_versions={}",
                versions(&accept)
            ),
        )
        .await;
    let mut latest = accepted;
    while latest["capacity"] != fresh["capacity"] {
        let (_, delta) = own.next(wait).await.expect("the held bed arrives");
        latest = delta;
    }
    assert_eq!(latest["inbound"], fresh["inbound"]);
    assert_eq!(moderate(&latest)["held"], 1);
}

/// `case-<id>:<version>` of the case's last event in the store, for `min_versions`.
async fn case_tail(api: &TestApi, case_id: &str) -> String {
    let stream = format!("case-{case_id}");
    let version: i64 = sqlx::query_scalar("SELECT max(version) FROM events WHERE stream_id = $1")
        .bind(&stream)
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    format!("{stream}:{version}")
}

/// Applies a case board snapshot or delta to `board`; returns the ids it removed.
fn apply_board(board: &mut BTreeMap<String, Value>, name: &str, data: &Value) -> Vec<String> {
    if name == "snapshot" {
        board.clear();
    } else {
        assert_eq!(name, "delta", "{data}");
    }
    for row in data["rows"].as_array().unwrap() {
        board.insert(row["case_id"].as_str().unwrap().to_owned(), row.clone());
    }
    let removed: Vec<String> = data["removed"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .map(|id| id.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    for id in &removed {
        assert!(board.remove(id).is_some(), "{id} was not on the board");
    }
    removed
}

#[tokio::test]
async fn a_live_case_board_follows_cases_into_and_out_of_its_filter() {
    let (api, _read_side) = settled_world().await;
    const FILTER: &str = "status=PLACEMENT_IN_PROGRESS&status=HOSPITALIZED";
    // Already placing when the subscriber connects.
    let placed = api.report_case(pb::Severity::ModerateI).await;
    let placed_request = api
        .request_placement(&placed, pb::BedCategory::Moderate)
        .await;
    let fresh = |min_versions: String| {
        let api = &api;
        async move {
            let (status, view) = api
                .http_get(
                    Some(HC),
                    &format!("/api/v1/views/case_board?{FILTER}&page_size=500&min_versions={min_versions}"),
                )
                .await;
            assert_eq!(status, 200, "{view}");
            view["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| (row["case_id"].as_str().unwrap().to_owned(), row.clone()))
                .collect::<BTreeMap<String, Value>>()
        }
    };
    let before = fresh(case_tail(&api, &placed).await).await;
    assert_eq!(before.keys().collect::<Vec<_>>(), [&placed]);

    let wait = Duration::from_secs(10);
    let mut events = Events::open(
        &api,
        HC,
        &format!("/api/v1/views/case_board/stream?{FILTER}"),
    )
    .await;
    let mut board = BTreeMap::new();
    let (name, snapshot) = events.next(wait).await.expect("a snapshot");
    apply_board(&mut board, &name, &snapshot);
    assert_eq!(board.keys().collect::<Vec<_>>(), [&placed]);

    // One case goes to hospital; one enters the filter and leaves it when its request
    // is cancelled; one enters and stays; one never enters it.
    api.offer(&placed_request, "hofu-central").await;
    api.accept(HOSPITAL, &placed_request).await.unwrap();
    api.transport(&placed_request).await;
    let arrived = api.arrive(HOSPITAL, &placed_request).await;
    let withdrawn = api.report_case(pb::Severity::ModerateI).await;
    let withdrawn_request = api
        .request_placement(&withdrawn, pb::BedCategory::Moderate)
        .await;
    let mut removed = Vec::new();
    while !board.contains_key(&withdrawn) {
        let (name, data) = events.next(wait).await.expect("the case enters the board");
        removed.extend(apply_board(&mut board, &name, &data));
    }
    let cancelled = api.cancel(&withdrawn_request).await;
    let waiting = api.report_case(pb::Severity::Severe).await;
    api.request_placement(&waiting, pb::BedCategory::Moderate)
        .await;
    let outside = api.report_case(pb::Severity::Mild).await;
    let last = api.report_case(pb::Severity::Mild).await;

    let mut tails = vec![versions(&arrived), versions(&cancelled)];
    for case_id in [&waiting, &outside, &last] {
        tails.push(case_tail(&api, case_id).await);
    }
    let expected = fresh(tails.join(",")).await;
    assert_eq!(expected.keys().count(), 2, "{expected:?}");
    assert!(expected.contains_key(&placed) && expected.contains_key(&waiting));
    assert_eq!(expected[&placed]["status"], "CASE_STATUS_HOSPITALIZED");
    while board != expected {
        let (name, data) = events
            .next(wait)
            .await
            .unwrap_or_else(|| panic!("the board stopped at {board:?}, not {expected:?}"));
        removed.extend(apply_board(&mut board, &name, &data));
    }
    assert!(removed.contains(&withdrawn), "{removed:?}");
    assert!(!removed.contains(&outside) && !board.contains_key(&outside));
}

#[tokio::test]
async fn bad_view_requests_are_refused_with_the_offending_field() {
    let (api, _read_side) = world().await;
    let case_id = api.report_case(pb::Severity::Mild).await;

    let cases = [
        ("/api/v1/views/beds", "view"),
        ("/api/v1/views/beds/stream", "view"),
        ("/api/v1/views/case_board?page_size=501", "page_size"),
        ("/api/v1/views/case_board?page_size=many", "page_size"),
        ("/api/v1/views/case_board?page_token=zz", "page_token"),
        ("/api/v1/views/case_board?status=SLEEPING", "status"),
        ("/api/v1/views/case_board?sort=name", "sort"),
        (
            "/api/v1/views/case_board?min_versions=case-x",
            "min_versions",
        ),
        ("/api/v1/views/timeline", "case_id"),
        ("/api/v1/views/timeline?case_id=42", "case_id"),
        ("/api/v1/views/bed_board?category=SUITE", "category"),
    ];
    for (path, field) in cases {
        refused(
            &api.http_get(Some(HC), path).await,
            400,
            "INVALID_ARGUMENT",
            Some(field),
        );
    }
    // Waiting for a stream the caller may not follow would tell whether it exists.
    for (actor, path) in [
        (HC_OTHER, "/api/v1/views/bed_board"),
        (HOSPITAL, "/api/v1/views/facility_inbox"),
        (HC_OTHER, "/api/v1/views/case_board"),
    ] {
        refused(
            &api.http_get(
                Some(actor),
                &format!("{path}?min_versions=case-{case_id}:1"),
            )
            .await,
            400,
            "INVALID_ARGUMENT",
            Some("min_versions"),
        );
    }
    refused(
        &api.http_get(
            Some(HOSPITAL),
            "/api/v1/views/facility_inbox?min_versions=facility-ube-medical:1",
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        Some("min_versions"),
    );
    // Nothing was read, so nothing was audited.
    let audited: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    assert_eq!(audited, 0);
    // The owner may follow it.
    let (status, _) = api
        .http_get(
            Some(HC),
            &format!("/api/v1/views/case_board?min_versions=case-{case_id}:1"),
        )
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_case_board_pages_through_many_cases() {
    let (api, _read_side) = world().await;
    let mut reported = Vec::new();
    for _ in 0..7 {
        reported.push(api.report_case(pb::Severity::Mild).await);
    }
    let last = api.report_case(pb::Severity::Mild).await;
    reported.push(last.clone());
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/views/case_board?page_size=3&min_versions=case-{last}:1");
    loop {
        let (status, page) = api.http_get(Some(HC), &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["total"], 8);
        let rows = ids(&page["rows"], "case_id");
        assert!(rows.len() <= 3);
        seen.extend(rows);
        match page["next_page_token"].as_str() {
            Some(token) => {
                path = format!("/api/v1/views/case_board?page_size=3&page_token={token}")
            }
            None => break,
        }
    }
    seen.sort();
    reported.sort();
    assert_eq!(seen, reported);
    // Each case was audited once, on the page that showed it.
    for case_id in &reported {
        assert_eq!(audits(&api, HC, case_id, "case_board").await, 1);
    }
}

#[tokio::test]
async fn grpc_serves_the_same_patient_views_with_the_same_rules() {
    use noroshi_tests::api::authed;
    use tonic::Code;
    let (api, _read_side) = settled_world().await;
    let mut views = api.views();
    let mut own = views
        .watch_facility_inbox(authed(HOSPITAL, pb::GetFacilityInboxRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let mut other = views
        .watch_facility_inbox(authed(
            HOSPITAL_OTHER,
            pb::GetFacilityInboxRequest::default(),
        ))
        .await
        .unwrap()
        .into_inner();
    for stream in [&mut own, &mut other] {
        let first = stream.message().await.unwrap().unwrap();
        assert!(matches!(
            first.update,
            Some(pb::facility_inbox_update::Update::Snapshot(_))
        ));
    }

    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    let offered = api.offer(&placement_id, "hofu-central").await;
    let min_versions = Some(pb::MinVersions {
        streams: offered.streams.clone(),
    });

    let inbox = views
        .get_facility_inbox(authed(
            HOSPITAL,
            pb::GetFacilityInboxRequest {
                min_versions: min_versions.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.offers.len(), 1);
    assert_eq!(inbox.offers[0].placement_id, placement_id);
    assert_eq!(inbox.offers[0].age_band, "70-79");
    let (_, json) = api
        .http_get(Some(HOSPITAL), "/api/v1/views/facility_inbox")
        .await;
    assert_eq!(
        ids(&json["offers"], "placement_id"),
        [placement_id.as_str()]
    );

    // The offer arrives on the hospital's stream, never on the other's.
    let delta = loop {
        let update = tokio::time::timeout(Duration::from_secs(10), own.message())
            .await
            .expect("an inbox delta in time")
            .unwrap()
            .unwrap();
        match update.update {
            Some(pb::facility_inbox_update::Update::Delta(inbox)) if !inbox.offers.is_empty() => {
                break inbox;
            }
            _ => continue,
        }
    };
    assert_eq!(delta.offers[0].placement_id, placement_id);
    assert!(
        tokio::time::timeout(Duration::from_millis(800), other.message())
            .await
            .is_err(),
        "nothing reaches another hospital"
    );

    let board = views
        .get_case_board(authed(
            HC,
            pb::GetCaseBoardRequest {
                min_versions: min_versions.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(board.rows.len(), 1);
    assert_eq!(board.rows[0].name, PATIENT_NAME);
    assert_eq!(board.rows[0].placement_status.as_deref(), Some("OFFERED"));
    assert_eq!(audits(&api, HC, &case_id, "case_board").await, 1);

    let history = views
        .get_timeline(authed(
            HOSPITAL,
            pb::GetTimelineRequest {
                subject: Some(pb::get_timeline_request::Subject::PlacementId(
                    placement_id.clone(),
                )),
                min_versions,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let types: Vec<&str> = history
        .entries
        .iter()
        .map(|e| e.event_type.as_str())
        .collect();
    assert_eq!(types, ["PlacementRequested", "PlacementOffered"]);

    // The same refusals as over HTTP.
    let too_big = views
        .get_case_board(authed(
            HC,
            pb::GetCaseBoardRequest {
                page_size: 501,
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(too_big.code(), Code::InvalidArgument);
    assert!(too_big.message().contains("page_size"), "{too_big:?}");
    let denied = views
        .get_case_board(authed(HOSPITAL, pb::GetCaseBoardRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let hidden = views
        .get_timeline(authed(
            HC_OTHER,
            pb::GetTimelineRequest {
                subject: Some(pb::get_timeline_request::Subject::CaseId(case_id.clone())),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::PermissionDenied);
    let nobody = views
        .get_facility_inbox(authed(
            HOSPITAL,
            pb::GetFacilityInboxRequest {
                facility_id: "ube-medical".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::PermissionDenied);

    // Every request above is counted and timed, by transport, route and status.
    let (status, metrics) = api.http_get(None, "/metrics").await;
    assert_eq!(status, 200);
    let text = metrics.as_str().expect("the metrics text");
    for expected in [
        r#"noroshi_requests_total{transport="grpc",route="/noroshi.v1.ViewService/GetFacilityInbox",status="0"} 1"#,
        r#"noroshi_requests_total{transport="grpc",route="/noroshi.v1.ViewService/GetFacilityInbox",status="7"} 1"#,
        r#"noroshi_requests_total{transport="grpc",route="/noroshi.v1.ViewService/GetCaseBoard",status="3"} 1"#,
        r#"noroshi_requests_total{transport="http",route="/api/v1/views/facility_inbox",status="200"} 3"#,
        r#"noroshi_request_duration_seconds_count{transport="grpc",route="/noroshi.v1.PlacementService/OfferPlacement",status="0"} 1"#,
        r#"noroshi_projection_lag_positions{projection="case_board"}"#,
        "noroshi_event_store_head_position ",
        "noroshi_relay_backlog_events ",
        "noroshi_append_shared_statements_total ",
        "noroshi_append_shared_appends_total ",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // The group-commit counters are the event store's own.
    let counted = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert_eq!(
        (
            counted("noroshi_append_shared_statements_total "),
            counted("noroshi_append_shared_appends_total ")
        ),
        api.handler.store().batched().get()
    );
}

/// Reports a case, offers its placement to `target`, and has `actor` follow the stream at
/// `path` (given the case id; it ends in `?` or `&`) from the offer on. The case, the
/// placement, the stream, and its snapshot.
async fn offer_then_follow(
    api: &TestApi,
    target: &str,
    actor: Actor,
    path: impl FnOnce(&str) -> String,
) -> (String, String, Events, Value) {
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    let offered = api.offer(&placement_id, target).await;
    let path = format!("{}min_versions={}", path(&case_id), versions(&offered));
    let mut events = Events::open(api, actor, &path).await;
    let (name, snapshot) = events
        .next(Duration::from_secs(10))
        .await
        .expect("a snapshot");
    assert_eq!(name, "snapshot", "{snapshot}");
    (case_id, placement_id, events, snapshot)
}

/// A live timeline sends the history, then every event applied since exactly once, and
/// ends as a fresh read does; only those who may read the timeline can follow it.
#[tokio::test]
async fn a_live_timeline_sends_each_event_once_and_ends_as_a_fresh_read() {
    let (api, _read_side) = settled_world().await;
    let wait = Duration::from_secs(10);
    let (case_id, placement_id, mut live, snapshot) =
        offer_then_follow(&api, "ube-medical", HC, |case_id| {
            format!("/api/v1/views/timeline/stream?case_id={case_id}&")
        })
        .await;
    let mut entries: Vec<Value> = snapshot["entries"].as_array().unwrap().clone();
    assert_eq!(
        ids(&Value::from(entries.clone()), "event_type"),
        [
            "CaseReported",
            "CaseStatusChanged",
            "PlacementRequested",
            "PlacementOffered"
        ]
    );
    // Neither a hospital not yet involved in the case nor another health center may follow it.
    for actor in [HOSPITAL, HC_OTHER] {
        let path = format!("/api/v1/views/timeline/stream?case_id={case_id}");
        let answer = tokio::time::timeout(wait, api.http_get(Some(actor), &path))
            .await
            .expect("a refusal, not a stream");
        refused(&answer, 403, "PERMISSION_DENIED", None);
    }

    api.decline(HOSPITAL_OTHER, &placement_id).await;
    api.offer(&placement_id, "hofu-central").await;
    let last = api.accept(HOSPITAL, &placement_id).await.unwrap();
    let (status, fresh) = api
        .http_get(
            Some(HC),
            &format!(
                "/api/v1/views/timeline?case_id={case_id}&min_versions={}",
                versions(&last)
            ),
        )
        .await;
    assert_eq!(status, 200, "{fresh}");
    let fresh = fresh["entries"].as_array().unwrap().clone();
    while entries.len() < fresh.len() {
        let (name, delta) = live.next(wait).await.unwrap_or_else(|| {
            panic!("the stream stopped at {} of {}", entries.len(), fresh.len())
        });
        assert_eq!(name, "delta", "{delta}");
        entries.extend(delta["entries"].as_array().unwrap().iter().cloned());
    }
    entries.sort_by_key(|e| e["position"].as_i64());
    assert_eq!(entries, fresh, "each event once, and nothing else");
    assert!(live.next(Duration::from_millis(500)).await.is_none());
}

/// A live inbox follows what its rows show of other facilities (the medical area of the
/// health center that owns an offered case, as its origin area), and nothing of other
/// hospitals' capacity.
#[tokio::test]
async fn a_live_inbox_follows_its_origins_areas_and_not_other_hospitals_capacity() {
    let (api, _read_side) = settled_world().await;
    let wait = Duration::from_secs(10);
    let (_, _, mut inbox, snapshot) = offer_then_follow(&api, "hofu-central", HOSPITAL, |_| {
        "/api/v1/views/facility_inbox/stream?".to_owned()
    })
    .await;
    assert_eq!(snapshot["offers"][0]["origin_area"], "3504", "{snapshot}");

    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        8,
        6,
        1,
    )
    .await;
    assert!(
        inbox.next(Duration::from_secs(2)).await.is_none(),
        "another hospital's capacity is not in this inbox"
    );

    // The owning health center moves to another medical area; the offer follows.
    api.facilities()
        .update_facility(authed(
            ADMIN,
            pb::UpdateFacilityRequest {
                command_id: cid(),
                facility_id: "hofu-hc".into(),
                name: "防府健康福祉センター".into(),
                medical_area: "3505".into(),
                municipality: HOFU.into(),
                jurisdiction: vec![HOFU.into()],
                active: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let (name, delta) = inbox.next(wait).await.expect("a delta");
    assert_eq!(name, "delta", "{delta}");
    assert_eq!(delta["offers"][0]["origin_area"], "3505", "{delta}");
}

/// The reasons people state (a decline, a cancel, HQ's override) are free text: HQ and
/// the case's health center read them in a timeline; a hospital only its own decline.
#[tokio::test]
async fn timeline_reasons_reach_the_coordinators_and_a_facility_only_its_own() {
    let (api, _read_side) = world().await;
    for (hospital, facility) in [(HOSPITAL, "hofu-central"), (HOSPITAL_OTHER, "ube-medical")] {
        api.declare(hospital, facility, pb::BedCategory::Moderate, 10, 10, 0)
            .await;
    }
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    api.override_priority(&case_id, 1).await;
    api.offer(&placement_id, "ube-medical").await;
    api.decline(HOSPITAL_OTHER, &placement_id).await;
    api.offer(&placement_id, "hofu-central").await;
    api.accept(HOSPITAL, &placement_id).await.unwrap();
    let cancelled = api.cancel(&placement_id).await;
    let fresh = versions(&cancelled);

    // (event type, priority, reason) of each entry, as `actor` reads the timeline.
    let read = |actor: Actor, subject: String| {
        let api = &api;
        // A hospital may not wait for streams it does not follow; HQ's read comes first
        // and waits for them all.
        let fresh = if actor.role == "HOSPITAL" {
            String::new()
        } else {
            fresh.clone()
        };
        async move {
            let (status, history) = api
                .http_get(
                    Some(actor),
                    &format!("/api/v1/views/timeline?{subject}&min_versions={fresh}"),
                )
                .await;
            assert_eq!(status, 200, "{history}");
            history["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| !e["reason"].is_null() || !e["priority"].is_null())
                .map(|e| {
                    (
                        e["event_type"].as_str().unwrap().to_owned(),
                        e["priority"].as_i64(),
                        e["reason"].as_str().map(str::to_owned),
                    )
                })
                .collect::<Vec<_>>()
        }
    };
    let stated = |event: &str, priority: Option<i64>, reason: Option<&str>| {
        (event.to_owned(), priority, reason.map(str::to_owned))
    };
    let case = format!("case_id={case_id}");
    let placement = format!("placement_id={placement_id}");
    for coordinator in [HQ, HC] {
        assert_eq!(
            read(coordinator, case.clone()).await,
            [
                stated("CaseReported", Some(2), None),
                stated("PriorityOverridden", Some(1), Some("妊娠後期、急変の恐れ")),
                stated("PlacementDeclined", None, Some("満床のため")),
                stated("PlacementCancelled", None, Some("調整終了")),
            ]
        );
    }
    // The hospital that declined reads its own reason, nothing of the others'.
    assert_eq!(
        read(HOSPITAL_OTHER, placement.clone()).await,
        [stated("PlacementDeclined", None, Some("満床のため"))]
    );
    // The one that accepted reads the case's history, the priorities but no reason.
    assert_eq!(
        read(HOSPITAL, case.clone()).await,
        [
            stated("CaseReported", Some(2), None),
            stated("PriorityOverridden", Some(1), None)
        ]
    );

    // The same over gRPC.
    let timeline = |actor: Actor| {
        let api = &api;
        let placement_id = placement_id.clone();
        async move {
            api.views()
                .get_timeline(authed(
                    actor,
                    pb::GetTimelineRequest {
                        subject: Some(pb::get_timeline_request::Subject::PlacementId(placement_id)),
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .entries
                .into_iter()
                .filter_map(|e| e.reason)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(timeline(HQ).await, ["満床のため", "調整終了"]);
    assert_eq!(timeline(HOSPITAL).await, Vec::<String>::new());
}
