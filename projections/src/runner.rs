//! The projection runner: reads the JetStream event stream from the projection's
//! checkpoint and applies each batch, with the new checkpoint, in one PostgreSQL
//! transaction.
//!
//! - The last applied version of every source stream is kept with the read model, so
//!   a redelivered or duplicated event (the relay republishing after the duplicate
//!   window, say) is skipped, never applied twice. A version beyond the next expected
//!   one means an event is missing from the stream; the runner stops applying and
//!   says so rather than build a view on a hole.
//! - Batches are whatever has arrived, up to `max_batch`: large under backlog, one
//!   event at a time when live.
//! - One leader per projection, through a PostgreSQL advisory lock; copies stand by.
//! - Lag (stream messages not yet applied) is published in [`ProjectionStatus`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures_util::{FutureExt, StreamExt};
use noroshi_domain::DomainEvent;
use noroshi_event_store::RecordedEvent;
use noroshi_event_store::relay::Leadership;
use noroshi_event_store::wire::decode_event;
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Channel on which a committed batch names its projection, for live view streams.
pub const VIEWS_CHANNEL: &str = "noroshi_views";

/// Turns a stored event into a domain event; supplied by the API layer, which owns the
/// wire format of payloads.
pub type Decoder = Arc<dyn Fn(&RecordedEvent) -> Result<DomainEvent, BoxError> + Send + Sync>;

/// A read model maintained from the event log.
pub trait Projection: Send + Sync + 'static {
    /// Its name, which keys its checkpoint and its leadership.
    const NAME: &'static str;
    /// Its tables, emptied (in this order) by a rebuild.
    const TABLES: &'static [&'static str];

    /// Applies one event inside the batch's transaction.
    fn apply(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// JetStream stream the relay publishes to.
    pub stream: String,
    /// Subject filter, e.g. `noroshi.*.events.>`.
    pub filter_subject: String,
    pub max_batch: usize,
    pub leader_retry_interval: Duration,
    /// Longest pause between retries after failures.
    pub max_backoff: Duration,
    /// Applied versions of source streams kept in memory; beyond it the runner forgets
    /// some and reads them back from `projection_stream_versions` when their streams
    /// come up again, so memory stays bounded however many streams it has seen.
    pub known_versions: usize,
}

/// A sensible [`RunnerConfig::known_versions`]: about 10 MB of stream ids.
pub const KNOWN_VERSIONS: usize = 100_000;

/// What a running projection reports; shared with health endpoints.
#[derive(Debug, Default)]
pub struct ProjectionStatus {
    /// Stream sequence of the last applied batch.
    pub checkpoint: AtomicU64,
    /// Messages on the stream not yet applied, as of the last look.
    pub lag: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("database")]
    Database(#[from] sqlx::Error),
    #[error("jetstream: {0}")]
    Nats(String),
    #[error("message at stream sequence {sequence} is not a noroshi event: {reason}")]
    Malformed { sequence: u64, reason: String },
    #[error("event {stream_id} v{version} does not decode")]
    Decode {
        stream_id: String,
        version: u64,
        source: BoxError,
    },
    #[error(
        "event {stream_id} v{version} arrived but v{expected} was never applied: the stream has a hole; rebuild the view"
    )]
    Gap {
        stream_id: String,
        version: u64,
        expected: u64,
    },
}

/// Runs `projection` until `shutdown`, leading when no other copy does.
pub async fn run<P: Projection>(
    database: PgConnectOptions,
    nats: async_nats::Client,
    config: RunnerConfig,
    projection: P,
    decoder: Decoder,
    status: Arc<ProjectionStatus>,
    shutdown: CancellationToken,
) {
    let key = lock_key(P::NAME);
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(mut leadership) =
            Leadership::acquire(&database, key, config.leader_retry_interval, &shutdown).await
        else {
            return;
        };
        let outcome = lead(
            leadership.connection(),
            &nats,
            &config,
            &projection,
            &decoder,
            &status,
            &shutdown,
        )
        .await;
        leadership.release().await;
        match outcome {
            Ok(()) => return,
            Err(error) => {
                tracing::error!(
                    projection = P::NAME,
                    error = &error as &dyn std::error::Error,
                    "projection stopped; retrying"
                );
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(config.max_backoff);
            }
        }
    }
}

