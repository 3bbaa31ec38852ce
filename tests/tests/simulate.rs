//! `noroshi simulate` against the real binary serving the demo set: a compressed surge
//! runs through the public API without a failed command and reports what happened.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use noroshi_tests::{
    NatsServer, NoroshiProcess, TestDatabase, free_port, noroshi_bin, wait_for_port,
};

#[tokio::test]
async fn a_compressed_surge_places_patients_and_reports_its_figures() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/demo/yamaguchi.toml");
    let demo = demo.to_str().unwrap();
    let applied = tokio::process::Command::new(noroshi_bin())
        .args(["--log", "warn", "admin", "apply", demo])
        .env("NOROSHI_DATABASE_URL", db.url())
        .output()
        .await
        .unwrap();
    assert!(applied.status.success());
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let nats_url = nats.url();
    let mut server = NoroshiProcess::spawn(
        "simulate-serve",
        &["serve", "--components", "relay,api,timers,projections"],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_NATS_URL", &nats_url),
            ("NOROSHI_TOKENS_FILE", demo),
            ("NOROSHI_ALLOW_TOKEN_FILE", "true"),
            ("NOROSHI_HTTP_ADDR", &http),
            ("NOROSHI_GRPC_ADDR", &grpc),
        ],
    );
    assert!(
        wait_for_port(&http).await,
        "the API did not start: {}",
        server.log()
    );

    let output = tokio::process::Command::new(noroshi_bin())
        .args([
            "--log",
            "warn",
            "simulate",
            "--url",
            &format!("http://{http}"),
            "--file",
            demo,
            "--days",
            "1",
            "--speed",
            "20000",
            "--peak-per-day",
            "300",
            "--seed",
            "3",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // The progress line, then the summary.
    assert!(
        stderr.contains("day ") && stderr.contains("placed"),
        "{stderr}"
    );
    let number = |label: &str| -> u64 {
        let before = stdout.split(label).next().unwrap();
        before
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure before {label:?} in {stdout}"))
    };
    assert!(number(" cases") >= 20, "{stdout}");
    assert!(number(" placed") >= 1, "{stdout}");
    assert_eq!(number(" failed commands"), 0, "{stdout}");
    assert!(stdout.contains("time to placement median"), "{stdout}");
    // The store holds what the summary says: as many cases as reported.
    let cases: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'noroshi.v1.CaseReported'",
    )
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert_eq!(cases as u64, number(" cases"), "{stdout}");
    assert!(server.terminate(Duration::from_secs(30)).await.is_some());
}
