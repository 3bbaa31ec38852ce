//! `google.protobuf.Timestamp` ⇄ [`OffsetDateTime`].

use time::OffsetDateTime;

/// A protobuf timestamp as a time, `None` when it is out of range or its nanos are not
/// within one second.
pub fn from_timestamp(value: &prost_types::Timestamp) -> Option<OffsetDateTime> {
    if !(0..1_000_000_000).contains(&value.nanos) {
        return None;
    }
    let nanos = i128::from(value.seconds) * 1_000_000_000 + i128::from(value.nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

pub fn to_timestamp(at: OffsetDateTime) -> prost_types::Timestamp {
    let nanos = at.unix_timestamp_nanos();
    prost_types::Timestamp {
        seconds: i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX),
        nanos: i32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    }
}