/// Advisory-lock key of a projection: `"noroshi\x02"` and a hash of its name.
fn lock_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_be_bytes(*b"noroshi\x02") ^ (hash & 0xffff_ffff) as i64
}

type Messages = async_nats::jetstream::consumer::pull::Ordered;

/// The stream's messages after `checkpoint`, in order.
async fn open(
    nats: &async_nats::Client,
    config: &RunnerConfig,
    checkpoint: u64,
) -> Result<Messages, ProjectionError> {
    let nats_error = |e: &dyn std::fmt::Display| ProjectionError::Nats(e.to_string());
    let stream = jetstream::new(nats.clone())
        .get_stream(&config.stream)
        .await
        .map_err(|e| nats_error(&e))?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: config.filter_subject.clone(),
            deliver_policy: if checkpoint == 0 {
                DeliverPolicy::All
            } else {
                DeliverPolicy::ByStartSequence {
                    start_sequence: checkpoint + 1,
                }
            },
            ..OrderedConfig::default()
        })
        .await
        .map_err(|e| nats_error(&e))?;
    consumer.messages().await.map_err(|e| nats_error(&e))
}

/// The next batch: waits for one message, then takes whatever else has arrived, up to
/// `max`. `None` at shutdown.
async fn next_batch(
    messages: &mut Messages,
    max: usize,
    shutdown: &CancellationToken,
) -> Result<Option<Vec<jetstream::Message>>, ProjectionError> {
    let first = tokio::select! {
        () = shutdown.cancelled() => return Ok(None),
        next = messages.next() => next,
    };
    let Some(first) = first else {
        return Err(ProjectionError::Nats("the consumer ended".into()));
    };
    let mut batch = vec![first.map_err(|e| ProjectionError::Nats(e.to_string()))?];
    while batch.len() < max {
        match messages.next().now_or_never() {
            Some(Some(message)) => {
                batch.push(message.map_err(|e| ProjectionError::Nats(e.to_string()))?);
            }
            _ => break,
        }
    }
    Ok(Some(batch))
}

/// Where a projection is: the last applied stream sequence, the versions applied per
/// source stream (read from the database on first use, at most `capacity` of them kept),
/// and how many messages the stream held beyond the last batch when it was delivered.
#[derive(Debug)]
struct Position {
    checkpoint: u64,
    versions: HashMap<String, u64>,
    capacity: usize,
    pending: u64,
}

impl Position {
    fn new(checkpoint: u64, capacity: usize) -> Self {
        Self {
            checkpoint,
            versions: HashMap::new(),
            capacity,
            pending: 0,
        }
    }

    /// Remembers a committed batch's versions, forgetting others beyond the capacity:
    /// any will do, since a forgotten version is read back from the database.
    fn remember(&mut self, applied: HashMap<String, u64>) {
        self.versions.extend(applied);
        let excess = self.versions.len().saturating_sub(self.capacity);
        if excess > 0 {
            let forgotten: Vec<String> = self.versions.keys().take(excess).cloned().collect();
            for stream in forgotten {
                self.versions.remove(&stream);
            }
        }
    }
}

