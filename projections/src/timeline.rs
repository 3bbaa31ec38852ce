//! `timeline` (DESIGN.md §6): the ordered history of one case or placement: each event,
//! who acted, and when. It names facilities and statuses, never patient data; who may
//! read which timeline is kept alongside (`timeline_subjects`).

use noroshi_domain::DomainEvent;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::{Origin, PlacementEvent};
use noroshi_domain::values::CaseStatus;
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

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), sqlx::Error> {
        let (case_id, placement_id, facility, status) = match decoded {
            DomainEvent::Facility(_) => return Ok(()),
            DomainEvent::Case(case_event) => {
                let case_id = aggregate_uuid(event)?;
                let (facility, status) = case_facts(tx, case_id, case_event).await?;
                (Some(case_id), None, facility, status)
            }
            DomainEvent::Placement(placement_event) => {
                let placement_id = aggregate_uuid(event)?;
                let (facility, status) = placement_facts(tx, placement_id, placement_event).await?;
                let case_id: Option<Uuid> = sqlx::query_scalar(
                    "SELECT case_id FROM timeline_subjects WHERE subject_id = $1",
                )
                .bind(placement_id)
                .fetch_optional(&mut *tx)
                .await?;
                (case_id, Some(placement_id), facility, status)
            }
        };
        let event_type = event
            .event_type
            .rsplit_once('.')
            .map_or(event.event_type.as_str(), |(_, name)| name);
        sqlx::query(
            "INSERT INTO timeline_events (position, stream_id, version, case_id, placement_id, \
             event_type, actor, correlation_id, occurred_at, recorded_at, facility_id, status) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
             ON CONFLICT (position) DO NOTHING",
        )
        .bind(i64::try_from(event.position).unwrap_or(i64::MAX))
        .bind(event.stream_id.as_str())
        .bind(i64::try_from(event.version).unwrap_or(i64::MAX))
        .bind(case_id)
        .bind(placement_id)
        .bind(event_type)
        .bind(&event.actor)
        .bind(event.correlation_id)
        .bind(event.occurred_at)
        .bind(event.recorded_at)
        .bind(facility)
        .bind(status)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

/// Adds `facility` to those involved in `subject`.
async fn involve(tx: &mut PgConnection, subject: Uuid, facility: &str) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE timeline_subjects SET facilities = array_append(facilities, $2) \
         WHERE subject_id = $1 AND NOT ($2 = ANY(facilities))",
    )
    .bind(subject)
    .bind(facility)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

async fn case_facts(
    tx: &mut PgConnection,
    case_id: Uuid,
    event: &CaseEvent,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    Ok(match event {
        CaseEvent::Reported { report, .. } => {
            sqlx::query(
                "INSERT INTO timeline_subjects (subject_id, kind, case_id, case_owner) \
                 VALUES ($1, 'CASE', $1, $2) \
                 ON CONFLICT (subject_id) DO UPDATE SET case_owner = excluded.case_owner",
            )
            .bind(case_id)
            .bind(report.health_center_id.as_str())
            .execute(&mut *tx)
            .await?;
            (
                Some(report.health_center_id.to_string()),
                Some(CaseStatus::Reported.to_string()),
            )
        }
        CaseEvent::HomeCareStarted { .. } => (None, Some(CaseStatus::HomeCare.to_string())),
        CaseEvent::StatusChanged {
            to, facility_id, ..
        } => (
            facility_id.as_ref().map(ToString::to_string),
            Some(to.to_string()),
        ),
        CaseEvent::Closed { outcome, .. } => (None, Some(CaseStatus::from(*outcome).to_string())),
        CaseEvent::Triaged { .. }
        | CaseEvent::PriorityOverridden { .. }
        | CaseEvent::ObservationRecorded(_)
        | CaseEvent::DeteriorationFlagged { .. } => (None, None),
    })
}

async fn placement_facts(
    tx: &mut PgConnection,
    placement_id: Uuid,
    event: &PlacementEvent,
) -> Result<(Option<String>, Option<String>), sqlx::Error> {
    let (facility, status) = match event {
        PlacementEvent::Requested {
            case_id, origin, ..
        } => {
            let from = match origin {
                Origin::Facility(facility) => vec![facility.to_string()],
                Origin::Home(_) => Vec::new(),
            };
            sqlx::query(
                "INSERT INTO timeline_subjects (subject_id, kind, case_id, facilities) \
                 VALUES ($1, 'PLACEMENT', $2, $3) ON CONFLICT (subject_id) DO NOTHING",
            )
            .bind(placement_id)
            .bind(case_id)
            .bind(&from)
            .execute(&mut *tx)
            .await?;
            return Ok((from.into_iter().next(), Some("REQUESTED".to_owned())));
        }
        PlacementEvent::Offered { target, .. } => {
            involve(tx, placement_id, target.as_str()).await?;
            (Some(target), "OFFERED")
        }
        PlacementEvent::Accepted { facility, .. } => {
            // Accepting the patient opens the case's history to the facility too. The
            // case's own row may not be there yet: its stream has an order of its own.
            sqlx::query(
                "INSERT INTO timeline_subjects (subject_id, kind, case_id, facilities) \
                 SELECT case_id, 'CASE', case_id, ARRAY[$2] FROM timeline_subjects \
                 WHERE subject_id = $1 \
                 ON CONFLICT (subject_id) DO UPDATE SET facilities = \
                   CASE WHEN $2 = ANY(timeline_subjects.facilities) \
                        THEN timeline_subjects.facilities \
                        ELSE array_append(timeline_subjects.facilities, $2) END",
            )
            .bind(placement_id)
            .bind(facility.as_str())
            .execute(&mut *tx)
            .await?;
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
    Ok((facility.map(ToString::to_string), Some(status.to_owned())))
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
