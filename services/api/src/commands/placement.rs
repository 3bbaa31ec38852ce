//! `PlacementService` commands. Each loads the placement and its case (whose owner and
//! stay the access rules look at), and the facility whose beds move, then appends the
//! events of every stream it touches in one transaction.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::case::{Case, CaseRecord};
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::{
    self as rules, Decision, Origin, Placement, PlacementRecord, RequestPlacement, Transport,
};
use noroshi_domain::values::{FacilityId, PlacementStatus, Reason, Text};
use noroshi_proto::v1 as pb;
use uuid::Uuid;

use crate::commands::{CaseRef, Changes, CommandHandler, CommandMeta, FacilityRef, Needs, Session};
use crate::convert::fields::{command_id, enum_set, enum_value, finish, timestamp, uuid};
use crate::error::ApiError;

/// Namespace of the timer's deterministic command ids.
const OFFER_EXPIRY_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_6578_7069_7279);

fn meta(command_id: Uuid, expected_version: Option<u64>) -> CommandMeta {
    CommandMeta {
        command_id,
        expected_version,
        addressed: "placement",
    }
}

/// The facts about a placement that the access rules look at.
/// A facility that was offered the patient before (and declined or let the offer
/// expire) still counts as addressed, so that a late answer learns that the offer is
/// gone rather than being told it has no rights.
pub(crate) fn target<'a>(
    placement: &'a PlacementRecord,
    case: Option<&'a CaseRecord>,
    asking: &FacilityId,
) -> Target<'a> {
    let accepted = matches!(
        placement.status,
        PlacementStatus::Accepted
            | PlacementStatus::TransportArranged
            | PlacementStatus::InTransit
            | PlacementStatus::Arrived
    );
    Target {
        facility: None,
        case_owner: case.map(|c| &c.report.health_center_id),
        patient_at: case.and_then(|c| c.stay.as_ref().map(|(_, facility)| facility)),
        offered_to: placement
            .target
            .as_ref()
            .filter(|_| placement.status == PlacementStatus::Offered)
            .or_else(|| placement.declined_by.iter().find(|f| *f == asking)),
        accepted_by: placement.target.as_ref().filter(|_| accepted),
        transfer_from: match &placement.origin {
            Origin::Facility(facility) => Some(facility),
            Origin::Home(_) => None,
        },
    }
}

/// Authorizes `action` on the loaded placement and its case; yields the placement.
fn authorized<'s>(
    s: &'s Session<'_>,
    action: Action,
) -> Result<(Uuid, &'s Placement, &'s PlacementRecord), ApiError> {
    let Some((placement_id, placement)) = s.placement() else {
        return Err(ApiError::NotFound("placement".into()));
    };
    let Some(record) = placement.record.as_ref() else {
        s.authorize(action, false, &Target::UNKNOWN, "placement")?;
        return Err(ApiError::NotFound("placement".into()));
    };
    let case = s.case().and_then(|(_, c)| c.record.as_ref());
    s.authorize(
        action,
        true,
        &target(record, case, &s.principal.organisation_id),
        "placement",
    )?;
    Ok((placement_id, placement, record))
}

/// The loaded case, which every requested placement has.
fn case<'s>(s: &'s Session<'_>) -> Result<&'s Case, ApiError> {
    s.case()
        .map(|(_, c)| c)
        .ok_or_else(|| ApiError::FailedPrecondition("the placement's case is missing".into()))
}

/// The placement, its case, and optionally a facility.
fn needs(placement_id: Uuid, facility: Option<FacilityRef>) -> Needs {
    Needs {
        placement: Some(placement_id),
        case: Some(CaseRef::OfPlacement),
        facility,
    }
}

fn changes(
    placement_id: Uuid,
    case_id: Uuid,
    facility: Option<&FacilityId>,
    decision: Decision,
) -> Result<Changes, ApiError> {
    let mut changes =
        Changes::default().add::<Placement>(&placement_id.to_string(), decision.placement)?;
    if let Some(facility) = facility {
        changes = changes.add::<Facility>(facility.as_str(), decision.facility)?;
    }
    changes.add::<Case>(&case_id.to_string(), decision.case)
}