/// Applies `batch` and the new checkpoint in one transaction. On failure nothing is
/// applied and `position` is unchanged.
async fn apply_batch<P: Projection>(
    conn: &mut PgConnection,
    projection: &P,
    decoder: &Decoder,
    batch: &[jetstream::Message],
    position: &mut Position,
) -> Result<(), ProjectionError> {
    // This batch's versions; merged into `position` only once the batch has committed.
    let mut applied: HashMap<String, u64> = HashMap::new();
    // What this batch applied, per stream: the last version and its position.
    let mut written: HashMap<String, (u64, u64)> = HashMap::new();
    let mut tx = conn.begin().await?;
    let mut last_sequence = position.checkpoint;
    let mut pending = position.pending;
    for message in batch {
        let info = message
            .info()
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        let sequence = info.stream_sequence;
        pending = info.pending;
        let headers = message.headers.clone().unwrap_or_default();
        let recorded = decode_event(&headers, message.payload.clone()).map_err(|e| {
            ProjectionError::Malformed {
                sequence,
                reason: e.to_string(),
            }
        })?;
        last_sequence = sequence;
        let stream_id = recorded.stream_id.to_string();
        let known = applied
            .get(&stream_id)
            .or_else(|| position.versions.get(&stream_id));
        let last = match known {
            Some(&version) => version,
            None => {
                let stored: Option<i64> = sqlx::query_scalar(
                    "SELECT version FROM projection_stream_versions \
                     WHERE projection = $1 AND stream_id = $2",
                )
                .bind(P::NAME)
                .bind(&stream_id)
                .fetch_optional(&mut *tx)
                .await?;
                stored.and_then(|v| u64::try_from(v).ok()).unwrap_or(0)
            }
        };
        if recorded.version <= last {
            tracing::debug!(
                projection = P::NAME,
                stream_id,
                version = recorded.version,
                "skipping an event applied before"
            );
            applied.insert(stream_id, last);
            continue;
        }
        if recorded.version != last + 1 {
            return Err(ProjectionError::Gap {
                stream_id,
                version: recorded.version,
                expected: last + 1,
            });
        }
        let decoded = decoder(&recorded).map_err(|source| ProjectionError::Decode {
            stream_id: stream_id.clone(),
            version: recorded.version,
            source,
        })?;
        projection.apply(&mut tx, &recorded, &decoded).await?;
        written.insert(stream_id.clone(), (recorded.version, recorded.position));
        applied.insert(stream_id, recorded.version);
    }
    // The batch's versions, its checkpoint and the notification in one statement.
    // Inside the transaction: PostgreSQL delivers the notification at commit, never for
    // a batch that rolled back. Live view streams re-read on it.
    let count = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let (streams, (versions, positions)): (Vec<&str>, (Vec<i64>, Vec<i64>)) = written
        .iter()
        .map(|(stream, (version, position))| (stream.as_str(), (count(*version), count(*position))))
        .unzip();
    sqlx::query(
        "WITH versions AS ( \
           INSERT INTO projection_stream_versions (projection, stream_id, version, position) \
           SELECT $1, * FROM unnest($3::text[], $4::bigint[], $5::bigint[]) \
           ON CONFLICT (projection, stream_id) DO UPDATE \
             SET version = excluded.version, position = excluded.position), \
         checkpoint AS ( \
           INSERT INTO projection_checkpoints (projection, stream_sequence) VALUES ($1, $2) \
           ON CONFLICT (projection) DO UPDATE \
             SET stream_sequence = excluded.stream_sequence, updated_at = now()) \
         SELECT pg_notify($6, $1)",
    )
    .bind(P::NAME)
    .bind(count(last_sequence))
    .bind(&streams)
    .bind(&versions)
    .bind(&positions)
    .bind(VIEWS_CHANNEL)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    position.remember(applied);
    position.checkpoint = last_sequence;
    position.pending = pending;
    Ok(())
}

