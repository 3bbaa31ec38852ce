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
use noroshi_proto::v1 as pb;
use noroshi_tests::api::{ApiOptions, HOSPITAL, HOSPITAL_OTHER, TestApi};
use noroshi_tests::{NatsServer, bench_option};
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

/// Copies of the template's case and placement streams, per statement.
const COPIES_PER_STATEMENT: i64 = 20;

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

    // The template: real episodes through the API.
    let started = Instant::now();
    for (hospital, facility) in [(HOSPITAL, "hofu-central"), (HOSPITAL_OTHER, "ube-medical")] {
        api.declare(
            hospital,
            facility,
            pb::BedCategory::Moderate,
            100_000,
            100_000,
            0,
        )
        .await;
    }
    for n in 0..episodes {
        let (hospital, facility, other) = if n % 2 == 0 {
            (HOSPITAL, "hofu-central", HOSPITAL_OTHER)
        } else {
            (HOSPITAL_OTHER, "ube-medical", HOSPITAL)
        };
        let case_id = api.report_case(pb::Severity::ModerateI).await;
        let placement_id = api
            .request_placement(&case_id, pb::BedCategory::Moderate)
            .await;
        if n % 3 == 0 {
            let other_facility = if n % 2 == 0 {
                "ube-medical"
            } else {
                "hofu-central"
            };
            api.offer(&placement_id, other_facility).await;
            api.decline(other, &placement_id).await;
        }
        api.offer(&placement_id, facility).await;
        api.accept(hospital, &placement_id).await.unwrap();
        if n % 5 == 0 {
            api.cancel(&placement_id).await;
            continue;
        }
        api.transport(&placement_id).await;
        api.arrive(hospital, &placement_id).await;
        if n % 2 == 1 {
            api.discharge(hospital, &placement_id, pb::DischargeOutcome::Recovered)
                .await;
        }
    }
    let template: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE stream_id LIKE 'case-%' OR stream_id LIKE 'placement-%'",
    )
    .fetch_one(api.db.pool())
    .await
    .unwrap();
    println!(
        "template: {episodes} episodes, {} events ({template} in case and placement streams) in {:.1} s",
        api.db.event_count().await,
        started.elapsed().as_secs_f64()
    );

    // Copies under new stream and command ids, with their outbox rows; only the
    // template is copied, never a copy.
    let template_end: i64 = sqlx::query_scalar("SELECT max(position) FROM events")
        .fetch_one(api.db.pool())
        .await
        .unwrap();
    let started = Instant::now();
    let mut copy = 0_i64;
    while (api.db.event_count().await as u64) < target {
        let missing = target - api.db.event_count().await as u64;
        let copies = (i64::try_from(missing).unwrap() / template).clamp(1, COPIES_PER_STATEMENT);
        sqlx::query(
            "WITH inserted AS ( \
               INSERT INTO events (event_id, stream_id, version, event_type, schema_version, \
                 occurred_at, command_id, command_seq, correlation_id, causation_id, actor, \
                 prefecture, payload) \
               SELECT gen_random_uuid(), \
                 regexp_replace(e.stream_id, '[0-9a-f-]{36}$', md5(e.stream_id || c)::uuid::text), \
                 e.version, e.event_type, e.schema_version, e.occurred_at, \
                 md5(e.command_id::text || c)::uuid, e.command_seq, e.correlation_id, \
                 e.causation_id, e.actor, e.prefecture, e.payload \
               FROM events e, generate_series($1::bigint, $2::bigint) AS c \
               WHERE (e.stream_id LIKE 'case-%' OR e.stream_id LIKE 'placement-%') \
                 AND e.position <= $3 \
               ORDER BY c, e.position \
               RETURNING position) \
             INSERT INTO event_outbox (position) SELECT position FROM inserted",
        )
        .bind(copy + 1)
        .bind(copy + copies)
        .bind(template_end)
        .execute(api.db.pool())
        .await
        .unwrap();
        copy += copies;
    }
    let events = api.db.event_count().await as u64;
    println!(
        "preloaded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );

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
    settle(api.db.pool()).await;
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
    settle(api.db.pool()).await;
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

/// Writes out what the preload (or the rebuild) left dirty, so that the phase timed next
/// does not pay for a checkpoint the one before brought on: the preload writes gigabytes
/// of WAL, and a checkpoint running through a timed phase took its I/O, and the full-page
/// images after it, out of that phase alone. Needs a role that may `CHECKPOINT`.
async fn settle(pool: &sqlx::PgPool) {
    if let Err(error) = sqlx::query("CHECKPOINT").execute(pool).await {
        println!("no checkpoint before timing ({error}): figures may vary more");
    }
}
