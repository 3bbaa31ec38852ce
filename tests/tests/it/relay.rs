//! The outbox relay against a real PostgreSQL and a real nats-server.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::Duration;

use noroshi_event_store::relay::{self, RelayConfig, RelayError};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_event_store::{EventStore, ExpectedVersion, GlobalCursor, RecordedEvent};
use noroshi_tests::fixtures::{append, write};
use noroshi_tests::{
    NatsServer, NoroshiProcess, TestDatabase, eventually, read_all_events, read_all_to,
};
use tokio_util::sync::CancellationToken;

const STREAM: &str = "NOROSHI_EVENTS";
const DRAIN: Duration = Duration::from_secs(60);

fn config() -> RelayConfig {
    let mut config = RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap());
    config.poll_interval = Duration::from_millis(200);
    config.leader_retry_interval = Duration::from_millis(100);
    config.publish_timeout = Duration::from_secs(2);
    config.max_backoff = Duration::from_millis(500);
    config
}

/// Runs the relay in this process until the returned token is cancelled.
fn spawn_relay(
    db: &TestDatabase,
    client: async_nats::Client,
) -> (
    CancellationToken,
    tokio::task::JoinHandle<Result<(), RelayError>>,
) {
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(relay::run(
        db.pool().clone(),
        client,
        config(),
        shutdown.clone(),
    ));
    (shutdown, task)
}

/// `count` single-event appends spread round-robin over `streams` streams `<kind>-<n>`.
async fn append_round_robin(store: &EventStore, kind: &str, streams: usize, count: usize) {
    for i in 0..count {
        let stream = format!("{kind}-{}", i % streams);
        store
            .append(&append(vec![write(&stream, ExpectedVersion::Any, 1)]))
            .await
            .unwrap();
    }
}

/// Every stored event, in position order.
async fn stored(db: &TestDatabase) -> Vec<RecordedEvent> {
    let total = usize::try_from(db.event_count().await).unwrap();
    let (mut all, _) = read_all_to(&db.store(), GlobalCursor::START, 1000, total).await;
    all.sort_by_key(|e| e.position);
    all
}

async fn wait_drained(db: &TestDatabase) {
    let pool = db.pool().clone();
    eventually("the outbox to drain", DRAIN, || {
        let pool = pool.clone();
        async move { relay::pending(&pool).await.unwrap() == 0 }
    })
    .await;
}

/// JetStream holds every stored event exactly once, identical to the stored one, with
/// each stream's versions in order.
async fn assert_relayed_exactly_once(db: &TestDatabase, nats: &NatsServer) {
    let stored = stored(db).await;
    let published = read_all_events(&nats.client().await, STREAM).await;
    assert_eq!(
        published.len(),
        stored.len(),
        "one message per event, no duplicates, none missing"
    );
    let by_id: HashMap<_, _> = stored.iter().map(|e| (e.event_id, e)).collect();
    let mut last_version: HashMap<String, u64> = HashMap::new();
    for message in &published {
        let original = by_id
            .get(&message.event_id)
            .expect("published event is stored");
        assert_eq!(
            &message, original,
            "headers and payload carry the stored event exactly"
        );
        let last = last_version
            .entry(message.stream_id.to_string())
            .or_default();
        assert_eq!(
            message.version,
            *last + 1,
            "per-stream order on {}",
            message.stream_id
        );
        *last = message.version;
    }
}

#[tokio::test]
async fn every_event_arrives_once_in_stream_order_with_its_metadata() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let (shutdown, relay_task) = spawn_relay(&db, nats.client().await);
    let store = db.store();

    let mut writers = Vec::new();
    for w in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..50 {
                let request = append(vec![
                    write(&format!("facility-f{}", i % 5), ExpectedVersion::Any, 1),
                    write(
                        &format!("case-w{w}-{}", i % 7),
                        ExpectedVersion::Any,
                        1 + i % 2,
                    ),
                ]);
                store.append(&request).await.unwrap();
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    wait_drained(&db).await;
    assert_relayed_exactly_once(&db, &nats).await;

    // A committed command retried after publication: original result, nothing new anywhere.
    let request = append(vec![write("placement-retry", ExpectedVersion::NoStream, 2)]);
    let first = store.append(&request).await.unwrap();
    wait_drained(&db).await;
    let published_before = read_all_events(&nats.client().await, STREAM).await.len();
    let again = store.append(&request).await.unwrap();
    assert!(again.replayed);
    assert_eq!(again.streams, first.streams);
    tokio::time::sleep(Duration::from_millis(300)).await; // give a wrong publish time to show
    assert_eq!(
        read_all_events(&nats.client().await, STREAM).await.len(),
        published_before
    );

    shutdown.cancel();
    relay_task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_backlog_survives_nats_being_down_and_drains_when_it_returns() {
    let db = TestDatabase::create().await;
    let mut nats = NatsServer::start().await;
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(nats.url())
        .await
        .unwrap();
    let (shutdown, relay_task) = spawn_relay(&db, client);
    let store = db.store();
    append_round_robin(&store, "case", 10, 100).await;
    wait_drained(&db).await;

    nats.stop().await;
    // Appends go on while NATS is down; they wait in the outbox.
    append_round_robin(&store, "case", 13, 300).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        relay::pending(db.pool()).await.unwrap() > 0,
        "the backlog is kept while NATS is down"
    );

    nats.restart().await;
    append_round_robin(&store, "case", 10, 100).await;
    wait_drained(&db).await;
    assert_relayed_exactly_once(&db, &nats).await;
    assert_eq!(db.event_count().await, 500);

    shutdown.cancel();
    relay_task.await.unwrap().unwrap();
}

