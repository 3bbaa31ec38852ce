//! The store's identity (DESIGN.md §13): made once at the first `migrate`, stamped by the
//! relay on every event it publishes (`Noroshi-Store`), so that a deployment never takes
//! another's events on a shared NATS stream for its own.

use uuid::Uuid;

use crate::error::StoreError;

/// The identity of the store behind `executor` (see [`crate::EventStore::store_id`]).
pub async fn store_id<'c>(executor: impl sqlx::PgExecutor<'c>) -> Result<Uuid, StoreError> {
    Ok(sqlx::query_scalar("SELECT store_id FROM store_identity")
        .fetch_one(executor)
        .await?)
}
