//! Projections: consume the JetStream event log and maintain the PostgreSQL read models
//! (DESIGN.md §6), committing each batch with its checkpoint in one transaction.
//!
//! Built so far: the runner ([`runner`]), `bed_board` ([`bed_board`]) and
//! `placement_queue` ([`placement_queue`]) and `public_stats` ([`public_stats`]).

pub mod bed_board;
pub mod placement_queue;
pub mod public_stats;
pub mod runner;

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The read models' migrations (`projections/migrations`), recorded in their own table so
/// that they never mix with the event store's.
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_sqlx_migrations_projections");
    migrator
}

/// Brings the read-model schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().run(pool).await
}
