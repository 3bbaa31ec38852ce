//! Shared by the benchmarks (`ops/bench …`): a load driver and the raw-INSERT baseline
//! every ratio is measured against. Figures only; nothing here asserts a time.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::TestDatabase;

/// Opens `connections` connections of `pool` at once and gives them back, so that a
/// timed phase after it finds them open: opening a connection (a TLS handshake on a
/// server that offers TLS) is not what a phase measures, and must not land in one side
/// of a ratio and not the other.
pub async fn warm(pool: &sqlx::PgPool, connections: u64) {
    let opened = (0..connections).map(|_| pool.acquire());
    let held: Vec<_> = futures_util::future::join_all(opened)
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .expect("open the pool's connections");
    drop(held);
}

/// Prints whether `pool`'s connections to PostgreSQL use TLS, and the server's
/// version: both sides of every ratio use the same server, URL and TLS.
pub async fn describe_connection(pool: &sqlx::PgPool) {
    let (tls, version): (Option<bool>, String) = sqlx::query_as(
        "SELECT (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()), current_setting('server_version')",
    )
    .fetch_one(pool)
    .await
    .expect("describe the connection");
    println!(
        "postgres: {version}, TLS {} (both sides of each ratio alike)",
        if tls == Some(true) { "on" } else { "off" }
    );
}

/// Payload size of the baseline rows and of synthetic benchmark events.
pub const PAYLOAD_BYTES: usize = 256;

/// Runs `work` on `concurrency` tasks for `duration`; returns ops and latencies in µs.
pub async fn drive<F, Fut>(concurrency: u64, duration: Duration, work: F) -> (u64, Histogram<u64>)
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

pub fn report(name: &str, ops: u64, seconds: f64, histogram: &Histogram<u64>) -> f64 {
    let rate = ops as f64 / seconds;
    println!(
        "{name:<28} {rate:>10.0} /s   p50 {:>7.2} ms   p99 {:>7.2} ms   ({ops} in {seconds:.1} s)",
        histogram.value_at_quantile(0.5) as f64 / 1000.0,
        histogram.value_at_quantile(0.99) as f64 / 1000.0,
    );
    rate
}

/// Registers `count` synthetic hospitals `bench-hospital-<i>` in area 3504, 32 at a time.
pub async fn register_hospitals(api: &crate::api::TestApi, count: u64) {
    use crate::api::{ADMIN, authed, cid};
    use noroshi_proto::v1 as pb;
    let mut registering = tokio::task::JoinSet::new();
    for i in 0..count {
        let mut client = api.facilities();
        registering.spawn(async move {
            client
                .register_facility(authed(
                    ADMIN,
                    pb::RegisterFacilityRequest {
                        command_id: cid(),
                        facility_id: format!("bench-hospital-{i}"),
                        name: format!("ベンチ病院 {i}"),
                        name_en: String::new(),
                        kind: pb::FacilityKind::Hospital as i32,
                        prefecture: "35".into(),
                        medical_area: "3504".into(),
                        municipality: "352063".into(),
                        jurisdiction: vec![],
                        capabilities: vec![pb::Capability::Oxygen as i32],
                        expected_version: None,
                    },
                ))
                .await
                .unwrap();
        });
        if registering.len() >= 32 {
            registering.join_next().await.unwrap().unwrap();
        }
    }
    while let Some(done) = registering.join_next().await {
        done.unwrap();
    }
}

/// Single-row INSERT commits/s at `concurrency` connections on `db`: the baseline.
pub async fn raw_insert_rate(db: &TestDatabase, concurrency: u64, duration: Duration) -> f64 {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_raw (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, event_id uuid NOT NULL, \
         stream_id text NOT NULL, version bigint NOT NULL, event_type text NOT NULL, \
         occurred_at timestamptz NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now(), payload bytea NOT NULL)",
    )
    .execute(db.pool())
    .await
    .unwrap();
    describe_connection(db.pool()).await;
    warm(db.pool(), concurrency).await;
    let pool = db.pool().clone();
    let (ops, histogram) = drive(concurrency, duration, move |worker, n| {
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
    report(
        "raw single-row INSERT",
        ops,
        duration.as_secs_f64(),
        &histogram,
    )
}

/// Copies of the template's case and placement streams, per statement.
const COPIES_PER_STATEMENT: i64 = 20;

/// Fills the log of the seeded `api` up to `target` events with a surge: `episodes` real
/// episodes through the command API (reports, triage, requests, offers, declines,
/// acceptances, transport, arrivals, discharges, with outbox rows), whose case and
/// placement streams are then copied under new ids until the log holds `target` events.
/// With `declarations`, one copy per statement and, between copies, both hospitals
/// declare their figures anew, so that facility events run through the whole log as in
/// a real surge. Returns the events in the log.
pub async fn surge_log(
    api: &crate::api::TestApi,
    target: u64,
    episodes: u64,
    declarations: bool,
) -> u64 {
    use crate::api::{HOSPITAL, HOSPITAL_OTHER};
    use noroshi_proto::v1 as pb;
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
    let per_statement = if declarations {
        1
    } else {
        COPIES_PER_STATEMENT
    };
    while (api.db.event_count().await as u64) < target {
        let missing = target - api.db.event_count().await as u64;
        let copies = (i64::try_from(missing).unwrap() / template).clamp(1, per_statement);
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
        if declarations {
            let ready = 50_000 + (copy % 1_000);
            api.declare(
                HOSPITAL,
                "hofu-central",
                pb::BedCategory::Moderate,
                100_000,
                ready,
                copy % 997,
            )
            .await;
            api.declare(
                HOSPITAL_OTHER,
                "ube-medical",
                pb::BedCategory::Moderate,
                100_000,
                ready,
                copy % 991,
            )
            .await;
        }
    }
    let events = api.db.event_count().await as u64;
    println!(
        "preloaded {events} events in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    events
}

/// Writes out what the preload (or a phase before) left dirty, so that the phase timed
/// next does not pay for a checkpoint the one before brought on: the preload writes
/// gigabytes of WAL, and a checkpoint running through a timed phase took its I/O, and the
/// full-page images after it, out of that phase alone. Needs a role that may `CHECKPOINT`.
pub async fn settle(pool: &sqlx::PgPool) {
    if let Err(error) = sqlx::query("CHECKPOINT").execute(pool).await {
        println!("no checkpoint before timing ({error}): figures may vary more");
    }
}
