//! `facility_inbox` (DESIGN.md §6): what a hospital or hotel works from. Offers addressed
//! to it with their deadline, de-identified (age band, sex, severity, needs, origin
//! area); accepted patients on their way, and patients placed through the system, who
//! are identified because the facility accepted them (DESIGN.md §7).
//!
//! One row per placement follows it from its request until the patient leaves the
//! facility; the API shows a facility the rows it is the target of.

pub mod query;

use foldhash::{HashMap, HashSet};

use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct FacilityInbox;

impl Projection for FacilityInbox {
    const NAME: &'static str = "facility_inbox";
    const TABLES: &'static [&'static str] = &["facility_inbox", "facility_inbox_cases"];
    /// Facilities' medical areas (an offer's origin area) are read from `bed_board` when
    /// the inbox is read, so a capacity declaration costs this projection nothing.
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    /// Loads the placements and cases a batch touches in two queries, moves them in
    /// memory event by event, and writes them back in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut inbox = Inbox::load(tx, batch, seen).await?;
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(e) => inbox.apply_case(aggregate_uuid(event)?, e),
                DomainEvent::Placement(e) => inbox.apply_placement(aggregate_uuid(event)?, e),
                DomainEvent::Facility(_)
                | DomainEvent::Consult(_)
                | DomainEvent::Alert(_)
                | DomainEvent::AlertRules(_) => {}
            }
        }
        inbox.write(tx).await
    }
}

/// The columns of a [`Stored`] row.
macro_rules! inbox_columns {
    () => {
        "placement_id, case_id, category, needs, priority, origin_kind, origin, requested_at, \
         status, target, offered_at, offer_deadline, accepted_at, hold_deadline, vehicle, \
         pickup_at, arrived_at"
    };
}

/// Inserts the cases of `$1`..`$8` and `$29`..`$31` (`s`: `$27`, whether the row is
/// stored), filtered by a `WHERE` that follows.
macro_rules! inbox_cases_insert {
    () => {
        "INSERT INTO facility_inbox_cases (case_id, health_center_id, name, name_kana, \
           birth_date, sex, phone, severity, last_spo2, last_observed_at, deteriorated_at) \
         SELECT i, h, n, k, b, x, p, v, o2, oa, da FROM unnest($1::uuid[], $2::text[], \
           $3::text[], $4::text[], $5::date[], $6::text[], $7::text[], $8::text[], \
           $29::int[], $30::timestamptz[], $31::timestamptz[], $27::bool[]) \
           AS c(i, h, n, k, b, x, p, v, o2, oa, da, s)"
    };
}

/// Inserts the rows of `$10`..`$26` (`s`: `$28`), filtered by a `WHERE` that follows.
macro_rules! inbox_insert {
    () => {
        "INSERT INTO facility_inbox (placement_id, case_id, category, needs, priority, \
           origin_kind, origin, requested_at, status, target, offered_at, offer_deadline, \
           accepted_at, hold_deadline, vehicle, pickup_at, arrived_at) \
         SELECT p, c, cat, n::text[], pr, ok, org, ra, st, t, oa, od, aa, hd, v, pa, ar \
         FROM unnest($10::uuid[], $11::uuid[], $12::text[], $13::text[], $14::int[], \
           $15::text[], $16::text[], $17::timestamptz[], $18::text[], $19::text[], \
           $20::timestamptz[], $21::timestamptz[], $22::timestamptz[], $23::timestamptz[], \
           $24::text[], $25::timestamptz[], $26::timestamptz[], $28::bool[]) \
           AS r(p, c, cat, n, pr, ok, org, ra, st, t, oa, od, aa, hd, v, pa, ar, s)"
    };
}

/// A stored row of `facility_inbox`.
#[derive(Debug, Clone, FromRow)]
struct Stored {
    placement_id: Uuid,
    case_id: Uuid,
    category: String,
    needs: Vec<String>,
    priority: i32,
    origin_kind: String,
    origin: String,
    requested_at: OffsetDateTime,
    status: String,
    target: Option<String>,
    offered_at: Option<OffsetDateTime>,
    offer_deadline: Option<OffsetDateTime>,
    accepted_at: Option<OffsetDateTime>,
    hold_deadline: Option<OffsetDateTime>,
    vehicle: Option<String>,
    pickup_at: Option<OffsetDateTime>,
    arrived_at: Option<OffsetDateTime>,
}

