//! The event-store contract of DESIGN.md §4, against a real PostgreSQL.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use noroshi_event_store::{
    AppendError, EventStore, ExpectedVersion, GlobalCursor, InvalidAppend, StoreError, StoreLimits,
    StreamId,
};
use noroshi_tests::fixtures::{append, event, stream, write};
use noroshi_tests::{TestDatabase, read_all_to};
use sqlx::Connection;
use sqlx::postgres::PgPoolOptions;
use uuid::Uuid;

#[tokio::test]
async fn append_then_read_stream_keeps_every_field() {
    let db = TestDatabase::create().await;
    let store = db.store();
    let mut request = append(vec![write("case-a1", ExpectedVersion::NoStream, 3)]);
    request.causation_id = Some(Uuid::now_v7());
    request.streams[0].events[1].schema_version = 2;
    let result = store.append(&request).await.unwrap();

    assert!(!result.replayed);
    assert_eq!(result.streams.len(), 1);
    assert_eq!(result.streams[0].version, 3);
    let stored = store.read_stream(&stream("case-a1"), 1, 100).await.unwrap();
    assert_eq!(stored.len(), 3);
    for (i, (recorded, sent)) in stored.iter().zip(&request.streams[0].events).enumerate() {
        assert_eq!(recorded.event_id, sent.event_id);
        assert_eq!(recorded.version, i as u64 + 1);
        assert_eq!(recorded.position, result.streams[0].events[i].position);
        assert_eq!(recorded.event_type, sent.event_type);
        assert_eq!(recorded.schema_version, sent.schema_version);
        // PostgreSQL keeps microseconds.
        assert_eq!(
            recorded.occurred_at.unix_timestamp_nanos() / 1000,
            sent.occurred_at.unix_timestamp_nanos() / 1000
        );
        assert_eq!(recorded.command_id, request.command_id);
        assert_eq!(recorded.correlation_id, request.correlation_id);
        assert_eq!(recorded.causation_id, request.causation_id);
        assert_eq!(recorded.actor, request.actor);
        assert_eq!(recorded.prefecture, request.prefecture);
        assert_eq!(recorded.payload, sent.payload);
    }
    assert_eq!(
        store.stream_version(&stream("case-a1")).await.unwrap(),
        Some(3)
    );
    assert_eq!(
        store.stream_version(&stream("case-none")).await.unwrap(),
        None
    );
    // Reading from the middle.
    let tail = store.read_stream(&stream("case-a1"), 2, 1).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].version, 2);
}

#[tokio::test]
async fn several_streams_read_each_in_its_own_range_of_versions_in_position_order() {
    let db = TestDatabase::create().await;
    let store = db.store();
    // Interleaved: a1 v1-2, b1 v1-3, a1 v3, c1 v1 (not asked for).
    for (name, expected, count) in [
        ("case-a1", ExpectedVersion::NoStream, 2),
        ("placement-b1", ExpectedVersion::NoStream, 3),
        ("case-a1", ExpectedVersion::Exact(2), 1),
        ("case-c1", ExpectedVersion::NoStream, 1),
    ] {
        store
            .append(&append(vec![write(name, expected, count)]))
            .await
            .unwrap();
    }
    let read = |ranges: Vec<(StreamId, std::ops::RangeInclusive<u64>)>, after, limit| {
        let store = store.clone();
        async move {
            store
                .read_streams(&ranges, after, limit)
                .await
                .unwrap()
                .into_iter()
                .map(|e| (e.stream_id.to_string(), e.version, e.position))
                .collect::<Vec<_>>()
        }
    };
    let versions = |read: &[(String, u64, u64)]| -> Vec<(String, u64)> {
        read.iter().map(|(s, v, _)| (s.clone(), *v)).collect()
    };
    let expect = |pairs: &[(&str, u64)]| -> Vec<(String, u64)> {
        pairs.iter().map(|(s, v)| ((*s).to_owned(), *v)).collect()
    };
    let up_to = vec![(stream("case-a1"), 1..=3), (stream("placement-b1"), 1..=2)];
    let all = read(up_to.clone(), 0, 100).await;
    assert_eq!(
        versions(&all),
        expect(&[
            ("case-a1", 1),
            ("case-a1", 2),
            ("placement-b1", 1),
            ("placement-b1", 2),
            ("case-a1", 3)
        ]),
        "placement-b1 v3 is beyond its range, case-c1 not asked for"
    );
    assert!(all.windows(2).all(|w| w[0].2 < w[1].2));
    // Paging by position.
    assert_eq!(read(up_to, all[1].2, 2).await, all[2..4]);
    // What a reader that has seen a1 v1-2 and b1 v1 has not seen yet.
    let unseen = read(
        vec![(stream("case-a1"), 3..=3), (stream("placement-b1"), 2..=3)],
        0,
        100,
    )
    .await;
    assert_eq!(
        versions(&unseen),
        expect(&[("placement-b1", 2), ("placement-b1", 3), ("case-a1", 3)])
    );
    assert!(read(Vec::new(), 0, 10).await.is_empty());
}