fn only_placement(
    placement_id: Uuid,
    events: Vec<rules::PlacementEvent>,
) -> Result<Changes, ApiError> {
    Changes::default().add::<Placement>(&placement_id.to_string(), events)
}

pub async fn request(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::RequestPlacementRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let category = enum_value(r.category, "category", &mut v);
    let needs_added = enum_set(&r.needs, "needs", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, category, note) = finish(v, (|| Some((id?, case_id?, category?, note?)))())?;
    let command = RequestPlacement {
        requested_by: principal.organisation_id.clone(),
        category,
        needs: needs_added,
        note,
    };
    let placement_id = Uuid::now_v7();
    let needs = Needs {
        placement: Some(placement_id),
        case: Some(CaseRef::Id(case_id)),
        facility: None,
    };
    handler
        .execute(principal, meta(id, r.expected_version), &needs, |s| {
            let (placement, case) = match (s.placement(), s.case()) {
                (Some((_, p)), Some((_, c))) => (p, c),
                _ => return Err(ApiError::NotFound("case".into())),
            };
            let record = case.record.as_ref();
            let target = Target {
                case_owner: record.map(|c| &c.report.health_center_id),
                patient_at: record.and_then(|c| c.stay.as_ref().map(|(_, f)| f)),
                ..Target::UNKNOWN
            };
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

/// Parses the fields every placement command has.
fn ids(command: &str, placement: &str, v: &mut Violations) -> Option<(Uuid, Uuid)> {
    let id = command_id(command, v);
    let placement_id = uuid(placement, "placement_id", v);
    id.zip(placement_id)
}

pub async fn offer(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::OfferPlacementRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let ((id, placement_id), facility_id) = finish(v, ids.zip(facility_id))?;
    let needs = needs(placement_id, Some(FacilityRef::Id(facility_id)));
    handler
        .execute(principal, meta(id, r.expected_version), &needs, |s| {
            let (placement_id, placement, _) = authorized(s, Action::OfferPlacement)?;
            let facility = s.facility().map(|(_, f)| f).cloned().unwrap_or_default();
            let events = placement.offer(&facility, s.now, s.policy())?;
            only_placement(placement_id, events)
        })
        .await
}

pub async fn accept(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::AcceptPlacementRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let capacity_override = if r.override_capacity {
        v.check(
            "override_reason",
            Reason::parse(&r.override_reason)
                .map_err(|_| "is required when override_capacity is set"),
        )
    } else {
        if !r.override_reason.trim().is_empty() {
            v.add("override_reason", "is only allowed with override_capacity");
        }
        None
    };
    let (id, placement_id) = finish(v, ids)?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, Some(FacilityRef::Principal)),
            |s| {
                let (placement_id, placement, record) = authorized(s, Action::AcceptPlacement)?;
                let (facility_id, facility) = s
                    .facility()
                    .ok_or_else(|| ApiError::NotFound("facility".into()))?;
                let decision = placement.accept(
                    placement_id,
                    facility,
                    capacity_override.clone(),
                    s.now,
                    s.policy(),
                )?;
                changes(placement_id, record.case_id, Some(facility_id), decision)
            },
        )
        .await
}

pub async fn decline(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::DeclinePlacementRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let reason = v.check("reason", Reason::parse(&r.reason));
    let ((id, placement_id), reason) = finish(v, ids.zip(reason))?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, None),
            |s| {
                let (placement_id, placement, _) = authorized(s, Action::DeclinePlacement)?;
                let events =
                    placement.decline(&s.principal.organisation_id, reason.clone(), s.now)?;
                only_placement(placement_id, events)
            },
        )
        .await
}

