//! Reading the views (DESIGN.md §6): each view's query, in the module of its projection
//! (`bed_board::query`, …), answers with the view's protobuf message, filtered for the
//! caller (§7), and follows it live. gRPC, HTTP/JSON, Server-Sent Events and OpenAPI are
//! derived from that one definition by the API, which lists each view once
//! (docs/adding-a-view.md).
//!
//! What the queries share lives here: the [`Views`] handle, read-your-writes through
//! `min_versions`, the checkpoints, and live streams ([`live`]).

mod error;
pub(crate) mod live;
pub(crate) mod page;
mod past;

pub use error::QueryError;
pub use page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, age_band, age_on};
pub use past::Moment;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::Stream;
use futures_util::future::BoxFuture;
use noroshi_domain::Violations;
use noroshi_domain::authz::Principal;
use noroshi_event_store::{EventStore, StreamId};
use noroshi_proto::v1 as pb;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use tokio::sync::broadcast;
use uuid::Uuid;

use crate::View;
use crate::runner::{self, VIEWS_CHANNEL};

/// A view: its name, its request, its answer and its live updates, all protobuf
/// messages, and the two queries that produce them.
pub trait ViewQuery: Send + Sync + 'static {
    /// Its name under `/api/v1/views/`.
    const NAME: &'static str;
    type Request: prost::Message + prost::Name + Default + Clone + Send + Sync + 'static;
    type Response: prost::Message + prost::Name + Default + Send + 'static;
    /// What its live stream sends: a message with a `snapshot` and a `delta` case, or
    /// the response itself, sent whole each time.
    type Update: prost::Message + prost::Name + Default + Send + 'static;

    /// Every invalid field of `request`, whoever asks (`get` and `watch` refuse them).
    fn violations(request: &Self::Request) -> Violations;

    /// The past moment `request` asks for (its `as_of`), if any: then the API answers
    /// with [`Views::get_as_of`], and a live stream is refused.
    fn as_of(request: &Self::Request) -> Option<&pb::AsOf>;

    /// The view as `principal` may see it.
    fn get(
        views: &Views,
        principal: &Principal,
        request: &Self::Request,
    ) -> impl Future<Output = Result<Self::Response, QueryError>> + Send;

    /// The view as `principal` may see it, then every change of it.
    fn watch(
        views: &Views,
        principal: &Principal,
        request: &Self::Request,
    ) -> impl Future<Output = Result<Updates<Self::Update>, QueryError>> + Send;
}

/// `(stream, version)` pairs a read waits for (read your writes).
pub type MinVersions = Vec<(StreamId, u64)>;

/// A live view's updates.
pub type Updates<U> = Pin<Box<dyn Stream<Item = Result<U, QueryError>> + Send>>;

/// Which streams a principal may follow: wait for with `min_versions`, or read the
/// observations of. The rule is the domain's (`authz::may_follow`); the facts come from
/// the command side, which the views do not read.
pub trait Visibility: Send + Sync + 'static {
    fn may_follow<'a>(
        &'a self,
        principal: &'a Principal,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<bool, QueryError>>;
}

/// Where the reads of patients' identities are written (the audit log), before the
/// answer carrying them leaves.
pub trait PiiAudit: Send + Sync + 'static {
    fn patients_read<'a>(
        &'a self,
        principal: &'a Principal,
        via: &'a str,
        cases: &'a [Uuid],
    ) -> BoxFuture<'a, Result<(), QueryError>>;
}

#[derive(Debug, Clone, Copy)]
pub struct ViewSettings {
    /// Longest wait for `min_versions` before UNAVAILABLE.
    pub read_your_writes_wait: Duration,
    /// Declarations older than this are stale (DESIGN.md §5.1, default 12 h).
    pub stale_after: time::Duration,
    /// `public_stats` suppresses counts of people from 1 up to this, exclusive (default 5).
    pub suppress_below: u64,
}

impl Default for ViewSettings {
    fn default() -> Self {
        Self {
            read_your_writes_wait: Duration::from_secs(5),
            stale_after: time::Duration::hours(12),
            suppress_below: 5,
        }
    }
}

/// How often a read waiting for `min_versions` looks again.
const WAIT_POLL: Duration = Duration::from_millis(20);

/// Longest wait for the change listener to start listening.
const LISTEN_READY_WAIT: Duration = Duration::from_secs(5);

/// Reads the views.
#[derive(Clone)]
pub struct Views {
    pub(crate) pool: PgPool,
    /// The event store, which `timeline` and the observations read.
    pub(crate) store: EventStore,
    pub(crate) settings: ViewSettings,
    visibility: Arc<dyn Visibility>,
    audit: Arc<dyn PiiAudit>,
    /// The moment these views stand at when they are a past session's (see
    /// [`Views::get_as_of`]); `None` for the live views.
    past: Option<Moment>,
    /// Idle sessions for reads of the past (see [`Views::get_as_of`]).
    sessions: Arc<std::sync::Mutex<Vec<PgPool>>>,
    /// Names of projections that committed a batch, from `LISTEN noroshi_views`; started
    /// by the first live stream.
    changes: Arc<
        OnceLock<(
            broadcast::Sender<String>,
            tokio::sync::watch::Receiver<bool>,
        )>,
    >,
}

