//! The real binary with real identities: `serve` refuses a token file unless allowed,
//! `noroshi admin user|client` issue credentials shown once, and after a full scenario
//! of logins, sessions, API client calls, revocation and a password reset, no password,
//! token, session id or CSRF token appears in the logs, the events or the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use noroshi_tests::{NoroshiProcess, TestDatabase, free_port, noroshi_bin, wait_for_port};
use serde_json::{Value, json};

fn demo_file() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ops/demo/yamaguchi.toml")
}

/// Runs `noroshi <args>` against `db` at debug level: stdout and stderr, or panics.
async fn noroshi(db: &TestDatabase, args: &[&str], stdin: Option<&str>) -> (String, String) {
    use tokio::io::AsyncWriteExt;
    let mut child = tokio::process::Command::new(noroshi_bin())
        .args(["--log", "debug"])
        .args(args)
        .env("NOROSHI_DATABASE_URL", db.url())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).await.unwrap();
    }
    drop(input);
    let output = child.wait_with_output().await.unwrap();
    let (out, err) = (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    );
    assert!(output.status.success(), "noroshi {args:?} failed: {err}");
    (out, err)
}

/// A minimal HTTP client for the spawned server.
struct Http {
    base: String,
}

impl Http {
    async fn send(
        &self,
        method: http::Method,
        path: &str,
        headers: &[(&str, String)],
        body: String,
    ) -> (u16, http::HeaderMap, Value) {
        use http_body_util::BodyExt;
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<http_body_util::Full<bytes::Bytes>>();
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = client
            .request(
                request
                    .body(http_body_util::Full::new(bytes::Bytes::from(body)))
                    .unwrap(),
            )
            .await
            .unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (status, headers, json)
    }
}

#[tokio::test]
async fn serve_refuses_a_token_file_unless_it_is_allowed() {
    let db = TestDatabase::create().await;
    let demo = demo_file();
    let port = free_port().to_string();
    let grpc = format!("127.0.0.1:{port}");
    let http = format!("127.0.0.1:{}", free_port());
    let mut refused = NoroshiProcess::spawn(
        "token-file-refused",
        &["serve", "--components", "api"],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_TOKENS_FILE", demo.to_str().unwrap()),
            ("NOROSHI_GRPC_ADDR", &grpc),
            ("NOROSHI_HTTP_ADDR", &http),
        ],
    );
    let status = refused.wait(Duration::from_secs(30)).await.expect("exits");
    assert!(!status.success());
    assert!(
        refused
            .log()
            .contains("a token file is for development and tests only"),
        "{}",
        refused.log()
    );
}

