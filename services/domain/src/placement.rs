//! The placement aggregate, stream `placement-<placement_id>` (DESIGN.md §5.3), and the
//! decisions that also move a facility (bed holds) and a case (its status). Those
//! decisions return a [`Decision`] whose events the caller appends in one transaction.

use std::collections::BTreeSet;

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::case::{Case, CaseEvent, CaseRecord};
use crate::error::DomainError;
use crate::facility::{Facility, FacilityEvent};
use crate::values::{
    BedCategory, Capability, CaseStatus, DischargeOutcome, FacilityId, FacilityKind,
    MunicipalityCode, PlacementStatus, Priority, Reason, Text, Vehicle,
};

/// Where the patient comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Home(MunicipalityCode),
    /// A transfer out of a facility.
    Facility(FacilityId),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transport {
    pub vehicle: Vehicle,
    pub pickup_at: Option<OffsetDateTime>,
    pub note: Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementEvent {
    Requested {
        case_id: Uuid,
        requested_by: FacilityId,
        category: BedCategory,
        needs: BTreeSet<Capability>,
        priority: Priority,
        origin: Origin,
        requested_at: OffsetDateTime,
        note: Text,
    },
    Offered {
        target: FacilityId,
        offered_at: OffsetDateTime,
        offer_deadline: OffsetDateTime,
    },
    Accepted {
        facility: FacilityId,
        accepted_at: OffsetDateTime,
        hold_deadline: OffsetDateTime,
        capacity_override: Option<Reason>,
    },
    Declined {
        facility: FacilityId,
        reason: Reason,
        declined_at: OffsetDateTime,
    },
    OfferExpired {
        facility: FacilityId,
        offer_deadline: OffsetDateTime,
    },
    TransportArranged(Transport),
    Departed {
        departed_at: OffsetDateTime,
    },
    Arrived {
        facility: FacilityId,
        arrived_at: OffsetDateTime,
    },
    Cancelled {
        reason: Reason,
        cancelled_in: PlacementStatus,
        cancelled_at: OffsetDateTime,
    },
    Discharged {
        facility: FacilityId,
        case_id: Uuid,
        outcome: DischargeOutcome,
        discharged_at: OffsetDateTime,
        note: Text,
        /// The placement that moved the patient on, when the discharge is its arrival.
        transferred_to: Option<Uuid>,
    },
}

/// A requested placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRecord {
    pub case_id: Uuid,
    pub requested_by: FacilityId,
    pub category: BedCategory,
    pub needs: BTreeSet<Capability>,
    pub priority: Priority,
    pub origin: Origin,
    pub requested_at: OffsetDateTime,
    pub status: PlacementStatus,
    /// The facility of the current offer, then the one that accepted.
    pub target: Option<FacilityId>,
    pub offered_at: Option<OffsetDateTime>,
    pub offer_deadline: Option<OffsetDateTime>,
    pub hold_deadline: Option<OffsetDateTime>,
    pub declined_by: Vec<FacilityId>,
    pub transport: Option<Transport>,
    /// Offers made so far; numbers each offer for the timer's deterministic command ids.
    pub offers: u32,
    pub discharged: bool,
}

/// State of one placement stream; `record` is `None` until requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placement {
    pub record: Option<PlacementRecord>,
}

/// Events for every stream a placement command touches, appended atomically.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    pub placement: Vec<PlacementEvent>,
    pub facility: Vec<FacilityEvent>,
    pub case: Vec<CaseEvent>,
    /// A transfer's arrival: the stay it ends, discharged and vacated.
    pub origin: Option<OriginDischarge>,
}

/// The end of the stay a transfer leaves: its placement's `Discharged` and its
/// facility's `BedVacated`, in the same append as the arrival.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginDischarge {
    pub placement_id: Uuid,
    pub placement: Vec<PlacementEvent>,
    pub facility_id: FacilityId,
    pub facility: Vec<FacilityEvent>,
}

/// The stay a transfer leaves, as the arrival decides on it: its placement and the
/// facility where the patient has been.
#[derive(Debug, Clone, Copy)]
pub struct Stay<'a> {
    pub placement_id: Uuid,
    pub placement: &'a Placement,
    pub facility: &'a Facility,
}

/// Deadlines the placement rules apply (DESIGN.md §5.3 defaults: 30 min, 6 h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlacementPolicy {
    pub offer_ttl: Duration,
    pub hold_ttl: Duration,
}

