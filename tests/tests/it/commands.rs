//! The command API over gRPC against a real PostgreSQL: a full episode, the last-bed
//! race, idempotency, and precise errors for bad input.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    ADMIN, HC, HOSPITAL, HOSPITAL_OTHER, HOTEL, HQ, TestApi, UBE, authed, cid, declare_request,
    report_request,
};
use pb::{BedCategory as Bed, Severity};
use tonic::Code;
use tonic_types::StatusExt;

/// The fields named by the BadRequest details of an INVALID_ARGUMENT status.
fn violated_fields(status: &tonic::Status) -> Vec<String> {
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    let details = status.get_error_details();
    let bad_request = details
        .bad_request()
        .expect("INVALID_ARGUMENT carries google.rpc.BadRequest");
    bad_request
        .field_violations
        .iter()
        .map(|v| v.field.clone())
        .collect()
}

#[tokio::test]
async fn a_full_episode_moves_every_stream_through_its_states() {
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 10, 8, 2)
        .await;
    api.declare(HOSPITAL_OTHER, "ube-medical", Bed::Moderate, 6, 6, 0)
        .await;
    api.declare(HOTEL, "yuda-hotel", Bed::HotelRoom, 50, 40, 10)
        .await;

    let case_id = api.report_case(Severity::Mild).await;
    let case_stream = format!("case-{case_id}");
    api.cases()
        .triage_case(authed(
            HC,
            pb::TriageCaseRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                severity: Severity::ModerateIi as i32,
                risk_factors: vec![
                    pb::RiskFactor::Age65Plus as i32,
                    pb::RiskFactor::Diabetes as i32,
                ],
                needs: vec![],
                note: "SpO2 低下".into(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    let observed = api
        .cases()
        .record_observation(authed(
            HC,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                observed_at: None,
                temperature_decicelsius: 388,
                spo2_percent: 88,
                on_oxygen: false,
                symptoms: vec!["呼吸困難".into()],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        observed.version, 4,
        "observation and deterioration flag: {observed:?}"
    );

    // Request with oxygen as an extra need of this placement.
    let request = api
        .placements()
        .request_placement(authed(
            HC,
            pb::RequestPlacementRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                category: Bed::Moderate as i32,
                needs: vec![pb::Capability::Oxygen as i32],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(request.stream_id.starts_with("placement-"));
    assert_eq!(
        request.streams.len(),
        2,
        "placement and case in one append: {request:?}"
    );
    let placement_id = request
        .stream_id
        .trim_start_matches("placement-")
        .to_owned();
    let placement_stream = request.stream_id.clone();

    api.offer(&placement_id, "hofu-central").await;
    api.placements()
        .decline_placement(authed(
            HOSPITAL,
            pb::DeclinePlacementRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                reason: "人員不足".into(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.offer(&placement_id, "ube-medical").await;
    let accepted = api
        .placements()
        .accept_placement(authed(
            HOSPITAL_OTHER,
            pb::AcceptPlacementRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                override_capacity: false,
                override_reason: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.stream_id, placement_stream);
    assert!(
        accepted
            .streams
            .iter()
            .any(|s| s.stream_id == "facility-ube-medical"),
        "{accepted:?}"
    );
    api.placements()
        .arrange_transport(authed(
            HC,
            pb::ArrangeTransportRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                vehicle: pb::Vehicle::Ambulance as i32,
                pickup_at: None,
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.placements()
        .record_departure(authed(
            HC,
            pb::RecordDepartureRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    let arrived = api
        .placements()
        .record_arrival(authed(
            HOSPITAL_OTHER,
            pb::RecordArrivalRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        arrived.streams.len(),
        3,
        "placement, facility and case: {arrived:?}"
    );
    api.placements()
        .record_discharge(authed(
            HOSPITAL_OTHER,
            pb::RecordDischargeRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                outcome: pb::DischargeOutcome::StepDown as i32,
                note: "軽快".into(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();

    // Step-down to a hotel.
    let hotel_placement = api.request_placement(&case_id, Bed::HotelRoom).await;
    api.offer(&hotel_placement, "yuda-hotel").await;
    api.placements()
        .accept_placement(authed(
            HOTEL,
            pb::AcceptPlacementRequest {
                command_id: cid(),
                placement_id: hotel_placement.clone(),
                override_capacity: false,
                override_reason: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.placements()
        .arrange_transport(authed(
            HC,
            pb::ArrangeTransportRequest {
                command_id: cid(),
                placement_id: hotel_placement.clone(),
                vehicle: pb::Vehicle::HealthCenterVehicle as i32,
                pickup_at: None,
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.placements()
        .record_departure(authed(
            HC,
            pb::RecordDepartureRequest {
                command_id: cid(),
                placement_id: hotel_placement.clone(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.placements()
        .record_arrival(authed(
            HOTEL,
            pb::RecordArrivalRequest {
                command_id: cid(),
                placement_id: hotel_placement.clone(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();
    api.cases()
        .close_case(authed(
            HC,
            pb::CloseCaseRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                outcome: pb::CaseOutcome::Recovered as i32,
                note: "療養解除".into(),
                expected_version: None,
            },
        ))
        .await
        .unwrap();

    assert_eq!(
        api.event_types(&placement_stream).await,
        [
            "PlacementRequested",
            "PlacementOffered",
            "PlacementDeclined",
            "PlacementOffered",
            "PlacementAccepted",
            "TransportArranged",
            "PatientDeparted",
            "PatientArrived",
            "PatientDischarged",
        ]
    );
    assert_eq!(
        api.event_types(&format!("placement-{hotel_placement}"))
            .await,
        [
            "PlacementRequested",
            "PlacementOffered",
            "PlacementAccepted",
            "TransportArranged",
            "PatientDeparted",
            "PatientArrived"
        ]
    );
    assert_eq!(
        api.event_types(&case_stream).await,
        [
            "CaseReported",
            "CaseTriaged",
            "ObservationRecorded",
            "DeteriorationFlagged",
            "CaseStatusChanged",
            "CaseStatusChanged",
            "CaseStatusChanged",
            "CaseStatusChanged",
            "CaseStatusChanged",
            "CaseClosed",
        ]
    );
    assert_eq!(
        api.event_types("facility-ube-medical").await,
        [
            "FacilityRegistered",
            "CapacityDeclared",
            "BedHeld",
            "BedOccupied",
            "BedVacated"
        ]
    );
    assert_eq!(
        api.event_types("facility-yuda-hotel").await,
        [
            "FacilityRegistered",
            "CapacityDeclared",
            "BedHeld",
            "BedOccupied"
        ]
    );
    // Every status the case went through, from the store.
    let statuses: Vec<(i32, i32)> = api
        .db
        .store()
        .read_stream(&noroshi_tests::fixtures::stream(&case_stream), 1, 100)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.event_type == "noroshi.v1.CaseStatusChanged")
        .map(|e| {
            let change =
                <pb::CaseStatusChanged as prost::Message>::decode(e.payload.clone()).unwrap();
            (change.from, change.to)
        })
        .collect();
    use pb::CaseStatus as S;
    assert_eq!(
        statuses,
        [
            (S::Reported as i32, S::PlacementInProgress as i32),
            (S::PlacementInProgress as i32, S::Hospitalized as i32),
            (S::Hospitalized as i32, S::AwaitingPlacement as i32),
            (S::AwaitingPlacement as i32, S::PlacementInProgress as i32),
            (S::PlacementInProgress as i32, S::InHotel as i32),
        ]
    );

    // A closed case changes no more.
    let status = api
        .cases()
        .start_home_care(authed(
            HC,
            pb::StartHomeCareRequest {
                command_id: cid(),
                case_id,
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("RECOVERED"), "{status:?}");
}

#[tokio::test]
async fn forty_accepts_racing_for_seven_beds_give_exactly_seven_holds() {
    for round in 0..3 {
        let api = TestApi::start().await;
        api.seed().await;
        // 7 available: ready 9 − occupied 2.
        api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 10, 9, 2)
            .await;
        let mut placements = Vec::new();
        for _ in 0..40 {
            let case_id = api.report_case(Severity::ModerateI).await;
            let placement_id = api.request_placement(&case_id, Bed::Moderate).await;
            api.offer(&placement_id, "hofu-central").await;
            placements.push(placement_id);
        }
        let events_before = api.db.event_count().await;
        let mut racers = tokio::task::JoinSet::new();
        for placement_id in placements {
            let mut client = api.placements();
            racers.spawn(async move {
                client
                    .accept_placement(authed(
                        HOSPITAL,
                        pb::AcceptPlacementRequest {
                            command_id: cid(),
                            placement_id,
                            override_capacity: false,
                            override_reason: String::new(),
                            expected_version: None,
                        },
                    ))
                    .await
                    .map(|_| ())
                    .map_err(|status| (status.code(), status.message().to_owned()))
            });
        }
        let (mut accepted, mut refused) = (0, 0);
        while let Some(outcome) = racers.join_next().await {
            match outcome.unwrap() {
                Ok(()) => accepted += 1,
                Err((Code::FailedPrecondition, message)) => {
                    assert!(message.contains("no free MODERATE bed"), "{message}");
                    refused += 1;
                }
                Err(other) => panic!("round {round}: unexpected {other:?}"),
            }
        }
        assert_eq!((accepted, refused), (7, 33), "round {round}");
        let facility = api.event_types("facility-hofu-central").await;
        assert_eq!(
            facility.iter().filter(|t| *t == "BedHeld").count(),
            7,
            "round {round}"
        );
        // Each accepted placement wrote PlacementAccepted and BedHeld; nothing else.
        assert_eq!(
            api.db.event_count().await - events_before,
            14,
            "round {round}"
        );
        // The held count is what the domain derives from the stream.
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE stream_id LIKE 'placement-%' AND event_type = 'noroshi.v1.PlacementAccepted'",
        )
        .fetch_one(api.db.pool())
        .await
        .unwrap();
        assert_eq!(held, 7, "round {round}");
    }
}

#[tokio::test]
async fn the_same_command_id_gives_one_set_of_events_and_the_same_answer() {
    let api = TestApi::start().await;
    api.seed().await;
    let request = pb::DeclareCapacityRequest {
        command_id: cid(),
        facility_id: "hofu-central".into(),
        categories: vec![pb::DeclaredFigures {
            category: Bed::Severe as i32,
            secured: 4,
            ready: 4,
            occupied: 1,
        }],
        proxy_reason: String::new(),
        expected_version: None,
    };
    let before = api.db.event_count().await;
    let mut copies = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = api.facilities();
        let request = request.clone();
        copies.spawn(async move {
            client
                .declare_capacity(authed(HOSPITAL, request))
                .await
                .unwrap()
                .into_inner()
        });
    }
    let mut answers = Vec::new();
    while let Some(answer) = copies.join_next().await {
        answers.push(answer.unwrap());
    }
    let sequential = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, request.clone()))
        .await
        .unwrap()
        .into_inner();
    answers.push(sequential.clone());
    assert_eq!(
        api.db.event_count().await - before,
        1,
        "one CapacityDeclared"
    );
    assert_eq!(
        answers.iter().filter(|a| !a.replayed).count(),
        1,
        "exactly one call committed"
    );
    for answer in &answers {
        assert_eq!(
            (&answer.stream_id, answer.version, answer.position),
            (
                &sequential.stream_id,
                sequential.version,
                sequential.position
            )
        );
    }
    assert!(sequential.replayed);

    // A case reported twice with the same command id is one case, even though its id is
    // chosen by the server.
    let report = report_request(Severity::Mild);
    let first = api
        .cases()
        .report_case(authed(HC, report.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = api
        .cases()
        .report_case(authed(HC, report))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.stream_id, second.stream_id);
    assert!(second.replayed);

    // An accept retried after it succeeded returns the original answer, not "not offered".
    api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 5, 5, 0)
        .await;
    let case_id = api.report_case(Severity::ModerateI).await;
    let placement_id = api.request_placement(&case_id, Bed::Moderate).await;
    api.offer(&placement_id, "hofu-central").await;
    let accept = pb::AcceptPlacementRequest {
        command_id: cid(),
        placement_id,
        override_capacity: false,
        override_reason: String::new(),
        expected_version: None,
    };
    let once = api
        .placements()
        .accept_placement(authed(HOSPITAL, accept.clone()))
        .await
        .unwrap()
        .into_inner();
    let twice = api
        .placements()
        .accept_placement(authed(HOSPITAL, accept))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (once.version, once.position, once.streams.len()),
        (twice.version, twice.position, twice.streams.len())
    );
    assert!(twice.replayed && !once.replayed);
}

#[tokio::test]
async fn bad_input_is_invalid_argument_naming_the_field_and_appends_nothing() {
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 10, 8, 2)
        .await;
    api.declare(HOSPITAL_OTHER, "ube-medical", Bed::Moderate, 10, 8, 2)
        .await;
    let case_id = api.report_case(Severity::ModerateIi).await;
    let placement_id = api
        .placements()
        .request_placement(authed(
            HC,
            pb::RequestPlacementRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                category: Bed::Moderate as i32,
                needs: vec![pb::Capability::Ventilator as i32],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .stream_id
        .trim_start_matches("placement-")
        .to_owned();
    let before = api.db.event_count().await;

    let declare = |categories: Vec<pb::DeclaredFigures>| pb::DeclareCapacityRequest {
        command_id: cid(),
        facility_id: "hofu-central".into(),
        categories,
        proxy_reason: String::new(),
        expected_version: None,
    };
    let figures = |category: Bed, secured, ready, occupied| pb::DeclaredFigures {
        category: category as i32,
        secured,
        ready,
        occupied,
    };
    let triage = |severity: i32, command_id: String, case_id: String| pb::TriageCaseRequest {
        command_id,
        case_id,
        severity,
        risk_factors: vec![],
        needs: vec![],
        note: String::new(),
        expected_version: None,
    };

    // An unknown enum value.
    let status = api
        .cases()
        .triage_case(authed(HC, triage(42, cid(), case_id.clone())))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["severity"]);
    assert!(
        status.message().contains("unknown SEVERITY value 42"),
        "{status:?}"
    );
    // SpO2 of 120.
    let status = api
        .cases()
        .record_observation(authed(
            HC,
            pb::RecordObservationRequest {
                command_id: cid(),
                case_id: case_id.clone(),
                observed_at: None,
                temperature_decicelsius: 0,
                spo2_percent: 120,
                on_oxygen: false,
                symptoms: vec![],
                note: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["spo2_percent"]);
    // Negative beds.
    let status = api
        .facilities()
        .declare_capacity(authed(
            HOSPITAL,
            declare(vec![figures(Bed::Moderate, 10, -1, 0)]),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["categories[0].ready"]);
    assert!(
        status.message().contains("must not be negative"),
        "{status:?}"
    );
    // ready > secured.
    let status = api
        .facilities()
        .declare_capacity(authed(
            HOSPITAL,
            declare(vec![figures(Bed::Moderate, 5, 6, 0)]),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["categories[0].ready"]);
    // Hotel rooms at a hospital.
    let status = api
        .facilities()
        .declare_capacity(authed(
            HOSPITAL,
            declare(vec![figures(Bed::HotelRoom, 5, 5, 0)]),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["categories[0].category"]);
    // A 10,000-character name.
    let mut long_name = report_request(Severity::Mild);
    long_name.patient.as_mut().unwrap().name = "名".repeat(10_000);
    let status = api
        .cases()
        .report_case(authed(HC, long_name))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["patient.name"]);
    // A missing command id.
    let status = api
        .cases()
        .triage_case(authed(
            HC,
            triage(Severity::Mild as i32, String::new(), case_id.clone()),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["command_id"]);
    // A malformed UUID.
    let status = api
        .cases()
        .triage_case(authed(
            HC,
            triage(Severity::Mild as i32, cid(), "not-a-uuid".into()),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["case_id"]);
    // An offer to a facility lacking a needed capability (ventilator).
    let status = api
        .placements()
        .offer_placement(authed(
            HQ,
            pb::OfferPlacementRequest {
                command_id: cid(),
                placement_id: placement_id.clone(),
                facility_id: "ube-medical".into(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["facility_id"]);
    assert!(status.message().contains("VENTILATOR"), "{status:?}");
    // Several violations at once are all reported.
    let status = api
        .facilities()
        .declare_capacity(authed(
            HOSPITAL,
            pb::DeclareCapacityRequest {
                command_id: "x".into(),
                facility_id: "Bad Id".into(),
                categories: vec![],
                proxy_reason: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["command_id", "facility_id"]);

    assert_eq!(
        api.db.event_count().await,
        before,
        "no bad input appended anything"
    );

    // Once the hospital has a ventilator on record, the same offer is accepted.
    api.facilities()
        .update_facility(authed(
            ADMIN,
            pb::UpdateFacilityRequest {
                command_id: cid(),
                facility_id: "ube-medical".into(),
                name: "宇部あおば医療センター".into(),
                medical_area: "3505".into(),
                municipality: UBE.into(),
                capabilities: vec![
                    pb::Capability::Oxygen as i32,
                    pb::Capability::Ventilator as i32,
                ],
                active: true,
                ..Default::default()
            },
        ))
        .await
        .expect("ADMIN records the new capability");
    api.offer(&placement_id, "ube-medical").await;
    assert_eq!(
        api.event_types(&format!("placement-{placement_id}")).await,
        ["PlacementRequested", "PlacementOffered"]
    );
}

#[tokio::test]
async fn missing_tokens_stale_versions_and_oversized_messages_get_their_codes() {
    let api = TestApi::start().await;
    api.seed().await;
    let request = pb::DeclareCapacityRequest {
        command_id: cid(),
        facility_id: "hofu-central".into(),
        categories: vec![pb::DeclaredFigures {
            category: Bed::Mild as i32,
            secured: 1,
            ready: 1,
            occupied: 0,
        }],
        proxy_reason: String::new(),
        expected_version: None,
    };
    let status = api
        .facilities()
        .declare_capacity(tonic::Request::new(request.clone()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let mut wrong = tonic::Request::new(request.clone());
    wrong.metadata_mut().insert(
        "authorization",
        "Bearer not-a-known-token-at-all".parse().unwrap(),
    );
    assert_eq!(
        api.facilities()
            .declare_capacity(wrong)
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );

    // The facility stream is at version 1 (registered); a client expecting 5 is stale.
    let stale = pb::DeclareCapacityRequest {
        expected_version: Some(5),
        ..request.clone()
    };
    let status = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, stale))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted, "{status:?}");
    let current = pb::DeclareCapacityRequest {
        expected_version: Some(1),
        command_id: cid(),
        ..request.clone()
    };
    assert_eq!(
        api.facilities()
            .declare_capacity(authed(HOSPITAL, current))
            .await
            .unwrap()
            .into_inner()
            .version,
        2
    );

    let huge = pb::ReportCaseRequest {
        external_ref: "x".repeat(2 * 1024 * 1024),
        ..report_request(Severity::Mild)
    };
    let status = api.cases().report_case(authed(HC, huge)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");

    // Not found is said only to who may act on every target; others learn nothing.
    let unknown = pb::OfferPlacementRequest {
        command_id: cid(),
        placement_id: uuid::Uuid::now_v7().to_string(),
        facility_id: "hofu-central".into(),
        expected_version: None,
    };
    assert_eq!(
        api.placements()
            .offer_placement(authed(HQ, unknown.clone()))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let unknown_accept = pb::AcceptPlacementRequest {
        command_id: cid(),
        placement_id: unknown.placement_id.clone(),
        override_capacity: false,
        override_reason: String::new(),
        expected_version: None,
    };
    assert_eq!(
        api.placements()
            .accept_placement(authed(HOSPITAL, unknown_accept))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

/// A command id is the key of one request: the same request again is answered with the
/// first result; another request under it (other figures, another facility) is refused
/// with INVALID_ARGUMENT naming `command_id`, and writes nothing.
#[tokio::test]
async fn a_command_id_reused_for_another_request_is_refused_and_writes_nothing() {
    let api = TestApi::start().await;
    api.seed().await;
    let first = declare_request("hofu-central", Bed::Moderate, 10, 8, 2);
    let recorded = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, first.clone()))
        .await
        .unwrap()
        .into_inner();
    let again = api
        .facilities()
        .declare_capacity(authed(HOSPITAL, first.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(again.replayed);
    assert_eq!(
        (&again.stream_id, again.version),
        (&recorded.stream_id, recorded.version)
    );
    // The same request over HTTP, with the JSON names of the other style, is the same.
    let (status, over_http) = api
        .http_post(
            Some(HOSPITAL),
            "/api/v1/commands/DeclareCapacity",
            serde_json::json!({
                "commandId": first.command_id,
                "facilityId": "hofu-central",
                "categories": [{"category": "BED_CATEGORY_MODERATE", "secured": 10, "ready": 8, "occupied": 2}],
            })
            .to_string(),
        )
        .await;
    assert_eq!(status, 200, "{over_http}");
    assert_eq!(over_http["replayed"], true);

    let refused_reuse = |status: tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let fields: Vec<String> = status
            .get_details_bad_request()
            .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
            .unwrap_or_default();
        assert_eq!(fields, ["command_id"], "{status:?}");
        assert!(status.message().contains(&first.command_id), "{status:?}");
    };
    // Other figures under the same command id.
    let other_figures = pb::DeclareCapacityRequest {
        categories: vec![pb::DeclaredFigures {
            category: Bed::Moderate as i32,
            secured: 10,
            ready: 3,
            occupied: 7,
        }],
        ..first.clone()
    };
    refused_reuse(
        api.facilities()
            .declare_capacity(authed(HOSPITAL, other_figures))
            .await
            .unwrap_err(),
    );
    // HQ, for another facility, under the same command id.
    let other_facility = pb::DeclareCapacityRequest {
        facility_id: "ube-medical".into(),
        proxy_reason: "電話で受領".into(),
        ..first.clone()
    };
    refused_reuse(
        api.facilities()
            .declare_capacity(authed(HQ, other_facility))
            .await
            .unwrap_err(),
    );
    // Over HTTP: 400 with the same violation.
    let (status, body) = api
        .http_post(
            Some(HOSPITAL),
            "/api/v1/commands/DeclareCapacity",
            serde_json::json!({
                "command_id": first.command_id,
                "facility_id": "hofu-central",
                "categories": [{"category": "BED_CATEGORY_MODERATE", "secured": 10, "ready": 1, "occupied": 9}],
            })
            .to_string(),
        )
        .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{body}"
    );
    assert_eq!(body["violations"][0]["field"], "command_id");
    // Nothing was written: one declaration on the first facility, none on the other.
    assert_eq!(
        api.event_types("facility-hofu-central")
            .await
            .iter()
            .filter(|t| t.as_str() == "CapacityDeclared")
            .count(),
        1
    );
    assert!(
        !api.event_types("facility-ube-medical")
            .await
            .iter()
            .any(|t| t == "CapacityDeclared")
    );
}

/// Request bytes as they are, for messages no client library would send.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        use bytes::BufMut;
        dst.put_slice(&item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        use bytes::Buf;
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// Bytes that are not a message of the method (a field whose length runs past the end)
/// are INVALID_ARGUMENT on every service, unary or streaming, and the answer names no
/// internal type.
#[tokio::test]
async fn malformed_protobuf_is_invalid_argument_on_every_service() {
    let api = TestApi::start().await;
    api.seed().await;
    let malformed = vec![0x0a, 0xff, 0x01, 0x41];
    for (actor, path) in [
        (HOSPITAL, "/noroshi.v1.FacilityService/DeclareCapacity"),
        (HC, "/noroshi.v1.CaseService/ReportCase"),
        (HOSPITAL, "/noroshi.v1.PlacementService/AcceptPlacement"),
        (HQ, "/noroshi.v1.ViewService/GetBedBoard"),
    ] {
        let mut grpc = tonic::client::Grpc::new(api.channel());
        grpc.ready().await.unwrap();
        let status = grpc
            .unary(
                authed(actor, malformed.clone()),
                http::uri::PathAndQuery::from_static(path),
                RawCodec,
            )
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{path}: {status:?}");
        assert!(
            !status.message().contains("Request") && !status.message().contains("underflow"),
            "{path}: {status:?}"
        );
    }
    let mut grpc = tonic::client::Grpc::new(api.channel());
    grpc.ready().await.unwrap();
    let status = grpc
        .server_streaming(
            authed(HQ, malformed),
            http::uri::PathAndQuery::from_static("/noroshi.v1.ViewService/WatchBedBoard"),
            RawCodec,
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
}

/// A facility that accepted and accepts again (a double click, with a new command id)
/// always hears FAILED_PRECONDITION: the placement is already accepted by it. Also after
/// transport is arranged, and for a decline after the accept.
#[tokio::test]
async fn a_second_accept_by_the_same_facility_says_it_is_already_accepted() {
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 5, 5, 0)
        .await;
    let case_id = api.report_case(Severity::ModerateI).await;
    let placement_id = api.request_placement(&case_id, Bed::Moderate).await;
    api.offer(&placement_id, "hofu-central").await;
    api.accept(HOSPITAL, &placement_id).await.unwrap();
    let accept_again = || pb::AcceptPlacementRequest {
        command_id: cid(),
        placement_id: placement_id.clone(),
        override_capacity: false,
        override_reason: String::new(),
        expected_version: None,
    };
    let already = |status: tonic::Status| {
        assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
        assert!(
            status.message().contains("already accepted by you"),
            "{status:?}"
        );
    };
    for _ in 0..3 {
        already(
            api.placements()
                .accept_placement(authed(HOSPITAL, accept_again()))
                .await
                .unwrap_err(),
        );
    }
    already(
        api.placements()
            .decline_placement(authed(
                HOSPITAL,
                pb::DeclinePlacementRequest {
                    command_id: cid(),
                    placement_id: placement_id.clone(),
                    reason: "二重送信".into(),
                    expected_version: None,
                },
            ))
            .await
            .unwrap_err(),
    );
    api.transport(&placement_id).await;
    already(
        api.placements()
            .accept_placement(authed(HOSPITAL, accept_again()))
            .await
            .unwrap_err(),
    );
    // Another facility, never offered the patient, still learns nothing.
    let other = api
        .placements()
        .accept_placement(authed(HOSPITAL_OTHER, accept_again()))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::PermissionDenied, "{other:?}");
}

/// Server reflection answers both its versions: v1, and v1alpha, which many clients
/// still ask for.
#[tokio::test]
async fn server_reflection_lists_the_services_in_v1_and_v1alpha() {
    use futures_util::StreamExt;
    use tonic_reflection::pb::{v1, v1alpha};
    let api = TestApi::start().await;
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(api.channel());
    let request = v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut answers = client
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("{answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"noroshi.v1.FacilityService".to_owned()),
        "{names:?}"
    );

    let mut client = v1alpha::server_reflection_client::ServerReflectionClient::new(api.channel());
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = client
        .server_reflection_info(futures_util::stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.next().await.unwrap().unwrap();
    let Some(v1alpha::server_reflection_response::MessageResponse::ListServicesResponse(list)) =
        answer.message_response
    else {
        panic!("{answer:?}");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"noroshi.v1.ViewService".to_owned()),
        "{names:?}"
    );
}