#[tokio::test]
async fn expected_versions_any_nostream_and_exact() {
    let db = TestDatabase::create().await;
    let store = db.store();
    store
        .append(&append(vec![write("case-x", ExpectedVersion::Any, 2)]))
        .await
        .unwrap();
    let any = store
        .append(&append(vec![write("case-x", ExpectedVersion::Any, 1)]))
        .await
        .unwrap();
    assert_eq!(any.streams[0].version, 3);

    let err = store
        .append(&append(vec![write("case-x", ExpectedVersion::NoStream, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            AppendError::WrongExpectedVersion {
                actual: 3,
                expected: ExpectedVersion::NoStream,
                ..
            }
        ),
        "{err:?}"
    );

    let err = store
        .append(&append(vec![write("case-y", ExpectedVersion::Exact(1), 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::WrongExpectedVersion { actual: 0, .. }),
        "{err:?}"
    );

    // Exact(0) means "no stream".
    let zero = store
        .append(&append(vec![write("case-y", ExpectedVersion::Exact(0), 1)]))
        .await
        .unwrap();
    assert_eq!(zero.streams[0].version, 1);
    let exact = store
        .append(&append(vec![write("case-x", ExpectedVersion::Exact(3), 2)]))
        .await
        .unwrap();
    assert_eq!(exact.streams[0].version, 5);
}

#[tokio::test]
async fn of_64_concurrent_appends_at_one_version_exactly_one_wins() {
    let db = TestDatabase::with_pool_size(64).await;
    let store = db.store();
    store
        .append(&append(vec![write(
            "facility-race",
            ExpectedVersion::NoStream,
            1,
        )]))
        .await
        .unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(64));
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let request = append(vec![write("facility-race", ExpectedVersion::Exact(1), 1)]);
            barrier.wait().await;
            store.append(&request).await
        }));
    }
    let mut won = 0;
    let mut conflicts = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(result) => {
                won += 1;
                assert_eq!(result.streams[0].version, 2);
            }
            Err(AppendError::WrongExpectedVersion {
                stream_id,
                expected,
                actual,
            }) => {
                conflicts += 1;
                assert_eq!(stream_id.as_str(), "facility-race");
                assert_eq!(expected, ExpectedVersion::Exact(1));
                assert_eq!(actual, 2, "the conflict carries the actual version");
            }
            Err(other) => panic!("unexpected error {other:?}"),
        }
    }
    assert_eq!((won, conflicts), (1, 63));
    assert_eq!(db.event_count().await, 2);
    assert_eq!(
        store
            .stream_version(&stream("facility-race"))
            .await
            .unwrap(),
        Some(2)
    );
}

