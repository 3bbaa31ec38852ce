//! How an event travels on NATS: its subject and its metadata headers.
//!
//! The message body is the protobuf payload, unchanged. Every metadata field of
//! [`RecordedEvent`] is a header, so a consumer can rebuild the stored event exactly
//! with [`decode_event`] without touching PostgreSQL.

use async_nats::HeaderMap;
use async_nats::header::{HeaderName, NATS_MESSAGE_ID};
use bytes::Bytes;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::event::RecordedEvent;
use crate::stream_id::{Prefecture, StreamId};

pub const STREAM_ID: &str = "Noroshi-Stream-Id";
pub const VERSION: &str = "Noroshi-Version";
pub const POSITION: &str = "Noroshi-Position";
pub const EVENT_TYPE: &str = "Noroshi-Event-Type";
pub const SCHEMA_VERSION: &str = "Noroshi-Schema-Version";
pub const OCCURRED_AT: &str = "Noroshi-Occurred-At";
pub const RECORDED_AT: &str = "Noroshi-Recorded-At";
pub const COMMAND_ID: &str = "Noroshi-Command-Id";
pub const CORRELATION_ID: &str = "Noroshi-Correlation-Id";
pub const CAUSATION_ID: &str = "Noroshi-Causation-Id";
pub const ACTOR: &str = "Noroshi-Actor";
/// The identity of the store that published the event (its `store_identity`).
pub const STORE: &str = "Noroshi-Store";
pub const PREFECTURE: &str = "Noroshi-Prefecture";

/// A dot-separated NATS subject prefix such as `noroshi` or `drill.noroshi`, which lets
/// several deployments (production, a drill) share one NATS system without mixing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectPrefix(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("subject prefix must be dot-separated tokens of [A-Za-z0-9_-]")]
pub struct InvalidSubjectPrefix;

