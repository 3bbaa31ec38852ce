//! The scheduler (`noroshi serve --components timers`, DESIGN.md §5.6), one component for
//! everything time-driven. Every second it expires the offers whose deadline passed; every
//! round it reads what holds now from the read models ([`Watch`]), raises the alert of
//! every new cause, resolves the alerts whose cause went away, and escalates to HQ the
//! CRITICAL ones nobody acknowledged within the escalation delay.
//!
//! Nothing is kept between rounds but the read models themselves, so a restart loses
//! nothing and needs no replay. Every step's command id derives from the alert and the
//! step ([`crate::alert::step_command_id`]), and an alert's id from its cause and episode,
//! so two schedulers (or a round repeated after a crash) record each step once.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use noroshi_domain::DomainError;
use noroshi_domain::alert::{Condition, OpenAlert};
use noroshi_domain::authz::Principal;
use noroshi_domain::values::{AlertKind, AlertSeverity, AlertStatus, Text};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::alert;
use crate::command::{CommandError, Refusal};
use crate::handler::CommandHandler;

/// A failure to read the read models.
pub type WatchError = Box<dyn std::error::Error + Send + Sync>;

/// What the scheduler reads: the read models, through the crate that owns them.
pub trait Watch: Send + Sync + 'static {
    /// Every cause that holds at `now` under `rules`.
    fn conditions(
        &self,
        rules: &noroshi_domain::alert::AlertRules,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<Condition>, WatchError>> + Send;
    /// Every alert not resolved.
    fn open_alerts(&self) -> impl Future<Output = Result<Vec<OpenAlert>, WatchError>> + Send;
    /// The last episode raised of each `(kind, cause)`, where there was one.
    fn last_episodes(
        &self,
        causes: &[(AlertKind, String)],
    ) -> impl Future<Output = Result<BTreeMap<(AlertKind, String), u32>, WatchError>> + Send;
    /// The open offers whose deadline is at or before `now`, with that deadline.
    fn due_offers(
        &self,
        now: OffsetDateTime,
    ) -> impl Future<Output = Result<Vec<(Uuid, OffsetDateTime)>, WatchError>> + Send;
}

#[derive(Debug, Clone, Copy)]
pub struct SchedulerSettings {
    /// Time between alert rounds.
    pub interval: Duration,
    /// Time between looks for offers whose deadline passed.
    pub offer_interval: Duration,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            offer_interval: Duration::from_secs(1),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    pub raised: usize,
    pub resolved: usize,
    pub escalated: usize,
}

/// Runs rounds until `shutdown`. A failed round is logged and the next one tries again.
pub async fn run<W: Watch>(
    handler: Arc<CommandHandler>,
    watch: W,
    system: Principal,
    settings: SchedulerSettings,
    shutdown: CancellationToken,
) {
    tracing::info!("scheduler running");
    let mut next_round = tokio::time::Instant::now();
    while !shutdown.is_cancelled() {
        if let Err(error) = expire_offers(&handler, &watch, &system).await {
            tracing::warn!(error = %error, "offer expiry failed; retrying");
        }
        if tokio::time::Instant::now() < next_round {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(settings.offer_interval) => {}
            }
            continue;
        }
        next_round = tokio::time::Instant::now() + settings.interval;
        match round(&handler, &watch, &system).await {
            Ok(done) if done != Round::default() => {
                tracing::info!(
                    raised = done.raised,
                    resolved = done.resolved,
                    escalated = done.escalated,
                    "alert round"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(error = %error, "alert round failed; retrying"),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(settings.offer_interval) => {}
        }
    }
    tracing::info!("scheduler stopped");
}

/// Appends `OfferExpired` for every open offer whose deadline passed (the read model says
/// which); how many it appended.
pub async fn expire_offers<W: Watch>(
    handler: &CommandHandler,
    watch: &W,
    system: &Principal,
) -> Result<usize, CommandError> {
    let due = watch
        .due_offers(handler.now())
        .await
        .map_err(CommandError::Internal)?;
    let mut expired = 0;
    for (placement_id, deadline) in due {
        let result = crate::placement::expire_offer(handler, system, placement_id, deadline).await;
        if outcome("expire offer", result)? {
            tracing::info!(%placement_id, %deadline, "offer expired");
            expired += 1;
        }
    }
    Ok(expired)
}

/// A step refused because another scheduler (or an earlier round) took it first.
fn taken_already(refusal: &Refusal) -> bool {
    matches!(
        refusal,
        Refusal::Rule(DomainError::AlreadyExists(_) | DomainError::Precondition(_))
    )
}

fn outcome(step: &str, result: crate::command::Outcome) -> Result<bool, CommandError> {
    match result? {
        Ok(recorded) => Ok(!recorded.replayed),
        Err(refusal) if taken_already(&refusal) => {
            tracing::debug!(step, refusal = %refusal, "alert step taken already");
            Ok(false)
        }
        Err(refusal) => Err(CommandError::internal(refusal)),
    }
}

/// One round at the handler's `now`.
pub async fn round<W: Watch>(
    handler: &CommandHandler,
    watch: &W,
    system: &Principal,
) -> Result<Round, CommandError> {
    let now = handler.now();
    let rules = handler.alert_rules_now().await?;
    let conditions = watch
        .conditions(&rules, now)
        .await
        .map_err(CommandError::Internal)?;
    let open = watch.open_alerts().await.map_err(CommandError::Internal)?;
    let open_causes: BTreeSet<(AlertKind, &str)> =
        open.iter().map(|a| (a.kind, a.cause.as_str())).collect();
    let holding: BTreeSet<(AlertKind, &str)> = conditions
        .iter()
        .map(|c| (c.kind, c.cause.as_str()))
        .collect();
    let mut done = Round::default();

    // New causes: the next episode of each.
    let new: Vec<&Condition> = conditions
        .iter()
        .filter(|c| !open_causes.contains(&(c.kind, c.cause.as_str())))
        .collect();
    if !new.is_empty() {
        let keys: Vec<(AlertKind, String)> =
            new.iter().map(|c| (c.kind, c.cause.clone())).collect();
        let last = watch
            .last_episodes(&keys)
            .await
            .map_err(CommandError::Internal)?;
        for condition in new {
            let episode = last
                .get(&(condition.kind, condition.cause.clone()))
                .map_or(1, |e| e + 1);
            let result = alert::raise(handler, system, condition.clone().raise(episode)).await;
            done.raised += usize::from(outcome("raise", result)?);
        }
    }

    let delay = rules.escalation_delay();
    let because = Text::parse("its cause went away").map_err(CommandError::internal)?;
    for alert in &open {
        if !holding.contains(&(alert.kind, alert.cause.as_str())) {
            let result = alert::resolve(handler, system, alert.alert_id, because.clone()).await;
            done.resolved += usize::from(outcome("resolve", result)?);
        } else if alert.severity == AlertSeverity::Critical
            && alert.status == AlertStatus::Open
            && alert.escalated_at.is_none()
            && now - alert.raised_at >= delay
        {
            let result = alert::escalate(handler, system, alert.alert_id).await;
            done.escalated += usize::from(outcome("escalate", result)?);
        }
    }
    Ok(done)
}
