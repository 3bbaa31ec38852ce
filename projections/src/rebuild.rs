//! Rebuilding views from the start of the log, in bulk.
//!
//! One reader goes through the log once for every view being rebuilt: by default the
//! event store, PostgreSQL, the source of truth, in one snapshot; or the JetStream stream
//! from its first message. It skips duplicates, stops at a hole, decodes each event once,
//! and hands the same large chunks to every view. Each view applies them in one
//! transaction that also empties its tables first and, at the end, writes its checkpoint.
//! Until that commit, readers see the view as it was; an interrupted or failed rebuild
//! rolls back and leaves it untouched.
//!
//! The versions the views applied are those of the whole log read, so the reader writes
//! them once, as a *baseline* (`projection_baselines`) that every view it fed refers to
//! from its checkpoint, while the views finish applying. For a long log they are the
//! largest write of a rebuild: one copy per view cost more than a `COPY` of the events
//! themselves.

use foldhash::HashMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt as _;
use futures_util::future::BoxFuture;
use noroshi_domain::DomainEvent;
use noroshi_event_store::leader::Leadership;
use noroshi_event_store::{RecordedEvent, SnapshotExtent, StreamId};
use sqlx::Connection;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::runner::{
    self, Next, Projection, ProjectionError, RunnerConfig, Seen, VIEWS_CHANNEL, count,
};
use crate::{View, Visitor};

/// Events (or messages from the stream) handed to every view at a time, by default:
/// large, so that each view's statements carry many rows each, and small enough to keep
/// memory modest.
pub const CHUNK: usize = 50_000;

/// How long the reader waits for a chunk to fill while the server says more is pending.
const CHUNK_FILL: Duration = Duration::from_millis(500);

/// Bytes of versions sent to PostgreSQL per `COPY` message at the end of a rebuild.
const COPY_SEND: usize = 1 << 20;

/// First key of the advisory lock by which a running rebuild keeps its baseline (the
/// second is the baseline's id): "nrb1".
const BASELINE_LOCK: i32 = 0x6e72_6231;

/// Where a rebuild reads the events from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Source {
    /// The event store: every event committed when the rebuild began, read from one
    /// snapshot of PostgreSQL. It holds the whole log for good, whatever the stream has
    /// lost or no longer keeps.
    #[default]
    Store,
    /// The JetStream stream the live projections follow, from its first message to the
    /// last one when the rebuild began.
    Stream,
}

/// What a rebuild reads, and how much at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub source: Source,
    /// Events handed to every view at a time (at least 1).
    pub chunk: usize,
}

impl From<Source> for Reading {
    fn from(source: Source) -> Self {
        Self {
            source,
            chunk: CHUNK,
        }
    }
}

/// Progress of a rebuild: events (from the store) or messages (from the stream) applied,
/// of how many the log held at the start.
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// What the reader hands every view.
enum Feed {
    /// New events in stream order, of every stream some view reads, and how many messages
    /// have been read so far.
    Events(Arc<Vec<(RecordedEvent, DomainEvent)>>, u64),
    /// The end of the stream as it was at the start.
    End(Arc<End>),
}

/// Where the stream ended: the last version and position of every stream read, the last
/// stream sequence and the highest store position, and the baseline the versions go
/// to.
#[derive(Debug, Default)]
struct End {
    versions: HashMap<StreamId, (u64, u64)>,
    sequence: u64,
    store_position: u64,
    baseline: i64,
}

