//! `timeline` (DESIGN.md §6): the ordered history of one case or placement: each event,
//! who acted, and when. It names facilities and statuses, never patient data; who may
//! read which timeline is kept alongside (`timeline_subjects`).

use std::collections::{HashMap, HashSet};

use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::{Origin, PlacementEvent};
use noroshi_domain::values::CaseStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::Projection;

#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline;

impl Projection for Timeline {
    const NAME: &'static str = "timeline";
    const TABLES: &'static [&'static str] = &["timeline_events", "timeline_subjects"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    /// Loads the subjects the batch touches in one query, moves them in memory, and
    /// writes them back with the batch's entries in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
    ) -> Result<(), sqlx::Error> {
        let mut subjects = Subjects::load(tx, events).await?;
        let mut entries = Entries::default();
        for (event, decoded) in events {
            let (case_id, placement_id, facility, status) = match decoded {
                DomainEvent::Facility(_) => continue,
                DomainEvent::Case(case_event) => {
                    let case_id = aggregate_uuid(event)?;
                    let (facility, status) = subjects.case_facts(case_id, case_event);
                    (Some(case_id), None, facility, status)
                }
                DomainEvent::Placement(placement_event) => {
                    let placement_id = aggregate_uuid(event)?;
                    let (facility, status) =
                        subjects.placement_facts(placement_id, placement_event);
                    let case_id = subjects.case_of(placement_id);
                    (case_id, Some(placement_id), facility, status)
                }
            };
            entries.push(event, case_id, placement_id, facility, status);
        }
        write(tx, &subjects, &entries).await
    }
}

/// A stored row of `timeline_subjects`.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
struct SubjectRow {
    subject_id: Uuid,
    kind: String,
    case_id: Uuid,
    case_owner: Option<String>,
    facilities: Vec<String>,
}

/// The subjects a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Subjects {
    rows: HashMap<Uuid, SubjectRow>,
    changed: HashSet<Uuid>,
}

