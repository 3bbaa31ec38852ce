//! The remote consultation, stream `consult-<consult_id>` (DESIGN.md §5.5): a nurse or
//! doctor next to the patient asks a doctor at a consult center to examine the patient
//! remotely, across medical areas.
//!
//! ```text
//! REQUESTED --schedule--> SCHEDULED --start--> IN_PROGRESS --complete--> COMPLETED
//!     \______________________ cancel (reason) _________________/     \-- no-show --> MISSED
//! ```
//!
//! A request also opens the consult on its case (`ConsultOpened`), and its end closes it,
//! so that a case has one open consult per provider. An `ESCALATE` recommendation opens a
//! placement request in one more step (`EscalateConsult`), recorded on the consult.

use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::case::{Case, CaseEvent};
use crate::error::{DomainError, Violations};
use crate::placement::{self, Decision, Placement, RequestPlacement};
use crate::values::{
    BedCategory, ConsultMode, ConsultStatus, ConsultUrgency, FacilityId, Name, Reason,
    Recommendation, Text,
};

/// How far in the past a consult may be scheduled (clocks of different devices).
const SCHEDULE_CLOCK_SKEW: Duration = Duration::minutes(5);

/// What the requester asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultRequest {
    pub case_id: Uuid,
    /// The organisation that asks: a health center, HQ, or the facility where the
    /// patient is.
    pub requested_by: FacilityId,
    pub mode: ConsultMode,
    pub urgency: ConsultUrgency,
    pub question: Text,
    /// When the requester could hold the consult; both or neither.
    pub preferred_from: Option<OffsetDateTime>,
    pub preferred_until: Option<OffsetDateTime>,
    /// How to reach the requester: a meeting link or a phone number (noroshi carries no
    /// video).
    pub contact: Text,
    /// One consult center the request is addressed to; `None`: any.
    pub center: Option<FacilityId>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsultEvent {
    Requested {
        request: ConsultRequest,
        /// The health center that owns the case, and the facility where the patient was,
        /// when requested: who may read the consult without loading the case.
        case_owner: FacilityId,
        patient_at: Option<FacilityId>,
        requested_at: OffsetDateTime,
    },
    Scheduled {
        center: FacilityId,
        scheduled_for: OffsetDateTime,
        doctor: Name,
        scheduled_at: OffsetDateTime,
    },
    Started {
        started_at: OffsetDateTime,
    },
    Completed {
        findings: Text,
        recommendation: Recommendation,
        follow_up_at: Option<OffsetDateTime>,
        completed_at: OffsetDateTime,
    },
    /// The placement request an `ESCALATE` recommendation opened.
    Escalated {
        placement_id: Uuid,
        escalated_at: OffsetDateTime,
    },
    Cancelled {
        reason: Reason,
        cancelled_in: ConsultStatus,
        cancelled_at: OffsetDateTime,
    },
    Missed {
        note: Text,
        marked_at: OffsetDateTime,
    },
}

/// A requested consult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultRecord {
    pub request: ConsultRequest,
    pub case_owner: FacilityId,
    pub patient_at: Option<FacilityId>,
    pub requested_at: OffsetDateTime,
    pub status: ConsultStatus,
    /// The consult center that scheduled it.
    pub center: Option<FacilityId>,
    pub scheduled_for: Option<OffsetDateTime>,
    pub recommendation: Option<Recommendation>,
    pub escalated_to: Option<Uuid>,
}

/// State of one consult stream; `record` is `None` until requested.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consult {
    pub record: Option<ConsultRecord>,
}

/// A step of a requested consult.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsultCommand {
    /// By a consult center: when, and which doctor.
    Schedule {
        scheduled_for: OffsetDateTime,
        doctor: Name,
    },
    Start,
    Complete {
        findings: Text,
        recommendation: Recommendation,
        follow_up_at: Option<OffsetDateTime>,
    },
    Cancel {
        reason: Reason,
    },
    /// The patient or the requester did not come.
    MarkMissed {
        note: Text,
    },
    /// Opens the placement request an `ESCALATE` recommendation asked for.
    Escalate {
        category: BedCategory,
        note: Text,
    },
}

