//! The views over HTTP: `GET /api/v1/views/<view>` answers the view's protobuf message as
//! canonical protobuf JSON; `GET /api/v1/views/<view>/stream` sends its updates as
//! Server-Sent Events. The query string is the view's gRPC request message, field by
//! field (see [`request`]).

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use noroshi_domain::Violations;
use noroshi_event_store::StreamId;
use noroshi_identity::Scope;
use noroshi_projections::views::ViewQuery;
use prost::Message;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MessageDescriptor, ReflectMessage, Value,
};
use serde_json::json;

use crate::auth::Authed;
use crate::error::ApiError;
use crate::json::{descriptor, to_json};
use crate::openapi::schema::Document;
use crate::state::HttpContext;

/// The message type of `min_versions`, written `stream:version,…` in a query string.
const MIN_VERSIONS: &str = "noroshi.v1.MinVersions";

/// The message type of `as_of`, written as an RFC 3339 time or a position.
const AS_OF: &str = "noroshi.v1.AsOf";

/// Headers of an answer read as of the past: the position of the log it reflects and the
/// time it stands at.
pub(crate) const AS_OF_POSITION: &str = "noroshi-as-of-position";
pub(crate) const AS_OF_TIME: &str = "noroshi-as-of-time";

pub(crate) fn routes<V: ViewQuery>(router: axum::Router<HttpContext>) -> axum::Router<HttpContext> {
    router
        .route(&format!("/api/v1/views/{}", V::NAME), get(get_view::<V>))
        .route(
            &format!("/api/v1/views/{}/stream", V::NAME),
            get(watch_view::<V>),
        )
}

async fn get_view<V: ViewQuery>(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let request = request::<V>(&params, false)?;
    if let Some(as_of) = V::as_of(&request) {
        let (view, moment) = context
            .views
            .get_as_of::<V>(&principal, &request, as_of)
            .await?;
        let time = moment.time_text().map_err(ApiError::internal)?;
        return Ok((
            [
                (AS_OF_POSITION, moment.position.to_string()),
                (AS_OF_TIME, time),
            ],
            Json(to_json(&view)?),
        )
            .into_response());
    }
    let view = V::get(&context.views, &principal, &request).await?;
    Ok(Json(to_json(&view)?).into_response())
}

/// Server-Sent Events: the update's case (`snapshot`, then `delta`) as the event name,
/// its message as the data; a view whose updates are the view itself sends `snapshot`,
/// then `update`. A failed read becomes an `error` event and the stream goes on.
async fn watch_view<V: ViewQuery>(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let request = request::<V>(&params, true)?;
    let updates = V::watch(&context.views, &principal, &request).await?;
    let mut first = true;
    let events = updates.map(move |update| {
        let named = update
            .map_err(ApiError::from)
            .and_then(|update| event(&update, std::mem::take(&mut first)));
        let (name, data) = named.unwrap_or_else(|error| {
            (
                "error".to_owned(),
                json!({"code": error.code().as_str(), "message": error.to_string()}),
            )
        });
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event(name)
                .json_data(data)
                .unwrap_or_else(|_| Event::default().event("error")),
        )
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(context.heartbeat))
        .into_response())
}

/// The event name and data of one update: the case of its `update` oneof and that
/// case's message, or, for a view sent whole each time, `snapshot` then `update`.
fn event<U: Message + prost::Name>(
    update: &U,
    first: bool,
) -> Result<(String, serde_json::Value), ApiError> {
    let dynamic = DynamicMessage::decode(descriptor::<U>()?, update.encode_to_vec().as_slice())
        .map_err(ApiError::internal)?;
    let case = dynamic
        .descriptor()
        .oneofs()
        .next()
        .and_then(|oneof| oneof.fields().find(|field| dynamic.has_field(field)));
    match case {
        Some(field) => {
            let value = dynamic.get_field(&field);
            let Some(message) = value.as_message() else {
                return Err(ApiError::internal(crate::json::MissingMessage(
                    field.full_name().into(),
                )));
            };
            Ok((field.name().to_owned(), crate::json::dynamic_json(message)?))
        }
        None => {
            let name = if first { "snapshot" } else { "update" };
            Ok((name.to_owned(), to_json(update)?))
        }
    }
}

/// The field of `message` a query parameter names: the field itself, or for a repeated
/// field its singular (`category` for `categories`, `status` for `statuses`).
fn field_named(message: &MessageDescriptor, name: &str) -> Option<FieldDescriptor> {
    message.get_field_by_name(name).or_else(|| {
        message.fields().find(|field| {
            field.is_list()
                && (field.name() == format!("{name}s")
                    || field.name() == format!("{name}es")
                    || name
                        .strip_suffix('y')
                        .is_some_and(|stem| field.name() == format!("{stem}ies")))
        })
    })
}

