//! The noroshi APIs: tonic gRPC command and query services, the axum HTTP/JSON mirror
//! under `/api/v1`, Server-Sent Events and the web UI. Conversions between protobuf and
//! domain types live here, at the edge.
//!
//! Populated by the command-API and view work; the crate exists now so the workspace
//! has its final shape.
