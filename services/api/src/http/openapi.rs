//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of the HTTP API. The command
//! bodies and answers are derived from the protobuf schema the commands decode with, so
//! the document cannot drift from what the server accepts.

use std::collections::BTreeMap;

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use super::commands::COMMANDS;
use crate::error::ApiError;
use crate::json::{MissingMessage, schema};

/// The OpenAPI document being written: its paths, and the protobuf messages whose
/// schemas it refers to.
#[derive(Debug, Default)]
pub(crate) struct Document {
    paths: serde_json::Map<String, Value>,
    messages: BTreeMap<String, MessageDescriptor>,
}

impl Document {
    /// A reference to the schema of `message`, which the document will describe.
    pub(crate) fn message_ref(&mut self, message: MessageDescriptor) -> Value {
        let name = message.full_name().to_owned();
        let reference = json!({"$ref": format!("#/components/schemas/{name}")});
        self.messages.entry(name).or_insert(message);
        reference
    }

    /// A reference to the schema of message `T`.
    pub(crate) fn message<T: prost::Name>(&mut self) -> Result<Value, ApiError> {
        let message = schema()?
            .get_message_by_name(&T::full_name())
            .ok_or_else(|| ApiError::internal(MissingMessage(T::full_name())))?;
        Ok(self.message_ref(message))
    }

    pub(crate) fn path(&mut self, path: &str, item: Value) {
        self.paths.insert(path.to_owned(), item);
    }

    /// The error answers every operation may give.
    pub(crate) fn errors() -> Value {
        errors()
    }
}

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

/// A message's schema. Fields without presence are always written (and so required);
/// optional fields, messages and the fields of a oneof are written when set.
fn message_schema(
    message: &MessageDescriptor,
    messages: &mut BTreeMap<String, MessageDescriptor>,
) -> Value {
    let properties: serde_json::Map<String, Value> = message
        .fields()
        .map(|field| (field.name().to_owned(), field_schema(&field, messages)))
        .collect();
    let required: Vec<String> = message
        .fields()
        .filter(|field| !field.supports_presence())
        .map(|field| field.name().to_owned())
        .collect();
    json!({"type": "object", "properties": properties, "required": required,
        "additionalProperties": false})
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
    let mut document = Document::default();
    crate::views::describe(&mut document)?;
    let Document {
        mut paths,
        mut messages,
    } = document;
    for (name, request) in COMMANDS {
        let request = schema
            .get_message_by_name(&format!("noroshi.v1.{request}"))
            .ok_or_else(|| ApiError::internal(MissingMessage((*request).into())))?;
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
