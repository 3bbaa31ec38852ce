//! `placement_queue` (DESIGN.md §6): live placements ordered by priority, then waiting
//! time, with their state, current offer and its deadline, the facilities that declined,
//! and holds past their deadline.
//!
//! Each row moves exactly as `noroshi_domain::placement::Placement::evolve` moves the
//! placement's record; a placement leaves the queue when it is no longer live (arrived
//! or cancelled). Its priority is the case's current one, as `Case::evolve` keeps it: a
//! new triage or an HQ override moves the case's live placement in the queue.

pub mod query;

use foldhash::{HashMap, HashSet};

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
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct PlacementQueue;

/// The columns of a [`QueueRow`].
macro_rules! queue_columns {
    () => {
        "placement_id, case_id, case_owner, requested_by, category, needs, priority, \
         priority_overridden, priority_reason, origin_kind, origin, requested_at, status, target, offered_at, \
         offer_deadline, hold_deadline, declined_by, vehicle, pickup_at, offer_expired_at"
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
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut queue = Queue::load(tx, batch, seen).await?;
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(case_event) => {
                    queue.case(aggregate_uuid(event)?, case_event);
                }
                DomainEvent::Placement(placement_event) => {
                    queue.apply(aggregate_uuid(event)?, placement_event);
                }
                _ => {}
            }
        }
        queue.follow_cases();
        queue.write(tx).await
    }
}

/// Inserts the cases of `$1`..`$5` and `$28` (`s`: `$26`, whether the row is stored),
/// filtered by a `WHERE` that follows.
macro_rules! queue_cases_insert {
    () => {
        "INSERT INTO placement_queue_cases (case_id, health_center_id, priority, \
           priority_overridden, priority_reason, deteriorated_at) \
         SELECT i, h, p, o, r, d FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bool[], \
           $5::text[], $28::timestamptz[], $26::bool[]) AS c(i, h, p, o, r, d, s)"
    };
}

/// Inserts the rows of `$7`..`$25`, `$29` and `$30` (`s`: `$27`), filtered by a `WHERE`
/// that follows.
macro_rules! queue_insert {
    () => {
        "INSERT INTO placement_queue (placement_id, case_id, case_owner, requested_by, \
           category, needs, priority, priority_overridden, priority_reason, origin_kind, \
           origin, requested_at, status, target, offered_at, offer_deadline, hold_deadline, \
           declined_by, vehicle, pickup_at, offer_expired_at) \
         SELECT p, c, o, rb, cat, n::text[], pr, po, prr, ok, org, ra, st, t, oa, od, hd, \
           d::text[], v, pu, oe \
         FROM unnest($7::uuid[], $8::uuid[], $9::text[], $10::text[], $11::text[], \
           $12::text[], $13::int[], $14::bool[], $15::text[], $16::text[], $17::text[], \
           $18::timestamptz[], $19::text[], $20::text[], $21::timestamptz[], \
           $22::timestamptz[], $23::timestamptz[], $24::text[], $25::text[], \
           $29::timestamptz[], $30::timestamptz[], $27::bool[]) \
           AS r(p, c, o, rb, cat, n, pr, po, prr, ok, org, ra, st, t, oa, od, hd, d, v, pu, \
             oe, s)"
    };
}

/// What the queue keeps of a case: who owns it, its current priority and, when HQ set it,
/// the reason HQ gave; and when an observation last flagged it as deteriorating (until a
/// new triage).
#[derive(Debug, FromRow)]
struct CaseRow {
    case_id: Uuid,
    health_center_id: String,
    priority: Option<i32>,
    priority_overridden: bool,
    priority_reason: Option<String>,
    deteriorated_at: Option<OffsetDateTime>,
}

/// The rows a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Queue {
    /// `None`: not (or no longer) in the queue.
    rows: HashMap<Uuid, Option<QueueRow>>,
    changed: HashSet<Uuid>,
    /// The cases the batch names, and those of them it reports or re-prioritises.
    cases: HashMap<Uuid, CaseRow>,
    changed_cases: HashSet<Uuid>,
    /// The placements and cases that have a row: those loaded. Every other row the batch
    /// writes is new, since the batch looked up every id its events touch.
    stored: HashSet<Uuid>,
}

