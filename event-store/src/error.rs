//! Every way an event-store operation can fail, as types.
//!
//! A caller's mistake ([`InvalidAppend`], a version conflict, a reused command id) is
//! kept apart from the store being unreachable ([`StoreError::Unavailable`]) and from
//! anything else the database reports ([`StoreError::Database`]), so that the API can
//! map each to its own status code.

use uuid::Uuid;

use crate::event::ExpectedVersion;
use crate::stream_id::StreamId;

/// Why an append was refused before it reached the database.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidAppend {
    #[error("an append needs at least one stream")]
    EmptyBatch,
    #[error("stream {stream_id} has no events")]
    EmptyStream { stream_id: StreamId },
    #[error("stream {stream_id} appears more than once in one append")]
    DuplicateStream { stream_id: StreamId },
    #[error("an append holds {count} events; the limit is {limit}")]
    TooManyEvents { count: usize, limit: usize },
    #[error("event {index} of {stream_id} has a {size}-byte payload; the limit is {limit}")]
    PayloadTooLarge {
        stream_id: StreamId,
        index: usize,
        size: usize,
        limit: usize,
    },
    #[error("event {index} of {stream_id} has an invalid event type")]
    InvalidEventType { stream_id: StreamId, index: usize },
    #[error("event {index} of {stream_id} has schema version 0; versions start at 1")]
    InvalidSchemaVersion { stream_id: StreamId, index: usize },
    #[error("event id {event_id} appears more than once")]
    DuplicateEventId { event_id: Uuid },
    #[error("actor must be 1 to 200 printable characters")]
    InvalidActor,
}

/// The store could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// PostgreSQL is down, unreachable, shutting down or out of connections.
    #[error("event store unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// Any other database failure; a bug or a broken invariant, never the caller's fault.
    #[error("event store failure")]
    Database(#[source] sqlx::Error),
    /// A stored row does not satisfy the store's own invariants.
    #[error("stored event is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        if is_unavailable(&error) {
            Self::Unavailable(error)
        } else {
            Self::Database(error)
        }
    }
}

/// Why an append did not commit. Nothing was written in any case.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error(transparent)]
    Invalid(#[from] InvalidAppend),
    #[error("wrong expected version on {stream_id}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        stream_id: StreamId,
        expected: ExpectedVersion,
        /// The stream's version when the append was tried; 0 when it does not exist.
        actual: u64,
    },
    /// The command id was committed before with a different set of streams: the client
    /// reused an idempotency key for another command.
    #[error("command id {command_id} was already used for another command")]
    CommandIdReused { command_id: Uuid },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for AppendError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(error.into())
    }
}

/// True for failures that say an established connection is gone (the server ended it,
/// or the network did), as opposed to a database that cannot be reached at all, which
/// waiting for the pool already reports.
pub(crate) fn connection_lost(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 57P01/57P02: the server ended the session; 08: connection exception.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02")
        }),
        _ => false,
    }
}

/// True for failures that say "the database cannot be used right now", as opposed to
/// "the database refused this statement".
fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        // A connection that breaks while it is being set up or used shows up as I/O
        // or, when it ends in the middle of a message, as a protocol error.
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P0x: shutdown / cannot connect now;
            // 53300: too many connections; 25006: read-only (a standby).
            code.starts_with("08")
                || matches!(
                    code.as_ref(),
                    "57P01" | "57P02" | "57P03" | "53300" | "25006"
                )
        }),
        _ => false,
    }
}
