//! Drills (DESIGN.md §12, docs/drills.md): `noroshi drill start` runs a shipped
//! scenario beside a production `noroshi serve` on the same PostgreSQL server and the
//! same nats-server. Neither sees the other's events (databases, streams, views), the
//! same logins work in both, every page of the drill shows the 訓練 / DRILL banner and
//! production's none, and `noroshi drill stop` writes the drill's report, then removes
//! its database and stream.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use fantoccini::Locator;
use http::Method;
use noroshi_tests::api::http_request;
use noroshi_tests::browser::{Browser, accessible, log_in, wait_text};
use noroshi_tests::{
    NatsServer, NoroshiProcess, TestDatabase, eventually, free_port, noroshi_bin, read_all_events,
    wait_for_port,
};
use serde_json::{Value, json};

const DEMO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../ops/demo/yamaguchi.toml");
const WINTER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../ops/drills/winter-surge-yamaguchi-hofu.toml"
);

/// `noroshi <args>` to its end, with production's database and NATS.
async fn noroshi(db: &TestDatabase, nats: &str, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(noroshi_bin())
        .arg("--log")
        .arg("warn")
        .args(args)
        .env("NOROSHI_DATABASE_URL", db.url())
        .env("NOROSHI_NATS_URL", nats)
        .output()
        .await
        .unwrap()
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("authorization", format!("Bearer {token}")),
        ("content-type", "application/json".to_owned()),
    ]
}

async fn command(http: &str, token: &str, name: &str, mut body: Value) -> Value {
    body["command_id"] = json!(uuid::Uuid::now_v7().to_string());
    let answer = http_request(
        http,
        Method::POST,
        &format!("/api/v1/commands/{name}"),
        &bearer(token),
        body.to_string(),
    )
    .await;
    assert_eq!(answer.status, 200, "{name}: {}", answer.json);
    answer.json
}

