//! `ops/bench as-of`: the time to read a view as of a moment halfway through a long log
//! (default 1,000,000 events) against the time of a full rebuild of that view, in the
//! same run. Prints figures and ends with `as_of_vs_rebuild_ratio=` (the bed board's;
//! lower is better). Asserts nothing.
//!
//! The log is a surge (`bench::surge_log`): real episodes through the API, copied under
//! new ids, with both hospitals declaring their figures anew between copies so that
//! facility events run through the whole log. The snapshotter then takes the views'
//! snapshots along the log as a deployment's first rounds would (timed and printed), and
//! each view is rebuilt alone (timed). The reads go through the HTTP API as HQ: several
//! moments around the middle of the log, by position; the median is compared.
//!
//! Options: `--events N` (default 1000000), `--episodes N` (default 200), `--reads N`
//! moments read (default 5), `--snapshot-every N` (default 20000, as `serve`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::str::FromStr;
use std::time::{Duration, Instant};

use noroshi_event_store::EventStore;
use noroshi_event_store::relay::RelayConfig;
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_projections::history::{SnapshotConfig, snapshot};
use noroshi_projections::runner::RunnerConfig;
use noroshi_projections::{View, rebuild};
use noroshi_tests::api::{ApiOptions, HQ, TestApi};
use noroshi_tests::{NatsServer, bench_option};
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

#[tokio::main]
async fn main() {
    let target = bench_option("--events", 1_000_000);
    let episodes = bench_option("--episodes", 200);
    let reads = bench_option("--reads", 5).max(1);
    let every = bench_option("--snapshot-every", 20_000);
    let nats = NatsServer::start().await;
    let api = TestApi::with(ApiOptions {
        pool_size: 16,
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    println!("as-of benchmark: {target} events; a read halfway against a full rebuild");
    let events = noroshi_tests::bench::surge_log(&api, target, episodes, true).await;
    let facility_events: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE stream_id LIKE 'facility-%'")
            .fetch_one(api.db.pool())
            .await
            .unwrap();
    println!("{facility_events} facility events along the log");
    let store = EventStore::new(api.db.pool().clone(), Default::default());
    let database = PgConnectOptions::from_str(api.db.url()).unwrap();
    let views = [View::BedBoard, View::CaseBoard];

    // The snapshotter's first rounds on a log without snapshots.
    noroshi_tests::bench::settle(api.db.pool()).await;
    let started = Instant::now();
    let round = snapshot(
        &database,
        &store,
        &views,
        SnapshotConfig {
            every,
            settle: Duration::ZERO,
            interval: Duration::from_secs(60),
            max_age: Duration::from_secs(3600),
        },
        &CancellationToken::new(),
    )
    .await
    .unwrap();
    let (bytes, rows): (i64, i64) = sqlx::query_as(
        "SELECT coalesce(sum(pg_column_size(rows)), 0)::bigint, \
                (SELECT coalesce(sum(row_count), 0)::bigint FROM view_snapshots) \
         FROM view_snapshot_chunks",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    println!(
        "snapshots along the log: {} in {:.1} s ({} events replayed), {rows} rows, {} MB stored",
        round.taken.len(),
        started.elapsed().as_secs_f64(),
        round.events_replayed,
        bytes / 1_000_000
    );

    let config = RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap());
    let runner_config = RunnerConfig {
        stream: config.stream.name.clone(),
        filter_subject: "noroshi.*.events.>".into(),
        max_batch: 1000,
        leader_retry_interval: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        known_versions: noroshi_projections::runner::KNOWN_VERSIONS,
    };
    let (head, _) = store.head().await.unwrap();
    let mut ratios = Vec::new();
    for view in views {
        // A full rebuild of the view alone, from the store.
        noroshi_tests::bench::settle(api.db.pool()).await;
        let started = Instant::now();
        let progress = |_: u64, _: u64| {};
        rebuild::rebuild(
            database.clone(),
            nats.client().await,
            runner_config.clone(),
            rebuild::Reading::from(rebuild::Source::Store),
            &[(view, &progress)],
            CancellationToken::new(),
        )
        .await
        .unwrap()
        .unwrap();
        let rebuilt = started.elapsed().as_secs_f64();
        // The rebuild dropped the view's snapshots: take them again (not timed).
        snapshot(
            &database,
            &store,
            &[view],
            SnapshotConfig {
                every,
                settle: Duration::ZERO,
                interval: Duration::from_secs(60),
                max_age: Duration::from_secs(3600),
            },
            &CancellationToken::new(),
        )
        .await
        .unwrap();

        // Reads as of moments around the middle of the log.
        noroshi_tests::bench::settle(api.db.pool()).await;
        let mut times = Vec::new();
        for n in 0..reads {
            let position = head / 2 + n * every / (reads + 1);
            let started = Instant::now();
            let (status, body) = api
                .http_get(
                    Some(HQ),
                    &format!("/api/v1/views/{}?as_of={position}", view.name()),
                )
                .await;
            times.push(started.elapsed().as_secs_f64());
            assert_eq!(status, 200, "{body}");
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        let ratio = median / rebuilt;
        println!(
            "{:<12} rebuild {rebuilt:.2} s · as of halfway: median {:.1} ms (of {reads}: {}) · ratio {ratio:.4}",
            view.name(),
            median * 1000.0,
            times
                .iter()
                .map(|t| format!("{:.1}", t * 1000.0))
                .collect::<Vec<_>>()
                .join(", ")
        );
        ratios.push((view, ratio));
    }
    println!("{events} events in the log");
    for (view, ratio) in &ratios {
        if *view != View::BedBoard {
            println!("{}_as_of_vs_rebuild_ratio={ratio:.4}", view.name());
        }
    }
    let bed_board = ratios
        .iter()
        .find(|(view, _)| *view == View::BedBoard)
        .map(|(_, ratio)| *ratio)
        .unwrap();
    println!("as_of_vs_rebuild_ratio={bed_board:.4}");
}
