//! The views as they stood in the past (DESIGN.md §6, time travel).
//!
//! A [`Past`] is a private PostgreSQL session whose tables of some views are temporary
//! copies: empty, or restored from the nearest snapshot at or before the moment asked
//! for, then brought to that moment by replaying the event store through the views' own
//! projections. The session's `search_path` is `pg_temp` alone, so the projections'
//! statements and the views' queries, which name their tables without a schema, read
//! and write the copies; were the copies gone (the connection lost), they would fail
//! rather than read the live tables.
//!
//! Snapshots are written by [`snapshot`] (the snapshotter in `serve`) the same way: the
//! last snapshot restored, the log replayed a stride further, the copies saved. A
//! snapshot therefore holds exactly the state after every event up to its position, in
//! position order, as a rebuild computes it, whatever order the live batches followed.

use std::time::Duration;

use foldhash::HashMap;
use futures_util::future::BoxFuture;
use noroshi_domain::DomainEvent;
use noroshi_event_store::{EventStore, RecordedEvent};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::runner::{self, Projection, ProjectionError, Seen};
use crate::{View, Visitor};

/// Events read from the store at a time while replaying.
const REPLAY_PAGE: u32 = 10_000;

/// Rows per chunk of a snapshot.
const CHUNK_ROWS: i64 = 2_000;

/// Tables every past session has besides the views' own: the checkpoints the queries read.
const CHECKPOINTS: &str = "projection_checkpoints";

/// A private session holding `views` as of some position of the log.
pub struct Past {
    /// One connection, whose temporary tables are the views' copies.
    pool: PgPool,
    /// Every view held, with the position it has reached and what it may look up.
    views: Vec<(View, u64, Seen)>,
    /// The fingerprint of each view's tables.
    schemas: HashMap<View, String>,
}

impl std::fmt::Debug for Past {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Past")
            .field(
                "views",
                &self
                    .views
                    .iter()
                    .map(|(v, p, _)| (v.name(), p))
                    .collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

/// How a past session was brought to its position, for the caller's logs and metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Rows restored from snapshots.
    pub restored_rows: u64,
    /// Events replayed after the snapshots.
    pub events: u64,
}

impl Past {
    /// Opens a session over `database` with empty copies of the tables of `views`, at
    /// position 0.
    pub async fn open(database: &PgConnectOptions, views: &[View]) -> Result<Self, sqlx::Error> {
        Self::on(session(database), views).await
    }

    /// The same on `pool`, a pool of [`session`]s (one connection) whose connection has
    /// no copies yet: opened anew, or given back by [`Past::finish`].
    pub async fn on(pool: PgPool, views: &[View]) -> Result<Self, sqlx::Error> {
        let mut conn = pool.acquire().await?;
        let mut schemas = HashMap::default();
        for view in views {
            for table in view.tables() {
                create_copy(&mut conn, table).await?;
            }
            schemas.insert(*view, fingerprint(&mut conn, view.tables()).await?);
        }
        create_copy(&mut conn, CHECKPOINTS).await?;
        drop(conn);
        Ok(Self {
            pool,
            views: views
                .iter()
                .map(|view| (*view, 0, Seen::rebuilding()))
                .collect(),
            schemas,
        })
    }

