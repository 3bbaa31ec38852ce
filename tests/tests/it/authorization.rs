//! Every cell of the access matrix of DESIGN.md §7, through the gRPC API with real
//! tokens: allowed principals succeed, every other one gets PERMISSION_DENIED and
//! nothing is appended.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{
    ACTORS, ADMIN, Actor, CONSULT, CONSULT_OTHER, HC, HC_OTHER, HOSPITAL, HOSPITAL_OTHER, HQ,
    MOBILE, TestApi, UBE, authed, cid, report_request,
};
use pb::{BedCategory as Bed, Severity};
use tonic::Code;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Reported,
    Requested,
    Offered,
    Accepted,
    TransportArranged,
    InTransit,
    Arrived,
    /// Hospitalized at hofu-central, then a transfer requested by the hospital and
    /// accepted by ube-medical.
    TransferAccepted,
    /// Hospitalized at hofu-central, and a remote consult the hospital asked for (to any
    /// center)...
    ConsultRequested,
    /// ...taken by the Yamaguchi consult center...
    ConsultScheduled,
    /// ...held...
    ConsultInProgress,
    /// ...and completed with ESCALATE.
    ConsultEscalatable,
    /// In home care, in the care of the mobile clinic (DESIGN.md §5.4).
    InMobileClinicCare,
}

#[derive(Debug, Clone, Copy)]
enum Act {
    RegisterFacility,
    UpdateFacility,
    DeclareCapacity,
    SetAcceptance,
    ReportCase,
    TriageCase,
    RecordObservation,
    /// An observation of a patient in a hospital bed (DESIGN.md §5.4).
    ObserveAdmittedPatient,
    StartHomeCare,
    AssignCareSite,
    /// An observation of a patient at home by the mobile clinic caring for them.
    ObserveCaredPatient,
    /// A consult for a patient at home asked for by the mobile clinic caring for them.
    RequestConsultForCaredPatient,
    CloseCase,
    OverridePriority,
    RequestPlacement,
    RequestTransfer,
    OfferPlacement,
    CancelPlacement,
    AcceptPlacement,
    DeclinePlacement,
    ArrangeTransport,
    ArrangeTransferTransport,
    RecordDeparture,
    RecordArrival,
    RecordDischarge,
    RequestConsult,
    ScheduleConsult,
    StartConsult,
    CompleteConsult,
    MarkConsultMissed,
    CancelConsult,
    EscalateConsult,
}

