//! `placement_sla` (DESIGN.md §6, §12): every placement's steps (requested, first offered,
//! accepted, arrived, cancelled), every decline (an expired offer among them) and each
//! case's current severity. The query sums them up by area, severity and day.
//!
//! The severity is the case's as it stands, joined when the view is read: one copied onto
//! the placement when it was requested would depend on the order in which the case's and
//! the placement's streams reached the projection, which live and a rebuild need not share.

pub mod query;

use foldhash::HashMap;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

/// The reason recorded for an offer left to expire.
pub const OFFER_EXPIRED: &str = "OFFER_EXPIRED";

#[derive(Debug, Clone, Copy, Default)]
pub struct PlacementSla;

/// What a batch does to one placement.
#[derive(Debug, Default)]
struct Steps {
    requested: Option<(Uuid, String, OffsetDateTime)>,
    offered: Option<OffsetDateTime>,
    accepted: Option<OffsetDateTime>,
    arrived: Option<OffsetDateTime>,
    cancelled: Option<OffsetDateTime>,
}

impl Projection for PlacementSla {
    const NAME: &'static str = "placement_sla";
    const TABLES: &'static [&'static str] = &[
        "placement_sla_declines",
        "placement_sla",
        "placement_sla_cases",
    ];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    /// Folds the batch in memory (cases' severities as they move, each placement's
    /// earliest time at each step), then writes it in five statements.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        _seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut moved_cases: HashMap<Uuid, String> = HashMap::default();
        let mut placements: HashMap<Uuid, Steps> = HashMap::default();
        let mut declines: Vec<(Uuid, String, String, OffsetDateTime)> = Vec::new();
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(CaseEvent::Reported { report, .. }) => {
                    moved_cases.insert(aggregate_uuid(event)?, report.severity.to_string());
                }
                DomainEvent::Case(CaseEvent::Triaged { severity, .. }) => {
                    moved_cases.insert(aggregate_uuid(event)?, severity.to_string());
                }
                DomainEvent::Placement(placement) => {
                    let id = aggregate_uuid(event)?;
                    let steps = placements.entry(id).or_default();
                    let first = |at: &mut Option<OffsetDateTime>, time: OffsetDateTime| {
                        if at.is_none_or(|t| time < t) {
                            *at = Some(time);
                        }
                    };
                    match placement {
                        PlacementEvent::Requested {
                            case_id,
                            requested_by,
                            requested_at,
                            ..
                        } => {
                            steps.requested =
                                Some((*case_id, requested_by.to_string(), *requested_at));
                        }
                        PlacementEvent::Offered { offered_at, .. } => {
                            first(&mut steps.offered, *offered_at);
                        }
                        PlacementEvent::Accepted { accepted_at, .. } => {
                            first(&mut steps.accepted, *accepted_at);
                        }
                        PlacementEvent::Arrived { arrived_at, .. } => {
                            first(&mut steps.arrived, *arrived_at);
                        }
                        PlacementEvent::Cancelled { cancelled_at, .. } => {
                            first(&mut steps.cancelled, *cancelled_at);
                        }
                        PlacementEvent::Declined {
                            facility,
                            reason,
                            declined_at,
                        } => declines.push((
                            id,
                            facility.to_string(),
                            reason.to_string(),
                            *declined_at,
                        )),
                        PlacementEvent::OfferExpired {
                            facility,
                            offer_deadline,
                        } => declines.push((
                            id,
                            facility.to_string(),
                            OFFER_EXPIRED.to_owned(),
                            *offer_deadline,
                        )),
                        PlacementEvent::TransportArranged(_)
                        | PlacementEvent::Departed { .. }
                        | PlacementEvent::Discharged { .. } => {}
                    }
                }
                _ => {}
            }
        }
        let (case_ids, case_severities): (Vec<Uuid>, Vec<String>) = moved_cases.into_iter().unzip();
        if !case_ids.is_empty() {
            let (ids, values) = (&case_ids, &case_severities);
            sqlx::query(
                "INSERT INTO placement_sla_cases (case_id, severity) \
                 SELECT * FROM unnest($1::uuid[], $2::text[]) \
                 ON CONFLICT (case_id) DO UPDATE SET severity = EXCLUDED.severity",
            )
            .bind(ids)
            .bind(values)
            .execute(&mut *tx)
            .await?;
        }
        let mut new = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut moved = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (id, steps) in &placements {
            if let Some((case_id, requested_by, requested_at)) = &steps.requested {
                new.0.push(*id);
                new.1.push(*case_id);
                new.2.push(requested_by.clone());
                new.3.push(*requested_at);
            }
            if steps.offered.is_some()
                || steps.accepted.is_some()
                || steps.arrived.is_some()
                || steps.cancelled.is_some()
            {
                moved.0.push(*id);
                moved.1.push(steps.offered);
                moved.2.push(steps.accepted);
                moved.3.push(steps.arrived);
                moved.4.push(steps.cancelled);
            }
        }
        if !new.0.is_empty() {
            sqlx::query(
                "INSERT INTO placement_sla (placement_id, case_id, requested_by, requested_at) \
                 SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[]) \
                 ON CONFLICT (placement_id) DO NOTHING",
            )
            .bind(&new.0)
            .bind(&new.1)
            .bind(&new.2)
            .bind(&new.3)
            .execute(&mut *tx)
            .await?;
        }
        if !moved.0.is_empty() {
            // The earliest time of each step, whichever batch saw it first.
            sqlx::query(
                "UPDATE placement_sla p SET \
                   first_offered_at = least(p.first_offered_at, m.offered), \
                   accepted_at = least(p.accepted_at, m.accepted), \
                   arrived_at = least(p.arrived_at, m.arrived), \
                   cancelled_at = least(p.cancelled_at, m.cancelled) \
                 FROM unnest($1::uuid[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[], \
                             $5::timestamptz[]) AS m(placement_id, offered, accepted, arrived, cancelled) \
                 WHERE p.placement_id = m.placement_id",
            )
            .bind(&moved.0)
            .bind(&moved.1)
            .bind(&moved.2)
            .bind(&moved.3)
            .bind(&moved.4)
            .execute(&mut *tx)
            .await?;
        }
        if !declines.is_empty() {
            let mut columns = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for (id, facility, reason, at) in declines {
                columns.0.push(id);
                columns.1.push(facility);
                columns.2.push(reason);
                columns.3.push(at);
            }
            sqlx::query(
                "INSERT INTO placement_sla_declines (placement_id, facility_id, reason, declined_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&columns.0)
            .bind(&columns.1)
            .bind(&columns.2)
            .bind(&columns.3)
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}