    /// The session's pool: one connection, on which the views' queries read the copies.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Restores, for every view, the latest snapshot at or before `position` that fits
    /// its tables as they are now.
    pub async fn restore(&mut self, position: u64) -> Result<u64, sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        let mut restored = 0;
        for (view, at, seen) in &mut self.views {
            let schema = &self.schemas[view];
            let found: Option<(i64, i64)> = sqlx::query_as(
                "SELECT id, position FROM public.view_snapshots \
                 WHERE view = $1 AND schema = $2 AND position <= $3 \
                 ORDER BY position DESC LIMIT 1",
            )
            .bind(view.name())
            .bind(schema)
            .bind(runner::count(position))
            .fetch_optional(&mut *conn)
            .await?;
            let Some((id, snapshot_position)) = found else {
                continue;
            };
            let mut tx = conn.begin().await?;
            for table in view.tables() {
                // Table names are constants of the projections, never input.
                sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM pg_temp.{table}")))
                    .execute(&mut *tx)
                    .await?;
                let inserted = sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO pg_temp.{table} SELECT r.* FROM public.view_snapshot_chunks c, \
                     jsonb_populate_recordset(NULL::pg_temp.{table}, c.rows) r \
                     WHERE c.snapshot_id = $1 AND c.table_name = $2"
                )))
                .bind(id)
                .bind(table)
                .execute(&mut *tx)
                .await?;
                restored += inserted.rows_affected();
            }
            tx.commit().await?;
            *at = u64::try_from(snapshot_position).unwrap_or_default();
            *seen = Seen::live();
        }
        Ok(restored)
    }

    /// Replays the events after each view's position up to and including `until`.
    pub async fn replay(&mut self, store: &EventStore, until: u64) -> Result<u64, ProjectionError> {
        let mut sources: Vec<&str> = Vec::new();
        for (view, _, _) in &self.views {
            for source in view.sources() {
                if !sources.contains(source) {
                    sources.push(source);
                }
            }
        }
        let mut after = self
            .views
            .iter()
            .map(|(_, at, _)| *at)
            .min()
            .unwrap_or(until);
        let mut replayed = 0;
        let mut conn = self.pool.acquire().await?;
        while after < until {
            let events = store
                .read_range(after, until, &sources, REPLAY_PAGE)
                .await?;
            let Some(last) = events.last().map(|e| e.position) else {
                break;
            };
            let mut decoded = Vec::with_capacity(events.len());
            for event in events {
                let domain = runner::decode(&event)?;
                decoded.push((event, domain));
            }
            replayed += decoded.len() as u64;
            let mut tx = conn.begin().await?;
            sqlx::query("SET LOCAL enable_seqscan = off")
                .execute(&mut *tx)
                .await?;
            for (view, at, seen) in &mut self.views {
                let batch: Vec<(RecordedEvent, DomainEvent)> = decoded
                    .iter()
                    .filter(|(e, _)| {
                        e.position > *at
                            && runner::reads(view.sources(), e.stream_id.aggregate_type())
                    })
                    .cloned()
                    .collect();
                if !batch.is_empty() {
                    view.visit(Apply {
                        conn: &mut tx,
                        batch: &batch,
                        seen,
                    })
                    .await?;
                }
            }
            tx.commit().await?;
            after = last;
            if (decoded.len() as u32) < REPLAY_PAGE {
                break;
            }
        }
        for (_, at, _) in &mut self.views {
            *at = (*at).max(until);
        }
        drop(conn);
        Ok(replayed)
    }

    /// Brings the session to `position`: the nearest snapshots, then the events after them.
    pub async fn reach(
        &mut self,
        store: &EventStore,
        position: u64,
    ) -> Result<Replayed, ProjectionError> {
        let restored_rows = self.restore(position).await?;
        let events = self.replay(store, position).await?;
        Ok(Replayed {
            restored_rows,
            events,
        })
    }

    /// Sets the checkpoints the queries read: every view held at `position`, as not
    /// rebuilding, with no stream sequence (a past answer reflects a position of the
    /// store, not of the live stream).
    pub async fn settle_checkpoints(&self) -> Result<(), sqlx::Error> {
        let mut conn = self.pool.acquire().await?;
        sqlx::query("DELETE FROM pg_temp.projection_checkpoints")
            .execute(&mut *conn)
            .await?;
        for (view, at, _) in &self.views {
            sqlx::query(
                "INSERT INTO pg_temp.projection_checkpoints (projection, stream_sequence, position) \
                 VALUES ($1, 0, $2)",
            )
            .bind(view.name())
            .bind(runner::count(*at))
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Saves `view`'s copies as its snapshot at the position it has reached, unless one
    /// is there already. Returns the rows saved.
    pub async fn save(
        &self,
        view: View,
        recorded_until: Option<OffsetDateTime>,
    ) -> Result<Option<u64>, sqlx::Error> {
        let Some((_, at, _)) = self.views.iter().find(|(v, _, _)| *v == view) else {
            return Ok(None);
        };
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO public.view_snapshots (view, position, recorded_until, schema, row_count) \
             VALUES ($1, $2, $3, $4, 0) ON CONFLICT (view, schema, position) DO NOTHING \
             RETURNING id",
        )
        .bind(view.name())
        .bind(runner::count(*at))
        .bind(recorded_until)
        .bind(&self.schemas[&view])
        .fetch_optional(&mut *tx)
        .await?;
        let Some(id) = id else {
            return Ok(None);
        };
        let mut rows = 0;
        for table in view.tables() {
            let saved: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "WITH numbered AS (SELECT r, row_number() OVER () - 1 AS n FROM pg_temp.{table} r), \
                 saved AS (INSERT INTO public.view_snapshot_chunks (snapshot_id, table_name, chunk, rows) \
                   SELECT $1, $2, (n / $3)::integer, jsonb_agg(to_jsonb(r)) FROM numbered GROUP BY 3 \
                   RETURNING 1) \
                 SELECT count(*) FROM numbered"
            )))
            .bind(id)
            .bind(table)
            .bind(CHUNK_ROWS)
            .fetch_one(&mut *tx)
            .await?;
            rows += u64::try_from(saved).unwrap_or_default();
        }
        sqlx::query("UPDATE public.view_snapshots SET row_count = $2 WHERE id = $1")
            .bind(id)
            .bind(runner::count(rows))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(rows))
    }

    /// Closes the session; its copies go with it.
    pub async fn close(self) {
        self.pool.close().await;
    }

    /// Drops the copies and gives the session back for another past, or `None` when its
    /// connection is no longer fit for one (then it is closed).
    pub async fn finish(self) -> Option<PgPool> {
        match sqlx::query("DISCARD TEMP").execute(&self.pool).await {
            Ok(_) => Some(self.pool),
            Err(error) => {
                tracing::warn!(error = %error, "a past session could not be cleared; closing it");
                self.pool.close().await;
                None
            }
        }
    }
}

