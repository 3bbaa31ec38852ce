//! Schema migrations, embedded in the binary.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The event store's migrations (`event-store/migrations`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Brings the database schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    MIGRATOR.run(pool).await
}
