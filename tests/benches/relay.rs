//! `ops/bench relay`: latency from the start of an append to the event's delivery from
//! JetStream (after its ack), at a steady 1,000 appends/s, after one second of warm-up
//! (connections opened, caches filled) that is not measured. Prints figures; asserts
//! nothing.
//!
//! Options: `--seconds N` (default 10), `--rate N` appends/s (default 1000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use noroshi_event_store::ExpectedVersion;
use noroshi_event_store::relay::{self, RelayConfig};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_tests::fixtures::{append, write};
use noroshi_tests::{NatsServer, TestDatabase, bench_option};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let seconds = bench_option("--seconds", 10);
    let rate = bench_option("--rate", 1000);
    let db = TestDatabase::with_pool_size(32).await;
    let nats = NatsServer::start().await;
    let shutdown = CancellationToken::new();
    let config = RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap());
    let relay_task = tokio::spawn(relay::run(
        db.pool().clone(),
        nats.client().await,
        config.clone(),
        shutdown.clone(),
    ));

    // Wait for the stream, then follow it from now on.
    let context = jetstream::new(nats.client().await);
    let stream = loop {
        if let Ok(stream) = context.get_stream(&config.stream.name).await {
            break stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let follower = stream
        .create_consumer(consumer::pull::OrderedConfig {
            deliver_policy: consumer::DeliverPolicy::New,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = follower.messages().await.unwrap();

    let started: Arc<Mutex<HashMap<Uuid, Instant>>> = Arc::default();
    let total = seconds * rate;
    let warmup = rate;
    println!(
        "relay benchmark: {rate} appends/s for {seconds} s, append start -> delivered from JetStream"
    );

    // How long the appends themselves take, to tell the store's share of the latency
    // from the relay's.
    let appends = Arc::new(Mutex::new(Histogram::<u64>::new(3).unwrap()));
    let producer = {
        let store = db.store();
        let started = started.clone();
        let appends = appends.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate as f64));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            // A first second at the same rate warms the pool, the relay and JetStream
            // up; its events are relayed but not measured.
            for i in 0..warmup + total {
                tick.tick().await;
                let request = append(vec![write(
                    &format!("facility-f{}", i % 30),
                    ExpectedVersion::Any,
                    1,
                )]);
                let event_id = request.streams[0].events[0].event_id;
                if i >= warmup {
                    started.lock().unwrap().insert(event_id, Instant::now());
                }
                let store = store.clone();
                let appends = appends.clone();
                tokio::spawn(async move {
                    let start = Instant::now();
                    store.append(&request).await.unwrap();
                    let took = start.elapsed().as_micros() as u64;
                    if i >= warmup {
                        appends.lock().unwrap().record(took).unwrap();
                    }
                });
            }
        })
    };

    let mut histogram = Histogram::<u64>::new(3).unwrap();
    while histogram.len() < total {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("events keep arriving")
            .unwrap()
            .unwrap();
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .and_then(|v| Uuid::parse_str(v.as_str()).ok())
            .unwrap();
        let start = started.lock().unwrap().remove(&id);
        if let Some(start) = start {
            histogram
                .record(start.elapsed().as_micros() as u64)
                .unwrap();
        }
    }
    producer.await.unwrap();
    shutdown.cancel();
    relay_task.await.unwrap().unwrap();

    let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "events {}   p50 {:.1} ms   p90 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        histogram.len(),
        ms(0.5),
        ms(0.9),
        ms(0.99),
        histogram.max() as f64 / 1000.0
    );
    let appends = appends.lock().unwrap();
    println!(
        "of which the append itself: p50 {:.1} ms   p99 {:.1} ms   max {:.1} ms",
        appends.value_at_quantile(0.5) as f64 / 1000.0,
        appends.value_at_quantile(0.99) as f64 / 1000.0,
        appends.max() as f64 / 1000.0
    );
    println!("relay_p99_ms={:.1}", ms(0.99));
}