/// A private session over `database`: a pool of one connection, kept open, whose
/// `search_path` is `pg_temp` alone (see the module's note). It connects when first used.
pub fn session(database: &PgConnectOptions) -> PgPool {
    let options =
        runner::with_session_settings(database.clone()).options([("search_path", "pg_temp")]);
    PgPoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .idle_timeout(None)
        .max_lifetime(None)
        .test_before_acquire(false)
        .connect_lazy_with(options)
}

/// Applies one batch to one view's copies.
struct Apply<'a> {
    conn: &'a mut PgConnection,
    batch: &'a [(RecordedEvent, DomainEvent)],
    seen: &'a mut Seen,
}

impl<'a> Visitor for Apply<'a> {
    type Output = BoxFuture<'a, Result<(), sqlx::Error>>;

    fn visit<P: Projection + Copy>(self, projection: P) -> Self::Output {
        Box::pin(async move { projection.apply(self.conn, self.batch, self.seen).await })
    }
}

/// An empty temporary copy of a live table, with its defaults, constraints and indexes
/// (the projections' upserts need the unique ones).
async fn create_copy(conn: &mut PgConnection, table: &str) -> Result<(), sqlx::Error> {
    // Table names are constants of the projections, never input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TEMPORARY TABLE {table} (LIKE public.{table} INCLUDING ALL)"
    )))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A fingerprint of the columns of the live `tables`: a snapshot fits only tables with
/// the same columns.
async fn fingerprint(conn: &mut PgConnection, tables: &[&str]) -> Result<String, sqlx::Error> {
    // The catalog itself: `information_schema.columns` took 50 ms to say the same.
    sqlx::query_scalar(
        "SELECT md5(coalesce(string_agg(c.relname || '.' || a.attname || ':' \
                  || format_type(a.atttypid, a.atttypmod), ',' \
                ORDER BY array_position($1::text[], c.relname::text), a.attnum), '')) \
         FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relname = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped",
    )
    .bind(tables)
    .fetch_one(&mut *conn)
    .await
}