#[tokio::test]
async fn a_conflict_on_one_stream_writes_nothing_to_any() {
    let db = TestDatabase::create().await;
    let store = db.store();
    store
        .append(&append(vec![write(
            "placement-p1",
            ExpectedVersion::NoStream,
            2,
        )]))
        .await
        .unwrap();
    store
        .append(&append(vec![write(
            "facility-f1",
            ExpectedVersion::NoStream,
            1,
        )]))
        .await
        .unwrap();
    let before = db.event_count().await;

    // placement-p1 matches, facility-f1 does not, case-c1 is new: nothing may land.
    let request = append(vec![
        write("placement-p1", ExpectedVersion::Exact(2), 1),
        write("facility-f1", ExpectedVersion::Exact(7), 1),
        write("case-c1", ExpectedVersion::NoStream, 1),
    ]);
    let err = store.append(&request).await.unwrap_err();
    assert!(
        matches!(&err, AppendError::WrongExpectedVersion { stream_id, actual: 1, .. } if stream_id.as_str() == "facility-f1"),
        "{err:?}"
    );
    assert_eq!(db.event_count().await, before);
    assert_eq!(
        store.stream_version(&stream("placement-p1")).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        store.stream_version(&stream("case-c1")).await.unwrap(),
        None
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(outbox, before, "no outbox row for the failed append");

    // The failed command id was not consumed: the corrected command commits under it.
    let mut corrected = request.clone();
    corrected.streams[1].expected = ExpectedVersion::Exact(1);
    let result = store.append(&corrected).await.unwrap();
    assert!(!result.replayed);
    let versions: Vec<u64> = result.streams.iter().map(|s| s.version).collect();
    assert_eq!(
        versions,
        vec![3, 2, 1],
        "results follow the request's stream order"
    );
}

#[tokio::test]
async fn a_committed_command_id_returns_the_original_result_and_appends_nothing() {
    let db = TestDatabase::create().await;
    let store = db.store();
    let request = append(vec![
        write("placement-p9", ExpectedVersion::NoStream, 1),
        write("facility-f9", ExpectedVersion::Any, 1),
    ]);
    let first = store.append(&request).await.unwrap();
    // Other commands move the streams on.
    store
        .append(&append(vec![write("facility-f9", ExpectedVersion::Any, 5)]))
        .await
        .unwrap();
    let count = db.event_count().await;

    // A retry, even one re-decided with fresh event ids and a stale expectation.
    let mut retry = request.clone();
    for stream in &mut retry.streams {
        stream.expected = ExpectedVersion::Exact(1);
        stream.events = vec![event("re-decided")];
    }
    let replay = store.append(&retry).await.unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.streams, first.streams, "same versions and positions");
    assert_eq!(db.event_count().await, count, "nothing appended");

    // Reusing the key for a different command is refused, not silently answered.
    let mut other = append(vec![write("case-other", ExpectedVersion::Any, 1)]);
    other.command_id = request.command_id;
    let err = store.append(&other).await.unwrap_err();
    assert!(
        matches!(err, AppendError::CommandIdReused { command_id } if command_id == request.command_id),
        "{err:?}"
    );
    assert_eq!(db.event_count().await, count);
}

/// With request digests, the same stream under the same command id is a replay only for
/// the same request: another digest is refused on every append path (one stream, several,
/// and the group commit of concurrent single-stream appends), and by `command_result`.
#[tokio::test]
async fn a_command_id_with_another_request_digest_is_refused() {
    let db = TestDatabase::create().await;
    let store = db.store();
    let mut single = append(vec![write("facility-d1", ExpectedVersion::Any, 1)]);
    single.request_digest = Some(vec![1; 32]);
    let mut multi = append(vec![
        write("facility-d2", ExpectedVersion::Any, 1),
        write("case-d2", ExpectedVersion::Any, 1),
    ]);
    multi.request_digest = Some(vec![2; 32]);
    store.append(&single).await.unwrap();
    store.append(&multi).await.unwrap();
    let count = db.event_count().await;
    for request in [&single, &multi] {
        assert!(store.append(request).await.unwrap().replayed);
        let mut other = request.clone();
        other.request_digest = Some(vec![9; 32]);
        let refused = store.append(&other).await.unwrap_err();
        assert!(
            matches!(refused, AppendError::CommandIdReused { command_id } if command_id == request.command_id),
            "{refused:?}"
        );
        // Without a digest, the command id alone decides, as before digests.
        let mut unknown = request.clone();
        unknown.request_digest = None;
        assert!(store.append(&unknown).await.unwrap().replayed);
        assert!(matches!(
            store
                .command_result(request.command_id, Some(&[9; 32]))
                .await,
            Err(AppendError::CommandIdReused { .. })
        ));
        assert!(
            store
                .command_result(request.command_id, request.request_digest.as_deref())
                .await
                .unwrap()
                .is_some()
        );
    }
    // Concurrent single-stream appends go through the group commit.
    let mut racing = Vec::new();
    for i in 0..8_u8 {
        let store = store.clone();
        let mut retry = single.clone();
        retry.request_digest = Some(vec![i % 2 + 1; 32]);
        racing.push(tokio::spawn(async move { store.append(&retry).await }));
    }
    for (i, handle) in racing.into_iter().enumerate() {
        match (i % 2, handle.await.unwrap()) {
            (0, Ok(result)) => assert!(result.replayed),
            (1, Err(AppendError::CommandIdReused { .. })) => {}
            (_, other) => panic!("append {i}: {other:?}"),
        }
    }
    assert_eq!(db.event_count().await, count, "nothing appended");
}

