//! What the application is asked to do, and what comes of it.
//!
//! A command is the domain's own vocabulary (parsed from protobuf or JSON by the
//! transports, never here). Its outcome has two layers: `Err(CommandError)` when the
//! command could not be recorded at all (the store failed, the races were lost, a limit
//! was hit), `Ok(Err(Refusal))` when the rules refused it on the state they saw, and
//! `Ok(Ok(Recorded))` when it was recorded, or had been before.

use std::collections::BTreeSet;

use noroshi_domain::alert::AlertRule;
use noroshi_domain::authz::Denied;
use noroshi_domain::case::{CaseCommand, CaseReport};
use noroshi_domain::consult::ConsultCommand;
use noroshi_domain::facility::FacilityCommand;
use noroshi_domain::placement::Transport;
use noroshi_domain::values::{
    BedCategory, Capability, ConsultMode, ConsultUrgency, DischargeOutcome, FacilityId, Reason,
    Text,
};
use noroshi_domain::{DomainError, ErrorCode};
use noroshi_event_store::{AppendResult, StreamId};
use uuid::Uuid;

/// A command of DESIGN.md §5, addressed to its aggregate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// A change to a facility (registration, profile, capacity, acceptance).
    Facility {
        facility_id: FacilityId,
        command: FacilityCommand,
    },
    /// A new case of the reporting health center. The case id derives from the
    /// external reference when there is one.
    ReportCase(CaseReport),
    /// A change to an existing case.
    Case { case_id: Uuid, command: CaseCommand },
    /// A new placement request for a case.
    RequestPlacement {
        case_id: Uuid,
        category: BedCategory,
        /// Added to the needs of the case.
        needs: BTreeSet<Capability>,
        note: Text,
    },
    /// A step of an existing placement.
    Placement {
        placement_id: Uuid,
        command: PlacementCommand,
    },
    /// A new remote consultation for a case (DESIGN.md §5.5). The requesting organisation
    /// is the principal's.
    RequestConsult(ConsultAsk),
    /// A step of an existing consult.
    Consult {
        consult_id: Uuid,
        command: ConsultCommand,
    },
    /// Acknowledging an alert of the principal's audience (DESIGN.md §5.6).
    AcknowledgeAlert { alert_id: Uuid, note: Text },
    /// HQ sets an alert threshold or limit.
    SetAlertRule(AlertRule),
}

/// A consult request as the transports parse it: the requester is whoever asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsultAsk {
    pub case_id: Uuid,
    pub mode: ConsultMode,
    pub urgency: ConsultUrgency,
    pub question: Text,
    pub preferred_from: Option<time::OffsetDateTime>,
    pub preferred_until: Option<time::OffsetDateTime>,
    pub contact: Text,
    pub center: Option<FacilityId>,
}

/// The steps of a placement (DESIGN.md §5.3) after its request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementCommand {
    Offer {
        facility_id: FacilityId,
    },
    /// By the offered facility; `capacity_override` accepts without a free bed.
    Accept {
        capacity_override: Option<Reason>,
    },
    Decline {
        reason: Reason,
    },
    ArrangeTransport(Transport),
    RecordDeparture,
    RecordArrival,
    Cancel {
        reason: Reason,
    },
    Discharge {
        outcome: DischargeOutcome,
        note: Text,
    },
}

impl Command {
    /// The aggregate type of the stream the command addresses, whose stream its result
    /// names first.
    pub fn addressed(&self) -> &'static str {
        use noroshi_domain::streams;
        match self {
            Self::Facility { .. } => streams::FACILITY,
            Self::ReportCase(_) | Self::Case { .. } => streams::CASE,
            Self::RequestPlacement { .. } | Self::Placement { .. } => streams::PLACEMENT,
            Self::RequestConsult(_) | Self::Consult { .. } => streams::CONSULT,
            Self::AcknowledgeAlert { .. } => streams::ALERT,
            Self::SetAlertRule(_) => streams::ALERT_RULES,
        }
    }
}

