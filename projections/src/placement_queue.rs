//! `placement_queue` (DESIGN.md §6): live placements ordered by priority, then waiting
//! time, with their state, current offer and its deadline, the facilities that declined,
//! and holds past their deadline.
//!
//! Each row moves exactly as `noroshi_domain::placement::Placement::evolve` moves the
//! placement's record; a placement leaves the queue when it is no longer live (arrived
//! or cancelled).

use std::collections::{HashMap, HashSet};

use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::values::PlacementStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::Projection;

#[derive(Debug, Clone, Copy, Default)]
pub struct PlacementQueue;

/// The columns of a [`QueueRow`].
macro_rules! queue_columns {
    () => {
        "placement_id, case_id, case_owner, requested_by, category, needs, priority, \
         origin_kind, origin, requested_at, status, target, offered_at, offer_deadline, \
         hold_deadline, declined_by, vehicle"
    };
}

impl Projection for PlacementQueue {
    const NAME: &'static str = "placement_queue";
    const TABLES: &'static [&'static str] = &["placement_queue", "placement_queue_cases"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    /// Loads the rows a batch touches in two queries, moves them in memory event by
    /// event, and writes them back in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
    ) -> Result<(), sqlx::Error> {
        let mut queue = Queue::load(tx, batch).await?;
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(CaseEvent::Reported { report, .. }) => {
                    queue.reported(aggregate_uuid(event)?, report.health_center_id.as_str());
                }
                DomainEvent::Placement(placement_event) => {
                    queue.apply(aggregate_uuid(event)?, placement_event);
                }
                _ => {}
            }
        }
        queue.write(tx).await
    }
}

/// The rows a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Queue {
    /// `None`: not (or no longer) in the queue.
    rows: HashMap<Uuid, Option<QueueRow>>,
    changed: HashSet<Uuid>,
    /// Owners of cases, and those first reported in this batch.
    owners: HashMap<Uuid, String>,
    reported: Vec<Uuid>,
}

