//! `bed_board` (DESIGN.md §6): a row per (facility, category) with every figure of
//! §5.1, staleness and overflow; totals per medical area and for the prefecture; the
//! occupancy rate 病床使用率 = occupied / secured.
//!
//! The figures move exactly as the facility aggregate moves them
//! (`noroshi_domain::facility::Facility::evolve`): a declaration sets secured, ready
//! and occupied; a hold adds to held; an arrival turns a hold into an occupied bed; a
//! release or a discharge only counts for a placement the board saw held or placed.

pub mod query;

use std::collections::{BTreeMap, HashMap, HashSet};

use noroshi_domain::facility::FacilityEvent;
use noroshi_domain::values::{Acceptance, FacilityKind};
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool, Row};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::runner::{Projection, Seen};

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
    const SOURCES: &'static [&'static str] = &[streams::FACILITY];

    /// Registrations and updates are written as they come (the bed rows refer to them);
    /// bed figures and placements are loaded once for the whole batch, moved in memory
    /// event by event, and written back once.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
        // Facilities: few, looked up whole.
        _seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let facility_events = || {
            events.iter().filter_map(|(event, decoded)| match decoded {
                DomainEvent::Facility(e) => Some((event.stream_id.aggregate_id(), e)),
                _ => None,
            })
        };
        let mut beds = Beds::load(tx, facility_events()).await?;
        for (facility_id, event) in facility_events() {
            match event {
                FacilityEvent::Registered(_) | FacilityEvent::Updated(_) => {
                    write_facility(tx, facility_id, event).await?;
                }
                _ => beds.apply(facility_id, event),
            }
        }
        beds.write(tx).await
    }
}

/// Writes a facility's registration or update.
async fn write_facility(
    tx: &mut PgConnection,
    facility_id: &str,
    event: &FacilityEvent,
) -> Result<(), sqlx::Error> {
    match event {
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
        _ => {}
    }
    Ok(())
}

fn names<T: ToString>(values: impl IntoIterator<Item = T>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

fn count(value: u32) -> i32 {
    i32::try_from(value).unwrap_or(i32::MAX)
}

/// A stored (facility, category) row of `bed_board_beds`.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct Figures {
    secured: i32,
    ready: i32,
    occupied: i32,
    held: i32,
    acceptance: String,
    constraints: Vec<String>,
    declared_at: Option<OffsetDateTime>,
    proxy_by: Option<String>,
}

impl Default for Figures {
    /// A category nothing was declared for yet: the table's defaults.
    fn default() -> Self {
        Self {
            secured: 0,
            ready: 0,
            occupied: 0,
            held: 0,
            acceptance: Acceptance::Accepting.to_string(),
            constraints: Vec::new(),
            declared_at: None,
            proxy_by: None,
        }
    }
}

