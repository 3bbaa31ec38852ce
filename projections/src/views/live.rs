//! Live views: a snapshot, then an update after each committed batch that changed what
//! the caller sees. Every update is computed from the caller's own filtered view, so it
//! never carries a row the caller may not see.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use futures_util::{Stream, StreamExt};
use noroshi_domain::authz::Principal;
use noroshi_domain::streams;
use noroshi_event_store::StreamId;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::{QueryError, Updates, Views};
use crate::runner;

/// How often a live stream looks again without a notification: staleness changes with
/// the clock alone, and a lost notification is made good.
const WATCH_REFRESH: Duration = Duration::from_secs(15);

/// A live view's rows after a read: the rows read and, when the read covered only what
/// some batches touched, every row of `before` that `untouched` says they did not touch.
pub(crate) fn merged<K: Ord + Clone, V: Clone>(
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
pub(crate) fn diff<K: Ord + Clone, V: PartialEq>(
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

    pub(crate) fn has_case(&self, id: &Uuid) -> bool {
        self.cases.binary_search(id).is_ok()
    }

    pub(crate) fn has_placement(&self, id: &Uuid) -> bool {
        self.placements.binary_search(id).is_ok()
    }

    /// Whether the placement or the case, named as the views' messages name them, is
    /// listed.
    pub(crate) fn has(&self, placement_id: &str, case_id: &str) -> bool {
        Uuid::parse_str(placement_id).is_ok_and(|id| self.has_placement(&id))
            || Uuid::parse_str(case_id).is_ok_and(|id| self.has_case(&id))
    }
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
    pub(crate) fn note(&mut self, projections: &[&str], payload: &str) -> bool {
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
pub(crate) fn follow<V, U, R, F, N>(
    changes: broadcast::Receiver<String>,
    projections: &'static [&'static str],
    first: U,
    read: R,
    next: N,
) -> impl Stream<Item = Result<U, QueryError>> + Send + 'static
where
    V: Send + 'static,
    U: Send + 'static,
    R: FnMut(Changed) -> F + Send + 'static,
    F: Future<Output = Result<V, QueryError>> + Send,
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

/// A live list that is read again whole after each batch of `projections` (a small list:
/// a reader's consults, a reader's alerts): `snapshot` first, as `first` makes it an
/// update, then after each batch a fresh `read` whose rows (`keyed`, each by its key and
/// as compared: without what changes by itself, such as an age) are compared with the
/// last ones, and `delta` makes the update of those that changed in or left the list.
pub(crate) fn whole_list<L, R, U, F>(
    changes: broadcast::Receiver<String>,
    projections: &'static [&'static str],
    snapshot: L,
    keyed: fn(&L) -> BTreeMap<String, R>,
    first: impl FnOnce(L) -> U,
    mut read: impl FnMut() -> F + Send + 'static,
    delta: impl Fn(L, &BTreeSet<String>, Vec<String>) -> U + Send + 'static,
) -> impl Stream<Item = Result<U, QueryError>> + Send + 'static
where
    L: Send + 'static,
    R: PartialEq + Send + 'static,
    U: Send + 'static,
    F: Future<Output = Result<L, QueryError>> + Send,
{
    let mut before = keyed(&snapshot);
    follow(
        changes,
        projections,
        first(snapshot),
        move |_| read(),
        move |list: L| {
            let after = keyed(&list);
            let changes = diff(&before, &after);
            before = after;
            let (changed, removed) = changes?;
            Some(delta(list, &changed, removed))
        },
    )
}

/// A live view sent whole each time (`public_stats`, `placement_sla`,
/// `bed_reconciliation`): `first`, then after each batch of `projections` a fresh `read`,
/// sent when what `figures` picks out of it (leaving out what changes by itself, such as
/// an age or the time of the answer) differs from the last one sent.
pub(crate) fn whole<U, K, F>(
    changes: broadcast::Receiver<String>,
    projections: &'static [&'static str],
    first: U,
    mut read: impl FnMut() -> F + Send + 'static,
    figures: impl Fn(&U) -> K + Send + 'static,
) -> impl Stream<Item = Result<U, QueryError>> + Send + 'static
where
    U: Send + 'static,
    K: PartialEq + Send + 'static,
    F: Future<Output = Result<U, QueryError>> + Send,
{
    let mut before = figures(&first);
    follow(
        changes,
        projections,
        first,
        move |_| read(),
        move |view: U| {
            let after = figures(&view);
            let changed = after != before;
            before = after;
            changed.then_some(view)
        },
    )
}

/// What a live stream shares between its reads and its updates. A panic while it was
/// held leaves nothing half-changed in it (each holder sets or extends it whole), so a
/// poisoned lock is taken as it is.
pub(crate) fn locked<T>(shared: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Audits the patients each update identifies, before it is sent.
pub(crate) fn audited<U, S>(
    updates: S,
    views: &Views,
    principal: Principal,
    via: &'static str,
    identified: fn(&U) -> Vec<Uuid>,
) -> Updates<U>
where
    U: Send + 'static,
    S: Stream<Item = Result<U, QueryError>> + Send + 'static,
{
    let views = views.clone();
    Box::pin(updates.then(move |update| {
        let (views, principal) = (views.clone(), principal.clone());
        async move {
            let update = update?;
            views.audit(&principal, via, &identified(&update)).await?;
            Ok(update)
        }
    }))
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
