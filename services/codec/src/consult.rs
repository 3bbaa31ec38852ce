//! Consult events (`consult-<id>`, DESIGN.md §5.5) ⇄ `noroshi.v1.Consult*` messages.

use bytes::Bytes;
use noroshi_domain::DomainEvent;
use noroshi_domain::consult::{ConsultEvent, ConsultRequest};
use noroshi_domain::values::{FacilityId, Name, Reason, Text};
use noroshi_proto::Message;
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;

use crate::enums::WireEnum;
use crate::fields::{Decoded, at, field, id, message, opt_field, opt_string, wire};
use crate::timestamps::to_timestamp;

fn timestamp(at: Option<OffsetDateTime>) -> Option<prost_types::Timestamp> {
    at.map(to_timestamp)
}

fn optional_at(
    name: &str,
    value: Option<&prost_types::Timestamp>,
) -> Decoded<Option<OffsetDateTime>> {
    value.map(|ts| at(name, Some(ts))).transpose()
}

fn parse<M: Message + Default>(payload: &Bytes) -> Decoded<M> {
    M::decode(payload.clone()).map_err(|e| e.to_string())
}

pub(crate) fn encode(event: &ConsultEvent, consult_id: &str) -> (String, Bytes) {
    let id = consult_id.to_owned();
    match event {
        ConsultEvent::Requested {
            request,
            case_owner,
            patient_at,
            requested_at,
        } => message(pb::ConsultRequested {
            consult_id: id,
            case_id: request.case_id.to_string(),
            requested_by: request.requested_by.to_string(),
            mode: request.mode.to_wire(),
            urgency: request.urgency.to_wire(),
            question: request.question.to_string(),
            preferred_from: timestamp(request.preferred_from),
            preferred_until: timestamp(request.preferred_until),
            contact: request.contact.to_string(),
            center_id: opt_string(request.center.as_ref()),
            case_owner: case_owner.to_string(),
            patient_at: opt_string(patient_at.as_ref()),
            requested_at: Some(to_timestamp(*requested_at)),
        }),
        ConsultEvent::Scheduled {
            center,
            scheduled_for,
            doctor,
            scheduled_at,
        } => message(pb::ConsultScheduled {
            consult_id: id,
            center_id: center.to_string(),
            scheduled_for: Some(to_timestamp(*scheduled_for)),
            doctor: doctor.to_string(),
            scheduled_at: Some(to_timestamp(*scheduled_at)),
        }),
        ConsultEvent::Started { started_at } => message(pb::ConsultStarted {
            consult_id: id,
            started_at: Some(to_timestamp(*started_at)),
        }),
        ConsultEvent::Completed {
            findings,
            recommendation,
            follow_up_at,
            completed_at,
        } => message(pb::ConsultCompleted {
            consult_id: id,
            findings: findings.to_string(),
            recommendation: recommendation.to_wire(),
            follow_up_at: timestamp(*follow_up_at),
            completed_at: Some(to_timestamp(*completed_at)),
        }),
        ConsultEvent::Escalated {
            placement_id,
            escalated_at,
        } => message(pb::ConsultEscalated {
            consult_id: id,
            placement_id: placement_id.to_string(),
            escalated_at: Some(to_timestamp(*escalated_at)),
        }),
        ConsultEvent::Cancelled {
            reason,
            cancelled_in,
            cancelled_at,
        } => message(pb::ConsultCancelled {
            consult_id: id,
            reason: reason.to_string(),
            cancelled_in: cancelled_in.to_wire(),
            cancelled_at: Some(to_timestamp(*cancelled_at)),
        }),
        ConsultEvent::Missed { note, marked_at } => message(pb::ConsultMissed {
            consult_id: id,
            note: note.to_string(),
            marked_at: Some(to_timestamp(*marked_at)),
        }),
    }
}