/// The matrix: each action, the stage it needs, and who may do it.
const MATRIX: &[(Act, Option<Stage>, &[Actor])] = &[
    (Act::RegisterFacility, None, &[ADMIN]),
    (Act::UpdateFacility, None, &[ADMIN]),
    (Act::DeclareCapacity, None, &[HQ, HOSPITAL]),
    (Act::SetAcceptance, None, &[HQ, HOSPITAL]),
    (Act::ReportCase, None, &[HC, HC_OTHER]),
    (Act::TriageCase, Some(Stage::Reported), &[HC]),
    (Act::RecordObservation, Some(Stage::Reported), &[HC]),
    (
        Act::ObserveAdmittedPatient,
        Some(Stage::Arrived),
        &[HC, HOSPITAL],
    ),
    (Act::StartHomeCare, Some(Stage::Reported), &[HC]),
    (Act::AssignCareSite, Some(Stage::Reported), &[HC]),
    (
        Act::ObserveCaredPatient,
        Some(Stage::InMobileClinicCare),
        &[HC, MOBILE],
    ),
    (
        Act::RequestConsultForCaredPatient,
        Some(Stage::InMobileClinicCare),
        &[HQ, HC, MOBILE],
    ),
    (Act::CloseCase, Some(Stage::Reported), &[HC]),
    (Act::OverridePriority, Some(Stage::Reported), &[HQ]),
    (Act::RequestPlacement, Some(Stage::Reported), &[HQ, HC]),
    (
        Act::RequestTransfer,
        Some(Stage::Arrived),
        &[HQ, HC, HOSPITAL],
    ),
    (Act::OfferPlacement, Some(Stage::Requested), &[HQ]),
    (Act::CancelPlacement, Some(Stage::Requested), &[HQ, HC]),
    (Act::AcceptPlacement, Some(Stage::Offered), &[HOSPITAL]),
    (Act::DeclinePlacement, Some(Stage::Offered), &[HOSPITAL]),
    (Act::ArrangeTransport, Some(Stage::Accepted), &[HQ, HC]),
    (
        Act::ArrangeTransferTransport,
        Some(Stage::TransferAccepted),
        &[HQ, HC, HOSPITAL],
    ),
    (
        Act::RecordDeparture,
        Some(Stage::TransportArranged),
        &[HQ, HC],
    ),
    (Act::RecordArrival, Some(Stage::InTransit), &[HOSPITAL]),
    (Act::RecordDischarge, Some(Stage::Arrived), &[HOSPITAL]),
    (
        Act::RequestConsult,
        Some(Stage::Arrived),
        &[HQ, HC, HOSPITAL],
    ),
    (
        Act::ScheduleConsult,
        Some(Stage::ConsultRequested),
        &[CONSULT, CONSULT_OTHER],
    ),
    (Act::StartConsult, Some(Stage::ConsultScheduled), &[CONSULT]),
    (
        Act::CompleteConsult,
        Some(Stage::ConsultInProgress),
        &[CONSULT],
    ),
    (
        Act::MarkConsultMissed,
        Some(Stage::ConsultScheduled),
        &[CONSULT],
    ),
    (
        Act::CancelConsult,
        Some(Stage::ConsultRequested),
        &[HQ, HC, HOSPITAL],
    ),
    (
        Act::EscalateConsult,
        Some(Stage::ConsultEscalatable),
        &[HQ, HC, HOSPITAL, CONSULT],
    ),
];

#[derive(Debug, Default, Clone)]
struct Ctx {
    case_id: String,
    placement_id: String,
    consult_id: String,
}

async fn ok(
    result: Result<tonic::Response<pb::CommandResult>, tonic::Status>,
) -> pb::CommandResult {
    result.unwrap().into_inner()
}

