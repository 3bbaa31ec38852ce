//! `CaseService` commands, issued by the health center that owns the case.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Action, Principal, Target};
use noroshi_domain::case::{self as rules, Case, CaseCommand, CaseReport, Observation, Patient};
use noroshi_domain::values::{
    ExternalRef, MunicipalityCode, Name, Phone, Priority, Reason, Spo2, Temperature, Text,
};
use noroshi_proto::v1 as pb;
use time::Date;
use time::macros::format_description;
use uuid::Uuid;

use crate::commands::{CaseRef, Changes, CommandHandler, CommandMeta, FacilityRef, Needs};
use crate::convert::fields::{command_id, enum_set, enum_value, finish, optional, timestamp, uuid};
use crate::error::ApiError;

/// Namespace of case ids derived from `(health center, external_ref)`.
const CASE_REF_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_6361_7365_7265);

fn meta(command_id: Uuid, expected_version: Option<u64>) -> CommandMeta {
    CommandMeta {
        command_id,
        expected_version,
        addressed: "case",
    }
}

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

pub async fn report(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::ReportCaseRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let external_ref = optional(&r.external_ref, "external_ref", ExternalRef::parse, &mut v);
    let patient = match &r.patient {
        None => {
            v.add("patient", "is required");
            None
        }
        Some(p) => {
            let name = v.check("patient.name", Name::parse(&p.name));
            let name_kana = optional(&p.name_kana, "patient.name_kana", Name::parse, &mut v);
            let birth_date = v.check(
                "patient.birth_date",
                Date::parse(&p.birth_date, format_description!("[year]-[month]-[day]"))
                    .map_err(|_| "must be a date, YYYY-MM-DD"),
            );
            let sex = enum_value(p.sex, "patient.sex", &mut v);
            let phone = optional(&p.phone, "patient.phone", Phone::parse, &mut v);
            let address = v.check("patient.address", Text::parse(&p.address));
            (|| {
                Some(Patient {
                    name: name?,
                    name_kana,
                    birth_date: birth_date?,
                    sex: sex?,
                    phone,
                    address: address?,
                })
            })()
        }
    };
    let municipality = v.check("municipality", MunicipalityCode::parse(&r.municipality));
    let risk_factors = enum_set(&r.risk_factors, "risk_factors", &mut v);
    let severity = enum_value(r.severity, "severity", &mut v);
    let needs = enum_set(&r.needs, "needs", &mut v);
    let health_center_id = principal.organisation_id.clone();
    let parsed = (|| {
        Some((
            id?,
            CaseReport {
                health_center_id: health_center_id.clone(),
                external_ref,
                patient: patient?,
                municipality: municipality?,
                risk_factors,
                severity: severity?,
                needs,
            },
        ))
    })();
    let (id, case_report) = finish(v, parsed)?;
    let case_id = case_id_for(health_center_id.as_str(), case_report.external_ref.as_ref());
    let needs = Needs {
        case: Some(CaseRef::Id(case_id)),
        facility: Some(FacilityRef::Principal),
        ..Needs::default()
    };
    handler
        .execute(principal, meta(id, r.expected_version), &needs, |s| {
            let target = Target {
                case_owner: Some(&health_center_id),
                ..Target::UNKNOWN
            };
            s.authorize(Action::ReportCase, true, &target, "case")?;
            let (Some((_, reporter)), Some((_, case))) = (s.facility(), s.case()) else {
                return Err(ApiError::internal(Unresolved("the reporter or the case")));
            };
            let events = rules::report(case, reporter, case_report.clone(), s.now)?;
            Changes::default().add::<Case>(&case_id.to_string(), events)
        })
        .await
}