/// A placement holding (`HELD`) or occupying (`OCCUPIED`) a bed of a category.
type Occupant = (String, &'static str);

/// The rows a batch touches: loaded before it, moved by its events, written after it.
#[derive(Debug, Default)]
struct Beds {
    rows: HashMap<(String, String), Figures>,
    changed_rows: HashSet<(String, String)>,
    /// `None`: no such placement (any more).
    placements: HashMap<(String, Uuid), Option<Occupant>>,
    changed_placements: HashSet<(String, Uuid)>,
}

impl Beds {
    /// Loads the bed rows and placements that `events` touch, in two queries.
    async fn load<'a>(
        tx: &mut PgConnection,
        events: impl Iterator<Item = (&'a str, &'a FacilityEvent)>,
    ) -> Result<Self, sqlx::Error> {
        let mut rows: HashSet<(String, String)> = HashSet::new();
        let mut placements: HashSet<(String, Uuid)> = HashSet::new();
        for (facility, event) in events {
            let facility = facility.to_owned();
            match event {
                FacilityEvent::CapacityDeclared { categories, .. } => {
                    for figures in categories {
                        rows.insert((facility.clone(), figures.category.to_string()));
                    }
                }
                FacilityEvent::AcceptanceChanged { category, .. } => {
                    rows.insert((facility, category.to_string()));
                }
                FacilityEvent::BedHeld {
                    category,
                    placement_id,
                    ..
                }
                | FacilityEvent::BedHoldReleased {
                    category,
                    placement_id,
                    ..
                }
                | FacilityEvent::BedOccupied {
                    category,
                    placement_id,
                }
                | FacilityEvent::BedVacated {
                    category,
                    placement_id,
                    ..
                } => {
                    rows.insert((facility.clone(), category.to_string()));
                    placements.insert((facility, *placement_id));
                }
                FacilityEvent::Registered(_) | FacilityEvent::Updated(_) => {}
            }
        }
        let mut beds = Self::default();
        if !rows.is_empty() {
            let (facilities, categories): (Vec<String>, Vec<String>) = rows.into_iter().unzip();
            let stored = sqlx::query(
                "SELECT b.* FROM bed_board_beds b \
                 JOIN unnest($1::text[], $2::text[]) AS k(facility_id, category) \
                 USING (facility_id, category)",
            )
            .bind(&facilities)
            .bind(&categories)
            .fetch_all(&mut *tx)
            .await?;
            for row in stored {
                let key = (row.try_get("facility_id")?, row.try_get("category")?);
                beds.rows.insert(key, Figures::from_row(&row)?);
            }
        }
        if !placements.is_empty() {
            let (facilities, ids): (Vec<String>, Vec<Uuid>) = placements.iter().cloned().unzip();
            let stored: Vec<(String, Uuid, String, String)> = sqlx::query_as(
                "SELECT p.facility_id, p.placement_id, p.category, p.state \
                 FROM bed_board_placements p \
                 JOIN unnest($1::text[], $2::uuid[]) AS k(facility_id, placement_id) \
                 USING (facility_id, placement_id)",
            )
            .bind(&facilities)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            beds.placements = placements.into_iter().map(|key| (key, None)).collect();
            for (facility, placement, category, state) in stored {
                let state = if state == "HELD" { "HELD" } else { "OCCUPIED" };
                beds.placements
                    .insert((facility, placement), Some((category, state)));
            }
        }
        Ok(beds)
    }

    /// Moves the figures as one event says, exactly as the facility aggregate does.
    fn apply(&mut self, facility: &str, event: &FacilityEvent) {
        match event {
            FacilityEvent::CapacityDeclared {
                categories,
                declared_at,
                proxy,
            } => {
                for figures in categories {
                    let row = self.row(facility, &figures.category.to_string());
                    row.secured = count(figures.secured);
                    row.ready = count(figures.ready);
                    row.occupied = count(figures.occupied);
                    row.declared_at = Some(*declared_at);
                    row.proxy_by = proxy.as_ref().map(|p| p.entered_by.to_string());
                }
            }
            FacilityEvent::AcceptanceChanged {
                category,
                acceptance,
                constraints,
                ..
            } => {
                let row = self.row(facility, &category.to_string());
                row.acceptance = acceptance.to_string();
                row.constraints = names(constraints);
            }
            FacilityEvent::BedHeld {
                category,
                placement_id,
                ..
            } => {
                let category = category.to_string();
                self.place(facility, *placement_id, &category, "HELD");
                self.add(facility, &category, 1, 0);
            }
            FacilityEvent::BedHoldReleased {
                category,
                placement_id,
                ..
            } => {
                if self.take(facility, *placement_id, "HELD") {
                    self.add(facility, &category.to_string(), -1, 0);
                }
            }
            FacilityEvent::BedOccupied {
                category,
                placement_id,
            } => {
                let category = category.to_string();
                let held = if self.take(facility, *placement_id, "HELD") {
                    -1
                } else {
                    0
                };
                self.place(facility, *placement_id, &category, "OCCUPIED");
                self.add(facility, &category, held, 1);
            }
            FacilityEvent::BedVacated {
                category,
                placement_id,
                ..
            } => {
                if self.take(facility, *placement_id, "OCCUPIED") {
                    self.add(facility, &category.to_string(), 0, -1);
                }
            }
            FacilityEvent::Registered(_) | FacilityEvent::Updated(_) => {}
        }
    }

    fn row(&mut self, facility: &str, category: &str) -> &mut Figures {
        let key = (facility.to_owned(), category.to_owned());
        self.changed_rows.insert(key.clone());
        self.rows.entry(key).or_default()
    }

    /// Moves held and occupied by the given amounts, never below zero.
    fn add(&mut self, facility: &str, category: &str, held: i32, occupied: i32) {
        let row = self.row(facility, category);
        row.held = (row.held + held).max(0);
        row.occupied = (row.occupied + occupied).max(0);
    }

    /// Records the placement as holding or occupying a bed of `category`.
    fn place(&mut self, facility: &str, placement: Uuid, category: &str, state: &'static str) {
        let key = (facility.to_owned(), placement);
        self.changed_placements.insert(key.clone());
        self.placements
            .insert(key, Some((category.to_owned(), state)));
    }

    /// Removes the placement if it is in `state`; whether it was.
    fn take(&mut self, facility: &str, placement: Uuid, state: &str) -> bool {
        let key = (facility.to_owned(), placement);
        let Some(slot) = self.placements.get_mut(&key) else {
            return false;
        };
        if slot.as_ref().is_none_or(|(_, s)| *s != state) {
            return false;
        }
        *slot = None;
        self.changed_placements.insert(key);
        true
    }

    /// Writes every changed row and placement in one statement.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.changed_rows.is_empty() && self.changed_placements.is_empty() {
            return Ok(());
        }
        let mut beds = BedColumns::default();
        for key in &self.changed_rows {
            let Some(row) = self.rows.get(key) else {
                continue;
            };
            beds.facility.push(key.0.clone());
            beds.category.push(key.1.clone());
            beds.secured.push(row.secured);
            beds.ready.push(row.ready);
            beds.occupied.push(row.occupied);
            beds.held.push(row.held);
            beds.acceptance.push(row.acceptance.clone());
            beds.constraints.push(crate::text_array(&row.constraints));
            beds.declared_at.push(row.declared_at);
            beds.proxy_by.push(row.proxy_by.clone());
        }
        let (mut placed, mut removed) = (PlacementColumns::default(), PlacementColumns::default());
        for key in &self.changed_placements {
            match self.placements.get(key) {
                Some(Some((category, state))) => {
                    placed.facility.push(key.0.clone());
                    placed.placement.push(key.1);
                    placed.category.push(category.clone());
                    placed.state.push((*state).to_owned());
                }
                _ => {
                    removed.facility.push(key.0.clone());
                    removed.placement.push(key.1);
                }
            }
        }
        sqlx::query(
            "WITH beds AS ( \
               INSERT INTO bed_board_beds (facility_id, category, secured, ready, occupied, held, \
                 acceptance, constraints, declared_at, proxy_by) \
               SELECT f, c, s, r, o, h, a, k::text[], d, p \
               FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::int[], \
                           $7::text[], $8::text[], $9::timestamptz[], $10::text[]) \
                    AS t(f, c, s, r, o, h, a, k, d, p) \
               ON CONFLICT (facility_id, category) DO UPDATE SET secured = excluded.secured, \
                 ready = excluded.ready, occupied = excluded.occupied, held = excluded.held, \
                 acceptance = excluded.acceptance, constraints = excluded.constraints, \
                 declared_at = excluded.declared_at, proxy_by = excluded.proxy_by), \
             placed AS ( \
               INSERT INTO bed_board_placements (facility_id, placement_id, category, state) \
               SELECT * FROM unnest($11::text[], $12::uuid[], $13::text[], $14::text[]) \
               ON CONFLICT (facility_id, placement_id) \
               DO UPDATE SET category = excluded.category, state = excluded.state), \
             removed AS ( \
               DELETE FROM bed_board_placements p \
               USING unnest($15::text[], $16::uuid[]) AS k(facility_id, placement_id) \
               WHERE p.facility_id = k.facility_id AND p.placement_id = k.placement_id) \
             SELECT 1",
        )
        .bind(&beds.facility)
        .bind(&beds.category)
        .bind(&beds.secured)
        .bind(&beds.ready)
        .bind(&beds.occupied)
        .bind(&beds.held)
        .bind(&beds.acceptance)
        .bind(&beds.constraints)
        .bind(&beds.declared_at)
        .bind(&beds.proxy_by)
        .bind(&placed.facility)
        .bind(&placed.placement)
        .bind(&placed.category)
        .bind(&placed.state)
        .bind(&removed.facility)
        .bind(&removed.placement)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Changed bed rows, column by column, for `unnest`.
