//! Conversions between the protobuf wire types and the domain, at the edge (DESIGN.md §3).

pub(crate) mod enums;
pub mod events;
pub(crate) mod fields;