impl Default for PlacementPolicy {
    fn default() -> Self {
        Self {
            offer_ttl: Duration::minutes(30),
            hold_ttl: Duration::hours(6),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestPlacement {
    pub requested_by: FacilityId,
    pub category: BedCategory,
    /// Added to the needs of the case.
    pub needs: BTreeSet<Capability>,
    pub note: Text,
}

fn illegal(status: PlacementStatus, action: &str) -> DomainError {
    DomainError::precondition(format!("placement is {status}; cannot {action}"))
}

/// The stay an arriving patient leaves, discharged and vacated: the stay the case
/// records elsewhere than `placement_id`, still occupying its bed.
fn leaving(
    case: &CaseRecord,
    placement_id: Uuid,
    stay: Option<Stay<'_>>,
    now: OffsetDateTime,
) -> Result<Option<OriginDischarge>, DomainError> {
    let Some((stay_id, origin)) = case.stay.as_ref().filter(|(p, _)| *p != placement_id) else {
        return Ok(None);
    };
    let Some(stay) = stay.filter(|s| s.placement_id == *stay_id) else {
        return Err(DomainError::precondition(format!(
            "the stay of placement {stay_id} at {origin} was not loaded"
        )));
    };
    let Some(record) = stay.placement.record.as_ref() else {
        return Ok(None);
    };
    if record.discharged || record.status != PlacementStatus::Arrived {
        return Ok(None);
    }
    let vacated = stay.facility.vacate(*stay_id, DischargeOutcome::Transfer)?;
    Ok(Some(OriginDischarge {
        placement_id: *stay_id,
        placement: vec![PlacementEvent::Discharged {
            facility: origin.clone(),
            case_id: record.case_id,
            outcome: DischargeOutcome::Transfer,
            discharged_at: now,
            note: Text::empty(),
            transferred_to: Some(placement_id),
        }],
        facility_id: origin.clone(),
        facility: vec![vacated],
    }))
}

/// Statuses a case may request a placement from; those other than AWAITING_PLACEMENT
/// pass through it (a report that needs a bed, home care that worsens, an escalation or
/// step-down from a facility).
const REQUESTABLE: &[CaseStatus] = &[
    CaseStatus::Reported,
    CaseStatus::HomeCare,
    CaseStatus::AwaitingPlacement,
    CaseStatus::Hospitalized,
    CaseStatus::InHotel,
];

/// `RequestPlacement`: the placement, and the case to PLACEMENT_IN_PROGRESS.
pub fn request(
    placement: &Placement,
    placement_id: Uuid,
    case_id: Uuid,
    case: &Case,
    command: RequestPlacement,
    now: OffsetDateTime,
) -> Result<Decision, DomainError> {
    if placement.record.is_some() {
        return Err(DomainError::AlreadyExists("placement".into()));
    }
    let record = case.open()?;
    if let Some(live) = record.live_placement {
        return Err(DomainError::precondition(format!(
            "case already has a live placement {live}"
        )));
    }
    if !REQUESTABLE.contains(&record.status) {
        return Err(DomainError::precondition(format!(
            "case is {}; cannot request a placement",
            record.status
        )));
    }
    let needs = record.needs.union(&command.needs).copied().collect();
    // A patient in a bed keeps it until they arrive at the next (DESIGN.md §5.4): the
    // case stays where it is, with this placement live.
    let (origin, case_event) = match &record.stay {
        Some((_, facility))
            if matches!(
                record.status,
                CaseStatus::Hospitalized | CaseStatus::InHotel
            ) =>
        {
            (
                Origin::Facility(facility.clone()),
                CaseEvent::TransferRequested {
                    placement_id,
                    from_facility: facility.clone(),
                },
            )
        }
        _ => (
            Origin::Home(record.report.municipality.clone()),
            CaseEvent::StatusChanged {
                from: record.status,
                to: CaseStatus::PlacementInProgress,
                placement_id,
                facility_id: None,
            },
        ),
    };
    Ok(Decision {
        placement: vec![PlacementEvent::Requested {
            case_id,
            requested_by: command.requested_by,
            category: command.category,
            needs,
            priority: record.priority,
            origin,
            requested_at: now,
            note: command.note,
        }],
        case: vec![case_event],
        ..Decision::default()
    })
}

impl Placement {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a PlacementEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }

    pub fn requested(&self) -> Result<&PlacementRecord, DomainError> {
        self.record
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("placement".into()))
    }

    /// `OfferPlacement`: HQ offers the patient to `facility`.
    pub fn offer(
        &self,
        facility: &Facility,
        now: OffsetDateTime,
        policy: PlacementPolicy,
    ) -> Result<Vec<PlacementEvent>, DomainError> {
        let record = self.requested()?;
        if record.status != PlacementStatus::Requested {
            return Err(illegal(record.status, "offer"));
        }
        let profile = facility
            .profile
            .as_ref()
            .ok_or_else(|| DomainError::invalid("facility_id", "is not a registered facility"))?;
        if !profile.active {
            return Err(DomainError::precondition(format!(
                "facility {} is inactive",
                profile.facility_id
            )));
        }
        if !profile.kind.bed_categories().contains(&record.category) {
            return Err(DomainError::invalid(
                "facility_id",
                format!(
                    "a {} facility has no {} beds",
                    profile.kind, record.category
                ),
            ));
        }
        let missing: Vec<String> = record
            .needs
            .difference(&profile.capabilities)
            .map(ToString::to_string)
            .collect();
        if !missing.is_empty() {
            return Err(DomainError::invalid(
                "facility_id",
                format!(
                    "{} lacks needed capabilities: {}",
                    profile.facility_id,
                    missing.join(", ")
                ),
            ));
        }
        Ok(vec![PlacementEvent::Offered {
            target: profile.facility_id.clone(),
            offered_at: now,
            offer_deadline: now + policy.offer_ttl,
        }])
    }

    /// The offer addressed to `facility`, or why there is none to answer.
    fn open_offer(
        &self,
        facility: &FacilityId,
        now: OffsetDateTime,
    ) -> Result<&PlacementRecord, DomainError> {
        let record = self.requested()?;
        if record.status.is_accepted() && record.target.as_ref() == Some(facility) {
            return Err(DomainError::precondition(format!(
                "the placement is already accepted by you (it is {})",
                record.status
            )));
        }
        if record.status != PlacementStatus::Offered {
            return Err(illegal(record.status, "answer an offer"));
        }
        if record.target.as_ref() != Some(facility) {
            return Err(DomainError::precondition(
                "the offer is addressed to another facility",
            ));
        }
        if record
            .offer_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            return Err(DomainError::precondition("the offer deadline has passed"));
        }
        Ok(record)
    }

