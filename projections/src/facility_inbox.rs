//! `facility_inbox` (DESIGN.md §6): what a hospital or hotel works from. Offers addressed
//! to it with their deadline, de-identified (age band, sex, severity, needs, origin
//! area); accepted patients on their way, and patients placed through the system, who
//! are identified because the facility accepted them (DESIGN.md §7).
//!
//! One row per placement follows it from its request until the patient leaves the
//! facility; the API shows a facility the rows it is the target of.

use noroshi_domain::case::CaseEvent;
use noroshi_domain::facility::FacilityEvent;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::Projection;

#[derive(Debug, Clone, Copy, Default)]
pub struct FacilityInbox;

impl Projection for FacilityInbox {
    const NAME: &'static str = "facility_inbox";
    const TABLES: &'static [&'static str] = &[
        "facility_inbox",
        "facility_inbox_cases",
        "facility_inbox_areas",
    ];
    const SOURCES: &'static [&'static str] =
        &[streams::FACILITY, streams::CASE, streams::PLACEMENT];

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
        DomainEvent::Case(case_event) => apply_case(tx, aggregate_uuid(event)?, case_event).await,
        DomainEvent::Placement(placement_event) => {
            apply_placement(tx, aggregate_uuid(event)?, placement_event).await
        }
        DomainEvent::Facility(facility_event) => {
            let area = match facility_event {
                FacilityEvent::Registered(profile) => profile.medical_area.as_ref(),
                FacilityEvent::Updated(changes) => changes.medical_area.as_ref(),
                _ => return Ok(()),
            };
            sqlx::query(
                "INSERT INTO facility_inbox_areas (facility_id, medical_area) VALUES ($1, $2) \
                 ON CONFLICT (facility_id) DO UPDATE SET medical_area = excluded.medical_area",
            )
            .bind(event.stream_id.aggregate_id())
            .bind(area.map(|a| a.as_str()))
            .execute(&mut *tx)
            .await?;
            Ok(())
        }
    }
}

