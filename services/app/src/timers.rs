//! The offer-deadline timer (`noroshi serve --components timers`): appends
//! `OfferExpired` once an offer's deadline has passed.
//!
//! Deadlines are recomputed from the event store on start and followed through
//! `read_all`, so nothing is lost across restarts. The expiry's command id is derived
//! from the placement and the offer's number, so two timer processes (or one retrying)
//! append each expiry exactly once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::values::{FacilityId, PrincipalId};
use noroshi_event_store::GlobalCursor;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use noroshi_domain::{DomainError, DomainEvent};

use crate::command::{CommandError, Refusal};
use crate::handler::CommandHandler;
use crate::placement;

#[derive(Debug, Clone, Copy)]
pub struct TimerSettings {
    /// Longest sleep between looks at the store.
    pub poll_interval: Duration,
    /// Events read per round trip.
    pub page_size: u32,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            page_size: 1000,
        }
    }
}

/// The open offers, followed from the log.
#[derive(Debug, Default)]
struct Deadlines {
    cursor: GlobalCursor,
    /// Offers made so far per live placement.
    offers: HashMap<Uuid, u32>,
    /// Open offer per placement: its number and deadline.
    open: HashMap<Uuid, (u32, OffsetDateTime)>,
}

impl Deadlines {
    fn apply(&mut self, placement_id: Uuid, event: &PlacementEvent) {
        match event {
            PlacementEvent::Offered { offer_deadline, .. } => {
                let number = self.offers.entry(placement_id).or_default();
                *number += 1;
                self.open.insert(placement_id, (*number, *offer_deadline));
            }
            PlacementEvent::Accepted { .. }
            | PlacementEvent::Declined { .. }
            | PlacementEvent::OfferExpired { .. } => {
                self.open.remove(&placement_id);
            }
            PlacementEvent::Arrived { .. } | PlacementEvent::Cancelled { .. } => {
                self.open.remove(&placement_id);
                self.offers.remove(&placement_id);
            }
            _ => {}
        }
    }

    /// Reads every event committed since the last call.
    async fn follow(
        &mut self,
        handler: &CommandHandler,
        page_size: u32,
    ) -> Result<(), CommandError> {
        loop {
            let page = handler.store().read_all(self.cursor, page_size).await?;
            for recorded in &page.events {
                if recorded.stream_id.aggregate_type() != noroshi_domain::streams::PLACEMENT {
                    continue;
                }
                let Ok(placement_id) = Uuid::try_parse(recorded.stream_id.aggregate_id()) else {
                    continue;
                };
                match noroshi_codec::decode(recorded).map_err(CommandError::internal)? {
                    DomainEvent::Placement(event) => self.apply(placement_id, &event),
                    _ => continue,
                }
            }
            self.cursor = page.next;
            if page.events.len() < page_size as usize {
                return Ok(());
            }
        }
    }
}

/// The principal the timer acts as.
pub fn system_principal() -> Result<Principal, CommandError> {
    Ok(Principal {
        principal_id: PrincipalId::parse("system:timers").map_err(CommandError::internal)?,
        organisation_id: FacilityId::parse("system").map_err(CommandError::internal)?,
        role: Role::Hq,
    })
}

/// Runs until `shutdown`. Store outages are logged and retried.
pub async fn run(
    handler: Arc<CommandHandler>,
    system: Principal,
    settings: TimerSettings,
    shutdown: CancellationToken,
) {
    let mut deadlines = Deadlines::default();
    tracing::info!("offer timer running");
    while !shutdown.is_cancelled() {
        if let Err(error) = tick(&handler, &system, &settings, &mut deadlines).await {
            tracing::warn!(error = %error, "offer timer round failed; retrying");
        }
        let now = handler.now();
        let next = deadlines.open.values().map(|(_, deadline)| *deadline).min();
        let wait = next
            .map(|deadline| (deadline - now).max(time::Duration::ZERO))
            .and_then(|d| Duration::try_from(d).ok())
            .map_or(settings.poll_interval, |d| d.min(settings.poll_interval));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(wait) => {}
        }
    }
    tracing::info!("offer timer stopped");
}

async fn tick(
    handler: &CommandHandler,
    system: &Principal,
    settings: &TimerSettings,
    deadlines: &mut Deadlines,
) -> Result<(), CommandError> {
    deadlines.follow(handler, settings.page_size).await?;
    let now = handler.now();
    let due: Vec<(Uuid, u32)> = deadlines
        .open
        .iter()
        .filter(|(_, (_, deadline))| *deadline <= now)
        .map(|(id, (number, _))| (*id, *number))
        .collect();
    for (placement_id, number) in due {
        match placement::expire_offer(handler, system, placement_id, number).await? {
            Ok(result) => {
                tracing::info!(%placement_id, offer = number, replayed = result.replayed, "offer expired");
                deadlines.open.remove(&placement_id);
            }
            // Answered or cancelled just before the deadline: nothing to expire.
            Err(Refusal::Rule(DomainError::Precondition(reason))) => {
                tracing::debug!(%placement_id, reason, "offer no longer open");
                deadlines.open.remove(&placement_id);
            }
            Err(refusal) => return Err(CommandError::internal(refusal)),
        }
    }
    Ok(())
}
