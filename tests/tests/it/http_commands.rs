//! The commands over HTTP (`POST /api/v1/commands/<Rpc>`): the same commands, rules and
//! error model as gRPC, and bad input refused with the offending field and nothing
//! written.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use noroshi_tests::api::{HC, HOSPITAL, HQ, TestApi};
use serde_json::{Value, json};

fn refused(answer: &(u16, Value), status: u16, code: &str, field: Option<&str>) {
    let (got, body) = answer;
    assert_eq!(
        (*got, body["code"].as_str()),
        (status, Some(code)),
        "{body}"
    );
    if let Some(field) = field {
        assert_eq!(body["violations"][0]["field"], field, "{body}");
    }
}

fn report(command_id: &str) -> Value {
    json!({
        "command_id": command_id,
        "patient": {
            "name": "試験 太郎",
            "birth_date": "1961-09-30",
            "sex": "SEX_MALE",
            "address": "防府市 架空町 4-5-6"
        },
        "municipality": "352063",
        "severity": "SEVERITY_MODERATE_I",
        "risk_factors": ["RISK_FACTOR_DIABETES"]
    })
}

#[tokio::test]
async fn a_placement_runs_over_http_with_the_grpc_rules_and_errors() {
    let api = TestApi::start().await;
    api.seed().await;
    let post = |actor, name: &str, body: Value| {
        let api = &api;
        let path = format!("/api/v1/commands/{name}");
        async move { api.http_post(actor, &path, body.to_string()).await }
    };

    let (status, declared) = post(
        Some(HOSPITAL),
        "DeclareCapacity",
        json!({
            "command_id": "0190a000-0000-7000-8000-00000000d001",
            "facility_id": "hofu-central",
            "categories": [{"category": "BED_CATEGORY_MODERATE", "secured": 4, "ready": 2, "occupied": 1}]
        }),
    )
    .await;
    assert_eq!(status, 200, "{declared}");
    assert_eq!(declared["stream_id"], "facility-hofu-central");
    assert!(declared["version"].as_u64().unwrap() >= 2, "{declared}");

    let command_id = "0190a000-0000-7000-8000-00000000c001";
    let (status, reported) = post(Some(HC), "ReportCase", report(command_id)).await;
    assert_eq!(status, 200, "{reported}");
    let case_stream = reported["stream_id"].as_str().unwrap().to_owned();
    assert!(case_stream.starts_with("case-"));
    // The same command id again: the original answer, nothing appended.
    let events = api.db.event_count().await;
    let (status, again) = post(Some(HC), "ReportCase", report(command_id)).await;
    assert_eq!(status, 200);
    assert_eq!(again["replayed"], true);
    assert_eq!(again["stream_id"], case_stream.as_str());
    assert_eq!(api.db.event_count().await, events);

    let case_id = case_stream.trim_start_matches("case-");
    let (status, requested) = post(
        Some(HC),
        "RequestPlacement",
        json!({"command_id": "0190a000-0000-7000-8000-00000000c002", "case_id": case_id,
               "category": "BED_CATEGORY_MODERATE"}),
    )
    .await;
    assert_eq!(status, 200, "{requested}");
    let placement_id = requested["stream_id"]
        .as_str()
        .unwrap()
        .trim_start_matches("placement-")
        .to_owned();
    let (status, offered) = post(
        Some(HQ),
        "OfferPlacement",
        json!({"commandId": "0190a000-0000-7000-8000-00000000c003", "placementId": placement_id,
               "facilityId": "hofu-central"}),
    )
    .await;
    assert_eq!(status, 200, "{offered}");
    let (status, accepted) = post(
        Some(HOSPITAL),
        "AcceptPlacement",
        json!({"command_id": "0190a000-0000-7000-8000-00000000c004", "placement_id": placement_id}),
    )
    .await;
    assert_eq!(status, 200, "{accepted}");
    let streams: Vec<&str> = accepted["streams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        streams,
        [
            format!("placement-{placement_id}").as_str(),
            "facility-hofu-central"
        ]
    );

    // Refusals, each with its code, and nothing written by any of them.
    let events = api.db.event_count().await;
    let accept_again =
        json!({"command_id": "0190a000-0000-7000-8000-00000000c005", "placement_id": placement_id});
    let answer = post(
        Some(HQ),
        "OfferPlacement",
        json!({"command_id": "0190a000-0000-7000-8000-00000000c009", "placement_id": placement_id,
               "facility_id": "hofu-central"}),
    )
    .await;
    refused(&answer, 412, "FAILED_PRECONDITION", None);
    assert!(
        answer.1["message"].as_str().unwrap().contains("ACCEPTED"),
        "{}",
        answer.1
    );
    refused(
        &post(Some(HC), "AcceptPlacement", accept_again.clone()).await,
        403,
        "PERMISSION_DENIED",
        None,
    );
    refused(
        &post(None, "AcceptPlacement", accept_again).await,
        401,
        "UNAUTHENTICATED",
        None,
    );
    refused(
        &post(
            Some(HC),
            "ReportCase",
            json!({"command_id": "x", "patient": {"name": 5}}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        Some("patient.name"),
    );
    refused(
        &post(
            Some(HC),
            "ReportCase",
            json!({"command_id": "0190a000-0000-7000-8000-00000000c006", "severity": "GRAVE"}),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        Some("severity"),
    );
    refused(
        &api.http_post(Some(HC), "/api/v1/commands/ReportCase", "{\"command_id\": ")
            .await,
        400,
        "INVALID_ARGUMENT",
        Some("command_id"),
    );
    refused(
        &api.http_post(Some(HC), "/api/v1/commands/ReportCase", "[1, 2]")
            .await,
        400,
        "INVALID_ARGUMENT",
        Some("body"),
    );
    refused(
        &post(
            Some(HC),
            "ReportCases",
            report("0190a000-0000-7000-8000-00000000c007"),
        )
        .await,
        400,
        "INVALID_ARGUMENT",
        Some("command"),
    );
    // A field the domain refuses: reported per field, as over gRPC.
    let mut bad = report("0190a000-0000-7000-8000-00000000c008");
    bad["patient"]["birth_date"] = json!("1961-13-40");
    let answer = post(Some(HC), "ReportCase", bad).await;
    refused(&answer, 400, "INVALID_ARGUMENT", None);
    assert!(answer.1.to_string().contains("birth_date"), "{}", answer.1);
    // Oversized bodies are refused before they are read in full.
    let huge = format!(
        "{{\"command_id\": \"c\", \"note\": \"{}\"}}",
        "x".repeat(5 * 1024 * 1024)
    );
    refused(
        &api.http_post(Some(HC), "/api/v1/commands/RequestPlacement", huge)
            .await,
        429,
        "RESOURCE_EXHAUSTED",
        None,
    );
    assert_eq!(
        api.db.event_count().await,
        events,
        "a refusal wrote nothing"
    );
}

/// Every `$ref` in `value`.
fn refs(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => found.push(r.clone()),
                    _ => refs(v, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs(v, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_openapi_document_describes_every_command_and_view() {
    let api = TestApi::start().await;
    let (status, doc) = api.http_get(None, "/api/v1/openapi.json").await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (name, _) in noroshi_api::http::COMMANDS {
        assert!(
            paths.contains_key(&format!("/api/v1/commands/{name}")),
            "{name}"
        );
    }
    assert_eq!(noroshi_api::http::COMMANDS.len(), 29);
    assert_eq!(noroshi_api::views::NAMES.len(), 10);
    for view in noroshi_api::views::NAMES {
        // Every view answers its protobuf message, typed.
        let answer = &paths[&format!("/api/v1/views/{view}")]["get"]["responses"]["200"];
        let reference = answer["content"]["application/json"]["schema"]["$ref"]
            .as_str()
            .unwrap_or_else(|| panic!("{view} has no typed answer: {answer}"));
        assert!(
            reference.starts_with("#/components/schemas/noroshi.v1."),
            "{reference}"
        );
        let events = &paths[&format!("/api/v1/views/{view}/stream")]["get"]["responses"]["200"]["content"]
            ["text/event-stream"]["schema"]["x-events"];
        assert!(events["snapshot"]["$ref"].is_string(), "{view}: {events}");
    }
    let board = &doc["components"]["schemas"]["noroshi.v1.BedBoardRow"];
    assert_eq!(
        board["properties"]["category"]["enum"][1],
        "BED_CATEGORY_SEVERE"
    );
    assert!(
        board["required"]
            .as_array()
            .unwrap()
            .contains(&json!("available"))
    );
    let parameters = &paths["/api/v1/views/bed_board"]["get"]["parameters"];
    let names: Vec<&str> = parameters
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["medical_area", "categories", "min_versions", "as_of"]
    );
    // Reads of the past are for unary reads only.
    let stream: Vec<&str> = paths["/api/v1/views/bed_board/stream"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(stream, ["medical_area", "categories", "min_versions"]);
    for path in [
        "/api/v1/areas",
        "/api/v1/facilities",
        "/api/v1/placements/{placement_id}/candidates",
        "/api/v1/cases/{case_id}/observations",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(paths[path]["get"].is_object(), "{path}");
    }
    assert_eq!(
        paths["/api/v1/cases/{case_id}/observations"]["get"]["parameters"][0]["name"],
        "case_id"
    );
    let accept = &paths["/api/v1/commands/AcceptPlacement"]["post"];
    assert_eq!(
        accept["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/noroshi.v1.AcceptPlacementRequest"
    );
    let schemas = &doc["components"]["schemas"];
    let request = &schemas["noroshi.v1.AcceptPlacementRequest"]["properties"];
    assert_eq!(request["placement_id"]["type"], "string");
    assert_eq!(request["override_capacity"]["type"], "boolean");
    let declare = &schemas["noroshi.v1.DeclareCapacityRequest"]["properties"];
    assert_eq!(declare["categories"]["type"], "array");
    let severity = &schemas["noroshi.v1.ReportCaseRequest"]["properties"]["severity"];
    assert!(
        severity["enum"]
            .as_array()
            .unwrap()
            .contains(&json!("SEVERITY_MODERATE_I"))
    );
    // Every route answers a typed schema: a reference to a described type, or a string.
    let mut untyped = Vec::new();
    for (path, item) in paths {
        for (method, operation) in item.as_object().unwrap() {
            for (status, answer) in operation["responses"].as_object().unwrap() {
                if !status.starts_with('2') {
                    continue;
                }
                for (media, content) in answer["content"].as_object().into_iter().flatten() {
                    let schema = &content["schema"];
                    let typed = schema["$ref"].is_string()
                        || schema["type"] == "string"
                        || (schema["type"] == "object"
                            && media == "application/json"
                            && path == "/api/v1/openapi.json");
                    if !typed {
                        untyped.push(format!("{method} {path} {status} {media}: {schema}"));
                    }
                }
            }
        }
    }
    assert!(untyped.is_empty(), "{untyped:#?}");
    // Every parameter of a path template is declared.
    for (path, item) in paths {
        let templated: Vec<&str> = path
            .split('/')
            .filter_map(|part| part.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, operation) in item.as_object().unwrap() {
            for name in &templated {
                assert!(
                    operation["parameters"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|p| p["name"] == *name && p["in"] == "path"),
                    "{method} {path} does not declare {name}"
                );
            }
        }
    }
    for (path, method) in [
        ("/api/v1/session", "post"),
        ("/api/v1/admin/users", "post"),
        ("/api/v1/admin/clients", "post"),
        ("/api/v1/audit", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path}");
    }
    let user = &schemas["UserRecord"]["properties"];
    assert_eq!(user["created_at"]["format"], "date-time");
    assert_eq!(
        paths["/api/v1/admin/users"]["post"]["requestBody"]["content"]["application/json"]["schema"]
            ["$ref"],
        "#/components/schemas/UserBody"
    );
    // Every reference resolves.
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(found.len() > 20);
    for reference in found {
        let name = reference.trim_start_matches("#/components/schemas/");
        assert!(schemas.get(name).is_some(), "{reference} does not resolve");
    }
}