impl fmt::Debug for Views {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Views")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Views {
    pub fn new(
        pool: PgPool,
        store: EventStore,
        settings: ViewSettings,
        visibility: Arc<dyn Visibility>,
        audit: Arc<dyn PiiAudit>,
    ) -> Self {
        Self {
            pool,
            store,
            settings,
            visibility,
            audit,
            changes: Arc::default(),
            past: None,
            sessions: Arc::default(),
        }
    }

    /// The present, or for a past session the moment it stands at: what ages, waiting
    /// times and staleness are reckoned from.
    pub(crate) fn now(&self) -> time::OffsetDateTime {
        self.past
            .map_or_else(time::OffsetDateTime::now_utc, |moment| moment.time)
    }

    /// Today in Japan, as of [`Views::now`].
    pub(crate) fn today(&self) -> time::Date {
        page::today_at(self.now())
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &ViewSettings {
        &self.settings
    }

    /// Writes that `principal` read the patients of `cases` through `via`.
    pub(crate) async fn audit(
        &self,
        principal: &Principal,
        via: &str,
        cases: &[Uuid],
    ) -> Result<(), QueryError> {
        self.audit.patients_read(principal, via, cases).await
    }

    /// Whether `principal` may follow `stream`.
    pub(crate) async fn may_follow(
        &self,
        principal: &Principal,
        stream: &StreamId,
    ) -> Result<bool, QueryError> {
        self.visibility.may_follow(principal, stream).await
    }

    /// Checks `min_versions` for `principal`, then waits until every view in `views`
    /// has applied them. A stream the caller may not follow is refused before any
    /// waiting, so that neither the answer nor its timing says whether it exists.
    pub(crate) async fn ready(
        &self,
        principal: &Principal,
        views: &[View],
        min_versions: &[(StreamId, u64)],
    ) -> Result<(), QueryError> {
        if min_versions.is_empty() {
            return Ok(());
        }
        if self.past.is_some() {
            return Err(QueryError::invalid(
                "min_versions",
                "waits for writes to come; a read as_of the past takes none",
            ));
        }
        let mut violations = Violations::new();
        for (stream, _) in min_versions {
            if !self.may_follow(principal, stream).await? {
                violations.add(
                    "min_versions",
                    format!("{stream} is not a stream this caller may follow"),
                );
            }
        }
        QueryError::check(violations, ())?;
        for view in views {
            self.wait_for(*view, min_versions).await?;
        }
        Ok(())
    }

    /// Waits until `view` has applied every `(stream, version)`, at most the configured
    /// time; then UNAVAILABLE rather than an answer older than the caller's own writes.
    /// A stream the view's projection does not read cannot make it older.
    async fn wait_for(
        &self,
        view: View,
        min_versions: &[(StreamId, u64)],
    ) -> Result<(), QueryError> {
        let projection = view.name();
        let (streams, versions): (Vec<&str>, Vec<i64>) = min_versions
            .iter()
            .filter(|(stream, _)| runner::reads(view.sources(), stream.aggregate_type()))
            .map(|(stream, version)| (stream.as_str(), i64::try_from(*version).unwrap_or(i64::MAX)))
            .unzip();
        if streams.is_empty() {
            return Ok(());
        }
        let deadline = tokio::time::Instant::now() + self.settings.read_your_writes_wait;
        loop {
            let behind: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM unnest($2::text[], $3::bigint[]) AS w(stream_id, version) \
                 WHERE coalesce(projection_applied_version($1, w.stream_id), 0) < w.version",
            )
            .bind(projection)
            .bind(&streams)
            .bind(&versions)
            .fetch_one(&self.pool)
            .await?;
            if behind == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(QueryError::Unavailable(format!(
                    "{projection} has not applied the requested versions within {:?}; retry",
                    self.settings.read_your_writes_wait
                )));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The stream sequence `projection` reflects; UNAVAILABLE while it is being rebuilt.
    pub(crate) async fn checkpoint(&self, projection: &str) -> Result<u64, QueryError> {
        let checkpoint: Option<(i64, bool)> = sqlx::query_as(
            "SELECT stream_sequence, rebuilding FROM projection_checkpoints WHERE projection = $1",
        )
        .bind(projection)
        .fetch_optional(&self.pool)
        .await?;
        match checkpoint {
            Some((_, true)) => Err(QueryError::Unavailable(format!(
                "{projection} is being rebuilt; retry shortly"
            ))),
            Some((sequence, false)) => Ok(u64::try_from(sequence).unwrap_or_default()),
            None => Ok(0),
        }
    }

    /// The smallest stream sequence of `views`, which an answer read from all of them
    /// reflects.
    pub(crate) async fn checkpoints(&self, views: &[View]) -> Result<u64, QueryError> {
        let mut sequence = u64::MAX;
        for view in views {
            sequence = sequence.min(self.checkpoint(view.name()).await?);
        }
        Ok(if views.is_empty() { 0 } else { sequence })
    }

    /// Notifications of committed projection batches. The first call starts the
    /// listener and waits (at most [`LISTEN_READY_WAIT`]) until it listens, so that no
    /// batch committed after the caller's snapshot goes unnoticed.
    pub(crate) async fn subscribe(&self) -> broadcast::Receiver<String> {
        let (sender, mut listening) = self
            .changes
            .get_or_init(|| {
                let (sender, _) = broadcast::channel(256);
                let (ready, listening) = tokio::sync::watch::channel(false);
                let pool = self.pool.clone();
                let forward = sender.clone();
                tokio::spawn(async move {
                    loop {
                        let listened = async {
                            let mut listener = PgListener::connect_with(&pool).await?;
                            listener.listen(VIEWS_CHANNEL).await?;
                            ready.send_replace(true);
                            loop {
                                let notification = listener.recv().await?;
                                // No receivers left is fine: a stream subscribes later.
                                let _ = forward.send(notification.payload().to_owned());
                            }
                        };
                        let result: Result<(), sqlx::Error> = listened.await;
                        if let Err(error) = result {
                            tracing::warn!(error = %error, "view change listener failed; live streams fall back to polling");
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
                (sender, listening)
            })
            .clone();
        let changes = sender.subscribe();
        // Without a listener the streams still refresh every live::WATCH_REFRESH.
        let _ = tokio::time::timeout(LISTEN_READY_WAIT, listening.wait_for(|ready| *ready)).await;
        changes
    }
}

/// How far each projection is behind `head`, the event store's newest position, in
/// event positions.
pub async fn lag(pool: &PgPool, head: u64) -> Result<Vec<(String, u64)>, QueryError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT projection, greatest($1 - position, 0) FROM projection_checkpoints ORDER BY 1",
    )
    .bind(i64::try_from(head).unwrap_or(i64::MAX))
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, lag)| (name, u64::try_from(lag).unwrap_or_default()))
        .collect())
}

/// Each projection's counts of what its stream did not give it whole: events of another
/// store it refused, and events it read back from the event store because its stream
/// lacked them.
pub async fn stream_health(pool: &PgPool) -> Result<Vec<(String, u64, u64)>, QueryError> {
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "SELECT projection, foreign_events, healed_events FROM projection_checkpoints ORDER BY 1",
    )
    .fetch_all(pool)
    .await?;
    let count = |n: i64| u64::try_from(n).unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|(name, foreign, healed)| (name, count(foreign), count(healed)))
        .collect())
}

