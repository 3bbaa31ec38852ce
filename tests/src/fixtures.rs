//! Small builders for synthetic events and appends.

use bytes::Bytes;
use noroshi_event_store::{
    AppendRequest, ExpectedVersion, NewEvent, Prefecture, StreamId, StreamWrite,
};
use time::OffsetDateTime;
use uuid::Uuid;

/// Yamaguchi, the demo prefecture.
pub fn yamaguchi() -> Prefecture {
    Prefecture::parse("35").expect("35 is a prefecture code")
}

pub fn stream(id: &str) -> StreamId {
    StreamId::parse(id).expect("valid stream id in test")
}

/// A synthetic event whose payload says which stream and sequence it was made for.
pub fn event(label: &str) -> NewEvent {
    NewEvent::new(
        "noroshi.v1.TestEvent",
        OffsetDateTime::now_utc(),
        Bytes::from(label.as_bytes().to_vec()),
    )
}

pub fn write(stream_id: &str, expected: ExpectedVersion, count: usize) -> StreamWrite {
    StreamWrite {
        stream_id: stream(stream_id),
        expected,
        events: (0..count)
            .map(|i| event(&format!("{stream_id}#{i}")))
            .collect(),
    }
}

/// An append of `streams` under a fresh command id.
pub fn append(streams: Vec<StreamWrite>) -> AppendRequest {
    AppendRequest {
        command_id: Uuid::now_v7(),
        correlation_id: Uuid::now_v7(),
        causation_id: None,
        actor: "test-actor".to_owned(),
        prefecture: yamaguchi(),
        streams,
        request_digest: None,
    }
}
