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
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use futures_util::{FutureExt, StreamExt};
use noroshi_domain::DomainEvent;
use noroshi_event_store::RecordedEvent;
use noroshi_event_store::leader::Leadership;
use noroshi_event_store::wire::{decode_event, event_source};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio_util::sync::CancellationToken;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Channel on which a committed batch names its projection, for live view streams: the
/// payload is the projection's name, then, one per line, the streams whose events the
/// batch applied, or nothing more when they would not fit in a notification
/// ([`changed_streams`] reads it).
pub const VIEWS_CHANNEL: &str = "noroshi_views";

/// Room for the stream ids in a notification's payload (PostgreSQL allows 8,000 bytes).
const NOTIFICATION_ROOM: usize = 7_500;

/// A [`VIEWS_CHANNEL`] payload: the projection, and the streams the batch applied when
/// they are listed (`None`: any row may have changed).
pub fn changed_streams(payload: &str) -> (&str, Option<Vec<&str>>) {
    let mut lines = payload.split('\n');
    let projection = lines.next().unwrap_or_default();
    let streams: Vec<&str> = lines.collect();
    (projection, (!streams.is_empty()).then_some(streams))
}

/// The payload announcing a batch of `projection` that applied `streams`.
fn notification<'a>(projection: &str, streams: impl Iterator<Item = &'a str>) -> String {
    let mut payload = projection.to_owned();
    for stream in streams {
        if payload.len() + stream.len() + 1 > NOTIFICATION_ROOM {
            return projection.to_owned();
        }
        payload.push('\n');
        payload.push_str(stream);
    }
    payload
}

/// Headers of a message that has none (and so is not a noroshi event).
static NO_HEADERS: std::sync::LazyLock<async_nats::HeaderMap> =
    std::sync::LazyLock::new(async_nats::HeaderMap::new);

/// A read model maintained from the event log.
pub trait Projection: Send + Sync + 'static {
    /// Its name, which keys its checkpoint and its leadership.
    const NAME: &'static str;
    /// Its tables, emptied (in this order) by a rebuild.
    const TABLES: &'static [&'static str];
    /// The aggregate types whose streams it reads (`facility`, `case`, `placement`).
    /// Events of other streams only move its checkpoint along: they are neither
    /// decoded nor versioned, and a batch of nothing else commits no transaction of
    /// its own (see [`FLUSH_EVERY`]).
    const SOURCES: &'static [&'static str];

    /// Applies a batch of events, in order, inside the batch's transaction. A projection
    /// may fold the batch in memory and write each row it changed once, so that a batch
    /// costs a few round trips to PostgreSQL however many events it holds. It looks rows
    /// up only for the ids `seen` says may have one.
    fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}

/// Which ids of cases and placements a projection's rows may exist for, so that a batch
/// looks up only those.
///
/// Live, any row may exist. A rebuild starts from empty tables and applies the log in
/// order, so a row exists only for an id the projection looked up in an earlier batch
/// (every projection looks up the ids of the rows its events may create, because live
/// those rows may exist already). Looking up the others, most ids of most batches in a
/// rebuild, costs a round trip and index probes that find nothing: `case_board` rebuilt
/// alone from a million events took 6.6 s with them and 4.3 s without.
#[derive(Debug, Default)]
pub struct Seen {
    /// `None` when live.
    looked_up: Option<foldhash::HashSet<uuid::Uuid>>,
}

impl Seen {
    /// Live: every id may have a row.
    pub fn live() -> Self {
        Self { looked_up: None }
    }

    /// Rebuilding from empty tables: no id has a row yet.
    pub fn rebuilding() -> Self {
        Self {
            looked_up: Some(foldhash::HashSet::default()),
        }
    }

    /// Whether `id` may have a row.
    pub fn may_exist(&self, id: &uuid::Uuid) -> bool {
        self.looked_up
            .as_ref()
            .is_none_or(|looked_up| looked_up.contains(id))
    }

    /// Of `ids`, those that may have a row.
    pub fn existing(&self, ids: &[uuid::Uuid]) -> Vec<uuid::Uuid> {
        ids.iter()
            .copied()
            .filter(|id| self.may_exist(id))
            .collect()
    }

