//! `ops/bench freshness`: at a steady rate of commands (`DeclareCapacity` over gRPC, HQ
//! entering figures for many hospitals), the time from each command's reply to the
//! `bed_board` delta carrying its figures arriving on a Server-Sent Events subscriber,
//! through the whole read side: outbox relay, JetStream, projection runner, the views'
//! change notification and the SSE stream. One second of warm-up is not measured.
//! Prints figures; asserts nothing.
//!
//! A figure overwritten by the next declaration for the same hospital before the
//! subscriber's view was read is never shown, by design; such commands are counted as
//! superseded, not measured.
//!
//! Options: `--seconds N` (default 10), `--rate N` commands/s (default 1000),
//! `--facilities N` (default 500), `--connections N` in the API's database pool (default
//! 16, as `noroshi serve` has).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{ApiOptions, HQ, TestApi, authed, cid};
use noroshi_tests::bench::register_hospitals;
use noroshi_tests::pipeline::Pipeline;
use noroshi_tests::sse::Events;
use noroshi_tests::{NatsServer, bench_option};

/// A hospital and the `ready` figure one command declared for it.
type Figures = (String, u64);

/// The figures of each measured command -> when it was answered, once it was.
type Replies = HashMap<Figures, Option<Instant>>;

/// Each hospital's declarations are told apart by `ready`, counting up below this.
const SECURED: u64 = 100_000;

