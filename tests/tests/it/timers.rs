//! The scheduler's offer expiry: each passed deadline becomes exactly one `OfferExpired`,
//! with two schedulers running, and after a restart, read from the read models rather
//! than from the log. The clock is moved instead of waiting for 30 minutes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use noroshi::application::{Application, Component, Config};
use noroshi_app::CommandHandler;
use noroshi_app::timers::{self, TimerSettings};
use noroshi_proto::v1 as pb;
use noroshi_tests::NatsServer;
use noroshi_tests::api::{ApiOptions, HOSPITAL, TestApi};
use noroshi_tests::eventually;
use noroshi_tests::pipeline::Pipeline;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A clock that can be moved forward, shared by the API and the timers.
fn movable_clock() -> (Arc<AtomicI64>, noroshi_app::Clock) {
    let offset = Arc::new(AtomicI64::new(0));
    let read = offset.clone();
    let clock = Arc::new(move || {
        OffsetDateTime::now_utc() + time::Duration::seconds(read.load(Ordering::SeqCst))
    });
    (offset, clock)
}

/// A timer process on the API's database, as `noroshi serve --components timers` runs it,
/// with a movable clock; it runs until `shutdown`.
async fn timer_process(
    api: &TestApi,
    clock: noroshi_app::Clock,
    shutdown: &CancellationToken,
) -> (Arc<CommandHandler>, tokio::task::JoinHandle<()>) {
    let mut config = Config::new(api.db.url());
    config.components = vec![Component::Timers];
    config.commands.cache_capacity = 1000;
    config.timers = TimerSettings {
        poll_interval: Duration::from_millis(50),
    };
    config.clock = clock;
    let application = Application::build(config).await.unwrap();
    let handler = application.handler().clone();
    let stop = application.shutdown();
    let shutdown = shutdown.clone();
    let running = tokio::spawn(async move {
        tokio::select! {
            () = shutdown.cancelled() => stop.cancel(),
            () = stop.cancelled() => {}
        }
    });
    let run = tokio::spawn(async move {
        application.run_until_stopped().await.unwrap();
        running.await.unwrap();
    });
    (handler, run)
}

async fn expiries(api: &TestApi, placement_id: &str) -> usize {
    api.event_types(&format!("placement-{placement_id}"))
        .await
        .iter()
        .filter(|t| *t == "OfferExpired")
        .count()
}

#[tokio::test]
async fn a_passed_deadline_expires_once_with_two_timers_and_after_a_restart() {
    let (offset, clock) = movable_clock();
    let api = TestApi::with(ApiOptions {
        clock: clock.clone(),
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    api.declare(
        HOSPITAL,
        "hofu-central",
        pb::BedCategory::Moderate,
        10,
        10,
        0,
    )
    .await;
    let nats = NatsServer::start().await;
    let (_read_side, _) = Pipeline::start(&api.db, &nats).await;
    let case_id = api.report_case(pb::Severity::ModerateI).await;
    let placement_id = api
        .request_placement(&case_id, pb::BedCategory::Moderate)
        .await;
    api.offer(&placement_id, "hofu-central").await;
    let deadline = offer_deadline(&api, &placement_id).await;

    let shutdown = CancellationToken::new();
    let (_, first) = timer_process(&api, clock.clone(), &shutdown).await;
    let (_, second) = timer_process(&api, clock.clone(), &shutdown).await;
    // Before the deadline nothing expires, however often the timers look.
    offset.store(29 * 60, Ordering::SeqCst);
    // The command side of another process, running no component: what a racing timer
    // would send, sent by hand.
    let mut config = Config::new(api.db.url());
    config.components = Vec::new();
    config.clock = clock.clone();
    let handler = Application::build(config).await.unwrap().handler().clone();
    let early = timers_expire_directly(&handler, &placement_id, deadline).await;
    assert_eq!(
        early.unwrap().unwrap_err().code(),
        noroshi_domain::ErrorCode::FailedPrecondition
    );

    offset.store(31 * 60, Ordering::SeqCst);
    eventually("the offer expires", Duration::from_secs(20), || async {
        expiries(&api, &placement_id).await == 1
    })
    .await;
    // The same expiry again, as a racing timer would send it: the original answer, nothing new.
    let again = timers_expire_directly(&handler, &placement_id, deadline)
        .await
        .unwrap()
        .unwrap();
    assert!(again.replayed);
    assert_eq!(expiries(&api, &placement_id).await, 1);
    shutdown.cancel();
    first.await.unwrap();
    second.await.unwrap();

    // With no timer running, the placement is offered again and its deadline passes.
    api.offer(&placement_id, "hofu-central").await;
    offset.store(62 * 60, Ordering::SeqCst);
    let restarted = CancellationToken::new();
    let (_, third) = timer_process(&api, clock.clone(), &restarted).await;
    eventually(
        "the second offer expires after a restart",
        Duration::from_secs(20),
        || async { expiries(&api, &placement_id).await == 2 },
    )
    .await;
    // An accept after the deadline is refused.
    let late = api
        .placements()
        .accept_placement(noroshi_tests::api::authed(
            HOSPITAL,
            pb::AcceptPlacementRequest {
                command_id: Uuid::new_v4().to_string(),
                placement_id: placement_id.clone(),
                override_capacity: false,
                override_reason: String::new(),
                expected_version: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(late.code(), tonic::Code::FailedPrecondition, "{late:?}");
    restarted.cancel();
    third.await.unwrap();
    assert_eq!(
        api.event_types(&format!("placement-{placement_id}")).await,
        [
            "PlacementRequested",
            "PlacementOffered",
            "OfferExpired",
            "PlacementOffered",
            "OfferExpired"
        ]
    );
}

async fn timers_expire_directly(
    handler: &CommandHandler,
    placement_id: &str,
    deadline: OffsetDateTime,
) -> noroshi_app::Outcome {
    let placement_id = Uuid::parse_str(placement_id).unwrap();
    noroshi_app::placement::expire_offer(
        handler,
        &timers::system_principal().unwrap(),
        placement_id,
        deadline,
    )
    .await
}

/// The deadline of the placement's open offer, as HQ's queue shows it.
async fn offer_deadline(api: &TestApi, placement_id: &str) -> OffsetDateTime {
    for _ in 0..500 {
        let (_, queue) = api
            .http_get(
                Some(noroshi_tests::api::HQ),
                "/api/v1/views/placement_queue",
            )
            .await;
        let deadline = queue["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["placement_id"] == placement_id)
            .and_then(|r| r["offer_deadline"].as_str());
        if let Some(deadline) = deadline {
            return OffsetDateTime::parse(deadline, &time::format_description::well_known::Rfc3339)
                .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the offer never reached HQ's queue");
}