    /// Notes ids the batch looked up (or would have): later batches may find rows for them.
    pub fn note(&mut self, ids: &[uuid::Uuid]) {
        if let Some(looked_up) = &mut self.looked_up {
            looked_up.extend(ids.iter().copied());
        }
    }
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
    /// some and reads them back from the database when their streams
    /// come up again, so memory stays bounded however many streams it has seen.
    pub known_versions: usize,
}

/// A sensible [`RunnerConfig::known_versions`]: about 10 MB of stream ids.
pub const KNOWN_VERSIONS: usize = 100_000;

/// Events of streams a projection does not read are committed with its next batch of
/// events it does read, or on their own once they have waited this long under a steady
/// load of other events...
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// ...or once no message has come for this long.
pub const FLUSH_IDLE: Duration = Duration::from_millis(50);

/// Whether a projection reading `sources` reads the streams of `aggregate_type`.
pub fn reads(sources: &[&str], aggregate_type: &str) -> bool {
    sources.contains(&aggregate_type)
}

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
    #[error("event store")]
    Store(#[from] noroshi_event_store::StoreError),
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
    status: Arc<ProjectionStatus>,
    shutdown: CancellationToken,
) {
    let database = with_session_settings(database);
    let key = lock_key(P::NAME);
    let mut backoff = Duration::from_millis(100);
    loop {
        let Some(mut leadership) = Leadership::acquire(
            &database,
            key,
            P::NAME,
            config.leader_retry_interval,
            &shutdown,
        )
        .await
        else {
            return;
        };
        let outcome = lead(
            leadership.connection(),
            &nats,
            &config,
            &projection,
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

/// The leader's connection plans its statements as the event store's pools do
/// ([`noroshi_event_store::SESSION_SETTINGS`]): every statement here is a keyed lookup or
/// write, and a custom plan made from the statistics of a table still nearly empty (as
/// during a rebuild) scans the whole table for each batch.
pub(crate) fn with_session_settings(database: PgConnectOptions) -> PgConnectOptions {
    database.options(noroshi_event_store::SESSION_SETTINGS.iter().copied())
}

/// Advisory-lock key of a projection: `"noroshi\x02"` and a hash of its name.
pub(crate) fn lock_key(name: &str) -> i64 {
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    i64::from_be_bytes(*b"noroshi\x02") ^ (hash & 0xffff_ffff) as i64
}

type Messages = async_nats::jetstream::consumer::pull::Ordered;

/// The stream's messages after `checkpoint`, in order.
pub(crate) async fn open(
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

/// How long a batch waits for messages the stream already held when it began: a
/// catching-up projection then commits large batches rather than whatever the last fetch
/// brought. A live projection never waits for events that did not exist yet, so under a
/// steady load each batch is what arrived while the last one was being committed.
const BACKLOG_FILL: Duration = Duration::from_millis(50);

/// The next batch: waits for one message (or shutdown, or `flush_at`), then takes
/// whatever else has arrived, up to `max`, and, within `fill` ([`BACKLOG_FILL`] for a
/// running projection), the messages the server said were pending behind the first one.
pub(crate) async fn next<E: std::fmt::Display>(
    messages: &mut (impl futures_util::Stream<Item = Result<jetstream::Message, E>> + Unpin),
    max: usize,
    fill: Duration,
    shutdown: &CancellationToken,
    flush_at: Option<Instant>,
) -> Result<Next, ProjectionError> {
    let flush = async {
        match flush_at {
            Some(at) => tokio::time::sleep_until(at.into()).await,
            None => std::future::pending().await,
        }
    };
    // Only the first message is awaited under the select: nothing taken is dropped.
    let first = tokio::select! {
        () = shutdown.cancelled() => return Ok(Next::Shutdown),
        () = flush => return Ok(Next::Flush),
        next = messages.next() => next,
    };
    let nats = |e: &dyn std::fmt::Display| ProjectionError::Nats(e.to_string());
    let Some(first) = first else {
        return Err(ProjectionError::Nats("the consumer ended".into()));
    };
    let first = first.map_err(|e| nats(&e))?;
    // Messages stored behind the first when it was delivered; later arrivals are not
    // waited for, or a steady trickle would hold every batch for the whole `fill`.
    let owed = first.info().map_or(0, |info| info.pending);
    let mut batch = vec![first];
    let fill_until = tokio::time::Instant::now() + fill;
    while batch.len() < max {
        let message = match messages.next().now_or_never() {
            Some(message) => message,
            None => {
                if batch.len() as u64 > owed {
                    break;
                }
                match tokio::time::timeout_at(fill_until, messages.next()).await {
                    Ok(message) => message,
                    Err(_) => break,
                }
            }
        };
        let Some(message) = message else {
            break;
        };
        batch.push(message.map_err(|e| nats(&e))?);
    }
    Ok(Next::Batch(batch))
}

/// Where a projection is: the last committed stream sequence and store position, the
/// versions applied per source stream (read from the database on first use, at most
/// `capacity` of them kept), how many messages the stream held beyond the last batch
/// when it was delivered, and what was consumed since the last commit without touching
/// the view.
#[derive(Debug)]
struct Position {
    checkpoint: u64,
    store_position: u64,
    versions: HashMap<String, u64>,
    capacity: usize,
    pending: u64,
    unflushed: Option<Unflushed>,
}

/// Messages consumed but not committed: all of streams the projection does not read.
#[derive(Debug, Clone, Copy)]
struct Unflushed {
    sequence: u64,
    store_position: u64,
    since: Instant,
}

impl Position {
    fn new(checkpoint: u64, store_position: u64, capacity: usize) -> Self {
        Self {
            checkpoint,
            store_position,
            versions: HashMap::new(),
            capacity,
            pending: 0,
            unflushed: None,
        }
    }

    /// The stream sequence and store position consumed so far, committed or not.
    fn consumed(&self) -> (u64, u64) {
        self.unflushed
            .map_or((self.checkpoint, self.store_position), |u| {
                (u.sequence, u.store_position)
            })
    }

    /// Remembers a committed batch, forgetting versions beyond the capacity: any will
    /// do, since a forgotten version is read back from the database.
    fn committed(&mut self, applied: HashMap<String, u64>, sequence: u64, store_position: u64) {
        self.versions.extend(applied);
        let excess = self.versions.len().saturating_sub(self.capacity);
        if excess > 0 {
            let forgotten: Vec<String> = self.versions.keys().take(excess).cloned().collect();
            for stream in forgotten {
                self.versions.remove(&stream);
            }
        }
        self.checkpoint = sequence;
        self.store_position = store_position;
        self.unflushed = None;
    }

    /// When what was consumed without a commit should be committed on its own.
    fn flush_at(&self, last_message: Instant) -> Option<Instant> {
        self.unflushed
            .map(|u| (u.since + FLUSH_EVERY).min(last_message + FLUSH_IDLE))
    }
}

/// Applies the events of `batch` that the projection reads, with their versions, the
/// new checkpoint and a change notification, in one transaction. A batch with none of
/// them opens no transaction: it only moves the position along in memory, for
/// [`flush`] or the next batch to commit. On failure nothing is applied and `position`
/// is unchanged.
async fn apply_batch<P: Projection>(
    conn: &mut PgConnection,
    projection: &P,
    batch: &[jetstream::Message],
    position: &mut Position,
    store: &str,
) -> Result<(), ProjectionError> {
    // This batch's versions; merged into `position` only once the batch has committed.
    let mut applied: HashMap<String, u64> = HashMap::new();
    // What this batch applied, per stream: the last version and its position.
    let mut written: HashMap<String, (u64, u64)> = HashMap::new();
    let (mut last_sequence, mut store_position) = position.consumed();
    let mut events = Vec::with_capacity(batch.len());
    for message in batch {
        let info = message
            .info()
            .map_err(|e| ProjectionError::Nats(e.to_string()))?;
        let sequence = info.stream_sequence;
        position.pending = info.pending;
        last_sequence = sequence;
        if let Some(foreign) = foreign(message, store) {
            refuse::<P>(conn, sequence, foreign).await?;
            continue;
        }
        let (aggregate_type, event_position) = source(message, sequence)?;
        store_position = store_position.max(event_position);
        // An event of a stream the projection does not read is passed over undecoded.
        if reads(P::SOURCES, aggregate_type) {
            events.push(recorded(message, sequence)?);
        }
    }
    if events.is_empty() {
        let since = position.unflushed.map_or_else(Instant::now, |u| u.since);
        position.unflushed = Some(Unflushed {
            sequence: last_sequence,
            store_position,
            since,
        });
        return Ok(());
    }
    let mut tx = conn.begin().await?;
    // The last applied version of each stream not in memory, in one query: the
    // projection's own row, or else its baseline's.
    let unknown: Vec<String> = events
        .iter()
        .map(|e| e.stream_id.to_string())
        .filter(|stream| !position.versions.contains_key(stream))
        .collect::<std::collections::HashSet<_>>()
        .into_iter()
        .collect();
    let mut stored: HashMap<String, u64> = HashMap::new();
    if !unknown.is_empty() {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT * FROM ( \
               SELECT w.stream_id, projection_applied_version($1, w.stream_id) AS version \
               FROM unnest($2::text[]) AS w (stream_id)) applied \
             WHERE version IS NOT NULL",
        )
        .bind(P::NAME)
        .bind(&unknown)
        .fetch_all(&mut *tx)
        .await?;
        stored.extend(
            rows.into_iter()
                .map(|(stream, version)| (stream, u64::try_from(version).unwrap_or_default())),
        );
    }
    let mut fresh = Vec::with_capacity(events.len());
    let mut healed: u64 = 0;
    for recorded in events {
        let stream_id = recorded.stream_id.to_string();
        let last = applied
            .get(&stream_id)
            .or_else(|| position.versions.get(&stream_id))
            .or_else(|| stored.get(&stream_id))
            .copied()
            .unwrap_or(0);
        if recorded.version > last + 1 {
            // A hole: the versions between never reached this projection (JetStream lost,
            // deleted or purged them). The event store has them: they are applied first,
            // in order, so nothing is skipped and nothing applied twice.
            let missing = noroshi_event_store::read_versions(
                &mut tx,
                &stream_id,
                last + 1,
                recorded.version - 1,
            )
            .await?;
            if missing.len() as u64 != recorded.version - 1 - last {
                return Err(ProjectionError::Gap {
                    stream_id,
                    version: recorded.version,
                    expected: last + 1,
                });
            }
            tracing::warn!(
                projection = P::NAME,
                stream_id,
                from = last + 1,
                to = recorded.version - 1,
                "versions missing from the stream; read back from the event store"
            );
            for event in missing {
                let decoded = decode(&event)?;
                written.insert(stream_id.clone(), (event.version, event.position));
                applied.insert(stream_id.clone(), event.version);
                store_position = store_position.max(event.position);
                healed += 1;
                fresh.push((event, decoded));
            }
        }
        let last = applied.get(&stream_id).copied().unwrap_or(last);
        if !is_new(&stream_id, recorded.version, last)? {
            tracing::debug!(
                projection = P::NAME,
                stream_id,
                version = recorded.version,
                "skipping an event applied before"
            );
            applied.insert(stream_id, last);
            continue;
        }
        let decoded = decode(&recorded)?;
        written.insert(stream_id.clone(), (recorded.version, recorded.position));
        applied.insert(stream_id, recorded.version);
        fresh.push((recorded, decoded));
    }
    projection.apply(&mut tx, &fresh, &mut Seen::live()).await?;
    // The batch's versions, its checkpoint and the notification in one statement.
    // Inside the transaction: PostgreSQL delivers the notification at commit, never for
    // a batch that rolled back. Live view streams re-read on it. A batch of events applied
    // before (redelivered after a restart) changed no view and notifies nobody: a
    // notification without streams would make every stream read its whole view.
    let (streams, (versions, positions)): (Vec<&str>, (Vec<i64>, Vec<i64>)) = written
        .iter()
        .map(|(stream, (version, position))| (stream.as_str(), (count(*version), count(*position))))
        .unzip();
    sqlx::query(
        "WITH versions AS ( \
           INSERT INTO projection_stream_versions (projection, stream_id, version, position) \
           SELECT $1, * FROM unnest($4::text[], $5::bigint[], $6::bigint[]) \
           ON CONFLICT (projection, stream_id) DO UPDATE \
             SET version = excluded.version, position = excluded.position), \
         checkpoint AS ( \
           INSERT INTO projection_checkpoints (projection, stream_sequence, position, healed_events) \
           VALUES ($1, $2, $3, $9) \
           ON CONFLICT (projection) DO UPDATE \
             SET stream_sequence = excluded.stream_sequence, position = excluded.position, \
                 healed_events = projection_checkpoints.healed_events + $9, \
                 updated_at = now()) \
         SELECT pg_notify($7, $8) WHERE cardinality($4::text[]) > 0",
    )
    .bind(P::NAME)
    .bind(count(last_sequence))
    .bind(count(store_position))
    .bind(&streams)
    .bind(&versions)
    .bind(&positions)
    .bind(VIEWS_CHANNEL)
    .bind(notification(P::NAME, streams.iter().copied()))
    .bind(count(healed))
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    position.committed(applied, last_sequence, store_position);
    Ok(())
}

/// The store a message names as its publisher when that is not `store` (this one's).
/// A message that names none was published before stores were named: it is this one's.
pub(crate) fn foreign<'m>(message: &'m jetstream::Message, store: &str) -> Option<&'m str> {
    let headers = message.headers.as_ref()?;
    noroshi_event_store::wire::publishing_store(headers).filter(|s| *s != store)
}

/// Refuses the event of another store at stream sequence `sequence`: nothing of it is
/// applied; it is counted (`/metrics`, `projection_foreign_events`) and said loudly.
async fn refuse<P: Projection>(
    conn: &mut PgConnection,
    sequence: u64,
    foreign: &str,
) -> Result<(), ProjectionError> {
    tracing::error!(
        projection = P::NAME,
        sequence,
        store = foreign,
        "an event of another store is on this projection's stream; refused, not applied: \
         two deployments share one stream (give each its own NOROSHI_NATS_STREAM and \
         NOROSHI_NATS_SUBJECT_PREFIX)"
    );
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, stream_sequence, position, foreign_events) \
         VALUES ($1, 0, 0, 1) \
         ON CONFLICT (projection) DO UPDATE \
           SET foreign_events = projection_checkpoints.foreign_events + 1",
    )
    .bind(P::NAME)
    .execute(conn)
    .await?;
    Ok(())
}

