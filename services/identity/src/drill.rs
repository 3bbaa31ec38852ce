//! Drill tenants (DESIGN.md §12, docs/drills.md). A drill runs in a database of its own
//! beside production's; the `drill` table's one row says that a database is a drill's,
//! which scenario it runs and where it publishes, so that every component serving it
//! knows (the banner on every page, subjects apart from production's). A production
//! database has no such row.
//!
//! A drill starts with production's reference data and logins, never with its events:
//! the medical areas and municipalities, and the users with their password hashes, so
//! that everyone logs in to the drill as they do every day.

/// The first token of every drill's subject prefix: production's never starts with it.
pub const SUBJECT_PREFIX: &str = "drill";

use sqlx::PgPool;
use time::OffsetDateTime;

use crate::error::{IdentityError, store_failure};

/// A drill tenant, as its database records it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Drill {
    pub name: String,
    pub title: String,
    pub title_en: String,
    /// The scenario file's text as it was when the drill started.
    pub scenario: String,
    /// The production database whose organisations and logins were copied.
    pub production_database: String,
    pub nats_subject_prefix: String,
    pub nats_stream: String,
    pub http_addr: String,
    pub grpc_addr: String,
    pub started_at: OffsetDateTime,
    /// When `noroshi drill stop` asked the running drill to end.
    pub stop_requested_at: Option<OffsetDateTime>,
    /// When the running drill had shut down.
    pub stopped_at: Option<OffsetDateTime>,
}

/// What a new drill tenant records about itself.
#[derive(Debug, Clone)]
pub struct NewDrill<'a> {
    pub name: &'a str,
    pub title: &'a str,
    pub title_en: &'a str,
    pub scenario: &'a str,
    pub production_database: &'a str,
    pub nats_subject_prefix: &'a str,
    pub nats_stream: &'a str,
    pub http_addr: &'a str,
    pub grpc_addr: &'a str,
}

/// The drill the database of `pool` holds, if it is a drill tenant (a database whose
/// schema was never created is none).
pub async fn read(pool: &PgPool) -> Result<Option<Drill>, IdentityError> {
    let schema: bool = sqlx::query_scalar("SELECT to_regclass('drill') IS NOT NULL")
        .fetch_one(pool)
        .await
        .map_err(store_failure)?;
    if !schema {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT name, title, title_en, scenario, production_database, nats_subject_prefix, \
                nats_stream, http_addr, grpc_addr, started_at, stop_requested_at, stopped_at \
         FROM drill",
    )
    .fetch_optional(pool)
    .await
    .map_err(store_failure)
}

/// Marks the database of `pool` as the tenant of `drill`; refused when it already is a
/// drill's.
pub async fn mark(pool: &PgPool, drill: &NewDrill<'_>) -> Result<(), IdentityError> {
    let inserted = sqlx::query(
        "INSERT INTO drill (name, title, title_en, scenario, production_database, \
                            nats_subject_prefix, nats_stream, http_addr, grpc_addr) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
    )
    .bind(drill.name)
    .bind(drill.title)
    .bind(drill.title_en)
    .bind(drill.scenario)
    .bind(drill.production_database)
    .bind(drill.nats_subject_prefix)
    .bind(drill.nats_stream)
    .bind(drill.http_addr)
    .bind(drill.grpc_addr)
    .execute(pool)
    .await
    .map_err(store_failure)?;
    if inserted.rows_affected() == 0 {
        return Err(IdentityError::AlreadyExists(format!(
            "drill {}",
            drill.name
        )));
    }
    Ok(())
}

/// Asks the running drill to end (the first request's time is kept); the drill as it
/// now stands, `None` when the database is no drill's.
pub async fn request_stop(pool: &PgPool) -> Result<Option<Drill>, IdentityError> {
    sqlx::query("UPDATE drill SET stop_requested_at = coalesce(stop_requested_at, now())")
        .execute(pool)
        .await
        .map_err(store_failure)?;
    read(pool).await
}

/// Records that the running drill has shut down.
pub async fn stopped(pool: &PgPool) -> Result<(), IdentityError> {
    sqlx::query("UPDATE drill SET stopped_at = coalesce(stopped_at, now())")
        .execute(pool)
        .await
        .map_err(store_failure)?;
    Ok(())
}

/// What [`copy_logins`] copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Copied {
    pub areas: u64,
    pub municipalities: u64,
    pub users: u64,
}

/// Copies production's medical areas, municipalities and users (their password hashes
/// included, their failed logins and lockouts not) into a drill's database, in one
/// transaction there. Sessions, API clients, certificates and webhooks stay behind: a
/// drill's alerts must not page anyone through production's webhooks.
pub async fn copy_logins(production: &PgPool, drill: &PgPool) -> Result<Copied, IdentityError> {
    type Area = (String, String, Option<String>, Vec<String>);
    type Municipality = (String, String, Option<String>, String);
    type User = (String, String, String, String, String, bool);
    let areas: Vec<Area> =
        sqlx::query_as("SELECT code, name, name_en, neighbours FROM medical_areas")
            .fetch_all(production)
            .await
            .map_err(store_failure)?;
    let municipalities: Vec<Municipality> =
        sqlx::query_as("SELECT code, name, name_en, medical_area FROM municipalities")
            .fetch_all(production)
            .await
            .map_err(store_failure)?;
    let users: Vec<User> = sqlx::query_as(
        "SELECT username, display_name, organisation_id, role, password_hash, disabled \
         FROM users",
    )
    .fetch_all(production)
    .await
    .map_err(store_failure)?;
    let mut tx = drill.begin().await.map_err(store_failure)?;
    for (code, name, name_en, neighbours) in &areas {
        sqlx::query(
            "INSERT INTO medical_areas (code, name, name_en, neighbours) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO UPDATE SET name = $2, name_en = $3, neighbours = $4",
        )
        .bind(code)
        .bind(name)
        .bind(name_en)
        .bind(neighbours)
        .execute(&mut *tx)
        .await
        .map_err(store_failure)?;
    }
    for (code, name, name_en, area) in &municipalities {
        sqlx::query(
            "INSERT INTO municipalities (code, name, name_en, medical_area) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (code) DO UPDATE SET name = $2, name_en = $3, medical_area = $4",
        )
        .bind(code)
        .bind(name)
        .bind(name_en)
        .bind(area)
        .execute(&mut *tx)
        .await
        .map_err(store_failure)?;
    }
    for (username, display_name, organisation, role, hash, disabled) in &users {
        sqlx::query(
            "INSERT INTO users (username, display_name, organisation_id, role, password_hash, \
                                disabled) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (username) DO UPDATE SET display_name = $2, organisation_id = $3, \
                 role = $4, password_hash = $5, disabled = $6, updated_at = now()",
        )
        .bind(username)
        .bind(display_name)
        .bind(organisation)
        .bind(role)
        .bind(hash)
        .bind(disabled)
        .execute(&mut *tx)
        .await
        .map_err(store_failure)?;
    }
    tx.commit().await.map_err(store_failure)?;
    Ok(Copied {
        areas: areas.len() as u64,
        municipalities: municipalities.len() as u64,
        users: users.len() as u64,
    })
}