/// When the snapshotter takes snapshots.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotConfig {
    /// A snapshot at most every this many positions of the log (the replay an as-of
    /// read needs is bounded by it).
    pub every: u64,
    /// How often the snapshotter looks.
    pub interval: Duration,
    /// Events recorded more recently than this are not snapshotted yet (see
    /// [`EventStore::settled`]).
    pub settle: Duration,
    /// A view with newer events but fewer than `every` gets a snapshot anyway once its
    /// last one is this old.
    pub max_age: Duration,
}

impl Default for SnapshotConfig {
    fn default() -> Self {
        Self {
            every: 20_000,
            interval: Duration::from_secs(60),
            settle: Duration::from_secs(10),
            max_age: Duration::from_secs(3600),
        }
    }
}

/// What one round of the snapshotter did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotRound {
    /// Snapshots written, per view.
    pub taken: Vec<(View, u64)>,
    pub events_replayed: u64,
}

/// Takes the snapshots `views` are due, up to the settled end of the log: from each
/// view's last snapshot, a replay in strides of `config.every` positions, a snapshot at
/// the end of each. A log with no snapshots yet (a new deployment, or after a rebuild)
/// gets them all the way along, so that reads of any moment replay at most a stride.
pub async fn snapshot(
    database: &PgConnectOptions,
    store: &EventStore,
    views: &[View],
    config: SnapshotConfig,
    shutdown: &CancellationToken,
) -> Result<SnapshotRound, ProjectionError> {
    let settled = store.settled(config.settle).await?;
    let mut round = SnapshotRound::default();
    for view in views {
        let mut conn = store.pool().acquire().await?;
        let schema = fingerprint(&mut conn, view.tables()).await?;
        let last: Option<(i64, i64, bool)> = sqlx::query_as(
            "SELECT position, row_count, taken_at < now() - $3::interval FROM view_snapshots \
             WHERE view = $1 AND schema = $2 ORDER BY position DESC LIMIT 1",
        )
        .bind(view.name())
        .bind(&schema)
        .bind(format!("{} milliseconds", config.max_age.as_millis()))
        .fetch_optional(&mut *conn)
        .await?;
        drop(conn);
        let (from, mut rows, old) = last.map_or((0, 0, true), |(position, rows, old)| {
            (
                u64::try_from(position).unwrap_or_default(),
                u64::try_from(rows).unwrap_or_default(),
                old,
            )
        });
        let due = settled > from && (settled - from >= stride(config.every, rows) || old);
        if !due {
            continue;
        }
        let mut past = Past::open(database, &[*view]).await?;
        past.restore(from).await?;
        let mut at = from;
        while at < settled && !shutdown.is_cancelled() {
            let next = at.saturating_add(stride(config.every, rows)).min(settled);
            round.events_replayed += past.replay(store, next).await?;
            at = next;
            let recorded_until = store.recorded_at(next).await?;
            if let Some(saved) = past.save(*view, recorded_until).await? {
                round.taken.push((*view, next));
                rows = saved;
            }
        }
        past.close().await;
    }
    Ok(round)
}

/// Positions between two snapshots of a view whose last snapshot held `rows` rows: at
/// least `every`, and at least a quarter of the rows, so that a large view is not saved
/// whole again and again for a few events (its snapshots together stay within about four
/// times the log's length in rows) and a read replays at most about as many events as it
/// restores rows.
fn stride(every: u64, rows: u64) -> u64 {
    every.max(rows / 4).max(1)
}

/// Runs the snapshotter until `shutdown`, one copy leading.
pub async fn run_snapshotter(
    database: PgConnectOptions,
    store: EventStore,
    config: SnapshotConfig,
    shutdown: CancellationToken,
) {
    let key = runner::lock_key("view_snapshots");
    let Some(leadership) = noroshi_event_store::leader::Leadership::acquire(
        &database,
        key,
        "view_snapshots",
        Duration::from_secs(5),
        &shutdown,
    )
    .await
    else {
        return;
    };
    loop {
        match snapshot(&database, &store, View::ALL, config, &shutdown).await {
            Ok(round) if !round.taken.is_empty() => tracing::info!(
                snapshots = round.taken.len(),
                events_replayed = round.events_replayed,
                "view snapshots taken"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(
                error = &error as &dyn std::error::Error,
                "view snapshots failed; retrying"
            ),
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(config.interval) => {}
        }
    }
    leadership.release().await;
}