/// Runs `command` on the case for `action`.
async fn on_case(
    handler: &CommandHandler,
    principal: &Principal,
    action: Action,
    case_id: Uuid,
    meta: CommandMeta,
    command: CaseCommand,
) -> Result<pb::CommandResult, ApiError> {
    let needs = Needs {
        case: Some(CaseRef::Id(case_id)),
        ..Needs::default()
    };
    handler
        .execute(principal, meta, &needs, |s| {
            let Some((_, case)) = s.case() else {
                return Err(ApiError::NotFound("case".into()));
            };
            let record = case.record.as_ref();
            let target = Target {
                case_owner: record.map(|r| &r.report.health_center_id),
                ..Target::UNKNOWN
            };
            s.authorize(action, record.is_some(), &target, "case")?;
            let events = case.decide(command.clone(), s.now)?;
            Changes::default().add::<Case>(&case_id.to_string(), events)
        })
        .await
}

pub async fn triage(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::TriageCaseRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let severity = enum_value(r.severity, "severity", &mut v);
    let risk_factors = enum_set(&r.risk_factors, "risk_factors", &mut v);
    let needs = enum_set(&r.needs, "needs", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, severity, note) = finish(v, (|| Some((id?, case_id?, severity?, note?)))())?;
    let command = CaseCommand::Triage {
        severity,
        risk_factors,
        needs,
        note,
    };
    on_case(
        handler,
        principal,
        Action::TriageCase,
        case_id,
        meta(id, r.expected_version),
        command,
    )
    .await
}

pub async fn override_priority(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::OverridePriorityRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let priority = v.check("priority", Priority::new(r.priority));
    let reason = v.check("reason", Reason::parse(&r.reason));
    let (id, case_id, priority, reason) =
        finish(v, (|| Some((id?, case_id?, priority?, reason?)))())?;
    let command = CaseCommand::OverridePriority { priority, reason };
    on_case(
        handler,
        principal,
        Action::OverridePriority,
        case_id,
        meta(id, r.expected_version),
        command,
    )
    .await
}

pub async fn record_observation(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::RecordObservationRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let observed_at = match &r.observed_at {
        Some(at) => timestamp(at, "observed_at", &mut v),
        None => Some(handler.now()),
    };
    let temperature = match r.temperature_decicelsius {
        0 => None,
        t => v.check("temperature_decicelsius", Temperature::from_decicelsius(t)),
    };
    let spo2 = match r.spo2_percent {
        0 => None,
        s => v.check("spo2_percent", Spo2::new(s)),
    };
    let symptoms: Vec<Name> = r
        .symptoms
        .iter()
        .enumerate()
        .filter_map(|(i, s)| v.check(format!("symptoms[{i}]"), Name::parse(s)))
        .collect();
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, observed_at, note) =
        finish(v, (|| Some((id?, case_id?, observed_at?, note?)))())?;
    let command = CaseCommand::RecordObservation(Observation {
        observed_at,
        temperature,
        spo2,
        on_oxygen: r.on_oxygen,
        symptoms,
        note,
    });
    on_case(
        handler,
        principal,
        Action::RecordObservation,
        case_id,
        meta(id, r.expected_version),
        command,
    )
    .await
}

pub async fn start_home_care(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::StartHomeCareRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, note) = finish(v, (|| Some((id?, case_id?, note?)))())?;
    on_case(
        handler,
        principal,
        Action::StartHomeCare,
        case_id,
        meta(id, r.expected_version),
        CaseCommand::StartHomeCare { note },
    )
    .await
}

pub async fn close(
    handler: &CommandHandler,
    principal: &Principal,
    r: pb::CloseCaseRequest,
) -> Result<pb::CommandResult, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let outcome = enum_value(r.outcome, "outcome", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, outcome, note) = finish(v, (|| Some((id?, case_id?, outcome?, note?)))())?;
    on_case(
        handler,
        principal,
        Action::CloseCase,
        case_id,
        meta(id, r.expected_version),
        CaseCommand::Close { outcome, note },
    )
    .await
}

/// A command's needs resolved to nothing, which `Needs` rules out.
#[derive(Debug, thiserror::Error)]
#[error("{0} was not loaded")]
struct Unresolved(&'static str);