/// Whether the queue follows a case event: its report, what changes its priority, and
/// a deterioration.
fn followed(event: &CaseEvent) -> bool {
    matches!(
        event,
        CaseEvent::Reported { .. }
            | CaseEvent::Triaged { .. }
            | CaseEvent::PriorityOverridden { .. }
            | CaseEvent::DeteriorationFlagged { .. }
    )
}

impl Queue {
    /// The batch's placements and those of the cases it reports or re-prioritises, and
    /// the cases it names.
    async fn load(
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<Self, sqlx::Error> {
        let (mut placements, mut moved, mut cases) = (Vec::new(), Vec::new(), Vec::new());
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(e) if followed(e) => {
                    moved.push(aggregate_uuid(event)?);
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
        let (existing, moved_existing, cases_existing) = (
            seen.existing(&placements),
            seen.existing(&moved),
            seen.existing(&cases),
        );
        seen.note(&placements);
        seen.note(&cases);
        // Two index lookups; an OR would plan as a scan of the whole queue.
        let rows: Vec<QueueRow> = sqlx::query_as(concat!(
            "SELECT ",
            queue_columns!(),
            " FROM placement_queue WHERE placement_id = ANY($1) UNION ALL SELECT ",
            queue_columns!(),
            " FROM placement_queue WHERE case_id = ANY($2)"
        ))
        .bind(&existing)
        .bind(&moved_existing)
        .fetch_all(&mut *tx)
        .await?;
        queue.rows = placements.into_iter().map(|id| (id, None)).collect();
        queue.stored.extend(rows.iter().map(|row| row.placement_id));
        queue
            .rows
            .extend(rows.into_iter().map(|row| (row.placement_id, Some(row))));
        let known: Vec<CaseRow> = sqlx::query_as(
            "SELECT case_id, health_center_id, priority, priority_overridden, priority_reason, \
             deteriorated_at FROM placement_queue_cases WHERE case_id = ANY($1)",
        )
        .bind(&cases_existing)
        .fetch_all(&mut *tx)
        .await?;
        queue.stored.extend(known.iter().map(|case| case.case_id));
        queue.cases = known.into_iter().map(|case| (case.case_id, case)).collect();
        Ok(queue)
    }

    /// A case is reported, triaged anew or its priority overridden by HQ: its owner and
    /// priority, which [`Self::follow_cases`] then gives its placements, also those that
    /// came first (streams are ordered each on its own). Other case events change nothing
    /// here.
    fn case(&mut self, case_id: Uuid, event: &CaseEvent) {
        if let CaseEvent::DeteriorationFlagged { observed_at, .. } = event {
            if let Some(case) = self.cases.get_mut(&case_id) {
                case.deteriorated_at = Some(*observed_at);
                self.changed_cases.insert(case_id);
            }
            return;
        }
        let (priority, reason) = match event {
            CaseEvent::Reported {
                report, priority, ..
            } => {
                self.cases.entry(case_id).or_insert_with(|| CaseRow {
                    case_id,
                    health_center_id: report.health_center_id.to_string(),
                    priority: None,
                    priority_overridden: false,
                    priority_reason: None,
                    deteriorated_at: None,
                });
                (*priority, None)
            }
            CaseEvent::Triaged { priority, .. } => {
                // A new triage takes the deterioration into account.
                if let Some(case) = self.cases.get_mut(&case_id) {
                    case.deteriorated_at = None;
                }
                (*priority, None)
            }
            CaseEvent::PriorityOverridden {
                priority, reason, ..
            } => (*priority, Some(reason.to_string())),
            _ => return,
        };
        // A case event always follows the case's report in its stream.
        let Some(case) = self.cases.get_mut(&case_id) else {
            return;
        };
        case.priority = Some(i32::from(priority.get()));
        case.priority_overridden = reason.is_some();
        case.priority_reason = reason;
        self.changed_cases.insert(case_id);
    }

    /// Gives the rows of every case the batch reported or re-prioritised that case's owner
    /// and its priority as the batch left it: one pass over the rows after the batch,
    /// however many case events it held. (A row requested within the batch took its case's
    /// priority of that moment, and the case's later events change it here.)
    fn follow_cases(&mut self) {
        for (id, row) in &mut self.rows {
            let Some(row) = row else { continue };
            if !self.changed_cases.contains(&row.case_id) {
                continue;
            }
            let Some(case) = self.cases.get(&row.case_id) else {
                continue;
            };
            let Some(priority) = case.priority else {
                continue;
            };
            row.case_owner = Some(case.health_center_id.clone());
            row.priority = priority;
            row.priority_overridden = case.priority_overridden;
            row.priority_reason.clone_from(&case.priority_reason);
            self.changed.insert(*id);
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
            // The case's priority as the queue knows it; the request's own when its case
            // has not been seen yet.
            let case = self.cases.get(case_id);
            let priority = case
                .and_then(|case| case.priority)
                .unwrap_or(i32::from(priority.get()));
            self.rows.insert(
                placement_id,
                Some(QueueRow {
                    placement_id,
                    case_id: *case_id,
                    case_owner: case.map(|case| case.health_center_id.clone()),
                    requested_by: requested_by.to_string(),
                    category: category.to_string(),
                    needs: needs.iter().map(ToString::to_string).collect(),
                    priority,
                    priority_overridden: case.is_some_and(|case| case.priority_overridden),
                    priority_reason: case.and_then(|case| case.priority_reason.clone()),
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
                    pickup_at: None,
                    offer_expired_at: None,
                    deteriorated_at: case.and_then(|case| case.deteriorated_at),
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
                row.offer_expired_at = None;
            }
            PlacementEvent::Accepted { hold_deadline, .. } => {
                row.status = PlacementStatus::Accepted.to_string();
                row.offer_deadline = None;
                row.hold_deadline = Some(*hold_deadline);
            }
            PlacementEvent::Declined { facility, .. }
            | PlacementEvent::OfferExpired { facility, .. } => {
                if let PlacementEvent::OfferExpired { offer_deadline, .. } = event {
                    row.offer_expired_at = Some(*offer_deadline);
                }
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
                row.pickup_at = transport.pickup_at;
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

    /// Writes the changed cases, the changed rows and the removals in one statement.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.changed.is_empty() && self.changed_cases.is_empty() {
            return Ok(());
        }
        let (mut case_ids, mut owners, mut priorities, mut overridden, mut reasons) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut deteriorated = Vec::new();
        let mut cases_stored = Vec::new();
        for id in &self.changed_cases {
            if let Some(case) = self.cases.get(id) {
                case_ids.push(*id);
                cases_stored.push(self.stored.contains(id));
                owners.push(case.health_center_id.as_str());
                priorities.push(case.priority);
                overridden.push(case.priority_overridden);
                reasons.push(case.priority_reason.as_deref());
                deteriorated.push(case.deteriorated_at);
            }
        }
        let mut removed = Vec::new();
        let mut rows = QueueColumns::default();
        let mut rows_stored = Vec::new();
        for id in &self.changed {
            match self.rows.get(id) {
                Some(Some(row)) => {
                    rows.push(row);
                    rows_stored.push(self.stored.contains(id));
                }
                // A row that never reached the table has nothing to remove.
                _ if self.stored.contains(id) => removed.push(*id),
                _ => {}
            }
        }
        // New rows go in without the conflict check, which costs PostgreSQL about a
        // fifth of each insert; in a rebuild nearly every row is new.
        sqlx::query(concat!(
            "WITH new_cases AS (",
            queue_cases_insert!(),
            " WHERE NOT s), cases AS (",
            queue_cases_insert!(),
            " WHERE s ON CONFLICT (case_id) DO UPDATE SET priority = excluded.priority, \
                 priority_overridden = excluded.priority_overridden, \
                 priority_reason = excluded.priority_reason, \
                 deteriorated_at = excluded.deteriorated_at), \
             removed AS ( \
               DELETE FROM placement_queue q USING unnest($6::uuid[]) AS r(id) \
               WHERE q.placement_id = r.id), \
             new_rows AS (",
            queue_insert!(),
            " WHERE NOT s) ",
            queue_insert!(),
            " WHERE s ON CONFLICT (placement_id) DO UPDATE SET case_owner = excluded.case_owner, \
               priority = excluded.priority, priority_overridden = excluded.priority_overridden, \
               priority_reason = excluded.priority_reason, \
               status = excluded.status, target = excluded.target, offered_at = excluded.offered_at, \
               offer_deadline = excluded.offer_deadline, hold_deadline = excluded.hold_deadline, \
               declined_by = excluded.declined_by, vehicle = excluded.vehicle, \
               pickup_at = excluded.pickup_at, offer_expired_at = excluded.offer_expired_at"
        ))
        .bind(&case_ids)
        .bind(&owners)
        .bind(&priorities)
        .bind(&overridden)
        .bind(&reasons)
        .bind(&removed)
        .bind(&rows.placement_id)
        .bind(&rows.case_id)
        .bind(&rows.case_owner)
        .bind(&rows.requested_by)
        .bind(&rows.category)
        .bind(&rows.needs)
        .bind(&rows.priority)
        .bind(&rows.priority_overridden)
        .bind(&rows.priority_reason)
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
        .bind(&cases_stored)
        .bind(&rows_stored)
        .bind(&deteriorated)
        .bind(&rows.pickup_at)
        .bind(&rows.offer_expired_at)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Changed rows, column by column, for `unnest`; arrays as literals, one per row.
#[derive(Debug, Default)]
struct QueueColumns {
    placement_id: Vec<Uuid>,
    case_id: Vec<Uuid>,
    case_owner: Vec<Option<String>>,
    requested_by: Vec<String>,
    category: Vec<String>,
    needs: Vec<String>,
    priority: Vec<i32>,
    priority_overridden: Vec<bool>,
    priority_reason: Vec<Option<String>>,
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
    pickup_at: Vec<Option<OffsetDateTime>>,
    offer_expired_at: Vec<Option<OffsetDateTime>>,
}

impl QueueColumns {
    fn push(&mut self, row: &QueueRow) {
        self.placement_id.push(row.placement_id);
        self.case_id.push(row.case_id);
        self.case_owner.push(row.case_owner.clone());
        self.requested_by.push(row.requested_by.clone());
        self.category.push(row.category.clone());
        self.needs.push(crate::text_array(&row.needs));
        self.priority.push(row.priority);
        self.priority_overridden.push(row.priority_overridden);
        self.priority_reason.push(row.priority_reason.clone());
        self.origin_kind.push(row.origin_kind.clone());
        self.origin.push(row.origin.clone());
        self.requested_at.push(row.requested_at);
        self.status.push(row.status.clone());
        self.target.push(row.target.clone());
        self.offered_at.push(row.offered_at);
        self.offer_deadline.push(row.offer_deadline);
        self.hold_deadline.push(row.hold_deadline);
        self.declined_by.push(crate::text_array(&row.declined_by));
        self.vehicle.push(row.vehicle.clone());
        self.pickup_at.push(row.pickup_at);
        self.offer_expired_at.push(row.offer_expired_at);
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
    /// The case's current priority (1 most urgent … 5), which HQ may have overridden.
    pub priority: i32,
    pub priority_overridden: bool,
    /// The reason HQ gave for its override (free text: the queue's readers, HQ and the
    /// case's own health center, may read it).
    pub priority_reason: Option<String>,
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
    /// When the transport is to pick the patient up, once arranged.
    #[serde(with = "time::serde::rfc3339::option")]
    pub pickup_at: Option<OffsetDateTime>,
    /// The deadline of the offer that last expired unanswered, until the next offer.
    #[serde(with = "time::serde::rfc3339::option")]
    pub offer_expired_at: Option<OffsetDateTime>,
    /// When an observation last flagged the case as deteriorating, until a new triage
    /// (read from the case; not a column of the row).
    #[sqlx(default)]
    #[serde(with = "time::serde::rfc3339::option")]
    pub deteriorated_at: Option<OffsetDateTime>,
}

impl QueueRow {
    /// An accepted bed still held after its deadline, the patient not arrived.
    pub fn hold_overdue(&self, now: OffsetDateTime) -> bool {
        self.hold_deadline.is_some_and(|deadline| deadline < now)
    }
}

/// The case's deterioration, beside a row's columns.
macro_rules! deteriorated_at {
    () => {
        ", (SELECT c.deteriorated_at FROM placement_queue_cases c \
           WHERE c.case_id = placement_queue.case_id) AS deteriorated_at"
    };
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
        deteriorated_at!(),
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
        deteriorated_at!(),
        " FROM placement_queue WHERE $1::text IS NULL OR case_owner = $1 \
         ORDER BY priority, requested_at, placement_id"
    ))
    .bind(owner)
    .fetch_all(pool)
    .await
}