pub async fn arrange_transport(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::ArrangeTransportRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let vehicle = enum_value(r.vehicle, "vehicle", &mut v);
    let pickup_at = r
        .pickup_at
        .as_ref()
        .and_then(|at| timestamp(at, "pickup_at", &mut v));
    let note = v.check("note", Text::parse(&r.note));
    let ((id, placement_id), vehicle, note) = finish(v, (|| Some((ids?, vehicle?, note?)))())?;
    let transport = Transport {
        vehicle,
        pickup_at,
        note,
    };
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, None),
            |s| {
                let (placement_id, placement, _) = authorized(s, Action::ArrangeTransport)?;
                let events = placement.arrange_transport(transport.clone())?;
                only_placement(placement_id, events)
            },
        )
        .await
}

pub async fn record_departure(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::RecordDepartureRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let (id, placement_id) = finish(v, ids)?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, None),
            |s| {
                let (placement_id, placement, _) = authorized(s, Action::RecordDeparture)?;
                let events = placement.record_departure(s.now)?;
                only_placement(placement_id, events)
            },
        )
        .await
}

pub async fn record_arrival(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::RecordArrivalRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let (id, placement_id) = finish(v, ids)?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, Some(FacilityRef::PlacementTarget)),
            |s| {
                let (placement_id, placement, record) = authorized(s, Action::RecordArrival)?;
                let (facility_id, facility) = s.facility().ok_or_else(|| {
                    ApiError::FailedPrecondition("placement has no accepting facility".into())
                })?;
                let decision = placement.record_arrival(placement_id, facility, case(s)?, s.now)?;
                changes(placement_id, record.case_id, Some(facility_id), decision)
            },
        )
        .await
}

pub async fn cancel(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::CancelPlacementRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let reason = v.check("reason", Reason::parse(&r.reason));
    let ((id, placement_id), reason) = finish(v, ids.zip(reason))?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, Some(FacilityRef::PlacementTarget)),
            |s| {
                let (placement_id, placement, record) = authorized(s, Action::CancelPlacement)?;
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
            },
        )
        .await
}

pub async fn record_discharge(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::RecordDischargeRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let outcome = enum_value(r.outcome, "outcome", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let ((id, placement_id), outcome, note) = finish(v, (|| Some((ids?, outcome?, note?)))())?;
    handler
        .execute(
            principal,
            meta(id, r.expected_version),
            &needs(placement_id, Some(FacilityRef::PlacementTarget)),
            |s| {
                let (placement_id, placement, record) = authorized(s, Action::RecordDischarge)?;
                let (facility_id, facility) = s.facility().ok_or_else(|| {
                    ApiError::FailedPrecondition("placement has no facility".into())
                })?;
                let decision = placement.discharge(
                    placement_id,
                    facility,
                    case(s)?,
                    outcome,
                    note.clone(),
                    s.now,
                )?;
                changes(placement_id, record.case_id, Some(facility_id), decision)
            },
        )
        .await
}

/// The command id of the expiry of offer number `offer` of a placement: the same in
/// every timer process, so two timers racing append it once.
pub fn offer_expiry_command_id(placement_id: Uuid, offer: u32) -> Uuid {
    Uuid::new_v5(
        &OFFER_EXPIRY_NAMESPACE,
        format!("{placement_id}/offer/{offer}").as_bytes(),
    )
}

/// The timer's `OfferExpired`, a system action that needs no principal's rights.
pub async fn expire_offer(
    handler: &CommandHandler,
    system: &Principal,
    placement_id: Uuid,
    offer: u32,
) -> Result<pb::CommandResult, ApiError> {
    let meta = meta(offer_expiry_command_id(placement_id, offer), None);
    let needs = Needs {
        placement: Some(placement_id),
        ..Needs::default()
    };
    handler
        .execute(system, meta, &needs, |s| {
            let Some((_, placement)) = s.placement() else {
                return Err(ApiError::NotFound("placement".into()));
            };
            let current = placement.requested()?.offers;
            if current != offer {
                return Err(ApiError::FailedPrecondition(format!(
                    "offer {offer} was superseded by offer {current}"
                )));
            }
            let events = placement.expire_offer(s.now)?;
            only_placement(placement_id, events)
        })
        .await
}
