//! `bed_board` (DESIGN.md §6): a row per (facility, category) with every figure of
//! §5.1, staleness and overflow; totals per medical area and for the prefecture; the
//! occupancy rate 病床使用率 = occupied / secured.
//!
//! The figures move exactly as the facility aggregate moves them
//! (`noroshi_domain::facility::Facility::evolve`): a declaration sets secured, ready
//! and occupied; a hold adds to held; an arrival turns a hold into an occupied bed; a
//! release or a discharge only counts for a placement the board saw held or placed.

use std::collections::BTreeMap;

use noroshi_domain::DomainEvent;
use noroshi_domain::facility::FacilityEvent;
use noroshi_domain::values::{Acceptance, FacilityKind};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{PgPool, Row};
use time::{Duration, OffsetDateTime};

use crate::runner::Projection;

/// Version of the occupancy-rate definition shown with every rate.
pub const OCCUPANCY_DEFINITION: &str = "v1: occupied / secured";

#[derive(Debug, Clone, Copy, Default)]
pub struct BedBoard;

impl Projection for BedBoard {
    const NAME: &'static str = "bed_board";
    const TABLES: &'static [&'static str] = &[
        "bed_board_placements",
        "bed_board_beds",
        "bed_board_facilities",
    ];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), sqlx::Error> {
        let DomainEvent::Facility(facility_event) = decoded else {
            return Ok(());
        };
        let facility_id = event.stream_id.aggregate_id();
        match facility_event {
            FacilityEvent::Registered(p) => {
                sqlx::query(
                    "INSERT INTO bed_board_facilities (facility_id, name, name_en, kind, prefecture, \
                     medical_area, municipality, capabilities, active) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                )
                .bind(facility_id)
                .bind(p.name.as_str())
                .bind(p.name_en.as_ref().map(|n| n.as_str()))
                .bind(p.kind.to_string())
                .bind(p.prefecture.as_str())
                .bind(p.medical_area.as_ref().map(|a| a.as_str()))
                .bind(p.municipality.as_str())
                .bind(names(&p.capabilities))
                .bind(p.active)
                .execute(&mut *tx)
                .await?;
            }
            FacilityEvent::Updated(c) => {
                sqlx::query(
                    "UPDATE bed_board_facilities SET name = $2, name_en = $3, medical_area = $4, \
                     municipality = $5, capabilities = $6, active = $7 WHERE facility_id = $1",
                )
                .bind(facility_id)
                .bind(c.name.as_str())
                .bind(c.name_en.as_ref().map(|n| n.as_str()))
                .bind(c.medical_area.as_ref().map(|a| a.as_str()))
                .bind(c.municipality.as_str())
                .bind(names(&c.capabilities))
                .bind(c.active)
                .execute(&mut *tx)
                .await?;
            }
            FacilityEvent::CapacityDeclared {
                categories,
                declared_at,
                proxy,
            } => {
                for figures in categories {
                    sqlx::query(
                        "INSERT INTO bed_board_beds (facility_id, category, secured, ready, occupied, declared_at, proxy_by) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (facility_id, category) DO UPDATE SET secured = excluded.secured, \
                         ready = excluded.ready, occupied = excluded.occupied, \
                         declared_at = excluded.declared_at, proxy_by = excluded.proxy_by",
                    )
                    .bind(facility_id)
                    .bind(figures.category.to_string())
                    .bind(count(figures.secured))
                    .bind(count(figures.ready))
                    .bind(count(figures.occupied))
                    .bind(declared_at)
                    .bind(proxy.as_ref().map(|p| p.entered_by.as_str()))
                    .execute(&mut *tx)
                    .await?;
                }
            }
            FacilityEvent::AcceptanceChanged {
                category,
                acceptance,
                constraints,
                ..
            } => {
                sqlx::query(
                    "INSERT INTO bed_board_beds (facility_id, category, acceptance, constraints) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (facility_id, category) DO UPDATE \
                     SET acceptance = excluded.acceptance, constraints = excluded.constraints",
                )
                .bind(facility_id)
                .bind(category.to_string())
                .bind(acceptance.to_string())
                .bind(names(constraints))
                .execute(&mut *tx)
                .await?;
            }
            FacilityEvent::BedHeld {
                category,
                placement_id,
                ..
            } => {
                place(
                    tx,
                    facility_id,
                    *placement_id,
                    &category.to_string(),
                    "HELD",
                )
                .await?;
                add(tx, facility_id, &category.to_string(), 1, 0).await?;
            }
            FacilityEvent::BedHoldReleased {
                category,
                placement_id,
                ..
            } => {
                if take(tx, facility_id, *placement_id, "HELD").await? {
                    add(tx, facility_id, &category.to_string(), -1, 0).await?;
                }
            }
            FacilityEvent::BedOccupied {
                category,
                placement_id,
            } => {
                let held = if take(tx, facility_id, *placement_id, "HELD").await? {
                    -1
                } else {
                    0
                };
                place(
                    tx,
                    facility_id,
                    *placement_id,
                    &category.to_string(),
                    "OCCUPIED",
                )
                .await?;
                add(tx, facility_id, &category.to_string(), held, 1).await?;
            }
            FacilityEvent::BedVacated {
                category,
                placement_id,
                ..
            } => {
                if take(tx, facility_id, *placement_id, "OCCUPIED").await? {
                    add(tx, facility_id, &category.to_string(), 0, -1).await?;
                }
            }
        }
        Ok(())
    }
}

