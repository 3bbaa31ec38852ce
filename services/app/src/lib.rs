//! The application layer of noroshi (DESIGN.md §3): command handling over the event
//! store, and the timers.
//!
//! It takes domain commands ([`Command`]) and returns domain outcomes ([`Outcome`]):
//! load the aggregates a command touches, authorize it with the domain's rules, decide,
//! append every resulting event in one transaction, retry on conflicts, cache the
//! states. No transport type (protobuf, HTTP, gRPC) reaches it.

pub mod alert;
mod cache;
pub mod case;
pub mod command;
mod consult;
mod decide;
mod facility;
mod handler;
pub mod import;
pub mod placement;
pub mod placement_log;
pub mod report;
pub mod scheduler;
pub mod timers;
mod visibility;

pub use command::{
    Command, CommandError, ConsultAsk, Envelope, Outcome, PlacementCommand, Recorded, Refusal,
    StreamVersion,
};
pub use handler::{Clock, CommandHandler, CommandSettings, system_clock};