/// A fresh Hofu case whose placement (to hofu-central) is at `stage`.
async fn setup(api: &TestApi, stage: Stage) -> Ctx {
    let case_id = api.report_case(Severity::ModerateI).await;
    let mut ctx = Ctx {
        case_id: case_id.clone(),
        placement_id: String::new(),
        consult_id: String::new(),
    };
    if stage == Stage::Reported {
        return ctx;
    }
    if stage == Stage::InMobileClinicCare {
        let mut cases = api.cases();
        ok(cases
            .start_home_care(authed(
                HC,
                pb::StartHomeCareRequest {
                    command_id: cid(),
                    case_id: case_id.clone(),
                    ..pb::StartHomeCareRequest::default()
                },
            ))
            .await)
        .await;
        ok(cases
            .assign_care_site(authed(
                HC,
                pb::AssignCareSiteRequest {
                    command_id: cid(),
                    case_id: case_id.clone(),
                    care_site_id: MOBILE.organisation.into(),
                    ..pb::AssignCareSiteRequest::default()
                },
            ))
            .await)
        .await;
        return ctx;
    }
    ctx.placement_id = api.request_placement(&case_id, Bed::Moderate).await;
    let p = ctx.placement_id.clone();
    let steps = [
        Stage::Offered,
        Stage::Accepted,
        Stage::TransportArranged,
        Stage::InTransit,
        Stage::Arrived,
    ];
    let until = if matches!(
        stage,
        Stage::TransferAccepted
            | Stage::ConsultRequested
            | Stage::ConsultScheduled
            | Stage::ConsultInProgress
            | Stage::ConsultEscalatable
    ) {
        Stage::Arrived
    } else {
        stage
    };
    for step in steps {
        if step == Stage::Offered && until != Stage::Requested {
            api.offer(&p, "hofu-central").await;
        }
        let placements = api.placements();
        let mut placements = placements;
        match step {
            Stage::Accepted if reaches(until, step) => {
                ok(placements
                    .accept_placement(authed(
                        HOSPITAL,
                        pb::AcceptPlacementRequest {
                            command_id: cid(),
                            placement_id: p.clone(),
                            override_capacity: false,
                            override_reason: String::new(),
                            expected_version: None,
                        },
                    ))
                    .await)
                .await;
            }
            Stage::TransportArranged if reaches(until, step) => {
                ok(placements
                    .arrange_transport(authed(
                        HQ,
                        pb::ArrangeTransportRequest {
                            command_id: cid(),
                            placement_id: p.clone(),
                            vehicle: pb::Vehicle::Ambulance as i32,
                            pickup_at: None,
                            note: String::new(),
                            expected_version: None,
                        },
                    ))
                    .await)
                .await;
            }
            Stage::InTransit if reaches(until, step) => {
                ok(placements
                    .record_departure(authed(
                        HQ,
                        pb::RecordDepartureRequest {
                            command_id: cid(),
                            placement_id: p.clone(),
                            expected_version: None,
                        },
                    ))
                    .await)
                .await;
            }
            Stage::Arrived if reaches(until, step) => {
                ok(placements
                    .record_arrival(authed(
                        HOSPITAL,
                        pb::RecordArrivalRequest {
                            command_id: cid(),
                            placement_id: p.clone(),
                            expected_version: None,
                        },
                    ))
                    .await)
                .await;
            }
            _ => {}
        }
        if step == until {
            break;
        }
    }
    if stage == Stage::TransferAccepted {
        let transfer = ok(api
            .placements()
            .request_placement(authed(
                HOSPITAL,
                pb::RequestPlacementRequest {
                    command_id: cid(),
                    case_id: case_id.clone(),
                    category: Bed::Moderate as i32,
                    needs: vec![],
                    note: "転院".into(),
                    expected_version: None,
                },
            ))
            .await)
        .await;
        ctx.placement_id = transfer
            .stream_id
            .trim_start_matches("placement-")
            .to_owned();
        api.offer(&ctx.placement_id, "ube-medical").await;
        ok(api
            .placements()
            .accept_placement(authed(
                HOSPITAL_OTHER,
                pb::AcceptPlacementRequest {
                    command_id: cid(),
                    placement_id: ctx.placement_id.clone(),
                    override_capacity: false,
                    override_reason: String::new(),
                    expected_version: None,
                },
            ))
            .await)
        .await;
    }
    if stage >= Stage::ConsultRequested {
        ctx.consult_id = consult_at(api, &case_id, stage).await;
    }
    ctx
}

