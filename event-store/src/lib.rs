//! The noroshi event store: PostgreSQL as the source of truth, NATS JetStream as the
//! distribution log.
//!
//! This crate knows nothing of beds or patients. It stores opaque, protobuf-encoded
//! payloads in streams named `<aggregate_type>-<aggregate_id>` and guarantees:
//! - an append is one transaction over one or more streams, with optimistic concurrency
//!   per stream: all of it commits or none of it does;
//! - a committed command id is never applied twice, however late the retry comes;
//! - [`EventStore::read_all`] never skips an event whose transaction committed late;
//! - the [`relay`] publishes every committed event to JetStream exactly once per
//!   `Nats-Msg-Id`, in order per stream, and survives restarts of itself and of NATS.

mod append;
pub mod batch;
mod error;
mod event;
mod identity;
pub mod leader;
mod migrate;
pub mod relay;
mod store;
mod stream_id;
pub mod wire;

pub use error::{AppendError, InvalidAppend, StoreError};
pub use event::{
    AppendRequest, AppendResult, AppendedEvent, ExpectedVersion, GlobalCursor, NewEvent,
    ReadAllPage, RecordedEvent, StreamAppended, StreamWrite,
};
pub use identity::store_id;
pub use migrate::{MIGRATOR, migrate};
pub use store::{
    EventStore, PING_IDLE_AFTER, SESSION_SETTINGS, SnapshotExtent, StoreLimits, connect_options,
    pool_options, read_snapshot, read_versions, snapshot_extent,
};
pub use stream_id::{InvalidPrefecture, InvalidStreamId, Prefecture, StreamId};
