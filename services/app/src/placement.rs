//! Placement commands. Each loads the placement and its case (whose owner and stay the
//! access rules look at), and the facility whose beds move, then appends the events of
//! every stream it touches in one transaction.

use noroshi_domain::DomainError;
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::case::Case;
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::{
    self as rules, Decision, Placement, PlacementRecord, RequestPlacement,
};
use noroshi_domain::values::FacilityId;
use uuid::Uuid;

use crate::command::{Envelope, Outcome, PlacementCommand};
use crate::handler::{CaseRef, Changes, CommandHandler, FacilityRef, Needs, Session, Stop};

/// Namespace of the timer's deterministic command ids.
const OFFER_EXPIRY_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_6578_7069_7279);

/// Authorizes `action` on the loaded placement and its case; yields the placement.
fn authorized<'s>(
    s: &'s Session<'_>,
    action: Action,
) -> Result<(Uuid, &'s Placement, &'s PlacementRecord), Stop> {
    let Some((placement_id, placement)) = s.placement() else {
        return Err(DomainError::NotFound("placement".into()).into());
    };
    let Some(record) = placement.record.as_ref() else {
        s.authorize(action, false, &Target::UNKNOWN, "placement")?;
        return Err(DomainError::NotFound("placement".into()).into());
    };
    let case = s.case().and_then(|(_, c)| c.record.as_ref());
    s.authorize(
        action,
        true,
        &Target::of_placement(record, case, &s.principal.organisation_id),
        "placement",
    )?;
    Ok((placement_id, placement, record))
}

/// The loaded case, which every requested placement has.
fn case<'s>(s: &'s Session<'_>) -> Result<&'s Case, Stop> {
    s.case()
        .map(|(_, c)| c)
        .ok_or_else(|| DomainError::precondition("the placement's case is missing").into())
}

fn changes(
    placement_id: Uuid,
    case_id: Uuid,
    facility: Option<&FacilityId>,
    decision: Decision,
) -> Result<Changes, Stop> {
    let mut changes =
        Changes::default().add::<Placement>(&placement_id.to_string(), decision.placement)?;
    if let Some(facility) = facility {
        changes = changes.add::<Facility>(facility.as_str(), decision.facility)?;
    }
    changes = changes.add::<Case>(&case_id.to_string(), decision.case)?;
    match decision.origin {
        Some(origin) => changes
            .add::<Placement>(&origin.placement_id.to_string(), origin.placement)?
            .add::<Facility>(origin.facility_id.as_str(), origin.facility),
        None => Ok(changes),
    }
}

fn only_placement(placement_id: Uuid, events: Vec<rules::PlacementEvent>) -> Result<Changes, Stop> {
    Changes::default().add::<Placement>(&placement_id.to_string(), events)
}

pub(crate) async fn request(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    case_id: Uuid,
    command: RequestPlacement,
) -> Outcome {
    let placement_id = Uuid::now_v7();
    let needs = Needs {
        placement: Some(placement_id),
        case: Some(CaseRef::Id(case_id)),
        ..Needs::default()
    };
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let (placement, case) = match (s.placement(), s.case()) {
                (Some((_, p)), Some((_, c))) => (p, c),
                _ => return Err(DomainError::NotFound("case".into()).into()),
            };
            let record = case.record.as_ref();
            let target = record.map(Target::of_case).unwrap_or(Target::UNKNOWN);
            s.authorize(Action::RequestPlacement, record.is_some(), &target, "case")?;
            let decision = rules::request(
                placement,
                placement_id,
                case_id,
                case,
                command.clone(),
                s.now,
            )?;
            changes(placement_id, case_id, None, decision)
        })
        .await
}

/// The facility a step loads besides the placement and its case.
fn facility_of(command: &PlacementCommand) -> Option<FacilityRef> {
    match command {
        PlacementCommand::Offer { facility_id } => Some(FacilityRef::Id(facility_id.clone())),
        PlacementCommand::Accept { .. } => Some(FacilityRef::Principal),
        PlacementCommand::RecordArrival
        | PlacementCommand::Cancel { .. }
        | PlacementCommand::Discharge { .. } => Some(FacilityRef::PlacementTarget),
        PlacementCommand::Decline { .. }
        | PlacementCommand::ArrangeTransport(_)
        | PlacementCommand::RecordDeparture => None,
    }
}

fn action(command: &PlacementCommand) -> Action {
    match command {
        PlacementCommand::Offer { .. } => Action::OfferPlacement,
        PlacementCommand::Accept { .. } => Action::AcceptPlacement,
        PlacementCommand::Decline { .. } => Action::DeclinePlacement,
        PlacementCommand::ArrangeTransport(_) => Action::ArrangeTransport,
        PlacementCommand::RecordDeparture => Action::RecordDeparture,
        PlacementCommand::RecordArrival => Action::RecordArrival,
        PlacementCommand::Cancel { .. } => Action::CancelPlacement,
        PlacementCommand::Discharge { .. } => Action::RecordDischarge,
    }
}

