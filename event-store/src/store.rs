//! Appending to and reading from the PostgreSQL event store.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use sqlx::Connection as _;
use sqlx::Row;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::append::{Refused, append_pooled, append_validated, same_request, to_u64};
use crate::batch::{BatchCounts, Lanes};
use crate::error::{AppendError, InvalidAppend, StoreError, connection_lost};
use crate::event::{
    AppendRequest, AppendResult, AppendedEvent, ExpectedVersion, GlobalCursor, ReadAllPage,
    RecordedEvent, StreamAppended,
};
use crate::relay::OUTBOX_CHANNEL;
use crate::stream_id::{Prefecture, StreamId};

/// Longest actor (principal id) and event type accepted.
const MAX_NAME_LEN: usize = 200;

/// Bounds on what one append may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    /// Largest payload of one event. The default, 1 MiB, leaves room for the metadata
    /// headers under a 2 MiB NATS `max_payload` (see `ops/nats/`).
    pub max_payload_bytes: usize,
    /// Most events in one append, over all its streams.
    pub max_events_per_append: usize,
}

impl Default for StoreLimits {
    fn default() -> Self {
        Self {
            max_payload_bytes: 1024 * 1024,
            max_events_per_append: 1000,
        }
    }
}

/// The event store: a handle over a PostgreSQL pool, cheap to clone.
#[derive(Debug, Clone)]
pub struct EventStore {
    pool: PgPool,
    limits: StoreLimits,
    wake: Arc<RelayWake>,
    /// Group commit of single-stream appends, started on first use.
    lanes: Arc<OnceLock<Lanes>>,
    batched: Arc<BatchCounts>,
}

/// Wakes the relay after commits, outside the append transactions.
///
/// A NOTIFY inside the append would hold PostgreSQL's cluster-wide notify lock through
/// each commit and serialise all appends. Instead, appends post to a one-slot channel and
/// one task sends a single `pg_notify` per burst of commits; the task ends when the last
/// clone of the store is dropped. A lost wake-up only delays the relay until its next
/// poll; it never loses an event (the outbox is the record).
type RelayWake = OnceLock<mpsc::Sender<()>>;

const WAKE_RELAY: &str = "SELECT pg_notify($1, '')";

/// Queued attempts of an append that expects any version and keeps losing the next
/// version to concurrent writers.
const ANY_VERSION_ATTEMPTS: usize = 16;

/// A transaction lock per stream for queued appends. The two-key form keeps these apart
/// from the single-key session locks that elect the relay and projection leaders; the
/// first key, `"nrsq"`, marks the class.
const QUEUE_ON_STREAM: &str = "SELECT pg_advisory_xact_lock(1852994417, hashtext($1))";

macro_rules! event_columns {
    () => {
        "e.event_id, e.stream_id, e.version, e.position, e.event_type, e.schema_version, \
         e.occurred_at, e.recorded_at, e.command_id, e.correlation_id, e.causation_id, \
         e.actor, e.prefecture, e.payload"
    };
}
pub(crate) use event_columns;

const READ_STREAM: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e WHERE e.stream_id = $1 AND e.version >= $2 ORDER BY e.version LIMIT $3"
);

const READ_VERSIONS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e WHERE e.stream_id = $1 AND e.version BETWEEN $2 AND $3 ORDER BY e.version"
);

/// The events of several streams, each in a range of versions of its own, after a
/// position.
const READ_STREAMS: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM unnest($1::text[], $2::bigint[], $3::bigint[]) AS b(stream_id, first, last) \
     JOIN events e ON e.stream_id = b.stream_id AND e.version BETWEEN b.first AND b.last \
     WHERE e.position > $4 ORDER BY e.position LIMIT $5"
);

const COMMAND_EVENTS: &str = "SELECT event_id, stream_id, version, position, request_digest \
    FROM events WHERE command_id = $1 ORDER BY position";

const STREAM_VERSION: &str = "SELECT max(version) FROM events WHERE stream_id = $1";

/// Only transactions older than every running one are final: nothing can commit
/// behind them any more.
const READ_ALL: &str = concat!(
    "SELECT e.transaction_id::text AS transaction_id, ",
    event_columns!(),
    " FROM events e \
      WHERE (e.transaction_id, e.position) > ($1::text::xid8, $2) \
        AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) \
      ORDER BY e.transaction_id, e.position \
      LIMIT $3"
);