/// The consult event of type `name` (without `noroshi.v1.`), or an error for a type
/// that no aggregate knows.
pub(crate) fn decode(name: &str, payload: &Bytes) -> Decoded<DomainEvent> {
    let event = match name {
        "ConsultRequested" => {
            let m: pb::ConsultRequested = parse(payload)?;
            ConsultEvent::Requested {
                request: ConsultRequest {
                    case_id: id("case_id", &m.case_id)?,
                    requested_by: field("requested_by", FacilityId::parse(&m.requested_by))?,
                    mode: wire("mode", m.mode)?,
                    urgency: wire("urgency", m.urgency)?,
                    question: field("question", Text::parse(&m.question))?,
                    preferred_from: optional_at("preferred_from", m.preferred_from.as_ref())?,
                    preferred_until: optional_at("preferred_until", m.preferred_until.as_ref())?,
                    contact: field("contact", Text::parse(&m.contact))?,
                    center: opt_field("center_id", &m.center_id, FacilityId::parse)?,
                },
                case_owner: field("case_owner", FacilityId::parse(&m.case_owner))?,
                patient_at: opt_field("patient_at", &m.patient_at, FacilityId::parse)?,
                requested_at: at("requested_at", m.requested_at.as_ref())?,
            }
        }
        "ConsultScheduled" => {
            let m: pb::ConsultScheduled = parse(payload)?;
            ConsultEvent::Scheduled {
                center: field("center_id", FacilityId::parse(&m.center_id))?,
                scheduled_for: at("scheduled_for", m.scheduled_for.as_ref())?,
                doctor: field("doctor", Name::parse(&m.doctor))?,
                scheduled_at: at("scheduled_at", m.scheduled_at.as_ref())?,
            }
        }
        "ConsultStarted" => {
            let m: pb::ConsultStarted = parse(payload)?;
            ConsultEvent::Started {
                started_at: at("started_at", m.started_at.as_ref())?,
            }
        }
        "ConsultCompleted" => {
            let m: pb::ConsultCompleted = parse(payload)?;
            ConsultEvent::Completed {
                findings: field("findings", Text::parse(&m.findings))?,
                recommendation: wire("recommendation", m.recommendation)?,
                follow_up_at: optional_at("follow_up_at", m.follow_up_at.as_ref())?,
                completed_at: at("completed_at", m.completed_at.as_ref())?,
            }
        }
        "ConsultEscalated" => {
            let m: pb::ConsultEscalated = parse(payload)?;
            ConsultEvent::Escalated {
                placement_id: id("placement_id", &m.placement_id)?,
                escalated_at: at("escalated_at", m.escalated_at.as_ref())?,
            }
        }
        "ConsultCancelled" => {
            let m: pb::ConsultCancelled = parse(payload)?;
            ConsultEvent::Cancelled {
                reason: field("reason", Reason::parse(&m.reason))?,
                cancelled_in: wire("cancelled_in", m.cancelled_in)?,
                cancelled_at: at("cancelled_at", m.cancelled_at.as_ref())?,
            }
        }
        "ConsultMissed" => {
            let m: pb::ConsultMissed = parse(payload)?;
            ConsultEvent::Missed {
                note: field("note", Text::parse(&m.note))?,
                marked_at: at("marked_at", m.marked_at.as_ref())?,
            }
        }
        other => return crate::alert::decode(other, payload),
    };
    Ok(DomainEvent::Consult(event))
}

#[cfg(test)]
mod tests {
    use noroshi_domain::values::{ConsultMode, ConsultStatus, ConsultUrgency, Recommendation};
    use time::macros::datetime;
    use uuid::Uuid;

    use super::*;

    #[test]
    fn every_consult_event_decodes_to_itself() {
        let at = datetime!(2026-12-07 03:00 UTC);
        let fid = |id: &str| FacilityId::parse(id).unwrap();
        let events = [
            ConsultEvent::Requested {
                request: ConsultRequest {
                    case_id: Uuid::now_v7(),
                    requested_by: fid("yuda-hotel"),
                    mode: ConsultMode::DToPWithN,
                    urgency: ConsultUrgency::Emergency,
                    question: Text::parse("呼吸苦の訴えあり").unwrap(),
                    preferred_from: Some(at),
                    preferred_until: Some(at + time::Duration::hours(1)),
                    contact: Text::parse("0835-00-0000").unwrap(),
                    center: Some(fid("yamaguchi-consult")),
                },
                case_owner: fid("hofu-hc"),
                patient_at: Some(fid("yuda-hotel")),
                requested_at: at,
            },
            ConsultEvent::Scheduled {
                center: fid("yamaguchi-consult"),
                scheduled_for: at,
                doctor: Name::parse("遠隔 一郎").unwrap(),
                scheduled_at: at,
            },
            ConsultEvent::Started { started_at: at },
            ConsultEvent::Completed {
                findings: Text::parse("酸素投与の適応").unwrap(),
                recommendation: Recommendation::FollowUp,
                follow_up_at: Some(at),
                completed_at: at,
            },
            ConsultEvent::Escalated {
                placement_id: Uuid::now_v7(),
                escalated_at: at,
            },
            ConsultEvent::Cancelled {
                reason: Reason::parse("状態安定").unwrap(),
                cancelled_in: ConsultStatus::Scheduled,
                cancelled_at: at,
            },
            ConsultEvent::Missed {
                note: Text::empty(),
                marked_at: at,
            },
        ];
        for event in events {
            let (event_type, payload) = encode(&event, &Uuid::now_v7().to_string());
            let name = event_type.strip_prefix("noroshi.v1.").unwrap();
            assert_eq!(
                decode(name, &payload).unwrap(),
                DomainEvent::Consult(event),
                "{name}"
            );
        }
    }
}
