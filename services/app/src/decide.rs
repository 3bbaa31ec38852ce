//! Which aggregates each command loads, and what it asks of them.

use noroshi_domain::authz::Principal;

use crate::command::{Command, Envelope, Outcome};
use crate::handler::CommandHandler;
use crate::{alert, case, consult, facility, placement};

impl CommandHandler {
    /// Runs `command` for `principal`: loads what it touches, authorizes it, decides it
    /// and appends its events (DESIGN.md §4–§7).
    #[tracing::instrument(
        name = "command",
        skip_all,
        fields(
            command_id = %envelope.command_id,
            correlation_id = %envelope.command_id,
            actor = %principal.principal_id,
            addressed = command.addressed(),
            stream_id = tracing::field::Empty,
        )
    )]
    pub async fn execute(
        &self,
        principal: &Principal,
        envelope: Envelope,
        command: Command,
    ) -> Outcome {
        let outcome = execute(self, principal, envelope, command).await;
        let span = tracing::Span::current();
        match &outcome {
            Ok(Ok(recorded)) => {
                if let Some(first) = recorded.first() {
                    span.record("stream_id", tracing::field::display(&first.stream_id));
                }
                tracing::debug!(replayed = recorded.replayed, "command recorded");
            }
            Ok(Err(refusal)) => tracing::debug!(refusal = %refusal, "command refused"),
            Err(error) => tracing::warn!(error = %error, "command not recorded"),
        }
        outcome
    }
}

async fn execute(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    command: Command,
) -> Outcome {
    let addressed = command.addressed();
    match command {
        Command::Facility {
            facility_id,
            command,
        } => {
            facility::run(
                handler,
                principal,
                envelope,
                addressed,
                facility_id,
                command,
            )
            .await
        }
        Command::ReportCase(report) => {
            case::report(handler, principal, envelope, addressed, report).await
        }
        Command::Case { case_id, command } => {
            case::run(handler, principal, envelope, addressed, case_id, command).await
        }
        Command::RequestPlacement {
            case_id,
            category,
            needs,
            note,
        } => {
            let request = noroshi_domain::placement::RequestPlacement {
                requested_by: principal.organisation_id.clone(),
                category,
                needs,
                note,
            };
            placement::request(handler, principal, envelope, addressed, case_id, request).await
        }
        Command::Placement {
            placement_id,
            command,
        } => {
            placement::run(
                handler,
                principal,
                envelope,
                addressed,
                placement_id,
                command,
            )
            .await
        }
        Command::RequestConsult(ask) => {
            consult::request(handler, principal, envelope, addressed, ask).await
        }
        Command::Consult {
            consult_id,
            command,
        } => consult::run(handler, principal, envelope, addressed, consult_id, command).await,
        Command::AcknowledgeAlert { alert_id, note } => {
            alert::acknowledge(handler, principal, envelope, addressed, alert_id, note).await
        }
        Command::SetAlertRule(rule) => {
            alert::set_rule(handler, principal, envelope, addressed, rule).await
        }
    }
}
