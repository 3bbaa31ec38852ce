//! What the time-driven components share: the principal they act as, and how often the
//! scheduler ([`crate::scheduler`]) looks for offers whose deadline passed.

use std::time::Duration;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, PrincipalId};

use crate::command::CommandError;

#[derive(Debug, Clone, Copy)]
pub struct TimerSettings {
    /// Time between looks for offers whose deadline passed.
    pub poll_interval: Duration,
}

impl Default for TimerSettings {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
        }
    }
}

/// The principal the scheduler acts as.
pub fn system_principal() -> Result<Principal, CommandError> {
    Ok(Principal {
        principal_id: PrincipalId::parse("system:timers").map_err(CommandError::internal)?,
        organisation_id: FacilityId::parse("system").map_err(CommandError::internal)?,
        role: Role::Hq,
    })
}
