//! Case commands, issued by the health center that owns the case.

use noroshi_domain::DomainError;
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::case::{self as rules, Case, CaseCommand, CaseReport, Observation};
use noroshi_domain::values::ExternalRef;
use uuid::Uuid;

use crate::command::{CommandError, Envelope, Outcome};
use crate::handler::{CaseRef, Changes, CommandHandler, FacilityRef, Needs, Stop};

/// Namespace of case ids derived from `(health center, external_ref)`.
const CASE_REF_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_6361_7365_7265);

/// The case id: derived from the external reference when there is one, so that the
/// same patient reported twice by one health center is refused as ALREADY_EXISTS.
pub fn case_id_for(health_center: &str, external_ref: Option<&ExternalRef>) -> Uuid {
    match external_ref {
        Some(reference) => Uuid::new_v5(
            &CASE_REF_NAMESPACE,
            format!("{health_center}/{reference}").as_bytes(),
        ),
        None => Uuid::now_v7(),
    }
}

fn action(command: &CaseCommand) -> Action {
    match command {
        CaseCommand::Triage { .. } => Action::TriageCase,
        CaseCommand::OverridePriority { .. } => Action::OverridePriority,
        CaseCommand::RecordObservation(_) => Action::RecordObservation,
        CaseCommand::StartHomeCare { .. } => Action::StartHomeCare,
        CaseCommand::AssignCareSite { .. } => Action::AssignCareSite,
        CaseCommand::Close { .. } => Action::CloseCase,
    }
}

pub(crate) async fn report(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    report: CaseReport,
) -> Outcome {
    let case_id = case_id_for(
        report.health_center_id.as_str(),
        report.external_ref.as_ref(),
    );
    let needs = Needs {
        case: Some(CaseRef::Id(case_id)),
        facility: Some(FacilityRef::Principal),
        ..Needs::default()
    };
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let target = Target {
                case_owner: Some(&report.health_center_id),
                ..Target::UNKNOWN
            };
            s.authorize(Action::ReportCase, true, &target, "case")?;
            let (Some((_, reporter)), Some((_, case))) = (s.facility(), s.case()) else {
                return Err(Stop::Failed(CommandError::internal(Unresolved(
                    "the reporter or the case",
                ))));
            };
            let events = rules::report(case, reporter, report.clone(), s.now)?;
            Changes::default().add::<Case>(&case_id.to_string(), events)
        })
        .await
}

/// Runs `command` on the case.
pub(crate) async fn run(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    case_id: Uuid,
    command: CaseCommand,
) -> Outcome {
    let needs = Needs {
        case: Some(CaseRef::Id(case_id)),
        // The care site a case is put in the care of, whose kind the rules check.
        facility: match &command {
            CaseCommand::AssignCareSite {
                care_site: Some(site),
                ..
            } => Some(FacilityRef::Id(site.clone())),
            _ => None,
        },
        ..Needs::default()
    };
    let action = action(&command);
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let Some((_, case)) = s.case() else {
                return Err(DomainError::NotFound("case".into()).into());
            };
            let record = case.record.as_ref();
            let target = record.map(Target::of_case).unwrap_or(Target::UNKNOWN);
            s.authorize(action, record.is_some(), &target, "case")?;
            let command = match command.clone() {
                // Recorded by whoever is with the patient (DESIGN.md §5.4).
                CaseCommand::RecordObservation(observation) => {
                    CaseCommand::RecordObservation(Observation {
                        recorded_by: Some(s.principal.organisation_id.clone()),
                        ..observation
                    })
                }
                CaseCommand::AssignCareSite { note, .. } => {
                    let events = case.assign_care_site(s.facility(), note)?;
                    return Changes::default().add::<Case>(&case_id.to_string(), events);
                }
                command => command,
            };
            let events = case.decide(command, s.now)?;
            Changes::default().add::<Case>(&case_id.to_string(), events)
        })
        .await
}

/// A command's needs resolved to nothing, which `Needs` rules out.
#[derive(Debug, thiserror::Error)]
#[error("{0} was not loaded")]
struct Unresolved(&'static str);
