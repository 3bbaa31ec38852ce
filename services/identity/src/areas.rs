//! The deployment's secondary medical areas (二次医療圏), their municipalities and which
//! areas border which: reference data the operator registers with the organisations
//! (`noroshi admin apply`), which pages use to name codes and HQ's candidates use to
//! look at neighbouring areas first.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::error::{IdentityError, store_failure};

/// A secondary medical area and the areas that border it, as registered.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AreaEntry {
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
    #[serde(default)]
    pub neighbours: Vec<String>,
    /// The municipalities (市区町村) of the area, so that pages can name them.
    #[serde(default)]
    pub municipalities: Vec<MunicipalityEntry>,
}

/// A municipality: its 全国地方公共団体コード and names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MunicipalityEntry {
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
}

/// A medical area as pages name it.
#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct MedicalArea {
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
}

/// A municipality of a medical area, as pages name it.
#[derive(Debug, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Municipality {
    pub code: String,
    pub name: String,
    pub name_en: Option<String>,
    pub medical_area: String,
}

/// Every medical area and every municipality, by code.
pub async fn list(pool: &PgPool) -> Result<(Vec<MedicalArea>, Vec<Municipality>), IdentityError> {
    let areas = sqlx::query_as("SELECT code, name, name_en FROM medical_areas ORDER BY code")
        .fetch_all(pool)
        .await
        .map_err(store_failure)?;
    let municipalities = sqlx::query_as(
        "SELECT code, name, name_en, medical_area FROM municipalities ORDER BY code",
    )
    .fetch_all(pool)
    .await
    .map_err(store_failure)?;
    Ok((areas, municipalities))
}

/// The areas that border `area` (none when it is not registered).
pub async fn neighbours(pool: &PgPool, area: &str) -> Result<Vec<String>, IdentityError> {
    Ok(
        sqlx::query_scalar("SELECT neighbours FROM medical_areas WHERE code = $1")
            .bind(area)
            .fetch_optional(pool)
            .await
            .map_err(store_failure)?
            .unwrap_or_default(),
    )
}

/// Replaces the stored areas and their municipalities with `areas`, in one transaction.
pub async fn replace(pool: &PgPool, areas: &[AreaEntry]) -> Result<(), IdentityError> {
    let mut tx = pool.begin().await.map_err(store_failure)?;
    sqlx::query("DELETE FROM medical_areas")
        .execute(&mut *tx)
        .await
        .map_err(store_failure)?;
    // Their municipalities go with them (ON DELETE CASCADE).
    for area in areas {
        sqlx::query(
            "INSERT INTO medical_areas (code, name, name_en, neighbours) VALUES ($1, $2, $3, $4)",
        )
        .bind(&area.code)
        .bind(&area.name)
        .bind(&area.name_en)
        .bind(&area.neighbours)
        .execute(&mut *tx)
        .await
        .map_err(store_failure)?;
        for municipality in &area.municipalities {
            sqlx::query(
                "INSERT INTO municipalities (code, name, name_en, medical_area) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&municipality.code)
            .bind(&municipality.name)
            .bind(&municipality.name_en)
            .bind(&area.code)
            .execute(&mut *tx)
            .await
            .map_err(store_failure)?;
        }
    }
    tx.commit().await.map_err(store_failure)
}