#[tokio::test]
async fn the_relay_refuses_a_nats_server_too_small_for_the_payload_limit() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::with_max_payload(1024 * 1024).await;
    let err = relay::run(
        db.pool().clone(),
        nats.client().await,
        config(),
        CancellationToken::new(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            RelayError::PayloadLimit {
                server: 1_048_576,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_one_mebibyte_event_is_relayed() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let (shutdown, relay_task) = spawn_relay(&db, nats.client().await);
    let mut request = append(vec![write("case-big", ExpectedVersion::Any, 1)]);
    request.streams[0].events[0].payload = vec![42u8; 1024 * 1024].into();
    db.store().append(&request).await.unwrap();
    wait_drained(&db).await;
    assert_relayed_exactly_once(&db, &nats).await;
    shutdown.cancel();
    relay_task.await.unwrap().unwrap();
}

fn relay_process(db: &TestDatabase, nats: &NatsServer, name: &str) -> NoroshiProcess {
    let url = format!("{}?application_name={name}", db.url());
    let nats_url = nats.url();
    NoroshiProcess::spawn(
        name,
        &["serve", "--components", "relay"],
        &[
            ("NOROSHI_DATABASE_URL", url.as_str()),
            ("NOROSHI_NATS_URL", nats_url.as_str()),
            ("NOROSHI_RELAY_LEADER_RETRY", "100ms"),
            ("NOROSHI_RELAY_POLL_INTERVAL", "200ms"),
            ("NOROSHI_RELAY_BATCH_SIZE", "100"),
        ],
    )
}

/// The `application_name` of the session holding the relay's advisory lock: the
/// process's own, then ` leads relay`.
async fn leader(db: &TestDatabase) -> Option<String> {
    sqlx::query_scalar(
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND l.granted AND a.datname = current_database()",
    )
    .fetch_optional(db.pool())
    .await
    .unwrap()
}

async fn published_count(nats: &NatsServer) -> u64 {
    let context = async_nats::jetstream::new(nats.client().await);
    match context.get_stream(STREAM).await {
        Ok(mut stream) => stream.info().await.map(|i| i.state.messages).unwrap_or(0),
        Err(_) => 0,
    }
}

#[tokio::test]
async fn a_relay_killed_mid_batch_loses_and_duplicates_nothing() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let store = db.store();
    // A backlog over many streams, some long.
    for i in 0..3000 {
        store
            .append(&append(vec![write(
                &format!("case-{}", i % 150),
                ExpectedVersion::Any,
                1 + i % 2,
            )]))
            .await
            .unwrap();
    }
    let total = u64::try_from(db.event_count().await).unwrap();

    let mut first = relay_process(&db, &nats, "relay-first");
    eventually(
        "the first relay to publish part of the backlog",
        DRAIN,
        || async { published_count(&nats).await >= 300 },
    )
    .await;
    first.kill();
    let published = published_count(&nats).await;
    assert!(
        published < total,
        "killed before the end ({published} of {total}); make the backlog larger"
    );

    let mut second = relay_process(&db, &nats, "relay-second");
    wait_drained(&db).await;
    assert_relayed_exactly_once(&db, &nats).await;
    let status = second
        .terminate(Duration::from_secs(15))
        .await
        .expect("second relay exits on SIGTERM");
    assert!(
        status.success(),
        "graceful exit; log: {}",
        second.log_path().display()
    );
}

#[tokio::test]
async fn a_standby_relay_takes_over_when_the_leader_dies() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let store = db.store();
    let mut a = relay_process(&db, &nats, "relay_a");
    eventually("relay a to lead", DRAIN, || async {
        leader(&db).await.as_deref() == Some("relay_a leads relay")
    })
    .await;
    let mut b = relay_process(&db, &nats, "relay_b");
    append_round_robin(&store, "facility", 3, 50).await;
    wait_drained(&db).await;
    assert!(
        b.is_running(),
        "the standby waits; log: {}",
        b.log_path().display()
    );
    assert_eq!(
        leader(&db).await.as_deref(),
        Some("relay_a leads relay"),
        "one leader at a time"
    );

    a.kill();
    eventually("relay b to take over", DRAIN, || async {
        leader(&db).await.as_deref() == Some("relay_b leads relay")
    })
    .await;
    append_round_robin(&store, "facility", 3, 50).await;
    wait_drained(&db).await;
    assert_relayed_exactly_once(&db, &nats).await;
    assert_eq!(published_count(&nats).await, 100);

    let status = b
        .terminate(Duration::from_secs(15))
        .await
        .expect("exits on SIGTERM");
    assert!(
        status.success(),
        "graceful exit; log: {}",
        b.log_path().display()
    );
    assert!(
        b.log().contains("leadership released"),
        "the leader gives its lock up on SIGTERM"
    );
}
