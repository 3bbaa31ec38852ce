//! Parsing request fields into domain values, collecting every violation with the
//! field's path in the request.

use std::collections::BTreeSet;

use noroshi_domain::Violations;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use noroshi_codec::WireEnum;
use noroshi_codec::timestamps::from_timestamp;

/// Parses the mandatory idempotency key.
pub(crate) fn command_id(value: &str, violations: &mut Violations) -> Option<Uuid> {
    if value.is_empty() {
        violations.add("command_id", "is required (a UUID chosen by the client)");
        return None;
    }
    uuid(value, "command_id", violations)
}

/// Parses a mandatory UUID field.
pub(crate) fn uuid(value: &str, field: &str, violations: &mut Violations) -> Option<Uuid> {
    if value.is_empty() {
        violations.add(field, "is required");
        return None;
    }
    match Uuid::try_parse(value) {
        Ok(id) if !id.is_nil() => Some(id),
        _ => {
            violations.add(field, "must be a UUID");
            None
        }
    }
}

pub(crate) fn enum_value<T: WireEnum>(
    value: i32,
    field: &str,
    violations: &mut Violations,
) -> Option<T> {
    violations.check(field, T::from_wire(value))
}

/// A set of enum values; a repeated value is allowed and counted once.
pub(crate) fn enum_set<T: WireEnum>(
    values: &[i32],
    field: &str,
    violations: &mut Violations,
) -> BTreeSet<T> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| enum_value(v, &format!("{field}[{i}]"), violations))
        .collect()
}

/// An optional text field: empty means absent.
pub(crate) fn optional<T, E: std::fmt::Display>(
    value: &str,
    field: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
    violations: &mut Violations,
) -> Option<T> {
    if value.trim().is_empty() {
        None
    } else {
        violations.check(field, parse(value))
    }
}

pub(crate) fn timestamp(
    value: &prost_types::Timestamp,
    field: &str,
    violations: &mut Violations,
) -> Option<OffsetDateTime> {
    let parsed = from_timestamp(value);
    if parsed.is_none() {
        violations.add(field, "is not a valid timestamp");
    }
    parsed
}

/// Finishes parsing: the value when every field was valid, else every violation.
pub(crate) fn finish<T>(violations: Violations, value: Option<T>) -> Result<T, ApiError> {
    match value {
        Some(value) if violations.is_empty() => Ok(value),
        _ if violations.is_empty() => Err(ApiError::internal(MissingValue)),
        _ => Err(ApiError::Invalid(violations)),
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a request parsed without violations yielded no value")]
struct MissingValue;
