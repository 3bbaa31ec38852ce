//! HQ's placement log (docs/interop.md): every placement with the time of each of its
//! steps, folded from the placement streams of the event store (the queue keeps only the
//! live ones), read in one snapshot.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use noroshi_domain::DomainEvent;
use noroshi_domain::placement::{Origin, PlacementEvent};
use noroshi_domain::values::{BedCategory, FacilityId, Priority};
use noroshi_event_store::{StoreError, read_snapshot};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::command::CommandError;
use crate::handler::CommandHandler;

/// One placement and when each of its steps happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementSteps {
    pub placement_id: Uuid,
    pub case_id: Uuid,
    pub requested_by: FacilityId,
    pub category: BedCategory,
    pub priority: Priority,
    /// A municipality code for a patient at home, the facility a transfer leaves.
    pub origin: String,
    pub requested_at: OffsetDateTime,
    pub first_offered_at: Option<OffsetDateTime>,
    pub offers: u32,
    pub declines: u32,
    pub expired_offers: u32,
    /// `facility: reason` of each decline, in order.
    pub decline_reasons: Vec<String>,
    pub accepted_by: Option<FacilityId>,
    pub accepted_at: Option<OffsetDateTime>,
    /// When the transport was arranged (the event's time).
    pub transport_at: Option<OffsetDateTime>,
    pub departed_at: Option<OffsetDateTime>,
    pub arrived_at: Option<OffsetDateTime>,
    pub cancelled_at: Option<OffsetDateTime>,
    pub cancel_reason: Option<String>,
}

impl PlacementSteps {
    fn apply(&mut self, event: &PlacementEvent, occurred_at: OffsetDateTime) {
        match event {
            PlacementEvent::Requested { .. } | PlacementEvent::Discharged { .. } => {}
            PlacementEvent::Offered { offered_at, .. } => {
                self.offers += 1;
                self.first_offered_at.get_or_insert(*offered_at);
            }
            PlacementEvent::Declined {
                facility, reason, ..
            } => {
                self.declines += 1;
                self.decline_reasons.push(format!("{facility}: {reason}"));
            }
            PlacementEvent::OfferExpired { .. } => self.expired_offers += 1,
            PlacementEvent::Accepted {
                facility,
                accepted_at,
                ..
            } => {
                self.accepted_by = Some(facility.clone());
                self.accepted_at = Some(*accepted_at);
            }
            PlacementEvent::TransportArranged(_) => self.transport_at = Some(occurred_at),
            PlacementEvent::Departed { departed_at } => self.departed_at = Some(*departed_at),
            PlacementEvent::Arrived { arrived_at, .. } => self.arrived_at = Some(*arrived_at),
            PlacementEvent::Cancelled {
                reason,
                cancelled_at,
                ..
            } => {
                self.cancelled_at = Some(*cancelled_at);
                self.cancel_reason = Some(reason.to_string());
            }
        }
    }
}

/// Every placement in the store, oldest request first.
pub async fn placement_log(handler: &CommandHandler) -> Result<Vec<PlacementSteps>, CommandError> {
    let store = handler.store();
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    let types = [noroshi_domain::streams::PLACEMENT];
    let mut events = std::pin::pin!(read_snapshot(&mut conn, &types));
    let mut log: BTreeMap<Uuid, PlacementSteps> = BTreeMap::new();
    while let Some(recorded) = events.try_next().await.map_err(CommandError::from)? {
        let Ok(placement_id) = Uuid::parse_str(recorded.stream_id.aggregate_id()) else {
            continue;
        };
        let DomainEvent::Placement(event) =
            noroshi_codec::decode(&recorded).map_err(CommandError::internal)?
        else {
            continue;
        };
        if let PlacementEvent::Requested {
            case_id,
            requested_by,
            category,
            priority,
            origin,
            requested_at,
            ..
        } = &event
        {
            log.insert(
                placement_id,
                PlacementSteps {
                    placement_id,
                    case_id: *case_id,
                    requested_by: requested_by.clone(),
                    category: *category,
                    priority: *priority,
                    origin: match origin {
                        Origin::Home(municipality) => municipality.to_string(),
                        Origin::Facility(facility) => facility.to_string(),
                    },
                    requested_at: *requested_at,
                    first_offered_at: None,
                    offers: 0,
                    declines: 0,
                    expired_offers: 0,
                    decline_reasons: Vec::new(),
                    accepted_by: None,
                    accepted_at: None,
                    transport_at: None,
                    departed_at: None,
                    arrived_at: None,
                    cancelled_at: None,
                    cancel_reason: None,
                },
            );
        } else if let Some(steps) = log.get_mut(&placement_id) {
            steps.apply(&event, recorded.occurred_at);
        }
    }
    let mut steps: Vec<PlacementSteps> = log.into_values().collect();
    steps.sort_by_key(|s| (s.requested_at, s.placement_id));
    Ok(steps)
}
