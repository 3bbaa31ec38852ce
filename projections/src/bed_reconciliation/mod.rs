//! `bed_reconciliation` (DESIGN.md §6, §12): per facility and category, the figures the
//! facility declared, as placements moved them since, against the patients and holds
//! noroshi knows of there, and since when they have disagreed.
//!
//! It reads the facility streams only: a hold, an arrival and a discharge each append an
//! event to the facility's stream (`BedHeld`, `BedHoldReleased`, `BedOccupied`,
//! `BedVacated`), moved exactly as `Facility::evolve` moves the figures, and a
//! declaration sets `occupied` anew.
//!
//! Figures *disagree* when the facility counts fewer occupied beds than patients noroshi
//! placed there and knows are present (beds counted free that are not: offers would go
//! to beds that do not exist), or holds other than the accepted placements awaiting
//! arrival. More occupied beds than placed patients is not a disagreement: patients
//! admitted outside noroshi (before it was used, or directly) fill beds too.

pub mod query;

use foldhash::{HashMap, HashSet};
use noroshi_domain::facility::FacilityEvent;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::FromRow;
use sqlx::postgres::{PgConnection, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct BedReconciliation;

/// One facility's category, as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Reconciled {
    pub facility_id: String,
    pub category: String,
    pub occupied: i32,
    pub held: i32,
    pub patients: i32,
    pub holds: i32,
    pub mismatch_since: Option<OffsetDateTime>,
}

impl Reconciled {
    fn new(facility_id: String, category: String) -> Self {
        Self {
            facility_id,
            category,
            occupied: 0,
            held: 0,
            patients: 0,
            holds: 0,
            mismatch_since: None,
        }
    }

    /// Whether the figures disagree with what noroshi knows (see the module's note).
    pub fn disagrees(&self) -> bool {
        self.occupied < self.patients || self.held != self.holds
    }

    /// Moves the beds held and the patients present by what an event of `at` did to
    /// them: the facility's figures and what noroshi knows move together.
    fn move_by(&mut self, at: OffsetDateTime, holds: i32, patients: i32) {
        self.held = (self.held + holds).max(0);
        self.holds = (self.holds + holds).max(0);
        self.occupied = (self.occupied.saturating_add(patients)).max(0);
        self.patients = (self.patients + patients).max(0);
        self.settle(at);
    }

    /// Notes, at `at`, whether the figures now disagree.
    fn settle(&mut self, at: OffsetDateTime) {
        if !self.disagrees() {
            self.mismatch_since = None;
        } else if self.mismatch_since.is_none() {
            self.mismatch_since = Some(at);
        }
    }
}

/// The placements behind a batch's rows: where each one's bed is (`None` once gone), and
/// which of them the batch moved.
struct Beds {
    placements: HashMap<Uuid, Option<(String, String, State)>>,
    moved: HashSet<Uuid>,
}

impl Beds {
    /// Notes `placement`'s bed in `row` as `state`.
    fn put(&mut self, placement: Uuid, row: &Reconciled, state: State) {
        self.placements.insert(
            placement,
            Some((row.facility_id.clone(), row.category.clone(), state)),
        );
        self.moved.insert(placement);
    }

    /// Takes `placement` out when its bed is in `state`; whether it was.
    fn take(&mut self, placement: &Uuid, state: State) -> bool {
        let there = matches!(self.placements.get(placement), Some(Some((_, _, s))) if *s == state);
        if there {
            self.placements.insert(*placement, None);
            self.moved.insert(*placement);
        }
        there
    }
}

/// Where a placement's bed is: held, or its patient present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Held,
    Present,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            Self::Held => "HELD",
            Self::Present => "PRESENT",
        }
    }
}

