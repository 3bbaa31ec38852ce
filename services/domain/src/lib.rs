//! The domain of noroshi (DESIGN.md §5 and §7): facilities and their beds, cases, and
//! placements, as pure `decide`/`evolve` functions, plus the authorization rules.
//!
//! Nothing here does I/O, reads a clock or draws a random number: the time and every new
//! id are passed in, so each rule is tested as given events, when a command, then events
//! or an error.

pub mod alert;
pub mod authz;
pub mod case;
pub mod consult;
pub mod error;
pub mod facility;
pub mod placement;
pub mod priority;
pub mod values;

pub use error::{DomainError, ErrorCode, Violation, Violations};

/// The aggregate type of each aggregate's event streams (`facility-<id>`, `case-<id>`,
/// `placement-<id>`, `consult-<id>`, `alert-<id>`, `alertrules-prefecture`).
pub mod streams {
    pub const FACILITY: &str = "facility";
    pub const CASE: &str = "case";
    pub const PLACEMENT: &str = "placement";
    pub const CONSULT: &str = "consult";
    pub const ALERT: &str = "alert";
    pub const ALERT_RULES: &str = "alertrules";
}

/// An event of any aggregate, as decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainEvent {
    Facility(facility::FacilityEvent),
    Case(case::CaseEvent),
    Placement(placement::PlacementEvent),
    Consult(consult::ConsultEvent),
    Alert(alert::AlertEvent),
    AlertRules(alert::AlertRulesEvent),
}
