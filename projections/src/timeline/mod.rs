//! `timeline` (DESIGN.md §6): the ordered history of one case or placement: each event,
//! who acted, and when. It names facilities and statuses, never patient data.
//!
//! The history is the event store's own. This projection keeps who may read which
//! timeline (`timeline_subjects`: a case's owner, the facilities involved, the case of
//! each placement) and, as every projection does, the version of each stream it has
//! applied. A timeline is the events of its subject's streams (a case's own and its
//! placements'), each up to that version, so it shows exactly what the projection has
//! seen: a read with `min_versions` waits for it as for any view, and a rebuild writes
//! one row per case and placement rather than a copy of every event.

pub mod query;

use foldhash::{HashMap, HashSet};

use noroshi_domain::alert::AlertEvent;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::{Origin, PlacementEvent};
use noroshi_domain::values::CaseStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::{RecordedEvent, StreamId};
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct Timeline;

impl Projection for Timeline {
    const NAME: &'static str = "timeline";
    const TABLES: &'static [&'static str] = &["timeline_subjects"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT, streams::ALERT];

    /// Loads the subjects the batch touches in one query, moves them in memory, and
    /// writes back those that changed in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut subjects = Subjects::load(tx, events, seen).await?;
        for (event, decoded) in events {
            match decoded {
                DomainEvent::Case(CaseEvent::Reported { report, .. }) => {
                    subjects.reported(aggregate_uuid(event)?, report.health_center_id.as_str());
                }
                // A care site reads the history of the patient in its care, a consult
                // center that of a patient it took a consult of.
                DomainEvent::Case(
                    CaseEvent::CareSiteAssigned {
                        care_site: Some(site),
                        ..
                    }
                    | CaseEvent::ConsultOpened {
                        center: Some(site), ..
                    },
                ) => subjects.involve(aggregate_uuid(event)?, site.as_str()),
                DomainEvent::Placement(placement_event) => {
                    subjects.follow(aggregate_uuid(event)?, placement_event);
                }
                // An alert about a case or its placement is part of the case's history.
                DomainEvent::Alert(AlertEvent::Raised { alert, .. }) => {
                    if let Some(case_id) = alert.case_id {
                        subjects.insert(SubjectRow {
                            subject_id: aggregate_uuid(event)?,
                            kind: "ALERT".into(),
                            case_id,
                            case_owner: None,
                            facilities: Vec::new(),
                        });
                    }
                }
                DomainEvent::Case(_)
                | DomainEvent::Facility(_)
                | DomainEvent::Consult(_)
                | DomainEvent::Alert(_)
                | DomainEvent::AlertRules(_) => {}
            }
        }
        subjects.write(tx).await
    }
}

/// Inserts the rows of `$1`..`$5` (`s`: `$6`, whether the row is stored), filtered by a
/// `WHERE` that follows.
macro_rules! subjects_insert {
    () => {
        "INSERT INTO timeline_subjects (subject_id, kind, case_id, case_owner, facilities) \
         SELECT i, k, c, o, f::text[] \
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::bool[]) \
           AS t(i, k, c, o, f, s)"
    };
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
    /// The subjects that have a row: those loaded. Every other row the batch writes is
    /// new, since the batch looked up every subject it may create.
    stored: HashSet<Uuid>,
}