/// A stored row of `facility_inbox_cases`.
#[derive(Debug, Clone, FromRow)]
struct CaseFacts {
    case_id: Uuid,
    health_center_id: String,
    name: String,
    name_kana: Option<String>,
    birth_date: Date,
    sex: String,
    phone: Option<String>,
    severity: String,
    /// The last observation, wherever the patient was (DESIGN.md §5.4).
    last_spo2: Option<i32>,
    last_observed_at: Option<OffsetDateTime>,
    /// Flagged as deteriorating since the last triage.
    deteriorated_at: Option<OffsetDateTime>,
}

/// The rows a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Inbox {
    /// `None`: no such placement (any more).
    rows: HashMap<Uuid, Option<Stored>>,
    changed_rows: HashSet<Uuid>,
    cases: HashMap<Uuid, CaseFacts>,
    changed_cases: HashSet<Uuid>,
    /// The placements and cases that have a row: those loaded. Every other row the batch
    /// writes is new, since the batch looked up every id its events touch.
    stored: HashSet<Uuid>,
}

impl Inbox {
    async fn load(
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<Self, sqlx::Error> {
        let (all_cases, placements) = crate::case_and_placement_ids(batch)?;
        let (cases, existing) = (seen.existing(&all_cases), seen.existing(&placements));
        seen.note(&all_cases);
        seen.note(&placements);
        let mut inbox = Self {
            rows: placements.into_iter().map(|id| (id, None)).collect(),
            ..Self::default()
        };
        if !existing.is_empty() {
            let rows: Vec<Stored> = sqlx::query_as(concat!(
                "SELECT ",
                inbox_columns!(),
                " FROM facility_inbox WHERE placement_id = ANY($1)"
            ))
            .bind(&existing)
            .fetch_all(&mut *tx)
            .await?;
            inbox.stored.extend(rows.iter().map(|row| row.placement_id));
            inbox
                .rows
                .extend(rows.into_iter().map(|row| (row.placement_id, Some(row))));
        }
        if !cases.is_empty() {
            let rows: Vec<CaseFacts> = sqlx::query_as(
                "SELECT case_id, health_center_id, name, name_kana, birth_date, sex, phone, \
                 severity, last_spo2, last_observed_at, deteriorated_at \
                 FROM facility_inbox_cases WHERE case_id = ANY($1)",
            )
            .bind(&cases)
            .fetch_all(&mut *tx)
            .await?;
            inbox.stored.extend(rows.iter().map(|c| c.case_id));
            inbox.cases = rows.into_iter().map(|c| (c.case_id, c)).collect();
        }
        Ok(inbox)
    }

    fn apply_case(&mut self, case_id: Uuid, event: &CaseEvent) {
        match event {
            CaseEvent::Reported { report, .. } => {
                if self.cases.contains_key(&case_id) {
                    return;
                }
                self.cases.insert(
                    case_id,
                    CaseFacts {
                        case_id,
                        health_center_id: report.health_center_id.to_string(),
                        name: report.patient.name.to_string(),
                        name_kana: report.patient.name_kana.as_ref().map(ToString::to_string),
                        birth_date: report.patient.birth_date,
                        sex: report.patient.sex.to_string(),
                        phone: report.patient.phone.as_ref().map(ToString::to_string),
                        severity: report.severity.to_string(),
                        last_spo2: None,
                        last_observed_at: None,
                        deteriorated_at: None,
                    },
                );
            }
            CaseEvent::Triaged { severity, .. } => {
                let Some(case) = self.cases.get_mut(&case_id) else {
                    return;
                };
                case.severity = severity.to_string();
                case.deteriorated_at = None;
            }
            CaseEvent::ObservationRecorded(observation) => {
                let Some(case) = self.cases.get_mut(&case_id) else {
                    return;
                };
                // A late-recorded older observation does not replace a newer one.
                if case
                    .last_observed_at
                    .is_some_and(|last| last > observation.observed_at)
                {
                    return;
                }
                case.last_observed_at = Some(observation.observed_at);
                case.last_spo2 = observation.spo2.map(|s| i32::from(s.percent()));
            }
            CaseEvent::DeteriorationFlagged { observed_at, .. } => {
                let Some(case) = self.cases.get_mut(&case_id) else {
                    return;
                };
                case.deteriorated_at = Some(*observed_at);
            }
            _ => return,
        }
        self.changed_cases.insert(case_id);
    }

    fn apply_placement(&mut self, placement_id: Uuid, event: &PlacementEvent) {
        if let PlacementEvent::Requested {
            case_id,
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
                Some(Stored {
                    placement_id,
                    case_id: *case_id,
                    category: category.to_string(),
                    needs: needs.iter().map(ToString::to_string).collect(),
                    priority: i32::from(priority.get()),
                    origin_kind: origin_kind.to_owned(),
                    origin,
                    requested_at: *requested_at,
                    status: "REQUESTED".into(),
                    target: None,
                    offered_at: None,
                    offer_deadline: None,
                    accepted_at: None,
                    hold_deadline: None,
                    vehicle: None,
                    pickup_at: None,
                    arrived_at: None,
                }),
            );
            self.changed_rows.insert(placement_id);
            return;
        }
        let Some(Some(row)) = self.rows.get_mut(&placement_id) else {
            return;
        };
        match event {
            PlacementEvent::Requested { .. } => return,
            PlacementEvent::Offered {
                target,
                offered_at,
                offer_deadline,
            } => {
                row.status = "OFFERED".into();
                row.target = Some(target.to_string());
                row.offered_at = Some(*offered_at);
                row.offer_deadline = Some(*offer_deadline);
            }
            PlacementEvent::Accepted {
                accepted_at,
                hold_deadline,
                ..
            } => {
                row.status = "ACCEPTED".into();
                row.offer_deadline = None;
                row.accepted_at = Some(*accepted_at);
                row.hold_deadline = Some(*hold_deadline);
            }
            PlacementEvent::Declined { .. } | PlacementEvent::OfferExpired { .. } => {
                row.status = "REQUESTED".into();
                row.target = None;
                row.offered_at = None;
                row.offer_deadline = None;
            }
            PlacementEvent::TransportArranged(transport) => {
                row.status = "TRANSPORT_ARRANGED".into();
                row.vehicle = Some(transport.vehicle.to_string());
                row.pickup_at = transport.pickup_at;
            }
            PlacementEvent::Departed { .. } => row.status = "IN_TRANSIT".into(),
            PlacementEvent::Arrived { arrived_at, .. } => {
                row.status = "ARRIVED".into();
                row.hold_deadline = None;
                row.arrived_at = Some(*arrived_at);
            }
            PlacementEvent::Cancelled { .. } | PlacementEvent::Discharged { .. } => {
                self.rows.insert(placement_id, None);
            }
        }
        self.changed_rows.insert(placement_id);
    }