    /// `AcceptPlacement`: the placement is accepted and a bed is held, atomically.
    pub fn accept(
        &self,
        placement_id: Uuid,
        facility: &Facility,
        capacity_override: Option<Reason>,
        now: OffsetDateTime,
        policy: PlacementPolicy,
    ) -> Result<Decision, DomainError> {
        let facility_id = facility
            .id()
            .ok_or_else(|| DomainError::NotFound("facility".into()))?;
        let record = self.open_offer(facility_id, now)?;
        let hold_deadline = now + policy.hold_ttl;
        let held = facility.hold_bed(
            record.category,
            placement_id,
            hold_deadline,
            capacity_override.clone(),
        )?;
        Ok(Decision {
            placement: vec![PlacementEvent::Accepted {
                facility: facility_id.clone(),
                accepted_at: now,
                hold_deadline,
                capacity_override,
            }],
            facility: vec![held],
            ..Decision::default()
        })
    }

    /// `DeclinePlacement`: back to REQUESTED; the facility is remembered.
    pub fn decline(
        &self,
        facility: &FacilityId,
        reason: Reason,
        now: OffsetDateTime,
    ) -> Result<Vec<PlacementEvent>, DomainError> {
        self.open_offer(facility, now)?;
        Ok(vec![PlacementEvent::Declined {
            facility: facility.clone(),
            reason,
            declined_at: now,
        }])
    }

    /// The timer's `OfferExpired`, once the deadline has passed.
    pub fn expire_offer(&self, now: OffsetDateTime) -> Result<Vec<PlacementEvent>, DomainError> {
        let record = self.requested()?;
        let (Some(facility), Some(deadline), PlacementStatus::Offered) =
            (&record.target, record.offer_deadline, record.status)
        else {
            return Err(illegal(record.status, "expire an offer"));
        };
        if now < deadline {
            return Err(DomainError::precondition(
                "the offer deadline has not passed",
            ));
        }
        Ok(vec![PlacementEvent::OfferExpired {
            facility: facility.clone(),
            offer_deadline: deadline,
        }])
    }

