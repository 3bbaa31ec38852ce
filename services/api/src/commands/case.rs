//! `CaseService` requests as case commands.

use noroshi_app::Command;
use noroshi_domain::Violations;
use noroshi_domain::authz::Principal;
use noroshi_domain::case::{CaseCommand, CaseReport, Observation, Patient};
use noroshi_domain::values::{
    ExternalRef, FacilityId, MunicipalityCode, Name, Phone, Priority, Reason, Spo2, Temperature,
    Text,
};
use noroshi_proto::v1 as pb;
use time::Date;
use time::macros::format_description;
use uuid::Uuid;

use super::{Parsed, envelope};
use crate::convert::fields::{command_id, enum_set, enum_value, finish, optional, timestamp, uuid};
use crate::error::ApiError;

pub fn report(principal: &Principal, r: &pb::ReportCaseRequest) -> Result<Parsed, ApiError> {
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
    Ok((
        envelope(id, r.expected_version),
        Command::ReportCase(case_report),
    ))
}

/// `command` on the case `case_id`.
fn on_case(id: Uuid, expected_version: Option<u64>, case_id: Uuid, command: CaseCommand) -> Parsed {
    (
        envelope(id, expected_version),
        Command::Case { case_id, command },
    )
}

pub fn triage(r: &pb::TriageCaseRequest) -> Result<Parsed, ApiError> {
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
    Ok(on_case(id, r.expected_version, case_id, command))
}

pub fn override_priority(r: &pb::OverridePriorityRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let priority = v.check("priority", Priority::new(r.priority));
    let reason = v.check("reason", Reason::parse(&r.reason));
    let (id, case_id, priority, reason) =
        finish(v, (|| Some((id?, case_id?, priority?, reason?)))())?;
    let command = CaseCommand::OverridePriority { priority, reason };
    Ok(on_case(id, r.expected_version, case_id, command))
}

/// An observation without `observed_at` was made `now`.
pub fn record_observation(
    r: &pb::RecordObservationRequest,
    now: time::OffsetDateTime,
) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let observed_at = match &r.observed_at {
        Some(at) => timestamp(at, "observed_at", &mut v),
        None => Some(now),
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
        recorded_by: None,
        temperature,
        spo2,
        on_oxygen: r.on_oxygen,
        symptoms,
        note,
    });
    Ok(on_case(id, r.expected_version, case_id, command))
}

pub fn start_home_care(r: &pb::StartHomeCareRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, note) = finish(v, (|| Some((id?, case_id?, note?)))())?;
    Ok(on_case(
        id,
        r.expected_version,
        case_id,
        CaseCommand::StartHomeCare { note },
    ))
}

pub fn assign_care_site(r: &pb::AssignCareSiteRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let care_site = if r.care_site_id.is_empty() {
        Some(None)
    } else {
        v.check("care_site_id", FacilityId::parse(&r.care_site_id))
            .map(Some)
    };
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, care_site, note) =
        finish(v, (|| Some((id?, case_id?, care_site?, note?)))())?;
    Ok(on_case(
        id,
        r.expected_version,
        case_id,
        CaseCommand::AssignCareSite { care_site, note },
    ))
}

pub fn close(r: &pb::CloseCaseRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let case_id = uuid(&r.case_id, "case_id", &mut v);
    let outcome = enum_value(r.outcome, "outcome", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, case_id, outcome, note) = finish(v, (|| Some((id?, case_id?, outcome?, note?)))())?;
    Ok(on_case(
        id,
        r.expected_version,
        case_id,
        CaseCommand::Close { outcome, note },
    ))
}