#[tokio::test]
async fn concurrent_retries_of_one_command_commit_it_once() {
    let db = TestDatabase::with_pool_size(16).await;
    let store = db.store();
    let request = append(vec![write("case-dup", ExpectedVersion::Any, 2)]);
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            store.append(&request).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.unwrap());
    }
    assert_eq!(results.iter().filter(|r| !r.replayed).count(), 1);
    assert!(results.iter().all(|r| r.streams == results[0].streams));
    assert_eq!(db.event_count().await, 2);
}

/// Group commit: single-stream appends that arrive together share statements, and each
/// still gets exactly the outcome it would have had alone.
#[tokio::test]
async fn concurrent_single_stream_appends_commit_together_each_with_its_own_outcome() {
    const STREAMS: usize = 24;
    const RACERS: usize = 4;
    let db = TestDatabase::with_pool_size(16).await;
    let store = db.store();
    for k in 0..STREAMS {
        let first = write(&format!("case-g{k}"), ExpectedVersion::NoStream, 1);
        store.append(&append(vec![first])).await.unwrap();
    }
    let earlier = append(vec![write("case-earlier", ExpectedVersion::NoStream, 2)]);
    let earlier_result = store.append(&earlier).await.unwrap();
    let before = db.event_count().await;

    // Per stream, RACERS appends of two events, all expecting version 1.
    let mut requests = Vec::new();
    for k in 0..STREAMS {
        for _ in 0..RACERS {
            let racer = write(&format!("case-g{k}"), ExpectedVersion::Exact(1), 2);
            requests.push(append(vec![racer]));
        }
    }
    // One command sent twice at once.
    let twice = append(vec![write("case-twice", ExpectedVersion::NoStream, 1)]);
    requests.push(twice.clone());
    requests.push(twice.clone());
    // A late retry of a committed command, re-decided on a stale state.
    let mut retry = earlier.clone();
    retry.streams[0].expected = ExpectedVersion::Exact(7);
    retry.streams[0].events = vec![event("re-decided")];
    requests.push(retry);
    // The committed command's id reused for another stream.
    let mut reused = append(vec![write("case-reused", ExpectedVersion::NoStream, 1)]);
    reused.command_id = earlier.command_id;
    requests.push(reused);

    let barrier = Arc::new(tokio::sync::Barrier::new(requests.len()));
    let mut tasks = Vec::new();
    for request in requests.clone() {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.append(&request).await
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let (batches, batched) = store.batched().get();
    assert!(
        batches > 0 && batched > batches,
        "appends shared statements: {batched} in {batches}"
    );

    for k in 0..STREAMS {
        let racers = &outcomes[k * RACERS..(k + 1) * RACERS];
        let won: Vec<_> = racers.iter().filter_map(|o| o.as_ref().ok()).collect();
        assert_eq!(won.len(), 1, "one racer wins case-g{k}: {racers:?}");
        let versions: Vec<u64> = won[0].streams[0].events.iter().map(|e| e.version).collect();
        assert_eq!(versions, [2, 3]);
        assert!(!won[0].replayed);
        for lost in racers.iter().filter_map(|o| o.as_ref().err()) {
            assert!(
                matches!(lost, AppendError::WrongExpectedVersion { stream_id, expected, actual }
                    if stream_id.as_str() == format!("case-g{k}")
                        && *expected == ExpectedVersion::Exact(1) && *actual == 3),
                "{lost:?}"
            );
        }
        let events = store
            .read_stream(&stream(&format!("case-g{k}")), 1, 10)
            .await
            .unwrap();
        assert_eq!(events.len(), 3);
        assert!(events.windows(2).all(|w| w[0].position < w[1].position));
    }
    let rest = &outcomes[STREAMS * RACERS..];
    let (a, b) = (rest[0].as_ref().unwrap(), rest[1].as_ref().unwrap());
    assert_eq!(a.streams, b.streams, "both sends get the same answer");
    assert_eq!([a.replayed, b.replayed].iter().filter(|r| !**r).count(), 1);
    let replay = rest[2].as_ref().unwrap();
    assert!(replay.replayed);
    assert_eq!(replay.streams, earlier_result.streams);
    assert!(
        matches!(&rest[3], Err(AppendError::CommandIdReused { command_id }) if *command_id == earlier.command_id),
        "{:?}",
        rest[3]
    );

    assert_eq!(db.event_count().await, before + STREAMS as i64 * 2 + 1);
    let outboxed: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(
        outboxed,
        db.event_count().await,
        "every event is in the outbox"
    );
}

/// A shared statement that meets a writer outside it (here a transaction holding the
/// next version of one of its streams) is rolled back whole; every append in it is then
/// made on its own, and nothing is lost or doubled.
#[tokio::test]
async fn a_shared_statement_that_meets_another_writer_is_retried_append_by_append() {
    const STREAMS: usize = 64;
    let db = TestDatabase::with_pool_size(16).await;
    let store = db.store();
    for k in 0..STREAMS {
        let first = write(&format!("case-b{k}"), ExpectedVersion::NoStream, 1);
        store.append(&append(vec![first])).await.unwrap();
    }
    let before = db.event_count().await;
    let mut outside = db.pool().begin().await.unwrap();
    let taken = append(vec![write("case-b0", ExpectedVersion::Exact(1), 1)]);
    store.append_on(&mut outside, &taken).await.unwrap();

    let barrier = Arc::new(tokio::sync::Barrier::new(STREAMS));
    let mut tasks = Vec::new();
    for k in 0..STREAMS {
        let store = store.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            let request = append(vec![write(
                &format!("case-b{k}"),
                ExpectedVersion::Exact(1),
                1,
            )]);
            barrier.wait().await;
            store.append(&request).await
        }));
    }
    // The statement that carries case-b0 (with others of its lane) waits for the
    // outside writer; let it commit only then.
    let waiting = async {
        loop {
            let blocked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND wait_event_type = 'Lock' AND query LIKE 'WITH req AS%'",
            )
            .fetch_one(db.pool())
            .await
            .unwrap();
            if blocked > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("a shared statement waits for the outside writer");
    outside.commit().await.unwrap();

    for (k, task) in tasks.into_iter().enumerate() {
        match (k, task.await.unwrap()) {
            (0, Err(AppendError::WrongExpectedVersion { actual, .. })) => assert_eq!(actual, 2),
            (0, other) => panic!("case-b0 lost its version to the outside writer: {other:?}"),
            (_, outcome) => {
                let result = outcome.unwrap();
                assert_eq!(result.streams[0].version, 2);
                assert!(!result.replayed);
            }
        }
    }
    assert_eq!(db.event_count().await, before + STREAMS as i64);
    let versions: Vec<i64> = sqlx::query_scalar(
        "SELECT version FROM events WHERE stream_id = 'case-b0' ORDER BY version",
    )
    .fetch_all(db.pool())
    .await
    .unwrap();
    assert_eq!(versions, [1, 2]);
}