/// The request message a query string asks for. Each parameter sets the field of its
/// name (a repeated field takes the parameter again for each value, under its own name
/// or its singular); enums take their value names with or without the enum's prefix
/// (`MODERATE` or `BED_CATEGORY_MODERATE`); `min_versions` takes `stream:version` pairs
/// separated by commas, as commands return them. Paging is for reads only, not streams.
/// Every invalid parameter is named, in the order given, with what the view itself
/// finds wrong with the values.
pub(crate) fn request<V: ViewQuery>(
    params: &[(String, String)],
    stream: bool,
) -> Result<V::Request, ApiError> {
    let descriptor = descriptor::<V::Request>()?;
    let mut message = DynamicMessage::new(descriptor.clone());
    // Each violation with the index of the parameter it is about.
    let mut found: Vec<(usize, String, String)> = Vec::new();
    let mut fields_of: HashMap<String, usize> = HashMap::new();
    let mut oneofs: HashMap<String, String> = HashMap::new();
    for (index, (key, value)) in params.iter().enumerate() {
        let field = field_named(&descriptor, key).filter(|field| {
            !(stream && matches!(field.name(), "page_size" | "page_token" | "as_of"))
        });
        let Some(field) = field else {
            found.push((index, key.clone(), "is not a parameter of this view".into()));
            continue;
        };
        fields_of.entry(field.name().to_owned()).or_insert(index);
        if let Some(oneof) = field.containing_oneof()
            && let Some(other) = oneofs.insert(oneof.name().to_owned(), key.clone())
        {
            let names: Vec<String> = oneof.fields().map(|f| f.name().to_owned()).collect();
            found.push((
                index,
                other,
                format!("name exactly one of {}", names.join(" or ")),
            ));
            continue;
        }
        match parse(&field, value) {
            Ok(values) => set(&mut message, &field, values),
            Err(description) => found.push((index, key.clone(), description)),
        }
    }
    let request =
        V::Request::decode(message.encode_to_vec().as_slice()).map_err(ApiError::internal)?;
    // What the view refuses in the values, at the parameter of the field.
    for violation in V::violations(&request).iter() {
        let top = violation
            .field
            .split(['.', '['])
            .next()
            .unwrap_or_default()
            .to_owned();
        let index = fields_of.get(&top).copied().unwrap_or(params.len());
        let key = params.get(index).map_or(top, |(key, _)| key.clone());
        if !found.iter().any(|(i, k, _)| *i == index && *k == key) {
            found.push((index, key, violation.description.clone()));
        }
    }
    if found.is_empty() {
        return Ok(request);
    }
    found.sort_by_key(|(index, ..)| *index);
    let mut violations = Violations::new();
    for (_, field, description) in found {
        violations.add(field, description);
    }
    Err(ApiError::Invalid(violations))
}

/// Sets (or, for a repeated field, extends) `field` with `values`.
fn set(message: &mut DynamicMessage, field: &FieldDescriptor, values: Vec<Value>) {
    if field.is_list() {
        if let Some(list) = message.get_field_mut(field).as_list_mut() {
            list.extend(values);
        }
    } else if let Some(value) = values.into_iter().next_back() {
        message.set_field(field, value);
    }
}

/// The values of one parameter for `field`.
fn parse(field: &FieldDescriptor, value: &str) -> Result<Vec<Value>, String> {
    let whole = || format!("{value:?} is not a whole number");
    Ok(vec![match field.kind() {
        Kind::String => Value::String(value.to_owned()),
        Kind::Bool => Value::Bool(
            value
                .parse()
                .map_err(|_| format!("{value:?} is not true or false"))?,
        ),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(value.parse().map_err(|_| whole())?),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(value.parse().map_err(|_| whole())?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(value.parse().map_err(|_| whole())?)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(value.parse().map_err(|_| whole())?)
        }
        Kind::Enum(e) => {
            let prefix = format!("{}_", screaming(e.name()));
            let number = e
                .values()
                .filter(|v| v.number() != 0)
                .find(|v| v.name() == value || v.name().strip_prefix(&prefix) == Some(value))
                .map(|v| v.number())
                .ok_or_else(|| format!("unknown {} value {value:?}", screaming(e.name())))?;
            Value::EnumNumber(number)
        }
        Kind::Message(m) if m.full_name() == MIN_VERSIONS => {
            return min_versions(&m, value).map(|versions| vec![versions]);
        }
        Kind::Message(m) if m.full_name() == AS_OF => return as_of(&m, value).map(|v| vec![v]),
        _ => return Err("cannot be given in a query string".into()),
    }])
}

/// `stream:version` pairs separated by commas, as a `MinVersions` message.
fn min_versions(message: &MessageDescriptor, value: &str) -> Result<Value, String> {
    let mut versions = noroshi_proto::v1::MinVersions::default();
    for pair in value.split(',').filter(|pair| !pair.is_empty()) {
        let parsed = pair.rsplit_once(':').and_then(|(stream, version)| {
            Some((StreamId::parse(stream).ok()?, version.parse::<u64>().ok()?))
        });
        let Some((stream, version)) = parsed else {
            return Err(format!("{pair:?} is not <stream_id>:<version>"));
        };
        versions.streams.push(noroshi_proto::v1::StreamVersion {
            stream_id: stream.to_string(),
            version,
            position: 0,
        });
    }
    DynamicMessage::decode(message.clone(), versions.encode_to_vec().as_slice())
        .map(Value::Message)
        .map_err(|e| e.to_string())
}