/// The `(stream, version)` pairs of a request, each checked.
pub(crate) fn min_versions(
    min_versions: Option<&pb::MinVersions>,
    violations: &mut Violations,
) -> MinVersions {
    min_versions
        .map(|m| m.streams.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            violations
                .check(
                    format!("min_versions.streams[{i}].stream_id"),
                    StreamId::parse(&s.stream_id),
                )
                .map(|stream| (stream, s.version))
        })
        .collect()
}

/// The violations of a request's parse, none when it parsed.
pub(crate) fn violations<T>(parsed: Result<T, QueryError>) -> Violations {
    match parsed {
        Err(QueryError::Invalid(violations)) => violations,
        _ => Violations::new(),
    }
}

/// The wire number of a domain enum named as the read models store it.
pub(crate) fn wire<T: noroshi_codec::WireEnum>(
    name: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> i32 {
    parse(name).map_or(0, noroshi_codec::WireEnum::to_wire)
}

/// The wire numbers of a list of names.
pub(crate) fn wires<T: noroshi_codec::WireEnum>(
    names: &[String],
    parse: impl Fn(&str) -> Option<T>,
) -> Vec<i32> {
    names.iter().map(|n| wire(n, &parse)).collect()
}

/// A time as a protobuf timestamp.
/// A protobuf timestamp as a time, `None` when it is out of range.
pub(crate) fn timestamp(value: &prost_types::Timestamp) -> Option<time::OffsetDateTime> {
    noroshi_codec::timestamps::from_timestamp(value)
}

pub(crate) fn at(time: time::OffsetDateTime) -> Option<prost_types::Timestamp> {
    Some(noroshi_codec::timestamps::to_timestamp(time))
}

/// An optional time as a protobuf timestamp.
pub(crate) fn at_opt(time: Option<time::OffsetDateTime>) -> Option<prost_types::Timestamp> {
    time.map(noroshi_codec::timestamps::to_timestamp)
}
