//! `ConsultService` requests as consult commands (DESIGN.md §5.5).

use noroshi_app::{Command, ConsultAsk};
use noroshi_domain::Violations;
use noroshi_domain::consult::ConsultCommand;
use noroshi_domain::values::{FacilityId, Name, Reason, Text};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{Parsed, envelope};
use crate::convert::fields::{command_id, enum_value, finish, optional, timestamp, uuid};
use crate::error::ApiError;

/// A free text that must say something.
fn required_text(value: &str, field: &str, v: &mut Violations) -> Option<Text> {
    if value.trim().is_empty() {
        v.add(field, "is required");
        return None;
    }
    v.check(field, Text::parse(value))
}

/// An optional timestamp field: absent means absent, a present one must be valid.
fn optional_at(
    value: Option<&prost_types::Timestamp>,
    field: &str,
    v: &mut Violations,
) -> Option<Option<OffsetDateTime>> {
    match value {
        None => Some(None),
        Some(ts) => timestamp(ts, field, v).map(Some),
    }
}

/// A required timestamp field.
fn required_at(
    value: Option<&prost_types::Timestamp>,
    field: &str,
    v: &mut Violations,
) -> Option<OffsetDateTime> {
    match value {
        None => {
            v.add(field, "is required");
            None
        }
        Some(ts) => timestamp(ts, field, v),
    }
}

pub fn request(r: &pb::RequestConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let mode = enum_value(r.mode, "mode", &mut v);
    let urgency = enum_value(r.urgency, "urgency", &mut v);
    let question = required_text(&r.question, "question", &mut v);
    let contact = required_text(&r.contact, "contact", &mut v);
    let preferred_from = optional_at(r.preferred_from.as_ref(), "preferred_from", &mut v);
    let preferred_until = optional_at(r.preferred_until.as_ref(), "preferred_until", &mut v);
    let center = if r.center_id.trim().is_empty() {
        Some(None)
    } else {
        optional(&r.center_id, "center_id", FacilityId::parse, &mut v).map(Some)
    };
    let parsed = (|| {
        Some((
            id?,
            ConsultAsk {
                case_id: case_id?,
                mode: mode?,
                urgency: urgency?,
                question: question?,
                preferred_from: preferred_from?,
                preferred_until: preferred_until?,
                contact: contact?,
                center: center?,
            },
        ))
    })();
    let (id, ask) = finish(v, parsed)?;
    Ok((
        envelope(id, r.expected_version),
        Command::RequestConsult(ask),
    ))
}

/// `command` on the consult `consult_id`.
fn step(
    (id, consult_id): (Uuid, Uuid),
    expected_version: Option<u64>,
    command: ConsultCommand,
) -> Parsed {
    (
        envelope(id, expected_version),
        Command::Consult {
            consult_id,
            command,
        },
    )
}

/// Parses the fields every step of a consult has.
fn ids(command: &str, consult: &str, v: &mut Violations) -> Option<(Uuid, Uuid)> {
    let id = command_id(command, v);
    let consult_id = uuid(consult, "consult_id", v);
    id.zip(consult_id)
}

pub fn schedule(r: &pb::ScheduleConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let scheduled_for = required_at(r.scheduled_for.as_ref(), "scheduled_for", &mut v);
    let doctor = v.check("doctor", Name::parse(&r.doctor));
    let (ids, (scheduled_for, doctor)) = finish(v, ids.zip(scheduled_for.zip(doctor)))?;
    let command = ConsultCommand::Schedule {
        scheduled_for,
        doctor,
    };
    Ok(step(ids, r.expected_version, command))
}

pub fn start(r: &pb::StartConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let ids = finish(v, ids)?;
    Ok(step(ids, r.expected_version, ConsultCommand::Start))
}

pub fn complete(r: &pb::CompleteConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let findings = v.check("findings", Text::parse(&r.findings));
    let recommendation = enum_value(r.recommendation, "recommendation", &mut v);
    let follow_up_at = optional_at(r.follow_up_at.as_ref(), "follow_up_at", &mut v);
    let parsed = (|| Some((ids?, findings?, recommendation?, follow_up_at?)))();
    let (ids, findings, recommendation, follow_up_at) = finish(v, parsed)?;
    let command = ConsultCommand::Complete {
        findings,
        recommendation,
        follow_up_at,
    };
    Ok(step(ids, r.expected_version, command))
}

pub fn escalate(r: &pb::EscalateConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let category = enum_value(r.category, "category", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (ids, (category, note)) = finish(v, ids.zip(category.zip(note)))?;
    let command = ConsultCommand::Escalate { category, note };
    Ok(step(ids, r.expected_version, command))
}

pub fn cancel(r: &pb::CancelConsultRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let reason = v.check("reason", Reason::parse(&r.reason));
    let (ids, reason) = finish(v, ids.zip(reason))?;
    Ok(step(
        ids,
        r.expected_version,
        ConsultCommand::Cancel { reason },
    ))
}

pub fn mark_missed(r: &pb::MarkConsultMissedRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let ids = ids(&r.command_id, &r.consult_id, &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (ids, note) = finish(v, ids.zip(note))?;
    Ok(step(
        ids,
        r.expected_version,
        ConsultCommand::MarkMissed { note },
    ))
}