/// The aggregate type and store position of the event a message carries (`sequence`:
/// its stream sequence), from its headers alone.
pub(crate) fn source(
    message: &jetstream::Message,
    sequence: u64,
) -> Result<(&str, u64), ProjectionError> {
    let headers = message.headers.as_ref().unwrap_or(&NO_HEADERS);
    event_source(headers).map_err(|e| ProjectionError::Malformed {
        sequence,
        reason: e.to_string(),
    })
}

/// The stored event a message carries (`sequence`: its stream sequence).
pub(crate) fn recorded(
    message: &jetstream::Message,
    sequence: u64,
) -> Result<RecordedEvent, ProjectionError> {
    let headers = message.headers.as_ref().unwrap_or(&NO_HEADERS);
    decode_event(headers, message.payload.clone()).map_err(|e| ProjectionError::Malformed {
        sequence,
        reason: e.to_string(),
    })
}

/// The domain event a stored event holds.
pub(crate) fn decode(recorded: &RecordedEvent) -> Result<DomainEvent, ProjectionError> {
    noroshi_codec::decode(recorded).map_err(|source| ProjectionError::Decode {
        stream_id: recorded.stream_id.to_string(),
        version: recorded.version,
        source: Box::new(source),
    })
}

/// Whether the event at `version` of a stream whose last applied version is `last` is
/// new (`true`) or was applied before (`false`); an error when it lies beyond a hole.
pub(crate) fn is_new(stream_id: &str, version: u64, last: u64) -> Result<bool, ProjectionError> {
    if version <= last {
        return Ok(false);
    }
    if version != last + 1 {
        return Err(ProjectionError::Gap {
            stream_id: stream_id.to_owned(),
            version,
            expected: last + 1,
        });
    }
    Ok(true)
}