#[tokio::test]
async fn positions_increase_with_versions_inside_a_stream() {
    let db = TestDatabase::with_pool_size(8).await;
    let store = db.store();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..20 {
                store
                    .append(&append(vec![write(
                        "facility-hot",
                        ExpectedVersion::Any,
                        2,
                    )]))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let events = store
        .read_stream(&stream("facility-hot"), 1, 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), 320);
    for (i, pair) in events.windows(2).enumerate() {
        assert_eq!(pair[0].version, i as u64 + 1, "versions have no gaps");
        assert!(
            pair[0].position < pair[1].position,
            "position order is version order"
        );
    }
}

/// Reads everything with the store's `read_all`, page by page.
async fn read_everything(
    store: &EventStore,
    mut cursor: GlobalCursor,
    seen: &mut Vec<Uuid>,
) -> GlobalCursor {
    loop {
        let page = store.read_all(cursor, 7).await.unwrap();
        if page.events.is_empty() {
            return cursor;
        }
        assert!(page.next > cursor);
        seen.extend(page.events.iter().map(|e| e.event_id));
        cursor = page.next;
    }
}

/// The naive reader the store must not be: `WHERE position > $last`.
async fn naive_read(pool: &sqlx::PgPool, after: i64, seen: &mut Vec<Uuid>) -> i64 {
    let rows: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT position, event_id FROM events WHERE position > $1 ORDER BY position",
    )
    .bind(after)
    .fetch_all(pool)
    .await
    .unwrap();
    let last = rows.last().map_or(after, |r| r.0);
    seen.extend(rows.into_iter().map(|r| r.1));
    last
}

