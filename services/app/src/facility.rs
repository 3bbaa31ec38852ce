//! Facility commands: registration (ADMIN), profile, capacity and acceptance.

use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::facility::{Facility, FacilityCommand};
use noroshi_domain::values::FacilityId;

use crate::command::{Envelope, Outcome};
use crate::handler::{Changes, CommandHandler, FacilityRef, Needs};

fn action(command: &FacilityCommand) -> Action {
    match command {
        FacilityCommand::Register(_) => Action::RegisterFacility,
        FacilityCommand::Update(_) => Action::UpdateFacility,
        FacilityCommand::DeclareCapacity { .. } => Action::DeclareCapacity,
        FacilityCommand::SetAcceptance { .. } => Action::SetAcceptance,
    }
}

/// Authorizes the command on the facility and decides it.
pub(crate) async fn run(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    facility_id: FacilityId,
    command: FacilityCommand,
) -> Outcome {
    let needs = Needs {
        facility: Some(FacilityRef::Id(facility_id)),
        ..Needs::default()
    };
    let action = action(&command);
    let creates = matches!(command, FacilityCommand::Register(_));
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let Some((facility_id, facility)) = s.facility() else {
                return Err(noroshi_domain::DomainError::NotFound("facility".into()).into());
            };
            let target = Target {
                facility: Some(facility_id),
                ..Target::UNKNOWN
            };
            s.authorize(action, creates || facility.exists(), &target, "facility")?;
            let events = facility.decide(command.clone(), s.now)?;
            Changes::default().add::<Facility>(facility_id.as_str(), events)
        })
        .await
}
