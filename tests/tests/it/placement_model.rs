//! Property test of the placement path across its aggregates (DESIGN.md §13): generated
//! sequences of placement commands (request, offer, accept, decline, transport,
//! arrival, cancel, discharge, and new capacity figures meanwhile), sent through the gRPC
//! API as the roles that may send them, legal or not. After every sequence the event
//! store, folded with the domain's own code, must hold these invariants:
//! - a facility's open holds are exactly the placements accepted there and not yet
//!   arrived or cancelled, and its `held` figure per category is their count;
//! - its occupants are exactly the placements arrived there and not yet discharged;
//! - no case has more than one live placement;
//! - no figure went below zero (the figures are unsigned, and `held` never exceeds the
//!   holds).
//!
//! `NOROSHI_FUZZ_CASES` sequences (48 by default; `ops/fuzz` runs more).

use std::collections::{BTreeMap, BTreeSet};

use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::Placement;
use noroshi_domain::values::PlacementStatus;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{Actor, HC, HOSPITAL, HOSPITAL_OTHER, HQ, TestApi, authed, cid};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use uuid::Uuid;

/// The hospitals, and who answers for each.
const HOSPITALS: [(&str, Actor); 2] = [("hofu-central", HOSPITAL), ("ube-medical", HOSPITAL_OTHER)];

/// One step. Indices pick a case or placement of the sequence (modulo how many there
/// are) and a hospital.
#[derive(Debug, Clone)]
enum Step {
    Request(usize),
    Offer(usize, usize),
    Accept(usize),
    Decline(usize),
    Transport(usize),
    Arrive(usize),
    Cancel(usize),
    Discharge(usize),
    Declare(usize, i64),
    /// The next step of a case's path (request, offer to the hospital, accept,
    /// transport, arrive, discharge), so that sequences reach every stage.
    Advance(usize, usize),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..3usize).prop_map(Step::Request),
        3 => (0..6usize, 0..2usize).prop_map(|(p, h)| Step::Offer(p, h)),
        3 => (0..6usize).prop_map(Step::Accept),
        1 => (0..6usize).prop_map(Step::Decline),
        2 => (0..6usize).prop_map(Step::Transport),
        2 => (0..6usize).prop_map(Step::Arrive),
        1 => (0..6usize).prop_map(Step::Cancel),
        1 => (0..6usize).prop_map(Step::Discharge),
        1 => (0..2usize, 0..4i64).prop_map(|(h, r)| Step::Declare(h, r)),
        8 => (0..3usize, 0..2usize).prop_map(|(c, h)| Step::Advance(c, h)),
    ]
}

/// What the sequence made so far: its cases, and its placements with their case, where
/// each was last offered (who answers for it) and how far it went as far as the
/// answers said.
#[derive(Default)]
struct Sequence {
    cases: Vec<String>,
    placements: Vec<Made>,
}

struct Made {
    id: String,
    case: usize,
    hospital: usize,
    stage: Stage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Requested,
    Offered,
    Accepted,
    InTransit,
    Arrived,
    Over,
}

impl Sequence {
    fn slot(&self, index: usize) -> Option<usize> {
        (!self.placements.is_empty()).then(|| index % self.placements.len())
    }

    fn placement(&self, index: usize) -> Option<(String, Actor)> {
        let made = &self.placements[self.slot(index)?];
        Some((made.id.clone(), HOSPITALS[made.hospital].1))
    }

    /// The concrete step that takes `case` one stage further.
    fn advance(&self, case: usize, hospital: usize) -> Step {
        let current = self
            .placements
            .iter()
            .rposition(|made| made.case == case && made.stage != Stage::Over);
        match current.map(|slot| (slot, self.placements[slot].stage)) {
            None => Step::Request(case),
            Some((slot, Stage::Requested)) => Step::Offer(slot, hospital),
            Some((slot, Stage::Offered)) => Step::Accept(slot),
            Some((slot, Stage::Accepted)) => Step::Transport(slot),
            Some((slot, Stage::InTransit)) => Step::Arrive(slot),
            Some((slot, _)) => Step::Discharge(slot),
        }
    }