/// A consult of `case_id` asked for by the hospital where the patient is, taken to `stage`.
async fn consult_at(api: &TestApi, case_id: &str, stage: Stage) -> String {
    let mut consults = api.consults();
    let consult_id = ok(consults
        .request_consult(authed(
            HOSPITAL,
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
        .await)
    .await
    .stream_id
    .trim_start_matches("consult-")
    .to_owned();
    if stage >= Stage::ConsultScheduled {
        let at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
        ok(consults
            .schedule_consult(authed(
                CONSULT,
                pb::ScheduleConsultRequest {
                    command_id: cid(),
                    consult_id: consult_id.clone(),
                    scheduled_for: Some(noroshi_codec::timestamps::to_timestamp(at)),
                    doctor: "遠隔 一郎".into(),
                    ..pb::ScheduleConsultRequest::default()
                },
            ))
            .await)
        .await;
    }
    if stage >= Stage::ConsultInProgress {
        ok(consults
            .start_consult(authed(
                CONSULT,
                pb::StartConsultRequest {
                    command_id: cid(),
                    consult_id: consult_id.clone(),
                    ..pb::StartConsultRequest::default()
                },
            ))
            .await)
        .await;
    }
    if stage >= Stage::ConsultEscalatable {
        ok(consults
            .complete_consult(authed(
                CONSULT,
                pb::CompleteConsultRequest {
                    command_id: cid(),
                    consult_id: consult_id.clone(),
                    findings: "入院が必要".into(),
                    recommendation: pb::Recommendation::Escalate as i32,
                    ..pb::CompleteConsultRequest::default()
                },
            ))
            .await)
        .await;
    }
    consult_id
}

fn reaches(until: Stage, step: Stage) -> bool {
    let order = [
        Stage::Reported,
        Stage::Requested,
        Stage::Offered,
        Stage::Accepted,
        Stage::TransportArranged,
        Stage::InTransit,
        Stage::Arrived,
    ];
    let rank = |s: Stage| order.iter().position(|o| *o == s).unwrap_or(usize::MAX);
    rank(step) <= rank(until)
}

/// Performs `act` as `actor` on the target of `ctx`.
async fn perform(
    api: &TestApi,
    act: Act,
    actor: Actor,
    ctx: &Ctx,
) -> Result<pb::CommandResult, tonic::Status> {
    let (c, p) = (ctx.case_id.clone(), ctx.placement_id.clone());
    let proxy = if actor.role == "HQ" {
        "電話で代理入力".to_owned()
    } else {
        String::new()
    };
    let r = match act {
        Act::RegisterFacility => {
            api.facilities()
                .register_facility(authed(
                    actor,
                    pb::RegisterFacilityRequest {
                        command_id: cid(),
                        facility_id: format!("new-{}", &cid()[..8]),
                        name: "新設病院".into(),
                        name_en: String::new(),
                        kind: pb::FacilityKind::Hospital as i32,
                        prefecture: "35".into(),
                        medical_area: "3505".into(),
                        municipality: UBE.into(),
                        jurisdiction: vec![],
                        capabilities: vec![],
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::UpdateFacility => {
            api.facilities()
                .update_facility(authed(
                    actor,
                    pb::UpdateFacilityRequest {
                        command_id: cid(),
                        facility_id: "ube-medical".into(),
                        name: "宇部あおば医療センター".into(),
                        name_en: "Ube Aoba Medical Center".into(),
                        medical_area: "3505".into(),
                        municipality: UBE.into(),
                        jurisdiction: vec![],
                        capabilities: vec![pb::Capability::Oxygen as i32],
                        active: true,
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::DeclareCapacity => {
            api.facilities()
                .declare_capacity(authed(
                    actor,
                    pb::DeclareCapacityRequest {
                        command_id: cid(),
                        facility_id: "hofu-central".into(),
                        categories: vec![pb::DeclaredFigures {
                            category: Bed::Mild as i32,
                            secured: 3,
                            ready: 3,
                            occupied: 0,
                        }],
                        proxy_reason: proxy,
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::SetAcceptance => {
            api.facilities()
                .set_acceptance(authed(
                    actor,
                    pb::SetAcceptanceRequest {
                        command_id: cid(),
                        facility_id: "hofu-central".into(),
                        category: Bed::Mild as i32,
                        acceptance: pb::Acceptance::Limited as i32,
                        constraints: vec![pb::AcceptanceConstraint::Staff as i32],
                        proxy_reason: proxy,
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::ReportCase => {
            let mut report = report_request(Severity::Mild);
            if actor == HC_OTHER {
                report.municipality = UBE.into();
            }
            api.cases().report_case(authed(actor, report)).await
        }
        Act::TriageCase => {
            api.cases()
                .triage_case(authed(
                    actor,
                    pb::TriageCaseRequest {
                        command_id: cid(),
                        case_id: c,
                        severity: Severity::Mild as i32,
                        risk_factors: vec![],
                        needs: vec![],
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RecordObservation | Act::ObserveAdmittedPatient | Act::ObserveCaredPatient => {
            api.cases()
                .record_observation(authed(
                    actor,
                    pb::RecordObservationRequest {
                        command_id: cid(),
                        case_id: c,
                        observed_at: None,
                        temperature_decicelsius: 372,
                        spo2_percent: 97,
                        on_oxygen: false,
                        symptoms: vec![],
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::StartHomeCare => {
            api.cases()
                .start_home_care(authed(
                    actor,
                    pb::StartHomeCareRequest {
                        command_id: cid(),
                        case_id: c,
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::AssignCareSite => {
            api.cases()
                .assign_care_site(authed(
                    actor,
                    pb::AssignCareSiteRequest {
                        command_id: cid(),
                        case_id: c,
                        care_site_id: MOBILE.organisation.into(),
                        note: "訪問診療車が週2回訪問".into(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::CloseCase => {
            api.cases()
                .close_case(authed(
                    actor,
                    pb::CloseCaseRequest {
                        command_id: cid(),
                        case_id: c,
                        outcome: pb::CaseOutcome::Recovered as i32,
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::OverridePriority => {
            api.cases()
                .override_priority(authed(
                    actor,
                    pb::OverridePriorityRequest {
                        command_id: cid(),
                        case_id: c,
                        priority: 1,
                        reason: "妊娠後期".into(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RequestPlacement | Act::RequestTransfer => {
            api.placements()
                .request_placement(authed(
                    actor,
                    pb::RequestPlacementRequest {
                        command_id: cid(),
                        case_id: c,
                        category: Bed::Moderate as i32,
                        needs: vec![],
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::OfferPlacement => {
            api.placements()
                .offer_placement(authed(
                    actor,
                    pb::OfferPlacementRequest {
                        command_id: cid(),
                        placement_id: p,
                        facility_id: "hofu-central".into(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::CancelPlacement => {
            api.placements()
                .cancel_placement(authed(
                    actor,
                    pb::CancelPlacementRequest {
                        command_id: cid(),
                        placement_id: p,
                        reason: "自宅療養へ".into(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::AcceptPlacement => {
            api.placements()
                .accept_placement(authed(
                    actor,
                    pb::AcceptPlacementRequest {
                        command_id: cid(),
                        placement_id: p,
                        override_capacity: false,
                        override_reason: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::DeclinePlacement => {
            api.placements()
                .decline_placement(authed(
                    actor,
                    pb::DeclinePlacementRequest {
                        command_id: cid(),
                        placement_id: p,
                        reason: "満床".into(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::ArrangeTransport | Act::ArrangeTransferTransport => {
            api.placements()
                .arrange_transport(authed(
                    actor,
                    pb::ArrangeTransportRequest {
                        command_id: cid(),
                        placement_id: p,
                        vehicle: pb::Vehicle::Ambulance as i32,
                        pickup_at: None,
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RecordDeparture => {
            api.placements()
                .record_departure(authed(
                    actor,
                    pb::RecordDepartureRequest {
                        command_id: cid(),
                        placement_id: p,
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RecordArrival => {
            api.placements()
                .record_arrival(authed(
                    actor,
                    pb::RecordArrivalRequest {
                        command_id: cid(),
                        placement_id: p,
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RecordDischarge => {
            api.placements()
                .record_discharge(authed(
                    actor,
                    pb::RecordDischargeRequest {
                        command_id: cid(),
                        placement_id: p,
                        outcome: pb::DischargeOutcome::Recovered as i32,
                        note: String::new(),
                        expected_version: None,
                    },
                ))
                .await
        }
        Act::RequestConsult | Act::RequestConsultForCaredPatient => {
            api.consults()
                .request_consult(authed(
                    actor,
                    pb::RequestConsultRequest {
                        command_id: cid(),
                        case_id: c,
                        mode: pb::ConsultMode::DToPWithN as i32,
                        urgency: pb::ConsultUrgency::Urgent as i32,
                        question: "呼吸状態の評価".into(),
                        contact: "0835-00-0000".into(),
                        ..pb::RequestConsultRequest::default()
                    },
                ))
                .await
        }
        Act::ScheduleConsult => {
            let at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
            api.consults()
                .schedule_consult(authed(
                    actor,
                    pb::ScheduleConsultRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        scheduled_for: Some(noroshi_codec::timestamps::to_timestamp(at)),
                        doctor: "遠隔 一郎".into(),
                        ..pb::ScheduleConsultRequest::default()
                    },
                ))
                .await
        }
        Act::StartConsult => {
            api.consults()
                .start_consult(authed(
                    actor,
                    pb::StartConsultRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        ..pb::StartConsultRequest::default()
                    },
                ))
                .await
        }
        Act::CompleteConsult => {
            api.consults()
                .complete_consult(authed(
                    actor,
                    pb::CompleteConsultRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        findings: "経過観察".into(),
                        recommendation: pb::Recommendation::Continue as i32,
                        ..pb::CompleteConsultRequest::default()
                    },
                ))
                .await
        }
        Act::MarkConsultMissed => {
            api.consults()
                .mark_consult_missed(authed(
                    actor,
                    pb::MarkConsultMissedRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        note: "接続できず".into(),
                        ..pb::MarkConsultMissedRequest::default()
                    },
                ))
                .await
        }
        Act::CancelConsult => {
            api.consults()
                .cancel_consult(authed(
                    actor,
                    pb::CancelConsultRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        reason: "状態安定".into(),
                        ..pb::CancelConsultRequest::default()
                    },
                ))
                .await
        }
        Act::EscalateConsult => {
            api.consults()
                .escalate_consult(authed(
                    actor,
                    pb::EscalateConsultRequest {
                        command_id: cid(),
                        consult_id: ctx.consult_id.clone(),
                        category: Bed::Moderate as i32,
                        note: String::new(),
                        ..pb::EscalateConsultRequest::default()
                    },
                ))
                .await
        }
    };
    r.map(tonic::Response::into_inner)
}

/// The audit log's PERMISSION_DENIED records of `actor`.
async fn denials(api: &TestApi, actor: Actor) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'PERMISSION_DENIED' \
         AND principal_id = $1 AND organisation_id = $2 AND role = $3",
    )
    .bind(format!("{}-user", actor.organisation))
    .bind(actor.organisation)
    .bind(actor.role)
    .fetch_one(api.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn every_cell_of_the_access_matrix_holds() {
    let api = TestApi::start().await;
    api.seed().await;
    api.declare(HOSPITAL, "hofu-central", Bed::Moderate, 500, 500, 0)
        .await;
    api.declare(HOSPITAL_OTHER, "ube-medical", Bed::Moderate, 500, 500, 0)
        .await;
    let mut cells = 0;
    for &(act, stage, allowed) in MATRIX {
        // Denied principals, on one shared target: nothing may be written.
        let ctx = match stage {
            Some(stage) => setup(&api, stage).await,
            None => Ctx::default(),
        };
        for &actor in ACTORS.iter().filter(|a| !allowed.contains(a)) {
            let before = api.db.event_count().await;
            let denials_before = denials(&api, actor).await;
            let status = perform(&api, act, actor, &ctx)
                .await
                .expect_err(&format!("{act:?} by {} must be denied", actor.organisation));
            assert_eq!(
                status.code(),
                Code::PermissionDenied,
                "{act:?} by {}: {status:?}",
                actor.organisation
            );
            assert_eq!(
                status.message(),
                "permission denied",
                "a denial reveals nothing"
            );
            assert_eq!(
                api.db.event_count().await,
                before,
                "{act:?} by {} wrote events",
                actor.organisation
            );
            // The denial is in the audit log, once, with the principal who was refused.
            assert_eq!(
                denials(&api, actor).await,
                denials_before + 1,
                "{act:?} by {}: one PERMISSION_DENIED record",
                actor.organisation
            );
            cells += 1;
        }
        // Allowed principals, each on its own target.
        for &actor in allowed {
            let ctx = match stage {
                Some(stage) => setup(&api, stage).await,
                None => Ctx::default(),
            };
            let result = perform(&api, act, actor, &ctx).await;
            assert!(
                result.is_ok(),
                "{act:?} by {} must succeed: {result:?}",
                actor.organisation
            );
            cells += 1;
        }
    }
    assert_eq!(cells, MATRIX.len() * ACTORS.len());
}