    /// Writes the changed cases and rows, and the removals, in one statement.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.changed_cases.is_empty() && self.changed_rows.is_empty() {
            return Ok(());
        }
        let cases: Vec<&CaseFacts> = self
            .changed_cases
            .iter()
            .filter_map(|id| self.cases.get(id))
            .collect();
        let (mut rows, mut removed) = (Vec::new(), Vec::new());
        for id in &self.changed_rows {
            match self.rows.get(id) {
                Some(Some(row)) => rows.push(row),
                // A row that never reached the table has nothing to remove.
                _ if self.stored.contains(id) => removed.push(*id),
                _ => {}
            }
        }
        let stored = |id: &Uuid| self.stored.contains(id);
        // New rows go in without the conflict check, which costs PostgreSQL about a
        // fifth of each insert; in a rebuild nearly every row is new.
        sqlx::query(concat!(
            "WITH new_cases AS (",
            inbox_cases_insert!(),
            " WHERE NOT s), cases AS (",
            inbox_cases_insert!(),
            " WHERE s ON CONFLICT (case_id) DO UPDATE SET severity = excluded.severity, \
               last_spo2 = excluded.last_spo2, last_observed_at = excluded.last_observed_at, \
               deteriorated_at = excluded.deteriorated_at), \
             removed AS ( \
               DELETE FROM facility_inbox i USING unnest($9::uuid[]) AS r(id) \
               WHERE i.placement_id = r.id), \
             new_rows AS (",
            inbox_insert!(),
            " WHERE NOT s) ",
            inbox_insert!(),
            " WHERE s ON CONFLICT (placement_id) DO UPDATE SET status = excluded.status, \
               target = excluded.target, offered_at = excluded.offered_at, \
               offer_deadline = excluded.offer_deadline, accepted_at = excluded.accepted_at, \
               hold_deadline = excluded.hold_deadline, vehicle = excluded.vehicle, \
               pickup_at = excluded.pickup_at, arrived_at = excluded.arrived_at"
        ))
        .bind(cases.iter().map(|c| c.case_id).collect::<Vec<_>>())
        .bind(
            cases
                .iter()
                .map(|c| c.health_center_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
        .bind(
            cases
                .iter()
                .map(|c| c.name_kana.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(cases.iter().map(|c| c.birth_date).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.sex.as_str()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.phone.as_deref()).collect::<Vec<_>>())
        .bind(
            cases
                .iter()
                .map(|c| c.severity.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(&removed)
        .bind(rows.iter().map(|r| r.placement_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.case_id).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.category.as_str()).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| crate::text_array(&r.needs))
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.origin_kind.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.origin.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.requested_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.status.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.target.as_deref()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.offered_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.offer_deadline).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.accepted_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.hold_deadline).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.vehicle.as_deref())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.pickup_at).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.arrived_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| stored(&c.case_id)).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| stored(&r.placement_id))
                .collect::<Vec<_>>(),
        )
        .bind(cases.iter().map(|c| c.last_spo2).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_observed_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.deteriorated_at).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// One placement addressed to a facility, with the case facts it may see. Identity
