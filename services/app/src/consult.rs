//! Consult commands (DESIGN.md §5.5). Each loads the consult and its case (whose owner and
//! stay the access rules look at); a request or the end of a consult also appends to the
//! case, an escalation to a new placement's stream and its case.

use noroshi_domain::DomainError;
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::case::Case;
use noroshi_domain::consult::{
    self as rules, Consult, ConsultCommand, ConsultDecision, ConsultRequest,
};
use noroshi_domain::placement::Placement;
use uuid::Uuid;

use crate::command::{ConsultAsk, Envelope, Outcome};
use crate::handler::{CaseRef, Changes, CommandHandler, Needs, Stop};

fn changes(consult_id: Uuid, case_id: Uuid, decision: ConsultDecision) -> Result<Changes, Stop> {
    let mut changes =
        Changes::default().add::<Consult>(&consult_id.to_string(), decision.consult)?;
    if let Some((placement_id, placement)) = decision.placement {
        changes = changes
            .add::<Placement>(&placement_id.to_string(), placement.placement)?
            .add::<Case>(&case_id.to_string(), placement.case)?;
    }
    changes.add::<Case>(&case_id.to_string(), decision.case)
}

/// `RequestConsult` by the principal's organisation.
pub(crate) async fn request(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    ask: ConsultAsk,
) -> Outcome {
    let consult_id = Uuid::now_v7();
    let case_id = ask.case_id;
    let needs = Needs {
        consult: Some(consult_id),
        case: Some(CaseRef::Id(case_id)),
        ..Needs::default()
    };
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let (Some((_, consult)), Some((_, case))) = (s.consult(), s.case()) else {
                return Err(DomainError::NotFound("case".into()).into());
            };
            let record = case.record.as_ref();
            let target = record.map(Target::of_case).unwrap_or(Target::UNKNOWN);
            s.authorize(Action::RequestConsult, record.is_some(), &target, "case")?;
            let request = ConsultRequest {
                case_id,
                requested_by: s.principal.organisation_id.clone(),
                mode: ask.mode,
                urgency: ask.urgency,
                question: ask.question.clone(),
                preferred_from: ask.preferred_from,
                preferred_until: ask.preferred_until,
                contact: ask.contact.clone(),
                center: ask.center.clone(),
            };
            let decision = rules::request(consult, consult_id, case, request, s.now)?;
            changes(consult_id, case_id, decision)
        })
        .await
}

fn action(command: &ConsultCommand) -> Action {
    match command {
        ConsultCommand::Schedule { .. } => Action::ScheduleConsult,
        ConsultCommand::Start
        | ConsultCommand::Complete { .. }
        | ConsultCommand::MarkMissed { .. } => Action::ConductConsult,
        ConsultCommand::Cancel { .. } => Action::CancelConsult,
        ConsultCommand::Escalate { .. } => Action::EscalateConsult,
    }
}

/// Runs a step of a consult.
pub(crate) async fn run(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    consult_id: Uuid,
    command: ConsultCommand,
) -> Outcome {
    let escalation = matches!(command, ConsultCommand::Escalate { .. }).then(Uuid::now_v7);
    let needs = Needs {
        consult: Some(consult_id),
        case: Some(CaseRef::OfConsult),
        placement: escalation,
        ..Needs::default()
    };
    let action = action(&command);
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let Some((_, consult)) = s.consult() else {
                return Err(DomainError::NotFound("consult".into()).into());
            };
            let Some(record) = consult.record.as_ref() else {
                s.authorize(action, false, &Target::UNKNOWN, "consult")?;
                return Err(DomainError::NotFound("consult".into()).into());
            };
            let case = s.case().map(|(_, c)| c);
            s.authorize(
                action,
                true,
                &Target::of_consult(record, case.and_then(|c| c.record.as_ref())),
                "consult",
            )?;
            let case = case.ok_or_else(|| {
                Stop::from(DomainError::precondition("the consult's case is missing"))
            })?;
            let decision = consult.decide(
                consult_id,
                &s.principal.organisation_id,
                command.clone(),
                case,
                escalation.unwrap_or_else(Uuid::nil),
                s.now,
            )?;
            changes(consult_id, record.request.case_id, decision)
        })
        .await
}