impl SubjectPrefix {
    pub fn parse(prefix: &str) -> Result<Self, InvalidSubjectPrefix> {
        let valid = prefix.split('.').all(|token| {
            !token.is_empty()
                && token
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        if valid {
            Ok(Self(prefix.to_owned()))
        } else {
            Err(InvalidSubjectPrefix)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `<prefix>.<prefecture>.events.<aggregate_type>.<aggregate_id>`.
    pub fn event_subject(&self, prefecture: Prefecture, stream_id: &StreamId) -> String {
        format!(
            "{}.{}.events.{}.{}",
            self.0,
            prefecture,
            stream_id.aggregate_type(),
            stream_id.aggregate_id()
        )
    }

    /// Every event subject of every prefecture under this prefix.
    pub fn all_events_filter(&self) -> String {
        format!("{}.*.events.>", self.0)
    }
}

/// The headers that carry `event`'s metadata; `Nats-Msg-Id` is the event id, so
/// JetStream drops a republished event inside its duplicate window.
pub fn event_headers(event: &RecordedEvent) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_MESSAGE_ID, event.event_id.to_string().as_str());
    let mut put = |name: &'static str, value: &str| {
        headers.insert(HeaderName::from_static(name), value);
    };
    put(STREAM_ID, event.stream_id.as_str());
    put(VERSION, &event.version.to_string());
    put(POSITION, &event.position.to_string());
    put(EVENT_TYPE, &event.event_type);
    put(SCHEMA_VERSION, &event.schema_version.to_string());
    put(OCCURRED_AT, &rfc3339(event.occurred_at));
    put(RECORDED_AT, &rfc3339(event.recorded_at));
    put(COMMAND_ID, &event.command_id.to_string());
    put(CORRELATION_ID, &event.correlation_id.to_string());
    if let Some(causation_id) = event.causation_id {
        put(CAUSATION_ID, &causation_id.to_string());
    }
    put(ACTOR, &event.actor);
    put(PREFECTURE, event.prefecture.code().as_str());
    headers
}

fn rfc3339(at: OffsetDateTime) -> String {
    // Formatting a UTC OffsetDateTime as RFC 3339 fails only for years outside 0..=9999.
    at.format(&Rfc3339)
        .unwrap_or_else(|_| at.unix_timestamp().to_string())
}

/// The store a message names as its publisher, if it names one (messages published
/// before stores were named carry none).
pub fn publishing_store(headers: &HeaderMap) -> Option<&str> {
    find(headers, STORE)
}

/// A message on an event subject that is not a well-formed noroshi event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed event message: header {header} is missing or invalid")]
pub struct MalformedEvent {
    pub header: &'static str,
}

/// A header's value. Looked up by a static name: a name made from a `&str` would be
/// checked and copied for every lookup of every message.
fn find<'a>(headers: &'a HeaderMap, header: &'static str) -> Option<&'a str> {
    headers
        .get(HeaderName::from_static(header))
        .map(|value| value.as_str())
}

fn get<'a>(headers: &'a HeaderMap, header: &'static str) -> Result<&'a str, MalformedEvent> {
    find(headers, header).ok_or(MalformedEvent { header })
}

fn parse<T: std::str::FromStr>(
    headers: &HeaderMap,
    header: &'static str,
) -> Result<T, MalformedEvent> {
    get(headers, header)?
        .parse()
        .map_err(|_| MalformedEvent { header })
}

/// The aggregate type of the event a message carries, and its store position: enough for
/// a consumer to pass over an event of a stream it does not read without decoding it.
pub fn event_source(headers: &HeaderMap) -> Result<(&str, u64), MalformedEvent> {
    let stream_id = get(headers, STREAM_ID)?;
    let (aggregate_type, _) = stream_id
        .split_once('-')
        .ok_or(MalformedEvent { header: STREAM_ID })?;
    Ok((aggregate_type, parse(headers, POSITION)?))
}

/// Rebuilds the stored event from a JetStream message's headers and body.
pub fn decode_event(headers: &HeaderMap, payload: Bytes) -> Result<RecordedEvent, MalformedEvent> {
    fn uuid(headers: &HeaderMap, header: &'static str) -> Result<Uuid, MalformedEvent> {
        Uuid::parse_str(get(headers, header)?).map_err(|_| MalformedEvent { header })
    }
    fn instant(
        headers: &HeaderMap,
        header: &'static str,
    ) -> Result<OffsetDateTime, MalformedEvent> {
        OffsetDateTime::parse(get(headers, header)?, &Rfc3339)
            .map_err(|_| MalformedEvent { header })
    }
    let message_id: &'static str = "Nats-Msg-Id";
    Ok(RecordedEvent {
        event_id: uuid(headers, message_id)?,
        stream_id: StreamId::parse(get(headers, STREAM_ID)?)
            .map_err(|_| MalformedEvent { header: STREAM_ID })?,
        version: parse(headers, VERSION)?,
        position: parse(headers, POSITION)?,
        event_type: get(headers, EVENT_TYPE)?.to_owned(),
        schema_version: parse(headers, SCHEMA_VERSION)?,
        occurred_at: instant(headers, OCCURRED_AT)?,
        recorded_at: instant(headers, RECORDED_AT)?,
        command_id: uuid(headers, COMMAND_ID)?,
        correlation_id: uuid(headers, CORRELATION_ID)?,
        causation_id: match find(headers, CAUSATION_ID) {
            Some(_) => Some(uuid(headers, CAUSATION_ID)?),
            None => None,
        },
        actor: get(headers, ACTOR)?.to_owned(),
        prefecture: Prefecture::parse(get(headers, PREFECTURE)?)
            .map_err(|_| MalformedEvent { header: PREFECTURE })?,
        payload,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_every_field() {
        let event = RecordedEvent {
            event_id: Uuid::now_v7(),
            stream_id: StreamId::parse("facility-hofu-central").unwrap(),
            version: 7,
            position: 1234,
            event_type: "noroshi.v1.CapacityDeclared".into(),
            schema_version: 2,
            occurred_at: OffsetDateTime::from_unix_timestamp_nanos(1_764_000_000_123_456_000)
                .unwrap(),
            recorded_at: OffsetDateTime::from_unix_timestamp(1_764_000_001).unwrap(),
            command_id: Uuid::now_v7(),
            correlation_id: Uuid::now_v7(),
            causation_id: Some(Uuid::now_v7()),
            actor: "hq-duty-officer".into(),
            prefecture: Prefecture::parse("35").unwrap(),
            payload: Bytes::from_static(b"\x08\x01"),
        };
        let decoded = decode_event(&event_headers(&event), event.payload.clone()).unwrap();
        assert_eq!(decoded, event);
        assert_eq!(
            event_source(&event_headers(&event)).unwrap(),
            ("facility", 1234)
        );
    }

    #[test]
    fn an_event_source_needs_a_stream_id_and_a_position() {
        let mut headers = HeaderMap::new();
        assert_eq!(event_source(&headers).unwrap_err().header, STREAM_ID);
        headers.insert(STREAM_ID, "case");
        assert_eq!(event_source(&headers).unwrap_err().header, STREAM_ID);
        headers.insert(STREAM_ID, "case-0195");
        assert_eq!(event_source(&headers).unwrap_err().header, POSITION);
        headers.insert(POSITION, "-1");
        assert_eq!(event_source(&headers).unwrap_err().header, POSITION);
        headers.insert(POSITION, "17");
        assert_eq!(event_source(&headers).unwrap(), ("case", 17));
    }

    #[test]
    fn subjects() {
        let prefix = SubjectPrefix::parse("noroshi").unwrap();
        let stream = StreamId::parse("facility-hofu-central").unwrap();
        assert_eq!(
            prefix.event_subject(Prefecture::parse("35").unwrap(), &stream),
            "noroshi.35.events.facility.hofu-central"
        );
        assert_eq!(prefix.all_events_filter(), "noroshi.*.events.>");
        for bad in ["", "a..b", "a.*", "a.>", "a b", ".a"] {
            assert!(SubjectPrefix::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn missing_header_is_named() {
        let err = decode_event(&HeaderMap::new(), Bytes::new()).unwrap_err();
        assert_eq!(err.header, "Nats-Msg-Id");
    }
}