fn names<T: ToString>(values: impl IntoIterator<Item = T>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

fn count(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// Records the placement as holding or occupying a bed of `category`.
async fn place(
    tx: &mut PgConnection,
    facility_id: &str,
    placement_id: uuid::Uuid,
    category: &str,
    state: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bed_board_placements (facility_id, placement_id, category, state) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (facility_id, placement_id) \
         DO UPDATE SET category = excluded.category, state = excluded.state",
    )
    .bind(facility_id)
    .bind(placement_id)
    .bind(category)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Removes the placement's row if it is in `state`; whether it was.
async fn take(
    tx: &mut PgConnection,
    facility_id: &str,
    placement_id: uuid::Uuid,
    state: &str,
) -> Result<bool, sqlx::Error> {
    let removed = sqlx::query(
        "DELETE FROM bed_board_placements WHERE facility_id = $1 AND placement_id = $2 AND state = $3",
    )
    .bind(facility_id)
    .bind(placement_id)
    .bind(state)
    .execute(&mut *tx)
    .await?;
    Ok(removed.rows_affected() > 0)
}

/// Moves held and occupied by the given amounts, never below zero.
async fn add(
    tx: &mut PgConnection,
    facility_id: &str,
    category: &str,
    held: i32,
    occupied: i32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO bed_board_beds (facility_id, category, held, occupied) \
         VALUES ($1, $2, greatest($3, 0), greatest($4, 0)) \
         ON CONFLICT (facility_id, category) DO UPDATE \
         SET held = greatest(bed_board_beds.held + $3, 0), \
             occupied = greatest(bed_board_beds.occupied + $4, 0)",
    )
    .bind(facility_id)
    .bind(category)
    .bind(held)
    .bind(occupied)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One (facility, category) of the board, as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BedRow {
    pub facility_id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub kind: String,
    pub medical_area: Option<String>,
    pub municipality: String,
    pub active: bool,
    pub category: String,
    pub secured: u32,
    pub ready: u32,
    pub occupied: u32,
    pub held: u32,
    pub acceptance: String,
    pub constraints: Vec<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub declared_at: Option<OffsetDateTime>,
    pub proxy_by: Option<String>,
}

impl BedRow {
    /// `max(0, ready − occupied − held)`.
    pub fn available(&self) -> u32 {
        self.ready
            .saturating_sub(self.occupied)
            .saturating_sub(self.held)
    }

    /// More patients than usable beds: allowed, and flagged.
    pub fn overflow(&self) -> bool {
        self.occupied > self.ready
    }

    /// Figures never declared, or declared longer than `limit` before `now`.
    pub fn stale(&self, now: OffsetDateTime, limit: Duration) -> bool {
        self.declared_at.is_none_or(|at| now - at > limit)
    }
}

/// Sums over a set of rows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub secured: u64,
    pub ready: u64,
    pub occupied: u64,
    pub held: u64,
    pub available: u64,
}

impl Totals {
    pub fn add(&mut self, row: &BedRow) {
        self.secured += u64::from(row.secured);
        self.ready += u64::from(row.ready);
        self.occupied += u64::from(row.occupied);
        self.held += u64::from(row.held);
        self.available += u64::from(row.available());
    }

    /// 病床使用率 by [`OCCUPANCY_DEFINITION`]; `None` when nothing is secured.
    pub fn occupancy_rate(&self) -> Option<f64> {
        (self.secured > 0).then(|| self.occupied as f64 / self.secured as f64)
    }
}

/// Every stored row of the board, by facility then category.
pub async fn rows(pool: &PgPool) -> Result<Vec<BedRow>, sqlx::Error> {
    stored_rows(pool, None).await
}

/// The stored rows of `facility`, or of every facility.
async fn stored_rows(pool: &PgPool, facility: Option<&str>) -> Result<Vec<BedRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT f.facility_id, f.name, f.name_en, f.kind, f.medical_area, f.municipality, f.active, \
         b.category, b.secured, b.ready, b.occupied, b.held, b.acceptance, b.constraints, \
         b.declared_at, b.proxy_by \
         FROM bed_board_beds b JOIN bed_board_facilities f USING (facility_id) \
         WHERE $1::text IS NULL OR f.facility_id = $1 \
         ORDER BY f.facility_id, b.category",
    )
    .bind(facility)
    .fetch_all(pool)
    .await?;
    let figure = |row: &sqlx::postgres::PgRow, name: &str| -> Result<u32, sqlx::Error> {
        Ok(u32::try_from(row.try_get::<i32, _>(name)?).unwrap_or_default())
    };
    rows.iter()
        .map(|row| {
            Ok(BedRow {
                facility_id: row.try_get("facility_id")?,
                name: row.try_get("name")?,
                name_en: row.try_get("name_en")?,
                kind: row.try_get("kind")?,
                medical_area: row.try_get("medical_area")?,
                municipality: row.try_get("municipality")?,
                active: row.try_get("active")?,
                category: row.try_get("category")?,
                secured: figure(row, "secured")?,
                ready: figure(row, "ready")?,
                occupied: figure(row, "occupied")?,
                held: figure(row, "held")?,
                acceptance: row.try_get("acceptance")?,
                constraints: row.try_get("constraints")?,
                declared_at: row.try_get("declared_at")?,
                proxy_by: row.try_get("proxy_by")?,
            })
        })
        .collect()
}

