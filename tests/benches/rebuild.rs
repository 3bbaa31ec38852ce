//! `ops/bench rebuild`: preloads N events (default 1,000,000) and rebuilds every view
//! from them in one read of the log, as `noroshi rebuild --all` does, printing events/s; then measures a raw
//! `COPY` of as many rows of the same size into PostgreSQL. Prints figures; asserts
//! nothing.
//!
//! The events are real: a scenario of episodes is driven through the command API
//! (reports, triage, requests, offers, declines, acceptances, transport, arrivals,
//! discharges), and its case and placement streams are then copied under new ids until
//! the log holds N events. The relay publishes them all to JetStream before the clock
//! starts.
//!
//! Options: `--events N` (default 1000000), `--episodes N` in the template scenario
//! (default 200), `--views a,b` to rebuild only those views (default: every view),
//! `--from store|stream` to read the events from the event store (the default, as
//! `noroshi rebuild`) or from JetStream, `--unpublished` (with `--from store` only) to leave
//! the events unpublished, as after the stream was lost: the rebuild does the same work,
//! and the run saves the minutes the relay takes to publish a million events;
//! `--chunk-events N` (as `noroshi rebuild`) to hand the views N events at a time.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use noroshi_event_store::relay::{self, RelayConfig};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_projections::runner::RunnerConfig;
use noroshi_projections::{View, rebuild};
use noroshi_tests::api::{ApiOptions, TestApi};
use noroshi_tests::{NatsServer, bench_option};
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let target = bench_option("--events", 1_000_000);
    let episodes = bench_option("--episodes", 200);
    let chunk = bench_option("--chunk-events", rebuild::CHUNK as u64);
    let args: Vec<String> = std::env::args().collect();
    let chosen: Vec<View> = match args.iter().position(|a| a == "--views") {
        Some(i) => args
            .get(i + 1)
            .expect("--views needs a list of view names")
            .split(',')
            .map(|name| View::parse(name).unwrap_or_else(|| panic!("no view {name}")))
            .collect(),
        None => View::ALL.to_vec(),
    };
    let source = match args.iter().position(|a| a == "--from") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("store") => rebuild::Source::Store,
            Some("stream") => rebuild::Source::Stream,
            other => panic!("--from store|stream, not {other:?}"),
        },
        None => rebuild::Source::Store,
    };
    let unpublished = args.iter().any(|a| a == "--unpublished");
    assert!(
        !unpublished || source == rebuild::Source::Store,
        "--unpublished leaves nothing on the stream to rebuild from"
    );
    let nats = NatsServer::start().await;
    let api = TestApi::with(ApiOptions {
        pool_size: 16,
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    println!(
        "rebuild benchmark: {target} events, views {:?} rebuilt from the {}, against a raw COPY",
        chosen.iter().map(|view| view.name()).collect::<Vec<_>>(),
        match source {
            rebuild::Source::Store => "event store",
            rebuild::Source::Stream => "JetStream stream",
        }
    );

    let events = noroshi_tests::bench::surge_log(&api, target, episodes, false).await;

    // Everything to JetStream before the clock starts.
    let config = RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap());
    if !unpublished {
        let started = Instant::now();
        let shutdown = CancellationToken::new();
        let relaying = tokio::spawn(relay::run(
            api.db.pool().clone(),
            nats.client().await,
            config.clone(),
            shutdown.clone(),
        ));
        while relay::pending(api.db.pool()).await.unwrap() > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        shutdown.cancel();
        relaying.await.unwrap().unwrap();
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "relayed to JetStream in {seconds:.1} s ({:.0} events/s)",
            events as f64 / seconds
        );
    }

    // The views at once, as `noroshi rebuild --all`.
    let runner_config = RunnerConfig {
        stream: config.stream.name.clone(),
        filter_subject: "noroshi.*.events.>".into(),
        max_batch: 1000,
        leader_retry_interval: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        known_versions: noroshi_projections::runner::KNOWN_VERSIONS,
    };
    let database = PgConnectOptions::from_str(api.db.url()).unwrap();
    noroshi_tests::bench::settle(api.db.pool()).await;
    let started = Instant::now();
    let done = |view: View| {
        move |applied: u64, total: u64| {
            if applied == total {
                let seconds = started.elapsed().as_secs_f64();
                println!("  {:<16} read to the end after {seconds:.1} s", view.name());
            }
        }
    };
    let progress: Vec<_> = chosen.iter().map(|view| done(*view)).collect();
    let views: Vec<(View, rebuild::Progress<'_>)> = chosen
        .iter()
        .zip(&progress)
        .map(|(view, progress)| (*view, progress as rebuild::Progress<'_>))
        .collect();
    rebuild::rebuild(
        database,
        nats.client().await,
        runner_config,
        rebuild::Reading {
            source,
            chunk: usize::try_from(chunk).unwrap(),
        },
        &views,
        CancellationToken::new(),
    )
    .await
    .unwrap()
    .unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let rebuild_rate = events as f64 / seconds;
    println!(
        "rebuild of {} views: {seconds:.1} s, {rebuild_rate:.0} events/s",
        chosen.len()
    );

    // The baseline: COPY of as many rows of the same size (the events' own columns).
    let mut conn = api.db.pool().acquire().await.unwrap();
    sqlx::query("CREATE TABLE bench_copy (LIKE events)")
        .execute(&mut *conn)
        .await
        .unwrap();
    let mut data = Vec::new();
    {
        let mut out = conn
            .copy_out_raw("COPY (SELECT * FROM events) TO STDOUT (FORMAT binary)")
            .await
            .unwrap();
        while let Some(chunk) = out.next().await {
            data.extend_from_slice(&chunk.unwrap());
        }
    }
    noroshi_tests::bench::settle(api.db.pool()).await;
    let started = Instant::now();
    let mut copy_in = conn
        .copy_in_raw("COPY bench_copy FROM STDIN (FORMAT binary)")
        .await
        .unwrap();
    for chunk in data.chunks(1 << 20) {
        copy_in.send(chunk).await.unwrap();
    }
    let rows = copy_in.finish().await.unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let copy_rate = rows as f64 / seconds;
    println!(
        "raw COPY: {rows} rows ({} MB) in {seconds:.1} s, {copy_rate:.0} rows/s",
        data.len() / 1_000_000
    );
    println!("rebuild_vs_raw_copy_ratio={:.2}", rebuild_rate / copy_rate);
}
