//! `bed_board` through `ViewService` and `/api/v1/views/bed_board`: the same content,
//! filtered for the caller, fresh with `min_versions`, and UNAVAILABLE rather than stale
//! when the view cannot catch up in time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use noroshi_projections::views::ViewSettings;
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    ApiOptions, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HQ, PUBLIC, TestApi, UBE, authed,
    report_request,
};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::sse::Events;
use serde_json::{Value, json};
use tonic::Code;

/// `min_versions` of a command's result, for gRPC and for the HTTP query string.
fn after(result: &pb::CommandResult) -> (pb::MinVersions, String) {
    let grpc = pb::MinVersions {
        streams: result.streams.clone(),
    };
    let http = result
        .streams
        .iter()
        .map(|s| format!("{}:{}", s.stream_id, s.version))
        .collect::<Vec<_>>()
        .join(",");
    (grpc, http)
}

/// (facility, category) → (secured, ready, occupied, held, available) of a JSON answer.
fn json_rows(view: &Value) -> BTreeMap<(String, String), [u64; 5]> {
    view["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            let n = |k: &str| r[k].as_u64().expect(k);
            (
                (
                    r["facility_id"].as_str().unwrap().to_owned(),
                    r["category"].as_str().unwrap().to_owned(),
                ),
                [
                    n("secured"),
                    n("ready"),
                    n("occupied"),
                    n("held"),
                    n("available"),
                ],
            )
        })
        .collect()
}

fn grpc_rows(view: &pb::BedBoard) -> BTreeMap<(String, String), [u64; 5]> {
    view.rows
        .iter()
        .map(|r| {
            // As the canonical JSON names it.
            let category = pb::BedCategory::try_from(r.category)
                .unwrap()
                .as_str_name()
                .to_owned();
            (
                (r.facility_id.clone(), category),
                [r.secured, r.ready, r.occupied, r.held, r.available].map(u64::from),
            )
        })
        .collect()
}

