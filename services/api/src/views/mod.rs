//! Queries on the read models, shared by the gRPC `ViewService` and the HTTP API: the
//! caller's scope (DESIGN.md §7) applied to every row, and read-your-writes through
//! `min_versions`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use std::future::Future;

use futures_util::Stream;
use uuid::Uuid;

use noroshi_domain::authz::{Principal, ViewScope, bed_board_scope, placement_queue_scope};
use noroshi_domain::streams;
use noroshi_domain::values::{BedCategory, FacilityId, MedicalAreaCode};
use noroshi_event_store::StreamId;
use noroshi_projections::View;
use noroshi_projections::bed_board::{self, BedRow, OCCUPANCY_DEFINITION, Totals};
use noroshi_projections::placement_queue::{self, PlacementQueue, QueueRow};
use noroshi_projections::runner::{self, Projection, VIEWS_CHANNEL};
use serde::Serialize;
use sqlx::PgPool;
use sqlx::postgres::PgListener;
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::error::{ApiError, store_failure};
use noroshi_app::CommandHandler;

mod cases;
mod public;

pub use cases::*;
pub use public::*;

/// `(stream, version)` pairs a read waits for (read your writes).
pub type MinVersions = Vec<(StreamId, u64)>;

/// How often a read waiting for `min_versions` looks again.
const WAIT_POLL: Duration = Duration::from_millis(20);

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

/// Reads the views.
#[derive(Clone)]
pub struct Views {
    pool: PgPool,
    settings: ViewSettings,
    /// Loads the streams named in `min_versions`, to check the caller may follow them.
    streams: Arc<CommandHandler>,
    /// Names of projections that committed a batch, from `LISTEN noroshi_views`; started
    /// by the first live stream.
    changes: Arc<
        OnceLock<(
            broadcast::Sender<String>,
            tokio::sync::watch::Receiver<bool>,
        )>,
    >,
}

/// Longest wait for the change listener to start listening.
const LISTEN_READY_WAIT: Duration = Duration::from_secs(5);

/// How often a live stream looks again without a notification: staleness changes with
/// the clock alone, and a lost notification is made good.
const WATCH_REFRESH: Duration = Duration::from_secs(15);

/// An update of a live view stream: first the snapshot, then deltas.
#[derive(Debug, Clone, Serialize)]
pub enum Update<S, D> {
    Snapshot(S),
    Delta(D),
}

impl<S: Serialize, D: Serialize> Update<S, D> {
    /// The event name (`snapshot` or `delta`) and the JSON of what it carries.
    pub fn named_json(&self) -> (&'static str, serde_json::Value) {
        match self {
            Self::Snapshot(view) => ("snapshot", to_json(view)),
            Self::Delta(delta) => ("delta", to_json(delta)),
        }
    }
}

/// A view as JSON. The views hold only strings, numbers and timestamps, which always
/// serialize; should one ever fail, the event says so instead of vanishing.
pub fn to_json(value: impl Serialize) -> serde_json::Value {
    serde_json::to_value(value)
        .unwrap_or_else(|error| serde_json::json!({"error": error.to_string()}))
}

pub type BedBoardUpdate = Update<BedBoardView, BedBoardDelta>;
pub type PlacementQueueUpdate = Update<PlacementQueueView, PlacementQueueDelta>;

