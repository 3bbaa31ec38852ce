//! `placement_queue` (DESIGN.md §6): live placements ordered by priority, then waiting
//! time, with their state, current offer and its deadline, the facilities that declined,
//! and holds past their deadline.
//!
//! Each row moves exactly as `noroshi_domain::placement::Placement::evolve` moves the
//! placement's record; a placement leaves the queue when it is no longer live (arrived
//! or cancelled).

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

impl Projection for PlacementQueue {
    const NAME: &'static str = "placement_queue";
    const TABLES: &'static [&'static str] = &["placement_queue", "placement_queue_cases"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
    ) -> Result<(), sqlx::Error> {
        for (event, decoded) in batch {
            apply_event(tx, event, decoded).await?;
        }
        Ok(())
    }
}

/// Applies one event.
async fn apply_event(
    tx: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &DomainEvent,
) -> Result<(), sqlx::Error> {
    match decoded {
        DomainEvent::Case(CaseEvent::Reported { report, .. }) => {
            sqlx::query(
                "INSERT INTO placement_queue_cases (case_id, health_center_id) VALUES ($1, $2) \
                 ON CONFLICT (case_id) DO NOTHING",
            )
            .bind(aggregate_uuid(event)?)
            .bind(report.health_center_id.as_str())
            .execute(&mut *tx)
            .await?;
            // Streams are ordered each on its own: the placement may have come first.
            sqlx::query(
                "UPDATE placement_queue SET case_owner = $2 \
                 WHERE case_id = $1 AND case_owner IS NULL",
            )
            .bind(aggregate_uuid(event)?)
            .bind(report.health_center_id.as_str())
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
        DomainEvent::Placement(placement_event) => {
            apply_placement(tx, aggregate_uuid(event)?, placement_event).await
        }
        _ => Ok(()),
    }
}

async fn set_status(
    tx: &mut PgConnection,
    placement_id: Uuid,
    status: PlacementStatus,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE placement_queue SET status = $2 WHERE placement_id = $1")
        .bind(placement_id)
        .bind(status.to_string())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

async fn apply_placement(
    tx: &mut PgConnection,
    placement_id: Uuid,
    event: &PlacementEvent,
) -> Result<(), sqlx::Error> {
    match event {
        PlacementEvent::Requested {
            case_id,
            requested_by,
            category,
            needs,
            priority,
            origin,
            requested_at,
            ..
        } => {
            let (origin_kind, origin) = crate::origin_columns(origin);
            sqlx::query(
                "INSERT INTO placement_queue (placement_id, case_id, case_owner, requested_by, category, \
                 needs, priority, origin_kind, origin, requested_at, status) \
                 VALUES ($1, $2, (SELECT health_center_id FROM placement_queue_cases WHERE case_id = $2), \
                 $3, $4, $5, $6, $7, $8, $9, 'REQUESTED') ON CONFLICT (placement_id) DO NOTHING",
            )
            .bind(placement_id)
            .bind(case_id)
            .bind(requested_by.as_str())
            .bind(category.to_string())
            .bind(needs.iter().map(ToString::to_string).collect::<Vec<_>>())
            .bind(i32::from(priority.get()))
            .bind(origin_kind)
            .bind(origin)
            .bind(requested_at)
            .execute(&mut *tx)
            .await?;
        }
        PlacementEvent::Offered {
            target,
            offered_at,
            offer_deadline,
        } => {
            sqlx::query(
                "UPDATE placement_queue SET status = 'OFFERED', target = $2, offered_at = $3, \
                 offer_deadline = $4 WHERE placement_id = $1",
            )
            .bind(placement_id)
            .bind(target.as_str())
            .bind(offered_at)
            .bind(offer_deadline)
            .execute(&mut *tx)
            .await?;
        }
        PlacementEvent::Accepted { hold_deadline, .. } => {
            sqlx::query(
                "UPDATE placement_queue SET status = 'ACCEPTED', offer_deadline = NULL, \
                 hold_deadline = $2 WHERE placement_id = $1",
            )
            .bind(placement_id)
            .bind(hold_deadline)
            .execute(&mut *tx)
            .await?;
        }
        PlacementEvent::Declined { facility, .. }
        | PlacementEvent::OfferExpired { facility, .. } => {
            sqlx::query(
                "UPDATE placement_queue SET status = 'REQUESTED', target = NULL, offer_deadline = NULL, \
                 declined_by = CASE WHEN $2 = ANY(declined_by) THEN declined_by \
                                    ELSE array_append(declined_by, $2) END \
                 WHERE placement_id = $1",
            )
            .bind(placement_id)
            .bind(facility.as_str())
            .execute(&mut *tx)
            .await?;
        }
        PlacementEvent::TransportArranged(transport) => {
            sqlx::query(
                "UPDATE placement_queue SET status = 'TRANSPORT_ARRANGED', vehicle = $2 \
                 WHERE placement_id = $1",
            )
            .bind(placement_id)
            .bind(transport.vehicle.to_string())
            .execute(&mut *tx)
            .await?;
        }
        PlacementEvent::Departed { .. } => {
            set_status(tx, placement_id, PlacementStatus::InTransit).await?;
        }
        PlacementEvent::Arrived { .. } | PlacementEvent::Cancelled { .. } => {
            sqlx::query("DELETE FROM placement_queue WHERE placement_id = $1")
                .bind(placement_id)
                .execute(&mut *tx)
                .await?;
        }
        PlacementEvent::Discharged { .. } => {}
    }
    Ok(())
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

/// Live placements, most urgent first, then longest waiting; only those of cases owned
/// by `owner` when given.
pub async fn rows(pool: &PgPool, owner: Option<&str>) -> Result<Vec<QueueRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT placement_id, case_id, case_owner, requested_by, category, needs, priority, \
         origin_kind, origin, requested_at, status, target, offered_at, offer_deadline, \
         hold_deadline, declined_by, vehicle FROM placement_queue \
         WHERE $1::text IS NULL OR case_owner = $1 \
         ORDER BY priority, requested_at, placement_id",
    )
    .bind(owner)
    .fetch_all(pool)
    .await
}
