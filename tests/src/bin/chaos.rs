//! `ops/chaos`: faults injected into the cluster of `ops/cluster` under a steady load
//! of commands, and after each one the checks that say nothing was lost:
//! - every acknowledged command is in the event store;
//! - every stored event is on JetStream exactly once (by its `Nats-Msg-Id`), and
//!   nothing else is;
//! - the bed board equals what the acknowledged commands declared, facility by facility;
//! - the time from the fault until a new command's figures are on the board within a
//!   second again (the views are fresh again), measured by a probe.
//!
//! The load: one worker per hospital of the demo set (but one, the probe's), each
//! declaring its moderate beds over gRPC through the load balancer, one command after
//! the other, at `--rate` commands/s in all. A command that fails (a node died under it)
//! is sent again with the same command id until it is acknowledged: the store answers a
//! replay with the first outcome, so the worker's last acknowledged figures are what
//! the board must show.
//!
//! Settings come from the environment `ops/chaos` sets: `CHAOS_HTTP`, `CHAOS_GRPC` (the
//! load balancer), `CHAOS_DATABASE_URL`, `CHAOS_NATS_URL`, `CHAOS_NATS_MONITOR` (a NATS
//! node's monitoring address), `CHAOS_CLUSTER` (the `ops/cluster` script, which stops
//! and starts processes), `CHAOS_PG_RESTART` (a shell command that restarts
//! PostgreSQL). Options: `--rate N` (default 40), `--settle N` seconds of load before
//! each fault (default 10), `--pause N` seconds a frozen or cut process stays so
//! (default 30), and the faults to run, in order, after `--faults` (default: all).
//! Prints a report; exits non-zero when a check fails.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use noroshi_proto::v1 as pb;
use noroshi_tests::api::{Actor, authed, declare_request, http_request};
use pb::facility_service_client::FacilityServiceClient;
use tonic::transport::Channel;

const STREAM: &str = "NOROSHI_EVENTS";
const HQ_TOKEN: &str = "demo-token-yamaguchi-hq";

/// The faults, by name.
const FAULTS: &[&str] = &[
    "kill-nats-leader",
    "kill-relay-leader",
    "kill-projection-leader",
    "kill-node",
    "freeze-node",
    "restart-postgres",
    "cut-nats",
];

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run ops/chaos"))
}

fn option(name: &str, default: u64) -> u64 {
    noroshi_tests::bench_option(name, default)
}

/// The figures each facility's last acknowledged command declared (`ready`), and every
/// acknowledged command id.
#[derive(Default)]
struct Ledger {
    ready: Mutex<BTreeMap<String, i64>>,
    acknowledged: Mutex<Vec<String>>,
    last_ack: Mutex<Option<Instant>>,
    longest_gap: Mutex<Duration>,
    retries: AtomicU64,
    /// Set while the checks run: no new command starts.
    paused: AtomicBool,
    /// Commands sent and not yet acknowledged.
    in_flight: AtomicU64,
}

impl Ledger {
    fn acknowledge(&self, facility: &str, ready: i64, command_id: String) {
        self.ready
            .lock()
            .unwrap()
            .insert(facility.to_owned(), ready);
        self.acknowledged.lock().unwrap().push(command_id);
        let now = Instant::now();
        let mut last = self.last_ack.lock().unwrap();
        if let Some(previous) = *last {
            let mut longest = self.longest_gap.lock().unwrap();
            *longest = (*longest).max(now - previous);
        }
        *last = Some(now);
    }

    fn take_longest_gap(&self) -> Duration {
        std::mem::take(&mut *self.longest_gap.lock().unwrap())
    }