/// What every command carries besides its own fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Envelope {
    /// The client's idempotency key.
    pub command_id: Uuid,
    /// The version the client expects the addressed stream at, if it says.
    pub expected_version: Option<u64>,
    /// SHA-256 of the request the command was parsed from, when it came from one: the
    /// same command id with another request is refused ([`Refusal::CommandIdReused`])
    /// rather than answered with the first request's result.
    pub request_digest: Option<[u8; 32]>,
    /// Decide, but append nothing: the result names the streams and versions the
    /// command would write (an import's dry run).
    pub dry_run: bool,
}

/// A recorded command: the streams it wrote, the addressed one first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recorded {
    pub command_id: Uuid,
    pub streams: Vec<StreamVersion>,
    /// The command id had been recorded before; this is that first result.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamVersion {
    pub stream_id: StreamId,
    pub version: u64,
    pub position: u64,
}

impl Recorded {
    /// The store's result, naming a stream of the `addressed` aggregate type first.
    pub(crate) fn of(result: &AppendResult, addressed: &str) -> Self {
        let mut streams: Vec<StreamVersion> = result
            .streams
            .iter()
            .map(|s| StreamVersion {
                stream_id: s.stream_id.clone(),
                version: s.version,
                position: s.position,
            })
            .collect();
        if let Some(index) = streams
            .iter()
            .position(|s| s.stream_id.aggregate_type() == addressed)
        {
            streams.swap(0, index);
        }
        Self {
            command_id: result.command_id,
            streams,
            replayed: result.replayed,
        }
    }

    /// The addressed stream.
    pub fn first(&self) -> Option<&StreamVersion> {
        self.streams.first()
    }
}

/// Why the rules refused a command on the state they saw. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// Says nothing about whether the target exists.
    #[error("permission denied")]
    Denied,
    /// A rule of the aggregate: invalid, not found, already exists, illegal transition.
    #[error(transparent)]
    Rule(DomainError),
    /// The command id was recorded before for a different request. A retry must repeat
    /// its request exactly; a new request needs a new command id.
    #[error(
        "command_id {command_id} was already used for a different request; a retry must repeat the request exactly, and a new request needs a new command_id"
    )]
    CommandIdReused { command_id: uuid::Uuid },
    /// The addressed stream is not at the version the client expected.
    #[error("{stream_id} is at version {actual}, not the expected {expected}")]
    StaleVersion {
        stream_id: StreamId,
        expected: u64,
        actual: u64,
    },
}

impl Refusal {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Denied => ErrorCode::PermissionDenied,
            Self::Rule(rule) => rule.code(),
            Self::CommandIdReused { .. } => ErrorCode::InvalidArgument,
            Self::StaleVersion { .. } => ErrorCode::Aborted,
        }
    }
}

impl From<DomainError> for Refusal {
    fn from(error: DomainError) -> Self {
        Self::Rule(error)
    }
}

impl From<Denied> for Refusal {
    fn from(_: Denied) -> Self {
        Self::Denied
    }
}

/// Why a command could not be recorded, whatever the rules would say.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Concurrent changes won every attempt; retrying with the same command id is safe.
    #[error(
        "the command lost {attempts} races against concurrent changes; retry it with the same command_id"
    )]
    Conflict { attempts: u32 },
    /// An event or an append over the store's limits.
    #[error("{0}")]
    TooLarge(String),
    /// The event store cannot be reached.
    #[error("the event store cannot be reached; retry later")]
    Unavailable(#[source] noroshi_event_store::StoreError),
    /// A defect or corrupt data.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl CommandError {
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Conflict { .. } => ErrorCode::Aborted,
            Self::TooLarge(_) => ErrorCode::ResourceExhausted,
            Self::Unavailable(_) => ErrorCode::Unavailable,
            Self::Internal(_) => ErrorCode::Internal,
        }
    }
}

impl From<noroshi_event_store::StoreError> for CommandError {
    fn from(error: noroshi_event_store::StoreError) -> Self {
        match error {
            noroshi_event_store::StoreError::Unavailable(_) => Self::Unavailable(error),
            other => Self::internal(other),
        }
    }
}

/// The outcome of one command: recorded, refused, or not recorded at all.
pub type Outcome = Result<Result<Recorded, Refusal>, CommandError>;
