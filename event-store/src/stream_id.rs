//! Names of event streams and of the tenant they belong to.

use std::fmt;

use uuid::Uuid;

/// Longest aggregate type, e.g. `placement`.
const MAX_AGGREGATE_TYPE_LEN: usize = 32;
/// Longest aggregate id: a UUID is 36, a facility slug is chosen by ADMIN.
const MAX_AGGREGATE_ID_LEN: usize = 128;

/// `<aggregate_type>-<aggregate_id>`, e.g. `facility-hofu-central` or `case-0195…`.
///
/// The type is lowercase ASCII (`[a-z][a-z0-9_]*`), the id is `[A-Za-z0-9_-]+`. Both become
/// tokens of a NATS subject, so neither may hold `.`, `*`, `>` or whitespace; the database
/// checks the same rule again.
#[derive(Debug, Clone)]
pub struct StreamId {
    value: String,
    /// Byte index of the `-` that ends the aggregate type.
    split: usize,
    /// The aggregate id as a UUID, when it is one (cases and placements), parsed once:
    /// projections look it up for every event they apply.
    uuid: Option<Uuid>,
}

// Equality, order and hash are those of the text; the rest follows from it.
impl PartialEq for StreamId {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for StreamId {}

impl PartialOrd for StreamId {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for StreamId {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.value.cmp(&other.value)
    }
}

impl std::hash::Hash for StreamId {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.value.hash(state);
    }
}

/// Why a string is not a [`StreamId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidStreamId {
    #[error("stream id must be <aggregate_type>-<aggregate_id>")]
    MissingSeparator,
    #[error(
        "aggregate type must match [a-z][a-z0-9_]* and be at most {MAX_AGGREGATE_TYPE_LEN} bytes"
    )]
    AggregateType,
    #[error("aggregate id must match [A-Za-z0-9_-]+ and be at most {MAX_AGGREGATE_ID_LEN} bytes")]
    AggregateId,
}

impl StreamId {
    pub fn parse(value: &str) -> Result<Self, InvalidStreamId> {
        let split = value.find('-').ok_or(InvalidStreamId::MissingSeparator)?;
        let (aggregate_type, aggregate_id) = (&value[..split], &value[split + 1..]);
        Self::check_type(aggregate_type)?;
        Self::check_id(aggregate_id)?;
        Ok(Self {
            value: value.to_owned(),
            split,
            uuid: Uuid::try_parse(aggregate_id).ok(),
        })
    }

    /// Builds `<aggregate_type>-<aggregate_id>` from its parts.
    pub fn new(aggregate_type: &str, aggregate_id: &str) -> Result<Self, InvalidStreamId> {
        Self::check_type(aggregate_type)?;
        Self::check_id(aggregate_id)?;
        Ok(Self {
            value: format!("{aggregate_type}-{aggregate_id}"),
            split: aggregate_type.len(),
            uuid: Uuid::try_parse(aggregate_id).ok(),
        })
    }

    fn check_type(aggregate_type: &str) -> Result<(), InvalidStreamId> {
        let mut bytes = aggregate_type.bytes();
        let first_ok = bytes.next().is_some_and(|b| b.is_ascii_lowercase());
        let rest_ok = bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if first_ok && rest_ok && aggregate_type.len() <= MAX_AGGREGATE_TYPE_LEN {
            Ok(())
        } else {
            Err(InvalidStreamId::AggregateType)
        }
    }

    fn check_id(aggregate_id: &str) -> Result<(), InvalidStreamId> {
        let valid = !aggregate_id.is_empty()
            && aggregate_id.len() <= MAX_AGGREGATE_ID_LEN
            && aggregate_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if valid {
            Ok(())
        } else {
            Err(InvalidStreamId::AggregateId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    pub fn aggregate_type(&self) -> &str {
        &self.value[..self.split]
    }

    pub fn aggregate_id(&self) -> &str {
        &self.value[self.split + 1..]
    }

    /// The aggregate id as a UUID, when it is one.
    pub fn aggregate_uuid(&self) -> Option<Uuid> {
        self.uuid
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

/// JIS X 0401 prefecture code, `01` (Hokkaido) to `47` (Okinawa); Yamaguchi is `35`.
///
/// Each prefecture is a tenant: its own event-store database and its own subjects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefecture(u8);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("prefecture must be a JIS X 0401 code from 01 to 47")]
pub struct InvalidPrefecture;

impl Prefecture {
    /// Yamaguchi (35), the prefecture of the demo set and the default deployment.
    pub const YAMAGUCHI: Self = Self(35);

    pub fn parse(code: &str) -> Result<Self, InvalidPrefecture> {
        if code.len() != 2 {
            return Err(InvalidPrefecture);
        }
        let number: u8 = code.parse().map_err(|_| InvalidPrefecture)?;
        if (1..=47).contains(&number) {
            Ok(Self(number))
        } else {
            Err(InvalidPrefecture)
        }
    }

    pub fn code(self) -> String {
        format!("{:02}", self.0)
    }
}

impl fmt::Display for Prefecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_the_first_hyphen() {
        let id = StreamId::parse("facility-hofu-central").unwrap();
        assert_eq!(id.aggregate_type(), "facility");
        assert_eq!(id.aggregate_id(), "hofu-central");
        assert_eq!(StreamId::new("facility", "hofu-central").unwrap(), id);
        assert_eq!(id.aggregate_uuid(), None);
        let case = StreamId::parse("case-0195f0a1-7c3e-7d2a-9b1c-3f4e5d6c7b8a").unwrap();
        assert_eq!(
            case.aggregate_uuid().map(|u| u.to_string()).as_deref(),
            Some("0195f0a1-7c3e-7d2a-9b1c-3f4e5d6c7b8a")
        );
        assert_eq!(StreamId::new("case", case.aggregate_id()).unwrap(), case);
    }

    #[test]
    fn rejects_ids_that_cannot_be_subject_tokens() {
        for bad in [
            "", "case", "-x", "Case-1", "case-", "case-a.b", "case-a b", "case-*", "case->",
        ] {
            assert!(StreamId::parse(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("case-{}", "a".repeat(129));
        assert_eq!(StreamId::parse(&long), Err(InvalidStreamId::AggregateId));
    }

    #[test]
    fn prefecture_codes() {
        assert_eq!(Prefecture::parse("35").unwrap().code(), "35");
        assert_eq!(Prefecture::parse("01").unwrap().to_string(), "01");
        for bad in ["0", "00", "48", "3a", "035", ""] {
            assert!(Prefecture::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}
