//! Imports (DESIGN.md §11): every row of a file is the command it stands for, under a
//! command id derived from what the row names, so that importing a file again adds
//! nothing and a dry run decides every row without appending.

use noroshi_domain::DomainError;
use noroshi_domain::authz::Principal;
use noroshi_domain::case::CaseReport;
use uuid::Uuid;

use crate::command::{Command, CommandError, Envelope, Refusal};
use crate::handler::CommandHandler;

/// What became of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome {
    /// Recorded now (or, in a dry run, would be).
    Created,
    /// Recorded before: by an earlier import of the row, or by hand.
    Present,
    /// Refused: each reason's field (or the refusal's code) and what is wrong.
    Refused(Vec<(String, String)>),
}

/// The command id of importing a health center's case `external_ref`.
pub fn case_command_id(health_center: &str, external_ref: &str) -> Uuid {
    Uuid::new_v5(
        &Uuid::NAMESPACE_URL,
        format!("noroshi:import:case:{health_center}:{external_ref}").as_bytes(),
    )
}

/// `ReportCase` for a row of a case file, by `principal` (its health center).
pub async fn report_case(
    handler: &CommandHandler,
    principal: &Principal,
    report: CaseReport,
    dry_run: bool,
) -> Result<RowOutcome, CommandError> {
    let Some(external_ref) = report.external_ref.as_ref() else {
        return Ok(RowOutcome::Refused(vec![(
            "external_ref".into(),
            "is required to import a case".into(),
        )]));
    };
    let envelope = Envelope {
        command_id: case_command_id(report.health_center_id.as_str(), external_ref.as_str()),
        expected_version: None,
        request_digest: None,
        dry_run,
    };
    Ok(
        match handler
            .execute(principal, envelope, Command::ReportCase(report))
            .await?
        {
            Ok(recorded) if recorded.replayed => RowOutcome::Present,
            Ok(_) => RowOutcome::Created,
            Err(Refusal::Rule(DomainError::AlreadyExists(_))) => RowOutcome::Present,
            Err(Refusal::Rule(DomainError::Invalid(violations))) => RowOutcome::Refused(
                violations
                    .iter()
                    .map(|v| (v.field.clone(), v.description.clone()))
                    .collect(),
            ),
            Err(refusal) => RowOutcome::Refused(vec![(
                refusal.code().as_str().to_owned(),
                refusal.to_string(),
            )]),
        },
    )
}