/// Every event of streams of some aggregate types, in position order: the log as one
/// snapshot sees it (see [`read_snapshot`]).
const READ_SNAPSHOT: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e WHERE split_part(e.stream_id, '-', 1) = ANY($1) ORDER BY e.position"
);

/// Events of streams of some aggregate types in a range of positions, in position order.
const READ_RANGE: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM events e WHERE e.position > $1 AND e.position <= $2 \
        AND split_part(e.stream_id, '-', 1) = ANY($3) ORDER BY e.position LIMIT $4"
);

/// The position and time of the last event recorded at or before a time.
const POSITION_AT: &str = "SELECT position, recorded_at FROM events WHERE recorded_at <= $1 \
     ORDER BY recorded_at DESC, position DESC LIMIT 1";

/// The highest position whose event was recorded before `now() - $1` and before every
/// transaction of this database still running began: see [`EventStore::settled`].
const SETTLED: &str = "SELECT coalesce(max(position), 0) FROM events WHERE recorded_at < least( \
       now() - $1::interval, \
       coalesce((SELECT min(xact_start) FROM pg_stat_activity \
                 WHERE datname = current_database() AND backend_xid IS NOT NULL \
                   AND pid <> pg_backend_pid()), now()))";

/// How many events [`read_snapshot`] will return, and the highest position in the log.
const SNAPSHOT_EXTENT: &str = "SELECT \
       count(*) FILTER (WHERE split_part(stream_id, '-', 1) = ANY($1)), \
       coalesce(max(position), 0) \
     FROM events";

/// Session settings the store's statements are written for; apply them to the pool's
/// connections with [`connect_options`].
///
/// `plan_cache_mode = force_generic_plan`: every query of the store is an equality lookup
/// or insert whose best plan does not depend on its parameters, but with array
/// parameters PostgreSQL keeps choosing custom plans and plans the append again on every
/// execution. Measured with `ops/bench append`: 4,864 appends/s with the default, 5,553
/// with generic plans.
pub const SESSION_SETTINGS: &[(&str, &str)] = &[("plan_cache_mode", "force_generic_plan")];

/// Connection options for a pool the event store uses: `url` with [`SESSION_SETTINGS`].
pub fn connect_options(url: &str) -> Result<PgConnectOptions, sqlx::Error> {
    Ok(PgConnectOptions::from_str(url)?.options(SESSION_SETTINGS.iter().copied()))
}

