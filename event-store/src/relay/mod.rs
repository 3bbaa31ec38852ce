//! The outbox relay: publishes every committed event to JetStream.
//!
//! - One leader at a time, chosen by a PostgreSQL advisory lock; copies stand by and
//!   take over when the leader's process or connection dies.
//! - Woken by `LISTEN/NOTIFY` at each commit, with a slow poll as a safety net.
//! - An event leaves the outbox only after its JetStream ack. While NATS is down the
//!   outbox keeps the backlog; it drains when NATS returns.
//! - Each event is published with `Nats-Msg-Id` = event id, in version order per
//!   stream. After any failure, and on taking over, the relay first asks JetStream
//!   which versions it already has, so nothing is published twice even after the
//!   duplicate window.

mod jetstream;
mod outbox;

use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use tokio_util::sync::CancellationToken;

pub use jetstream::{PublishFailure, StreamSettings};
pub use outbox::pending;

use crate::error::StoreError;
use crate::leader::Leadership;
use crate::wire::SubjectPrefix;
use jetstream::Publisher;

/// Advisory-lock key of the outbox relay (`"noroshi\x01"` as a big-endian integer).
pub const RELAY_LOCK_KEY: i64 = 0x6e6f_726f_7368_6901;

/// Channel on which the event store wakes the relay after commits.
pub const OUTBOX_CHANNEL: &str = "noroshi_outbox";

/// Room left in a NATS message for the metadata headers of one event.
const HEADER_ALLOWANCE: usize = 4 * 1024;

/// Everything the relay needs to know.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    pub subject_prefix: SubjectPrefix,
    pub stream: StreamSettings,
    /// Most events fetched and published per round.
    pub batch_size: u32,
    /// Longest sleep without a notification before looking at the outbox anyway.
    pub poll_interval: Duration,
    /// How often a standby tries to become leader.
    pub leader_retry_interval: Duration,
    /// How long to wait for one JetStream ack.
    pub publish_timeout: Duration,
    /// Longest pause between retries after failures.
    pub max_backoff: Duration,
    /// The event store's payload limit; the relay refuses a NATS server whose
    /// `max_payload` could not carry such an event.
    pub max_payload_bytes: usize,
}

impl RelayConfig {
    pub fn new(subject_prefix: SubjectPrefix) -> Self {
        Self {
            subject_prefix,
            stream: StreamSettings::default(),
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            leader_retry_interval: Duration::from_secs(1),
            publish_timeout: Duration::from_secs(5),
            max_backoff: Duration::from_secs(5),
            max_payload_bytes: crate::StoreLimits::default().max_payload_bytes,
        }
    }
}

/// Why the relay stopped for good (everything else it retries).
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(
        "nats max_payload is {server} bytes; events of up to {needed} bytes with their headers need more"
    )]
    PayloadLimit { server: usize, needed: usize },
}

/// Runs the relay until `shutdown` is cancelled; the batch in flight is finished first.
pub async fn run(
    pool: PgPool,
    nats: async_nats::Client,
    config: RelayConfig,
    shutdown: CancellationToken,
) -> Result<(), RelayError> {
    let Some(store) = store_identity(&pool, &config, &shutdown).await else {
        return Ok(());
    };
    let Some(publisher) = provision(&nats, &config, store, &shutdown).await else {
        return Ok(());
    };
    let needed = config.max_payload_bytes + HEADER_ALLOWANCE;
    if publisher.server_max_payload() < needed {
        return Err(RelayError::PayloadLimit {
            server: publisher.server_max_payload(),
            needed,
        });
    }
    let options = pool.connect_options();
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        let Some(leadership) = Leadership::acquire(
            &options,
            RELAY_LOCK_KEY,
            "relay",
            config.leader_retry_interval,
            &shutdown,
        )
        .await
        else {
            return Ok(());
        };
        match lead(leadership, &pool, &publisher, &config, &shutdown).await {
            Ok(()) => return Ok(()),
            Err(error) => {
                tracing::warn!(error = %error, "relay lost its database connection; giving up leadership");
                if backoff.sleep(&shutdown).await.is_err() {
                    return Ok(());
                }
            }
        }
    }
}

/// This store's identity, retrying while the database is unreachable.
async fn store_identity(
    pool: &PgPool,
    config: &RelayConfig,
    shutdown: &CancellationToken,
) -> Option<uuid::Uuid> {
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        match crate::identity::store_id(pool).await {
            Ok(store) => return Some(store),
            Err(error) => {
                tracing::warn!(error = %error, "cannot read the store's identity; retrying");
                backoff.sleep(shutdown).await.ok()?;
            }
        }
    }
}