/// A time (RFC 3339, with its offset: `2026-12-07T03:00:00+09:00`) or a position of the
/// log (digits), as an `AsOf` message.
fn as_of(message: &MessageDescriptor, value: &str) -> Result<Value, String> {
    use noroshi_proto::v1::{AsOf, as_of::Point};
    let point = if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        Point::Position(
            value
                .parse()
                .map_err(|_| format!("{value:?} is not a position of the log"))?,
        )
    } else {
        let time = time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
            .map_err(|_| {
                format!(
                    "{value:?} is neither a time with its offset (2026-12-07T03:00:00+09:00) nor a position"
                )
            })?;
        Point::Time(noroshi_codec::timestamps::to_timestamp(time))
    };
    let as_of = AsOf { point: Some(point) };
    DynamicMessage::decode(message.clone(), as_of.encode_to_vec().as_slice())
        .map(Value::Message)
        .map_err(|e| e.to_string())
}

/// `BedCategory` as `BED_CATEGORY`, the prefix of its value names.
fn screaming(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The view's paths and messages in the OpenAPI document: its parameters from its
/// request message, its answer and its events typed by their messages.
pub(crate) fn describe<V: ViewQuery>(document: &mut Document) -> Result<(), ApiError> {
    let request = descriptor::<V::Request>()?;
    let response = document.message::<V::Response>()?;
    let update = descriptor::<V::Update>()?;
    let events: serde_json::Map<String, serde_json::Value> = match update.oneofs().next() {
        Some(oneof) => oneof
            .fields()
            .filter_map(|field| match field.kind() {
                Kind::Message(m) => Some((field.name().to_owned(), document.message_ref(m))),
                _ => None,
            })
            .collect(),
        None => [
            ("snapshot".to_owned(), response.clone()),
            ("update".to_owned(), response.clone()),
        ]
        .into_iter()
        .collect(),
    };
    let parameters = |stream: bool| -> Vec<serde_json::Value> {
        request
            .fields()
            .filter(|field| {
                !(stream && matches!(field.name(), "page_size" | "page_token" | "as_of"))
            })
            .map(|field| document_parameter(&field))
            .collect()
    };
    let mut responses = Document::errors();
    responses["200"] = json!({
        "description": format!("the {} view (docs/views.md), as canonical protobuf JSON", V::NAME),
        "content": {"application/json": {"schema": response}},
    });
    document.path(
        &format!("/api/v1/views/{}", V::NAME),
        json!({"get": {"operationId": format!("get_{}", V::NAME), "tags": ["views"],
            "security": [{"bearer": []}], "parameters": parameters(false), "responses": responses}}),
    );
    let mut responses = Document::errors();
    let names: Vec<&String> = events.keys().collect();
    responses["200"] = json!({
        "description": format!(
            "Server-Sent Events named {}, each with its message as JSON data (x-events); `error` if a read fails, and the stream goes on",
            names.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ")
        ),
        "content": {"text/event-stream": {"schema": {"type": "string", "x-events": events}}},
    });
    document.path(
        &format!("/api/v1/views/{}/stream", V::NAME),
        json!({"get": {"operationId": format!("watch_{}", V::NAME), "tags": ["views"],
            "security": [{"bearer": []}], "parameters": parameters(true), "responses": responses}}),
    );
    Ok(())
}

/// A request field as a query parameter.
fn document_parameter(field: &FieldDescriptor) -> serde_json::Value {
    let single = match field.kind() {
        Kind::Message(m) if m.full_name() == MIN_VERSIONS => {
            return json!({
                "name": field.name(), "in": "query", "required": false,
                "description": "stream:version pairs, comma-separated, as commands return them: wait (bounded) until the view has applied them",
                "schema": {"type": "string"},
            });
        }
        Kind::Message(m) if m.full_name() == AS_OF => {
            return json!({
                "name": field.name(), "in": "query", "required": false,
                "description": "read the view as of a past moment: an RFC 3339 time with its offset (2026-12-07T03:00:00+09:00) or a position of the event log; the answer's headers noroshi-as-of-position and noroshi-as-of-time say which (HQ; health centers and facilities for their own data; not for streams)",
                "schema": {"type": "string"},
            });
        }
        Kind::Enum(e) => json!({
            "type": "string",
            "enum": e.values().filter(|v| v.number() != 0).map(|v| v.name().to_owned()).collect::<Vec<_>>(),
            "description": format!("also without the prefix {}_", screaming(e.name())),
        }),
        Kind::Uint32 | Kind::Uint64 | Kind::Int32 | Kind::Int64 => json!({"type": "integer"}),
        Kind::Bool => json!({"type": "boolean"}),
        _ => json!({"type": "string"}),
    };
    let (schema, description) = if field.is_list() {
        (
            json!({"type": "array", "items": single}),
            "repeat the parameter for each value (its singular name is accepted too)",
        )
    } else if field.containing_oneof().is_some() {
        (single, "one of the subject's fields, exactly")
    } else {
        (single, "")
    };
    json!({"name": field.name(), "in": "query", "required": false, "explode": true,
        "description": description, "schema": schema})
}
