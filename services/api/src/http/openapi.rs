//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API. The command
//! bodies and answers are derived from the protobuf schema the commands decode with, so
//! the document cannot drift from what the server accepts.

use std::collections::BTreeMap;

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::commands::{COMMANDS, schema};
use super::{VIEW_NAMES, VIEW_PARAMETERS};
use crate::error::ApiError;

/// The JSON Schema of a protobuf field, as the canonical JSON mapping writes it.
fn field_schema(
    field: &FieldDescriptor,
    messages: &mut BTreeMap<String, MessageDescriptor>,
) -> Value {
    let single = match field.kind() {
        Kind::Bool => json!({"type": "boolean"}),
        Kind::String => json!({"type": "string"}),
        Kind::Bytes => json!({"type": "string", "contentEncoding": "base64"}),
        Kind::Double | Kind::Float => json!({"type": "number"}),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 | Kind::Uint32 | Kind::Fixed32 => {
            json!({"type": "integer"})
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint64 | Kind::Fixed64 => {
            json!({"type": ["integer", "string"]})
        }
        Kind::Enum(e) => json!({
            "type": "string",
            "enum": e.values().map(|v| v.name().to_owned()).collect::<Vec<_>>(),
        }),
        Kind::Message(m) if m.full_name() == "google.protobuf.Timestamp" => {
            json!({"type": "string", "format": "date-time"})
        }
        Kind::Message(m) => {
            let name = m.full_name().to_owned();
            messages.entry(name.clone()).or_insert(m);
            json!({"$ref": format!("#/components/schemas/{name}")})
        }
    };
    if field.cardinality() == Cardinality::Repeated && !field.is_map() {
        json!({"type": "array", "items": single})
    } else {
        single
    }
}

fn message_schema(
    message: &MessageDescriptor,
    messages: &mut BTreeMap<String, MessageDescriptor>,
) -> Value {
    let properties: serde_json::Map<String, Value> = message
        .fields()
        .map(|field| (field.name().to_owned(), field_schema(&field, messages)))
        .collect();
    json!({"type": "object", "properties": properties, "additionalProperties": false})
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn errors() -> Value {
    json!({
        "400": error_response("INVALID_ARGUMENT, with the offending fields"),
        "401": error_response("UNAUTHENTICATED"),
        "403": error_response("PERMISSION_DENIED; says nothing about whether the target exists"),
        "404": error_response("NOT_FOUND"),
        "409": error_response("ALREADY_EXISTS, or ABORTED by a conflict that survived the retries"),
        "412": error_response("FAILED_PRECONDITION: an illegal transition, or no free bed"),
        "429": error_response("RESOURCE_EXHAUSTED: a body or message over the limit"),
        "503": error_response("UNAVAILABLE: the store is down, or min_versions not reached in time"),
    })
}

/// The whole document.
pub(super) fn document() -> Result<Value, ApiError> {
    let schema = schema()?;
    let mut messages = BTreeMap::new();
    let mut paths = serde_json::Map::new();
    for (name, request) in COMMANDS {
        let request = schema
            .get_message_by_name(&format!("noroshi.v1.{request}"))
            .ok_or_else(|| {
                ApiError::internal(super::commands::MissingMessage((*request).into()))
            })?;
        messages.insert(request.full_name().to_owned(), request.clone());
        let mut responses = errors();
        responses["200"] = json!({
            "description": "committed (or, for a command id seen before, the original answer with replayed = true)",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/noroshi.v1.CommandResult"}}},
        });
        paths.insert(
            format!("/api/v1/commands/{name}"),
            json!({"post": {
                "operationId": name,
                "tags": ["commands"],
                "summary": format!("{name}, as the gRPC method of the same name"),
                "security": [{"bearer": []}],
                "requestBody": {"required": true, "content": {"application/json": {
                    "schema": {"$ref": format!("#/components/schemas/{}", request.full_name())}
                }}},
                "responses": responses,
            }}),
        );
    }
    if let Some(result) = schema.get_message_by_name("noroshi.v1.CommandResult") {
        messages.insert(result.full_name().to_owned(), result);
    }
    for view in VIEW_NAMES {
        let mut parameters = vec![json!({
            "name": "min_versions", "in": "query", "required": false,
            "description": "stream:version pairs, comma-separated, as commands return them: wait (bounded) until the view has applied them",
            "schema": {"type": "string"},
        })];
        for (param, repeated, description) in VIEW_PARAMETERS
            .iter()
            .filter(|(v, ..)| v == view)
            .map(|(_, p, r, d)| (p, r, d))
        {
            parameters.push(json!({
                "name": param, "in": "query", "required": false, "description": description,
                "explode": true,
                "schema": if *repeated { json!({"type": "array", "items": {"type": "string"}}) } else { json!({"type": "string"}) },
            }));
        }
        let mut responses = errors();
        responses["200"] = json!({"description": format!("the {view} view (see docs/views.md)"),
            "content": {"application/json": {"schema": {"type": "object"}}}});
        paths.insert(
            format!("/api/v1/views/{view}"),
            json!({"get": {"operationId": format!("get_{view}"), "tags": ["views"],
                "security": [{"bearer": []}], "parameters": parameters, "responses": responses}}),
        );
        let mut responses = errors();
        responses["200"] = json!({"description": "Server-Sent Events: `snapshot`, then `delta` (or `update`); `error` if a read fails",
            "content": {"text/event-stream": {"schema": {"type": "string"}}}});
        paths.insert(
            format!("/api/v1/views/{view}/stream"),
            json!({"get": {"operationId": format!("watch_{view}"), "tags": ["views"],
                "security": [{"bearer": []}], "parameters": parameters, "responses": responses}}),
        );
    }
    // What the web UI reads besides the views: reference data and HQ's and nurses' aids.
    for (path, operation, parameter, description) in [
        (
            "/api/v1/areas",
            "get_areas",
            None,
            "the medical areas and their municipalities: code, name, name_en (any reader of views)",
        ),
        (
            "/api/v1/facilities",
            "get_facilities",
            None,
            "the registered facilities: id, name, name_en, kind, medical area (any reader of views but PUBLIC)",
        ),
        (
            "/api/v1/placements/{placement_id}/candidates",
            "get_candidates",
            Some("placement_id"),
            "where HQ may offer a waiting placement, best first (HQ)",
        ),
        (
            "/api/v1/cases/{case_id}/observations",
            "get_observations",
            Some("case_id"),
            "a case's SpO2 and temperature trend (an audited read)",
        ),
    ] {
        let mut responses = errors();
        responses["200"] = json!({"description": description,
            "content": {"application/json": {"schema": {"type": "object"}}}});
        let parameters: Vec<Value> = parameter
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}}))
            .into_iter()
            .collect();
        paths.insert(
            path.into(),
            json!({"get": {"operationId": operation, "tags": ["reference"],
                "security": [{"bearer": []}], "parameters": parameters, "responses": responses}}),
        );
    }
    for (path, description) in [
        ("/healthz", "the process is up"),
        ("/readyz", "each projection's lag"),
        ("/metrics", "Prometheus metrics (OpenMetrics text)"),
    ] {
        paths.insert(
            path.into(),
            json!({"get": {"tags": ["operations"], "responses": {"200": {"description": description}}}}),
        );
    }
    // Nested messages, until every referenced one is described.
    let mut schemas = serde_json::Map::new();
    let mut done = std::collections::BTreeSet::new();
    while let Some((name, message)) = messages
        .iter()
        .find(|(name, _)| !done.contains(*name))
        .map(|(n, m)| (n.clone(), m.clone()))
    {
        done.insert(name.clone());
        schemas.insert(name, message_schema(&message, &mut messages));
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "required": ["code", "message", "violations"], "properties": {
            "code": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
            "message": {"type": "string"},
            "violations": {"type": "array", "items": {"type": "object", "properties": {
                "field": {"type": "string"}, "description": {"type": "string"}}}},
        }}),
    );
    Ok(json!({
        "openapi": "3.1.0",
        "info": {
            "title": "noroshi",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Regional surge coordination: beds, cases and placements. The same API as the gRPC services of package noroshi.v1.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }))
}
