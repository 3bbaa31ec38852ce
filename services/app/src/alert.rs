//! Alert commands (DESIGN.md §5.6): people acknowledge alerts of their audience and HQ
//! sets the rules; the scheduler raises, escalates and resolves them as a system action
//! that needs no principal's rights, each with a command id derived from the alert and
//! the step, so that two schedulers (or one retrying) record each step once.

use noroshi_domain::DomainError;
use noroshi_domain::alert::{self as rules, Alert, AlertCommand, AlertRule, AlertRules, Raise};
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::values::Text;
use uuid::Uuid;

use crate::command::{Envelope, Outcome};
use crate::handler::{Changes, CommandHandler, Needs};

/// Namespace of the scheduler's command ids for alert steps.
const ALERT_STEP_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_616c_7374_6570);

/// The command id of the scheduler's `step` (`raise`, `escalate`, `resolve`) of an alert.
pub fn step_command_id(alert_id: Uuid, step: &str) -> Uuid {
    Uuid::new_v5(
        &ALERT_STEP_NAMESPACE,
        format!("{alert_id}/{step}").as_bytes(),
    )
}

fn by(principal: &Principal) -> rules::By<'_> {
    rules::By {
        principal: &principal.principal_id,
        organisation: &principal.organisation_id,
    }
}

/// `AcknowledgeAlert` by a principal of the alert's audience.
pub(crate) async fn acknowledge(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    alert_id: Uuid,
    note: Text,
) -> Outcome {
    let needs = Needs {
        alert: Some(alert_id),
        ..Needs::default()
    };
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            let Some((_, alert)) = s.alert() else {
                return Err(DomainError::NotFound("alert".into()).into());
            };
            let audience = alert.record.as_ref().map(rules::AlertRecord::audience);
            let target = Target {
                alert_audience: audience.as_ref(),
                ..Target::UNKNOWN
            };
            s.authorize(
                Action::AcknowledgeAlert,
                audience.is_some(),
                &target,
                "alert",
            )?;
            let events = alert.decide(
                AlertCommand::Acknowledge { note: note.clone() },
                by(s.principal),
                s.now,
            )?;
            Changes::default().add::<Alert>(&alert_id.to_string(), events)
        })
        .await
}

/// `SetAlertRule` by HQ.
pub(crate) async fn set_rule(
    handler: &CommandHandler,
    principal: &Principal,
    envelope: Envelope,
    addressed: &str,
    rule: AlertRule,
) -> Outcome {
    let needs = Needs {
        alert_rules: true,
        ..Needs::default()
    };
    handler
        .run(principal, envelope, addressed, &needs, |s| {
            s.authorize(Action::SetAlertRule, true, &Target::UNKNOWN, "alert rules")?;
            let current = s.alert_rules().cloned().unwrap_or_default();
            let events = current.set(rule.clone(), &s.principal.principal_id, s.now)?;
            Changes::default().add::<AlertRules>(rules::RULES_STREAM_ID, events)
        })
        .await
}

/// A step of the scheduler on one alert, recorded once by its derived command id.
async fn system_step(
    handler: &CommandHandler,
    system: &Principal,
    alert_id: Uuid,
    step: &str,
    command: AlertCommand,
) -> Outcome {
    let envelope = Envelope {
        command_id: step_command_id(alert_id, step),
        expected_version: None,
        request_digest: None,
        dry_run: false,
    };
    let needs = Needs {
        alert: Some(alert_id),
        ..Needs::default()
    };
    handler
        .run(
            system,
            envelope,
            noroshi_domain::streams::ALERT,
            &needs,
            |s| {
                let Some((_, alert)) = s.alert() else {
                    return Err(DomainError::NotFound("alert".into()).into());
                };
                let events = alert.decide(command.clone(), by(s.principal), s.now)?;
                Changes::default().add::<Alert>(&alert_id.to_string(), events)
            },
        )
        .await
}

/// Raises `alert`: its id derives from its kind, cause and episode.
pub async fn raise(handler: &CommandHandler, system: &Principal, alert: Raise) -> Outcome {
    let alert_id = rules::alert_id(alert.kind, &alert.cause, alert.episode);
    system_step(
        handler,
        system,
        alert_id,
        "raise",
        AlertCommand::Raise(alert),
    )
    .await
}

/// Escalates an unacknowledged CRITICAL alert to HQ.
pub async fn escalate(handler: &CommandHandler, system: &Principal, alert_id: Uuid) -> Outcome {
    system_step(
        handler,
        system,
        alert_id,
        "escalate",
        AlertCommand::Escalate,
    )
    .await
}

/// Resolves an alert whose cause went away.
pub async fn resolve(
    handler: &CommandHandler,
    system: &Principal,
    alert_id: Uuid,
    reason: Text,
) -> Outcome {
    system_step(
        handler,
        system,
        alert_id,
        "resolve",
        AlertCommand::Resolve { reason },
    )
    .await
}

/// The rules in force (the defaults where HQ set none).
pub async fn rules_in_force(
    handler: &CommandHandler,
) -> Result<AlertRules, crate::command::CommandError> {
    handler.alert_rules_now().await
}