/// Commits the checkpoint of messages consumed without a batch of their own. It sends
/// no notification: no view changed.
async fn flush<P: Projection>(
    conn: &mut PgConnection,
    position: &mut Position,
) -> Result<(), ProjectionError> {
    let Some(unflushed) = position.unflushed else {
        return Ok(());
    };
    sqlx::query(
        "INSERT INTO projection_checkpoints (projection, stream_sequence, position) \
         VALUES ($1, $2, $3) ON CONFLICT (projection) DO UPDATE \
         SET stream_sequence = excluded.stream_sequence, position = excluded.position, \
             updated_at = now()",
    )
    .bind(P::NAME)
    .bind(count(unflushed.sequence))
    .bind(count(unflushed.store_position))
    .execute(&mut *conn)
    .await?;
    position.committed(HashMap::new(), unflushed.sequence, unflushed.store_position);
    Ok(())
}

/// A sequence, version or position as PostgreSQL's bigint.
pub(crate) fn count(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads the projection's committed position.
async fn committed_position(
    conn: &mut PgConnection,
    name: &str,
    capacity: usize,
) -> Result<Position, ProjectionError> {
    let (checkpoint, store_position): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(max(stream_sequence), 0), coalesce(max(position), 0) \
         FROM projection_checkpoints WHERE projection = $1",
    )
    .bind(name)
    .fetch_one(&mut *conn)
    .await?;
    let known = |v: i64| u64::try_from(v).unwrap_or_default();
    Ok(Position::new(
        known(checkpoint),
        known(store_position),
        capacity,
    ))
}

