//! Given events, when a command, then events or an error: every command of every
//! aggregate, with no I/O.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use noroshi_domain::DomainError;
use noroshi_domain::case::{self, Case, CaseCommand, CaseEvent, CaseReport, Observation, Patient};
use noroshi_domain::facility::{
    CategoryFigures, Facility, FacilityChanges, FacilityCommand, FacilityEvent, FacilityProfile,
};
use noroshi_domain::placement::{
    self, Decision, Placement, PlacementEvent, PlacementPolicy, RequestPlacement, Transport,
};
use noroshi_domain::values::*;
use time::macros::{date, datetime};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

const NOW: OffsetDateTime = datetime!(2026-11-25 03:00 UTC);
const PLACEMENT: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0001);
const CASE: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0002);

fn fid(id: &str) -> FacilityId {
    FacilityId::parse(id).unwrap()
}

fn profile(id: &str, kind: FacilityKind, capabilities: &[Capability]) -> FacilityProfile {
    FacilityProfile {
        facility_id: fid(id),
        name: Name::parse("架空病院").unwrap(),
        name_en: None,
        kind,
        prefecture: PrefectureCode::parse("35").unwrap(),
        medical_area: Some(MedicalAreaCode::parse("3504").unwrap()),
        municipality: MunicipalityCode::parse("352063").unwrap(),
        jurisdiction: if kind == FacilityKind::HealthCenter {
            [MunicipalityCode::parse("352063").unwrap()].into()
        } else {
            BTreeSet::new()
        },
        capabilities: capabilities.iter().copied().collect(),
        active: true,
    }
}

fn hospital(ready: u32, occupied: u32) -> Facility {
    Facility::from_events(&[
        FacilityEvent::Registered(profile(
            "hofu-central",
            FacilityKind::Hospital,
            &[Capability::Oxygen],
        )),
        FacilityEvent::CapacityDeclared {
            categories: vec![CategoryFigures {
                category: BedCategory::Moderate,
                secured: 10,
                ready,
                occupied,
            }],
            declared_at: NOW,
            proxy: None,
        },
    ])
}

fn report() -> CaseReport {
    CaseReport {
        health_center_id: fid("hofu-hc"),
        external_ref: None,
        patient: Patient {
            name: Name::parse("試験 太郎").unwrap(),
            name_kana: None,
            birth_date: date!(1950 - 01 - 01),
            sex: Sex::Male,
            phone: None,
            address: Text::parse("防府市").unwrap(),
        },
        municipality: MunicipalityCode::parse("352063").unwrap(),
        risk_factors: [RiskFactor::Age65Plus].into(),
        severity: Severity::ModerateI,
        needs: BTreeSet::new(),
    }
}

fn reported() -> Vec<CaseEvent> {
    let hc = Facility::from_events(&[FacilityEvent::Registered(profile(
        "hofu-hc",
        FacilityKind::HealthCenter,
        &[],
    ))]);
    case::report(&Case::default(), &hc, report(), NOW).unwrap()
}

fn precondition(error: DomainError, names: &str) {
    match error {
        DomainError::Precondition(message) => {
            assert!(message.contains(names), "{message:?} should name {names}")
        }
        other => panic!("expected a failed precondition naming {names}, got {other:?}"),
    }
}

fn reason(text: &str) -> Reason {
    Reason::parse(text).unwrap()
}

/// Applies a decision to the three states.
fn apply(decision: &Decision, placement: &mut Placement, facility: &mut Facility, case: &mut Case) {
    decision.placement.iter().for_each(|e| placement.evolve(e));
    decision.facility.iter().for_each(|e| facility.evolve(e));
    decision.case.iter().for_each(|e| case.evolve(e));
}

// ---- facilities ----

#[test]
fn registering_twice_is_already_exists() {
    let facility = hospital(5, 0);
    let error = facility
        .decide(
            FacilityCommand::Register(profile("hofu-central", FacilityKind::Hospital, &[])),
            NOW,
        )
        .unwrap_err();
    assert!(matches!(error, DomainError::AlreadyExists(_)));
    let events = Facility::default()
        .decide(
            FacilityCommand::Register(profile("x1", FacilityKind::Hotel, &[])),
            NOW,
        )
        .unwrap();
    assert!(matches!(events.as_slice(), [FacilityEvent::Registered(_)]));
}