/// The seeded test world with its read side (relay, nats-server, projections), whose
/// reads wait at most `wait` for `min_versions`.
async fn world(wait: Duration) -> (TestApi, (Pipeline, NatsServer)) {
    let nats = NatsServer::start().await;
    let api = TestApi::with(ApiOptions {
        views: ViewSettings {
            read_your_writes_wait: wait,
            ..ViewSettings::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
    (api, (pipeline, nats))
}

#[tokio::test]
async fn bed_board_is_the_same_over_grpc_and_http_and_fresh_after_a_write() {
    let (api, _read_side) = world(Duration::from_millis(500)).await;

    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        8,
        6,
        7,
    )
    .await;
    let declared = api
        .declare(HQ, "hofu-central", pb::BedCategory::Moderate, 20, 12, 5)
        .await;
    let (grpc_after, http_after) = after(&declared);

    // Read your writes: no sleeping, the answer waits for the declaration.
    let view = api
        .views()
        .get_bed_board(authed(
            HQ,
            pb::GetBedBoardRequest {
                min_versions: Some(grpc_after.clone()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let rows = grpc_rows(&view);
    assert_eq!(
        rows[&("hofu-central".into(), "BED_CATEGORY_MODERATE".into())],
        [20, 12, 5, 0, 7]
    );
    let hofu = view
        .rows
        .iter()
        .find(|r| r.facility_id == "hofu-central" && r.category == pb::BedCategory::Moderate as i32)
        .unwrap();
    assert_eq!(hofu.proxy_by.as_deref(), Some("yamaguchi-hq"));
    assert!(!hofu.stale && !hofu.overflow);
    assert!(view.stream_sequence > 0);

    let (status, json) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/bed_board?min_versions={http_after}"),
        )
        .await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(json_rows(&json), rows, "HTTP and gRPC give the same rows");
    assert_eq!(json["occupancy_definition"], "v1: occupied / secured");
    // Ube declared more patients than usable beds: flagged, and nothing available.
    let json_row = |facility: &str, category: &str| {
        json["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["facility_id"] == facility && r["category"] == category)
            .cloned()
            .unwrap_or_else(|| panic!("no {facility} {category} row"))
    };
    let ube = json_row("ube-medical", "BED_CATEGORY_MODERATE");
    assert_eq!(ube["overflow"], true);
    assert_eq!(ube["available"], 0);
    // Categories a facility has never declared are on the board too, as stale zeros, so
    // HQ sees who has not reported.
    let never = json_row("ube-medical", "BED_CATEGORY_SEVERE");
    assert_eq!(
        (never["secured"].as_u64(), never["stale"].as_bool()),
        (Some(0), Some(true))
    );
    assert!(never["declared_at"].is_null());
    let hotel = json_row("yuda-hotel", "BED_CATEGORY_HOTEL_ROOM");
    assert_eq!(hotel["stale"], true);
    assert_eq!(
        json["rows"].as_array().unwrap().len(),
        7,
        "3 categories for each of the 2 hospitals, 1 for the hotel"
    );
    // Totals per area and for the prefecture, with the occupancy rate.
    assert_eq!(json["prefecture"]["secured"], 28);
    assert_eq!(json["prefecture"]["occupied"], 12);
    assert!((json["prefecture"]["occupancy_rate"].as_f64().unwrap() - 12.0 / 28.0).abs() < 1e-9);
    let areas: Vec<&str> = json["areas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["medical_area"].as_str().unwrap())
        .collect();
    assert_eq!(areas, ["3504", "3505"]);

    // Filters.
    let (_, only_ube_area) = api
        .http_get(Some(HC), "/api/v1/views/bed_board?medical_area=3505")
        .await;
    assert!(
        json_rows(&only_ube_area)
            .keys()
            .all(|(facility, _)| facility == "ube-medical"),
        "{only_ube_area}"
    );
    let (_, severe) = api
        .http_get(Some(HQ), "/api/v1/views/bed_board?category=SEVERE")
        .await;
    assert_eq!(
        json_rows(&severe).keys().collect::<Vec<_>>(),
        [
            &("hofu-central".to_owned(), "BED_CATEGORY_SEVERE".to_owned()),
            &("ube-medical".to_owned(), "BED_CATEGORY_SEVERE".to_owned())
        ]
    );

    // Scope: a hospital sees its own capacity only; a health center the whole board.
    let (_, own) = api
        .http_get(Some(HOSPITAL), "/api/v1/views/bed_board")
        .await;
    assert!(
        json_rows(&own).keys().all(|(f, _)| f == "hofu-central"),
        "{own}"
    );
    let own = api
        .views()
        .get_bed_board(authed(HOSPITAL_OTHER, pb::GetBedBoardRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert!(own.rows.iter().all(|r| r.facility_id == "ube-medical"));
    assert_eq!(
        own.prefecture.unwrap().secured,
        8,
        "totals of what it may see"
    );
    let (_, all) = api.http_get(Some(HC), "/api/v1/views/bed_board").await;
    assert_eq!(json_rows(&all).len(), 7);
}

#[tokio::test]
async fn bed_board_refusals_have_their_codes() {
    let (api, _read_side) = world(Duration::from_millis(300)).await;

    // The public sees public_stats only; nobody reads without a token.
    let (status, json) = api.http_get(Some(PUBLIC), "/api/v1/views/bed_board").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (403, Some("PERMISSION_DENIED"))
    );
    let denied = api
        .views()
        .get_bed_board(authed(PUBLIC, pb::GetBedBoardRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let (status, json) = api.http_get(None, "/api/v1/views/bed_board").await;
    assert_eq!(
        (status, json["code"].as_str()),
        (401, Some("UNAUTHENTICATED"))
    );

    // A version the view will never reach: UNAVAILABLE after the bounded wait, not
    // an answer that silently misses the caller's write.
    let (status, json) = api
        .http_get(
            Some(HQ),
            "/api/v1/views/bed_board?min_versions=facility-hofu-central:999",
        )
        .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (503, Some("UNAVAILABLE")),
        "{json}"
    );
    assert!(
        json["message"]
            .as_str()
            .unwrap()
            .contains("bed_board has not applied")
    );
    let unavailable = api
        .views()
        .get_bed_board(authed(
            HQ,
            pb::GetBedBoardRequest {
                min_versions: Some(pb::MinVersions {
                    streams: vec![pb::StreamVersion {
                        stream_id: "facility-hofu-central".into(),
                        version: 999,
                        position: 0,
                    }],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unavailable.code(), Code::Unavailable);

    // Bad parameters name themselves.
    let (status, json) = api
        .http_get(
            Some(HQ),
            "/api/v1/views/bed_board?medical_area=35&category=HUGE&min_versions=nonsense&color=red",
        )
        .await;
    assert_eq!(
        (status, json["code"].as_str()),
        (400, Some("INVALID_ARGUMENT"))
    );
    let fields: Vec<&str> = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["medical_area", "category", "min_versions", "color"]
    );
    let invalid = api
        .views()
        .get_bed_board(authed(
            HQ,
            pb::GetBedBoardRequest {
                categories: vec![42],
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);

    let (status, json) = api.http_get(None, "/readyz").await;
    assert_eq!(status, 200, "{json}");
    let (status, _) = api.http_get(None, "/healthz").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn placement_queue_shows_hq_everything_and_a_health_center_its_own_cases() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        5,
        0,
    )
    .await;
    let case_id = api.report_case(pb::Severity::ModerateIi).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    let offered = api.offer(&placement_id, "hofu-central").await;
    let (grpc_after, http_after) = after(&offered);

    let (status, queue) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={http_after}"),
        )
        .await;
    assert_eq!(status, 200, "{queue}");
    let rows = queue["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["placement_id"], placement_id.as_str());
    assert_eq!(row["case_id"], case_id.as_str());
    assert_eq!(row["case_owner"], "hofu-hc");
    assert_eq!(row["status"], "PLACEMENT_STATUS_OFFERED");
    assert_eq!(row["target"], "hofu-central");
    assert!(row["offer_deadline"].is_string());
    assert_eq!(row["hold_overdue"], false);

    // The same over gRPC, for the health center that owns the case.
    let own_queue = |min_versions| async {
        api.views()
            .get_placement_queue(authed(
                HC,
                pb::GetPlacementQueueRequest {
                    min_versions: Some(min_versions),
                    as_of: None,
                },
            ))
            .await
            .unwrap()
            .into_inner()
    };
    let own = own_queue(grpc_after).await;
    assert_eq!(own.rows.len(), 1);
    assert_eq!(own.rows[0].placement_id, placement_id);
    assert_eq!(own.rows[0].status, pb::PlacementStatus::Offered as i32);
    assert_eq!(
        (
            own.rows[0].priority,
            own.rows[0].priority_overridden,
            own.rows[0].priority_reason.as_deref()
        ),
        (1, false, None)
    );

    // The row follows the case's priority: HQ overrides it, read with the case's version.
    let overridden = api.override_priority(&case_id, 3).await;
    let (grpc_after, http_after) = after(&overridden);
    let (_, queue) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={http_after}"),
        )
        .await;
    let row = &queue["rows"][0];
    assert_eq!(
        (
            &row["priority"],
            &row["priority_overridden"],
            &row["priority_reason"]
        ),
        (&json!(3), &json!(true), &json!("妊娠後期、急変の恐れ")),
        "{queue}"
    );
    let own = own_queue(grpc_after).await;
    assert_eq!(
        (
            own.rows[0].priority,
            own.rows[0].priority_overridden,
            own.rows[0].priority_reason.as_deref()
        ),
        (3, true, Some("妊娠後期、急変の恐れ"))
    );
    // Another health center sees none of it; a hospital works from its inbox.
    let (_, other) = api
        .http_get(Some(HC_OTHER), "/api/v1/views/placement_queue")
        .await;
    assert_eq!(other["rows"].as_array().unwrap().len(), 0);
    let (status, _) = api
        .http_get(Some(HOSPITAL), "/api/v1/views/placement_queue")
        .await;
    assert_eq!(status, 403);

    // Arrival takes the placement out of the queue.
    api.accept(HOSPITAL, &placement_id).await.unwrap();
    api.transport(&placement_id).await;
    let arrived = api.arrive(HOSPITAL, &placement_id).await;
    let (_, http_after) = after(&arrived);
    let (_, queue) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={http_after}"),
        )
        .await;
    assert_eq!(queue["rows"].as_array().unwrap().len(), 0, "{queue}");
}

#[tokio::test]
async fn public_stats_counts_by_area_and_suppresses_small_counts_of_people() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    let hofu_beds = api
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            30,
            20,
            10,
        )
        .await;
    let ube_beds = api
        .declare(
            HOSPITAL_OTHER,
            "ube-medical",
            pb::BedCategory::Moderate,
            8,
            6,
            3,
        )
        .await;
    // Hofu (3504): 7 cases, 2 of them with a placement requested. Ube (3505): 1 case.
    let mut hofu = Vec::new();
    for _ in 0..7 {
        hofu.push(api.report_case(pb::Severity::Mild).await);
    }
    for case_id in &hofu[..2] {
        api.request_placement(case_id, pb::BedCategory::Moderate)
            .await;
    }
    let mut ube_case = report_request(pb::Severity::Mild);
    ube_case.municipality = UBE.into();
    let last = api
        .cases()
        .report_case(authed(HC_OTHER, ube_case))
        .await
        .unwrap()
        .into_inner();
    let (grpc_after, _) = after(&last);

    // The writer waits for its writes (the relay publishes different streams'
    // events concurrently, so the last write's being applied says nothing of the
    // declarations'); the public may not follow a case's stream.
    let writes = noroshi_tests::api::min_versions(&[&hofu_beds, &ube_beds, &last]);
    let (status, stats) = api
        .http_get(
            Some(HC_OTHER),
            &format!("/api/v1/views/public_stats?min_versions={writes}"),
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    let (status, stats) = api
        .http_get(Some(PUBLIC), "/api/v1/views/public_stats")
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["suppress_below"], 5);
    let area = |code: &str| {
        stats["areas"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["medical_area"] == code)
            .cloned()
            .unwrap_or_else(|| panic!("no area {code}: {stats}"))
    };
    let cases = |area: &Value| -> BTreeMap<String, Value> {
        area["cases"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["status"].as_str().unwrap().to_owned(), c["count"].clone()))
            .collect()
    };
    let moderate = |area: &Value| {
        area["beds"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["category"] == "BED_CATEGORY_MODERATE")
            .cloned()
            .unwrap()
    };

    let hofu_area = area("3504");
    assert!(
        cases(&hofu_area)["CASE_STATUS_REPORTED"].is_null(),
        "5 is withheld too: the prefecture's 6 less 5 would give Ube's 1 away"
    );
    assert!(
        cases(&hofu_area)["CASE_STATUS_PLACEMENT_IN_PROGRESS"].is_null(),
        "2 is suppressed"
    );
    let beds = moderate(&hofu_area);
    assert_eq!(beds["secured"], 30);
    assert!(
        beds["occupied"].is_null() && beds["available"].is_null(),
        "10 of the prefecture's 13 would give Ube's 3 away: {beds}"
    );
    assert!(
        hofu_area["occupancy_rate"].is_null(),
        "the rate times 30 secured beds would give the 10"
    );

    let ube_area = area("3505");
    assert!(
        cases(&ube_area)["CASE_STATUS_REPORTED"].is_null(),
        "1 is suppressed"
    );
    let beds = moderate(&ube_area);
    assert_eq!(beds["secured"], 8, "capacity is not a count of people");
    assert!(beds["occupied"].is_null() && beds["available"].is_null());
    assert!(ube_area["occupancy_rate"].is_null());

    let prefecture = &stats["prefecture"];
    assert_eq!(cases(prefecture)["CASE_STATUS_REPORTED"], 6);
    assert!(cases(prefecture)["CASE_STATUS_PLACEMENT_IN_PROGRESS"].is_null());
    assert_eq!(moderate(prefecture)["occupied"], 13);
    // Nothing in it names a patient or a case.
    let text = stats.to_string();
    assert!(!text.contains("試験") && !text.contains(&hofu[0]), "{text}");

    // The same over gRPC, for any principal; the public may not follow a case.
    let refused = api
        .views()
        .get_public_stats(authed(
            PUBLIC,
            pb::GetPublicStatsRequest {
                min_versions: Some(grpc_after),
                as_of: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    let grpc = api
        .views()
        .get_public_stats(authed(PUBLIC, pb::GetPublicStatsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let prefecture = grpc.prefecture.unwrap();
    let reported = prefecture
        .cases
        .iter()
        .find(|c| c.status == pb::CaseStatus::Reported as i32)
        .unwrap();
    assert_eq!(reported.count, Some(6));
    let (status, _) = api.http_get(None, "/api/v1/views/public_stats").await;
    assert_eq!(status, 401);

    // Once Ube has no occupied bed left, no small count of beds needs Hofu's to hide it.
    let declared = api
        .declare(
            HOSPITAL_OTHER,
            "ube-medical",
            pb::BedCategory::Moderate,
            8,
            6,
            0,
        )
        .await;
    let (_, http_after) = after(&declared);
    let (status, stats) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/public_stats?min_versions={http_after}"),
        )
        .await;
    assert_eq!(status, 200, "{stats}");
    let hofu_area = stats["areas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["medical_area"] == "3504")
        .unwrap();
    let beds = moderate(hofu_area);
    assert_eq!(
        (beds["occupied"].clone(), beds["available"].clone()),
        (10.into(), 10.into())
    );
    assert!((hofu_area["occupancy_rate"].as_f64().unwrap() - 10.0 / 30.0).abs() < 1e-9);
    assert_eq!(moderate(&stats["prefecture"])["occupied"], 10);
}

/// Applies one `snapshot` or `delta` event to a board.
fn apply(board: &mut BTreeMap<(String, String), [u64; 5]>, name: &str, data: &Value) {
    if name == "snapshot" {
        *board = json_rows(data);
        return;
    }
    assert_eq!(name, "delta", "{data}");
    board.extend(json_rows(data));
    for removed in data["removed"].as_array().unwrap() {
        board.remove(&(
            removed["facility_id"].as_str().unwrap().to_owned(),
            removed["category"].as_str().unwrap().to_owned(),
        ));
    }
}

#[tokio::test]
async fn a_live_bed_board_ends_as_a_fresh_read_and_never_shows_another_s_rows() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        8,
        2,
    )
    .await;
    let first = api
        .declare(
            HOSPITAL_OTHER,
            "ube-medical",
            pb::BedCategory::Moderate,
            6,
            6,
            1,
        )
        .await;
    let (_, after_first) = after(&first);
    let stream = format!("/api/v1/views/bed_board/stream?min_versions={after_first}");
    let mut hq = Events::open(&api, HQ, &stream).await;
    // The hospital may not follow another facility's stream: it subscribes without.
    let mut hospital = Events::open(&api, HOSPITAL, "/api/v1/views/bed_board/stream").await;
    let mut hq_board = BTreeMap::new();
    let mut hospital_board = BTreeMap::new();
    for (events, board) in [
        (&mut hq, &mut hq_board),
        (&mut hospital, &mut hospital_board),
    ] {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .expect("a snapshot");
        assert_eq!(name, "snapshot");
        apply(board, &name, &data);
    }
    assert_eq!(
        hq_board[&("ube-medical".into(), "BED_CATEGORY_MODERATE".into())],
        [6, 6, 1, 0, 5]
    );

    // Changes arrive as deltas while the subscribers stay connected.
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        12,
        9,
        4,
    )
    .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        6,
        5,
        5,
    )
    .await;
    api.declare(HQ, "hofu-central", pb::BedCategory::Severe, 4, 3, 3)
        .await;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement_id, "hofu-central").await;
    let accepted = api.accept(HOSPITAL, &placement_id).await.unwrap();
    let (_, after_all) = after(&accepted);

    for (actor, events, board) in [
        (HQ, &mut hq, &mut hq_board),
        (HOSPITAL, &mut hospital, &mut hospital_board),
    ] {
        let (_, fresh) = api
            .http_get(
                Some(actor),
                &format!("/api/v1/views/bed_board?min_versions={after_all}"),
            )
            .await;
        let fresh = json_rows(&fresh);
        while *board != fresh {
            let (name, data) = events
                .next(Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("the stream stopped short of {fresh:?} at {board:?}"));
            if actor.organisation == "hofu-central" {
                for row in data["rows"].as_array().into_iter().flatten() {
                    assert_eq!(row["facility_id"], "hofu-central", "a delta leaked {row}");
                }
            }
            apply(board, &name, &data);
        }
    }
    assert_eq!(
        hq_board[&("hofu-central".into(), "BED_CATEGORY_MODERATE".into())],
        [12, 9, 4, 1, 4]
    );
    assert_eq!(
        hospital_board
            .keys()
            .filter(|(f, _)| f != "hofu-central")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_grpc_watch_gets_the_snapshot_then_only_its_own_deltas() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    let declared = api
        .declare(
            HOSPITAL_OTHER,
            "ube-medical",
            pb::BedCategory::Moderate,
            6,
            6,
            1,
        )
        .await;
    let (grpc_after, _) = after(&declared);
    let mut updates = api
        .views()
        .watch_bed_board(authed(
            HOSPITAL_OTHER,
            pb::GetBedBoardRequest {
                min_versions: Some(grpc_after),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let first = updates.message().await.unwrap().unwrap();
    let Some(pb::bed_board_update::Update::Snapshot(snapshot)) = first.update else {
        panic!("first comes the snapshot: {first:?}");
    };
    assert!(snapshot.rows.iter().all(|r| r.facility_id == "ube-medical"));

    // Another hospital's change reaches nobody else; then its own change arrives.
    api.declare(HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 9, 9, 9)
        .await;
    api.declare(
        HOSPITAL_OTHER,
        "ube-medical",
        pb::BedCategory::Moderate,
        6,
        4,
        2,
    )
    .await;
    let next = tokio::time::timeout(Duration::from_secs(10), updates.message())
        .await
        .expect("a delta")
        .unwrap()
        .unwrap();
    let Some(pb::bed_board_update::Update::Delta(delta)) = next.update else {
        panic!("then deltas: {next:?}");
    };
    assert_eq!(delta.rows.len(), 1, "{delta:?}");
    let row = &delta.rows[0];
    assert_eq!(
        (
            row.facility_id.as_str(),
            row.ready,
            row.occupied,
            row.available
        ),
        ("ube-medical", 4, 2, 2)
    );
    assert_eq!(
        delta.prefecture.unwrap().secured,
        6,
        "totals over its own rows"
    );

    let denied = api
        .views()
        .watch_bed_board(authed(PUBLIC, pb::GetBedBoardRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

/// placement id → status of a placement_queue answer or delta.
fn queue_rows(data: &Value) -> BTreeMap<String, String> {
    data["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["placement_id"].as_str().unwrap().to_owned(),
                r["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn a_live_placement_queue_follows_placements_in_and_out() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        8,
        0,
    )
    .await;
    let mut hq = Events::open(&api, HQ, "/api/v1/views/placement_queue/stream").await;
    let mut other = Events::open(&api, HC_OTHER, "/api/v1/views/placement_queue/stream").await;
    let mut queue = BTreeMap::new();
    for events in [&mut hq, &mut other] {
        let (name, data) = events
            .next(Duration::from_secs(10))
            .await
            .expect("a snapshot");
        assert_eq!(name, "snapshot");
        assert!(queue_rows(&data).is_empty());
    }

    let mut placements = Vec::new();
    for _ in 0..3 {
        let case_id = api.report_case(pb::Severity::ModerateI).await;
        placements.push(
            api.request_placement(&case_id, pb::BedCategory::Moderate)
                .await,
        );
    }
    api.offer(&placements[0], "hofu-central").await;
    api.accept(HOSPITAL, &placements[0]).await.unwrap();
    api.transport(&placements[0]).await;
    let arrived = api.arrive(HOSPITAL, &placements[0]).await;
    let offered = api.offer(&placements[1], "hofu-central").await;
    let cancelled = api.cancel(&placements[2]).await;
    // The relay keeps each stream's order, not an order across streams: wait for the
    // last write of each placement.
    let after_all = [arrived, offered, cancelled]
        .iter()
        .map(|result| after(result).1)
        .collect::<Vec<_>>()
        .join(",");
    let (_, fresh) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/placement_queue?min_versions={after_all}"),
        )
        .await;
    let fresh = queue_rows(&fresh);
    assert_eq!(
        fresh.len(),
        1,
        "arrived and cancelled placements left: {fresh:?}"
    );
    assert_eq!(fresh[&placements[1]], "PLACEMENT_STATUS_OFFERED");
    // Within less than the streams' 15 s look at the whole queue: the deltas come from
    // what each batch touched.
    while queue != fresh {
        let (name, data) = hq
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("the stream stopped short of {fresh:?} at {queue:?}"));
        assert_eq!(name, "delta", "{data}");
        queue.extend(queue_rows(&data));
        for removed in data["removed"].as_array().unwrap() {
            queue.remove(removed.as_str().unwrap());
        }
    }
    // The Ube health center owns none of these cases: nothing reached it.
    assert!(other.next(Duration::from_secs(2)).await.is_none());
}

#[tokio::test]
async fn live_public_stats_update_only_when_a_published_figure_changes() {
    let (api, _read_side) = world(ViewSettings::default().read_your_writes_wait).await;
    // The seeded facilities are in the statistics before the stream opens.
    let seeded = [
        "yamaguchi-hq",
        "hofu-hc",
        "ube-hc",
        "hofu-central",
        "ube-medical",
        "yuda-hotel",
    ]
    .map(|f| format!("facility-{f}:1"))
    .join(",");
    let (status, _) = api
        .http_get(
            Some(PUBLIC),
            &format!("/api/v1/views/public_stats?min_versions={seeded}"),
        )
        .await;
    assert_eq!(status, 200);
    let mut public = Events::open(&api, PUBLIC, "/api/v1/views/public_stats/stream").await;
    let (name, _) = public
        .next(Duration::from_secs(10))
        .await
        .expect("a snapshot");
    assert_eq!(name, "snapshot");
    let reported = |data: &Value| {
        data["areas"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["medical_area"] == "3504")
            .flat_map(|a| a["cases"].as_array().unwrap().clone())
            .find(|c| c["status"] == "CASE_STATUS_REPORTED")
            .map(|c| c["count"].clone())
    };

    // The first case makes the status appear, its count suppressed.
    api.report_case(pb::Severity::Mild).await;
    let (name, data) = public
        .next(Duration::from_secs(20))
        .await
        .expect("an update");
    assert_eq!(name, "update");
    assert_eq!(reported(&data), Some(Value::Null));
    // Cases two to four change nothing that is published: no update reveals them.
    for _ in 0..3 {
        api.report_case(pb::Severity::Mild).await;
    }
    assert!(public.next(Duration::from_secs(2)).await.is_none());
    // The fifth makes the count public.
    api.report_case(pb::Severity::Mild).await;
    let (name, data) = public
        .next(Duration::from_secs(20))
        .await
        .expect("an update");
    assert_eq!(name, "update");
    assert_eq!(reported(&data), Some(Value::from(5)));
}

/// Projections move past the streams they do not read without versioning them: a read
/// of such a view waiting on one of those streams does not wait, and once the flow stops
/// every projection's checkpoint reaches the end of the stream with no lag left.
#[tokio::test]
async fn projections_move_past_streams_they_do_not_read() {
    let (api, _read_side) = world(Duration::from_millis(500)).await;
    let mut declared = None;
    for ready in 1..=5 {
        declared = Some(
            api.declare(
                HOSPITAL,
                "hofu-central",
                pb::BedCategory::Moderate,
                10,
                ready,
                0,
            )
            .await,
        );
    }
    let (_, facility_after) = after(&declared.expect("declared"));

    // case_board reads cases and placements only: the facility's version is no reason to
    // wait (it would never be recorded for case_board, so waiting would time out).
    let (status, board) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/case_board?min_versions={facility_after}"),
        )
        .await;
    assert_eq!(status, 200, "{board}");
    // bed_board reads it, and shows the last declaration.
    let (status, board) = api
        .http_get(
            Some(HQ),
            &format!("/api/v1/views/bed_board?category=MODERATE&min_versions={facility_after}"),
        )
        .await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(
        json_rows(&board)[&("hofu-central".into(), "BED_CATEGORY_MODERATE".into())][1],
        5
    );

    let pool = api.db.pool().clone();
    noroshi_tests::eventually(
        "every projection reaches the end",
        Duration::from_secs(10),
        || {
            let pool = pool.clone();
            let api = &api;
            async move {
                let sequences: Vec<i64> = sqlx::query_scalar(
                    "SELECT stream_sequence FROM projection_checkpoints ORDER BY projection",
                )
                .fetch_all(&pool)
                .await
                .unwrap();
                let (status, ready) = api.http_get(None, "/readyz").await;
                assert_eq!(status, 200, "{ready}");
                let lags: Vec<u64> = ready["projections"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p["lag_positions"].as_u64().unwrap())
                    .collect();
                let views = noroshi_projections::View::ALL.len();
                sequences.len() == views
                    && sequences.iter().all(|s| *s == sequences[0])
                    && lags.len() == views
                    && lags.iter().all(|lag| *lag == 0)
            }
        },
    )
    .await;
    let unread: Vec<(String, String)> = sqlx::query_as(
        "SELECT projection, stream_id FROM projection_applied_versions \
         WHERE stream_id LIKE 'facility-%' \
           AND projection NOT IN ('bed_board', 'bed_reconciliation')",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(unread, [], "versions of streams a projection does not read");
}
