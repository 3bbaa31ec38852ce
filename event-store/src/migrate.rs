//! Schema migrations, embedded in the binary.

use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

/// The event store's migrations (`event-store/migrations`).
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// Migrations this store once ran that now belong to another crate's migrator: the
/// audit log (20261130000001) moved to `noroshi-identity`, whose copy creates only what
/// is missing. Their records are dropped from this store's history, or the migrator
/// would refuse a database that ran them as "applied but missing".
const MOVED_AWAY: &[i64] = &[20261130000001];

/// Brings the database schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    forget_moved(pool).await?;
    MIGRATOR.run(pool).await
}

async fn forget_moved(pool: &PgPool) -> Result<(), MigrateError> {
    let history: Option<String> =
        sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations')::text")
            .fetch_one(pool)
            .await?;
    if history.is_some() {
        sqlx::query("DELETE FROM _sqlx_migrations WHERE version = ANY($1)")
            .bind(MOVED_AWAY)
            .execute(pool)
            .await?;
    }
    Ok(())
}