#[tokio::test]
async fn no_secret_reaches_the_logs_the_events_or_the_audit_log() {
    let db = TestDatabase::create().await;
    let demo = demo_file();
    let demo = demo.to_str().unwrap();
    let (_, apply_log) = noroshi(&db, &["admin", "apply", demo], None).await;

    // Credentials made by the CLI: shown once on stdout, never in its log.
    let chosen = "Chosen-Secret-Passphrase-7141";
    let (out, add_log) = noroshi(
        &db,
        &[
            "admin",
            "user",
            "add",
            "yamaguchi.nurse",
            "--organisation",
            "yamaguchi-hc",
            "--role",
            "HEALTH_CENTER",
            "--display-name",
            "試験 看護師",
            "--password-stdin",
        ],
        Some(&format!("{chosen}\n")),
    )
    .await;
    assert!(out.contains("created yamaguchi.nurse"), "{out}");
    let (out, generated_log) = noroshi(
        &db,
        &[
            "admin",
            "user",
            "add",
            "hofu.beds",
            "--organisation",
            "hofu-sakuragi-general",
            "--role",
            "HOSPITAL",
            "--display-name",
            "試験 病床管理",
        ],
        None,
    )
    .await;
    let generated = out
        .lines()
        .find_map(|l| l.strip_prefix("password: "))
        .expect("a generated password")
        .to_owned();
    let (out, issue_log) = noroshi(
        &db,
        &[
            "admin",
            "client",
            "issue",
            "--name",
            "病床連携",
            "--organisation",
            "hofu-sakuragi-general",
            "--scope",
            "facilities,views",
            "--expires-in",
            "30days",
        ],
        None,
    )
    .await;
    let client_token = out
        .lines()
        .find_map(|l| l.strip_prefix("token (shown once): "))
        .expect("a client token")
        .to_owned();
    let client_id = out.split_whitespace().nth(1).expect("client id").to_owned();

    let (grpc, http) = (free_port(), free_port());
    let grpc_addr = format!("127.0.0.1:{grpc}");
    let http_addr = format!("127.0.0.1:{http}");
    let mut server = NoroshiProcess::spawn(
        "secrets",
        &["serve", "--components", "api"],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_TOKENS_FILE", demo),
            ("NOROSHI_ALLOW_TOKEN_FILE", "true"),
            ("NOROSHI_GRPC_ADDR", &grpc_addr),
            ("NOROSHI_HTTP_ADDR", &http_addr),
            ("NOROSHI_LOG", "debug"),
        ],
    );
    let api = Http {
        base: format!("http://{http_addr}"),
    };
    assert!(
        wait_for_port(&http_addr).await,
        "the API did not start: {}",
        server.log()
    );

    // Logins: wrong, right; a session reads and writes with its CSRF token.
    let wrong = "Wrong-Secret-Passphrase-5521";
    let login =
        |password: &str| json!({"username": "yamaguchi.nurse", "password": password}).to_string();
    let (status, _, body) = api
        .send(http::Method::POST, "/api/v1/session", &[], login(wrong))
        .await;
    assert_eq!(status, 401);
    assert!(!body.to_string().contains(wrong));
    let (status, headers, body) = api
        .send(http::Method::POST, "/api/v1/session", &[], login(chosen))
        .await;
    assert_eq!(status, 200, "{body}");
    let cookie = headers["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session_id = cookie.split_once('=').unwrap().1.to_owned();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    let session = [("cookie", cookie.clone()), ("x-csrf-token", csrf.clone())];
    let (status, _, body) = api
        .send(
            http::Method::GET,
            "/api/v1/views/case_board",
            &session,
            String::new(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let report = json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "patient": {"name": "試験 三郎", "birth_date": "1950-05-05", "sex": "SEX_MALE",
                    "address": "山口市 架空町 7-8-9"},
        "municipality": "352039",
        "severity": "SEVERITY_MILD"
    });
    let (status, _, body) = api
        .send(
            http::Method::POST,
            "/api/v1/commands/ReportCase",
            &session,
            report.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    // A denial, by the session.
    let (status, _, _) = api
        .send(http::Method::GET, "/api/v1/audit", &session, String::new())
        .await;
    assert_eq!(status, 403);

    // The API client declares capacity, is revoked, and is refused.
    let bearer = [("authorization", format!("Bearer {client_token}"))];
    let declare = json!({
        "command_id": uuid::Uuid::new_v4().to_string(),
        "facility_id": "hofu-sakuragi-general",
        "categories": [{"category": "BED_CATEGORY_MODERATE", "secured": 6, "ready": 4, "occupied": 2}]
    });
    let (status, _, body) = api
        .send(
            http::Method::POST,
            "/api/v1/commands/DeclareCapacity",
            &bearer,
            declare.to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, revoke_log) = noroshi(&db, &["admin", "client", "revoke", &client_id], None).await;
    let (status, _, body) = api
        .send(
            http::Method::POST,
            "/api/v1/commands/DeclareCapacity",
            &bearer,
            declare.to_string(),
        )
        .await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains(&client_token));

    // HQ resets the hospital user's password; the new one works.
    let reset = "Reset-Secret-Passphrase-9063";
    let hq = [("authorization", "Bearer demo-token-yamaguchi-hq".to_owned())];
    let (status, _, body) = api
        .send(
            http::Method::POST,
            "/api/v1/admin/users/hofu.beds/password",
            &hq,
            json!({"password": reset}).to_string(),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let (status, _, _) = api
        .send(
            http::Method::POST,
            "/api/v1/session",
            &[],
            json!({"username": "hofu.beds", "password": reset}).to_string(),
        )
        .await;
    assert_eq!(status, 200);

    assert!(server.terminate(Duration::from_secs(30)).await.is_some());
    let server_log = server.log();
    assert!(
        server_log.contains("DEBUG"),
        "the scenario ran at debug level"
    );
    let secrets = [
        chosen,
        wrong,
        reset,
        generated.as_str(),
        client_token.as_str(),
        session_id.as_str(),
        csrf.as_str(),
        "demo-token-yamaguchi-hq",
    ];
    let logs = [
        ("apply", apply_log),
        ("user add", add_log),
        ("user add (generated)", generated_log),
        ("client issue", issue_log),
        ("client revoke", revoke_log),
        ("serve", server_log),
    ];
    for (name, log) in &logs {
        for secret in secrets {
            assert!(!log.contains(secret), "the {name} log holds a secret");
        }
    }
    // Nor anything stored: events, audit log, identity tables.
    for table in ["events", "audit_log", "users", "sessions", "api_clients"] {
        // Binary payloads are searched as bytes (escape encoding keeps ASCII as is).
        let text = if table == "events" {
            "t::text || encode(t.payload, 'escape')"
        } else {
            "t::text"
        };
        let rows: Vec<String> =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT {text} FROM {table} t")))
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert!(!rows.is_empty() || table == "sessions", "{table} is empty");
        for row in &rows {
            for secret in secrets {
                assert!(!row.contains(secret), "{table} holds a secret");
            }
        }
    }
}