impl Queue {
    /// The batch's placements and those of the cases it reports, and the owners of the
    /// cases it names.
    async fn load(
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
    ) -> Result<Self, sqlx::Error> {
        let (mut placements, mut reported, mut cases) = (Vec::new(), Vec::new(), Vec::new());
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(CaseEvent::Reported { .. }) => {
                    reported.push(aggregate_uuid(event)?);
                    cases.push(aggregate_uuid(event)?);
                }
                DomainEvent::Placement(e) => {
                    placements.push(aggregate_uuid(event)?);
                    if let PlacementEvent::Requested { case_id, .. } = e {
                        cases.push(*case_id);
                    }
                }
                _ => {}
            }
        }
        let mut queue = Self::default();
        if placements.is_empty() && cases.is_empty() {
            return Ok(queue);
        }
        // Two index lookups; an OR would plan as a scan of the whole queue.
        let rows: Vec<QueueRow> = sqlx::query_as(concat!(
            "SELECT ",
            queue_columns!(),
            " FROM placement_queue WHERE placement_id = ANY($1) UNION ALL SELECT ",
            queue_columns!(),
            " FROM placement_queue WHERE case_id = ANY($2)"
        ))
        .bind(&placements)
        .bind(&reported)
        .fetch_all(&mut *tx)
        .await?;
        queue.rows = placements.into_iter().map(|id| (id, None)).collect();
        queue
            .rows
            .extend(rows.into_iter().map(|row| (row.placement_id, Some(row))));
        let owners: Vec<(Uuid, String)> = sqlx::query_as(
            "SELECT case_id, health_center_id FROM placement_queue_cases WHERE case_id = ANY($1)",
        )
        .bind(&cases)
        .fetch_all(&mut *tx)
        .await?;
        queue.owners = owners.into_iter().collect();
        Ok(queue)
    }

    /// A case is reported: its owner, also for its placements that came first (streams
    /// are ordered each on its own).
    fn reported(&mut self, case_id: Uuid, owner: &str) {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.owners.entry(case_id) {
            entry.insert(owner.to_owned());
            self.reported.push(case_id);
        }
        for (id, row) in &mut self.rows {
            if let Some(row) = row
                && row.case_id == case_id
                && row.case_owner.is_none()
            {
                row.case_owner = Some(owner.to_owned());
                self.changed.insert(*id);
            }
        }
    }

    /// Moves a placement's row as the event says; an event for a placement not in the
    /// queue changes nothing.
    fn apply(&mut self, placement_id: Uuid, event: &PlacementEvent) {
        if let PlacementEvent::Requested {
            case_id,
            requested_by,
            category,
            needs,
            priority,
            origin,
            requested_at,
            ..
        } = event
        {
            if matches!(self.rows.get(&placement_id), Some(Some(_))) {
                return;
            }
            let (origin_kind, origin) = crate::origin_columns(origin);
            self.rows.insert(
                placement_id,
                Some(QueueRow {
                    placement_id,
                    case_id: *case_id,
                    case_owner: self.owners.get(case_id).cloned(),
                    requested_by: requested_by.to_string(),
                    category: category.to_string(),
                    needs: needs.iter().map(ToString::to_string).collect(),
                    priority: i32::from(priority.get()),
                    origin_kind: origin_kind.to_owned(),
                    origin,
                    requested_at: *requested_at,
                    status: PlacementStatus::Requested.to_string(),
                    target: None,
                    offered_at: None,
                    offer_deadline: None,
                    hold_deadline: None,
                    declined_by: Vec::new(),
                    vehicle: None,
                }),
            );
            self.changed.insert(placement_id);
            return;
        }
        let Some(Some(row)) = self.rows.get_mut(&placement_id) else {
            return;
        };
        match event {
            PlacementEvent::Requested { .. } | PlacementEvent::Discharged { .. } => return,
            PlacementEvent::Offered {
                target,
                offered_at,
                offer_deadline,
            } => {
                row.status = PlacementStatus::Offered.to_string();
                row.target = Some(target.to_string());
                row.offered_at = Some(*offered_at);
                row.offer_deadline = Some(*offer_deadline);
            }
            PlacementEvent::Accepted { hold_deadline, .. } => {
                row.status = PlacementStatus::Accepted.to_string();
                row.offer_deadline = None;
                row.hold_deadline = Some(*hold_deadline);
            }
            PlacementEvent::Declined { facility, .. }
            | PlacementEvent::OfferExpired { facility, .. } => {
                row.status = PlacementStatus::Requested.to_string();
                row.target = None;
                row.offer_deadline = None;
                if !row.declined_by.iter().any(|f| f == facility.as_str()) {
                    row.declined_by.push(facility.to_string());
                }
            }
            PlacementEvent::TransportArranged(transport) => {
                row.status = PlacementStatus::TransportArranged.to_string();
                row.vehicle = Some(transport.vehicle.to_string());
            }
            PlacementEvent::Departed { .. } => {
                row.status = PlacementStatus::InTransit.to_string();
            }
            PlacementEvent::Arrived { .. } | PlacementEvent::Cancelled { .. } => {
                self.rows.insert(placement_id, None);
            }
        }
        self.changed.insert(placement_id);
    }

    /// Writes the new owners, the changed rows and the removals in one statement.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.changed.is_empty() && self.reported.is_empty() {
            return Ok(());
        }
        let owners: Vec<&str> = self
            .reported
            .iter()
            .map(|case| self.owners.get(case).map_or("", String::as_str))
            .collect();
        let mut removed = Vec::new();
        let mut rows = QueueColumns::default();
        for id in &self.changed {
            match self.rows.get(id) {
                Some(Some(row)) => rows.push(row),
                _ => removed.push(*id),
            }
        }
        sqlx::query(
            "WITH cases AS ( \
               INSERT INTO placement_queue_cases (case_id, health_center_id) \
               SELECT * FROM unnest($1::uuid[], $2::text[]) ON CONFLICT (case_id) DO NOTHING), \
             removed AS ( \
               DELETE FROM placement_queue q USING unnest($3::uuid[]) AS r(id) \
               WHERE q.placement_id = r.id) \
             INSERT INTO placement_queue (placement_id, case_id, case_owner, requested_by, \
               category, needs, priority, origin_kind, origin, requested_at, status, target, \
               offered_at, offer_deadline, hold_deadline, declined_by, vehicle) \
             SELECT p, c, o, rb, cat, ARRAY(SELECT jsonb_array_elements_text(n::jsonb)), pr, \
               ok, org, ra, st, t, oa, od, hd, ARRAY(SELECT jsonb_array_elements_text(d::jsonb)), v \
             FROM unnest($4::uuid[], $5::uuid[], $6::text[], $7::text[], $8::text[], $9::text[], \
               $10::int[], $11::text[], $12::text[], $13::timestamptz[], $14::text[], $15::text[], \
               $16::timestamptz[], $17::timestamptz[], $18::timestamptz[], $19::text[], $20::text[]) \
               AS r(p, c, o, rb, cat, n, pr, ok, org, ra, st, t, oa, od, hd, d, v) \
             ON CONFLICT (placement_id) DO UPDATE SET case_owner = excluded.case_owner, \
               status = excluded.status, target = excluded.target, offered_at = excluded.offered_at, \
               offer_deadline = excluded.offer_deadline, hold_deadline = excluded.hold_deadline, \
               declined_by = excluded.declined_by, vehicle = excluded.vehicle",
        )
        .bind(&self.reported)
        .bind(&owners)
        .bind(&removed)
        .bind(&rows.placement_id)
        .bind(&rows.case_id)
        .bind(&rows.case_owner)
        .bind(&rows.requested_by)
        .bind(&rows.category)
        .bind(&rows.needs)
        .bind(&rows.priority)
        .bind(&rows.origin_kind)
        .bind(&rows.origin)
        .bind(&rows.requested_at)
        .bind(&rows.status)
        .bind(&rows.target)
        .bind(&rows.offered_at)
        .bind(&rows.offer_deadline)
        .bind(&rows.hold_deadline)
        .bind(&rows.declined_by)
        .bind(&rows.vehicle)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Changed rows, column by column, for `unnest`; arrays as JSON, one per row.