    /// `ArrangeTransport`: after acceptance; may be re-arranged until departure.
    pub fn arrange_transport(
        &self,
        transport: Transport,
    ) -> Result<Vec<PlacementEvent>, DomainError> {
        let record = self.requested()?;
        match record.status {
            PlacementStatus::Accepted | PlacementStatus::TransportArranged => {
                Ok(vec![PlacementEvent::TransportArranged(transport)])
            }
            status => Err(illegal(status, "arrange transport")),
        }
    }

    /// `RecordDeparture`: the patient left with the arranged transport.
    pub fn record_departure(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<PlacementEvent>, DomainError> {
        let record = self.requested()?;
        if record.status != PlacementStatus::TransportArranged {
            return Err(illegal(record.status, "record a departure"));
        }
        Ok(vec![PlacementEvent::Departed { departed_at: now }])
    }

    /// `RecordArrival`: the hold becomes an occupied bed and the case is placed. A
    /// transfer's arrival also ends the stay it leaves (DESIGN.md §5.4): `stay` is that
    /// stay, which the caller loads when the case has one elsewhere.
    pub fn record_arrival(
        &self,
        placement_id: Uuid,
        facility: &Facility,
        case: &Case,
        stay: Option<Stay<'_>>,
        now: OffsetDateTime,
    ) -> Result<Decision, DomainError> {
        let record = self.requested()?;
        if record.status != PlacementStatus::InTransit {
            return Err(illegal(record.status, "record an arrival"));
        }
        let facility_id = facility
            .id()
            .filter(|id| record.target.as_ref() == Some(*id))
            .ok_or_else(|| {
                DomainError::precondition("the patient was placed at another facility")
            })?;
        let occupied = facility.occupy(placement_id)?;
        let case_record = case
            .record
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("case".into()))?;
        let mut decision = Decision {
            placement: vec![PlacementEvent::Arrived {
                facility: facility_id.clone(),
                arrived_at: now,
            }],
            facility: vec![occupied],
            ..Decision::default()
        };
        if case_record.live_placement == Some(placement_id) {
            let kind = facility.profile.as_ref().map(|p| p.kind);
            decision.case.push(CaseEvent::StatusChanged {
                from: case_record.status,
                to: if kind == Some(FacilityKind::Hotel) {
                    CaseStatus::InHotel
                } else {
                    CaseStatus::Hospitalized
                },
                placement_id,
                facility_id: Some(facility_id.clone()),
            });
        }
        decision.origin = leaving(case_record, placement_id, stay, now)?;
        if let Some(origin) = decision
            .origin
            .as_mut()
            .filter(|origin| &origin.facility_id == facility_id)
        {
            // Moved within one facility (another category): one stream, in order.
            decision.facility.append(&mut origin.facility);
        }
        Ok(decision)
    }

    /// `CancelPlacement`: releases a held bed and returns the case to where it was.
    /// `facility` is the facility of the current target, when there is one.
    pub fn cancel(
        &self,
        placement_id: Uuid,
        facility: Option<&Facility>,
        case: &Case,
        reason: Reason,
        now: OffsetDateTime,
    ) -> Result<Decision, DomainError> {
        let record = self.requested()?;
        if !record.status.is_live() {
            return Err(illegal(record.status, "cancel"));
        }
        let mut decision = Decision {
            placement: vec![PlacementEvent::Cancelled {
                reason: reason.clone(),
                cancelled_in: record.status,
                cancelled_at: now,
            }],
            ..Decision::default()
        };
        if let Some(released) =
            facility.and_then(|f| f.release_hold(placement_id, Text::from(reason.clone())))
        {
            decision.facility.push(released);
        }
        if let Some(case_record) = &case.record
            && case_record.live_placement == Some(placement_id)
        {
            if matches!(
                case_record.status,
                CaseStatus::Hospitalized | CaseStatus::InHotel
            ) {
                // A transfer: the patient never left their bed.
                decision
                    .case
                    .push(CaseEvent::TransferCancelled { placement_id });
                return Ok(decision);
            }
            decision.case.push(CaseEvent::StatusChanged {
                from: case_record.status,
                to: case_record
                    .status_before_placement
                    .unwrap_or(CaseStatus::AwaitingPlacement),
                placement_id,
                facility_id: None,
            });
        }
        Ok(decision)
    }

