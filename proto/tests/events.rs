#![allow(clippy::unwrap_used, clippy::expect_used)]

//! The stored form of events: type names and byte round trips.

use noroshi_proto::v1::{
    BedCategory, CapacityDeclared, CategoryCapacity, EventEnvelope, PlacementAccepted,
};
use noroshi_proto::{FILE_DESCRIPTOR_SET, Message, Name};

#[test]
fn event_type_is_the_protobuf_full_name() {
    assert_eq!(CapacityDeclared::full_name(), "noroshi.v1.CapacityDeclared");
    assert_eq!(
        PlacementAccepted::full_name(),
        "noroshi.v1.PlacementAccepted"
    );
}

#[test]
fn capacity_declared_round_trips_through_bytes() {
    let event = CapacityDeclared {
        facility_id: "hofu-central".into(),
        categories: vec![CategoryCapacity {
            category: BedCategory::Moderate as i32,
            secured: 20,
            ready: 12,
            occupied: 9,
        }],
        declared_at: Some(prost_types::Timestamp {
            seconds: 1_764_000_000,
            nanos: 0,
        }),
        proxy: None,
    };
    let bytes = event.encode_to_vec();
    let decoded = CapacityDeclared::decode(bytes.as_slice()).unwrap();
    assert_eq!(decoded, event);
}

#[test]
fn descriptor_set_describes_every_event_file() {
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).unwrap();
    let names: Vec<_> = set.file.iter().map(|f| f.name().to_owned()).collect();
    for expected in [
        "noroshi/v1/envelope.proto",
        "noroshi/v1/facility_events.proto",
        "noroshi/v1/case_events.proto",
        "noroshi/v1/placement_events.proto",
    ] {
        assert!(names.iter().any(|n| n == expected), "missing {expected}");
    }
    // An envelope's unknown-free encoding survives decoding.
    let envelope = EventEnvelope {
        event_id: "0195f7a0-0000-7000-8000-000000000001".into(),
        version: 3,
        ..Default::default()
    };
    assert_eq!(
        EventEnvelope::decode(envelope.encode_to_vec().as_slice()).unwrap(),
        envelope
    );
}