    /// Records how far a placement went after `step` was accepted.
    fn accepted(&mut self, step: &Step) {
        let (index, stage) = match *step {
            Step::Offer(index, _) => (index, Stage::Offered),
            Step::Accept(index) => (index, Stage::Accepted),
            Step::Decline(index) => (index, Stage::Requested),
            Step::Transport(index) => (index, Stage::InTransit),
            Step::Arrive(index) => (index, Stage::Arrived),
            Step::Cancel(index) | Step::Discharge(index) => (index, Stage::Over),
            _ => return,
        };
        if let Some(slot) = self.slot(index) {
            self.placements[slot].stage = stage;
        }
    }
}

impl Step {
    fn name(&self) -> &'static str {
        match self {
            Self::Request(_) => "request",
            Self::Offer(..) => "offer",
            Self::Accept(_) => "accept",
            Self::Decline(_) => "decline",
            Self::Transport(_) => "transport",
            Self::Arrive(_) => "arrive",
            Self::Cancel(_) => "cancel",
            Self::Discharge(_) => "discharge",
            Self::Declare(..) => "declare",
            Self::Advance(..) => "advance",
        }
    }
}

/// Accepted and refused commands by step.
type Tally = BTreeMap<&'static str, (usize, usize)>;

/// Plays `steps` for three new cases; refusals are expected (most random steps are
/// illegal) and only counted in `tally`.
async fn play(api: &TestApi, steps: &[Step], tally: &mut Tally) {
    let mut sequence = Sequence::default();
    // Room again, whatever earlier sequences hold; `Declare` steps make it scarce.
    for (facility, actor) in HOSPITALS {
        api.declare(
            actor,
            facility,
            pb::BedCategory::Moderate,
            100_000,
            100_000,
            0,
        )
        .await;
    }
    for _ in 0..3 {
        sequence
            .cases
            .push(api.report_case(pb::Severity::ModerateIi).await);
    }
    let mut placements = api.placements();
    for step in steps {
        let step = match *step {
            Step::Advance(case, hospital) => sequence.advance(case, hospital),
            ref other => other.clone(),
        };
        let outcome: Result<(), tonic::Status> = match step.clone() {
            Step::Advance(..) => unreachable!("made concrete above"),
            Step::Request(case) => {
                let request = pb::RequestPlacementRequest {
                    command_id: cid(),
                    case_id: sequence.cases[case].clone(),
                    category: pb::BedCategory::Moderate as i32,
                    needs: vec![],
                    note: String::new(),
                    expected_version: None,
                };
                placements
                    .request_placement(authed(HC, request))
                    .await
                    .map(|answer| {
                        let id = answer.into_inner().stream_id;
                        sequence.placements.push(Made {
                            id: id.trim_start_matches("placement-").to_owned(),
                            case,
                            hospital: 0,
                            stage: Stage::Requested,
                        });
                    })
            }
            Step::Offer(index, hospital) => match sequence.placement(index) {
                None => continue,
                Some((id, _)) => {
                    let request = pb::OfferPlacementRequest {
                        command_id: cid(),
                        placement_id: id.clone(),
                        facility_id: HOSPITALS[hospital].0.into(),
                        expected_version: None,
                    };
                    let offered = placements.offer_placement(authed(HQ, request)).await;
                    if let (Ok(_), Some(slot)) = (&offered, sequence.slot(index)) {
                        sequence.placements[slot].hospital = hospital;
                    }
                    offered.map(drop)
                }
            },
            Step::Accept(index) => match sequence.placement(index) {
                None => continue,
                Some((id, actor)) => {
                    let request = pb::AcceptPlacementRequest {
                        command_id: cid(),
                        placement_id: id,
                        override_capacity: false,
                        override_reason: String::new(),
                        expected_version: None,
                    };
                    placements
                        .accept_placement(authed(actor, request))
                        .await
                        .map(drop)
                }
            },
            Step::Decline(index) => match sequence.placement(index) {
                None => continue,
                Some((id, actor)) => {
                    let request = pb::DeclinePlacementRequest {
                        command_id: cid(),
                        placement_id: id,
                        reason: "満床のため".into(),
                        expected_version: None,
                    };
                    placements
                        .decline_placement(authed(actor, request))
                        .await
                        .map(drop)
                }
            },
            Step::Transport(index) => match sequence.placement(index) {
                None => continue,
                Some((id, _)) => {
                    let arrange = pb::ArrangeTransportRequest {
                        command_id: cid(),
                        placement_id: id.clone(),
                        vehicle: pb::Vehicle::Ambulance as i32,
                        pickup_at: None,
                        note: String::new(),
                        expected_version: None,
                    };
                    match placements.arrange_transport(authed(HC, arrange)).await {
                        Err(status) => Err(status),
                        Ok(_) => {
                            let departure = pb::RecordDepartureRequest {
                                command_id: cid(),
                                placement_id: id,
                                expected_version: None,
                            };
                            placements
                                .record_departure(authed(HC, departure))
                                .await
                                .map(drop)
                        }
                    }
                }
            },
            Step::Arrive(index) => match sequence.placement(index) {
                None => continue,
                Some((id, actor)) => {
                    let request = pb::RecordArrivalRequest {
                        command_id: cid(),
                        placement_id: id,
                        expected_version: None,
                    };
                    placements
                        .record_arrival(authed(actor, request))
                        .await
                        .map(drop)
                }
            },
            Step::Cancel(index) => match sequence.placement(index) {
                None => continue,
                Some((id, _)) => {
                    let request = pb::CancelPlacementRequest {
                        command_id: cid(),
                        placement_id: id,
                        reason: "調整終了".into(),
                        expected_version: None,
                    };
                    placements
                        .cancel_placement(authed(HQ, request))
                        .await
                        .map(drop)
                }
            },
            Step::Discharge(index) => match sequence.placement(index) {
                None => continue,
                Some((id, actor)) => {
                    let request = pb::RecordDischargeRequest {
                        command_id: cid(),
                        placement_id: id,
                        outcome: pb::DischargeOutcome::Recovered as i32,
                        note: String::new(),
                        expected_version: None,
                    };
                    placements
                        .record_discharge(authed(actor, request))
                        .await
                        .map(drop)
                }
            },
            Step::Declare(hospital, ready) => {
                let (facility, actor) = HOSPITALS[hospital];
                let request = noroshi_tests::api::declare_request(
                    facility,
                    pb::BedCategory::Moderate,
                    100_000,
                    ready,
                    0,
                );
                api.facilities()
                    .declare_capacity(authed(actor, request))
                    .await
                    .map(drop)
            }
        };
        let counts = tally.entry(step.name()).or_default();
        match outcome {
            Ok(()) => {
                counts.0 += 1;
                sequence.accepted(&step);
            }
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::FailedPrecondition
                            | tonic::Code::InvalidArgument
                            | tonic::Code::PermissionDenied
                            | tonic::Code::NotFound
                            | tonic::Code::AlreadyExists
                    ),
                    "{step:?} answered {status:?}: a refusal names a precondition, never an internal failure"
                );
                counts.1 += 1;
            }
        }
    }
}