    /// Waits while the checks run.
    async fn unless_paused(&self) {
        while self.paused.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops new commands and waits for those in flight, so that the ledger holds still.
    async fn pause(&self) {
        self.paused.store(true, Ordering::SeqCst);
        while self.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // The last ones' acknowledgements are recorded just after.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn resume(&self) {
        *self.last_ack.lock().unwrap() = None;
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// Sends `request` as `token` until it is acknowledged (same command id each time).
async fn until_acknowledged(
    client: &mut FacilityServiceClient<Channel>,
    token: &'static str,
    request: pb::DeclareCapacityRequest,
    ledger: &Ledger,
) {
    let actor = Actor {
        token,
        organisation: "",
        role: "",
    };
    ledger.in_flight.fetch_add(1, Ordering::SeqCst);
    let _done = InFlight(ledger);
    loop {
        match client
            .declare_capacity(authed(actor, request.clone()))
            .await
        {
            Ok(_) => return,
            Err(status) => {
                ledger.retries.fetch_add(1, Ordering::Relaxed);
                if !matches!(
                    status.code(),
                    tonic::Code::Unavailable
                        | tonic::Code::Unknown
                        | tonic::Code::Internal
                        | tonic::Code::Cancelled
                        | tonic::Code::DeadlineExceeded
                        | tonic::Code::Aborted
                ) {
                    // A refusal is the harness's mistake, not a fault's effect.
                    eprintln!("chaos: a command was refused: {status:?}");
                    std::process::exit(2);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts a command out of flight when dropped.
struct InFlight<'a>(&'a Ledger);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

fn channel(grpc: &str) -> Channel {
    tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .timeout(Duration::from_secs(10))
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}

/// One hospital's worker: declares `ready` 1, 2, 3, … until `stop`.
async fn worker(
    grpc: String,
    facility: String,
    token: &'static str,
    interval: Duration,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut client = FacilityServiceClient::new(channel(&grpc));
    let mut ready = 0;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        ledger.unless_paused().await;
        ready += 1;
        let request = declare_request(&facility, pb::BedCategory::Moderate, 100_000, ready, 0);
        let command_id = request.command_id.clone();
        until_acknowledged(&mut client, token, request, &ledger).await;
        ledger.acknowledge(&facility, ready, command_id);
    }
}

/// When each probe was acknowledged and when its figures were first seen on the board.
type Probes = Mutex<Vec<(Instant, Instant)>>;

/// The probe: declares a new figure for its hospital, then reads the board until the
/// figure is there; again and again until `stop`.
async fn probe(
    http: String,
    grpc: String,
    facility: String,
    token: &'static str,
    probes: Arc<Probes>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut client = FacilityServiceClient::new(channel(&grpc));
    let mut ready = 0;
    while !stop.load(Ordering::Relaxed) {
        ledger.unless_paused().await;
        ready += 1;
        let request = declare_request(&facility, pb::BedCategory::Moderate, 100_000, ready, 0);
        let command_id = request.command_id.clone();
        until_acknowledged(&mut client, token, request, &ledger).await;
        let acknowledged = Instant::now();
        ledger.acknowledge(&facility, ready, command_id);
        loop {
            if board(&http).await.get(&facility) == Some(&ready) {
                probes.lock().unwrap().push((acknowledged, Instant::now()));
                break;
            }
            if stop.load(Ordering::Relaxed) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The bed board's moderate `ready` figure per facility, read as HQ through the load
/// balancer (empty when no node answers).
async fn board(http: &str) -> BTreeMap<String, i64> {
    let Some(answer) = get_json(http, "/api/v1/views/bed_board", HQ_TOKEN).await else {
        return BTreeMap::new();
    };
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .filter(|row| row["category"] == "BED_CATEGORY_MODERATE")
        .filter_map(|row| {
            Some((
                row["facility_id"].as_str()?.to_owned(),
                row["ready"].as_i64()?,
            ))
        })
        .collect()
}

/// `GET path` as `token`, its JSON; `None` on any failure (a node going away under it).
async fn get_json(addr: &str, path: &str, token: &str) -> Option<serde_json::Value> {
    use http_body_util::BodyExt;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<bytes::Bytes>>();
    let request = http::Request::get(format!("http://{addr}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .body(http_body_util::Empty::new())
        .ok()?;
    let read = async {
        let response = client.request(request).await.ok()?;
        if !response.status().is_success() {
            return None;
        }
        let body = response.into_body().collect().await.ok()?.to_bytes();
        serde_json::from_slice(&body).ok()
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .ok()
        .flatten()
}

/// Runs `ops/cluster ARGS…`; its output goes to ours.
fn cluster(args: &[&str]) {
    let status = Command::new(env("CHAOS_CLUSTER"))
        .args(args)
        .status()
        .expect("run ops/cluster");
    assert!(status.success(), "ops/cluster {args:?} failed");
}

fn signal(pid: &str, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_owned()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

fn pid(name: &str) -> String {
    let output = Command::new(env("CHAOS_CLUSTER"))
        .args(["pid", name])
        .output()
        .expect("run ops/cluster pid");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The node that leads `role` (`node-1` or `node-2`).
async fn leader_of(pool: &sqlx::PgPool, role: &str) -> String {
    for _ in 0..100 {
        let leader: Option<String> = sqlx::query_scalar(
            "SELECT split_part(a.application_name, ' leads ', 1) \
               FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
              WHERE l.locktype = 'advisory' AND l.granted \
                AND a.datname = current_database() AND a.application_name LIKE '%' || $1",
        )
        .bind(format!(" leads {role}"))
        .fetch_optional(pool)
        .await
        .ok()
        .flatten();
        if let Some(leader) = leader {
            return leader;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("no node leads {role}");
}

/// The NATS node that leads the stream.
async fn stream_leader() -> String {
    let monitor = env("CHAOS_NATS_MONITOR");
    let answer = http_request(
        &monitor,
        http::Method::GET,
        "/jsz?streams=true",
        &[],
        Vec::new(),
    )
    .await;
    let details = &answer.json["account_details"][0]["stream_detail"];
    details
        .as_array()
        .and_then(|streams| streams.iter().find(|s| s["name"] == STREAM))
        .and_then(|stream| stream["cluster"]["leader"].as_str())
        .expect("the stream has a leader")
        .to_owned()
}

/// What one fault did.
struct Outcome {
    fault: &'static str,
    detail: String,
    recovery: Option<Duration>,
    longest_gap: Duration,
    acknowledged: usize,
    stored: i64,
    on_jetstream: usize,
    rows_checked: usize,
    problems: Vec<String>,
}

/// Injects `fault`: what was done, and when it took effect.
async fn inject(fault: &str, pool: &sqlx::PgPool, pause: Duration) -> (String, Instant) {
    match fault {
        "kill-nats-leader" => {
            let leader = stream_leader().await;
            cluster(&["stop", &leader, "KILL"]);
            let began = Instant::now();
            tokio::time::sleep(Duration::from_secs(5)).await;
            cluster(&["start", &leader]);
            (
                format!("kill -9 {leader} (the stream's leader), started again after 5 s"),
                began,
            )
        }
        "kill-relay-leader" | "kill-projection-leader" => {
            let role = if fault == "kill-relay-leader" {
                "relay"
            } else {
                "bed_board"
            };
            let node = leader_of(pool, role).await;
            cluster(&["stop", &node, "KILL"]);
            let began = Instant::now();
            tokio::time::sleep(Duration::from_secs(5)).await;
            cluster(&["start", &node]);
            (
                format!("kill -9 {node} (leads {role}), started again after 5 s"),
                began,
            )
        }
        "kill-node" => {
            // The node that does not lead the relay: its API clients move to the other.
            let node = if leader_of(pool, "relay").await == "node-1" {
                "node-2"
            } else {
                "node-1"
            };
            cluster(&["stop", node, "KILL"]);
            let began = Instant::now();
            tokio::time::sleep(Duration::from_secs(5)).await;
            cluster(&["start", node]);
            (
                format!("kill -9 {node} (does not lead the relay), started again after 5 s"),
                began,
            )
        }
        "freeze-node" => {
            let node = leader_of(pool, "relay").await;
            let pid = pid(&node);
            signal(&pid, "STOP");
            let began = Instant::now();
            tokio::time::sleep(pause).await;
            signal(&pid, "CONT");
            (
                format!("SIGSTOP {node} (leads relay) for {} s", pause.as_secs()),
                began,
            )
        }
        "restart-postgres" => {
            let began = Instant::now();
            let status = Command::new("bash")
                .args(["-c", &env("CHAOS_PG_RESTART")])
                .status()
                .expect("restart PostgreSQL");
            assert!(status.success(), "PostgreSQL restarted");
            (
                "PostgreSQL restarted (pg_ctl restart -m fast)".to_owned(),
                began,
            )
        }
        "cut-nats" => {
            let pids: Vec<String> = ["nats-1", "nats-2", "nats-3"]
                .iter()
                .map(|n| pid(n))
                .collect();
            for pid in &pids {
                signal(pid, "STOP");
            }
            let began = Instant::now();
            tokio::time::sleep(pause).await;
            for pid in &pids {
                signal(pid, "CONT");
            }
            (
                format!(
                    "every NATS node frozen (SIGSTOP) for {} s: NATS unreachable",
                    pause.as_secs()
                ),
                began,
            )
        }
        other => panic!("no fault {other:?}; the faults are {FAULTS:?}"),
    }
}

/// The checks, once the outbox is empty and the board shows every acknowledged figure
/// (or 120 s passed).
async fn check(
    http: &str,
    pool: &sqlx::PgPool,
    nats: &async_nats::Client,
    ledger: &Ledger,
) -> (usize, i64, usize, usize, Vec<String>) {
    let mut problems = Vec::new();
    let expected = ledger.ready.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut shown = board(http).await;
    while expected.iter().any(|(f, r)| shown.get(f) != Some(r)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        shown = board(http).await;
    }
    for (facility, ready) in &expected {
        if shown.get(facility) != Some(ready) {
            problems.push(format!(
                "{facility}: the board shows {:?}, the last acknowledged command declared {ready}",
                shown.get(facility)
            ));
        }
    }
    loop {
        let backlog: i64 = sqlx::query_scalar("SELECT count(*) FROM event_outbox")
            .fetch_one(pool)
            .await
            .unwrap_or(1);
        if backlog == 0 || Instant::now() > deadline {
            if backlog > 0 {
                problems.push(format!("{backlog} events still in the outbox"));
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let acknowledged = ledger.acknowledged.lock().unwrap().clone();
    let stored_commands: HashSet<String> =
        sqlx::query_scalar::<_, uuid::Uuid>("SELECT DISTINCT command_id FROM events")
            .fetch_all(pool)
            .await
            .unwrap()
            .into_iter()
            .map(|id| id.to_string())
            .collect();
    let missing = acknowledged
        .iter()
        .filter(|id| !stored_commands.contains(*id))
        .count();
    if missing > 0 {
        problems.push(format!(
            "{missing} acknowledged commands are not in the store"
        ));
    }
    let stored: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(pool)
        .await
        .unwrap();
    let published = jetstream_ids(nats).await;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    for id in &published {
        *seen.entry(id.as_str()).or_default() += 1;
    }
    let duplicated = seen.values().filter(|count| **count > 1).count();
    let stored_ids: HashSet<String> = stored.iter().map(ToString::to_string).collect();
    let absent = stored_ids
        .iter()
        .filter(|id| !seen.contains_key(id.as_str()))
        .count();
    let foreign = seen.keys().filter(|id| !stored_ids.contains(**id)).count();
    if duplicated + absent + foreign > 0 {
        problems.push(format!(
            "JetStream: {duplicated} events twice, {absent} stored events missing, {foreign} not in the store"
        ));
    }
    let stored_count = i64::try_from(stored.len()).unwrap_or(i64::MAX);
    (
        acknowledged.len(),
        stored_count,
        published.len(),
        expected.len(),
        problems,
    )
}

/// Every message's `Nats-Msg-Id` on the stream, in order.
async fn jetstream_ids(nats: &async_nats::Client) -> Vec<String> {
    use futures_util::StreamExt;
    let context = async_nats::jetstream::new(nats.clone());
    let mut stream = context.get_stream(STREAM).await.expect("the stream");
    let total = stream.info().await.expect("stream info").state.messages;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
        .await
        .expect("an ordered consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut ids = Vec::new();
    while (ids.len() as u64) < total {
        let next = tokio::time::timeout(Duration::from_secs(10), messages.next()).await;
        let Ok(Some(Ok(message))) = next else {
            break;
        };
        let id = message
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Msg-Id"))
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        ids.push(id);
    }
    ids
}

#[tokio::main]
async fn main() {
    let rate = option("--rate", 40);
    let settle = Duration::from_secs(option("--settle", 10));
    let pause = Duration::from_secs(option("--pause", 30));
    let args: Vec<String> = std::env::args().collect();
    let faults: Vec<&'static str> = match args.iter().position(|a| a == "--faults") {
        Some(i) => args[i + 1..]
            .iter()
            .map(|name| {
                *FAULTS
                    .iter()
                    .find(|f| *f == name)
                    .unwrap_or_else(|| panic!("no fault {name:?}; the faults are {FAULTS:?}"))
            })
            .collect(),
        None => FAULTS.to_vec(),
    };
    let (http, grpc) = (env("CHAOS_HTTP"), env("CHAOS_GRPC"));
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(30))
        .connect_lazy(&env("CHAOS_DATABASE_URL"))
        .unwrap();
    let nats = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(
            env("CHAOS_NATS_URL")
                .split(',')
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        )
        .await
        .unwrap();

    let demo: toml::Value = toml::from_str(
        &std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/demo/yamaguchi.toml"),
        )
        .unwrap(),
    )
    .unwrap();
    let hospitals: Vec<String> = demo["facility"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"].as_str() == Some("HOSPITAL"))
        .map(|f| f["facility_id"].as_str().unwrap().to_owned())
        .collect();
    let (probe_hospital, load_hospitals) = hospitals.split_first().expect("hospitals");
    let token = |facility: &str| -> &'static str {
        Box::leak(format!("demo-token-{facility}").into_boxed_str())
    };

    let ledger = Arc::new(Ledger::default());
    let probes = Arc::new(Probes::default());
    let stop = Arc::new(AtomicBool::new(false));
    let interval = Duration::from_secs_f64(load_hospitals.len() as f64 / rate.max(1) as f64);
    let mut tasks = Vec::new();
    for facility in load_hospitals {
        tasks.push(tokio::spawn(worker(
            grpc.clone(),
            facility.clone(),
            token(facility),
            interval,
            ledger.clone(),
            stop.clone(),
        )));
    }
    tasks.push(tokio::spawn(probe(
        http.clone(),
        grpc.clone(),
        probe_hospital.clone(),
        token(probe_hospital),
        probes.clone(),
        ledger.clone(),
        stop.clone(),
    )));
    println!(
        "chaos: {} hospitals declaring at {rate} commands/s through {grpc}, a probe on {probe_hospital}; faults: {}",
        load_hospitals.len(),
        faults.join(", ")
    );

    let mut outcomes = Vec::new();
    for fault in faults {
        tokio::time::sleep(settle).await;
        ledger.take_longest_gap();
        println!("\n== {fault}");
        let (detail, injected) = inject(fault, &pool, pause).await;
        println!("   {detail}");
        // Fresh again: a probe acknowledged after the fault took effect and seen within
        // 1 s of its acknowledgement.
        let deadline = Instant::now() + Duration::from_secs(180);
        let recovery = loop {
            let found = probes
                .lock()
                .unwrap()
                .iter()
                .find(|(ack, seen)| *ack >= injected && *seen - *ack <= Duration::from_secs(1))
                .map(|(_, seen)| *seen - injected);
            if found.is_some() || Instant::now() > deadline {
                break found;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        tokio::time::sleep(settle).await;
        let longest_gap = ledger.take_longest_gap();
        ledger.pause().await;
        let (acknowledged, stored, on_jetstream, rows_checked, problems) =
            check(&http, &pool, &nats, &ledger).await;
        ledger.resume();
        let outcome = Outcome {
            fault,
            detail,
            recovery,
            longest_gap,
            acknowledged,
            stored,
            on_jetstream,
            rows_checked,
            problems,
        };
        println!(
            "   fresh again after {}; longest pause between acknowledged commands {:.1} s",
            outcome
                .recovery
                .map_or("never (180 s)".to_owned(), |d| format!(
                    "{:.1} s",
                    d.as_secs_f64()
                )),
            outcome.longest_gap.as_secs_f64()
        );
        println!(
            "   {} commands acknowledged, {} events stored, {} on JetStream, {} board rows checked: {}",
            outcome.acknowledged,
            outcome.stored,
            outcome.on_jetstream,
            outcome.rows_checked,
            if outcome.problems.is_empty() {
                "all checks pass".to_owned()
            } else {
                outcome.problems.join("; ")
            }
        );
        outcomes.push(outcome);
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
    }

    println!(
        "\n| fault | what was done | fresh again after | longest pause of commands | commands acknowledged | events stored | events on JetStream | board rows checked | checks |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for o in &outcomes {
        println!(
            "| {} | {} | {} | {:.1} s | {} | {} | {} | {} | {} |",
            o.fault,
            o.detail,
            o.recovery
                .map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
            o.longest_gap.as_secs_f64(),
            o.acknowledged,
            o.stored,
            o.on_jetstream,
            o.rows_checked,
            if o.problems.is_empty() {
                "pass"
            } else {
                "FAIL"
            }
        );
    }
    println!(
        "commands sent again after a failure: {}",
        ledger.retries.load(Ordering::Relaxed)
    );
    let failed = outcomes
        .iter()
        .filter(|o| !o.problems.is_empty() || o.recovery.is_none())
        .count();
    println!("chaos_failed_faults={failed}");
    if failed > 0 {
        std::process::exit(1);
    }
}
