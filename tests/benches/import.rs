//! `ops/bench import`: a health center's case file through `POST /api/v1/import/cases`
//! (every row a `ReportCase`, decided 16 at a time, sharing the store's commits), in cases
//! per second, against raw single-row INSERT commits per second with as many clients on
//! the same PostgreSQL in the same run. Prints figures; asserts nothing.
//!
//! Options: `--rows N` (default 20000), `--seconds N` for the raw phase (default 10),
//! `--concurrency N` raw INSERT clients (default 16, the import's rows in flight).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use noroshi_tests::api::{ApiOptions, HC, TestApi};
use noroshi_tests::bench::raw_insert_rate;
use noroshi_tests::bench_option;
use noroshi_tests::fixtures::case_file;

#[tokio::main]
async fn main() {
    let rows = bench_option("--rows", 20_000);
    let seconds = bench_option("--seconds", 10);
    let concurrency = bench_option("--concurrency", 16);
    let api = TestApi::with(ApiOptions {
        pool_size: 32,
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    println!(
        "import benchmark: {rows} case rows (UTF-8, 西暦) through POST /api/v1/import/cases, against {concurrency} raw INSERT clients for {seconds} s"
    );
    let raw_rate = raw_insert_rate(&api.db, concurrency, Duration::from_secs(seconds)).await;

    let file = case_file(rows as usize, false).into_bytes();
    println!("file: {} bytes", file.len());
    let headers = [("authorization", format!("Bearer {}", HC.token))];
    let started = Instant::now();
    let answer = api
        .http_request(http::Method::POST, "/api/v1/import/cases", &headers, file)
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(answer.status, 200, "{}", answer.json);
    let summary = &answer.json["summary"];
    let created = summary["created"].as_u64().unwrap();
    assert_eq!(created, rows, "every row a new case: {summary}");
    let rate = created as f64 / elapsed;
    println!("import: {created} cases in {elapsed:.2} s = {rate:.0} cases/s");
    let (batches, batched) = api.handler.store().batched().get();
    println!(
        "group commit: {batched} appends went in {batches} shared statements ({:.1} each)",
        batched as f64 / batches.max(1) as f64
    );
    // The same file again adds nothing (every row found by its command id).
    let started = Instant::now();
    let again = api
        .http_request(
            http::Method::POST,
            "/api/v1/import/cases",
            &headers,
            case_file(rows as usize, false).into_bytes(),
        )
        .await;
    let elapsed_again = started.elapsed().as_secs_f64();
    println!(
        "the same file again: {} present in {elapsed_again:.2} s = {:.0} rows/s",
        again.json["summary"]["present"],
        rows as f64 / elapsed_again
    );
    println!("import_cases_per_second={rate:.0}");
    println!("import_vs_raw_insert_ratio={:.2}", rate / raw_rate);
}