#[tokio::main]
async fn main() {
    let seconds = bench_option("--seconds", 10);
    let rate = bench_option("--rate", 1000);
    let facilities = bench_option("--facilities", 500);
    let connections = bench_option("--connections", 16);
    let nats = NatsServer::start().await;
    let api = Arc::new(
        TestApi::with(ApiOptions {
            pool_size: u32::try_from(connections).expect("--connections is a pool size"),
            ..ApiOptions::default()
        })
        .await,
    );
    register_hospitals(&api, facilities).await;
    let (_pipeline, _) =
        Pipeline::start_with(&api.db, &nats, noroshi_projections::runner::KNOWN_VERSIONS).await;
    // The read side has caught up with the registrations before the load starts.
    loop {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM projection_checkpoints \
             WHERE coalesce((SELECT max(position) FROM events), 0) > position",
        )
        .fetch_one(api.db.pool())
        .await
        .unwrap();
        let running: i64 = sqlx::query_scalar("SELECT count(*) FROM projection_checkpoints")
            .fetch_one(api.db.pool())
            .await
            .unwrap();
        if behind == 0 && running == noroshi_projections::View::ALL.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    println!(
        "freshness benchmark: {rate} DeclareCapacity/s over {facilities} hospitals for {seconds} s, reply -> SSE delta, {connections} database connections"
    );

    let mut events =
        Events::open(&api, HQ, "/api/v1/views/bed_board/stream?category=MODERATE").await;
    let (name, _) = events
        .next(Duration::from_secs(30))
        .await
        .expect("a snapshot");
    assert_eq!(name, "snapshot");

    let replied: Arc<Mutex<Replies>> = Arc::default();
    let warmup = rate;
    let total = warmup + seconds * rate;
    let commands = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    // The figures of the command committed last (highest position): what the board ends
    // with. Under overload two commands to one hospital can commit out of their order.
    let last_committed: Arc<Mutex<(u64, Option<Figures>)>> = Arc::default();
    let producer = {
        let (api, replied, commands) = (api.clone(), replied.clone(), commands.clone());
        let last_committed = last_committed.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut sent = tokio::task::JoinSet::new();
            for i in 0..total {
                tick.tick().await;
                let facility = format!("bench-hospital-{}", i % facilities);
                let ready = (i / facilities + 1) % SECURED;
                if i >= warmup {
                    replied
                        .lock()
                        .unwrap()
                        .insert((facility.clone(), ready), None);
                }
                let mut client = api.facilities();
                let (replied, commands) = (replied.clone(), commands.clone());
                let last_committed = last_committed.clone();
                sent.spawn(async move {
                    let start = Instant::now();
                    let result = client
                        .declare_capacity(authed(
                            HQ,
                            pb::DeclareCapacityRequest {
                                command_id: cid(),
                                facility_id: facility.clone(),
                                categories: vec![pb::DeclaredFigures {
                                    category: pb::BedCategory::Moderate as i32,
                                    secured: SECURED as i64,
                                    ready: ready as i64,
                                    occupied: 0,
                                }],
                                proxy_reason: "ベンチマーク".into(),
                                expected_version: None,
                            },
                        ))
                        .await
                        .unwrap()
                        .into_inner();
                    {
                        let mut last = last_committed.lock().unwrap();
                        if result.position > last.0 {
                            *last = (result.position, Some((facility.clone(), ready)));
                        }
                    }
                    if i >= warmup {
                        let answered = Instant::now();
                        if let Some(at) = replied.lock().unwrap().get_mut(&(facility, ready)) {
                            *at = Some(answered);
                        }
                        commands
                            .lock()
                            .unwrap()
                            .record(start.elapsed().as_micros() as u64)
                            .unwrap();
                    }
                });
                while let Some(done) = sent.try_join_next() {
                    done.unwrap();
                }
            }
            while let Some(done) = sent.join_next().await {
                done.unwrap();
            }
        })
    };

    // Where a backlog builds up, if one does: sampled each second while the load runs.
    let sampler = {
        let pool = api.db.pool().clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let (outbox, behind): (i64, i64) = sqlx::query_as(
                    "SELECT (SELECT count(*) FROM event_outbox), \
                       coalesce((SELECT max(position) FROM events), 0) \
                       - coalesce((SELECT position FROM projection_checkpoints \
                                   WHERE projection = 'bed_board'), 0)",
                )
                .fetch_one(&pool)
                .await
                .unwrap();
                println!("  backlog: relay {outbox} events, bed_board {behind} positions");
            }
        })
    };

    // Follow the stream until every command is answered and the figures of the one
    // committed last are shown.
    let mut fresh = Histogram::<u64>::new(3).unwrap();
    let mut seen: HashSet<Figures> = HashSet::new();
    let mut quiet = Duration::ZERO;
    loop {
        if producer.is_finished() {
            let last = last_committed.lock().unwrap().1.clone();
            if last.is_some_and(|last| seen.contains(&last)) {
                break;
            }
        }
        let Some((name, delta)) = events.next(Duration::from_secs(1)).await else {
            quiet += Duration::from_secs(1);
            assert!(quiet < Duration::from_secs(60), "deltas keep coming");
            continue;
        };
        quiet = Duration::ZERO;
        assert_eq!(name, "delta", "{delta}");
        let now = Instant::now();
        for row in delta["rows"].as_array().unwrap() {
            let key = (
                row["facility_id"].as_str().unwrap().to_owned(),
                row["ready"].as_u64().unwrap(),
            );
            seen.insert(key.clone());
            // A delta can come before the client has processed the reply; those are
            // fresher than the reply itself and count as zero.
            let answered = replied.lock().unwrap().remove(&key);
            match answered {
                Some(Some(at)) => fresh
                    .record(now.saturating_duration_since(at).as_micros() as u64)
                    .unwrap(),
                Some(None) => fresh.record(0).unwrap(),
                None => {} // warm-up
            }
        }
    }
    producer.await.unwrap();
    sampler.abort();
    let measured = fresh.len();
    let superseded = (seconds * rate).saturating_sub(measured);
    let commands = commands.lock().unwrap();
    let ms = |h: &Histogram<u64>, q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "commands answered: p50 {:.1} ms   p99 {:.1} ms",
        ms(&commands, 0.5),
        ms(&commands, 0.99)
    );
    println!(
        "reply -> SSE delta: {measured} measured, {superseded} superseded   p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        ms(&fresh, 0.5),
        ms(&fresh, 0.9),
        ms(&fresh, 0.99),
        fresh.max() as f64 / 1000.0
    );
    println!("freshness_p50_ms={:.1}", ms(&fresh, 0.5));
    println!("freshness_p99_ms={:.1}", ms(&fresh, 0.99));
}