/// The placements that changed in, or left, the caller's queue since the last update.
#[derive(Debug, Clone, Serialize)]
pub struct PlacementQueueDelta {
    /// New or changed placements, whole.
    pub rows: Vec<QueueRowView>,
    /// Placements that left the queue: arrived, cancelled, or out of the caller's scope.
    pub removed: Vec<Uuid>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

/// What changed in the caller's board since the last update.
#[derive(Debug, Clone, Serialize)]
pub struct BedBoardDelta {
    /// New or changed rows, whole.
    pub rows: Vec<BedBoardRowView>,
    /// `(facility_id, category)` of rows that left the board.
    pub removed: Vec<(String, String)>,
    pub areas: Vec<BedTotalsView>,
    pub prefecture: BedTotalsView,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

type RowKey = (String, String);

fn keyed(rows: impl IntoIterator<Item = BedBoardRowView>) -> BTreeMap<RowKey, BedBoardRowView> {
    rows.into_iter()
        .map(|r| ((r.row.facility_id.clone(), r.row.category.clone()), r))
        .collect()
}

/// A live view's rows after a read: the rows read and, when the read covered only what
/// some batches touched, every row of `before` that `untouched` says they did not touch.
fn merged<K: Ord + Clone, V: Clone>(
    before: &BTreeMap<K, V>,
    untouched: Option<impl Fn(&K, &V) -> bool>,
    read: impl IntoIterator<Item = (K, V)>,
) -> BTreeMap<K, V> {
    let mut after: BTreeMap<K, V> = match untouched {
        None => BTreeMap::new(),
        Some(untouched) => before
            .iter()
            .filter(|(key, value)| untouched(key, value))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect(),
    };
    after.extend(read);
    after
}

/// What a live view's delta carries: the keys in `after` that are new or whose value
/// changed since `before`, and the keys of `before` that left. `None` when nothing did.
fn diff<K: Ord + Clone, V: PartialEq>(
    before: &BTreeMap<K, V>,
    after: &BTreeMap<K, V>,
) -> Option<(BTreeSet<K>, Vec<K>)> {
    let changed: BTreeSet<K> = after
        .iter()
        .filter(|(key, value)| before.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect();
    let removed: Vec<K> = before
        .keys()
        .filter(|key| !after.contains_key(*key))
        .cloned()
        .collect();
    (!changed.is_empty() || !removed.is_empty()).then_some((changed, removed))
}

/// The totals per medical area and for the prefecture of `rows`.
fn totals_views<'a>(
    rows: impl IntoIterator<Item = &'a BedBoardRowView>,
) -> (Vec<BedTotalsView>, BedTotalsView) {
    let (areas, prefecture) = bed_board::totals(rows.into_iter().map(|r| &r.row));
    let areas = areas
        .iter()
        .map(|(area, totals)| totals_view(Some(area.clone()), totals))
        .collect();
    (areas, totals_view(None, &prefecture))
}

/// The delta from the board `before` to the board `after`, with the totals of `after`;
/// `None` when no row changed.
fn delta(
    before: &BTreeMap<RowKey, BedBoardRowView>,
    after: &BTreeMap<RowKey, BedBoardRowView>,
    stream_sequence: u64,
) -> Option<BedBoardDelta> {
    let (changed, removed) = diff(before, after)?;
    let rows: Vec<BedBoardRowView> = changed
        .iter()
        .filter_map(|key| after.get(key))
        .cloned()
        .collect();
    let (areas, prefecture) = totals_views(after.values());
    Some(BedBoardDelta {
        rows,
        removed,
        areas,
        prefecture,
        stream_sequence,
        generated_at: OffsetDateTime::now_utc(),
    })
}

/// The rows a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct BedBoardFilter {
    pub medical_area: Option<MedicalAreaCode>,
    /// Empty: every category.
    pub categories: BTreeSet<BedCategory>,
}

/// A row as stored, with what is derived at read time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BedBoardRowView {
    #[serde(flatten)]
    pub row: BedRow,
    pub available: u32,
    pub stale: bool,
    pub overflow: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct BedTotalsView {
    /// `None` for the prefecture.
    pub medical_area: Option<String>,
    pub secured: u64,
    pub ready: u64,
    pub occupied: u64,
    pub held: u64,
    pub available: u64,
    pub occupancy_rate: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BedBoardView {
    pub rows: Vec<BedBoardRowView>,
    pub areas: Vec<BedTotalsView>,
    pub prefecture: BedTotalsView,
    pub occupancy_definition: &'static str,
    /// The JetStream stream sequence the view reflects.
    pub stream_sequence: u64,
    pub stale_after_seconds: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

fn totals_view(medical_area: Option<String>, totals: &Totals) -> BedTotalsView {
    BedTotalsView {
        medical_area,
        secured: totals.secured,
        ready: totals.ready,
        occupied: totals.occupied,
        held: totals.held,
        available: totals.available,
        occupancy_rate: totals.occupancy_rate(),
    }
}

/// A live placement with what is derived at read time.
#[derive(Debug, Clone, Serialize)]
pub struct QueueRowView {
    #[serde(flatten)]
    pub row: QueueRow,
    /// Seconds since the request.
    pub waiting_seconds: i64,
    /// The accepted bed is held past its deadline and the patient has not arrived.
    pub hold_overdue: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct PlacementQueueView {
    /// Most urgent first, then longest waiting.
    pub rows: Vec<QueueRowView>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Views")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Views {
    pub fn new(pool: PgPool, settings: ViewSettings, streams: Arc<CommandHandler>) -> Self {
        Self {
            pool,
            settings,
            streams,
            changes: Arc::default(),
        }
    }

    /// Refuses a `min_versions` entry for a stream the caller may not follow, before any
    /// waiting, so that neither the answer nor its timing says whether it exists.
    async fn check_min_versions(
        &self,
        principal: &Principal,
        min_versions: &[(StreamId, u64)],
    ) -> Result<(), ApiError> {
        let mut violations = noroshi_domain::Violations::new();
        for (stream, _) in min_versions {
            if !self.streams.may_follow(principal, stream).await? {
                violations.add(
                    "min_versions",
                    format!("{stream} is not a stream this caller may follow"),
                );
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Invalid(violations))
        }
    }

    /// Checks `min_versions` for `principal`, then waits until every view in `views`
    /// has applied them.
    async fn ready(
        &self,
        principal: &Principal,
        views: &[View],
        min_versions: &[(StreamId, u64)],
    ) -> Result<(), ApiError> {
        if min_versions.is_empty() {
            return Ok(());
        }
        self.check_min_versions(principal, min_versions).await?;
        for view in views {
            self.wait_for(*view, min_versions).await?;
        }
        Ok(())
    }

    /// Notifications of committed projection batches. The first call starts the
    /// listener and waits (at most [`LISTEN_READY_WAIT`]) until it listens, so that no
    /// batch committed after the caller's snapshot goes unnoticed.
    async fn subscribe(&self) -> broadcast::Receiver<String> {
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
        // Without a listener the streams still refresh every WATCH_REFRESH.
        let _ = tokio::time::timeout(LISTEN_READY_WAIT, listening.wait_for(|ready| *ready)).await;
        changes
    }

    /// A live `bed_board` for `principal`: the snapshot, then a delta whenever a committed
    /// batch changed the caller's own filtered board. Deltas are computed from the
    /// caller's view, so they never carry a row the caller may not see.
    pub async fn watch_bed_board(
        &self,
        principal: Principal,
        filter: BedBoardFilter,
        min_versions: &[(StreamId, u64)],
    ) -> Result<impl Stream<Item = Result<BedBoardUpdate, ApiError>> + Send + 'static, ApiError>
    {
        // Subscribed before the snapshot is read, so no change falls in between.
        let changes = self.subscribe().await;
        let snapshot = self.bed_board(&principal, &filter, min_versions).await?;
        let mut before = keyed(snapshot.rows.iter().cloned());
        let views = self.clone();
        // After batches that listed their facilities, only those facilities' rows are
        // read again; the rest of the caller's board is as it was.
        let read = move |changed: Changed| {
            let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
            async move {
                let only = match changed {
                    Changed::Any => None,
                    Changed::Streams(streams) => Some(
                        streams
                            .iter()
                            .filter_map(|stream| StreamId::parse(stream).ok())
                            .filter(|stream| stream.aggregate_type() == streams::FACILITY)
                            .map(|stream| stream.aggregate_id().to_owned())
                            .collect::<Vec<String>>(),
                    ),
                };
                let scope = bed_board_scope(&principal);
                let stream_sequence = views.checkpoint(bed_board::BedBoard::NAME).await?;
                let rows = views
                    .bed_board_rows(&scope, &filter, only.as_deref())
                    .await?;
                Ok((only, rows, stream_sequence))
            }
        };
        let next = move |(only, rows, stream_sequence): (
            Option<Vec<String>>,
            Vec<BedBoardRowView>,
            u64,
        )| {
            let untouched = only.map(|facilities| {
                move |(facility, _): &RowKey, _: &BedBoardRowView| !facilities.contains(facility)
            });
            let after = merged(&before, untouched, keyed(rows));
            let update = delta(&before, &after, stream_sequence);
            before = after;
            update.map(Update::Delta)
        };
        Ok(follow(
            changes,
            &[bed_board::BedBoard::NAME],
            Update::Snapshot(snapshot),
            read,
            next,
        ))
    }

    /// A live `placement_queue` for `principal`, as [`Self::watch_bed_board`] follows the
    /// board: the snapshot, then the placements that changed or left the caller's queue.
    pub async fn watch_placement_queue(
        &self,
        principal: Principal,
        min_versions: &[(StreamId, u64)],
    ) -> Result<impl Stream<Item = Result<PlacementQueueUpdate, ApiError>> + Send + 'static, ApiError>
    {
        let changes = self.subscribe().await;
        let snapshot = self.placement_queue(&principal, min_versions).await?;
        // Waiting time grows by itself; only what the queue says about a placement counts.
        let state = |rows: &[QueueRowView]| -> BTreeMap<Uuid, (QueueRow, bool)> {
            rows.iter()
                .map(|r| (r.row.placement_id, (r.row.clone(), r.hold_overdue)))
                .collect()
        };
        let mut before = state(&snapshot.rows);
        let views = self.clone();
        // After batches that listed their streams, only the placements they touched are
        // read again; the rest of the caller's queue is as it was.
        let read = move |changed: Changed| {
            let (views, principal) = (views.clone(), principal.clone());
            async move {
                match changed {
                    Changed::Any => Ok((None, views.placement_queue(&principal, &[]).await?)),
                    Changed::Streams(streams) => {
                        let listed = Listed::from(&streams);
                        let view = views.placement_queue_changes(&principal, &listed).await?;
                        Ok((Some(listed), view))
                    }
                }
            }
        };
        let next = move |(listed, view): (Option<Listed>, PlacementQueueView)| {
            let untouched = listed.map(|listed| {
                move |placement_id: &Uuid, (row, _): &(QueueRow, bool)| {
                    !listed.has_placement(placement_id) && !listed.has_case(&row.case_id)
                }
            });
            let after = merged(&before, untouched, state(&view.rows));
            let changes = diff(&before, &after);
            before = after;
            let (changed, removed) = changes?;
            Some(Update::Delta(PlacementQueueDelta {
                rows: view
                    .rows
                    .into_iter()
                    .filter(|r| changed.contains(&r.row.placement_id))
                    .collect(),
                removed,
                stream_sequence: view.stream_sequence,
                generated_at: view.generated_at,
            }))
        };
        Ok(follow(
            changes,
            &[PlacementQueue::NAME],
            Update::Snapshot(snapshot),
            read,
            next,
        ))
    }

    /// `bed_board` as `principal` may see it.
    pub async fn bed_board(
        &self,
        principal: &Principal,
        filter: &BedBoardFilter,
        min_versions: &[(StreamId, u64)],
    ) -> Result<BedBoardView, ApiError> {
        let scope = bed_board_scope(principal);
        if scope == ViewScope::None {
            return Err(ApiError::PermissionDenied);
        }
        self.ready(principal, &[View::BedBoard], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(bed_board::BedBoard::NAME).await?;
        let rows = self.bed_board_rows(&scope, filter, None).await?;
        let (areas, prefecture) = totals_views(&rows);
        Ok(BedBoardView {
            rows,
            areas,
            prefecture,
            occupancy_definition: OCCUPANCY_DEFINITION,
            stream_sequence,
            stale_after_seconds: self.settings.stale_after.whole_seconds(),
            generated_at: OffsetDateTime::now_utc(),
        })
    }

    /// The `bed_board` rows in `scope` that match `filter` (of the facilities in `only`,
    /// when given), with what is derived now.
    async fn bed_board_rows(
        &self,
        scope: &ViewScope,
        filter: &BedBoardFilter,
        only: Option<&[String]>,
    ) -> Result<Vec<BedBoardRowView>, ApiError> {
        let own;
        let facilities = match (scope, only) {
            (ViewScope::All, only) => only,
            (ViewScope::Own(facility), only) => {
                own = [facility.to_string()];
                if only.is_some_and(|only| !only.contains(&own[0])) {
                    return Ok(Vec::new());
                }
                Some(&own[..])
            }
            (ViewScope::None, _) => return Ok(Vec::new()),
        };
        let now = OffsetDateTime::now_utc();
        Ok(bed_board::board(&self.pool, facilities)
            .await
            .map_err(store_failure)?
            .into_iter()
            .filter(|row| {
                filter
                    .medical_area
                    .as_ref()
                    .is_none_or(|area| row.medical_area.as_deref() == Some(area.as_str()))
            })
            .filter(|row| {
                filter.categories.is_empty()
                    || filter
                        .categories
                        .iter()
                        .any(|c| c.to_string() == row.category)
            })
            .map(|row| BedBoardRowView {
                available: row.available(),
                stale: row.stale(now, self.settings.stale_after),
                overflow: row.overflow(),
                row,
            })
            .collect())
    }

    /// `placement_queue` as `principal` may see it.
    pub async fn placement_queue(
        &self,
        principal: &Principal,
        min_versions: &[(StreamId, u64)],
    ) -> Result<PlacementQueueView, ApiError> {
        let owner = queue_owner(principal)?;
        self.ready(principal, &[View::PlacementQueue], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(PlacementQueue::NAME).await?;
        let now = OffsetDateTime::now_utc();
        let rows = placement_queue::rows(&self.pool, owner.as_ref().map(|o| o.as_str()))
            .await
            .map_err(store_failure)?;
        Ok(PlacementQueueView {
            rows: queue_row_views(rows, now),
            stream_sequence,
            generated_at: now,
        })
    }

    /// What a live queue shows again after batches that listed these streams: the rows of the
    /// placements they list and of every placement of the cases they list, as the caller
    /// may see them, with the checkpoint read before them.
    async fn placement_queue_changes(
        &self,
        principal: &Principal,
        listed: &Listed,
    ) -> Result<PlacementQueueView, ApiError> {
        let owner = queue_owner(principal)?;
        let stream_sequence = self.checkpoint(PlacementQueue::NAME).await?;
        let now = OffsetDateTime::now_utc();
        let rows = if listed.cases.is_empty() && listed.placements.is_empty() {
            Vec::new()
        } else {
            placement_queue::rows_of(
                &self.pool,
                owner.as_ref().map(|o| o.as_str()),
                &listed.placements,
                &listed.cases,
            )
            .await
            .map_err(store_failure)?
        };
        Ok(PlacementQueueView {
            rows: queue_row_views(rows, now),
            stream_sequence,
            generated_at: now,
        })
    }

    /// Waits until `view` has applied every `(stream, version)`, at most the configured
    /// time; then UNAVAILABLE rather than an answer older than the caller's own writes.
    /// A stream the view's projection does not read cannot make it older.
    async fn wait_for(&self, view: View, min_versions: &[(StreamId, u64)]) -> Result<(), ApiError> {
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
            .await
            .map_err(store_failure)?;
            if behind == 0 {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ApiError::Unavailable(format!(
                    "{projection} has not applied the requested versions within {:?}; retry",
                    self.settings.read_your_writes_wait
                )));
            }
            tokio::time::sleep(WAIT_POLL).await;
        }
    }

    /// The stream sequence `projection` reflects; UNAVAILABLE while it is being rebuilt.
    async fn checkpoint(&self, projection: &str) -> Result<u64, ApiError> {
        let checkpoint: Option<(i64, bool)> = sqlx::query_as(
            "SELECT stream_sequence, rebuilding FROM projection_checkpoints WHERE projection = $1",
        )
        .bind(projection)
        .fetch_optional(&self.pool)
        .await
        .map_err(store_failure)?;
        match checkpoint {
            Some((_, true)) => Err(ApiError::Unavailable(format!(
                "{projection} is being rebuilt; retry shortly"
            ))),
            Some((sequence, false)) => Ok(u64::try_from(sequence).unwrap_or_default()),
            None => Ok(0),
        }
    }

    /// How far each projection is behind the event store, in event positions.
    pub async fn lag(&self) -> Result<Vec<(String, u64)>, ApiError> {
        projection_lag(&self.pool).await
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

/// How far each projection is behind the event store, in event positions.
pub async fn projection_lag(pool: &PgPool) -> Result<Vec<(String, u64)>, ApiError> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT c.projection, \
                greatest(coalesce((SELECT max(position) FROM events), 0) - c.position, 0) \
         FROM projection_checkpoints c ORDER BY 1",
    )
    .fetch_all(pool)
    .await
    .map_err(store_failure)?;
    Ok(rows
        .into_iter()
        .map(|(name, lag)| (name, u64::try_from(lag).unwrap_or_default()))
        .collect())
}

/// The cases and placements a projection's notifications listed, each sorted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Listed {
    pub(crate) cases: Vec<Uuid>,
    pub(crate) placements: Vec<Uuid>,
}

impl Listed {
    pub(crate) fn from(streams: &BTreeSet<String>) -> Self {
        let mut listed = Self::default();
        for stream in streams.iter().filter_map(|s| StreamId::parse(s).ok()) {
            let Ok(id) = Uuid::parse_str(stream.aggregate_id()) else {
                continue;
            };
            match stream.aggregate_type() {
                streams::CASE => listed.cases.push(id),
                streams::PLACEMENT => listed.placements.push(id),
                _ => {}
            }
        }
        listed.cases.sort_unstable();
        listed.placements.sort_unstable();
        listed
    }

    fn has_case(&self, id: &Uuid) -> bool {
        self.cases.binary_search(id).is_ok()
    }

    fn has_placement(&self, id: &Uuid) -> bool {
        self.placements.binary_search(id).is_ok()
    }
}

/// Whose placements `principal` may see in the queue: `None` for everyone's.
fn queue_owner(principal: &Principal) -> Result<Option<FacilityId>, ApiError> {
    match placement_queue_scope(principal) {
        ViewScope::All => Ok(None),
        ViewScope::Own(owner) => Ok(Some(owner)),
        ViewScope::None => Err(ApiError::PermissionDenied),
    }
}

fn queue_row_views(rows: Vec<QueueRow>, now: OffsetDateTime) -> Vec<QueueRowView> {
    rows.into_iter()
        .map(|row| QueueRowView {
            waiting_seconds: (now - row.requested_at).whole_seconds(),
            hold_overdue: row.hold_overdue(now),
            row,
        })
        .collect()
}

/// What changed since a live stream last read its view: any row, or only rows from these
/// source streams (as the projection's notifications listed them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Changed {
    Any,
    Streams(BTreeSet<String>),
}

impl Changed {
    /// Takes in what a notification `payload` says changed, if it concerns one of
    /// `projections`; whether it did.
    fn note(&mut self, projections: &[&str], payload: &str) -> bool {
        let (name, streams) = runner::changed_streams(payload);
        if !projections.contains(&name) {
            return false;
        }
        match (&mut *self, streams) {
            (Self::Streams(known), Some(streams)) => {
                known.extend(streams.into_iter().map(str::to_owned));
            }
            _ => *self = Self::Any,
        }
        true
    }
}

/// Follows a view: `first`, then, after each committed batch of one of `projections` (the
/// ones the view is read from), a fresh `read` of what changed, turned by `next` into an
/// update, or into nothing when the caller's view did not change. At least every
/// [`WATCH_REFRESH`] the read covers the whole view, however many batches keep coming in
/// between: what changes with the clock alone (staleness, waiting times) must not wait for
/// a quiet moment that a surge never gives.
fn follow<V, U, R, F, N>(
    changes: broadcast::Receiver<String>,
    projections: &'static [&'static str],
    first: U,
    read: R,
    next: N,
) -> impl Stream<Item = Result<U, ApiError>> + Send + 'static
where
    V: Send + 'static,
    U: Send + 'static,
    R: FnMut(Changed) -> F + Send + 'static,
    F: Future<Output = Result<V, ApiError>> + Send,
    N: FnMut(V) -> Option<U> + Send + 'static,
{
    let refresh_at = tokio::time::Instant::now() + WATCH_REFRESH;
    let state = (changes, read, next, Some(first), refresh_at);
    futures_util::stream::unfold(
        state,
        move |(mut changes, mut read, mut next, first, mut refresh_at)| async move {
            if let Some(first) = first {
                return Some((Ok(first), (changes, read, next, None, refresh_at)));
            }
            loop {
                let mut changed = Changed::Streams(BTreeSet::new());
                tokio::select! {
                    notification = changes.recv() => match notification {
                        Ok(payload) => {
                            if !changed.note(projections, &payload) {
                                continue;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => changed = Changed::Any,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    },
                    () = tokio::time::sleep_until(refresh_at) => changed = Changed::Any,
                }
                // One read covers every batch committed so far: take in the
                // notifications that queued up meanwhile rather than read once for each.
                loop {
                    match changes.try_recv() {
                        Ok(payload) => {
                            changed.note(projections, &payload);
                        }
                        Err(broadcast::error::TryRecvError::Lagged(_)) => changed = Changed::Any,
                        Err(_) => break,
                    }
                }
                let now = tokio::time::Instant::now();
                if now >= refresh_at {
                    changed = Changed::Any;
                }
                if changed == Changed::Any {
                    refresh_at = now + WATCH_REFRESH;
                }
                match read(changed).await {
                    Ok(view) => {
                        if let Some(update) = next(view) {
                            return Some((Ok(update), (changes, read, next, None, refresh_at)));
                        }
                    }
                    Err(error) => {
                        return Some((Err(error), (changes, read, next, None, refresh_at)));
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[test]
    fn a_stream_notes_only_the_projections_its_view_is_read_from() {
        let mut changed = Changed::Streams(BTreeSet::new());
        let inbox = ["facility_inbox", "bed_board"];
        assert!(!changed.note(&inbox, "case_board\ncase-a"));
        assert!(!changed.note(&inbox, "timeline"));
        assert!(changed.note(&inbox, "bed_board\nfacility-x"));
        assert!(changed.note(&inbox, "facility_inbox\nplacement-p\ncase-c"));
        let listed: BTreeSet<String> = ["facility-x", "placement-p", "case-c"]
            .map(String::from)
            .into();
        assert_eq!(changed, Changed::Streams(listed));
        // A batch too large to list its streams may have changed any row.
        assert!(changed.note(&inbox, "bed_board"));
        assert_eq!(changed, Changed::Any);
    }

    /// Batches that list their rows every second, of the view's projection and of
    /// another, never leave a quiet [`WATCH_REFRESH`]; the whole view is read anyway.
    #[tokio::test(start_paused = true)]
    async fn a_busy_live_view_is_still_read_whole_every_refresh() {
        let (sender, changes) = broadcast::channel(16);
        let busy = tokio::spawn(async move {
            for second in 0.. {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let own = sender.send(format!("bed_board\nfacility-{second}"));
                let other = sender.send("case_board\ncase-a".to_owned());
                if own.is_err() || other.is_err() {
                    break;
                }
            }
        });
        let start = tokio::time::Instant::now();
        let updates = follow(
            changes,
            &["bed_board"],
            (Duration::ZERO, true),
            |changed| std::future::ready(Ok(changed == Changed::Any)),
            move |whole| Some((start.elapsed(), whole)),
        );
        let updates: Vec<(Duration, bool)> = updates
            .skip(1)
            .take(40)
            .map(|update| update.expect("a read"))
            .collect()
            .await;
        busy.abort();
        let whole: Vec<u64> = updates
            .iter()
            .filter(|(_, whole)| *whole)
            .map(|(at, _)| at.as_secs())
            .collect();
        assert_eq!(whole, [15, 30], "{updates:?}");
        // In between, each batch read only what it listed.
        assert!(updates.len() - whole.len() >= 35, "{updates:?}");
    }
}