#[tokio::test]
async fn read_all_never_skips_an_event_whose_transaction_commits_late() {
    let db = TestDatabase::create().await;
    let store = db.store();

    // A takes its position first but commits last.
    let mut slow = sqlx::PgConnection::connect(db.url()).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    let late = append(vec![write("case-late", ExpectedVersion::Any, 1)]);
    let late_result = store.append_on(&mut tx, &late).await.unwrap();
    // B takes a later position and commits at once.
    let early = store
        .append(&append(vec![write("case-early", ExpectedVersion::Any, 1)]))
        .await
        .unwrap();
    assert!(late_result.streams[0].position < early.streams[0].position);

    let mut store_seen = Vec::new();
    let mut naive_seen = Vec::new();
    let cursor = read_everything(&store, GlobalCursor::START, &mut store_seen).await;
    let naive_cursor = naive_read(db.pool(), 0, &mut naive_seen).await;
    assert!(
        store_seen.is_empty(),
        "B is not final while the older A is still running"
    );
    assert_eq!(
        naive_seen.len(),
        1,
        "the naive reader already passed A's position"
    );

    tx.commit().await.unwrap();
    let (rest, _) = read_all_to(&store, cursor, 7, 2).await;
    store_seen.extend(rest.iter().map(|e| e.event_id));
    naive_read(db.pool(), naive_cursor, &mut naive_seen).await;

    let a = late_result.streams[0].events[0].event_id;
    let b = early.streams[0].events[0].event_id;
    assert_eq!(store_seen, vec![a, b], "read_all returns both, once each");
    assert_eq!(
        naive_seen,
        vec![b],
        "control: the naive reader skips A for ever"
    );
}