impl Subjects {
    /// The subjects the batch's events move (a reported case; a placement requested,
    /// offered or accepted), the cases of those placements, and the case of each placement
    /// requested in the batch (accepted in it too, it opens that case), in one query.
    async fn load(
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<Self, sqlx::Error> {
        let mut ids = Vec::new();
        for (event, decoded) in events {
            match decoded {
                DomainEvent::Case(
                    CaseEvent::Reported { .. }
                    | CaseEvent::CareSiteAssigned {
                        care_site: Some(_), ..
                    }
                    | CaseEvent::ConsultOpened {
                        center: Some(_), ..
                    },
                )
                | DomainEvent::Placement(
                    PlacementEvent::Offered { .. } | PlacementEvent::Accepted { .. },
                ) => ids.push(aggregate_uuid(event)?),
                DomainEvent::Placement(PlacementEvent::Requested { case_id, .. }) => {
                    ids.push(aggregate_uuid(event)?);
                    ids.push(*case_id);
                }
                // Observations, triage, transport and the rest move no subject.
                _ => {}
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let all = ids;
        let ids = seen.existing(&all);
        seen.note(&all);
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
            stored: rows.iter().map(|row| row.subject_id).collect(),
            rows: rows
                .into_iter()
                .map(|mut row| {
                    // Rows written before the facilities were kept in order.
                    row.facilities.sort_unstable();
                    row.facilities.dedup();
                    (row.subject_id, row)
                })
                .collect(),
            changed: HashSet::default(),
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

    /// Adds `facility` to those involved in `subject`, kept in order: a set, the same
    /// whichever of the case's, placements' and consults' streams came first (live, commit
    /// order; a rebuild, position order).
    fn involve(&mut self, subject_id: Uuid, facility: &str) {
        if let Some(row) = self.rows.get(&subject_id)
            && let Err(at) = row
                .facilities
                .binary_search_by(|f| f.as_str().cmp(facility))
            && let Some(row) = self.get_mut(subject_id)
        {
            row.facilities.insert(at, facility.to_owned());
        }
    }

    /// A case reported by the health center `owner`. A placement's acceptance may have
    /// created its row first: the case's stream has an order of its own.
    fn reported(&mut self, case_id: Uuid, owner: &str) {
        match self.get_mut(case_id) {
            Some(row) => row.case_owner = Some(owner.to_owned()),
            None => self.insert(SubjectRow {
                subject_id: case_id,
                kind: "CASE".into(),
                case_id,
                case_owner: Some(owner.to_owned()),
                facilities: Vec::new(),
            }),
        }
    }

    /// Who a placement event opens the placement's (or its case's) history to.
    fn follow(&mut self, placement_id: Uuid, event: &PlacementEvent) {
        match event {
            PlacementEvent::Requested {
                case_id, origin, ..
            } if !self.rows.contains_key(&placement_id) => {
                let facilities = match origin {
                    Origin::Facility(facility) => vec![facility.to_string()],
                    Origin::Home(_) => Vec::new(),
                };
                self.insert(SubjectRow {
                    subject_id: placement_id,
                    kind: "PLACEMENT".into(),
                    case_id: *case_id,
                    case_owner: None,
                    facilities,
                });
            }
            PlacementEvent::Offered { target, .. } => {
                self.involve(placement_id, target.as_str());
            }
            PlacementEvent::Accepted { facility, .. } => {
                // Accepting the patient opens the case's history to the facility too.
                let Some(case_id) = self.case_of(placement_id) else {
                    return;
                };
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
            _ => {}
        }
    }

    /// Writes the changed subjects in one statement.
    async fn write(&self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        let changed: Vec<&SubjectRow> = self
            .changed
            .iter()
            .filter_map(|id| self.rows.get(id))
            .collect();
        if changed.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = changed.iter().map(|s| s.subject_id).collect();
        let kinds: Vec<&str> = changed.iter().map(|s| s.kind.as_str()).collect();
        let cases: Vec<Uuid> = changed.iter().map(|s| s.case_id).collect();
        let owners: Vec<Option<&str>> = changed.iter().map(|s| s.case_owner.as_deref()).collect();
        // Each subject's facilities as an array literal: unnest cannot take an array per row.
        let facilities: Vec<String> = changed
            .iter()
            .map(|s| crate::text_array(&s.facilities))
            .collect();
        let stored: Vec<bool> = ids.iter().map(|id| self.stored.contains(id)).collect();
        // New rows go in without the conflict check, which costs PostgreSQL about a
        // fifth of each insert; in a rebuild nearly every row is new.
        sqlx::query(concat!(
            "WITH new AS (",
            subjects_insert!(),
            " WHERE NOT s) ",
            subjects_insert!(),
            " WHERE s ON CONFLICT (subject_id) DO UPDATE SET kind = excluded.kind, \
               case_id = excluded.case_id, case_owner = excluded.case_owner, \
               facilities = excluded.facilities"
        ))
        .bind(&ids)
        .bind(&kinds)
        .bind(&cases)
        .bind(&owners)
        .bind(&facilities)
        .bind(&stored)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// One entry of a timeline.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
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
    /// A facility the event names (target, decliner, arrival), never patient data.
    pub facility_id: Option<String>,
    /// The status the event moves its subject to, where it has one.
    pub status: Option<String>,
    /// The case's priority its report or a triage computed, or HQ set.
    pub priority: Option<i32>,
    /// The reason stated for a decline, a cancel or HQ's override of the priority: free
    /// text, which the API shows only to those who may read it.
    pub reason: Option<String>,
}

impl TimelineEntry {
    /// The entry of a stored event.
    pub fn of(event: &RecordedEvent, decoded: &DomainEvent) -> Self {
        let (facility_id, status) = facts(decoded);
        let (priority, reason) = stated(decoded);
        let event_type = event
            .event_type
            .rsplit_once('.')
            .map_or(event.event_type.as_str(), |(_, name)| name);
        Self {
            position: i64::try_from(event.position).unwrap_or(i64::MAX),
            stream_id: event.stream_id.to_string(),
            version: i64::try_from(event.version).unwrap_or(i64::MAX),
            event_type: event_type.to_owned(),
            actor: event.actor.clone(),
            correlation_id: event.correlation_id,
            occurred_at: event.occurred_at,
            recorded_at: event.recorded_at,
            facility_id,
            status,
            priority,
            reason,
        }
    }
}

/// The priority an event sets on its case, and the reason it states.
fn stated(event: &DomainEvent) -> (Option<i32>, Option<String>) {
    match event {
        DomainEvent::Case(
            CaseEvent::Reported { priority, .. } | CaseEvent::Triaged { priority, .. },
        ) => (Some(i32::from(priority.get())), None),
        DomainEvent::Case(CaseEvent::PriorityOverridden {
            priority, reason, ..
        }) => (Some(i32::from(priority.get())), Some(reason.to_string())),
        DomainEvent::Placement(
            PlacementEvent::Declined { reason, .. } | PlacementEvent::Cancelled { reason, .. },
        ) => (None, Some(reason.to_string())),
        _ => (None, None),
    }
}

/// The facility an event names and the status it moves its case or placement to.
fn facts(event: &DomainEvent) -> (Option<String>, Option<String>) {
    let (facility, status) = match event {
        DomainEvent::Facility(_)
        | DomainEvent::Consult(_)
        | DomainEvent::Alert(_)
        | DomainEvent::AlertRules(_) => return (None, None),
        DomainEvent::Case(event) => match event {
            CaseEvent::Reported { report, .. } => (
                Some(report.health_center_id.to_string()),
                CaseStatus::Reported,
            ),
            CaseEvent::HomeCareStarted { .. } => (None, CaseStatus::HomeCare),
            CaseEvent::StatusChanged {
                to, facility_id, ..
            } => (facility_id.as_ref().map(ToString::to_string), *to),
            CaseEvent::Closed { outcome, .. } => (None, CaseStatus::from(*outcome)),
            CaseEvent::ObservationRecorded(observation) => {
                return (
                    observation.recorded_by.as_ref().map(ToString::to_string),
                    None,
                );
            }
            CaseEvent::TransferRequested { from_facility, .. } => {
                return (Some(from_facility.to_string()), None);
            }
            CaseEvent::ConsultOpened { center, .. } => {
                return (center.as_ref().map(ToString::to_string), None);
            }
            CaseEvent::ConsultClosed { .. } => return (None, None),
            CaseEvent::CareSiteAssigned { care_site, .. } => {
                return (care_site.as_ref().map(ToString::to_string), None);
            }
            CaseEvent::Triaged { .. }
            | CaseEvent::PriorityOverridden { .. }
            | CaseEvent::DeteriorationFlagged { .. }
            | CaseEvent::TransferCancelled { .. } => return (None, None),
        },
        DomainEvent::Placement(event) => {
            let (facility, status) = match event {
                PlacementEvent::Requested { origin, .. } => match origin {
                    Origin::Facility(facility) => (Some(facility), "REQUESTED"),
                    Origin::Home(_) => (None, "REQUESTED"),
                },
                PlacementEvent::Offered { target, .. } => (Some(target), "OFFERED"),
                PlacementEvent::Accepted { facility, .. } => (Some(facility), "ACCEPTED"),
                PlacementEvent::Declined { facility, .. }
                | PlacementEvent::OfferExpired { facility, .. } => (Some(facility), "REQUESTED"),
                PlacementEvent::TransportArranged(_) => (None, "TRANSPORT_ARRANGED"),
                PlacementEvent::Departed { .. } => (None, "IN_TRANSIT"),
                PlacementEvent::Arrived { facility, .. } => (Some(facility), "ARRIVED"),
                PlacementEvent::Cancelled { .. } => (None, "CANCELLED"),
                PlacementEvent::Discharged { facility, .. } => (Some(facility), "DISCHARGED"),
            };
            return (facility.map(ToString::to_string), Some(status.to_owned()));
        }
    };
    (facility, Some(status.to_string()))
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

/// The streams whose events make up the timeline of a case (its own and its
/// placements') or of one placement, each with the last version the projection
/// applied: the events to read, up to those (`EventStore::read_streams`).
pub async fn streams(
    pool: &PgPool,
    subject_id: Uuid,
    kind: &str,
) -> Result<Vec<(StreamId, u64)>, sqlx::Error> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, version FROM ( \
           SELECT w.stream_id, projection_applied_version($1, w.stream_id) AS version FROM ( \
             SELECT lower(s.kind) || '-' || s.subject_id FROM timeline_subjects s \
             WHERE s.subject_id = $2 AND s.kind = $3 \
             UNION ALL \
             SELECT 'placement-' || s.subject_id FROM timeline_subjects s \
             WHERE s.case_id = $2 AND s.kind = 'PLACEMENT' AND $3 = 'CASE' \
             UNION ALL \
             SELECT 'alert-' || s.subject_id FROM timeline_subjects s \
             WHERE s.case_id = $2 AND s.kind = 'ALERT' AND $3 = 'CASE') AS w (stream_id) \
         ) applied WHERE version IS NOT NULL",
    )
    .bind(Timeline::NAME)
    .bind(subject_id)
    .bind(kind)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(stream, version)| {
            let stream = StreamId::parse(&stream).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            let version = u64::try_from(version).map_err(|e| sqlx::Error::Decode(Box::new(e)))?;
            Ok((stream, version))
        })
        .collect()
}
