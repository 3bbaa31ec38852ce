//! Messages lost by JetStream (DESIGN.md §13): events deleted from the stream with
//! JetStream's message-delete API, and a subject purged but for its last message, never
//! reach the projections; the projections read the versions they lack from the event
//! store, apply them in order, count them, and the views equal what the events say.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use async_nats::jetstream;
use noroshi::application::Component;
use noroshi_event_store::wire;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{HOSPITAL, HOSPITAL_OTHER, TestApi};
use noroshi_tests::pipeline::{Pipeline, TEST_KNOWN_VERSIONS};
use noroshi_tests::{NatsServer, eventually, read_all_events};

#[tokio::test]
async fn projections_heal_from_the_store_what_jetstream_lost() {
    let nats = NatsServer::start().await;
    let api = TestApi::start().await;
    api.seed().await;
    let (relay, _) =
        Pipeline::components(&api.db, &nats, TEST_KNOWN_VERSIONS, vec![Component::Relay]).await;
    for (secured, ready) in [(10, 8), (12, 9), (14, 10), (16, 11)] {
        api.declare(
            HOSPITAL,
            "hofu-central",
            pb::BedCategory::Moderate,
            secured,
            ready,
            0,
        )
        .await;
    }
    for (secured, ready) in [(5, 5), (6, 4)] {
        api.declare(
            HOSPITAL_OTHER,
            "ube-medical",
            pb::BedCategory::Moderate,
            secured,
            ready,
            0,
        )
        .await;
    }
    let client = nats.client().await;
    let stored = api.db.event_count().await as usize;
    eventually("every event on the stream", Duration::from_secs(30), || {
        let client = client.clone();
        async move { read_all_events(&client, "NOROSHI_EVENTS").await.len() == stored }
    })
    .await;
    drop(relay);

    // JetStream loses hofu-central's second and third declarations (versions 3 and 4 of
    // its stream, after its registration)...
    let mut stream = jetstream::new(client.clone())
        .get_stream("NOROSHI_EVENTS")
        .await
        .unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut deleted = 0;
    for sequence in state.first_sequence..=state.last_sequence {
        let message = stream.get_raw_message(sequence).await.unwrap();
        let stream_id = message
            .headers
            .get(wire::STREAM_ID)
            .unwrap()
            .as_str()
            .to_owned();
        let version = message
            .headers
            .get(wire::VERSION)
            .unwrap()
            .as_str()
            .to_owned();
        if stream_id == "facility-hofu-central" && (version == "3" || version == "4") {
            assert!(stream.delete_message(sequence).await.unwrap());
            deleted += 1;
        }
    }
    assert_eq!(deleted, 2);
    // ...and every message of ube-medical but its last: its registration and first
    // declaration.
    stream
        .purge()
        .filter("noroshi.35.events.facility.ube-medical")
        .keep(1)
        .await
        .unwrap();
    let left = stream.info().await.unwrap().state.messages;
    assert_eq!(left as usize, stored - 4);

    let (_projections, _) = Pipeline::components(
        &api.db,
        &nats,
        TEST_KNOWN_VERSIONS,
        vec![Component::Projections],
    )
    .await;
    eventually("the views whole again", Duration::from_secs(30), || async {
        api.moderate_beds("hofu-central").await == Some((16, 11))
            && api.moderate_beds("ube-medical").await == Some((6, 4))
    })
    .await;
    // The bed board read back hofu-central's two declarations and ube-medical's
    // registration and first declaration, each once.
    let healed: i64 = sqlx::query_scalar(
        "SELECT healed_events FROM projection_checkpoints WHERE projection = 'bed_board'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    assert_eq!(healed, 4);
    // The board names ube-medical as registered (from the healed registration).
    let name: Option<String> = sqlx::query_scalar(
        "SELECT name FROM bed_board_facilities WHERE facility_id = 'ube-medical'",
    )
    .fetch_optional(api.db.pool())
    .await
    .unwrap();
    assert!(name.is_some_and(|n| !n.is_empty()));
    let metrics = api
        .http_request(http::Method::GET, "/metrics", &[], "")
        .await;
    let text = String::from_utf8_lossy(&metrics.body);
    assert!(
        text.contains("noroshi_projection_healed_events{projection=\"bed_board\"} 4"),
        "{text}"
    );
}
