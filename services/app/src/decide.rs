//! Which aggregates each command loads, and what it asks of them.

use noroshi_domain::authz::Principal;

use crate::command::{Command, Envelope, Outcome};
use crate::handler::CommandHandler;
use crate::{case, facility, placement};

pub(crate) async fn execute(
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
    }
}
