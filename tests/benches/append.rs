//! `ops/bench append`: event-store appends/s against raw single-row INSERT commits/s on the
//! same PostgreSQL, both at 64 concurrent connections. Prints figures; asserts nothing.
//!
//! Options: `--seconds N` per phase (default 10), `--concurrency N` (default 64).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Duration;

use bytes::Bytes;
use noroshi_event_store::{AppendRequest, ExpectedVersion, NewEvent, StreamWrite};
use noroshi_tests::bench::{PAYLOAD_BYTES, drive, raw_insert_rate, report};
use noroshi_tests::fixtures::{stream, yamaguchi};
use noroshi_tests::{TestDatabase, bench_option};
use time::OffsetDateTime;
use uuid::Uuid;

#[tokio::main]
async fn main() {
    let seconds = bench_option("--seconds", 10);
    let concurrency = bench_option("--concurrency", 64);
    let duration = Duration::from_secs(seconds);
    let db = TestDatabase::with_pool_size(concurrency as u32).await;
    println!(
        "append benchmark: {concurrency} concurrent connections, {seconds} s per phase, {PAYLOAD_BYTES}-byte payloads"
    );
    let raw_rate = raw_insert_rate(&db, concurrency, duration).await;

    // The same pool as the baseline's, open already; warmed again all the same.
    noroshi_tests::bench::warm(db.pool(), concurrency).await;
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
                request_digest: None,
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