#[derive(Debug, Default)]
struct BedColumns {
    facility: Vec<String>,
    category: Vec<String>,
    secured: Vec<i32>,
    ready: Vec<i32>,
    occupied: Vec<i32>,
    held: Vec<i32>,
    acceptance: Vec<String>,
    /// Each row's constraints as an array literal (`text_array`).
    constraints: Vec<String>,
    declared_at: Vec<Option<OffsetDateTime>>,
    proxy_by: Vec<Option<String>>,
}

/// Placements, column by column, for `unnest`.
#[derive(Debug, Default)]
struct PlacementColumns {
    facility: Vec<String>,
    placement: Vec<Uuid>,
    category: Vec<String>,
    state: Vec<String>,
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

    /// Adds another set of sums.
    pub fn merge(&mut self, other: &Totals) {
        self.secured += other.secured;
        self.ready += other.ready;
        self.occupied += other.occupied;
        self.held += other.held;
        self.available += other.available;
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

/// The stored rows of `facilities`, or of every facility.
async fn stored_rows(
    pool: &PgPool,
    facilities: Option<&[String]>,
) -> Result<Vec<BedRow>, sqlx::Error> {
    macro_rules! select {
        ($where:literal) => {
            concat!(
                "SELECT f.facility_id, f.name, f.name_en, f.kind, f.medical_area, f.municipality, \
                 f.active, b.category, b.secured, b.ready, b.occupied, b.held, b.acceptance, \
                 b.constraints, b.declared_at, b.proxy_by \
                 FROM bed_board_beds b JOIN bed_board_facilities f USING (facility_id) ",
                $where,
                " ORDER BY f.facility_id, b.category"
            )
        };
    }
    // Two statements rather than `$1 IS NULL OR …`: the pools plan generically, and a
    // generic plan of that would scan the whole board to read a few facilities.
    let rows = match facilities {
        None => sqlx::query(select!("")).fetch_all(pool).await?,
        Some(facilities) => {
            sqlx::query(select!("WHERE f.facility_id = ANY($1)"))
                .bind(facilities)
                .fetch_all(pool)
                .await?
        }
    };
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

/// A registered facility as pages name it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct FacilityName {
    pub facility_id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub kind: String,
    pub medical_area: Option<String>,
}

/// Every registered facility's names, kind and medical area, by id.
pub async fn facility_names(pool: &PgPool) -> Result<Vec<FacilityName>, sqlx::Error> {
    sqlx::query_as(
        "SELECT facility_id, name, name_en, kind, medical_area FROM bed_board_facilities \
         ORDER BY facility_id",
    )
    .fetch_all(pool)
    .await
}

/// The medical area of a registered facility, if it has one.
pub async fn medical_area_of(
    pool: &PgPool,
    facility_id: &str,
) -> Result<Option<String>, sqlx::Error> {
    Ok(sqlx::query_scalar::<_, Option<String>>(
        "SELECT medical_area FROM bed_board_facilities WHERE facility_id = $1",
    )
    .bind(facility_id)
    .fetch_optional(pool)
    .await?
    .flatten())
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
/// HQ can then see who has never reported, not only who has. Only the rows of
/// `facilities` when given.
pub async fn board(
    pool: &PgPool,
    facilities: Option<&[String]>,
) -> Result<Vec<BedRow>, sqlx::Error> {
    let mut rows = stored_rows(pool, facilities).await?;
    macro_rules! select {
        ($where:literal) => {
            concat!(
                "SELECT facility_id, name, name_en, kind, medical_area, municipality, active \
                 FROM bed_board_facilities ",
                $where
            )
        };
    }
    let facilities: Vec<FacilityRow> = match facilities {
        None => sqlx::query_as(select!("")).fetch_all(pool).await?,
        Some(facilities) => {
            sqlx::query_as(select!("WHERE facility_id = ANY($1)"))
                .bind(facilities)
                .fetch_all(pool)
                .await?
        }
    };
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
