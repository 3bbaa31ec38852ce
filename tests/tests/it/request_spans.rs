//! Request tracing (DESIGN.md §9): every gRPC and HTTP request runs in a `request` span
//! that a command fills with its `command_id`, `correlation_id` and `stream_id`, so that
//! the log lines of a request can be found by any of them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use noroshi_proto::v1 as pb;
use noroshi_tests::api::cid;
use noroshi_tests::{NoroshiProcess, TestDatabase, free_port, noroshi_bin, wait_for_port};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: &str = "demo-token-hofu-sakuragi-general";

/// One HTTP/1.1 request with a JSON body; the status line.
async fn post(addr: &str, path: &str, body: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {TOKEN}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    answer.lines().next().unwrap_or_default().to_owned()
}

/// The `request` spans of the process's JSON log lines, by command id.
fn request_spans(log: &str, command_id: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .flat_map(|line| line["spans"].as_array().cloned().unwrap_or_default())
        .filter(|span| span["name"] == "request" && span["command_id"] == command_id)
        .collect()
}

#[tokio::test]
async fn every_request_runs_in_a_span_that_names_its_command_and_stream() {
    let db = TestDatabase::create().await;
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
    let mut server = NoroshiProcess::spawn(
        "request-spans",
        &["serve", "--components", "api"],
        &[
            ("NOROSHI_DATABASE_URL", db.url()),
            ("NOROSHI_TOKENS_FILE", demo),
            ("NOROSHI_ALLOW_TOKEN_FILE", "true"),
            ("NOROSHI_HTTP_ADDR", &http),
            ("NOROSHI_GRPC_ADDR", &grpc),
            ("NOROSHI_LOG", "info,noroshi_api=debug,noroshi_app=debug"),
            ("NOROSHI_LOG_FORMAT", "json"),
        ],
    );
    assert!(wait_for_port(&http).await, "{}", server.log());

    let over_http = cid();
    let body = format!(
        r#"{{"command_id": "{over_http}", "facility_id": "hofu-sakuragi-general",
            "categories": [{{"category": "MODERATE", "secured": 10, "ready": 8, "occupied": 2}}]}}"#
    )
    .replace("\"MODERATE\"", "\"BED_CATEGORY_MODERATE\"");
    let status = post(&http, "/api/v1/commands/DeclareCapacity", &body).await;
    assert!(status.contains(" 200 "), "{status}");

    let over_grpc = cid();
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut request = tonic::Request::new(pb::SetAcceptanceRequest {
        command_id: over_grpc.clone(),
        facility_id: "hofu-sakuragi-general".into(),
        category: pb::BedCategory::Moderate as i32,
        acceptance: pb::Acceptance::Limited as i32,
        constraints: vec![pb::AcceptanceConstraint::Staff as i32],
        proxy_reason: String::new(),
        expected_version: None,
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    pb::facility_service_client::FacilityServiceClient::new(channel)
        .set_acceptance(request)
        .await
        .unwrap();

    for (command_id, transport, route) in [
        (&over_http, "http", "/api/v1/commands/{name}"),
        (
            &over_grpc,
            "grpc",
            "/noroshi.v1.FacilityService/SetAcceptance",
        ),
    ] {
        let mut spans = Vec::new();
        noroshi_tests::eventually("the request's log lines", Duration::from_secs(10), || {
            spans = request_spans(&server.log(), command_id);
            std::future::ready(spans.iter().any(|s| !s["stream_id"].is_null()))
        })
        .await;
        let span = spans.iter().find(|s| !s["stream_id"].is_null()).unwrap();
        assert_eq!(span["transport"], transport, "{span}");
        assert_eq!(span["route"], route, "{span}");
        assert_eq!(span["correlation_id"], command_id.as_str(), "{span}");
        assert_eq!(
            span["stream_id"], "facility-hofu-sakuragi-general",
            "{span}"
        );
    }
    assert!(server.terminate(Duration::from_secs(30)).await.is_some());
}