/// A pooled connection idle for longer than this is checked with a round trip before it
/// is handed out; one used more recently is handed out as it is.
pub const PING_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Pool options for the event store and the API: sqlx's defaults, except when a
/// connection is checked.
///
/// By default sqlx checks every connection it hands out with a round trip, so every
/// statement through the pool cost one more round trip, and PostgreSQL one more wake-up,
/// before it was even sent. Here only a connection idle for over [`PING_IDLE_AFTER`] is
/// checked: a connection that went idle before an outage of the database is still
/// found dead and replaced, rather than handed out to fail the first command after it.
/// One used within the last second and cut since fails its statement like any
/// connection cut mid-statement; [`EventStore::append`] then tries again on another,
/// which a committed command id makes safe.
pub fn pool_options() -> PgPoolOptions {
    PgPoolOptions::new()
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > PING_IDLE_AFTER {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

impl EventStore {
    pub fn new(pool: PgPool, limits: StoreLimits) -> Self {
        Self {
            pool,
            limits,
            wake: Arc::default(),
            lanes: Arc::default(),
            batched: Arc::default(),
        }
    }

    /// Tells the relay that events were committed. [`Self::append`] calls it; callers of
    /// [`Self::append_on`] call it after their transaction commits.
    pub fn notify_committed(&self) {
        let wake = self.wake.get_or_init(|| {
            let (wake, mut woken) = mpsc::channel::<()>(1);
            let pool = self.pool.clone();
            tokio::spawn(async move {
                while woken.recv().await.is_some() {
                    let notified = sqlx::query(WAKE_RELAY)
                        .bind(OUTBOX_CHANNEL)
                        .execute(&pool)
                        .await;
                    if let Err(error) = notified {
                        tracing::debug!(error = %error, "cannot wake the relay; it will poll");
                    }
                }
            });
            wake
        });
        // A full slot means a wake-up is already pending; this commit rides on it.
        let _ = wake.try_send(());
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn limits(&self) -> StoreLimits {
        self.limits
    }

    /// How many appends went to the database together with others (see [`crate::batch`]).
    pub fn batched(&self) -> &BatchCounts {
        &self.batched
    }

    /// Appends every stream write of `request` atomically, or nothing.
    #[tracing::instrument(skip_all, fields(command_id = %request.command_id, correlation_id = %request.correlation_id))]
    pub async fn append(&self, request: &AppendRequest) -> Result<AppendResult, AppendError> {
        validate(request, self.limits)?;
        let batched = if Lanes::takes(request) {
            let lanes = self
                .lanes
                .get_or_init(|| Lanes::start(&self.pool, &self.batched));
            lanes.append(request).await
        } else {
            None
        };
        let mut outcome = match batched {
            Some(outcome) => outcome,
            None => append_pooled(&self.pool, request).await,
        };
        // A pooled connection may have died since its last use (the pool checks only
        // those idle for a while): try again on another. Safe whatever the dead one did,
        // because a committed command id answers the retry with its events.
        let mut reconnects = 0;
        while let Err(Refused::Error(AppendError::Store(StoreError::Unavailable(error)))) = &outcome
        {
            if !connection_lost(error) || reconnects >= self.pool.options().get_max_connections() {
                break;
            }
            reconnects += 1;
            outcome = append_pooled(&self.pool, request).await;
        }
        let mut attempts = 0;
        // Writers that expect any version and lost it to another writer queue up on the
        // stream instead of racing again, so a hot stream cannot starve them.
        while let Err(Refused::VersionTaken(stream_id)) = &outcome {
            if !expects_any(request, stream_id) || attempts >= ANY_VERSION_ATTEMPTS {
                break;
            }
            attempts += 1;
            outcome = self.append_queued(request).await;
        }
        let result = self.settle(request, outcome).await?;
        // After a reconnect, "replayed" may be this very call's commit, made on the
        // connection that died before it could answer.
        if !result.replayed || reconnects > 0 {
            self.notify_committed();
        }
        Ok(result)
    }

    /// Like [`Self::append`], on a connection the caller controls, e.g. inside a
    /// transaction that also writes other rows. The append then commits with that
    /// transaction, and a failure leaves the transaction aborted: that includes losing a
    /// version to a concurrent writer (also with [`ExpectedVersion::Any`], which is not
    /// retried here) and a concurrent commit of the same command, whose committed result
    /// is returned although the caller's transaction can no longer commit.
    pub async fn append_on(
        &self,
        conn: &mut PgConnection,
        request: &AppendRequest,
    ) -> Result<AppendResult, AppendError> {
        validate(request, self.limits)?;
        let outcome = append_validated(conn, request).await;
        self.settle(request, outcome).await
    }

    /// The append in a transaction that first takes, in stream order, a transaction lock
    /// on every stream it expects any version of. Only writers that lost a race take these
    /// locks, so they take turns; the append itself still checks versions as always.
    async fn append_queued(&self, request: &AppendRequest) -> Result<AppendResult, Refused> {
        let mut tx = self.pool.begin().await?;
        let mut queued: Vec<&str> = request
            .streams
            .iter()
            .filter(|w| w.expected == ExpectedVersion::Any)
            .map(|w| w.stream_id.as_str())
            .collect();
        queued.sort_unstable();
        for stream_id in queued {
            sqlx::query(QUEUE_ON_STREAM)
                .bind(stream_id)
                .execute(&mut *tx)
                .await?;
        }
        let result = append_validated(&mut tx, request).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Turns a refused statement into the caller's answer, asking the store what won.
    ///
    /// A concurrent commit of the same command can surface on any of the unique indexes
    /// (its event ids, its versions, its command id), so every refusal first asks whether
    /// this command is now committed; if so, that is the answer.
    async fn settle(
        &self,
        request: &AppendRequest,
        outcome: Result<AppendResult, Refused>,
    ) -> Result<AppendResult, AppendError> {
        let refused = match outcome {
            Ok(result) => return Ok(result),
            Err(Refused::Error(error)) => return Err(error),
            Err(refused) => refused,
        };
        let committed = self
            .command_result(request.command_id, request.request_digest.as_deref())
            .await?;
        if let Some(committed) = committed {
            let same_streams = committed.streams.len() == request.streams.len()
                && request
                    .streams
                    .iter()
                    .all(|w| committed.streams.iter().any(|s| s.stream_id == w.stream_id));
            return if same_streams {
                Ok(committed)
            } else {
                Err(AppendError::CommandIdReused {
                    command_id: request.command_id,
                })
            };
        }
        match refused {
            Refused::VersionTaken(stream_id) => {
                let expected = request
                    .streams
                    .iter()
                    .find(|w| w.stream_id == stream_id)
                    .map_or(ExpectedVersion::Any, |w| w.expected);
                let actual = self.stream_version(&stream_id).await?.unwrap_or(0);
                Err(AppendError::WrongExpectedVersion {
                    stream_id,
                    expected,
                    actual,
                })
            }
            Refused::EventIdTaken(event_id) => {
                Err(InvalidAppend::DuplicateEventId { event_id }.into())
            }
            Refused::CommandCommitted | Refused::Error(_) => Err(StoreError::Corrupt(format!(
                "command {} was refused as committed but has no events",
                request.command_id
            ))
            .into()),
        }
    }

    /// The result of a committed command, as a retry of it would return it (`replayed`
    /// set), or `None` when no such command was committed. Streams come in the order of
    /// their first event. With `request_digest`, a command committed from a request of
    /// another digest is [`AppendError::CommandIdReused`].
    pub async fn command_result(
        &self,
        command_id: Uuid,
        request_digest: Option<&[u8]>,
    ) -> Result<Option<AppendResult>, AppendError> {
        let rows = sqlx::query(COMMAND_EVENTS)
            .bind(command_id)
            .fetch_all(&self.pool)
            .await
            .map_err(StoreError::from)?;
        let mut streams: Vec<StreamAppended> = Vec::new();
        for row in &rows {
            let stored: Option<Vec<u8>> = row.try_get("request_digest")?;
            same_request(command_id, request_digest, stored.as_deref())?;
            let stream: String = row.try_get("stream_id")?;
            let event = AppendedEvent {
                event_id: row.try_get("event_id")?,
                version: to_u64(row.try_get("version")?)?,
                position: to_u64(row.try_get("position")?)?,
            };
            let index = match streams.iter().position(|s| s.stream_id.as_str() == stream) {
                Some(index) => index,
                None => {
                    let stream_id = StreamId::parse(&stream)
                        .map_err(|e| StoreError::Corrupt(format!("stream id {stream:?}: {e}")))?;
                    streams.push(StreamAppended {
                        stream_id,
                        version: 0,
                        position: 0,
                        events: Vec::new(),
                    });
                    streams.len() - 1
                }
            };
            let slot = &mut streams[index];
            slot.record(event);
        }
        Ok((!streams.is_empty()).then_some(AppendResult {
            command_id,
            streams,
            replayed: true,
        }))
    }

    /// This store's identity, made at its first migrate: the relay stamps every event
    /// it publishes with it (`Noroshi-Store`).
    pub async fn store_id(&self) -> Result<Uuid, StoreError> {
        crate::identity::store_id(&self.pool).await
    }

    /// The position of the newest event (0 while there is none) and the number of
    /// committed events the relay has not published yet (its backlog).
    pub async fn head(&self) -> Result<(u64, u64), StoreError> {
        let (head, backlog): (i64, i64) = sqlx::query_as(
            "SELECT coalesce((SELECT max(position) FROM events), 0), \
                    (SELECT count(*) FROM event_outbox)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((
            u64::try_from(head).unwrap_or_default(),
            u64::try_from(backlog).unwrap_or_default(),
        ))
    }

    /// The current version of a stream, `None` when it has no events.
    pub async fn stream_version(&self, stream_id: &StreamId) -> Result<Option<u64>, StoreError> {
        let version: Option<i64> = sqlx::query_scalar(STREAM_VERSION)
            .bind(stream_id.as_str())
            .fetch_one(&self.pool)
            .await?;
        version.map(to_u64).transpose()
    }

    /// Events of one stream from `from_version` (inclusive), in version order.
    pub async fn read_stream(
        &self,
        stream_id: &StreamId,
        from_version: u64,
        max_count: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(READ_STREAM)
            .bind(stream_id.as_str())
            .bind(to_i64(from_version.max(1)))
            .bind(i64::from(max_count))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    /// Up to `limit` events of the streams in `ranges`, each in the range of versions
    /// given with it, after `after_position`, in position order: what one reader knows
    /// of several streams when it has seen each only so far (a projection's applied
    /// versions), or what it has not seen yet of each.
    pub async fn read_streams(
        &self,
        ranges: &[(StreamId, RangeInclusive<u64>)],
        after_position: u64,
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let mut streams = Vec::with_capacity(ranges.len());
        let (mut firsts, mut lasts) = (Vec::new(), Vec::new());
        for (stream, versions) in ranges {
            streams.push(stream.as_str());
            firsts.push(to_i64(*versions.start()));
            lasts.push(to_i64(*versions.end()));
        }
        let rows = sqlx::query(READ_STREAMS)
            .bind(&streams)
            .bind(&firsts)
            .bind(&lasts)
            .bind(to_i64(after_position))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    /// Up to `limit` events after `after`, in commit-safe order, never skipping an event
    /// whose transaction commits late: such an event is held back until every older
    /// transaction has finished, then returned after the cursor.
    pub async fn read_all(
        &self,
        after: GlobalCursor,
        limit: u32,
    ) -> Result<ReadAllPage, StoreError> {
        let rows = sqlx::query(READ_ALL)
            .bind(after.transaction_id.to_string())
            .bind(to_i64(after.position))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut next = after;
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let transaction_id: String = row.try_get("transaction_id")?;
            let event = recorded_event(row)?;
            next = GlobalCursor {
                transaction_id: transaction_id
                    .parse()
                    .map_err(|_| StoreError::Corrupt(format!("transaction id {transaction_id}")))?,
                position: event.position,
            };
            events.push(event);
        }
        Ok(ReadAllPage { events, next })
    }

    /// Up to `limit` events of streams of `aggregate_types` with a position after `after`
    /// and at most `until`, in position order: a stretch of the past to replay.
    pub async fn read_range(
        &self,
        after: u64,
        until: u64,
        aggregate_types: &[&str],
        limit: u32,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let rows = sqlx::query(READ_RANGE)
            .bind(to_i64(after))
            .bind(to_i64(until))
            .bind(aggregate_types)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(recorded_event).collect()
    }

    /// The position and recording time of the last event recorded at or before `time`;
    /// `None` when the log holds nothing that old.
    pub async fn position_at(
        &self,
        time: OffsetDateTime,
    ) -> Result<Option<(u64, OffsetDateTime)>, StoreError> {
        let found: Option<(i64, OffsetDateTime)> = sqlx::query_as(POSITION_AT)
            .bind(time)
            .fetch_optional(&self.pool)
            .await?;
        found
            .map(|(position, recorded_at)| Ok((to_u64(position)?, recorded_at)))
            .transpose()
    }

    /// The recording time of the last event at or before `position`, `None` when there
    /// is none.
    pub async fn recorded_at(&self, position: u64) -> Result<Option<OffsetDateTime>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT recorded_at FROM events WHERE position <= $1 ORDER BY position DESC LIMIT 1",
        )
        .bind(to_i64(position))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A position below which the log no longer changes: the highest position of an event
    /// recorded more than `settle` ago and before every transaction of this database
    /// still running began. An append is one short statement, so an event that commits
    /// late with a lower position is one whose transaction is still running, and events
    /// recorded before it began are left out.
    pub async fn settled(&self, settle: Duration) -> Result<u64, StoreError> {
        let settled: i64 = sqlx::query_scalar(SETTLED)
            .bind(format!("{} milliseconds", settle.as_millis()))
            .fetch_one(&self.pool)
            .await?;
        to_u64(settled)
    }
}

/// How much of the log a snapshot holds: see [`snapshot_extent`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotExtent {
    /// The events [`read_snapshot`] returns for the same aggregate types.
    pub events: u64,
    /// The highest position of any event in the snapshot (0 for an empty log).
    pub last_position: u64,
}

/// The extent of the log `conn` sees, counting the events of streams of `aggregate_types`.
/// In the same `REPEATABLE READ` transaction as [`read_snapshot`], both see one snapshot.
pub async fn snapshot_extent(
    conn: &mut PgConnection,
    aggregate_types: &[&str],
) -> Result<SnapshotExtent, StoreError> {
    let (events, last_position): (i64, i64) = sqlx::query_as(SNAPSHOT_EXTENT)
        .bind(aggregate_types)
        .fetch_one(&mut *conn)
        .await?;
    Ok(SnapshotExtent {
        events: to_u64(events)?,
        last_position: to_u64(last_position)?,
    })
}

/// Every event of streams of `aggregate_types` that `conn` sees, in position order, as
/// the rows arrive: the whole log, for rebuilding read models from the source of truth.
///
/// Run it in a `REPEATABLE READ` transaction: then it reads one snapshot, in which every
/// stream is whole up to its last committed version (a stream's versions commit in order),
/// however many appends commit meanwhile.
pub fn read_snapshot<'c>(
    conn: &'c mut PgConnection,
    aggregate_types: &'c [&'c str],
) -> impl futures_util::Stream<Item = Result<RecordedEvent, StoreError>> + Send + 'c {
    use futures_util::StreamExt as _;
    sqlx::query(READ_SNAPSHOT)
        .bind(aggregate_types)
        .fetch(conn)
        .map(|row| recorded_event(&row?))
}

