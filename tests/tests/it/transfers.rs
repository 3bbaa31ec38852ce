//! The patient's path between facilities (DESIGN.md §5.4): the facility where a patient is
//! records their observations, and an escalation, a step-down or a transfer keeps the
//! patient's bed until they arrive at the next, where one append ends the stay they left.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{
    Actor, HC, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, TestApi, authed, cid, min_versions,
};
use noroshi_tests::pipeline::{Pipeline, live_world};
use noroshi_tests::sse::Events;
use serde_json::Value;
use tonic::Code;

async fn world() -> (TestApi, (Pipeline, NatsServer)) {
    live_world(&[
        (HOSPITAL, "hofu-central", pb::BedCategory::Moderate, 10),
        (HOSPITAL_OTHER, "ube-medical", pb::BedCategory::Moderate, 10),
        (HOTEL, "yuda-hotel", pb::BedCategory::HotelRoom, 20),
    ])
    .await
}

/// What the views say once they reflect `fresh`: a facility's occupied beds of a
/// category (bed_board, as HQ), and the case's row on its health center's board.
struct Seen {
    board: Value,
    case: Value,
}

impl Seen {
    async fn at(api: &TestApi, case_id: &str, fresh: &str) -> Self {
        let (status, board) = api
            .http_get(
                Some(HQ),
                &format!("/api/v1/views/bed_board?min_versions={fresh}"),
            )
            .await;
        assert_eq!(status, 200, "{board}");
        let (status, cases) = api
            .http_get(
                Some(HC),
                &format!("/api/v1/views/case_board?min_versions={fresh}"),
            )
            .await;
        assert_eq!(status, 200, "{cases}");
        let case = cases["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["case_id"] == case_id)
            .unwrap_or_else(|| panic!("case {case_id} on the board: {cases}"))
            .clone();
        Self { board, case }
    }

    fn occupied(&self, facility: &str, category: &str) -> u64 {
        self.board["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|row| row["facility_id"] == facility && row["category"] == category)
            .and_then(|row| row["occupied"].as_u64())
            .unwrap_or_else(|| panic!("{facility} {category}: {}", self.board))
    }

    fn status(&self) -> &str {
        self.case["status"].as_str().unwrap()
    }
}

const ROOM: &str = "BED_CATEGORY_HOTEL_ROOM";
const MODERATE: &str = "BED_CATEGORY_MODERATE";

/// `actor` requests a placement of `case_id` in `category`.
async fn request(
    api: &TestApi,
    actor: Actor,
    case_id: &str,
    category: pb::BedCategory,
) -> Result<(String, pb::CommandResult), tonic::Status> {
    let result = api
        .placements()
        .request_placement(authed(
            actor,
            pb::RequestPlacementRequest {
                command_id: cid(),
                case_id: case_id.into(),
                category: category as i32,
                needs: vec![],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await?
        .into_inner();
    let placement = result.stream_id.trim_start_matches("placement-").to_owned();
    Ok((placement, result))
}

/// A placement from offer to departure: offered to and accepted by `facility`, then the
/// health center's transport.
async fn accepted_and_on_the_way(
    api: &TestApi,
    placement_id: &str,
    actor: Actor,
    facility: &str,
) -> pb::CommandResult {
    api.offer(placement_id, facility).await;
    let accepted = api.accept(actor, placement_id).await.expect("accept");
    api.transport(placement_id).await;
    accepted
}

/// `actor` records an observation of `case_id` with an SpO₂ of `spo2`.
async fn observe(
    api: &TestApi,
    actor: Actor,
    case_id: &str,
    spo2: i64,
) -> Result<pb::CommandResult, tonic::Status> {
    api.cases()
        .record_observation(authed(
            actor,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.into(),
                spo2_percent: spo2,
                temperature_decicelsius: 378,
                ..pb::RecordObservationRequest::default()
            },
        ))
        .await
        .map(tonic::Response::into_inner)
}

/// The stored events of `stream` after version `after`: (type, command id).
async fn events_after(api: &TestApi, stream: &str, after: u64) -> Vec<(String, uuid::Uuid)> {
    api.db
        .store()
        .read_stream(&noroshi_tests::fixtures::stream(stream), after + 1, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            (
                e.event_type.trim_start_matches("noroshi.v1.").to_owned(),
                e.command_id,
            )
        })
        .collect()
}

/// A case placed at `facility` (`actor`) in `category`: its id, its placement, and the
/// arrival's result.
async fn placed(
    api: &TestApi,
    severity: pb::Severity,
    category: pb::BedCategory,
    actor: Actor,
    facility: &str,
) -> (String, String, pb::CommandResult) {
    let case_id = api.report_case(severity).await;
    let (placement, _) = request(api, HC, &case_id, category).await.unwrap();
    accepted_and_on_the_way(api, &placement, actor, facility).await;
    let arrived = api.arrive(actor, &placement).await;
    (case_id, placement, arrived)
}

/// Follows an SSE stream until a `case_board` row of `case_id` satisfies `wanted`.
async fn until_row(events: &mut Events, case_id: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    loop {
        let (name, data) = events
            .next(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("no update of case {case_id} came"));
        assert!(name == "snapshot" || name == "delta", "{name}: {data}");
        if let Some(row) = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["case_id"] == case_id && wanted(row))
        {
            return row.clone();
        }
    }
}

#[tokio::test]
async fn a_hotel_escalation_keeps_the_room_until_the_hospital_records_arrival() {
    let (api, _read_side) = world().await;
    let (case_id, stay, arrived) = placed(
        &api,
        pb::Severity::Mild,
        pb::BedCategory::HotelRoom,
        HOTEL,
        "yuda-hotel",
    )
    .await;
    let seen = Seen::at(&api, &case_id, &min_versions(&[&arrived])).await;
    assert_eq!(seen.status(), "CASE_STATUS_IN_HOTEL");
    assert_eq!(seen.occupied("yuda-hotel", ROOM), 1);

    // The hotel records an SpO₂ of 92 % for its MILD resident: the health center's board
    // and HQ's show the deterioration live, with who recorded it.
    let mut hc_board = Events::open(&api, HC, "/api/v1/views/case_board/stream").await;
    let mut hq_board = Events::open(&api, HQ, "/api/v1/views/case_board/stream").await;
    let observed = observe(&api, HOTEL, &case_id, 92).await.unwrap();
    assert_eq!(
        events_after(&api, &format!("case-{case_id}"), observed.version - 2)
            .await
            .into_iter()
            .map(|(kind, _)| kind)
            .collect::<Vec<_>>(),
        ["ObservationRecorded", "DeteriorationFlagged"]
    );
    for board in [&mut hc_board, &mut hq_board] {
        let row = until_row(board, &case_id, |row| row["deteriorated"] == true).await;
        assert_eq!(row["last_spo2"], 92, "{row}");
        assert_eq!(row["last_observed_by"], "yuda-hotel", "{row}");
        assert_eq!(row["status"], "CASE_STATUS_IN_HOTEL", "{row}");
    }
    // Nobody else with the patient's data records observations of them.
    for other in [HOSPITAL, HOSPITAL_OTHER] {
        let refused = observe(&api, other, &case_id, 92).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    }

    // The hotel escalates in one step: the resident keeps the room, the case stays IN_HOTEL,
    // and HQ's queue shows the request with the deterioration.
    let mut hq_queue = Events::open(&api, HQ, "/api/v1/views/placement_queue/stream").await;
    let (escalation, requested) = request(&api, HOTEL, &case_id, pb::BedCategory::Moderate)
        .await
        .expect("the hotel requests a hospital bed for its resident");
    assert_eq!(
        events_after(&api, &format!("case-{case_id}"), observed.version).await[0].0,
        "TransferRequested"
    );
    let seen = Seen::at(&api, &case_id, &min_versions(&[&requested])).await;
    assert_eq!(seen.status(), "CASE_STATUS_IN_HOTEL");
    assert_eq!(seen.occupied("yuda-hotel", ROOM), 1);
    let row = loop {
        let (_, data) = hq_queue
            .next(Duration::from_secs(15))
            .await
            .expect("the escalation reaches HQ's queue");
        if let Some(row) = data["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|row| row["placement_id"] == escalation.as_str())
        {
            break row.clone();
        }
    };
    assert_eq!(row["deteriorated"], true, "{row}");
    assert_eq!(
        (row["origin_kind"].as_str(), row["origin"].as_str()),
        (Some("FACILITY"), Some("yuda-hotel")),
        "{row}"
    );

    // Offered, accepted, on the way: the room stays occupied at every step, and the
    // hotel cannot free it by discharging while the escalation is live.
    let accepted = accepted_and_on_the_way(&api, &escalation, HOSPITAL, "hofu-central").await;
    let seen = Seen::at(&api, &case_id, &min_versions(&[&accepted])).await;
    assert_eq!(seen.status(), "CASE_STATUS_IN_HOTEL");
    assert_eq!(seen.occupied("yuda-hotel", ROOM), 1);
    // The hotel's inbox shows its resident with the observation it recorded, and where
    // the escalation stands.
    let (status, inbox) = api
        .http_get(
            Some(HOTEL),
            // Requested, offered, accepted, transport arranged, departed.
            &format!("/api/v1/views/facility_inbox?min_versions=placement-{escalation}:5"),
        )
        .await;
    assert_eq!(status, 200, "{inbox}");
    let resident = inbox["placed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["case_id"] == case_id.as_str())
        .unwrap_or_else(|| panic!("the resident in the hotel's inbox: {inbox}"));
    assert_eq!(resident["last_spo2"], 92, "{resident}");
    assert_eq!(resident["deteriorated"], true, "{resident}");
    assert_eq!(resident["moving_on_placement_id"], escalation.as_str());
    assert_eq!(resident["moving_on_target"], "hofu-central", "{resident}");
    assert_eq!(
        resident["moving_on_status"], "PLACEMENT_STATUS_IN_TRANSIT",
        "{resident}"
    );
    let discharge = api
        .placements()
        .record_discharge(authed(
            HOTEL,
            pb::RecordDischargeRequest {
                command_id: cid(),
                placement_id: stay.clone(),
                outcome: pb::DischargeOutcome::Transfer as i32,
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(discharge.code(), Code::FailedPrecondition, "{discharge:?}");

    // The hospital records the arrival: in the same append, the hotel stay is discharged
    // and the room vacated.
    let hotel_version = |result: &pb::CommandResult| {
        result
            .streams
            .iter()
            .find(|s| s.stream_id == "facility-yuda-hotel")
            .map(|s| s.version)
    };
    let hotel_before = api
        .db
        .store()
        .read_stream(
            &noroshi_tests::fixtures::stream("facility-yuda-hotel"),
            1,
            1000,
        )
        .await
        .unwrap()
        .len() as u64;
    let stay_before = api
        .db
        .store()
        .read_stream(
            &noroshi_tests::fixtures::stream(&format!("placement-{stay}")),
            1,
            1000,
        )
        .await
        .unwrap()
        .len() as u64;
    let arrival = api.arrive(HOSPITAL, &escalation).await;
    assert_eq!(
        hotel_version(&arrival),
        Some(hotel_before + 1),
        "{arrival:?}"
    );
    let vacated = events_after(&api, "facility-yuda-hotel", hotel_before).await;
    let discharged = events_after(&api, &format!("placement-{stay}"), stay_before).await;
    let arrived = events_after(&api, &format!("placement-{escalation}"), 0).await;
    let (kind, command) = arrived.last().unwrap().clone();
    assert_eq!(kind, "PatientArrived");
    assert_eq!(vacated, [("BedVacated".to_owned(), command)]);
    assert_eq!(discharged, [("PatientDischarged".to_owned(), command)]);
    let seen = Seen::at(&api, &case_id, &min_versions(&[&arrival])).await;
    assert_eq!(seen.status(), "CASE_STATUS_HOSPITALIZED");
    assert_eq!(seen.occupied("yuda-hotel", ROOM), 0);
    assert_eq!(seen.occupied("hofu-central", MODERATE), 1);

    // The hotel's inbox no longer lists the resident; the hospital's does (each waits
    // for its own facility's stream, the one it may follow).
    for (actor, facility, listed) in [
        (HOTEL, "yuda-hotel", false),
        (HOSPITAL, "hofu-central", true),
    ] {
        let stream = format!("facility-{facility}");
        let own = arrival
            .streams
            .iter()
            .find(|s| s.stream_id == stream)
            .map(|s| format!("{stream}:{}", s.version))
            .unwrap();
        let (status, inbox) = api
            .http_get(
                Some(actor),
                &format!("/api/v1/views/facility_inbox?min_versions={own}"),
            )
            .await;
        assert_eq!(status, 200, "{inbox}");
        let placed: Vec<&str> = inbox["placed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["case_id"].as_str().unwrap())
            .collect();
        assert_eq!(
            placed.contains(&case_id.as_str()),
            listed,
            "{facility}: {inbox}"
        );
    }
}

#[tokio::test]
async fn a_step_down_and_a_hospital_transfer_keep_the_bed_until_arrival() {
    let (api, _read_side) = world().await;

    // A step-down from a hospital to a hotel.
    let (case_id, _, arrived) = placed(
        &api,
        pb::Severity::ModerateI,
        pb::BedCategory::Moderate,
        HOSPITAL,
        "hofu-central",
    )
    .await;
    assert_eq!(
        Seen::at(&api, &case_id, &min_versions(&[&arrived]))
            .await
            .occupied("hofu-central", MODERATE),
        1
    );
    let (step_down, _) = request(&api, HOSPITAL, &case_id, pb::BedCategory::HotelRoom)
        .await
        .expect("the hospital requests a step-down");
    let accepted = accepted_and_on_the_way(&api, &step_down, HOTEL, "yuda-hotel").await;
    let seen = Seen::at(&api, &case_id, &min_versions(&[&accepted])).await;
    assert_eq!(seen.status(), "CASE_STATUS_HOSPITALIZED");
    assert_eq!(seen.occupied("hofu-central", MODERATE), 1);
    let arrival = api.arrive(HOTEL, &step_down).await;
    let seen = Seen::at(&api, &case_id, &min_versions(&[&arrival])).await;
    assert_eq!(seen.status(), "CASE_STATUS_IN_HOTEL");
    assert_eq!(seen.occupied("hofu-central", MODERATE), 0);
    assert_eq!(seen.occupied("yuda-hotel", ROOM), 1);

    // A transfer from one hospital to another, the other patient's.
    let (other, _, arrived) = placed(
        &api,
        pb::Severity::ModerateIi,
        pb::BedCategory::Moderate,
        HOSPITAL,
        "hofu-central",
    )
    .await;
    let (transfer, _) = request(&api, HOSPITAL, &other, pb::BedCategory::Moderate)
        .await
        .unwrap();
    let accepted = accepted_and_on_the_way(&api, &transfer, HOSPITAL_OTHER, "ube-medical").await;
    let seen = Seen::at(&api, &other, &min_versions(&[&arrived, &accepted])).await;
    assert_eq!(seen.status(), "CASE_STATUS_HOSPITALIZED");
    assert_eq!(seen.occupied("hofu-central", MODERATE), 1);
    assert_eq!(seen.occupied("ube-medical", MODERATE), 0);
    let arrival = api.arrive(HOSPITAL_OTHER, &transfer).await;
    let seen = Seen::at(&api, &other, &min_versions(&[&arrival])).await;
    assert_eq!(seen.status(), "CASE_STATUS_HOSPITALIZED");
    assert_eq!(seen.occupied("hofu-central", MODERATE), 0);
    assert_eq!(seen.occupied("ube-medical", MODERATE), 1);
    let streams: Vec<&str> = arrival
        .streams
        .iter()
        .map(|s| s.stream_id.as_str())
        .collect();
    assert!(streams.contains(&"facility-hofu-central"), "{streams:?}");
    assert!(streams.contains(&"facility-ube-medical"), "{streams:?}");
}

#[tokio::test]
async fn a_cancelled_transfer_leaves_the_patient_in_their_bed() {
    let (api, _read_side) = world().await;
    let (case_id, stay, _) = placed(
        &api,
        pb::Severity::ModerateI,
        pb::BedCategory::Moderate,
        HOSPITAL,
        "hofu-central",
    )
    .await;
    let (transfer, _) = request(&api, HOSPITAL, &case_id, pb::BedCategory::Moderate)
        .await
        .unwrap();
    // One live placement per case: a second request is refused.
    let second = request(&api, HC, &case_id, pb::BedCategory::Moderate)
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition, "{second:?}");
    let accepted = accepted_and_on_the_way(&api, &transfer, HOSPITAL_OTHER, "ube-medical").await;
    let seen = Seen::at(&api, &case_id, &min_versions(&[&accepted])).await;
    assert_eq!(seen.occupied("ube-medical", MODERATE), 0);
    let cancelled = api.cancel(&transfer).await;
    assert_eq!(
        events_after(&api, &format!("case-{case_id}"), 0)
            .await
            .last()
            .unwrap()
            .0,
        "TransferCancelled"
    );
    let seen = Seen::at(&api, &case_id, &min_versions(&[&cancelled])).await;
    assert_eq!(seen.status(), "CASE_STATUS_HOSPITALIZED");
    assert_eq!(seen.occupied("hofu-central", MODERATE), 1);
    assert_eq!(seen.occupied("ube-medical", MODERATE), 0);
    // Nothing moves the patient on any more: the hospital may discharge them.
    api.discharge(HOSPITAL, &stay, pb::DischargeOutcome::Recovered)
        .await;
}
