//! Imports (DESIGN.md §11): every row of a file is the command it stands for, under a
//! command id derived from what the row names, so that importing a file again adds
//! nothing and a dry run decides every row without appending.

use noroshi_domain::DomainError;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::case::CaseReport;
use noroshi_domain::facility::{CategoryFigures, FacilityCommand, ProxyEntry};
use noroshi_domain::values::{FacilityId, Reason};
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
    outcome(
        handler
            .execute(principal, envelope, Command::ReportCase(report))
            .await?,
    )
}

/// What a row's command came to.
fn outcome(decided: Result<crate::command::Recorded, Refusal>) -> Result<RowOutcome, CommandError> {
    Ok(match decided {
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
    })
}

/// Why HQ's imported figures were entered on a facility's behalf.
const PROXY_REASON: &str = "ファイルからの取り込み (file import)";

/// `DeclareCapacity` for a row of a capacity file: by the facility itself, or by HQ on
/// its behalf. A row whose figures are those in force already is `Present` (importing a
/// file again adds nothing); anyone but HQ naming another facility is refused before its
/// figures are looked at.
pub async fn declare_capacity(
    handler: &CommandHandler,
    principal: &Principal,
    facility_id: FacilityId,
    figures: CategoryFigures,
    dry_run: bool,
) -> Result<RowOutcome, CommandError> {
    let proxy = match principal.role {
        Role::Hq => Some(ProxyEntry {
            entered_by: principal.organisation_id.clone(),
            reason: Reason::parse(PROXY_REASON).map_err(CommandError::internal)?,
        }),
        _ if principal.organisation_id != facility_id => {
            return outcome(Err(Refusal::Denied));
        }
        _ => None,
    };
    let (facility, _) = handler.facility(&facility_id).await?;
    if let Some(beds) = facility.beds.get(&figures.category)
        && beds.declared_at.is_some()
        && (beds.secured, beds.ready, beds.occupied)
            == (figures.secured, figures.ready, figures.occupied)
    {
        return Ok(RowOutcome::Present);
    }
    let envelope = Envelope {
        command_id: Uuid::now_v7(),
        expected_version: None,
        request_digest: None,
        dry_run,
    };
    let command = Command::Facility {
        facility_id,
        command: FacilityCommand::DeclareCapacity {
            categories: vec![figures],
            proxy,
        },
    };
    outcome(handler.execute(principal, envelope, command).await?)
}