/// Rebuilds `views` from the start of the stream.
///
/// Takes each view's leadership first (waiting while a running projection leads it), then
/// reads the stream once, up to where it ended when the rebuild began, and commits each
/// view in one transaction. Returns the messages read, or `None` when `shutdown` came
/// first: then no view changed.
pub async fn rebuild(
    database: PgConnectOptions,
    nats: async_nats::Client,
    config: RunnerConfig,
    reading: Reading,
    views: &[(View, Progress<'_>)],
    shutdown: CancellationToken,
) -> Result<Option<u64>, ProjectionError> {
    let database = runner::with_session_settings(database);
    let mut leaderships = Vec::with_capacity(views.len());
    for (view, _) in views {
        let key = runner::lock_key(view.name());
        let Some(leadership) = Leadership::acquire(
            &database,
            key,
            view.name(),
            config.leader_retry_interval,
            &shutdown,
        )
        .await
        else {
            release(leaderships).await;
            return Ok(None);
        };
        leaderships.push(leadership);
    }
    let claim = match Claim::new(&database).await {
        Ok(claim) => claim,
        Err(error) => {
            release(leaderships).await;
            return Err(error.into());
        }
    };
    let log = Log {
        database,
        nats,
        config,
        reading,
        baseline: claim.baseline,
    };
    let outcome = rebuild_leading(&mut leaderships, log, views, shutdown).await;
    release(leaderships).await;
    claim.finish().await;
    outcome
}

async fn release(leaderships: Vec<Leadership>) {
    for leadership in leaderships {
        leadership.release().await;
    }
}

/// The baseline a rebuild writes its versions to, claimed before it starts: an advisory
/// lock on its id, held on a connection of its own until the rebuild ends, tells others
/// it is in use even before any view refers to it.
struct Claim {
    conn: PgConnection,
    baseline: i64,
}

impl Claim {
    async fn new(database: &PgConnectOptions) -> Result<Self, sqlx::Error> {
        let mut conn = PgConnection::connect_with(database).await?;
        // Locked before the new id commits, so that no one sees it unclaimed.
        let baseline: i64 = sqlx::query_scalar(
            "WITH claimed AS ( \
               INSERT INTO projection_baseline_sets DEFAULT VALUES RETURNING baseline) \
             SELECT baseline FROM claimed \
             WHERE pg_try_advisory_lock($1, (baseline % 2147483647)::integer)",
        )
        .bind(BASELINE_LOCK)
        .fetch_one(&mut conn)
        .await?;
        Ok(Self { conn, baseline })
    }

    /// Removes every baseline no view refers to and no running rebuild claims: the views'
    /// previous ones, this rebuild's own when no view committed, and those of rebuilds
    /// that died. Then gives up the claim. A failure only leaves them to the next rebuild.
    async fn finish(mut self) {
        let swept = sqlx::query(
            "WITH gone AS ( \
               DELETE FROM projection_baseline_sets s \
               WHERE NOT EXISTS (SELECT 1 FROM projection_checkpoints c \
                                 WHERE c.baseline = s.baseline) \
                 AND pg_try_advisory_xact_lock($1, (s.baseline % 2147483647)::integer) \
               RETURNING s.baseline) \
             DELETE FROM projection_baselines b USING gone WHERE b.baseline = gone.baseline",
        )
        .bind(BASELINE_LOCK)
        .execute(&mut self.conn)
        .await;
        match swept {
            Ok(done) => {
                tracing::debug!(versions = done.rows_affected(), "unused baselines removed")
            }
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "unused baselines were not removed; the next rebuild will"
            ),
        }
        // Closing the connection gives up the claim.
        let _ = self.conn.close().await;
    }
}

/// The log a rebuild reads, and where from; and the baseline its versions go to.
struct Log {
    database: PgConnectOptions,
    nats: async_nats::Client,
    config: RunnerConfig,
    reading: Reading,
    baseline: i64,
}

async fn rebuild_leading(
    leaderships: &mut [Leadership],
    log: Log,
    views: &[(View, Progress<'_>)],
    shutdown: CancellationToken,
) -> Result<Option<u64>, ProjectionError> {
    let Log {
        database,
        nats,
        config,
        reading: Reading { source, chunk },
        baseline,
    } = log;
    let nats_error = |e: &dyn std::fmt::Display| ProjectionError::Nats(e.to_string());
    // Where the stream stands before the store's snapshot is taken: every message up to
    // here is an event committed before it, so the snapshot holds it too.
    let (messages, last_sequence) = match jetstream::new(nats.clone())
        .get_stream(&config.stream)
        .await
    {
        Ok(stream) => {
            let state = stream.get_info().await.map_err(|e| nats_error(&e))?.state;
            (state.messages, state.last_sequence)
        }
        // A stream that is gone (lost with its disk, say) stands at nothing. The relay
        // creates it again and publishes only what the outbox still holds: the store is
        // then the only way back to whole views, and the runners start from the new
        // stream's first message.
        Err(e) if source == Source::Store && stream_not_found(&e) => {
            tracing::warn!(
                stream = config.stream,
                "the stream does not exist; the runners will start from its first message"
            );
            (0, 0)
        }
        Err(e) => return Err(nats_error(&e)),
    };
    let mut sources: Vec<&'static str> = views
        .iter()
        .flat_map(|(view, _)| view.sources().iter().copied())
        .collect();
    sources.sort_unstable();
    sources.dedup();

    let (feeds, receivers): (Vec<_>, Vec<_>) = views.iter().map(|_| mpsc::channel(2)).unzip();
    let fanout = Fanout::new(feeds, chunk.max(1), baseline);
    // The reader decodes on a task of its own, alongside the views' work.
    let (total, reader) = match source {
        Source::Store => {
            let mut snapshot = PgConnection::connect_with(&database).await?;
            sqlx::query("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut snapshot)
                .await?;
            let extent = noroshi_event_store::snapshot_extent(&mut snapshot, &sources).await?;
            // The log in position order, by the primary key, in this one process. The
            // generic plan, which cannot tell how many events the filter keeps, chose a
            // parallel scan and an external sort of the whole log: hundreds of megabytes of
            // temporary files and three processes' work, for rows the views take no faster.
            sqlx::raw_sql(
                "SET LOCAL enable_seqscan = off; SET LOCAL max_parallel_workers_per_gather = 0",
            )
            .execute(&mut snapshot)
            .await?;
            let reader = tokio::spawn(read_store(
                snapshot,
                extent,
                last_sequence,
                sources,
                fanout,
                shutdown,
            ));
            (extent.events, reader)
        }
        Source::Stream => {
            let reader = tokio::spawn(read_stream(
                database.clone(),
                nats,
                config,
                sources,
                fanout,
                last_sequence,
                shutdown,
            ));
            (messages, reader)
        }
    };
    tracing::info!(
        views = ?views.iter().map(|(view, _)| view.name()).collect::<Vec<_>>(),
        from = ?source,
        events = total,
        "rebuilding"
    );
    let appliers = leaderships.iter_mut().zip(views).zip(receivers).map(
        |((leadership, (view, progress)), feed)| {
            view.visit(Apply {
                conn: leadership.connection(),
                feed,
                progress: *progress,
                total,
            })
        },
    );
    let stop_reading = reader.abort_handle();
    let reading = async {
        reader
            .await
            .map_err(|e| ProjectionError::Nats(format!("the reader stopped: {e}")))?
    };
    let outcome =
        futures_util::future::try_join(reading, futures_util::future::try_join_all(appliers)).await;
    // A view that failed ends the rebuild: the reader stops now, not at its next chunk.
    stop_reading.abort();
    let (read, committed) = outcome?;
    Ok(read.filter(|_| committed.iter().all(|done| *done)))
}

fn stream_not_found(error: &jetstream::context::GetStreamError) -> bool {
    matches!(
        error.kind(),
        jetstream::context::GetStreamErrorKind::JetStream(e)
            if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
    )
}

/// Hands the events a reader reads to every view, decoded, in chunks, and keeps track of
/// where the log ends.
struct Fanout {
    feeds: Vec<mpsc::Sender<Feed>>,
    /// Events per chunk.
    size: usize,
    chunk: Vec<(RecordedEvent, DomainEvent)>,
    end: End,
}

impl Fanout {
    fn new(feeds: Vec<mpsc::Sender<Feed>>, size: usize, baseline: i64) -> Self {
        Self {
            feeds,
            size,
            chunk: Vec::with_capacity(size),
            end: End {
                baseline,
                ..End::default()
            },
        }
    }

    /// Takes an event into the chunk unless it was taken before (a duplicate); an error
    /// when it lies beyond a hole in its stream or does not decode.
    fn take(&mut self, recorded: RecordedEvent) -> Result<(), ProjectionError> {
        let stream_id = &recorded.stream_id;
        let last = self
            .end
            .versions
            .get(stream_id)
            .map_or(0, |(version, _)| *version);
        if !runner::is_new(stream_id.as_str(), recorded.version, last)? {
            return Ok(());
        }
        let decoded = runner::decode(&recorded)?;
        self.end
            .versions
            .insert(stream_id.clone(), (recorded.version, recorded.position));
        self.chunk.push((recorded, decoded));
        Ok(())
    }

    /// Hands the chunk to every view, with how many events or messages were read so far.
    /// Whether every view took it: one that failed has closed its feed, and its error is
    /// the rebuild's.
    async fn send(&mut self, read: u64) -> bool {
        let events = Arc::new(std::mem::replace(
            &mut self.chunk,
            Vec::with_capacity(self.size),
        ));
        for feed in &self.feeds {
            if feed.send(Feed::Events(events.clone(), read)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Writes the versions read to the baseline, on `conn`, then tells every view where
    /// the log ended; whether every view took it.
    async fn finish(self, conn: &mut PgConnection) -> Result<bool, ProjectionError> {
        write_baseline(conn, self.end.baseline, &self.end.versions).await?;
        let end = Arc::new(self.end);
        for feed in &self.feeds {
            if feed.send(Feed::End(end.clone())).await.is_err() {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// Reads the event store's snapshot, opened on `snapshot`, and hands its events to every
/// view. The checkpoint is `last_sequence`, where the stream stood before the snapshot was
/// taken: the live runner carries on from there, and passes over the events the snapshot
/// already held by their versions. Returns the events read, or `None` when interrupted.
async fn read_store(
    mut snapshot: PgConnection,
    extent: SnapshotExtent,
    last_sequence: u64,
    sources: Vec<&'static str>,
    mut fanout: Fanout,
    shutdown: CancellationToken,
) -> Result<Option<u64>, ProjectionError> {
    let mut read = 0;
    {
        let mut events = noroshi_event_store::read_snapshot(&mut snapshot, &sources);
        loop {
            let event = tokio::select! {
                () = shutdown.cancelled() => return Ok(None),
                event = events.next() => event,
            };
            let Some(event) = event else { break };
            fanout.take(event?)?;
            read += 1;
            if fanout.chunk.len() >= fanout.size && !fanout.send(read).await {
                return Ok(None);
            }
        }
    }
    if !fanout.chunk.is_empty() && !fanout.send(read).await {
        return Ok(None);
    }
    sqlx::query("COMMIT").execute(&mut snapshot).await?;
    fanout.end.sequence = last_sequence;
    fanout.end.store_position = extent.last_position;
    let finished = fanout.finish(&mut snapshot).await?;
    snapshot.close().await?;
    Ok(finished.then_some(read))
}

/// The whole stream, in order, through a consumer of its own that pulls large batches
/// and is never acknowledged (an ordered consumer pulls 500 messages at a time).
async fn open(
    nats: &async_nats::Client,
    config: &RunnerConfig,
    chunk: usize,
) -> Result<jetstream::consumer::pull::Stream, ProjectionError> {
    let nats_error = |e: &dyn std::fmt::Display| ProjectionError::Nats(e.to_string());
    let consumer = jetstream::new(nats.clone())
        .get_stream(&config.stream)
        .await
        .map_err(|e| nats_error(&e))?
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: config.filter_subject.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .map_err(|e| nats_error(&e))?;
    consumer
        .stream()
        .max_messages_per_batch(chunk)
        .messages()
        .await
        .map_err(|e| nats_error(&e))
}

/// Reads the stream from the start until the message that was last when the rebuild
/// began, and hands its new events to every view. Returns the messages read, or `None`
/// when interrupted (the feeds then close without an end, and every view rolls back).
async fn read_stream(
    database: PgConnectOptions,
    nats: async_nats::Client,
    config: RunnerConfig,
    sources: Vec<&'static str>,
    mut fanout: Fanout,
    last_sequence: u64,
    shutdown: CancellationToken,
) -> Result<Option<u64>, ProjectionError> {
    let mut read = 0;
    if last_sequence > 0 {
        let store = {
            use sqlx::Connection as _;
            let mut conn = sqlx::PgConnection::connect_with(&database).await?;
            let store = noroshi_event_store::store_id(&mut conn).await?;
            let _ = conn.close().await;
            store.to_string()
        };
        let mut messages = open(&nats, &config, fanout.size).await?;
        let mut consumed = 0;
        loop {
            let Next::Batch(batch) =
                runner::next(&mut messages, fanout.size, CHUNK_FILL, &shutdown, None).await?
            else {
                return Ok(None);
            };
            let mut pending = 0;
            for message in &batch {
                let info = message
                    .info()
                    .map_err(|e| ProjectionError::Nats(e.to_string()))?;
                pending = info.pending;
                let sequence = info.stream_sequence;
                // Nothing is acknowledged, so nothing is redelivered: a message lost on the
                // way shows as a skipped delivery, and the rebuild stops rather than miss it.
                if info.consumer_sequence != consumed + 1 {
                    return Err(ProjectionError::Nats(format!(
                        "delivery {} arrived after {consumed}: a message was lost; rebuild again",
                        info.consumer_sequence
                    )));
                }
                consumed = info.consumer_sequence;
                fanout.end.sequence = sequence;
                if let Some(foreign) = runner::foreign(message, &store) {
                    tracing::error!(
                        sequence,
                        store = foreign,
                        "an event of another store is on the stream; refused, not applied"
                    );
                    continue;
                }
                let (aggregate_type, position) = runner::source(message, sequence)?;
                fanout.end.store_position = fanout.end.store_position.max(position);
                if runner::reads(&sources, aggregate_type) {
                    fanout.take(runner::recorded(message, sequence)?)?;
                }
            }
            read += batch.len() as u64;
            if !fanout.send(read).await {
                return Ok(None);
            }
            if pending == 0 || fanout.end.sequence >= last_sequence {
                break;
            }
        }
    }
    let mut conn = PgConnection::connect_with(&database).await?;
    let finished = fanout.finish(&mut conn).await?;
    conn.close().await?;
    Ok(finished.then_some(read))
}

/// One view's side of a rebuild.
struct Apply<'a> {
    conn: &'a mut PgConnection,
    feed: mpsc::Receiver<Feed>,
    progress: Progress<'a>,
    total: u64,
}

impl<'a> Visitor for Apply<'a> {
    type Output = BoxFuture<'a, Result<bool, ProjectionError>>;

    fn visit<P: Projection + Copy>(self, projection: P) -> Self::Output {
        Box::pin(apply::<P>(
            self.conn,
            projection,
            self.feed,
            self.progress,
            self.total,
        ))
    }
}

/// Empties the view, applies everything the reader hands over and, at the end, writes the
/// versions and checkpoint, all in one transaction. Whether it committed: a feed that
/// closes without an end (interrupted, or another view failed) rolls it back.
async fn apply<P: Projection>(
    conn: &mut PgConnection,
    projection: P,
    mut feed: mpsc::Receiver<Feed>,
    progress: Progress<'_>,
    total: u64,
) -> Result<bool, ProjectionError> {
    let mut tx = conn.begin().await?;
    // The view's statements look rows up by key. Planned from the statistics of tables
    // that were empty (or emptied here), they would scan the growing tables instead,
    // comparing every row with every key of the chunk.
    sqlx::query("SET LOCAL enable_seqscan = off")
        .execute(&mut *tx)
        .await?;
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
    // A view is rebuilt because what its projection makes of the events changed: its
    // snapshots are of the old making. The snapshotter takes them again from the start.
    sqlx::query("DELETE FROM view_snapshots WHERE view = $1")
        .bind(P::NAME)
        .execute(&mut *tx)
        .await?;
    progress(0, total);
    let mut seen = Seen::rebuilding();
    while let Some(next) = feed.recv().await {
        match next {
            Feed::Events(events, read) => {
                // The chunk holds the events of every view's streams; a projection
                // ignores those of streams it does not read.
                projection.apply(&mut tx, &events, &mut seen).await?;
                progress(read, total.max(read));
            }
            Feed::End(end) => {
                write_end::<P>(&mut tx, &end).await?;
                tx.commit().await?;
                analyze::<P>(conn).await?;
                tracing::info!(projection = P::NAME, checkpoint = end.sequence, "rebuilt");
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Writes the versions read to `baseline`. It commits before any view does: a view's
/// checkpoint refers to versions that are there.
///
/// The versions go in by `COPY`, one row per stream, in key order, so that each row goes
/// next to the one before it in the primary key's B-tree: `COPY` costs PostgreSQL about
/// half what an `INSERT` of the same rows from arrays does.
async fn write_baseline(
    conn: &mut PgConnection,
    baseline: i64,
    versions: &HashMap<StreamId, (u64, u64)>,
) -> Result<(), sqlx::Error> {
    let mut tx = conn.begin().await?;
    let mut copy = tx
        .copy_in_raw(
            "COPY projection_baselines (baseline, stream_id, version, position) FROM STDIN",
        )
        .await?;
    let mut versions: Vec<_> = versions.iter().collect();
    versions.sort_unstable_by_key(|(stream, _)| stream.as_str());
    let mut rows = String::with_capacity(COPY_SEND + 256);
    for (stream, (version, position)) in versions {
        // COPY's text format: tab-separated, one row per line. A stream id (checked by
        // `StreamId`) holds no tab, line break or backslash, so nothing needs escaping.
        writeln!(rows, "{baseline}\t{stream}\t{version}\t{position}")
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        if rows.len() >= COPY_SEND {
            copy.send(rows.as_bytes()).await?;
            rows.clear();
        }
    }
    if !rows.is_empty() {
        copy.send(rows.as_bytes()).await?;
    }
    copy.finish().await?;
    tx.commit().await?;
    Ok(())
}

/// Writes the projection's checkpoint, referring to the rebuild's baseline for the
/// versions of the streams it reads (and clearing a mark an interrupted rebuild of an
/// earlier version may have left), and a notification that the whole view changed.
async fn write_end<P: Projection>(conn: &mut PgConnection, end: &End) -> Result<(), sqlx::Error> {
    sqlx::query(
        "WITH checkpoint AS ( \
           INSERT INTO projection_checkpoints \
             (projection, stream_sequence, position, rebuilding, baseline, baseline_sources) \
           VALUES ($1, $2, $3, false, $5, $6) ON CONFLICT (projection) DO UPDATE \
           SET stream_sequence = excluded.stream_sequence, position = excluded.position, \
               rebuilding = false, baseline = excluded.baseline, \
               baseline_sources = excluded.baseline_sources, updated_at = now()) \
         SELECT pg_notify($4, $1)",
    )
    .bind(P::NAME)
    .bind(count(end.sequence))
    .bind(count(end.store_position))
    .bind(VIEWS_CHANNEL)
    .bind(end.baseline)
    .bind(P::SOURCES)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Refreshes the statistics of the view's tables, so that the live runner's statements
/// are planned for the tables as rebuilt, not as they were before.
async fn analyze<P: Projection>(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    // Table names are constants of the projection, never input.
    let tables = P::TABLES.join(", ");
    sqlx::query(sqlx::AssertSqlSafe(format!("ANALYZE {tables}")))
        .execute(&mut *conn)
        .await?;
    Ok(())
}