impl Projection for BedReconciliation {
    const NAME: &'static str = "bed_reconciliation";
    const TABLES: &'static [&'static str] =
        &["bed_reconciliation_placements", "bed_reconciliation"];
    const SOURCES: &'static [&'static str] = &[streams::FACILITY];

    /// Loads the rows and placements the batch touches (two queries), moves them event
    /// by event, writes each changed one once.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        _seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let (mut facilities, mut placement_ids) = (HashSet::default(), Vec::new());
        for (event, decoded) in batch {
            let DomainEvent::Facility(facility_event) = decoded else {
                continue;
            };
            facilities.insert(event.stream_id.aggregate_id().to_owned());
            match facility_event {
                FacilityEvent::BedHeld { placement_id, .. }
                | FacilityEvent::BedHoldReleased { placement_id, .. }
                | FacilityEvent::BedOccupied { placement_id, .. }
                | FacilityEvent::BedVacated { placement_id, .. } => {
                    placement_ids.push(*placement_id)
                }
                _ => {}
            }
        }
        if facilities.is_empty() {
            return Ok(());
        }
        let facilities: Vec<String> = facilities.into_iter().collect();
        let mut rows: HashMap<(String, String), Reconciled> = sqlx::query_as::<_, Reconciled>(
            "SELECT facility_id, category, occupied, held, patients, holds, mismatch_since \
             FROM bed_reconciliation WHERE facility_id = ANY($1)",
        )
        .bind(&facilities)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .map(|row| ((row.facility_id.clone(), row.category.clone()), row))
        .collect();
        let mut beds = Beds {
            placements: sqlx::query_as::<_, (Uuid, String, String, String)>(
                "SELECT placement_id, facility_id, category, state \
                 FROM bed_reconciliation_placements WHERE placement_id = ANY($1)",
            )
            .bind(&placement_ids)
            .fetch_all(&mut *tx)
            .await?
            .into_iter()
            .map(|(id, facility, category, state)| {
                let state = if state == "HELD" {
                    State::Held
                } else {
                    State::Present
                };
                (id, Some((facility, category, state)))
            })
            .collect(),
            moved: HashSet::default(),
        };
        let mut changed: HashSet<(String, String)> = HashSet::default();
        for (event, decoded) in batch {
            let DomainEvent::Facility(facility_event) = decoded else {
                continue;
            };
            let facility = event.stream_id.aggregate_id();
            let at = event.recorded_at;
            match facility_event {
                FacilityEvent::CapacityDeclared { categories, .. } => {
                    for figures in categories {
                        let row = entry(
                            &mut rows,
                            &mut changed,
                            facility,
                            figures.category.to_string(),
                        );
                        row.occupied = i32::try_from(figures.occupied).unwrap_or(i32::MAX);
                        row.settle(at);
                    }
                }
                FacilityEvent::BedHeld {
                    category,
                    placement_id,
                    ..
                } => {
                    let row = entry(&mut rows, &mut changed, facility, category.to_string());
                    row.move_by(at, 1, 0);
                    beds.put(*placement_id, row, State::Held);
                }
                FacilityEvent::BedHoldReleased {
                    category,
                    placement_id,
                    ..
                } => {
                    let row = entry(&mut rows, &mut changed, facility, category.to_string());
                    let released = beds.take(placement_id, State::Held);
                    row.move_by(at, -i32::from(released), 0);
                }
                FacilityEvent::BedOccupied {
                    category,
                    placement_id,
                } => {
                    let row = entry(&mut rows, &mut changed, facility, category.to_string());
                    let was_held = beds.take(placement_id, State::Held);
                    row.move_by(at, -i32::from(was_held), 1);
                    beds.put(*placement_id, row, State::Present);
                }
                FacilityEvent::BedVacated {
                    category,
                    placement_id,
                    ..
                } => {
                    let row = entry(&mut rows, &mut changed, facility, category.to_string());
                    let left = beds.take(placement_id, State::Present);
                    row.move_by(at, 0, -i32::from(left));
                }
                FacilityEvent::Registered(_)
                | FacilityEvent::Updated(_)
                | FacilityEvent::AcceptanceChanged { .. } => {}
            }
        }
        write_rows(tx, changed.iter().filter_map(|key| rows.get(key))).await?;
        let (mut gone, mut kept) = (Vec::new(), (Vec::new(), Vec::new(), Vec::new(), Vec::new()));
        for id in beds.moved {
            match beds.placements.get(&id) {
                Some(Some((facility, category, state))) => {
                    kept.0.push(id);
                    kept.1.push(facility.clone());
                    kept.2.push(category.clone());
                    kept.3.push(state.as_str());
                }
                _ => gone.push(id),
            }
        }
        if !gone.is_empty() {
            sqlx::query("DELETE FROM bed_reconciliation_placements WHERE placement_id = ANY($1)")
                .bind(&gone)
                .execute(&mut *tx)
                .await?;
        }
        if !kept.0.is_empty() {
            sqlx::query(
                "INSERT INTO bed_reconciliation_placements (placement_id, facility_id, category, state) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) \
                 ON CONFLICT (placement_id) DO UPDATE SET facility_id = EXCLUDED.facility_id, \
                   category = EXCLUDED.category, state = EXCLUDED.state",
            )
            .bind(&kept.0)
            .bind(&kept.1)
            .bind(&kept.2)
            .bind(&kept.3)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// The row of `facility`'s `category`, new if there is none, noted as changed.
fn entry<'a>(
    rows: &'a mut HashMap<(String, String), Reconciled>,
    changed: &mut HashSet<(String, String)>,
    facility: &str,
    category: String,
) -> &'a mut Reconciled {
    let key = (facility.to_owned(), category);
    changed.insert(key.clone());
    rows.entry(key.clone())
        .or_insert_with(|| Reconciled::new(key.0, key.1))
}

async fn write_rows<'a>(
    tx: &mut PgConnection,
    rows: impl Iterator<Item = &'a Reconciled>,
) -> Result<(), sqlx::Error> {
    let mut columns = (
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
        Vec::new(),
    );
    for row in rows {
        columns.0.push(row.facility_id.clone());
        columns.1.push(row.category.clone());
        columns.2.push(row.occupied);
        columns.3.push(row.held);
        columns.4.push(row.patients);
        columns.5.push(row.holds);
        columns.6.push(row.mismatch_since);
    }
    if columns.0.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO bed_reconciliation (facility_id, category, occupied, held, patients, holds, mismatch_since) \
         SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::int[], $6::int[], \
                              $7::timestamptz[]) \
         ON CONFLICT (facility_id, category) DO UPDATE SET occupied = EXCLUDED.occupied, \
           held = EXCLUDED.held, patients = EXCLUDED.patients, holds = EXCLUDED.holds, \
           mismatch_since = EXCLUDED.mismatch_since",
    )
    .bind(&columns.0)
    .bind(&columns.1)
    .bind(&columns.2)
    .bind(&columns.3)
    .bind(&columns.4)
    .bind(&columns.5)
    .bind(&columns.6)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Every row, or those of one facility, in facility and category order.
pub async fn rows(pool: &PgPool, facility: Option<&str>) -> Result<Vec<Reconciled>, sqlx::Error> {
    sqlx::query_as(
        "SELECT facility_id, category, occupied, held, patients, holds, mismatch_since \
         FROM bed_reconciliation WHERE $1::text IS NULL OR facility_id = $1 \
         ORDER BY facility_id, category",
    )
    .bind(facility)
    .fetch_all(pool)
    .await
}