/// Events of the consult and its case, appended together.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsultDecision {
    pub consult: Vec<ConsultEvent>,
    pub case: Vec<CaseEvent>,
    /// An escalation: the placement it requests, with its id.
    pub placement: Option<(Uuid, Decision)>,
}

fn illegal(status: ConsultStatus, action: &str) -> DomainError {
    DomainError::precondition(format!("consult is {status}; cannot {action}"))
}

/// `RequestConsult`: the consult, and the case's open consult.
pub fn request(
    consult: &Consult,
    consult_id: Uuid,
    case: &Case,
    request: ConsultRequest,
    now: OffsetDateTime,
) -> Result<ConsultDecision, DomainError> {
    if consult.record.is_some() {
        return Err(DomainError::AlreadyExists("consult".into()));
    }
    let record = case.open()?;
    let mut v = Violations::new();
    if request.question.as_str().trim().is_empty() {
        v.add("question", "is required: say what the doctor is asked");
    }
    if request.contact.as_str().trim().is_empty() {
        v.add(
            "contact",
            "is required: a meeting link or a phone number to reach the requester",
        );
    }
    match (request.preferred_from, request.preferred_until) {
        (Some(from), Some(until)) if until <= from => {
            v.add("preferred_until", "must be after preferred_from");
        }
        (Some(_), None) => v.add("preferred_until", "is required with preferred_from"),
        (None, Some(_)) => v.add("preferred_from", "is required with preferred_until"),
        _ => {}
    }
    v.into_result()?;
    // One open consult per case and provider: an unaddressed request stands for any.
    if let Some((open, _)) = record
        .open_consults
        .iter()
        .find(|(_, center)| **center == request.center)
    {
        return Err(DomainError::precondition(format!(
            "the case already has an open consult {open} with {}",
            request
                .center
                .as_ref()
                .map_or_else(|| "any consult center".to_owned(), ToString::to_string)
        )));
    }
    let center = request.center.clone();
    Ok(ConsultDecision {
        consult: vec![ConsultEvent::Requested {
            case_owner: record.report.health_center_id.clone(),
            patient_at: record.stay.as_ref().map(|(_, at)| at.clone()),
            request,
            requested_at: now,
        }],
        case: vec![CaseEvent::ConsultOpened { consult_id, center }],
        placement: None,
    })
}

