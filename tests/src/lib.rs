//! Test harness: starts the real things noroshi runs on.
//!
//! - [`TestDatabase`]: a freshly created and migrated PostgreSQL database per test,
//!   dropped afterwards; tests run in parallel without sharing state.
//! - [`NatsServer`]: a private `nats-server` with JetStream on a free port and a temporary
//!   store, killed on drop; it can be stopped and started again on the same port.
//! - [`NoroshiProcess`]: the real `noroshi` binary as a child process.
//! - [`proxy::TcpProxy`]: a TCP path to a real server that a test can cut and restore.
//!
//! Configuration: `NOROSHI_TEST_DATABASE_URL` (an admin connection, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and `NOROSHI_NATS_SERVER` (the
//! nats-server binary; default `nats-server` on `PATH`, then `/usr/sbin/nats-server`).
//! `ops/test` sets both up on a fresh machine.

#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod api;
pub mod bench;
pub mod browser;
pub mod fixtures;
mod nats;
pub mod pipeline;
mod postgres;
mod process;
pub mod proxy;
pub mod sse;

pub use nats::{NatsServer, read_all_events};
pub use postgres::TestDatabase;
pub use process::{NoroshiProcess, noroshi_bin};

/// The allocator the `noroshi` binary uses, so that benchmarks (and tests) run the
/// libraries as it does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A TCP port nobody listens on right now, on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Waits up to 15 s for something to listen on `addr`; whether it did.
pub async fn wait_for_port(addr: &str) -> bool {
    for _ in 0..300 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

use std::future::Future;
use std::time::Duration;

use noroshi_event_store::{EventStore, GlobalCursor, RecordedEvent};

/// Reads with `read_all` after `cursor`, `page` events at a time, until `want` events were
/// read or 30 s passed; returns them and the cursor after them.
///
/// Tests share one PostgreSQL cluster, and a transaction of another test that is still
/// running holds the cluster-wide snapshot xmin back: `read_all` then rightly withholds
/// later commits until it ends. An empty page is therefore only the end once `want`
/// events were read; stopping earlier would make a test fail for another's transaction.
/// After the bound it returns what it has, so the caller's assertion shows the gap.
pub async fn read_all_to(
    store: &EventStore,
    mut cursor: GlobalCursor,
    page: u32,
    want: usize,
) -> (Vec<RecordedEvent>, GlobalCursor) {
    let give_up = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut read = Vec::new();
    while read.len() < want {
        let next = store.read_all(cursor, page).await.unwrap();
        assert!(
            next.events.len() <= page as usize,
            "a page holds at most its limit"
        );
        if next.events.is_empty() {
            assert_eq!(next.next, cursor, "an empty page keeps the cursor");
            if tokio::time::Instant::now() > give_up {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        assert!(next.next > cursor, "the cursor advances");
        read.extend(next.events);
        cursor = next.next;
    }
    (read, cursor)
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `limit`.
///
/// For waiting on an outcome that other processes produce; never a fixed sleep.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if condition().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value after `--name` on the command line, for benchmark options.
pub fn bench_option(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
