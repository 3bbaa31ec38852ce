//! The one translation between noroshi's protobuf schema and its domain (DESIGN.md §3):
//! stored event payloads to domain events and back ([`events`]), the protobuf enums to
//! the domain's ([`enums`]), and timestamps ([`timestamps`]).
//!
//! Every reader of the log (command handling, projections, rebuilds, timers) decodes
//! through [`events::decode`], so a payload has one meaning wherever it is read.

pub mod alert;
mod consult;
pub mod enums;
pub mod events;
mod fields;
pub mod timestamps;

pub use enums::WireEnum;
pub use events::{CorruptEvent, decode, encode};