impl Consult {
    pub fn requested(&self) -> Result<&ConsultRecord, DomainError> {
        self.record
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("consult".into()))
    }

    /// Decides a step for the organisation `by` (the rights were checked before).
    /// An escalation needs the case and its new placement's id.
    pub fn decide(
        &self,
        consult_id: Uuid,
        by: &FacilityId,
        command: ConsultCommand,
        case: &Case,
        escalation: Uuid,
        now: OffsetDateTime,
    ) -> Result<ConsultDecision, DomainError> {
        let record = self.requested()?;
        let closed = || CaseEvent::ConsultClosed { consult_id };
        let only = |event| ConsultDecision {
            consult: vec![event],
            ..ConsultDecision::default()
        };
        let with_close = |event| ConsultDecision {
            consult: vec![event],
            case: vec![closed()],
            placement: None,
        };
        match command {
            ConsultCommand::Schedule {
                scheduled_for,
                doctor,
            } => {
                if record.status != ConsultStatus::Requested {
                    let by_other = record.center.as_ref().filter(|c| *c != by).is_some();
                    return Err(DomainError::precondition(if by_other {
                        format!(
                            "consult is {}; another consult center scheduled it",
                            record.status
                        )
                    } else {
                        format!("consult is {}; cannot schedule it", record.status)
                    }));
                }
                if record.request.center.as_ref().is_some_and(|c| c != by) {
                    return Err(DomainError::precondition(
                        "the consult is addressed to another consult center",
                    ));
                }
                if scheduled_for < now - SCHEDULE_CLOCK_SKEW {
                    return Err(DomainError::invalid(
                        "scheduled_for",
                        "must not be in the past",
                    ));
                }
                // The case's open consult is now with this center: it may read the
                // patient's observations while the consult lasts.
                Ok(ConsultDecision {
                    consult: vec![ConsultEvent::Scheduled {
                        center: by.clone(),
                        scheduled_for,
                        doctor,
                        scheduled_at: now,
                    }],
                    case: vec![CaseEvent::ConsultOpened {
                        consult_id,
                        center: Some(by.clone()),
                    }],
                    placement: None,
                })
            }
            ConsultCommand::Start => match record.status {
                ConsultStatus::Scheduled => Ok(only(ConsultEvent::Started { started_at: now })),
                status => Err(illegal(status, "start it")),
            },
            ConsultCommand::Complete {
                findings,
                recommendation,
                follow_up_at,
            } => {
                if record.status != ConsultStatus::InProgress {
                    return Err(illegal(record.status, "complete it"));
                }
                if findings.as_str().trim().is_empty() {
                    return Err(DomainError::invalid(
                        "findings",
                        "is required: what the doctor found",
                    ));
                }
                match (recommendation, follow_up_at) {
                    (Recommendation::FollowUp, None) => {
                        return Err(DomainError::invalid(
                            "follow_up_at",
                            "is required with FOLLOW_UP",
                        ));
                    }
                    (Recommendation::FollowUp, Some(at)) if at <= now => {
                        return Err(DomainError::invalid(
                            "follow_up_at",
                            "must be in the future",
                        ));
                    }
                    _ => {}
                }
                Ok(with_close(ConsultEvent::Completed {
                    findings,
                    recommendation,
                    follow_up_at,
                    completed_at: now,
                }))
            }
            ConsultCommand::Cancel { reason } => {
                if !record.status.is_open() {
                    return Err(illegal(record.status, "cancel it"));
                }
                Ok(with_close(ConsultEvent::Cancelled {
                    reason,
                    cancelled_in: record.status,
                    cancelled_at: now,
                }))
            }
            ConsultCommand::MarkMissed { note } => match record.status {
                ConsultStatus::Scheduled => Ok(with_close(ConsultEvent::Missed {
                    note,
                    marked_at: now,
                })),
                status => Err(illegal(status, "mark it missed")),
            },
            ConsultCommand::Escalate { category, note } => {
                if record.status != ConsultStatus::Completed
                    || record.recommendation != Some(Recommendation::Escalate)
                {
                    return Err(DomainError::precondition(
                        "only a consult completed with ESCALATE opens a placement request",
                    ));
                }
                if let Some(placement) = record.escalated_to {
                    return Err(DomainError::precondition(format!(
                        "the consult already opened placement {placement}"
                    )));
                }
                let decision = placement::request(
                    &Placement::default(),
                    escalation,
                    record.request.case_id,
                    case,
                    RequestPlacement {
                        requested_by: by.clone(),
                        category,
                        needs: Default::default(),
                        note,
                    },
                    now,
                )?;
                Ok(ConsultDecision {
                    consult: vec![ConsultEvent::Escalated {
                        placement_id: escalation,
                        escalated_at: now,
                    }],
                    case: Vec::new(),
                    placement: Some((escalation, decision)),
                })
            }
        }
    }

    pub fn evolve(&mut self, event: &ConsultEvent) {
        if let ConsultEvent::Requested {
            request,
            case_owner,
            patient_at,
            requested_at,
        } = event
        {
            self.record = Some(ConsultRecord {
                request: request.clone(),
                case_owner: case_owner.clone(),
                patient_at: patient_at.clone(),
                requested_at: *requested_at,
                status: ConsultStatus::Requested,
                center: None,
                scheduled_for: None,
                recommendation: None,
                escalated_to: None,
            });
            return;
        }
        let Some(record) = &mut self.record else {
            return;
        };
        match event {
            ConsultEvent::Requested { .. } => {}
            ConsultEvent::Scheduled {
                center,
                scheduled_for,
                ..
            } => {
                record.status = ConsultStatus::Scheduled;
                record.center = Some(center.clone());
                record.scheduled_for = Some(*scheduled_for);
            }
            ConsultEvent::Started { .. } => record.status = ConsultStatus::InProgress,
            ConsultEvent::Completed { recommendation, .. } => {
                record.status = ConsultStatus::Completed;
                record.recommendation = Some(*recommendation);
            }
            ConsultEvent::Escalated { placement_id, .. } => {
                record.escalated_to = Some(*placement_id);
            }
            ConsultEvent::Cancelled { .. } => record.status = ConsultStatus::Cancelled,
            ConsultEvent::Missed { .. } => record.status = ConsultStatus::Missed,
        }
    }

    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a ConsultEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }
}