#[tokio::test]
async fn read_all_under_concurrent_out_of_order_commits_sees_every_event_once() {
    let db = TestDatabase::with_pool_size(20).await;
    let store = db.store();
    let writers = 6;
    let per_writer = 40;
    let done = tokio_util_free_flag();

    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        let url = db.url().to_owned();
        tasks.push(tokio::spawn(async move {
            let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
            let mut ids = Vec::new();
            for i in 0..per_writer {
                let mut tx = conn.begin().await.unwrap();
                let request = append(vec![write(
                    &format!("case-w{w}"),
                    ExpectedVersion::Any,
                    1 + i % 3,
                )]);
                let result = store.append_on(&mut tx, &request).await.unwrap();
                // Hold some transactions open so later positions commit first.
                if (i + w) % 4 == 0 {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                }
                tx.commit().await.unwrap();
                ids.extend(result.streams[0].events.iter().map(|e| e.event_id));
            }
            ids
        }));
    }
    let reader = {
        let store = store.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut cursor = GlobalCursor::START;
            loop {
                let finished = done.load(std::sync::atomic::Ordering::Acquire);
                cursor = read_everything(&store, cursor, &mut seen).await;
                if finished {
                    return (seen, cursor);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut written = Vec::new();
    for task in tasks {
        written.extend(task.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Release);
    let (mut seen, cursor) = reader.await.unwrap();
    // What another test's running transaction still held back when the writers ended.
    let (rest, _) = read_all_to(&store, cursor, 7, written.len().saturating_sub(seen.len())).await;
    seen.extend(rest.iter().map(|e| e.event_id));

    let unique: HashSet<_> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "no event read twice");
    let written: HashSet<_> = written.iter().collect();
    assert_eq!(unique, written, "every committed event read");
}

fn tokio_util_free_flag() -> Arc<std::sync::atomic::AtomicBool> {
    Arc::new(std::sync::atomic::AtomicBool::new(false))
}

#[tokio::test]
async fn bad_input_gets_a_typed_error_and_writes_nothing() {
    let db = TestDatabase::create().await;
    let store = db.store();

    let err = store.append(&append(vec![])).await.unwrap_err();
    assert!(matches!(
        err,
        AppendError::Invalid(InvalidAppend::EmptyBatch)
    ));

    let err = store
        .append(&append(vec![write("case-e", ExpectedVersion::Any, 0)]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::Invalid(InvalidAppend::EmptyStream { .. })
    ));

    let err = store
        .append(&append(vec![
            write("case-d", ExpectedVersion::Any, 1),
            write("case-d", ExpectedVersion::Any, 1),
        ]))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        AppendError::Invalid(InvalidAppend::DuplicateStream { .. })
    ));

    // The default limit is 1 MiB: exactly that passes, one byte more does not.
    let limit = StoreLimits::default().max_payload_bytes;
    assert_eq!(limit, 1024 * 1024);
    let mut oversized = append(vec![write("case-big", ExpectedVersion::Any, 2)]);
    oversized.streams[0].events[1].payload = Bytes::from(vec![7u8; limit + 1]);
    let err = store.append(&oversized).await.unwrap_err();
    assert!(
        matches!(err, AppendError::Invalid(InvalidAppend::PayloadTooLarge { index: 1, size, limit: l, .. }) if size == limit + 1 && l == limit),
        "{err:?}"
    );
    // The limit is configurable.
    let small = EventStore::new(
        db.pool().clone(),
        StoreLimits {
            max_payload_bytes: 16,
            ..StoreLimits::default()
        },
    );
    let mut seventeen = append(vec![write("case-small", ExpectedVersion::Any, 1)]);
    seventeen.streams[0].events[0].payload = Bytes::from(vec![0u8; 17]);
    assert!(matches!(
        small.append(&seventeen).await,
        Err(AppendError::Invalid(InvalidAppend::PayloadTooLarge { .. }))
    ));

    let mut too_many = append(vec![write("case-many", ExpectedVersion::Any, 1001)]);
    let err = store.append(&too_many).await.unwrap_err();
    assert!(matches!(
        err,
        AppendError::Invalid(InvalidAppend::TooManyEvents {
            count: 1001,
            limit: 1000
        })
    ));
    too_many.streams[0].events.truncate(1);

    let mut bad_type = append(vec![write("case-t", ExpectedVersion::Any, 1)]);
    bad_type.streams[0].events[0].event_type = "not a type".into();
    assert!(matches!(
        store.append(&bad_type).await,
        Err(AppendError::Invalid(InvalidAppend::InvalidEventType { .. }))
    ));

    let mut no_actor = append(vec![write("case-t", ExpectedVersion::Any, 1)]);
    no_actor.actor.clear();
    assert!(matches!(
        store.append(&no_actor).await,
        Err(AppendError::Invalid(InvalidAppend::InvalidActor))
    ));

    // Invalid stream ids cannot even be constructed.
    for bad in [
        "no_separator",
        "Case-1",
        "case-a.b",
        "case-a*",
        "case-",
        "case-a b",
    ] {
        assert!(StreamId::parse(bad).is_err(), "{bad}");
    }

    assert_eq!(db.event_count().await, 0, "no partial write");

    // A reused event id (same id, new command) is refused by the database and named.
    let first = append(vec![write("case-id", ExpectedVersion::Any, 1)]);
    store.append(&first).await.unwrap();
    let mut reused = append(vec![write("case-id2", ExpectedVersion::Any, 1)]);
    reused.streams[0].events[0].event_id = first.streams[0].events[0].event_id;
    let err = store.append(&reused).await.unwrap_err();
    assert!(
        matches!(err, AppendError::Invalid(InvalidAppend::DuplicateEventId { event_id }) if event_id == first.streams[0].events[0].event_id),
        "{err:?}"
    );
    assert_eq!(db.event_count().await, 1);
}