    /// `RecordDischarge`: the bed is vacated; a step-down or transfer returns the case to
    /// AWAITING_PLACEMENT, recovery or death ends it.
    pub fn discharge(
        &self,
        placement_id: Uuid,
        facility: &Facility,
        case: &Case,
        outcome: DischargeOutcome,
        note: Text,
        now: OffsetDateTime,
    ) -> Result<Decision, DomainError> {
        let record = self.requested()?;
        if record.status != PlacementStatus::Arrived || record.discharged {
            let state = if record.discharged {
                "discharged".to_owned()
            } else {
                record.status.to_string()
            };
            return Err(DomainError::precondition(format!(
                "placement is {state}; only an arrived patient can be discharged"
            )));
        }
        let facility_id = facility
            .id()
            .filter(|id| record.target.as_ref() == Some(*id))
            .ok_or_else(|| {
                DomainError::precondition("the patient was placed at another facility")
            })?;
        if let Some(live) = case.record.as_ref().and_then(|c| {
            c.live_placement
                .filter(|_| c.stay.as_ref().is_some_and(|(p, _)| *p == placement_id))
        }) {
            return Err(DomainError::precondition(format!(
                "the patient is to move on with placement {live}, which discharges them here on arrival; cancel it before discharging"
            )));
        }
        let vacated = facility.vacate(placement_id, outcome)?;
        let mut decision = Decision {
            placement: vec![PlacementEvent::Discharged {
                facility: facility_id.clone(),
                case_id: record.case_id,
                outcome,
                discharged_at: now,
                note,
                transferred_to: None,
            }],
            facility: vec![vacated],
            ..Decision::default()
        };
        if let Some(case_record) = &case.record {
            let here = case_record
                .stay
                .as_ref()
                .is_some_and(|(p, _)| *p == placement_id);
            if here
                && matches!(
                    case_record.status,
                    CaseStatus::Hospitalized | CaseStatus::InHotel
                )
            {
                decision.case.push(CaseEvent::StatusChanged {
                    from: case_record.status,
                    to: match outcome {
                        DischargeOutcome::Recovered => CaseStatus::Recovered,
                        DischargeOutcome::Deceased => CaseStatus::Deceased,
                        DischargeOutcome::StepDown | DischargeOutcome::Transfer => {
                            CaseStatus::AwaitingPlacement
                        }
                    },
                    placement_id,
                    facility_id: Some(facility_id.clone()),
                });
            }
        }
        Ok(decision)
    }

    pub fn evolve(&mut self, event: &PlacementEvent) {
        if let PlacementEvent::Requested {
            case_id,
            requested_by,
            category,
            needs,
            priority,
            origin,
            requested_at,
            ..
        } = event
        {
            self.record = Some(PlacementRecord {
                case_id: *case_id,
                requested_by: requested_by.clone(),
                category: *category,
                needs: needs.clone(),
                priority: *priority,
                origin: origin.clone(),
                requested_at: *requested_at,
                status: PlacementStatus::Requested,
                target: None,
                offered_at: None,
                offer_deadline: None,
                hold_deadline: None,
                declined_by: Vec::new(),
                transport: None,
                offers: 0,
                discharged: false,
            });
            return;
        }
        let Some(record) = &mut self.record else {
            return;
        };
        match event {
            PlacementEvent::Requested { .. } => {}
            PlacementEvent::Offered {
                target,
                offered_at,
                offer_deadline,
            } => {
                record.status = PlacementStatus::Offered;
                record.target = Some(target.clone());
                record.offered_at = Some(*offered_at);
                record.offer_deadline = Some(*offer_deadline);
                record.offers += 1;
            }
            PlacementEvent::Accepted { hold_deadline, .. } => {
                record.status = PlacementStatus::Accepted;
                record.offer_deadline = None;
                record.hold_deadline = Some(*hold_deadline);
            }
            PlacementEvent::Declined { facility, .. }
            | PlacementEvent::OfferExpired { facility, .. } => {
                record.status = PlacementStatus::Requested;
                if !record.declined_by.contains(facility) {
                    record.declined_by.push(facility.clone());
                }
                record.target = None;
                record.offer_deadline = None;
            }
            PlacementEvent::TransportArranged(transport) => {
                record.status = PlacementStatus::TransportArranged;
                record.transport = Some(transport.clone());
            }
            PlacementEvent::Departed { .. } => record.status = PlacementStatus::InTransit,
            PlacementEvent::Arrived { .. } => {
                record.status = PlacementStatus::Arrived;
                record.hold_deadline = None;
            }
            PlacementEvent::Cancelled { .. } => {
                record.status = PlacementStatus::Cancelled;
                record.offer_deadline = None;
                record.hold_deadline = None;
            }
            PlacementEvent::Discharged { .. } => record.discharged = true,
        }
    }
}