impl Subjects {
    /// The subjects of the batch's cases and placements, and the cases of those
    /// placements, in one query.
    async fn load(
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
    ) -> Result<Self, sqlx::Error> {
        let mut ids = Vec::new();
        for (event, decoded) in events {
            match decoded {
                DomainEvent::Facility(_) => {}
                DomainEvent::Case(_) => ids.push(aggregate_uuid(event)?),
                DomainEvent::Placement(e) => {
                    ids.push(aggregate_uuid(event)?);
                    if let PlacementEvent::Requested { case_id, .. } = e {
                        ids.push(*case_id);
                    }
                }
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let rows: Vec<SubjectRow> = sqlx::query_as(
            // Two index lookups; an OR would plan as a scan of every subject.
            "SELECT subject_id, kind, case_id, case_owner, facilities FROM timeline_subjects \
             WHERE subject_id = ANY($1) \
             UNION ALL \
             SELECT c.subject_id, c.kind, c.case_id, c.case_owner, c.facilities \
             FROM timeline_subjects p JOIN timeline_subjects c ON c.subject_id = p.case_id \
             WHERE p.subject_id = ANY($1)",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        Ok(Self {
            rows: rows.into_iter().map(|row| (row.subject_id, row)).collect(),
            changed: HashSet::new(),
        })
    }

    fn get_mut(&mut self, subject_id: Uuid) -> Option<&mut SubjectRow> {
        let row = self.rows.get_mut(&subject_id)?;
        self.changed.insert(subject_id);
        Some(row)
    }

    fn insert(&mut self, row: SubjectRow) {
        self.changed.insert(row.subject_id);
        self.rows.insert(row.subject_id, row);
    }

    /// The case of a placement, as its request recorded it.
    fn case_of(&self, placement_id: Uuid) -> Option<Uuid> {
        self.rows.get(&placement_id).map(|row| row.case_id)
    }

    /// Adds `facility` to those involved in `subject`.
    fn involve(&mut self, subject_id: Uuid, facility: &str) {
        if let Some(row) = self.rows.get(&subject_id)
            && !row.facilities.iter().any(|f| f == facility)
            && let Some(row) = self.get_mut(subject_id)
        {
            row.facilities.push(facility.to_owned());
        }
    }

    fn case_facts(&mut self, case_id: Uuid, event: &CaseEvent) -> (Option<String>, Option<String>) {
        match event {
            CaseEvent::Reported { report, .. } => {
                let owner = report.health_center_id.to_string();
                match self.get_mut(case_id) {
                    Some(row) => row.case_owner = Some(owner.clone()),
                    None => self.insert(SubjectRow {
                        subject_id: case_id,
                        kind: "CASE".into(),
                        case_id,
                        case_owner: Some(owner.clone()),
                        facilities: Vec::new(),
                    }),
                }
                (Some(owner), Some(CaseStatus::Reported.to_string()))
            }
            CaseEvent::HomeCareStarted { .. } => (None, Some(CaseStatus::HomeCare.to_string())),
            CaseEvent::StatusChanged {
                to, facility_id, ..
            } => (
                facility_id.as_ref().map(ToString::to_string),
                Some(to.to_string()),
            ),
            CaseEvent::Closed { outcome, .. } => {
                (None, Some(CaseStatus::from(*outcome).to_string()))
            }
            CaseEvent::Triaged { .. }
            | CaseEvent::PriorityOverridden { .. }
            | CaseEvent::ObservationRecorded(_)
            | CaseEvent::DeteriorationFlagged { .. } => (None, None),
        }
    }

    fn placement_facts(
        &mut self,
        placement_id: Uuid,
        event: &PlacementEvent,
    ) -> (Option<String>, Option<String>) {
        let (facility, status) = match event {
            PlacementEvent::Requested {
                case_id, origin, ..
            } => {
                let from = match origin {
                    Origin::Facility(facility) => vec![facility.to_string()],
                    Origin::Home(_) => Vec::new(),
                };
                if !self.rows.contains_key(&placement_id) {
                    self.insert(SubjectRow {
                        subject_id: placement_id,
                        kind: "PLACEMENT".into(),
                        case_id: *case_id,
                        case_owner: None,
                        facilities: from.clone(),
                    });
                }
                return (from.into_iter().next(), Some("REQUESTED".to_owned()));
            }
            PlacementEvent::Offered { target, .. } => {
                self.involve(placement_id, target.as_str());
                (Some(target), "OFFERED")
            }
            PlacementEvent::Accepted { facility, .. } => {
                // Accepting the patient opens the case's history to the facility too. The
                // case's own row may not be there yet: its stream has an order of its own.
                if let Some(case_id) = self.case_of(placement_id) {
                    if self.rows.contains_key(&case_id) {
                        self.involve(case_id, facility.as_str());
                    } else {
                        self.insert(SubjectRow {
                            subject_id: case_id,
                            kind: "CASE".into(),
                            case_id,
                            case_owner: None,
                            facilities: vec![facility.to_string()],
                        });
                    }
                }
                (Some(facility), "ACCEPTED")
            }
            PlacementEvent::Declined { facility, .. }
            | PlacementEvent::OfferExpired { facility, .. } => (Some(facility), "REQUESTED"),
            PlacementEvent::TransportArranged(_) => (None, "TRANSPORT_ARRANGED"),
            PlacementEvent::Departed { .. } => (None, "IN_TRANSIT"),
            PlacementEvent::Arrived { facility, .. } => (Some(facility), "ARRIVED"),
            PlacementEvent::Cancelled { .. } => (None, "CANCELLED"),
            PlacementEvent::Discharged { facility, .. } => (Some(facility), "DISCHARGED"),
        };
        (facility.map(ToString::to_string), Some(status.to_owned()))
    }
}

/// A batch's entries, column by column, for `unnest`.
#[derive(Debug, Default)]
struct Entries {
    position: Vec<i64>,
    stream_id: Vec<String>,
    version: Vec<i64>,
    case_id: Vec<Option<Uuid>>,
    placement_id: Vec<Option<Uuid>>,
    event_type: Vec<String>,
    actor: Vec<String>,
    correlation_id: Vec<Uuid>,
    occurred_at: Vec<OffsetDateTime>,
    recorded_at: Vec<OffsetDateTime>,
    facility_id: Vec<Option<String>>,
    status: Vec<Option<String>>,
}

impl Entries {
    fn push(
        &mut self,
        event: &RecordedEvent,
        case_id: Option<Uuid>,
        placement_id: Option<Uuid>,
        facility: Option<String>,
        status: Option<String>,
    ) {
        let event_type = event
            .event_type
            .rsplit_once('.')
            .map_or(event.event_type.as_str(), |(_, name)| name);
        self.position
            .push(i64::try_from(event.position).unwrap_or(i64::MAX));
        self.stream_id.push(event.stream_id.to_string());
        self.version
            .push(i64::try_from(event.version).unwrap_or(i64::MAX));
        self.case_id.push(case_id);
        self.placement_id.push(placement_id);
        self.event_type.push(event_type.to_owned());
        self.actor.push(event.actor.clone());
        self.correlation_id.push(event.correlation_id);
        self.occurred_at.push(event.occurred_at);
        self.recorded_at.push(event.recorded_at);
        self.facility_id.push(facility);
        self.status.push(status);
    }
}

/// Writes the changed subjects and the entries in one statement.
async fn write(
    tx: &mut PgConnection,
    subjects: &Subjects,
    entries: &Entries,
) -> Result<(), sqlx::Error> {
    let changed: Vec<&SubjectRow> = subjects
        .changed
        .iter()
        .filter_map(|id| subjects.rows.get(id))
        .collect();
    if changed.is_empty() && entries.position.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = changed.iter().map(|s| s.subject_id).collect();
    let kinds: Vec<&str> = changed.iter().map(|s| s.kind.as_str()).collect();
    let cases: Vec<Uuid> = changed.iter().map(|s| s.case_id).collect();
    let owners: Vec<Option<&str>> = changed.iter().map(|s| s.case_owner.as_deref()).collect();
    // Each subject's facilities as a JSON array: unnest cannot take an array per row.
    let facilities: Vec<String> = changed
        .iter()
        .map(|s| serde_json::Value::from(s.facilities.clone()).to_string())
        .collect();
    sqlx::query(
        "WITH subjects AS ( \
           INSERT INTO timeline_subjects (subject_id, kind, case_id, case_owner, facilities) \
           SELECT i, k, c, o, ARRAY(SELECT jsonb_array_elements_text(f::jsonb)) \
           FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[]) AS t(i, k, c, o, f) \
           ON CONFLICT (subject_id) DO UPDATE SET kind = excluded.kind, case_id = excluded.case_id, \
             case_owner = excluded.case_owner, facilities = excluded.facilities) \
         INSERT INTO timeline_events (position, stream_id, version, case_id, placement_id, \
           event_type, actor, correlation_id, occurred_at, recorded_at, facility_id, status) \
         SELECT * FROM unnest($6::bigint[], $7::text[], $8::bigint[], $9::uuid[], $10::uuid[], \
           $11::text[], $12::text[], $13::uuid[], $14::timestamptz[], $15::timestamptz[], \
           $16::text[], $17::text[]) \
         ON CONFLICT (position) DO NOTHING",
    )
    .bind(&ids)
    .bind(&kinds)
    .bind(&cases)
    .bind(&owners)
    .bind(&facilities)
    .bind(&entries.position)
    .bind(&entries.stream_id)
    .bind(&entries.version)
    .bind(&entries.case_id)
    .bind(&entries.placement_id)
    .bind(&entries.event_type)
    .bind(&entries.actor)
    .bind(&entries.correlation_id)
    .bind(&entries.occurred_at)
    .bind(&entries.recorded_at)
    .bind(&entries.facility_id)
    .bind(&entries.status)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One entry of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct TimelineEntry {
    pub position: i64,
    pub stream_id: String,
    pub version: i64,
    pub event_type: String,
    /// The principal whose command appended the event (`system:…` for the timers).
    pub actor: String,
    pub correlation_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    pub facility_id: Option<String>,
    pub status: Option<String>,
}

/// Whose timeline it is, and who is involved.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Subject {
    pub kind: String,
    pub case_id: Uuid,
    pub case_owner: Option<String>,
    pub facilities: Vec<String>,
}

/// The subject; a placement's owner is its case's.
pub async fn subject(pool: &PgPool, subject_id: Uuid) -> Result<Option<Subject>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.kind, s.case_id, c.case_owner, s.facilities FROM timeline_subjects s \
         LEFT JOIN timeline_subjects c ON c.subject_id = s.case_id \
         WHERE s.subject_id = $1",
    )
    .bind(subject_id)
    .fetch_optional(pool)
    .await
}

/// A page of the history of a case (with its placements) or of one placement, in order.
pub async fn entries(
    pool: &PgPool,
    subject_id: Uuid,
    kind: &str,
    after_position: i64,
    limit: i64,
) -> Result<Vec<TimelineEntry>, sqlx::Error> {
    let column = if kind == "CASE" {
        "case_id"
    } else {
        "placement_id"
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT position, stream_id, version, event_type, actor, correlation_id, occurred_at, \
         recorded_at, facility_id, status FROM timeline_events \
         WHERE {column} = $1 AND position > $2 ORDER BY position LIMIT $3"
    )))
    .bind(subject_id)
    .bind(after_position)
    .bind(limit)
    .fetch_all(pool)
    .await
}
