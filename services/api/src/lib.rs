//! The API of noroshi: command handling over the event store, and the gRPC front end
//! (DESIGN.md §8). Conversions between protobuf and domain types live here, at the edge.

pub mod admin;
pub mod commands;
pub mod convert;
pub mod error;
pub mod grpc;
pub mod http;
pub mod json;
pub mod metrics;
pub mod views;
pub mod web;

pub use error::ApiError;
