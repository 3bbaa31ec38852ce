//! `ops/bench commands`: `DeclareCapacity` over gRPC, spread over 1,000 facilities, with
//! 64 concurrent clients and authorization on, against raw single-row INSERT commits/s
//! on the same PostgreSQL. Prints figures; asserts nothing.
//!
//! Options: `--seconds N` per phase (default 10), `--concurrency N` (default 64),
//! `--facilities N` (default 1000).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{ApiOptions, HQ, TestApi, authed, cid};
use noroshi_tests::bench::{drive, raw_insert_rate, register_hospitals, report};
use noroshi_tests::bench_option;

#[tokio::main]
async fn main() {
    let seconds = bench_option("--seconds", 10);
    let concurrency = bench_option("--concurrency", 64);
    let facilities = bench_option("--facilities", 1000);
    let duration = Duration::from_secs(seconds);
    let api = TestApi::with(ApiOptions {
        pool_size: concurrency as u32,
        ..ApiOptions::default()
    })
    .await;
    println!(
        "commands benchmark: DeclareCapacity over gRPC, {facilities} facilities, {concurrency} clients, {seconds} s per phase"
    );
    register_hospitals(&api, facilities).await;

    let raw_rate = raw_insert_rate(&api.db, concurrency, duration).await;

    // One client per worker, each on its own HTTP/2 connection.
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", api.addr))
            .unwrap()
            .connect()
            .await
            .unwrap();
        clients.push(pb::facility_service_client::FacilityServiceClient::new(
            channel,
        ));
    }
    let clients = std::sync::Arc::new(clients);
    let declare = move |worker: u64, n: u64| {
        let mut client = clients[worker as usize].clone();
        async move {
            let facility = (worker * 7919 + n) % facilities;
            let figures = pb::DeclaredFigures {
                category: pb::BedCategory::Moderate as i32,
                secured: 20,
                ready: (n % 20) as i64,
                occupied: (n % 7) as i64,
            };
            client
                .declare_capacity(authed(
                    HQ,
                    pb::DeclareCapacityRequest {
                        command_id: cid(),
                        facility_id: format!("bench-hospital-{facility}"),
                        categories: vec![figures],
                        proxy_reason: "ベンチマーク".into(),
                        expected_version: None,
                    },
                ))
                .await
                .unwrap();
        }
    };
    // Untimed: opens the API's pool and the clients' connections, as the baseline's
    // pool is open before its clock starts.
    let declare = std::sync::Arc::new(declare);
    let warm_up = declare.clone();
    drive(concurrency, Duration::from_secs(2), move |worker, n| {
        warm_up(worker, n + 1_000_000)
    })
    .await;
    let (ops, histogram) = drive(concurrency, duration, move |worker, n| declare(worker, n)).await;
    let rate = report("DeclareCapacity over gRPC", ops, seconds as f64, &histogram);
    let (batches, batched) = api.handler.store().batched().get();
    println!(
        "group commit: {batched} appends went in {batches} shared statements ({:.1} each)",
        batched as f64 / batches.max(1) as f64
    );
    println!("commands_per_second={rate:.0}");
    println!(
        "commands_p50_ms={:.2}",
        histogram.value_at_quantile(0.5) as f64 / 1000.0
    );
    println!(
        "commands_p99_ms={:.2}",
        histogram.value_at_quantile(0.99) as f64 / 1000.0
    );
    println!("commands_vs_raw_insert_ratio={:.2}", rate / raw_rate);
}
