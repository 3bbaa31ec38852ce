//! What goes into the store and what comes out of it.

use std::fmt;

use bytes::Bytes;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::stream_id::{Prefecture, StreamId};

/// The optimistic-concurrency condition of one stream in an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// No condition.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream must be at exactly this version. `Exact(0)` means the same as `NoStream`.
    Exact(u64),
}

impl ExpectedVersion {
    /// Encoding used by the append statement.
    pub(crate) fn to_sql(self) -> i64 {
        match self {
            Self::Any => -1,
            Self::NoStream => 0,
            Self::Exact(n) => i64::try_from(n).unwrap_or(i64::MAX),
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("any"),
            Self::NoStream | Self::Exact(0) => f.write_str("no stream"),
            Self::Exact(n) => write!(f, "{n}"),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// UUIDv7, chosen by the caller so that retries keep it.
    pub event_id: Uuid,
    /// Full protobuf message name, e.g. `noroshi.v1.CapacityDeclared`.
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: OffsetDateTime,
    /// Protobuf-encoded message named by `event_type`.
    pub payload: Bytes,
}

impl NewEvent {
    /// An event with a fresh UUIDv7 id and schema version 1.
    pub fn new(event_type: impl Into<String>, occurred_at: OffsetDateTime, payload: Bytes) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            event_type: event_type.into(),
            schema_version: 1,
            occurred_at,
            payload,
        }
    }
}

/// The events for one stream in an append, with the version the caller expects it at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamWrite {
    pub stream_id: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
}

/// One atomic append: every stream write commits, or none does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    /// Idempotency key chosen by the client; permanent.
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    /// Principal id of whoever issued the command.
    pub actor: String,
    pub prefecture: Prefecture,
    pub streams: Vec<StreamWrite>,
    /// A digest of the request the command came from (e.g. SHA-256 of its bytes), kept
    /// with its events: a later append under the same command id with another digest is
    /// refused as [`crate::AppendError::CommandIdReused`] instead of being answered with
    /// this command's result. `None` when the caller has no request to speak of.
    pub request_digest: Option<Vec<u8>>,
}

/// Where one appended event landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendedEvent {
    pub event_id: Uuid,
    pub version: u64,
    pub position: u64,
}

/// The outcome of one stream in an append: the stream's new version and the position
/// of its last event, i.e. what a command returns for read-your-writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAppended {
    pub stream_id: StreamId,
    pub version: u64,
    pub position: u64,
    pub events: Vec<AppendedEvent>,
}

impl StreamAppended {
    /// Adds one of the stream's appended events; version and position become the last.
    pub(crate) fn record(&mut self, event: AppendedEvent) {
        self.version = self.version.max(event.version);
        self.position = self.position.max(event.position);
        self.events.push(event);
    }
}

/// The outcome of an append, identical when a committed command id is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendResult {
    pub command_id: Uuid,
    /// In the order of the request's streams.
    pub streams: Vec<StreamAppended>,
    /// True when the command id had already been committed and nothing was written now.
    pub replayed: bool,
}

/// An event as stored, with all its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub event_id: Uuid,
    pub stream_id: StreamId,
    pub version: u64,
    pub position: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub occurred_at: OffsetDateTime,
    pub recorded_at: OffsetDateTime,
    pub command_id: Uuid,
    pub correlation_id: Uuid,
    pub causation_id: Option<Uuid>,
    pub actor: String,
    pub prefecture: Prefecture,
    pub payload: Bytes,
}

/// A place in the commit-safe order of all events: `(transaction id, position)`.
///
/// Positions are assigned before commit, so a transaction that commits late can leave an
/// event behind a position that a reader has already passed. Reading in transaction-id
/// order, and only transactions older than every one still running, never skips such an
/// event (see `docs/event-store.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GlobalCursor {
    pub transaction_id: u64,
    pub position: u64,
}

impl GlobalCursor {
    /// Before the first event.
    pub const START: Self = Self {
        transaction_id: 0,
        position: 0,
    };
}

/// One page of [`crate::EventStore::read_all`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadAllPage {
    pub events: Vec<RecordedEvent>,
    /// Pass this to the next call; equal to the argument when nothing new was final yet.
    pub next: GlobalCursor,
}