#[derive(Debug, sqlx::FromRow)]
struct FacilityRow {
    facility_id: String,
    name: String,
    name_en: Option<String>,
    kind: String,
    medical_area: Option<String>,
    municipality: String,
    active: bool,
}

/// The whole board: every stored row, plus a row of zeros, never declared and therefore
/// stale, for each category a registered facility's kind can have but has not declared.
/// HQ can then see who has never reported, not only who has. Only `facility`'s rows
/// when given.
pub async fn board(pool: &PgPool, facility: Option<&str>) -> Result<Vec<BedRow>, sqlx::Error> {
    let mut rows = stored_rows(pool, facility).await?;
    let facilities: Vec<FacilityRow> = sqlx::query_as(
        "SELECT facility_id, name, name_en, kind, medical_area, municipality, active \
         FROM bed_board_facilities WHERE $1::text IS NULL OR facility_id = $1",
    )
    .bind(facility)
    .fetch_all(pool)
    .await?;
    let declared: std::collections::HashSet<(String, String)> = rows
        .iter()
        .map(|r| (r.facility_id.clone(), r.category.clone()))
        .collect();
    for f in facilities {
        let categories = FacilityKind::parse(&f.kind).map_or(&[][..], FacilityKind::bed_categories);
        for category in categories {
            let category = category.to_string();
            if declared.contains(&(f.facility_id.clone(), category.clone())) {
                continue;
            }
            rows.push(BedRow {
                facility_id: f.facility_id.clone(),
                name: f.name.clone(),
                name_en: f.name_en.clone(),
                kind: f.kind.clone(),
                medical_area: f.medical_area.clone(),
                municipality: f.municipality.clone(),
                active: f.active,
                category,
                secured: 0,
                ready: 0,
                occupied: 0,
                held: 0,
                acceptance: Acceptance::Accepting.to_string(),
                constraints: Vec::new(),
                declared_at: None,
                proxy_by: None,
            });
        }
    }
    rows.sort_by(|a, b| (&a.facility_id, &a.category).cmp(&(&b.facility_id, &b.category)));
    Ok(rows)
}

/// Totals per medical area (facilities without one, such as the HQ, count only in the
/// prefecture), and for the whole prefecture.
pub fn totals<'a>(
    rows: impl IntoIterator<Item = &'a BedRow>,
) -> (BTreeMap<String, Totals>, Totals) {
    let mut areas: BTreeMap<String, Totals> = BTreeMap::new();
    let mut prefecture = Totals::default();
    for row in rows {
        prefecture.add(row);
        if let Some(area) = &row.medical_area {
            areas.entry(area.clone()).or_default().add(row);
        }
    }
    (areas, prefecture)
}