/// Refuses anything the store must not accept, before touching the database.
fn validate(request: &AppendRequest, limits: StoreLimits) -> Result<(), InvalidAppend> {
    if request.streams.is_empty() {
        return Err(InvalidAppend::EmptyBatch);
    }
    let actor = &request.actor;
    if actor.is_empty()
        || actor.chars().count() > MAX_NAME_LEN
        || actor.chars().any(char::is_control)
    {
        return Err(InvalidAppend::InvalidActor);
    }
    let count: usize = request.streams.iter().map(|s| s.events.len()).sum();
    if count > limits.max_events_per_append {
        return Err(InvalidAppend::TooManyEvents {
            count,
            limit: limits.max_events_per_append,
        });
    }
    let mut streams = HashSet::new();
    let mut event_ids = HashSet::new();
    for write in &request.streams {
        let stream_id = &write.stream_id;
        if !streams.insert(stream_id) {
            return Err(InvalidAppend::DuplicateStream {
                stream_id: stream_id.clone(),
            });
        }
        if write.events.is_empty() {
            return Err(InvalidAppend::EmptyStream {
                stream_id: stream_id.clone(),
            });
        }
        for (index, event) in write.events.iter().enumerate() {
            if event.payload.len() > limits.max_payload_bytes {
                return Err(InvalidAppend::PayloadTooLarge {
                    stream_id: stream_id.clone(),
                    index,
                    size: event.payload.len(),
                    limit: limits.max_payload_bytes,
                });
            }
            if !is_event_type(&event.event_type) {
                return Err(InvalidAppend::InvalidEventType {
                    stream_id: stream_id.clone(),
                    index,
                });
            }
            if event.schema_version == 0 {
                return Err(InvalidAppend::InvalidSchemaVersion {
                    stream_id: stream_id.clone(),
                    index,
                });
            }
            if !event_ids.insert(event.event_id) {
                return Err(InvalidAppend::DuplicateEventId {
                    event_id: event.event_id,
                });
            }
        }
    }
    Ok(())
}