#[derive(Debug, Default)]
struct QueueColumns {
    placement_id: Vec<Uuid>,
    case_id: Vec<Uuid>,
    case_owner: Vec<Option<String>>,
    requested_by: Vec<String>,
    category: Vec<String>,
    needs: Vec<String>,
    priority: Vec<i32>,
    origin_kind: Vec<String>,
    origin: Vec<String>,
    requested_at: Vec<OffsetDateTime>,
    status: Vec<String>,
    target: Vec<Option<String>>,
    offered_at: Vec<Option<OffsetDateTime>>,
    offer_deadline: Vec<Option<OffsetDateTime>>,
    hold_deadline: Vec<Option<OffsetDateTime>>,
    declined_by: Vec<String>,
    vehicle: Vec<Option<String>>,
}

impl QueueColumns {
    fn push(&mut self, row: &QueueRow) {
        let json = |values: &[String]| serde_json::Value::from(values.to_vec()).to_string();
        self.placement_id.push(row.placement_id);
        self.case_id.push(row.case_id);
        self.case_owner.push(row.case_owner.clone());
        self.requested_by.push(row.requested_by.clone());
        self.category.push(row.category.clone());
        self.needs.push(json(&row.needs));
        self.priority.push(row.priority);
        self.origin_kind.push(row.origin_kind.clone());
        self.origin.push(row.origin.clone());
        self.requested_at.push(row.requested_at);
        self.status.push(row.status.clone());
        self.target.push(row.target.clone());
        self.offered_at.push(row.offered_at);
        self.offer_deadline.push(row.offer_deadline);
        self.hold_deadline.push(row.hold_deadline);
        self.declined_by.push(json(&row.declined_by));
        self.vehicle.push(row.vehicle.clone());
    }
}

/// One live placement.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct QueueRow {
    pub placement_id: Uuid,
    pub case_id: Uuid,
    pub case_owner: Option<String>,
    pub requested_by: String,
    pub category: String,
    pub needs: Vec<String>,
    pub priority: i32,
    pub origin_kind: String,
    pub origin: String,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    pub status: String,
    pub target: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offer_deadline: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub hold_deadline: Option<OffsetDateTime>,
    pub declined_by: Vec<String>,
    pub vehicle: Option<String>,
}

impl QueueRow {
    /// An accepted bed still held after its deadline, the patient not arrived.
    pub fn hold_overdue(&self, now: OffsetDateTime) -> bool {
        self.hold_deadline.is_some_and(|deadline| deadline < now)
    }
}

/// The queue's rows of `placements` and of every placement of `cases`, of `owner`'s cases
/// (every case when `None`), in no particular order: what a live queue reads again after
/// they changed.
pub async fn rows_of(
    pool: &PgPool,
    owner: Option<&str>,
    placements: &[Uuid],
    cases: &[Uuid],
) -> Result<Vec<QueueRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        queue_columns!(),
        " FROM placement_queue WHERE (placement_id = ANY($2) OR case_id = ANY($3)) \
         AND ($1::text IS NULL OR case_owner = $1)"
    ))
    .bind(owner)
    .bind(placements)
    .bind(cases)
    .fetch_all(pool)
    .await
}

/// Live placements, most urgent first, then longest waiting; only those of cases owned
/// by `owner` when given.
pub async fn rows(pool: &PgPool, owner: Option<&str>) -> Result<Vec<QueueRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        queue_columns!(),
        " FROM placement_queue WHERE $1::text IS NULL OR case_owner = $1 \
         ORDER BY priority, requested_at, placement_id"
    ))
    .bind(owner)
    .fetch_all(pool)
    .await
}
