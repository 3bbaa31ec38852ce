//! The OpenAPI document being written, and the schemas of protobuf messages as the
//! canonical JSON mapping writes them: what every part that describes itself (the views,
//! the commands, the other routes) writes into.

use std::collections::BTreeMap;

use prost_reflect::{Cardinality, FieldDescriptor, Kind, MessageDescriptor};
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::json::{MissingMessage, schema};

/// The OpenAPI document being written: its paths, and the protobuf messages whose
/// schemas it refers to.
#[derive(Debug, Default)]
pub(crate) struct Document {
    pub(super) paths: serde_json::Map<String, Value>,
    pub(super) messages: BTreeMap<String, MessageDescriptor>,
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
pub(super) fn message_schema(
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

pub(super) fn errors() -> Value {
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
