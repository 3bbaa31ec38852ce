//! One stream, one store (DESIGN.md §13): two deployments pointed by mistake at one
//! nats-server and one stream. The relay of the second is refused (the stream names the
//! first store), and an event of another store that reaches a projection's stream
//! anyway is refused, counted and never applied; the first deployment's views go on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use noroshi_event_store::{StreamId, wire};
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{HOSPITAL, TestApi};
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::{NatsServer, eventually, read_all_events};

/// `hofu-central`'s moderate `(secured, ready)` on a deployment's bed board.
async fn moderate(api: &TestApi) -> Option<(i32, i32)> {
    api.moderate_beds("hofu-central").await
}

async fn foreign_events(api: &TestApi) -> i64 {
    sqlx::query_scalar(
        "SELECT coalesce(sum(foreign_events), 0)::bigint FROM projection_checkpoints",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap()
}

#[tokio::test]
async fn a_second_store_on_the_same_stream_is_refused_and_no_view_changes() {
    let nats = NatsServer::start().await;
    let first = TestApi::start().await;
    first.seed().await;
    first
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            10,
            8,
            0,
        )
        .await;
    let (_first_side, _) = Pipeline::start(&first.db, &nats).await;
    eventually(
        "the first store's view",
        Duration::from_secs(30),
        || async { moderate(&first).await == Some((10, 8)) },
    )
    .await;

    // A second deployment, its own database, the same NATS, stream and subjects.
    let second = TestApi::start().await;
    second.seed().await;
    second
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            99,
            99,
            0,
        )
        .await;
    let (_second_side, _) = Pipeline::start(&second.db, &nats).await;
    // The first store goes on: a new declaration reaches its view...
    first
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            12,
            9,
            0,
        )
        .await;
    eventually(
        "the first store's next figures",
        Duration::from_secs(30),
        || async { moderate(&first).await == Some((12, 9)) },
    )
    .await;
    // ...while the second's relay publishes nothing: the stream holds the first store's
    // events only, and the second's wait in its outbox.
    let client = nats.client().await;
    let first_ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(first.db.pool())
        .await
        .unwrap();
    let published = read_all_events(&client, "NOROSHI_EVENTS").await;
    assert_eq!(published.len(), first_ids.len());
    assert!(published.iter().all(|e| first_ids.contains(&e.event_id)));
    let waiting: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
        .fetch_one(second.db.pool())
        .await
        .unwrap();
    assert_eq!(waiting, second.db.event_count().await);
    assert_eq!(moderate(&first).await, Some((12, 9)));

    // An event of the second store that reaches the stream anyway (published by hand,
    // stamped as the relay stamps) is refused by every projection and counted; the
    // first store's view keeps its figures and goes on.
    let store = second.db.store().store_id().await.unwrap();
    let stream = StreamId::new("facility", "hofu-central").unwrap();
    let events = second
        .db
        .store()
        .read_stream(&stream, 1, 100)
        .await
        .unwrap();
    let declared = events
        .iter()
        .rev()
        .find(|e| e.event_type.ends_with("CapacityDeclared"))
        .unwrap();
    // As the next version of the first store's stream, which its projections would
    // apply if they took it.
    let next = first
        .db
        .store()
        .stream_version(&stream)
        .await
        .unwrap()
        .unwrap()
        + 1;
    let mut headers = wire::event_headers(declared);
    headers.insert(wire::VERSION, next.to_string().as_str());
    headers.insert(wire::STORE, store.to_string().as_str());
    let prefix = wire::SubjectPrefix::parse("noroshi").unwrap();
    client
        .publish_with_headers(
            prefix.event_subject(declared.prefecture, &declared.stream_id),
            headers,
            declared.payload.clone(),
        )
        .await
        .unwrap();
    client.flush().await.unwrap();
    eventually("the refusal counted", Duration::from_secs(30), || async {
        foreign_events(&first).await >= 1
    })
    .await;
    assert_eq!(moderate(&first).await, Some((12, 9)));
    first
        .declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            14,
            11,
            0,
        )
        .await;
    eventually(
        "the first store's figures after the refusal",
        Duration::from_secs(30),
        || async { moderate(&first).await == Some((14, 11)) },
    )
    .await;
    assert_eq!(
        moderate(&second).await,
        None,
        "the second store's view was never fed"
    );
    let metrics = first
        .http_request(http::Method::GET, "/metrics", &[], "")
        .await;
    let text = String::from_utf8_lossy(&metrics.body);
    let refused = text
        .lines()
        .find_map(|l| {
            l.strip_prefix("noroshi_projection_foreign_events{projection=\"bed_board\"} ")
        })
        .and_then(|n| n.trim().parse::<f64>().ok());
    assert!(refused.is_some_and(|n| n >= 1.0), "{text}");
}
