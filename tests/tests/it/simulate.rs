//! `noroshi simulate` against the real binary serving the demo set: a compressed surge
//! runs through the public API without a failed command and reports what happened; a
//! second run carries on the placements the first left.

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

    let simulate = |seed: &'static str, days: &'static str, speed: &'static str| {
        let url = format!("http://{http}");
        async move {
            tokio::process::Command::new(noroshi_bin())
                .args([
                    "--log",
                    "warn",
                    "simulate",
                    "--url",
                    &url,
                    "--file",
                    demo,
                    "--days",
                    days,
                    "--speed",
                    speed,
                    "--peak-per-day",
                    "300",
                    "--seed",
                    seed,
                ])
                .output()
                .await
                .unwrap()
        }
    };
    // A simulated day takes about 17 s: time for offers to be made and answered even
    // while the read side starts, and the whole suite runs beside it on two cores.
    let output = simulate("3", "1", "5000").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    // Not a terminal: no progress bar redrawn with carriage returns, only log lines.
    assert!(!stderr.contains('\r'), "{stderr}");
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
    assert_eq!(number(" placements of an earlier run"), 0, "{stdout}");

    // Run again on the same database (as `noroshi dev` does after a restart): the
    // placements the first run left (live, or their patients admitted) are carried on,
    // not left in HQ's queue, or in their beds, for good.
    let live = left_placements(&db).await;
    assert!(!live.is_empty(), "the first run leaves live placements");
    let count = |kind: &'static str| {
        let pool = db.pool().clone();
        async move {
            sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events WHERE event_type = $1")
                .bind(kind)
                .fetch_one(&pool)
                .await
                .unwrap() as u64
        }
    };
    let kinds = [
        "noroshi.v1.ConsultRequested",
        "noroshi.v1.TransferRequested",
        "noroshi.v1.CareSiteAssigned",
    ];
    let mut before = Vec::new();
    for kind in kinds {
        before.push(count(kind).await);
    }
    // What the second run added of `kinds[i]`.
    let added = |i: usize| {
        let (count, before) = (&count, &before);
        async move { count(kinds[i]).await - before[i] }
    };
    // Six more days: stays end, and patients move on from their beds.
    let output = simulate("4", "6", "40000").await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let number = |label: &str| -> u64 {
        let before = stdout.split(label).next().unwrap();
        before
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no figure before {label:?} in {stdout}"))
    };
    assert_eq!(
        number(" failed commands"),
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // Hotel residents who deteriorate are seen remotely or escalated, hospital patients
    // step down, each keeping the bed until arrival: the store holds what it says (how
    // many there are is the simulation's chance).
    assert_eq!(added(0).await, number(" remote consults"), "{stdout}");
    // Patients at home are put in the care of clinics and mobile clinics, who observe
    // them and ask for consults too.
    assert_eq!(
        added(2).await,
        number(" cared for at home by a clinic"),
        "{stdout}"
    );
    assert!(number(" cared for at home by a clinic") >= 1, "{stdout}");
    assert_eq!(
        added(1).await,
        number(" escalations") + number(" step-downs"),
        "{stdout}"
    );
    let before = stdout
        .split(" placements of an earlier run")
        .next()
        .unwrap();
    let adopted: usize = before.split_whitespace().last().unwrap().parse().unwrap();
    assert_eq!(adopted, live.len(), "{stdout}");
    let moved: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT stream_id) FROM events e \
         JOIN unnest($1::text[], $2::bigint[]) AS l(stream_id, version) USING (stream_id) \
         WHERE e.version > l.version",
    )
    .bind(
        live.iter()
            .map(|(stream, _)| stream.clone())
            .collect::<Vec<_>>(),
    )
    .bind(live.iter().map(|(_, version)| *version).collect::<Vec<_>>())
    .fetch_one(db.pool())
    .await
    .unwrap();
    assert!(
        moved > 0,
        "the second run moved none of {} placements: {stdout}",
        live.len()
    );
    assert!(server.terminate(Duration::from_secs(30)).await.is_some());
}

/// The placements a run left, live (every state before arrival) or with their patient
/// admitted, and the version of each stream, once the views the simulator reads have
/// applied every placement event.
async fn left_placements(db: &TestDatabase) -> Vec<(String, i64)> {
    for _ in 0..300 {
        let behind: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM (SELECT stream_id, max(version) AS version FROM events \
             WHERE stream_id LIKE 'placement-%' GROUP BY stream_id) s \
             CROSS JOIN unnest(ARRAY['placement_queue', 'facility_inbox']) AS v(projection) \
             WHERE projection_applied_version(v.projection, s.stream_id) \
               IS DISTINCT FROM s.version",
        )
        .fetch_one(db.pool())
        .await
        .unwrap();
        if behind == 0 {
            return sqlx::query_as(
                "SELECT stream_id, version FROM (SELECT DISTINCT ON (stream_id) stream_id, \
                   version, event_type FROM events WHERE stream_id LIKE 'placement-%' \
                   ORDER BY stream_id, version DESC) last \
                 WHERE event_type NOT IN ('noroshi.v1.PatientDischarged', \
                   'noroshi.v1.PlacementCancelled')",
            )
            .fetch_all(db.pool())
            .await
            .unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the views never caught up");
}

/// Pointed at a deployment that does not know the demo set (a database it did not
/// fill), the simulator hears refusals; it leaves each refused organisation alone for a
/// while instead of repeating the refused requests many times a second, says so in its
/// summary, and writes no progress line into its log.
#[tokio::test]
async fn refused_organisations_are_left_alone_rather_than_asked_again_and_again() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let demo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/demo/yamaguchi.toml");
    let demo = demo.to_str().unwrap();
    let http = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let nats_url = nats.url();
    let mut server = NoroshiProcess::spawn(
        "simulate-refused",
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
    assert!(wait_for_port(&http).await, "{}", server.log());
    // One simulated day at 20,000x lasts 4.3 s, less than the first backoff (5 s): every
    // organisation can be refused once at most.
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
            "3000",
            "--seed",
            "5",
        ])
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let organisations = std::fs::read_to_string(demo)
        .unwrap()
        .matches("[[token]]")
        .count();
    let number = |label: &str| -> u64 {
        let before = stdout.split(label).next().unwrap();
        before
            .split_whitespace()
            .last()
            .and_then(|n| n.trim_start_matches('(').parse().ok())
            .unwrap_or_else(|| panic!("no figure before {label:?} in {stdout}"))
    };
    let refused = number(" refused)");
    assert!(refused > 0, "the empty deployment refuses: {stdout}");
    assert!(
        refused <= organisations as u64,
        "{refused} refusals for {organisations} organisations: {stdout}"
    );
    assert!(number(" not sent while") > 0, "{stdout}");
    assert!(!stderr.contains('\r'), "{stderr}");
    // One warning per refusal, no more.
    let warnings = stderr.matches("request refused").count();
    assert_eq!(warnings as u64, refused, "{stderr}");
    assert!(server.terminate(Duration::from_secs(30)).await.is_some());
}