/// Creates the JetStream stream, retrying while NATS is unreachable or the stream is
/// another store's.
async fn provision(
    nats: &async_nats::Client,
    config: &RelayConfig,
    store: uuid::Uuid,
    shutdown: &CancellationToken,
) -> Option<Publisher> {
    let mut backoff = Backoff::new(config.max_backoff);
    loop {
        match Publisher::provision(
            nats.clone(),
            &config.stream,
            config.subject_prefix.clone(),
            config.publish_timeout,
            store,
        )
        .await
        {
            Ok(publisher) => return Some(publisher),
            Err(error @ PublishFailure::ForeignStream { .. }) => {
                tracing::error!(error = %error, "the relay refuses to publish");
                backoff.sleep(shutdown).await.ok()?;
            }
            Err(error) => {
                tracing::warn!(error = %error, "jetstream not ready; retrying");
                backoff.sleep(shutdown).await.ok()?;
            }
        }
    }
}

/// Relays while this process leads. Returns `Ok` on shutdown, `Err` when the database
/// connection that holds leadership fails.
async fn lead(
    mut leadership: Leadership,
    pool: &PgPool,
    publisher: &Publisher,
    config: &RelayConfig,
    shutdown: &CancellationToken,
) -> Result<(), StoreError> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(OUTBOX_CHANNEL).await?;
    let mut backoff = Backoff::new(config.max_backoff);
    // On taking over, the previous leader may have had events stored but unacked.
    let mut verify_published = true;
    loop {
        if shutdown.is_cancelled() {
            leadership.release().await;
            return Ok(());
        }
        let mut events = outbox::fetch(leadership.connection(), config.batch_size).await?;
        if events.is_empty() {
            wait_for_commit(&mut listener, config.poll_interval, shutdown).await;
            continue;
        }
        if verify_published {
            match publisher.published_versions(&events).await {
                Ok(published) => {
                    let (already, rest): (Vec<_>, Vec<_>) = events.into_iter().partition(|e| {
                        published.get(&e.stream_id).is_some_and(|&v| e.version <= v)
                    });
                    let positions: Vec<u64> = already.iter().map(|e| e.position).collect();
                    if !positions.is_empty() {
                        tracing::info!(
                            count = positions.len(),
                            "events already on jetstream; clearing them from the outbox"
                        );
                    }
                    outbox::mark_published(leadership.connection(), &positions).await?;
                    events = rest;
                    verify_published = false;
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot check jetstream; outbox kept");
                    if backoff.sleep(shutdown).await.is_err() {
                        leadership.release().await;
                        return Ok(());
                    }
                    continue;
                }
            }
        }

        let (acked, failure) = publisher.publish(&events).await;
        outbox::mark_published(leadership.connection(), &acked).await?;
        match failure {
            None => {
                tracing::debug!(published = acked.len(), "events relayed");
                backoff.reset();
            }
            Some(error) => {
                tracing::warn!(error = %error, published = acked.len(), pending = events.len() - acked.len(), "relay publish failed; outbox kept");
                verify_published = true;
                if backoff.sleep(shutdown).await.is_err() {
                    leadership.release().await;
                    return Ok(());
                }
            }
        }
    }
}

/// Sleeps until a commit notification, the poll interval or shutdown.
async fn wait_for_commit(listener: &mut PgListener, poll: Duration, shutdown: &CancellationToken) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(poll) => {}
        notification = listener.recv() => {
            if let Err(error) = notification {
                tracing::warn!(error = %error, "outbox listener failed; polling until it reconnects");
                tokio::time::sleep(poll).await;
            }
            // Many commits may have notified; one look at the outbox serves them all.
            while listener.next_buffered().is_some() {}
        }
    }
}

/// Exponential pause between retries, from 50 ms up to a ceiling.
#[derive(Debug)]
struct Backoff {
    next: Duration,
    max: Duration,
}

/// The sleep was cut short by shutdown.
#[derive(Debug)]
struct ShutDown;

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);

    fn new(max: Duration) -> Self {
        Self {
            next: Self::FIRST,
            max,
        }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    async fn sleep(&mut self, shutdown: &CancellationToken) -> Result<(), ShutDown> {
        let pause = self.next;
        self.next = (self.next * 2).min(self.max);
        tokio::select! {
            () = shutdown.cancelled() => Err(ShutDown),
            () = tokio::time::sleep(pause) => Ok(()),
        }
    }
}
