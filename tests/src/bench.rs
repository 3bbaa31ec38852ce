//! Shared by the benchmarks (`ops/bench …`): a load driver and the raw-INSERT baseline
//! every ratio is measured against. Figures only; nothing here asserts a time.

#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::TestDatabase;

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
