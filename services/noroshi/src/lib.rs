//! noroshi as a library: the composition root ([`application`]) that `noroshi serve`,
//! `noroshi dev`, the tests and the benchmarks share, and the commands of the binary
//! (each a function of its parsed arguments), so that `main` only parses and calls.

pub mod admin;
pub mod application;
pub mod apply;
pub mod cli;
pub mod dev;
pub mod drill;
pub mod error;
pub mod import;
pub mod read_models;
pub mod rebuild;
pub mod report;
pub mod serve;
pub mod telemetry;

pub use application::{Application, Component, Config};
pub use error::ServeError;