/// A protobuf full name: dot-separated identifiers.
fn is_event_type(name: &str) -> bool {
    name.len() <= MAX_NAME_LEN
        && name.split('.').all(|part| {
            part.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && part.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
}

fn expects_any(request: &AppendRequest, stream_id: &StreamId) -> bool {
    request
        .streams
        .iter()
        .any(|w| &w.stream_id == stream_id && w.expected == ExpectedVersion::Any)
}

pub(crate) fn recorded_event(row: &PgRow) -> Result<RecordedEvent, StoreError> {
    let stream_id: &str = row.try_get("stream_id")?;
    let prefecture: &str = row.try_get("prefecture")?;
    let schema_version: i32 = row.try_get("schema_version")?;
    let payload: Vec<u8> = row.try_get("payload")?;
    Ok(RecordedEvent {
        event_id: row.try_get("event_id")?,
        stream_id: StreamId::parse(stream_id)
            .map_err(|_| StoreError::Corrupt(format!("stream id {stream_id:?}")))?,
        version: to_u64(row.try_get("version")?)?,
        position: to_u64(row.try_get("position")?)?,
        event_type: row.try_get("event_type")?,
        schema_version: u32::try_from(schema_version)
            .map_err(|_| StoreError::Corrupt(format!("schema version {schema_version}")))?,
        occurred_at: row.try_get("occurred_at")?,
        recorded_at: row.try_get("recorded_at")?,
        command_id: row.try_get("command_id")?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        actor: row.try_get("actor")?,
        prefecture: Prefecture::parse(prefecture)
            .map_err(|_| StoreError::Corrupt(format!("prefecture {prefecture:?}")))?,
        payload: payload.into(),
    })
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The events of `stream_id` from version `first` to `last` (both included), in order,
/// on `conn`: what a projection reads back when JetStream lost some (DESIGN.md §13).
pub async fn read_versions(
    conn: &mut PgConnection,
    stream_id: &str,
    first: u64,
    last: u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(READ_VERSIONS)
        .bind(stream_id)
        .bind(to_i64(first))
        .bind(to_i64(last))
        .fetch_all(conn)
        .await?;
    rows.iter().map(recorded_event).collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use time::OffsetDateTime;

    use super::*;
    use crate::event::{ExpectedVersion, NewEvent, StreamWrite};

    fn request(streams: Vec<StreamWrite>) -> AppendRequest {
        AppendRequest {
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: None,
            actor: "user-1".into(),
            prefecture: Prefecture::parse("35").unwrap(),
            streams,
            request_digest: None,
        }
    }

    fn write(stream: &str, payloads: &[usize]) -> StreamWrite {
        StreamWrite {
            stream_id: StreamId::parse(stream).unwrap(),
            expected: ExpectedVersion::Any,
            events: payloads
                .iter()
                .map(|&size| {
                    NewEvent::new(
                        "noroshi.v1.Test",
                        OffsetDateTime::UNIX_EPOCH,
                        Bytes::from(vec![0; size]),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn refuses_empty_and_duplicate_streams() {
        let limits = StoreLimits::default();
        assert_eq!(
            validate(&request(vec![]), limits),
            Err(InvalidAppend::EmptyBatch)
        );
        assert!(matches!(
            validate(&request(vec![write("case-a", &[])]), limits),
            Err(InvalidAppend::EmptyStream { .. })
        ));
        assert!(matches!(
            validate(
                &request(vec![write("case-a", &[1]), write("case-a", &[1])]),
                limits
            ),
            Err(InvalidAppend::DuplicateStream { .. })
        ));
    }

    #[test]
    fn enforces_payload_and_count_limits() {
        let limits = StoreLimits {
            max_payload_bytes: 10,
            max_events_per_append: 3,
        };
        assert!(validate(&request(vec![write("case-a", &[10, 10])]), limits).is_ok());
        assert_eq!(
            validate(&request(vec![write("case-a", &[10, 11])]), limits),
            Err(InvalidAppend::PayloadTooLarge {
                stream_id: StreamId::parse("case-a").unwrap(),
                index: 1,
                size: 11,
                limit: 10
            })
        );
        assert_eq!(
            validate(
                &request(vec![write("case-a", &[1, 1]), write("case-b", &[1, 1])]),
                limits
            ),
            Err(InvalidAppend::TooManyEvents { count: 4, limit: 3 })
        );
    }

    #[test]
    fn event_types_are_protobuf_full_names() {
        assert!(is_event_type("noroshi.v1.CapacityDeclared"));
        for bad in [
            "",
            "noroshi..x",
            ".x",
            "x.",
            "a b",
            "noroshi.v1.Capacity-Declared",
            "1a.b",
        ] {
            assert!(!is_event_type(bad), "{bad:?} was accepted");
        }
    }

    #[test]
    fn refuses_bad_actors() {
        let limits = StoreLimits::default();
        for actor in ["".to_string(), "a\nb".to_string(), "x".repeat(201)] {
            let mut req = request(vec![write("case-a", &[1])]);
            req.actor = actor;
            assert_eq!(validate(&req, limits), Err(InvalidAppend::InvalidActor));
        }
    }
}