#[test]
fn only_health_centers_have_a_jurisdiction() {
    let mut hc = profile("ube-hc", FacilityKind::HealthCenter, &[]);
    hc.jurisdiction.clear();
    let error = Facility::default()
        .decide(FacilityCommand::Register(hc), NOW)
        .unwrap_err();
    assert!(
        matches!(error, DomainError::Invalid(v) if v.iter().any(|v| v.field == "jurisdiction"))
    );
}

#[test]
fn update_replaces_the_profile_and_needs_a_registered_facility() {
    let changes = FacilityChanges {
        name: Name::parse("新名称").unwrap(),
        name_en: None,
        medical_area: None,
        municipality: MunicipalityCode::parse("352021").unwrap(),
        jurisdiction: BTreeSet::new(),
        capabilities: BTreeSet::new(),
        active: false,
    };
    assert!(matches!(
        Facility::default().decide(FacilityCommand::Update(changes.clone()), NOW),
        Err(DomainError::NotFound(_))
    ));
    let mut facility = hospital(5, 0);
    let events = facility
        .decide(FacilityCommand::Update(changes), NOW)
        .unwrap();
    facility.evolve(&events[0]);
    assert!(!facility.profile.unwrap().active);
}

#[test]
fn capacity_declarations_follow_the_plausibility_rules() {
    let facility = hospital(5, 0);
    let declare = |categories| {
        facility.decide(
            FacilityCommand::DeclareCapacity {
                categories,
                proxy: None,
            },
            NOW,
        )
    };
    let figures = |category, secured, ready, occupied| CategoryFigures {
        category,
        secured,
        ready,
        occupied,
    };
    assert!(
        declare(vec![figures(BedCategory::Moderate, 10, 8, 12)]).is_ok(),
        "occupied > ready is allowed (overflow)"
    );
    assert!(
        declare(vec![figures(BedCategory::Moderate, 0, 3, 0)]).is_ok(),
        "ready without secured beds is allowed"
    );
    let fields = |r: Result<Vec<FacilityEvent>, DomainError>| match r.unwrap_err() {
        DomainError::Invalid(v) => v.iter().map(|v| v.field.clone()).collect::<Vec<_>>(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        fields(declare(vec![figures(BedCategory::Moderate, 5, 6, 0)])),
        ["categories[0].ready"]
    );
    assert_eq!(
        fields(declare(vec![figures(BedCategory::HotelRoom, 5, 5, 0)])),
        ["categories[0].category"]
    );
    assert_eq!(
        fields(declare(vec![
            figures(BedCategory::Mild, 1, 1, 0),
            figures(BedCategory::Mild, 1, 1, 0)
        ])),
        ["categories[1].category"]
    );
    assert_eq!(fields(declare(vec![])), ["categories"]);
}

#[test]
fn acceptance_changes_and_refuses_constraints_while_accepting() {
    let facility = hospital(5, 0);
    let set = |acceptance, constraints: &[AcceptanceConstraint]| {
        facility.decide(
            FacilityCommand::SetAcceptance {
                category: BedCategory::Moderate,
                acceptance,
                constraints: constraints.iter().copied().collect(),
                proxy: None,
            },
            NOW,
        )
    };
    assert!(matches!(
        set(Acceptance::Limited, &[AcceptanceConstraint::Staff])
            .unwrap()
            .as_slice(),
        [FacilityEvent::AcceptanceChanged { .. }]
    ));
    assert!(matches!(
        set(Acceptance::Accepting, &[AcceptanceConstraint::Staff]),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn a_bed_is_held_only_when_one_is_available_unless_overridden() {
    let full = hospital(4, 4);
    precondition(
        full.hold_bed(BedCategory::Moderate, PLACEMENT, NOW, None)
            .unwrap_err(),
        "no free MODERATE bed",
    );
    assert!(
        full.hold_bed(
            BedCategory::Moderate,
            PLACEMENT,
            NOW,
            Some(reason("救命のため"))
        )
        .is_ok()
    );
    let mut one = hospital(5, 4);
    let held = one
        .hold_bed(BedCategory::Moderate, PLACEMENT, NOW, None)
        .unwrap();
    one.evolve(&held);
    assert_eq!(
        (
            one.beds(BedCategory::Moderate).held,
            one.beds(BedCategory::Moderate).available()
        ),
        (1, 0)
    );
    precondition(
        one.hold_bed(BedCategory::Moderate, Uuid::now_v7(), NOW, None)
            .unwrap_err(),
        "held 1",
    );
}

// ---- cases ----

#[test]
fn a_report_computes_priority_and_checks_the_jurisdiction() {
    let events = reported();
    assert!(
        matches!(&events[..], [CaseEvent::Reported { priority, priority_rule_version: 1, .. }] if priority.get() == 2)
    );
    let hc = Facility::from_events(&[FacilityEvent::Registered(profile(
        "hofu-hc",
        FacilityKind::HealthCenter,
        &[],
    ))]);
    let mut elsewhere = report();
    elsewhere.municipality = MunicipalityCode::parse("352021").unwrap();
    assert!(
        matches!(case::report(&Case::default(), &hc, elsewhere, NOW), Err(DomainError::Invalid(v)) if v.iter().any(|v| v.field == "municipality"))
    );
    let existing = Case::from_events(&events);
    assert!(matches!(
        case::report(&existing, &hc, report(), NOW),
        Err(DomainError::AlreadyExists(_))
    ));
    let unregistered = Facility::default();
    precondition(
        case::report(&Case::default(), &unregistered, report(), NOW).unwrap_err(),
        "hofu-hc is not a registered health center",
    );
}

#[test]
fn triage_override_and_observations() {
    let mut state = Case::from_events(&reported());
    let triaged = state
        .decide(
            CaseCommand::Triage {
                severity: Severity::Severe,
                risk_factors: BTreeSet::new(),
                needs: [Capability::Ventilator].into(),
                note: Text::empty(),
            },
            NOW,
        )
        .unwrap();
    assert!(matches!(&triaged[..], [CaseEvent::Triaged { priority, .. }] if priority.get() == 1));
    state.evolve(&triaged[0]);
    let overridden = state
        .decide(
            CaseCommand::OverridePriority {
                priority: Priority::new(2).unwrap(),
                reason: reason("家族の希望"),
            },
            NOW,
        )
        .unwrap();
    assert!(
        matches!(&overridden[..], [CaseEvent::PriorityOverridden { computed_priority, .. }] if computed_priority.get() == 1)
    );

    let mild = Case::from_events(&reported()); // MODERATE_I: floor 93 %
    let observe = |spo2: i64| Observation {
        observed_at: NOW,
        recorded_by: None,
        temperature: None,
        spo2: Some(Spo2::new(spo2).unwrap()),
        on_oxygen: false,
        symptoms: vec![],
        note: Text::empty(),
    };
    assert_eq!(
        mild.decide(CaseCommand::RecordObservation(observe(94)), NOW)
            .unwrap()
            .len(),
        1
    );
    let flagged = mild
        .decide(CaseCommand::RecordObservation(observe(91)), NOW)
        .unwrap();
    assert!(
        matches!(&flagged[..], [CaseEvent::ObservationRecorded(_), CaseEvent::DeteriorationFlagged { band_floor, .. }] if band_floor.percent() == 93)
    );
    let future = Observation {
        observed_at: NOW + Duration::hours(1),
        ..observe(97)
    };
    assert!(matches!(
        mild.decide(CaseCommand::RecordObservation(future), NOW),
        Err(DomainError::Invalid(_))
    ));
}

#[test]
fn home_care_and_closing_follow_the_status_machine() {
    let mut state = Case::from_events(&reported());
    let home = state
        .decide(
            CaseCommand::StartHomeCare {
                note: Text::empty(),
            },
            NOW,
        )
        .unwrap();
    state.evolve(&home[0]);
    assert_eq!(state.record.as_ref().unwrap().status, CaseStatus::HomeCare);
    precondition(
        state
            .decide(
                CaseCommand::StartHomeCare {
                    note: Text::empty(),
                },
                NOW,
            )
            .unwrap_err(),
        "HOME_CARE",
    );
    let closed = state
        .decide(
            CaseCommand::Close {
                outcome: CaseOutcome::Recovered,
                note: Text::empty(),
            },
            NOW,
        )
        .unwrap();
    state.evolve(&closed[0]);
    precondition(
        state
            .decide(
                CaseCommand::Triage {
                    severity: Severity::Mild,
                    risk_factors: BTreeSet::new(),
                    needs: BTreeSet::new(),
                    note: Text::empty(),
                },
                NOW,
            )
            .unwrap_err(),
        "RECOVERED",
    );
}

// ---- placements ----

fn request() -> RequestPlacement {
    RequestPlacement {
        requested_by: fid("hofu-hc"),
        category: BedCategory::Moderate,
        needs: BTreeSet::new(),
        note: Text::empty(),
    }
}

/// A requested placement, its case and a hospital with `ready` beds.
fn requested(ready: u32) -> (Placement, Facility, Case) {
    let mut case = Case::from_events(&reported());
    let mut placement = Placement::default();
    let mut facility = hospital(ready, 0);
    let decision =
        noroshi_domain::placement::request(&placement, PLACEMENT, CASE, &case, request(), NOW)
            .unwrap();
    assert!(matches!(
        &decision.case[..],
        [CaseEvent::StatusChanged {
            from: CaseStatus::Reported,
            to: CaseStatus::PlacementInProgress,
            ..
        }]
    ));
    apply(&decision, &mut placement, &mut facility, &mut case);
    (placement, facility, case)
}

#[test]
fn one_live_placement_per_case() {
    let (_, _, case) = requested(5);
    precondition(
        noroshi_domain::placement::request(
            &Placement::default(),
            Uuid::now_v7(),
            CASE,
            &case,
            request(),
            NOW,
        )
        .unwrap_err(),
        "live placement",
    );
}

#[test]
fn offers_need_an_active_facility_with_the_category_and_every_need() {
    let (placement, _, _) = requested(5);
    let policy = PlacementPolicy::default();
    let offered = placement.offer(&hospital(5, 0), NOW, policy).unwrap();
    assert!(
        matches!(&offered[..], [PlacementEvent::Offered { offer_deadline, .. }] if *offer_deadline == NOW + Duration::minutes(30))
    );
    let hotel = Facility::from_events(&[FacilityEvent::Registered(profile(
        "yuda-hotel",
        FacilityKind::Hotel,
        &[],
    ))]);
    assert!(matches!(
        placement.offer(&hotel, NOW, policy),
        Err(DomainError::Invalid(_))
    ));
    let mut needs_ventilator = placement.clone();
    needs_ventilator
        .record
        .as_mut()
        .unwrap()
        .needs
        .insert(Capability::Ventilator);
    assert!(
        matches!(needs_ventilator.offer(&hospital(5, 0), NOW, policy), Err(DomainError::Invalid(v)) if v.to_string().contains("VENTILATOR"))
    );
    let mut inactive = hospital(5, 0);
    inactive.profile.as_mut().unwrap().active = false;
    precondition(
        placement.offer(&inactive, NOW, policy).unwrap_err(),
        "inactive",
    );
}

#[test]
fn the_whole_placement_path_and_its_illegal_steps() {
    let policy = PlacementPolicy::default();
    let (mut placement, mut facility, mut case) = requested(5);
    precondition(
        placement
            .accept(PLACEMENT, &facility, None, NOW, policy)
            .unwrap_err(),
        "REQUESTED",
    );
    let offered = placement.offer(&facility, NOW, policy).unwrap();
    placement.evolve(&offered[0]);
    // Decline, then offer again.
    let declined = placement
        .decline(&fid("hofu-central"), reason("満床"), NOW)
        .unwrap();
    placement.evolve(&declined[0]);
    assert_eq!(
        placement.record.as_ref().unwrap().declined_by,
        [fid("hofu-central")]
    );
    placement.evolve(&placement.offer(&facility, NOW, policy).unwrap()[0]);
    precondition(placement.expire_offer(NOW).unwrap_err(), "not passed");
    precondition(
        placement
            .decline(&fid("ube-medical"), reason("x"), NOW)
            .unwrap_err(),
        "another facility",
    );
    precondition(
        placement
            .accept(
                PLACEMENT,
                &facility,
                None,
                NOW + Duration::minutes(31),
                policy,
            )
            .unwrap_err(),
        "deadline has passed",
    );
    let accepted = placement
        .accept(PLACEMENT, &facility, None, NOW, policy)
        .unwrap();
    assert!(matches!(
        &accepted.facility[..],
        [FacilityEvent::BedHeld { .. }]
    ));
    apply(&accepted, &mut placement, &mut facility, &mut case);
    precondition(placement.record_departure(NOW).unwrap_err(), "ACCEPTED");
    precondition(
        placement
            .record_arrival(PLACEMENT, &facility, &case, None, NOW)
            .unwrap_err(),
        "ACCEPTED",
    );
    let transport = Transport {
        vehicle: Vehicle::Ambulance,
        pickup_at: None,
        note: Text::empty(),
    };
    placement.evolve(&placement.arrange_transport(transport).unwrap()[0]);
    placement.evolve(&placement.record_departure(NOW).unwrap()[0]);
    let arrived = placement
        .record_arrival(PLACEMENT, &facility, &case, None, NOW)
        .unwrap();
    assert!(matches!(
        &arrived.case[..],
        [CaseEvent::StatusChanged {
            to: CaseStatus::Hospitalized,
            ..
        }]
    ));
    assert!(matches!(
        &arrived.facility[..],
        [FacilityEvent::BedOccupied { .. }]
    ));
    apply(&arrived, &mut placement, &mut facility, &mut case);
    assert_eq!(
        (
            facility.beds(BedCategory::Moderate).held,
            facility.beds(BedCategory::Moderate).occupied
        ),
        (0, 1)
    );
    precondition(
        placement
            .cancel(PLACEMENT, Some(&facility), &case, reason("x"), NOW)
            .unwrap_err(),
        "ARRIVED",
    );
    let discharged = placement
        .discharge(
            PLACEMENT,
            &facility,
            &case,
            DischargeOutcome::StepDown,
            Text::empty(),
            NOW,
        )
        .unwrap();
    assert!(matches!(
        &discharged.case[..],
        [CaseEvent::StatusChanged {
            to: CaseStatus::AwaitingPlacement,
            ..
        }]
    ));
    assert!(matches!(
        &discharged.facility[..],
        [FacilityEvent::BedVacated { .. }]
    ));
    apply(&discharged, &mut placement, &mut facility, &mut case);
    precondition(
        placement
            .discharge(
                PLACEMENT,
                &facility,
                &case,
                DischargeOutcome::Recovered,
                Text::empty(),
                NOW,
            )
            .unwrap_err(),
        "discharged",
    );
    assert_eq!(facility.beds(BedCategory::Moderate).occupied, 0);
}

#[test]
fn an_offer_expires_after_its_deadline_and_cancel_releases_the_hold() {
    let policy = PlacementPolicy::default();
    let (mut placement, mut facility, mut case) = requested(5);
    placement.evolve(&placement.offer(&facility, NOW, policy).unwrap()[0]);
    let expired = placement.expire_offer(NOW + Duration::minutes(30)).unwrap();
    assert!(matches!(
        &expired[..],
        [PlacementEvent::OfferExpired { .. }]
    ));
    placement.evolve(&expired[0]);
    assert_eq!(
        placement.record.as_ref().unwrap().status,
        PlacementStatus::Requested
    );
    placement.evolve(&placement.offer(&facility, NOW, policy).unwrap()[0]);
    let accepted = placement
        .accept(PLACEMENT, &facility, None, NOW, policy)
        .unwrap();
    apply(&accepted, &mut placement, &mut facility, &mut case);
    let cancelled = placement
        .cancel(PLACEMENT, Some(&facility), &case, reason("状態改善"), NOW)
        .unwrap();
    assert!(matches!(
        &cancelled.placement[..],
        [PlacementEvent::Cancelled {
            cancelled_in: PlacementStatus::Accepted,
            ..
        }]
    ));
    assert!(matches!(
        &cancelled.facility[..],
        [FacilityEvent::BedHoldReleased { .. }]
    ));
    assert!(matches!(
        &cancelled.case[..],
        [CaseEvent::StatusChanged {
            to: CaseStatus::Reported,
            ..
        }]
    ));
    apply(&cancelled, &mut placement, &mut facility, &mut case);
    assert_eq!(facility.beds(BedCategory::Moderate).available(), 5);
    precondition(
        placement
            .cancel(PLACEMENT, Some(&facility), &case, reason("x"), NOW)
            .unwrap_err(),
        "CANCELLED",
    );
}

/// A placement taken from request to arrival at `facility`; the decisions applied.
fn arrive_at(
    placement_id: Uuid,
    facility: &mut Facility,
    case: &mut Case,
    category: BedCategory,
    stay: Option<(&mut Placement, &mut Facility)>,
) -> (Placement, Decision) {
    let policy = PlacementPolicy::default();
    let mut placement = Placement::default();
    let requested = placement::request(
        &placement,
        placement_id,
        CASE,
        case,
        RequestPlacement {
            category,
            ..request()
        },
        NOW,
    )
    .unwrap();
    requested.placement.iter().for_each(|e| placement.evolve(e));
    requested.case.iter().for_each(|e| case.evolve(e));
    placement.evolve(&placement.offer(facility, NOW, policy).unwrap()[0]);
    let accepted = placement
        .accept(placement_id, facility, None, NOW, policy)
        .unwrap();
    apply(&accepted, &mut placement, facility, case);
    let transport = Transport {
        vehicle: Vehicle::Ambulance,
        pickup_at: None,
        note: Text::empty(),
    };
    placement.evolve(&placement.arrange_transport(transport).unwrap()[0]);
    placement.evolve(&placement.record_departure(NOW).unwrap()[0]);
    let stay_view = stay.as_ref().map(|(p, f)| placement::Stay {
        placement_id: PLACEMENT,
        placement: p,
        facility: f,
    });
    let arrived = placement
        .record_arrival(placement_id, facility, case, stay_view, NOW)
        .unwrap();
    apply(&arrived, &mut placement, facility, case);
    if let (Some((stay_placement, stay_facility)), Some(origin)) = (stay, &arrived.origin) {
        origin
            .placement
            .iter()
            .for_each(|e| stay_placement.evolve(e));
        origin.facility.iter().for_each(|e| stay_facility.evolve(e));
    }
    (placement, arrived)
}

fn hotel(ready: u32) -> Facility {
    Facility::from_events(&[
        FacilityEvent::Registered(profile("yuda-hotel", FacilityKind::Hotel, &[])),
        FacilityEvent::CapacityDeclared {
            categories: vec![CategoryFigures {
                category: BedCategory::HotelRoom,
                secured: 10,
                ready,
                occupied: 0,
            }],
            declared_at: NOW,
            proxy: None,
        },
    ])
}

#[test]
fn an_escalation_keeps_the_room_until_the_hospital_records_arrival() {
    const ESCALATION: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0003);
    let mut case = Case::from_events(&reported());
    let mut hotel = hotel(5);
    let (mut stay, _) = arrive_at(
        PLACEMENT,
        &mut hotel,
        &mut case,
        BedCategory::HotelRoom,
        None,
    );
    let status = |case: &Case| case.record.as_ref().unwrap().status;
    assert_eq!(status(&case), CaseStatus::InHotel);
    assert_eq!(hotel.beds(BedCategory::HotelRoom).occupied, 1);

    // The request keeps the case in the hotel, with the escalation live.
    let requested = placement::request(
        &Placement::default(),
        ESCALATION,
        CASE,
        &case,
        request(),
        NOW,
    )
    .unwrap();
    assert!(matches!(
        &requested.case[..],
        [CaseEvent::TransferRequested { placement_id, from_facility }]
            if *placement_id == ESCALATION && from_facility.as_str() == "yuda-hotel"
    ));
    assert!(matches!(
        &requested.placement[..],
        [PlacementEvent::Requested { origin: placement::Origin::Facility(f), .. }] if f.as_str() == "yuda-hotel"
    ));
    let mut during = case.clone();
    requested.case.iter().for_each(|e| during.evolve(e));
    assert_eq!(status(&during), CaseStatus::InHotel);
    // The hotel cannot discharge the resident while the escalation is live...
    precondition(
        stay.discharge(
            PLACEMENT,
            &hotel,
            &during,
            DischargeOutcome::Transfer,
            Text::empty(),
            NOW,
        )
        .unwrap_err(),
        "cancel it before discharging",
    );
    // ...nor the health center close the case.
    precondition(
        during
            .decide(
                CaseCommand::Close {
                    outcome: CaseOutcome::Recovered,
                    note: Text::empty(),
                },
                NOW,
            )
            .unwrap_err(),
        "live placement",
    );

    // Arrival at the hospital discharges the hotel stay and vacates the room, together.
    let mut hospital = hospital(5, 0);
    let (_, arrived) = arrive_at(
        ESCALATION,
        &mut hospital,
        &mut case,
        BedCategory::Moderate,
        Some((&mut stay, &mut hotel)),
    );
    let origin = arrived.origin.expect("the stay it ends");
    assert_eq!(origin.placement_id, PLACEMENT);
    assert_eq!(origin.facility_id.as_str(), "yuda-hotel");
    assert!(matches!(
        &origin.placement[..],
        [PlacementEvent::Discharged { outcome: DischargeOutcome::Transfer, transferred_to: Some(to), .. }] if *to == ESCALATION
    ));
    assert!(matches!(
        &origin.facility[..],
        [FacilityEvent::BedVacated {
            category: BedCategory::HotelRoom,
            ..
        }]
    ));
    assert!(matches!(
        &arrived.case[..],
        [CaseEvent::StatusChanged {
            from: CaseStatus::InHotel,
            to: CaseStatus::Hospitalized,
            ..
        }]
    ));
    assert_eq!(status(&case), CaseStatus::Hospitalized);
    assert_eq!(hotel.beds(BedCategory::HotelRoom).occupied, 0);
    assert_eq!(hospital.beds(BedCategory::Moderate).occupied, 1);
    assert_eq!(
        case.record.as_ref().unwrap().stay,
        Some((ESCALATION, fid("hofu-central")))
    );
    assert!(stay.record.as_ref().unwrap().discharged);
}

#[test]
fn a_cancelled_transfer_leaves_the_patient_where_they_are() {
    const TRANSFER: Uuid = Uuid::from_u128(0x0195_0000_0000_7000_8000_0000_0000_0004);
    let mut case = Case::from_events(&reported());
    let mut hospital = hospital(5, 0);
    let (stay, _) = arrive_at(
        PLACEMENT,
        &mut hospital,
        &mut case,
        BedCategory::Moderate,
        None,
    );
    let requested =
        placement::request(&Placement::default(), TRANSFER, CASE, &case, request(), NOW).unwrap();
    let mut transfer = Placement::default();
    requested.placement.iter().for_each(|e| transfer.evolve(e));
    requested.case.iter().for_each(|e| case.evolve(e));
    let cancelled = transfer
        .cancel(TRANSFER, None, &case, reason("状態安定"), NOW)
        .unwrap();
    assert!(matches!(
        &cancelled.case[..],
        [CaseEvent::TransferCancelled { placement_id }] if *placement_id == TRANSFER
    ));
    cancelled.case.iter().for_each(|e| case.evolve(e));
    let record = case.record.as_ref().unwrap();
    assert_eq!(record.status, CaseStatus::Hospitalized);
    assert_eq!(record.live_placement, None);
    assert_eq!(record.stay, Some((PLACEMENT, fid("hofu-central"))));
    // The hospital may discharge again once nothing moves the patient on.
    assert!(
        stay.discharge(
            PLACEMENT,
            &hospital,
            &case,
            DischargeOutcome::Recovered,
            Text::empty(),
            NOW,
        )
        .is_ok()
    );
}

#[test]
fn a_care_site_is_a_clinic_or_mobile_clinic_caring_for_a_patient_at_home() {
    let mobile = fid("akiyoshi-mobile");
    let registered = |kind| {
        Facility::from_events(&[FacilityEvent::Registered(profile(
            "akiyoshi-mobile",
            kind,
            &[],
        ))])
    };
    let mut state = Case::from_events(&reported());
    let note = || Text::parse("週2回の訪問").unwrap();
    // Only a registered clinic or mobile clinic.
    for facility in [registered(FacilityKind::Hospital), Facility::default()] {
        assert!(matches!(
            state.assign_care_site(Some((&mobile, &facility)), note()),
            Err(DomainError::Invalid(_))
        ));
    }
    let site = registered(FacilityKind::MobileClinic);
    let assigned = state
        .assign_care_site(Some((&mobile, &site)), note())
        .unwrap();
    assert!(matches!(
        &assigned[..],
        [CaseEvent::CareSiteAssigned { care_site: Some(s), .. }] if *s == mobile
    ));
    state.evolve(&assigned[0]);
    assert_eq!(
        state.record.as_ref().unwrap().care_site,
        Some(mobile.clone())
    );
    precondition(
        state
            .assign_care_site(Some((&mobile, &site)), note())
            .unwrap_err(),
        "already",
    );
    // Arriving at a facility ends the care; a patient at a facility has no care site.
    state.evolve(&CaseEvent::StatusChanged {
        from: CaseStatus::PlacementInProgress,
        to: CaseStatus::Hospitalized,
        placement_id: PLACEMENT,
        facility_id: Some(fid("hofu-central")),
    });
    assert_eq!(state.record.as_ref().unwrap().care_site, None);
    precondition(
        state
            .assign_care_site(Some((&mobile, &site)), note())
            .unwrap_err(),
        "at home",
    );
}