/// The facility and placement streams of the whole store, folded with the domain's
/// code as far as `position` (each check folds only the events after the last).
#[derive(Default)]
struct Folded {
    position: u64,
    facilities: BTreeMap<String, Facility>,
    placements: BTreeMap<Uuid, Placement>,
}

impl Folded {
    async fn catch_up(&mut self, api: &TestApi) {
        let store = api.db.store();
        let (head, _) = store.head().await.unwrap();
        let events = store
            .read_range(self.position, head, &["facility", "placement"], 1_000_000)
            .await
            .unwrap();
        for recorded in &events {
            let aggregate = recorded.stream_id.aggregate_id().to_owned();
            match decode(recorded).unwrap() {
                DomainEvent::Facility(event) => {
                    self.facilities.entry(aggregate).or_default().evolve(&event);
                }
                DomainEvent::Placement(event) => {
                    self.placements
                        .entry(aggregate.parse().unwrap())
                        .or_default()
                        .evolve(&event);
                }
                _ => {}
            }
        }
        self.position = head;
    }
}

/// The invariants over the whole store, folded with the domain's code; the first
/// broken one, if any.
async fn broken_invariant(api: &TestApi, folded: &mut Folded) -> Option<String> {
    folded.catch_up(api).await;
    let placements: BTreeMap<Uuid, _> = folded
        .placements
        .iter()
        .filter_map(|(id, placement)| Some((*id, placement.record.clone()?)))
        .collect();
    let mut live_by_case: BTreeMap<Uuid, usize> = BTreeMap::new();
    for record in placements.values() {
        if record.status.is_live() {
            *live_by_case.entry(record.case_id).or_default() += 1;
        }
    }
    if let Some((case, live)) = live_by_case.iter().find(|(_, live)| **live > 1) {
        return Some(format!("case {case} has {live} live placements"));
    }
    for (facility, state) in &folded.facilities {
        let at_facility = |wanted: &dyn Fn(PlacementStatus, bool) -> bool| -> BTreeSet<Uuid> {
            placements
                .iter()
                .filter(|(_, r)| r.target.as_ref().map(|t| t.as_str()) == Some(facility.as_str()))
                .filter(|(_, r)| wanted(r.status, r.discharged))
                .map(|(id, _)| *id)
                .collect()
        };
        let held = at_facility(&|status, _| {
            matches!(
                status,
                PlacementStatus::Accepted
                    | PlacementStatus::TransportArranged
                    | PlacementStatus::InTransit
            )
        });
        let holds: BTreeSet<Uuid> = state.holds.keys().copied().collect();
        if holds != held {
            return Some(format!(
                "{facility}: holds {holds:?}, but the placements accepted and not arrived are {held:?}"
            ));
        }
        let occupying =
            at_facility(&|status, discharged| status == PlacementStatus::Arrived && !discharged);
        let occupants: BTreeSet<Uuid> = state.occupants.keys().copied().collect();
        if occupants != occupying {
            return Some(format!(
                "{facility}: occupants {occupants:?}, but the placements arrived and not discharged are {occupying:?}"
            ));
        }
        for (category, beds) in &state.beds {
            let holds_here = state.holds.values().filter(|c| *c == category).count();
            if usize::try_from(beds.held).unwrap() != holds_here {
                return Some(format!(
                    "{facility} {category}: held {} but {holds_here} open holds",
                    beds.held
                ));
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_sequence_of_placement_commands_breaks_the_invariants() {
    let api = TestApi::start().await;
    api.seed().await;
    let runtime = tokio::runtime::Handle::current();
    let tally = std::sync::Mutex::new(Tally::new());
    let folded = tokio::sync::Mutex::new(Folded::default());
    let mut runner = TestRunner::new(Config {
        cases: super::cases(),
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&prop::collection::vec(step(), 1..40), |steps| {
            let broken = tokio::task::block_in_place(|| {
                runtime.block_on(async {
                    let mut played = Tally::new();
                    play(&api, &steps, &mut played).await;
                    {
                        let mut tally = tally.lock().unwrap();
                        for (step, (accepted, refused)) in played {
                            let counts = tally.entry(step).or_default();
                            counts.0 += accepted;
                            counts.1 += refused;
                        }
                    }
                    broken_invariant(&api, &mut *folded.lock().await).await
                })
            });
            prop_assert!(broken.is_none(), "{}", broken.unwrap_or_default());
            Ok(())
        })
        .unwrap();
    let tally = tally.into_inner().unwrap();
    eprintln!(
        "fuzz: placement model: {} sequences; (accepted, refused) by step: {tally:?}",
        super::cases()
    );
    for step in ["request", "offer", "accept", "arrive", "discharge"] {
        let (accepted, _) = tally.get(step).copied().unwrap_or_default();
        assert!(accepted > 0, "the sequences reach {step}: {tally:?}");
    }
}