/// What the runner does next.
pub(crate) enum Next {
    Batch(Vec<jetstream::Message>),
    Flush,
    Shutdown,
}

async fn lead<P: Projection>(
    conn: &mut PgConnection,
    nats: &async_nats::Client,
    config: &RunnerConfig,
    projection: &P,
    status: &ProjectionStatus,
    shutdown: &CancellationToken,
) -> Result<(), ProjectionError> {
    let store = noroshi_event_store::store_id(&mut *conn).await?.to_string();
    let mut position = committed_position(conn, P::NAME, config.known_versions).await?;
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
    let mut last_message = Instant::now();
    loop {
        let flush_at = position.flush_at(last_message);
        let batch = match next(
            &mut messages,
            config.max_batch,
            BACKLOG_FILL,
            shutdown,
            flush_at,
        )
        .await?
        {
            Next::Batch(batch) => batch,
            Next::Flush => {
                flush::<P>(conn, &mut position).await?;
                continue;
            }
            Next::Shutdown => {
                // Saves a successor replaying what was consumed; losing it loses nothing.
                if let Err(error) = flush::<P>(conn, &mut position).await {
                    tracing::debug!(projection = P::NAME, error = %error, "checkpoint not saved at shutdown");
                }
                return Ok(());
            }
        };
        last_message = Instant::now();
        apply_batch(conn, projection, &batch, &mut position, &store).await?;
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
        let (consumed, _) = position.consumed();
        status.checkpoint.store(consumed, Ordering::Relaxed);
        status.lag.store(position.pending, Ordering::Relaxed);
        tracing::debug!(
            projection = P::NAME,
            events = batch.len(),
            checkpoint = consumed,
            "batch applied"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notification_lists_the_streams_it_has_room_for_or_none() {
        let payload = notification("bed_board", ["facility-a", "facility-b"].into_iter());
        assert_eq!(
            changed_streams(&payload),
            ("bed_board", Some(vec!["facility-a", "facility-b"]))
        );
        assert_eq!(changed_streams("bed_board"), ("bed_board", None));
        let many: Vec<String> = (0..1000).map(|i| format!("facility-{i:05}")).collect();
        let payload = notification("bed_board", many.iter().map(String::as_str));
        assert_eq!(payload, "bed_board");
    }

    #[test]
    fn a_position_forgets_versions_beyond_its_capacity_and_keeps_the_newest_batch() {
        let mut position = Position::new(0, 0, 3);
        let batch = |streams: &[(&str, u64)]| -> HashMap<String, u64> {
            streams.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
        };
        position.committed(batch(&[("a", 1), ("b", 1)]), 2, 2);
        assert_eq!(position.versions.len(), 2);
        position.committed(batch(&[("c", 4), ("d", 2), ("e", 9)]), 5, 9);
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