/// A case reported by the Yamaguchi-Hofu health center in production; its id.
async fn report_case(http: &str, name: &str) -> String {
    let result = command(
        http,
        "demo-token-yamaguchi-hc",
        "ReportCase",
        json!({"patient": {"name": name, "birth_date": "1950-01-02", "sex": "SEX_FEMALE"},
               "municipality": "352063", "severity": "SEVERITY_MODERATE_I"}),
    )
    .await;
    result["stream_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("case-")
        .to_owned()
}

/// A session cookie for `username` at `http`.
async fn session(http: &str, username: &str, password: &str) -> String {
    let answer = http_request(
        http,
        Method::POST,
        "/login",
        &[(
            "content-type",
            "application/x-www-form-urlencoded".to_owned(),
        )],
        format!("username={username}&password={password}"),
    )
    .await;
    assert_eq!(answer.status, 303, "login of {username} at {http}");
    let cookie = answer.headers[http::header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn read(http: &str, cookie: &str, path: &str) -> Value {
    let answer = http_request(
        http,
        Method::GET,
        path,
        &[("cookie", cookie.to_owned())],
        "",
    )
    .await;
    assert_eq!(answer.status, 200, "{path}: {}", answer.json);
    answer.json
}

/// The figures of `facility`'s `category` on a bed board, if it has any.
fn beds(board: &Value, facility: &str, category: &str) -> Option<Value> {
    board["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["facility_id"] == facility && row["category"] == category)
        .cloned()
}

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_drill_runs_beside_production_and_neither_sees_the_other() {
    let db = TestDatabase::create().await;
    let nats = NatsServer::start().await;
    let nats_url = nats.url();
    let applied = noroshi(&db, &nats_url, &["admin", "apply", DEMO]).await;
    assert!(applied.status.success(), "{applied:?}");
    let prod_http = format!("127.0.0.1:{}", free_port());
    let prod_grpc = format!("127.0.0.1:{}", free_port());
    let mut production = NoroshiProcess::spawn(
        "drill-production",
        &["serve", "--components", "relay,api,timers,projections"],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_NATS_URL", &nats_url),
            ("NOROSHI_TOKENS_FILE", DEMO),
            ("NOROSHI_ALLOW_TOKEN_FILE", "true"),
            ("NOROSHI_HTTP_ADDR", &prod_http),
            ("NOROSHI_GRPC_ADDR", &prod_grpc),
        ],
    );
    assert!(wait_for_port(&prod_http).await, "{}", production.log());
    // Production: 7 moderate beds at Hofu Sakuragi, and a case.
    command(
        &prod_http,
        "demo-token-hofu-sakuragi-general",
        "DeclareCapacity",
        json!({"facility_id": "hofu-sakuragi-general", "categories": [
            {"category": "BED_CATEGORY_MODERATE", "secured": 7, "ready": 7, "occupied": 0}]}),
    )
    .await;
    let before = report_case(&prod_http, "本番 一郎").await;

    // A scenario with a problem is refused whole, and leaves nothing behind.
    let bad = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        bad.path(),
        "title = \"x\"\nduration = \"2 fortnights\"\n[[incident]]\nat = \"1h\"\n\
         facility = \"nowhere\"\naction = \"reopen\"\n",
    )
    .unwrap();
    let refused = noroshi(
        &db,
        &nats_url,
        &[
            "drill",
            "start",
            "bad",
            "--scenario",
            bad.path().to_str().unwrap(),
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("duration: \"2 fortnights\""), "{stderr}");
    let drill_db = format!("{}_drill_bad", db.name());
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{drill_db}'");
    assert_eq!(count(db.pool(), &exists).await, 0);

    // The shipped winter surge, compressed: a simulated day in about 40 s.
    let drill_http = format!("127.0.0.1:{}", free_port());
    let drill_grpc = format!("127.0.0.1:{}", free_port());
    let mut drill = NoroshiProcess::spawn(
        "drill-start",
        &[
            "drill",
            "start",
            "t1",
            "--scenario",
            WINTER,
            "--speed",
            "2000",
        ],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_NATS_URL", &nats_url),
            ("NOROSHI_DRILL_HTTP_ADDR", &drill_http),
            ("NOROSHI_DRILL_GRPC_ADDR", &drill_grpc),
        ],
    );
    assert!(wait_for_port(&drill_http).await, "{}", drill.log());
    let drill_url = db
        .url()
        .replace(db.name(), &format!("{}_drill_t1", db.name()));
    let drill_pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&drill_url)
        .await
        .unwrap();

    // The same logins: production's users log in to the drill with their passwords.
    let hq = session(&drill_http, "demo-hq", "noroshi-demo-hq").await;
    let prod_hq = session(&prod_http, "demo-hq", "noroshi-demo-hq").await;
    // The scenario's health centers report cases and ask for beds; HQ's queue (for the
    // participants to place) fills.
    eventually(
        "the drill's queue fills",
        Duration::from_secs(90),
        || async {
            let queue = read(&drill_http, &hq, "/api/v1/views/placement_queue").await;
            queue["rows"].as_array().is_some_and(|rows| rows.len() >= 2)
        },
    )
    .await;
    let during = report_case(&prod_http, "本番 二郎").await;

    // The drill's bed board has the scenario's beds, not production's 7; production's
    // has its own 7 and none of the scenario's.
    let drill_board = read(&drill_http, &hq, "/api/v1/views/bed_board").await;
    let moderate = beds(
        &drill_board,
        "hofu-sakuragi-general",
        "BED_CATEGORY_MODERATE",
    )
    .unwrap();
    assert_eq!(moderate["secured"], 18, "{moderate}");
    assert_eq!(
        beds(&drill_board, "yamaguchi-icho-center", "BED_CATEGORY_SEVERE").unwrap()["secured"],
        8
    );
    let prod_board = read(&prod_http, &prod_hq, "/api/v1/views/bed_board").await;
    let moderate = beds(
        &prod_board,
        "hofu-sakuragi-general",
        "BED_CATEGORY_MODERATE",
    )
    .unwrap();
    assert_eq!(moderate["secured"], 7, "{moderate}");
    let severe = beds(&prod_board, "yamaguchi-icho-center", "BED_CATEGORY_SEVERE");
    assert!(
        severe.as_ref().is_none_or(|row| row["secured"] == 0),
        "{severe:?}"
    );

    // Production's queue and store hold production's cases only; the drill's neither of
    // them.
    let drill_cases = count(
        &drill_pool,
        "SELECT count(*) FROM events WHERE event_type = 'noroshi.v1.CaseReported'",
    )
    .await;
    assert!(drill_cases >= 2, "{drill_cases}");
    assert_eq!(db.event_count_of("noroshi.v1.CaseReported").await, 2);
    for case in [&before, &during] {
        let sql = format!("SELECT count(*) FROM events WHERE stream_id = 'case-{case}'");
        assert_eq!(
            count(&drill_pool, &sql).await,
            0,
            "production's case in the drill"
        );
    }
    let prod_queue = read(&prod_http, &prod_hq, "/api/v1/views/placement_queue").await;
    assert_eq!(
        prod_queue["rows"].as_array().unwrap().len(),
        0,
        "{prod_queue}"
    );
    let drill_queue = read(&drill_http, &hq, "/api/v1/views/placement_queue").await;
    for row in drill_queue["rows"].as_array().unwrap() {
        let case = row["case_id"].as_str().unwrap();
        assert!(case != before && case != during, "{row}");
        let sql = format!("SELECT count(*) FROM events WHERE stream_id = 'case-{case}'");
        assert_eq!(
            count(db.pool(), &sql).await,
            0,
            "the drill's case in production"
        );
    }
    // On NATS: production's stream carries production's events only, the drill's stream
    // the drill's, under its own subjects.
    let client = nats.client().await;
    let prod_events = db.event_count().await as usize;
    eventually(
        "production's stream has its events",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move { read_all_events(&client, "NOROSHI_EVENTS").await.len() >= prod_events }
        },
    )
    .await;
    let published = read_all_events(&client, "NOROSHI_EVENTS").await;
    assert_eq!(published.len(), prod_events);
    let drill_ids: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT event_id FROM events")
        .fetch_all(&drill_pool)
        .await
        .unwrap();
    assert!(published.iter().all(|e| !drill_ids.contains(&e.event_id)));
    let drill_stream = read_all_events(&client, "NOROSHI_EVENTS_DRILL_T1").await;
    assert!(!drill_stream.is_empty());
    let subjects = async_nats::jetstream::new(client.clone())
        .get_stream("NOROSHI_EVENTS_DRILL_T1")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .config
        .subjects
        .clone();
    assert_eq!(subjects, vec!["drill.t1.noroshi.*.events.>".to_owned()]);

    // The drill's database cannot be served under production's subjects.
    let refused = tokio::process::Command::new(noroshi_bin())
        .args(["--log", "warn", "serve", "--components", "relay"])
        .env("NOROSHI_DATABASE_URL", &drill_url)
        .env("NOROSHI_NATS_URL", &nats_url)
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(stderr.contains("drill.t1.noroshi"), "{stderr}");

    // Every page of the drill shows the banner, production's none.
    let answer = http_request(
        &drill_http,
        Method::GET,
        "/api/v1/views/bed_board",
        &[("cookie", hq.clone())],
        "",
    )
    .await;
    assert_eq!(answer.headers["noroshi-drill"], "t1");
    let answer = http_request(&prod_http, Method::GET, "/login", &[], "").await;
    assert!(!answer.headers.contains_key("noroshi-drill"));
    let browser = Browser::start().await;
    let page = browser.session().await;
    page.goto(&format!("http://{drill_http}/login"))
        .await
        .unwrap();
    wait_text(&page, "#drill-banner", |t| t.contains("訓練 / DRILL")).await;
    log_in(
        &page,
        &format!("http://{drill_http}"),
        "demo-hq",
        "noroshi-demo-hq",
    )
    .await;
    let case = drill_queue["rows"][0]["case_id"]
        .as_str()
        .unwrap()
        .to_owned();
    for path in [
        "/hq".to_owned(),
        "/public".to_owned(),
        "/admin".to_owned(),
        "/consult".to_owned(),
        "/facility/hofu-sakuragi-general".to_owned(),
        format!("/timeline?case_id={case}"),
    ] {
        page.goto(&format!("http://{drill_http}{path}"))
            .await
            .unwrap();
        let banner = wait_text(&page, "#drill-banner", |t| t.contains("訓練 / DRILL")).await;
        assert!(banner.contains("冬季の感染拡大"), "{path}: {banner}");
        let title = page.title().await.unwrap();
        assert!(title.contains("【訓練】"), "{path}: {title}");
    }
    page.goto(&format!("http://{drill_http}/hq")).await.unwrap();
    wait_text(&page, "#drill-banner", |t| t.contains("訓練")).await;
    accessible(&page, "the drill's HQ page").await;
    page.close().await.unwrap();
    let nurse = browser.session().await;
    log_in(
        &nurse,
        &format!("http://{drill_http}"),
        "demo-hc",
        "noroshi-demo-hc",
    )
    .await;
    wait_text(&nurse, "#drill-banner", |t| t.contains("訓練 / DRILL")).await;
    nurse.close().await.unwrap();
    let prod_page = browser.session().await;
    log_in(
        &prod_page,
        &format!("http://{prod_http}"),
        "demo-hq",
        "noroshi-demo-hq",
    )
    .await;
    prod_page
        .goto(&format!("http://{prod_http}/hq"))
        .await
        .unwrap();
    wait_text(&prod_page, "h1, h2", |t| !t.is_empty()).await;
    assert!(prod_page.find(Locator::Css("#drill-banner")).await.is_err());
    assert!(!prod_page.title().await.unwrap().contains("訓練"));
    prod_page.close().await.unwrap();
    drop(browser);

    // `drill list` shows it running; `drill stop --keep` ends it and writes its report.
    let listed = noroshi(&db, &nats_url, &["drill", "list"]).await;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("t1\trunning\t"), "{stdout}");
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("drill.html");
    let stopped = noroshi(
        &db,
        &nats_url,
        &[
            "drill",
            "stop",
            "t1",
            "--keep",
            "--output",
            report.to_str().unwrap(),
        ],
    )
    .await;
    assert!(stopped.status.success(), "{stopped:?}");
    let exit = drill.wait(Duration::from_secs(60)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}: {}",
        drill.log()
    );
    let cases = count(
        &drill_pool,
        "SELECT count(*) FROM events WHERE event_type = 'noroshi.v1.CaseReported'",
    )
    .await;
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("訓練報告書"), "{html}");
    assert!(html.contains("訓練「冬季の感染拡大（山口・防府医療圏）」"));
    assert!(
        html.contains(&format!("<dd id=\"total-reported\">{cases}</dd>")),
        "{cases} cases: {html}"
    );
    let listed = noroshi(&db, &nats_url, &["drill", "list"]).await;
    let stdout = String::from_utf8_lossy(&listed.stdout);
    assert!(stdout.contains("t1\tstopped\t"), "{stdout}");
    drill_pool.close().await;
    // `drill stop` again removes the kept database and stream; production runs on with
    // its own two cases.
    let removed = noroshi(
        &db,
        &nats_url,
        &["drill", "stop", "t1", "--output", report.to_str().unwrap()],
    )
    .await;
    assert!(removed.status.success(), "{removed:?}");
    let drill_db = format!("{}_drill_t1", db.name());
    let exists = format!("SELECT count(*) FROM pg_database WHERE datname = '{drill_db}'");
    assert_eq!(count(db.pool(), &exists).await, 0);
    assert!(
        async_nats::jetstream::new(client)
            .get_stream("NOROSHI_EVENTS_DRILL_T1")
            .await
            .is_err()
    );
    let listed = noroshi(&db, &nats_url, &["drill", "list"]).await;
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "no drills");
    assert!(production.is_running(), "{}", production.log());
    assert_eq!(db.event_count_of("noroshi.v1.CaseReported").await, 2);
}
