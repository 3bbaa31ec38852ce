//! Property tests of the HTTP decoders (DESIGN.md §13): generated bodies for every
//! command and generated query strings for every view, sent as each role, never make the
//! server fail (no 5xx but a documented 503, no panic) and every refusal names its code
//! and message. A bounded number of cases here (`NOROSHI_FUZZ_CASES`, 48 by default);
//! `ops/fuzz` runs many more and prints what it tried.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use http::Method;
use noroshi_projections::View;
use noroshi_projections::views::ViewSettings;
use noroshi_tests::api::{ApiOptions, HC, HOSPITAL, HQ, TestApi};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Map, Value, json};

#[path = "placement_model.rs"]
mod placement_model;

fn cases() -> u32 {
    std::env::var("NOROSHI_FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(48)
}

/// Field names the commands and views use, so that generated input reaches past the
/// first "unknown field" into each decoder's checks.
const FIELDS: &[&str] = &[
    "command_id",
    "expected_version",
    "facility_id",
    "case_id",
    "placement_id",
    "consult_id",
    "category",
    "categories",
    "secured",
    "ready",
    "occupied",
    "acceptance",
    "constraints",
    "patient",
    "name",
    "birth_date",
    "sex",
    "address",
    "municipality",
    "severity",
    "risk_factors",
    "reason",
    "vehicle",
    "outcome",
    "priority",
    "observed_at",
    "spo2_percent",
    "temperature_decicelsius",
    "on_oxygen",
    "needs",
    "proxy_reason",
    "alert_id",
    "note",
];

const QUERY_KEYS: &[&str] = &[
    "medical_area",
    "category",
    "min_versions",
    "as_of",
    "page_size",
    "page_token",
    "status",
    "case_id",
    "placement_id",
    "facility_id",
    "query",
    "day",
    "from",
    "to",
    "encoding",
    "severity",
    "include_closed",
];

/// Odd strings: empty, long, control characters, numbers, enum-like, Japanese, JSON-ish.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z_]{1,12}",
        "[A-Z_]{3,30}",
        "-?[0-9]{1,25}",
        "[\\x00-\\x1f\"\\\\]{0,8}",
        "[ぁ-んァ-ン一-龥]{0,20}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z",
        "\\PC{0,40}",
        Just("x".repeat(5000)),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![prop::sample::select(FIELDS).prop_map(str::to_owned), text()],
                inner,
                0..6
            )
            .prop_map(|m: BTreeMap<String, Value>| Value::Object(
                m.into_iter().collect::<Map<_, _>>()
            )),
        ]
    })
}

/// A command body: an object of known fields with odd values, any JSON, or bytes.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..8)
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn query() -> impl Strategy<Value = String> {
    prop::collection::vec(
        (
            prop_oneof![
                prop::sample::select(QUERY_KEYS).prop_map(str::to_owned),
                text()
            ],
            text(),
        ),
        0..4,
    )
    .prop_map(|pairs| {
        let mut query = url_encode(&pairs);
        if !query.is_empty() {
            query.insert(0, '?');
        }
        query
    })
}

fn url_encode(pairs: &[(String, String)]) -> String {
    let enc = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// An answer the server may give to bad input: a client error that names its code and
/// message, or a documented 503 (a `min_versions` wait that ran out).
fn acceptable(status: u16, answer: &Value) -> Result<(), TestCaseError> {
    prop_assert!(status < 500 || status == 503, "status {status}: {answer}");
    if status >= 400 {
        prop_assert!(
            answer["code"].is_string(),
            "status {status} without a code: {answer}"
        );
        prop_assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "status {status} without a message: {answer}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_commands_and_view_queries_never_fail_the_server() {
    let api = TestApi::with(ApiOptions {
        views: ViewSettings {
            read_your_writes_wait: Duration::from_millis(50),
            ..ViewSettings::default()
        },
        ..ApiOptions::default()
    })
    .await;
    api.seed().await;
    let runtime = tokio::runtime::Handle::current();
    let actors = [HQ, HC, HOSPITAL];
    let statuses: std::sync::Mutex<BTreeMap<u16, u64>> = std::sync::Mutex::default();

    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let commands = prop::sample::select(noroshi_api::http::COMMANDS.to_vec());
    let strategy = (commands, prop::sample::select(actors.to_vec()), body());
    runner
        .run(&strategy, |((name, _), actor, body)| {
            let answer = tokio::task::block_in_place(|| {
                runtime.block_on(api.http_request(
                    Method::POST,
                    &format!("/api/v1/commands/{name}"),
                    &[
                        ("authorization", format!("Bearer {}", actor.token)),
                        ("content-type", "application/json".to_owned()),
                    ],
                    body,
                ))
            });
            *statuses.lock().unwrap().entry(answer.status).or_default() += 1;
            acceptable(answer.status, &answer.json)
        })
        .unwrap();

    let mut runner = TestRunner::new(Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    });
    let views: Vec<&'static str> = View::ALL.iter().map(|v| v.name()).collect();
    let strategy = (
        prop::sample::select(views),
        prop::sample::select(actors.to_vec()),
        query(),
    );
    runner
        .run(&strategy, |(view, actor, query)| {
            let answer = tokio::task::block_in_place(|| {
                runtime.block_on(api.http_request(
                    Method::GET,
                    &format!("/api/v1/views/{view}{query}"),
                    &[("authorization", format!("Bearer {}", actor.token))],
                    "",
                ))
            });
            *statuses.lock().unwrap().entry(answer.status).or_default() += 1;
            acceptable(answer.status, &answer.json)
        })
        .unwrap();
    eprintln!(
        "fuzz: {} commands and {} view queries, answers by status {:?}",
        cases(),
        cases(),
        statuses.lock().unwrap()
    );
    // The server still answers as it should.
    let (status, _) = api.http_get(Some(HQ), "/api/v1/views/bed_board").await;
    assert_eq!(status, 200);
}
