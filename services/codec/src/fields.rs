//! What the event codecs share: encoding a message, and decoding a stored field with the
//! domain's own parsers, each error named by its field.

use bytes::Bytes;
use noroshi_proto::Message;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::enums::WireEnum;
use crate::timestamps::from_timestamp;

pub(crate) fn message<M: Message + prost::Name>(message: M) -> (String, Bytes) {
    (M::full_name(), Bytes::from(message.encode_to_vec()))
}

pub(crate) fn opt_string<T: ToString>(value: Option<&T>) -> String {
    value.map(ToString::to_string).unwrap_or_default()
}

/// Decoding one stored message; errors are plain descriptions, wrapped by [`crate::decode`].
pub(crate) type Decoded<T> = Result<T, String>;

pub(crate) fn field<T, E: std::fmt::Display>(name: &str, parsed: Result<T, E>) -> Decoded<T> {
    parsed.map_err(|e| format!("{name}: {e}"))
}

pub(crate) fn opt_field<T, E: std::fmt::Display>(
    name: &str,
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Decoded<Option<T>> {
    if value.is_empty() {
        Ok(None)
    } else {
        field(name, parse(value)).map(Some)
    }
}

pub(crate) fn wire<T: WireEnum>(name: &str, value: i32) -> Decoded<T> {
    field(name, T::from_wire(value))
}

pub(crate) fn at(name: &str, value: Option<&prost_types::Timestamp>) -> Decoded<OffsetDateTime> {
    let ts = value.ok_or_else(|| format!("{name}: missing"))?;
    from_timestamp(ts).ok_or_else(|| format!("{name}: not a valid timestamp"))
}

pub(crate) fn id(name: &str, value: &str) -> Decoded<Uuid> {
    field(name, Uuid::try_parse(value))
}
