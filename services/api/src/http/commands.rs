//! The commands over HTTP: `POST /api/v1/commands/<Rpc>` with the gRPC request message
//! as JSON (the canonical protobuf JSON mapping; field names as in the `.proto` or in
//! lowerCamelCase), answered with the same `CommandResult` and the same error model.
//! The body is decoded against the protobuf schema itself, so the two APIs cannot drift.

use std::sync::LazyLock;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use noroshi_domain::Violations;
use noroshi_proto::v1 as pb;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use super::HttpContext;
use super::identity::Authed;
use crate::error::ApiError;
use noroshi_identity::{Caller, Scope};

/// The protobuf schema, for decoding JSON bodies and encoding answers.
static SCHEMA: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(noroshi_proto::FILE_DESCRIPTOR_SET));

/// The protobuf schema.
pub(super) fn schema() -> Result<&'static DescriptorPool, ApiError> {
    SCHEMA.as_ref().map_err(ApiError::internal)
}

/// The schema of message `T`.
fn descriptor<T: prost::Name>() -> Result<prost_reflect::MessageDescriptor, ApiError> {
    schema()?
        .get_message_by_name(&T::full_name())
        .ok_or_else(|| ApiError::internal(MissingMessage(T::full_name())))
}

/// Decodes a JSON body into the request message `T`. A malformed body is
/// `INVALID_ARGUMENT` naming the offending field (its JSON path).
fn from_json<T: Message + prost::Name + Default>(body: &[u8]) -> Result<T, ApiError> {
    let descriptor = descriptor::<T>()?;
    let mut json = serde_json::Deserializer::from_slice(body);
    let mut track = serde_path_to_error::Track::new();
    let decoded = DynamicMessage::deserialize(
        descriptor,
        serde_path_to_error::Deserializer::new(&mut json, &mut track),
    )
    .and_then(|message| json.end().map(|()| message));
    let message = decoded.map_err(|error| {
        ApiError::Invalid(Violations::one(
            field_of(track.path().to_string()),
            format!("malformed JSON: {error}"),
        ))
    })?;
    T::decode(message.encode_to_vec().as_slice()).map_err(ApiError::internal)
}

/// `message` as canonical protobuf JSON, with the `.proto` field names as the views use,
/// and 64-bit integers as numbers.
fn to_json<T: Message + prost::Name>(message: &T) -> Result<serde_json::Value, ApiError> {
    let descriptor = descriptor::<T>()?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(ApiError::internal)?;
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(ApiError::internal)
}

/// The field a JSON path names: serde_path_to_error says `.` for the top level and `?`
/// before it knows one, which are the whole body.
pub(super) fn field_of(path: String) -> String {
    if matches!(path.as_str(), "" | "." | "?") {
        "body".to_owned()
    } else {
        path
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the schema has no message {0}")]
pub(super) struct MissingMessage(pub(super) String);

macro_rules! http_commands {
    ($($name:literal => $scope:ident => $request:ty;)+) => {
        /// Every command served at `/api/v1/commands/<name>`, with the name of its request
        /// message in package `noroshi.v1`.
        pub const COMMANDS: &[(&str, &str)] = &[$(($name, <$request as prost::Name>::NAME)),+];

        async fn dispatch(
            context: &HttpContext,
            caller: &Caller,
            name: &str,
            body: &[u8],
        ) -> Result<pb::CommandResult, ApiError> {
            match name {
                $($name => {
                    let principal = caller.scoped(Scope::$scope)?;
                    let request: $request = from_json(body)?;
                    crate::commands::execute(&context.handler, principal, &request).await
                })+
                _ => Err(ApiError::invalid(
                    "command",
                    format!("unknown command {name:?}; see /api/v1/openapi.json"),
                )),
            }
        }
    };
}

http_commands! {
    "RegisterFacility" => Facilities => pb::RegisterFacilityRequest;
    "UpdateFacility" => Facilities => pb::UpdateFacilityRequest;
    "DeclareCapacity" => Facilities => pb::DeclareCapacityRequest;
    "SetAcceptance" => Facilities => pb::SetAcceptanceRequest;
    "ReportCase" => Cases => pb::ReportCaseRequest;
    "TriageCase" => Cases => pb::TriageCaseRequest;
    "OverridePriority" => Cases => pb::OverridePriorityRequest;
    "RecordObservation" => Cases => pb::RecordObservationRequest;
    "StartHomeCare" => Cases => pb::StartHomeCareRequest;
    "CloseCase" => Cases => pb::CloseCaseRequest;
    "RequestPlacement" => Placements => pb::RequestPlacementRequest;
    "OfferPlacement" => Placements => pb::OfferPlacementRequest;
    "AcceptPlacement" => Placements => pb::AcceptPlacementRequest;
    "DeclinePlacement" => Placements => pb::DeclinePlacementRequest;
    "ArrangeTransport" => Placements => pb::ArrangeTransportRequest;
    "RecordDeparture" => Placements => pb::RecordDepartureRequest;
    "RecordArrival" => Placements => pb::RecordArrivalRequest;
    "CancelPlacement" => Placements => pb::CancelPlacementRequest;
    "RecordDischarge" => Placements => pb::RecordDischargeRequest;
}

/// `POST /api/v1/commands/{name}`: authenticate, read at most the configured number of
/// bytes, decode, run the command as gRPC runs it.
pub(super) async fn command(
    State(context): State<HttpContext>,
    Path(name): Path<String>,
    Authed(caller): Authed,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = context.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::ResourceExhausted(format!("the request body is over {limit} bytes"))
    })?;
    let result = dispatch(&context, &caller, &name, &body).await?;
    Ok(Json(to_json(&result)?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_decode_by_the_schema_and_name_the_bad_field() {
        let request: pb::AcceptPlacementRequest =
            from_json(br#"{"command_id": "c1", "placementId": "p1", "override_capacity": true}"#)
                .unwrap();
        assert_eq!(request.command_id, "c1");
        assert_eq!(request.placement_id, "p1");
        assert!(request.override_capacity);

        let field = |body: &[u8]| match from_json::<pb::DeclareCapacityRequest>(body) {
            Err(ApiError::Invalid(v)) => v.iter().next().map(|v| v.field.clone()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(br#"{"categories": [{"secured": "many"}]}"#).as_deref(),
            Some("categories[0].secured")
        );
        assert_eq!(
            field(br#"{"facility_id": 7}"#).as_deref(),
            Some("facility_id")
        );
        assert_eq!(field(b"{not json").as_deref(), Some("body"));
        assert_eq!(
            field(br#"{"facility_id": "x"} trailing"#).as_deref(),
            Some("body")
        );
    }

    #[test]
    fn results_encode_with_proto_names_and_numbers() {
        let json = to_json(&pb::CommandResult {
            command_id: "c".into(),
            stream_id: "case-x".into(),
            version: 3,
            position: 42,
            streams: vec![],
            replayed: false,
        })
        .unwrap();
        assert_eq!(json["stream_id"], "case-x");
        assert_eq!(json["version"], 3);
        assert_eq!(json["replayed"], false);
    }
}