/// Runs a step of a placement.
pub(crate) async fn run(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    placement_id: Uuid,
    command: PlacementCommand,
) -> Outcome {
    let needs = Needs {
        placement: Some(placement_id),
        case: Some(CaseRef::OfPlacement),
        facility: facility_of(&command),
        stay: matches!(command, PlacementCommand::RecordArrival),
        ..Needs::default()
    };
    let action = action(&command);
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let (placement_id, placement, record) = authorized(s, action)?;
            decide(s, placement_id, placement, record, &command)
        })
        .await
}

fn decide(
    s: &Session<'_>,
    placement_id: Uuid,
    placement: &Placement,
    record: &PlacementRecord,
    command: &PlacementCommand,
) -> Result<Changes, Stop> {
    match command {
        PlacementCommand::Offer { .. } => {
            let facility = s.facility().map(|(_, f)| f).cloned().unwrap_or_default();
            let events = placement.offer(&facility, s.now, s.policy())?;
            only_placement(placement_id, events)
        }
        PlacementCommand::Accept { capacity_override } => {
            let (facility_id, facility) = s
                .facility()
                .ok_or_else(|| Stop::from(DomainError::NotFound("facility".into())))?;
            let decision = placement.accept(
                placement_id,
                facility,
                capacity_override.clone(),
                s.now,
                s.policy(),
            )?;
            changes(placement_id, record.case_id, Some(facility_id), decision)
        }
        PlacementCommand::Decline { reason } => {
            let events = placement.decline(&s.principal.organisation_id, reason.clone(), s.now)?;
            only_placement(placement_id, events)
        }
        PlacementCommand::ArrangeTransport(transport) => {
            let events = placement.arrange_transport(transport.clone())?;
            only_placement(placement_id, events)
        }
        PlacementCommand::RecordDeparture => {
            let events = placement.record_departure(s.now)?;
            only_placement(placement_id, events)
        }
        PlacementCommand::RecordArrival => {
            let (facility_id, facility) = s.facility().ok_or_else(|| {
                Stop::from(DomainError::precondition(
                    "placement has no accepting facility",
                ))
            })?;
            let decision =
                placement.record_arrival(placement_id, facility, case(s)?, s.stay(), s.now)?;
            changes(placement_id, record.case_id, Some(facility_id), decision)
        }
        PlacementCommand::Cancel { reason } => {
            let facility = s.facility();
            let decision = placement.cancel(
                placement_id,
                facility.map(|(_, f)| f),
                case(s)?,
                reason.clone(),
                s.now,
            )?;
            changes(
                placement_id,
                record.case_id,
                facility.map(|(id, _)| id),
                decision,
            )
        }
        PlacementCommand::Discharge { outcome, note } => {
            let (facility_id, facility) = s.facility().ok_or_else(|| {
                Stop::from(DomainError::precondition("placement has no facility"))
            })?;
            let decision = placement.discharge(
                placement_id,
                facility,
                case(s)?,
                *outcome,
                note.clone(),
                s.now,
            )?;
            changes(placement_id, record.case_id, Some(facility_id), decision)
        }
    }
}

/// An offer's deadline as its expiry names it: to the microsecond, as PostgreSQL keeps it
/// in the read model the scheduler finds it in.
fn micros(at: time::OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos() / 1000
}

/// The expiry's command id: the placement and the deadline of the offer it ends, so that
/// two schedulers (or one retrying) append each expiry once.
pub fn offer_expiry_command_id(placement_id: Uuid, deadline: time::OffsetDateTime) -> Uuid {
    Uuid::new_v5(
        &OFFER_EXPIRY_NAMESPACE,
        format!("{placement_id}/offer-due/{}", micros(deadline)).as_bytes(),
    )
}

/// The scheduler's `OfferExpired` for the offer due at `deadline`, a system action that
/// needs no principal's rights. Refused when that offer was answered, withdrawn or
/// followed by another, and before its deadline.
pub async fn expire_offer(
    handler: &CommandHandler,
    system: &Principal,
    placement_id: Uuid,
    deadline: time::OffsetDateTime,
) -> Outcome {
    let envelope = Envelope {
        command_id: offer_expiry_command_id(placement_id, deadline),
        expected_version: None,
        request_digest: None,
        dry_run: false,
    };
    let needs = Needs {
        placement: Some(placement_id),
        ..Needs::default()
    };
    handler
        .run(
            system,
            envelope,
            noroshi_domain::streams::PLACEMENT,
            &needs,
            |s| {
                let Some((_, placement)) = s.placement() else {
                    return Err(DomainError::NotFound("placement".into()).into());
                };
                let open = placement.requested()?.offer_deadline;
                if open.map(micros) != Some(micros(deadline)) {
                    return Err(DomainError::precondition(format!(
                        "the offer due {deadline} is no longer open"
                    ))
                    .into());
                }
                let events = placement.expire_offer(s.now)?;
                only_placement(placement_id, events)
            },
        )
        .await
}
