//! The transports of noroshi (DESIGN.md §8): the gRPC services, HTTP/JSON and
//! Server-Sent Events, the web UI and its assets, request metrics, and the one mapping
//! of error kinds to codes and statuses. Protobuf requests are parsed into the domain's
//! commands here, at the edge; nothing below this crate sees a transport type.

pub mod auth;
pub mod commands;
pub mod convert;
mod cookies;
pub mod error;
pub mod grpc;
pub mod http;
pub mod json;
pub mod listener;
pub mod metrics;
mod openapi;
pub mod reports;
pub mod state;
pub mod views;
pub mod web;
pub mod webhooks;

pub use error::ApiError;