async fn lead<P: Projection>(
    conn: &mut PgConnection,
    nats: &async_nats::Client,
    config: &RunnerConfig,
    projection: &P,
    decoder: &Decoder,
    status: &ProjectionStatus,
    shutdown: &CancellationToken,
) -> Result<(), ProjectionError> {
    let checkpoint: i64 = sqlx::query_scalar(
        "SELECT coalesce(max(stream_sequence), 0) FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(P::NAME)
    .fetch_one(&mut *conn)
    .await?;
    let mut position = Position::new(
        u64::try_from(checkpoint).unwrap_or_default(),
        config.known_versions,
    );
    status
        .checkpoint
        .store(position.checkpoint, Ordering::Relaxed);
    let mut messages = open(nats, config, position.checkpoint).await?;
    tracing::info!(
        projection = P::NAME,
        checkpoint = position.checkpoint,
        "projection running"
    );
    let mut marked = true;
    while let Some(batch) = next_batch(&mut messages, config.max_batch, shutdown).await? {
        apply_batch(conn, projection, decoder, &batch, &mut position).await?;
        if marked && position.pending == 0 {
            // An interrupted rebuild left its mark; caught up, the view is whole again.
            sqlx::query(
                "UPDATE projection_checkpoints SET rebuilding = false \
                 WHERE projection = $1 AND rebuilding",
            )
            .bind(P::NAME)
            .execute(&mut *conn)
            .await?;
            marked = false;
        }
        status
            .checkpoint
            .store(position.checkpoint, Ordering::Relaxed);
        status.lag.store(position.pending, Ordering::Relaxed);
        tracing::debug!(
            projection = P::NAME,
            events = batch.len(),
            checkpoint = position.checkpoint,
            "batch applied"
        );
    }
    Ok(())
}

/// Progress of a rebuild: messages applied, of how many the stream held at the start.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Rebuilds `projection` from the start of the stream: takes its leadership (waiting
/// while a running copy leads), empties its tables and versions, marks it as being
/// rebuilt (views answer UNAVAILABLE meanwhile), replays every event up to the end of
/// the stream, and clears the mark. Returns the events applied.
pub async fn rebuild<P: Projection>(
    database: PgConnectOptions,
    nats: async_nats::Client,
    config: RunnerConfig,
    projection: P,
    decoder: Decoder,
    progress: Progress<'_>,
    shutdown: CancellationToken,
) -> Result<u64, ProjectionError> {
    let key = lock_key(P::NAME);
    let Some(mut leadership) =
        Leadership::acquire(&database, key, config.leader_retry_interval, &shutdown).await
    else {
        return Ok(0);
    };
    let outcome = replay(
        leadership.connection(),
        &nats,
        &config,
        &projection,
        &decoder,
        progress,
        &shutdown,
    )
    .await;
    leadership.release().await;
    outcome
}

async fn replay<P: Projection>(
    conn: &mut PgConnection,
    nats: &async_nats::Client,
    config: &RunnerConfig,
    projection: &P,
    decoder: &Decoder,
    progress: Progress<'_>,
    shutdown: &CancellationToken,
) -> Result<u64, ProjectionError> {
    let total = jetstream::new(nats.clone())
        .get_stream(&config.stream)
        .await
        .map_err(|e| ProjectionError::Nats(e.to_string()))?
        .get_info()
        .await
        .map_err(|e| ProjectionError::Nats(e.to_string()))?
        .state
        .messages;
    let mut tx = conn.begin().await?;
    for table in P::TABLES {
        // Table names are constants of the projection, never input.
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM projection_stream_versions WHERE projection = $1")
        .bind(P::NAME)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, stream_sequence, rebuilding) VALUES ($1, 0, true) \
         ON CONFLICT (projection) DO UPDATE SET stream_sequence = 0, rebuilding = true, updated_at = now()",
    )
    .bind(P::NAME)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    tracing::info!(projection = P::NAME, messages = total, "rebuilding");

    let mut position = Position::new(0, config.known_versions);
    let mut applied = 0;
    progress(0, total);
    if total > 0 {
        let mut messages = open(nats, config, 0).await?;
        loop {
            let Some(batch) = next_batch(&mut messages, config.max_batch, shutdown).await? else {
                // Interrupted: the mark stays, and views say the rebuild is unfinished.
                return Ok(applied);
            };
            apply_batch(conn, projection, decoder, &batch, &mut position).await?;
            applied += batch.len() as u64;
            progress(applied, total.max(applied));
            if position.pending == 0 {
                break;
            }
        }
    }
    sqlx::query("UPDATE projection_checkpoints SET rebuilding = false WHERE projection = $1")
        .bind(P::NAME)
        .execute(&mut *conn)
        .await?;
    tracing::info!(projection = P::NAME, applied, "rebuilt");
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_forgets_versions_beyond_its_capacity_and_keeps_the_newest_batch() {
        let mut position = Position::new(0, 3);
        let batch = |streams: &[(&str, u64)]| -> HashMap<String, u64> {
            streams.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
        };
        position.remember(batch(&[("a", 1), ("b", 1)]));
        assert_eq!(position.versions.len(), 2);
        position.remember(batch(&[("c", 4), ("d", 2), ("e", 9)]));
        assert_eq!(position.versions.len(), 3);
        // Whatever was forgotten, what is kept is exact.
        for (stream, version) in &position.versions {
            let expected = match stream.as_str() {
                "a" | "b" => 1,
                "c" => 4,
                "d" => 2,
                _ => 9,
            };
            assert_eq!(*version, expected, "{stream}");
        }
    }
}