/// fields are filled only once the facility accepted the patient.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct InboxRow {
    pub placement_id: Uuid,
    pub case_id: Uuid,
    pub target: String,
    pub status: String,
    pub category: String,
    pub needs: Vec<String>,
    pub priority: i32,
    pub origin_kind: String,
    /// The origin facility of a transfer; for a patient at home, the municipality.
    pub origin: String,
    /// The health center that owns the case.
    pub health_center_id: String,
    /// The medical area of the origin facility, else of the owning health center.
    pub origin_area: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub requested_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offer_deadline: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub hold_deadline: Option<OffsetDateTime>,
    pub vehicle: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub pickup_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub arrived_at: Option<OffsetDateTime>,
    pub sex: String,
    pub severity: String,
    #[serde(with = "crate::iso_date")]
    pub birth_date: Date,
    pub name: String,
    pub name_kana: Option<String>,
    pub phone: Option<String>,
    pub last_spo2: Option<i32>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_observed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deteriorated_at: Option<OffsetDateTime>,
    /// For a patient placed here: the live placement that moves them on from here
    /// (escalation, step-down, transfer), its status and its target.
    pub moving_on: Option<Uuid>,
    pub moving_on_status: Option<String>,
    pub moving_on_target: Option<String>,
}

/// Whether any of `placements`, or any placement of `cases`, is among the rows [`rows`]
/// gives `facility`.
pub async fn concerns(
    pool: &PgPool,
    facility: &str,
    placements: &[Uuid],
    cases: &[Uuid],
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM facility_inbox \
           WHERE ((target = $1 AND status <> 'REQUESTED') \
                  OR (origin_kind = 'FACILITY' AND origin = $1)) \
             AND (placement_id = ANY($2) OR case_id = ANY($3)))",
    )
    .bind(facility)
    .bind(placements)
    .bind(cases)
    .fetch_one(pool)
    .await
}

/// The placements addressed to `facility` (any facility when `None`): offers first by
/// deadline, then accepted inbound, then placed patients. Joined here rather than when
/// applied, because the case's, the facilities' and the placement's streams reach the
/// projection each in its own order. The origin area is the origin facility's for a
/// transfer, the owning health center's otherwise.
pub async fn rows(pool: &PgPool, facility: Option<&str>) -> Result<Vec<InboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.placement_id, i.case_id, i.target, i.status, i.category, i.needs, i.priority, \
         i.origin_kind, i.origin, c.health_center_id, \
         coalesce(CASE WHEN i.origin_kind = 'FACILITY' THEN \
                    (SELECT medical_area FROM bed_board_facilities WHERE facility_id = i.origin) END, \
                  (SELECT medical_area FROM bed_board_facilities \
                   WHERE facility_id = c.health_center_id)) AS origin_area, \
         i.requested_at, i.offered_at, i.offer_deadline, \
         i.accepted_at, i.hold_deadline, i.vehicle, i.pickup_at, i.arrived_at, \
         c.sex, c.severity, c.birth_date, c.name, c.name_kana, c.phone, \
         c.last_spo2, c.last_observed_at, c.deteriorated_at, \
         m.placement_id AS moving_on, m.status AS moving_on_status, m.target AS moving_on_target \
         FROM facility_inbox i JOIN facility_inbox_cases c USING (case_id) \
         LEFT JOIN LATERAL (SELECT o.placement_id, o.status, o.target FROM facility_inbox o \
           WHERE i.status = 'ARRIVED' AND o.case_id = i.case_id \
             AND o.origin_kind = 'FACILITY' AND o.origin = i.target \
             AND o.placement_id <> i.placement_id AND o.status <> 'ARRIVED' \
           ORDER BY o.requested_at DESC LIMIT 1) m ON true \
         WHERE i.target IS NOT NULL AND i.status <> 'REQUESTED' \
           AND ($1::text IS NULL OR i.target = $1) \
         ORDER BY CASE i.status WHEN 'OFFERED' THEN 0 WHEN 'ARRIVED' THEN 2 ELSE 1 END, \
                  i.offer_deadline, i.priority, i.requested_at, i.placement_id",
    )
    .bind(facility)
    .fetch_all(pool)
    .await
}
