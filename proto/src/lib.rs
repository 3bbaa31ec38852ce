//! The protobuf contract of noroshi: the event envelope, the domain events of every
//! aggregate and (as they arrive) the gRPC services.
//!
//! Generated at build time from `proto/noroshi/v1/*.proto` by `protox`, so building
//! needs no system `protoc`. Every message implements [`prost::Name`], whose
//! `full_name()` (e.g. `noroshi.v1.CapacityDeclared`) is the `event_type` the event
//! store records.

/// Package `noroshi.v1`.
pub mod v1 {
    #![allow(missing_docs, unreachable_pub, clippy::all)]
    include!(concat!(env!("OUT_DIR"), "/noroshi.v1.rs"));
}

/// Encoded `FileDescriptorSet` of every noroshi proto file, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/noroshi_descriptor.bin"));

pub use prost::{Message, Name};
