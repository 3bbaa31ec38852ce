//! Protobuf messages as JSON: the canonical protobuf JSON mapping, decoded and encoded
//! against the protobuf schema itself, so that HTTP/JSON and gRPC cannot drift. Field
//! names are those of the `.proto` (lowerCamelCase is accepted on input), enums are
//! their value names, 64-bit integers are numbers, and fields without presence are
//! written even when they hold their default.

use std::sync::LazyLock;

use noroshi_domain::Violations;
use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

use crate::error::ApiError;

/// The protobuf schema, for decoding JSON bodies and encoding answers.
static SCHEMA: LazyLock<Result<DescriptorPool, prost_reflect::DescriptorError>> =
    LazyLock::new(|| DescriptorPool::decode(noroshi_proto::FILE_DESCRIPTOR_SET));

/// The protobuf schema.
pub fn schema() -> Result<&'static DescriptorPool, ApiError> {
    SCHEMA.as_ref().map_err(ApiError::internal)
}

/// The schema of message `T`.
pub(crate) fn descriptor<T: prost::Name>() -> Result<prost_reflect::MessageDescriptor, ApiError> {
    schema()?
        .get_message_by_name(&T::full_name())
        .ok_or_else(|| ApiError::internal(MissingMessage(T::full_name())))
}

/// Decodes a JSON body into the request message `T`. A malformed body is
/// `INVALID_ARGUMENT` naming the offending field (its JSON path).
pub(crate) fn from_json<T: Message + prost::Name + Default>(body: &[u8]) -> Result<T, ApiError> {
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

/// `message` as canonical protobuf JSON.
pub(crate) fn to_json<T: Message + prost::Name>(
    message: &T,
) -> Result<serde_json::Value, ApiError> {
    let descriptor = descriptor::<T>()?;
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .map_err(ApiError::internal)?;
    dynamic_json(&dynamic)
}

/// A message of the schema as canonical protobuf JSON, with the `.proto` field names,
/// 64-bit integers as numbers, and every field without presence written.
pub(crate) fn dynamic_json(message: &DynamicMessage) -> Result<serde_json::Value, ApiError> {
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .stringify_64_bit_integers(false)
        .skip_default_fields(false);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(ApiError::internal)
}

/// The field a JSON path names: serde_path_to_error says `.` for the top level and `?`
/// before it knows one, which are the whole body.
pub(crate) fn field_of(path: String) -> String {
    if matches!(path.as_str(), "" | "." | "?") {
        "body".to_owned()
    } else {
        path
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the schema has no message {0}")]
pub(crate) struct MissingMessage(pub(crate) String);

#[cfg(test)]
mod tests {
    use noroshi_proto::v1 as pb;

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