#[tokio::test]
async fn a_database_that_is_down_is_reported_unavailable() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(&format!("postgres://postgres@127.0.0.1:{port}/nothing"))
        .unwrap();
    let store = EventStore::new(pool, StoreLimits::default());
    let err = store
        .append(&append(vec![write("case-down", ExpectedVersion::Any, 1)]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Store(StoreError::Unavailable(_))),
        "{err:?}"
    );
    let err = store.read_all(GlobalCursor::START, 10).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    let err = store
        .read_stream(&stream("case-down"), 1, 10)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

#[tokio::test]
async fn the_database_goes_down_mid_use_and_nothing_half_written_remains() {
    let db = TestDatabase::create().await;
    let store = db.store();
    store
        .append(&append(vec![write("case-m", ExpectedVersion::Any, 1)]))
        .await
        .unwrap();
    // Kill every connection of this database from the outside, as a crash would.
    let mut admin = sqlx::PgConnection::connect(
        &std::env::var("NOROSHI_TEST_DATABASE_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    )
    .await
    .unwrap();
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()")
        .bind(db.name())
        .execute(&mut admin)
        .await
        .unwrap();
    // The pool notices dead connections and reconnects; no append is half applied.
    let mut ok = 0;
    for _ in 0..5 {
        match store
            .append(&append(vec![write("case-m", ExpectedVersion::Any, 1)]))
            .await
        {
            Ok(_) => ok += 1,
            Err(AppendError::Store(StoreError::Unavailable(_))) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        ok >= 4,
        "the pool reconnects after at most one failed attempt"
    );
    let events = store.read_stream(&stream("case-m"), 1, 100).await.unwrap();
    assert_eq!(events.len() as i64, db.event_count().await);
    assert_eq!(events.len(), 1 + ok);
}

#[tokio::test]
async fn stored_events_are_immutable() {
    let db = TestDatabase::create().await;
    db.store()
        .append(&append(vec![write("case-i", ExpectedVersion::Any, 1)]))
        .await
        .unwrap();
    for statement in [
        "UPDATE events SET actor = 'someone else'",
        "DELETE FROM events",
        "TRUNCATE events",
    ] {
        let err = sqlx::query(statement).execute(db.pool()).await.unwrap_err();
        assert!(
            err.to_string().contains("events are immutable"),
            "{statement}: {err}"
        );
    }
    assert_eq!(db.event_count().await, 1);
}

#[tokio::test]
async fn read_all_pages_in_commit_safe_order_with_full_metadata() {
    let db = TestDatabase::create().await;
    let store = db.store();
    let mut expected = BTreeMap::new();
    for i in 0..25 {
        let request = append(vec![write(
            &format!("case-r{}", i % 4),
            ExpectedVersion::Any,
            1,
        )]);
        let result = store.append(&request).await.unwrap();
        expected.insert(
            result.streams[0].position,
            request.streams[0].events[0].clone(),
        );
    }
    let (read, _) = read_all_to(&store, GlobalCursor::START, 10, expected.len()).await;
    assert!(read.iter().all(|e| e.prefecture.code() == "35"));
    let ids: Vec<Uuid> = read.iter().map(|e| e.event_id).collect();
    let want: Vec<Uuid> = expected.values().map(|e| e.event_id).collect();
    assert_eq!(ids, want, "sequential commits read back in position order");
}