async fn apply_case(
    tx: &mut PgConnection,
    case_id: Uuid,
    event: &CaseEvent,
) -> Result<(), sqlx::Error> {
    let query = match event {
        CaseEvent::Reported { report, .. } => sqlx::query(
            "INSERT INTO facility_inbox_cases (case_id, health_center_id, name, name_kana, \
             birth_date, sex, phone, severity) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(case_id)
        .bind(report.health_center_id.as_str())
        .bind(report.patient.name.as_str())
        .bind(report.patient.name_kana.as_ref().map(|n| n.as_str()))
        .bind(report.patient.birth_date)
        .bind(report.patient.sex.to_string())
        .bind(report.patient.phone.as_ref().map(|p| p.as_str()))
        .bind(report.severity.to_string()),
        CaseEvent::Triaged { severity, .. } => {
            sqlx::query("UPDATE facility_inbox_cases SET severity = $2 WHERE case_id = $1")
                .bind(case_id)
                .bind(severity.to_string())
        }
        _ => return Ok(()),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}

async fn apply_placement(
    tx: &mut PgConnection,
    placement_id: Uuid,
    event: &PlacementEvent,
) -> Result<(), sqlx::Error> {
    let query = match event {
        PlacementEvent::Requested {
            case_id,
            category,
            needs,
            priority,
            origin,
            requested_at,
            ..
        } => {
            let (origin_kind, origin) = crate::origin_columns(origin);
            sqlx::query(
                "INSERT INTO facility_inbox (placement_id, case_id, category, needs, priority, \
                 origin_kind, origin, requested_at, status) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'REQUESTED') \
                 ON CONFLICT (placement_id) DO NOTHING",
            )
            .bind(placement_id)
            .bind(case_id)
            .bind(category.to_string())
            .bind(needs.iter().map(ToString::to_string).collect::<Vec<_>>())
            .bind(i32::from(priority.get()))
            .bind(origin_kind)
            .bind(origin)
            .bind(requested_at)
        }
        PlacementEvent::Offered {
            target,
            offered_at,
            offer_deadline,
        } => sqlx::query(
            "UPDATE facility_inbox SET status = 'OFFERED', target = $2, offered_at = $3, \
             offer_deadline = $4 WHERE placement_id = $1",
        )
        .bind(placement_id)
        .bind(target.as_str())
        .bind(offered_at)
        .bind(offer_deadline),
        PlacementEvent::Accepted {
            accepted_at,
            hold_deadline,
            ..
        } => sqlx::query(
            "UPDATE facility_inbox SET status = 'ACCEPTED', offer_deadline = NULL, \
             accepted_at = $2, hold_deadline = $3 WHERE placement_id = $1",
        )
        .bind(placement_id)
        .bind(accepted_at)
        .bind(hold_deadline),
        PlacementEvent::Declined { .. } | PlacementEvent::OfferExpired { .. } => sqlx::query(
            "UPDATE facility_inbox SET status = 'REQUESTED', target = NULL, offered_at = NULL, \
             offer_deadline = NULL WHERE placement_id = $1",
        )
        .bind(placement_id),
        PlacementEvent::TransportArranged(transport) => sqlx::query(
            "UPDATE facility_inbox SET status = 'TRANSPORT_ARRANGED', vehicle = $2, \
             pickup_at = $3 WHERE placement_id = $1",
        )
        .bind(placement_id)
        .bind(transport.vehicle.to_string())
        .bind(transport.pickup_at),
        PlacementEvent::Departed { .. } => {
            sqlx::query("UPDATE facility_inbox SET status = 'IN_TRANSIT' WHERE placement_id = $1")
                .bind(placement_id)
        }
        PlacementEvent::Arrived { arrived_at, .. } => sqlx::query(
            "UPDATE facility_inbox SET status = 'ARRIVED', hold_deadline = NULL, \
             arrived_at = $2 WHERE placement_id = $1",
        )
        .bind(placement_id)
        .bind(arrived_at),
        PlacementEvent::Cancelled { .. } | PlacementEvent::Discharged { .. } => {
            sqlx::query("DELETE FROM facility_inbox WHERE placement_id = $1").bind(placement_id)
        }
    };
    query.execute(&mut *tx).await?;
    Ok(())
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
}

/// The placements addressed to `facility` (any facility when `None`): offers first by
/// deadline, then accepted inbound, then placed patients. Joined here rather than when
/// applied, because the case's, the facilities' and the placement's streams reach the
/// projection each in its own order. The origin area is the origin facility's for a
/// transfer, the owning health center's otherwise.
pub async fn rows(pool: &PgPool, facility: Option<&str>) -> Result<Vec<InboxRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.placement_id, i.case_id, i.target, i.status, i.category, i.needs, i.priority, \
         i.origin_kind, \
         coalesce(CASE WHEN i.origin_kind = 'FACILITY' THEN \
                    (SELECT medical_area FROM facility_inbox_areas WHERE facility_id = i.origin) END, \
                  (SELECT medical_area FROM facility_inbox_areas \
                   WHERE facility_id = c.health_center_id)) AS origin_area, \
         i.requested_at, i.offered_at, i.offer_deadline, \
         i.accepted_at, i.hold_deadline, i.vehicle, i.pickup_at, i.arrived_at, \
         c.sex, c.severity, c.birth_date, c.name, c.name_kana, c.phone \
         FROM facility_inbox i JOIN facility_inbox_cases c USING (case_id) \
         WHERE i.target IS NOT NULL AND i.status <> 'REQUESTED' \
           AND ($1::text IS NULL OR i.target = $1) \
         ORDER BY CASE i.status WHEN 'OFFERED' THEN 0 WHEN 'ARRIVED' THEN 2 ELSE 1 END, \
                  i.offer_deadline, i.priority, i.requested_at, i.placement_id",
    )
    .bind(facility)
    .fetch_all(pool)
    .await
}
