//! `ops/bench append`: event-store appends/s against raw single-row INSERT commits/s on the
//! same PostgreSQL, both at 64 concurrent connections. Prints figures; asserts nothing.
//!
//! Options: `--seconds N` per phase (default 10), `--concurrency N` (default 64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use noroshi_event_store::{AppendRequest, ExpectedVersion, NewEvent, StreamWrite};
use noroshi_tests::fixtures::{stream, yamaguchi};
use noroshi_tests::{TestDatabase, bench_option};
use time::OffsetDateTime;
use uuid::Uuid;

const PAYLOAD_BYTES: usize = 256;

/// Runs `work` on `concurrency` tasks for `duration`; returns ops and latencies in µs.
async fn drive<F, Fut>(concurrency: u64, duration: Duration, work: F) -> (u64, Histogram<u64>)
where
    F: Fn(u64, u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let work = Arc::new(work);
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for worker in 0..concurrency {
        let work = work.clone();
        tasks.push(tokio::spawn(async move {
            let mut histogram = Histogram::<u64>::new(3).unwrap();
            let mut n = 0;
            while Instant::now() < deadline {
                let start = Instant::now();
                work(worker, n).await;
                histogram
                    .record(start.elapsed().as_micros() as u64)
                    .unwrap();
                n += 1;
            }
            histogram
        }));
    }
    let mut total = Histogram::<u64>::new(3).unwrap();
    for task in tasks {
        total.add(task.await.unwrap()).unwrap();
    }
    (total.len(), total)
}

fn report(name: &str, ops: u64, seconds: f64, histogram: &Histogram<u64>) -> f64 {
    let rate = ops as f64 / seconds;
    println!(
        "{name:<28} {rate:>10.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({ops} in {seconds:.1} s)",
        histogram.value_at_quantile(0.5) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
    );
    rate
}

#[tokio::main]
async fn main() {
    let seconds = bench_option("--seconds", 10);
    let concurrency = bench_option("--concurrency", 64);
    let duration = Duration::from_secs(seconds);
    let db = TestDatabase::with_pool_size(concurrency as u32).await;
    sqlx::query(
        "CREATE TABLE bench_raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL, \
         stream_id text NOT NULL, version bigint NOT NULL, event_type text NOT NULL, \
         occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), payload bytea NOT NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    println!(
        "append benchmark: {concurrency} concurrent connections, {seconds} s per phase, {PAYLOAD_BYTES}-byte payloads"
    );

    let pool = db.pool().clone();
    let (raw_ops, raw_hist) = drive(concurrency, duration, move |worker, n| {
        let pool = pool.clone();
        async move {
            sqlx::query("INSERT INTO bench_raw (event_id, stream_id, version, event_type, occurred_at, payload) VALUES ($1, $2, $3, $4, $5, $6)")
                .bind(Uuid::now_v7())
                .bind(format!("case-w{worker}"))
                .bind(n as i64 + 1)
                .bind("noroshi.v1.BenchEvent")
                .bind(OffsetDateTime::now_utc())
                .bind(vec![7u8; PAYLOAD_BYTES])
                .execute(&pool)
                .await
                .unwrap();
        }
    })
    .await;
    let raw_rate = report("raw single-row INSERT", raw_ops, seconds as f64, &raw_hist);

    let store = db.store();
    let (append_ops, append_hist) = drive(concurrency, duration, move |worker, n| {
        let store = store.clone();
        async move {
            let request = AppendRequest {
                command_id: Uuid::now_v7(),
                correlation_id: Uuid::now_v7(),
                causation_id: None,
                actor: "bench".into(),
                prefecture: yamaguchi(),
                streams: vec![StreamWrite {
                    stream_id: stream(&format!("case-w{worker}")),
                    expected: if n == 0 {
                        ExpectedVersion::NoStream
                    } else {
                        ExpectedVersion::Exact(n)
                    },
                    events: vec![NewEvent::new(
                        "noroshi.v1.BenchEvent",
                        OffsetDateTime::now_utc(),
                        Bytes::from(vec![7u8; PAYLOAD_BYTES]),
                    )],
                }],
            };
            store.append(&request).await.unwrap();
        }
    })
    .await;
    let append_rate = report(
        "event-store append",
        append_ops,
        seconds as f64,
        &append_hist,
    );
    println!(
        "append_p50_ms={:.2}",
        append_hist.value_at_quantile(0.5) as f64 / 1000.0
    );
    println!(
        "append_p99_ms={:.2}",
        append_hist.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!("append_vs_raw_insert_ratio={:.2}", append_rate / raw_rate);
}
