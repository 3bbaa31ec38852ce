//! `PlacementService` requests as placement commands.

use noroshi_app::{Command, PlacementCommand};
use noroshi_domain::Violations;
use noroshi_domain::placement::Transport;
use noroshi_domain::values::{FacilityId, Reason, Text};
use noroshi_proto::v1 as pb;
use uuid::Uuid;

use super::{Parsed, envelope};
use crate::convert::fields::{command_id, enum_set, enum_value, finish, timestamp, uuid};
use crate::error::ApiError;

pub fn request(r: &pb::RequestPlacementRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let category = enum_value(r.category, "category", &mut v);
    let needs = enum_set(&r.needs, "needs", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, category, note) = finish(v, (|| Some((id?, case_id?, category?, note?)))())?;
    let command = Command::RequestPlacement {
        case_id,
        category,
        needs,
        note,
    };
    Ok((envelope(id, r.expected_version), command))
}

/// Parses the fields every step of a placement has.
fn ids(command: &str, placement: &str, v: &mut Violations) -> Option<(Uuid, Uuid)> {
    let id = command_id(command, v);
    let placement_id = uuid(placement, "placement_id", v);
    id.zip(placement_id)
}

/// `command` on the placement `placement_id`.
fn step(
    (id, placement_id): (Uuid, Uuid),
    expected_version: Option<u64>,
    command: PlacementCommand,
) -> Parsed {
    (
        envelope(id, expected_version),
        Command::Placement {
            placement_id,
            command,
        },
    )
}

pub fn offer(r: &pb::OfferPlacementRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let (ids, facility_id) = finish(v, ids.zip(facility_id))?;
    let command = PlacementCommand::Offer { facility_id };
    Ok(step(ids, r.expected_version, command))
}

pub fn accept(r: &pb::AcceptPlacementRequest) -> Result<Parsed, ApiError> {
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
    let ids = finish(v, ids)?;
    let command = PlacementCommand::Accept { capacity_override };
    Ok(step(ids, r.expected_version, command))
}

pub fn decline(r: &pb::DeclinePlacementRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let reason = v.check("reason", Reason::parse(&r.reason));
    let (ids, reason) = finish(v, ids.zip(reason))?;
    Ok(step(
        ids,
        r.expected_version,
        PlacementCommand::Decline { reason },
    ))
}

pub fn arrange_transport(r: &pb::ArrangeTransportRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let vehicle = enum_value(r.vehicle, "vehicle", &mut v);
    let pickup_at = r
        .pickup_at
        .as_ref()
        .and_then(|at| timestamp(at, "pickup_at", &mut v));
    let note = v.check("note", Text::parse(&r.note));
    let (ids, vehicle, note) = finish(v, (|| Some((ids?, vehicle?, note?)))())?;
    let transport = Transport {
        vehicle,
        pickup_at,
        note,
    };
    let command = PlacementCommand::ArrangeTransport(transport);
    Ok(step(ids, r.expected_version, command))
}

pub fn record_departure(r: &pb::RecordDepartureRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let ids = finish(v, ids)?;
    Ok(step(
        ids,
        r.expected_version,
        PlacementCommand::RecordDeparture,
    ))
}

pub fn record_arrival(r: &pb::RecordArrivalRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let ids = finish(v, ids)?;
    Ok(step(
        ids,
        r.expected_version,
        PlacementCommand::RecordArrival,
    ))
}

pub fn cancel(r: &pb::CancelPlacementRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let reason = v.check("reason", Reason::parse(&r.reason));
    let (ids, reason) = finish(v, ids.zip(reason))?;
    Ok(step(
        ids,
        r.expected_version,
        PlacementCommand::Cancel { reason },
    ))
}

pub fn record_discharge(r: &pb::RecordDischargeRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.placement_id, &mut v);
    let outcome = enum_value(r.outcome, "outcome", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (ids, outcome, note) = finish(v, (|| Some((ids?, outcome?, note?)))())?;
    let command = PlacementCommand::Discharge { outcome, note };
    Ok(step(ids, r.expected_version, command))
}
