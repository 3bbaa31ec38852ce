//! Which streams a principal may follow (wait for with `min_versions`, or read a case's
//! observations from): the rule is the domain's ([`authz::may_follow`]); this loads the
//! facts it looks at.

use noroshi_domain::authz::{self, Followed, Principal};
use noroshi_domain::streams;
use noroshi_event_store::StreamId;

use crate::command::CommandError;
use crate::handler::CommandHandler;

impl CommandHandler {
    /// Whether `principal` may follow `stream`. An unknown stream is not followed, so
    /// the answer says nothing about what exists.
    pub async fn may_follow(
        &self,
        principal: &Principal,
        stream: &StreamId,
    ) -> Result<bool, CommandError> {
        let id = stream.aggregate_id();
        Ok(match stream.aggregate_type() {
            streams::FACILITY => authz::may_follow(principal, Followed::Facility(id)),
            streams::CASE => {
                let case = self.current(&self.cases, id).await?;
                authz::may_follow(principal, Followed::Case(case.state.record.as_ref()))
            }
            streams::PLACEMENT => {
                let placement = self.current(&self.placements, id).await?;
                let Some(record) = placement.state.record.as_ref() else {
                    return Ok(false);
                };
                let case = self
                    .current(&self.cases, &record.case_id.to_string())
                    .await?;
                authz::may_follow(
                    principal,
                    Followed::Placement(Some((record, case.state.record.as_ref()))),
                )
            }
            streams::CONSULT => {
                let consult = self.current(&self.consults, id).await?;
                authz::may_follow(principal, Followed::Consult(consult.state.record.as_ref()))
            }
            streams::ALERT => {
                let alert = self.current(&self.alerts, id).await?;
                authz::may_follow(principal, Followed::Alert(alert.state.record.as_ref()))
            }
            streams::ALERT_RULES => authz::may_follow(principal, Followed::AlertRules),
            _ => false,
        })
    }
}
