//! `FacilityService` requests as facility commands: registration (ADMIN), profile,
//! capacity and acceptance.

use std::collections::BTreeSet;

use noroshi_app::Command;
use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::facility::{
    CategoryFigures, FacilityChanges, FacilityCommand, FacilityProfile, ProxyEntry,
};
use noroshi_domain::values::{
    FacilityId, MedicalAreaCode, MunicipalityCode, Name, PrefectureCode, Reason, bed_count,
};
use noroshi_proto::v1 as pb;

use super::{Parsed, envelope};
use crate::convert::fields::{command_id, enum_set, enum_value, finish, optional};
use crate::error::ApiError;

fn facility(facility_id: FacilityId, command: FacilityCommand) -> Command {
    Command::Facility {
        facility_id,
        command,
    }
}

fn municipalities(
    values: &[String],
    field: &str,
    violations: &mut Violations,
) -> BTreeSet<MunicipalityCode> {
    values
        .iter()
        .enumerate()
        .filter_map(|(i, v)| violations.check(format!("{field}[{i}]"), MunicipalityCode::parse(v)))
        .collect()
}

/// The proxy entry of a declaration: required from HQ, refused from anyone else.
fn proxy_entry(
    principal: &Principal,
    reason: &str,
    violations: &mut Violations,
) -> Option<ProxyEntry> {
    if principal.role != Role::Hq {
        if !reason.trim().is_empty() {
            violations.add(
                "proxy_reason",
                "only HQ enters figures on behalf of a facility",
            );
        }
        return None;
    }
    violations
        .check(
            "proxy_reason",
            Reason::parse(reason)
                .map_err(|_| "is required when HQ enters figures on behalf of a facility"),
        )
        .map(|reason| ProxyEntry {
            entered_by: principal.organisation_id.clone(),
            reason,
        })
}

/// The profile fields a registration and an update share, as the request holds them.
struct Fields<'r> {
    name: &'r str,
    name_en: &'r str,
    medical_area: &'r str,
    municipality: &'r str,
    jurisdiction: &'r [String],
    capabilities: &'r [i32],
}

/// Checks the shared profile fields; `None` when one is invalid (it is then in `v`).
fn changes(f: Fields<'_>, active: bool, v: &mut Violations) -> Option<FacilityChanges> {
    let name = v.check("name", Name::parse(f.name));
    let name_en = optional(f.name_en, "name_en", Name::parse, v);
    let medical_area = optional(f.medical_area, "medical_area", MedicalAreaCode::parse, v);
    let municipality = v.check("municipality", MunicipalityCode::parse(f.municipality));
    let jurisdiction = municipalities(f.jurisdiction, "jurisdiction", v);
    let capabilities = enum_set(f.capabilities, "capabilities", v);
    Some(FacilityChanges {
        name: name?,
        name_en,
        medical_area,
        municipality: municipality?,
        jurisdiction,
        capabilities,
        active,
    })
}

/// A `RegisterFacilityRequest`: the profile it registers.
pub fn register(r: &pb::RegisterFacilityRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let kind = enum_value(r.kind, "kind", &mut v);
    let prefecture = v.check("prefecture", PrefectureCode::parse(&r.prefecture));
    let changes = changes(
        Fields {
            name: &r.name,
            name_en: &r.name_en,
            medical_area: &r.medical_area,
            municipality: &r.municipality,
            jurisdiction: &r.jurisdiction,
            capabilities: &r.capabilities,
        },
        true,
        &mut v,
    );
    let parsed = (|| {
        let c = changes?;
        let profile = FacilityProfile {
            facility_id: facility_id?,
            name: c.name,
            name_en: c.name_en,
            kind: kind?,
            prefecture: prefecture?,
            medical_area: c.medical_area,
            municipality: c.municipality,
            jurisdiction: c.jurisdiction,
            capabilities: c.capabilities,
            active: true,
        };
        Some((
            envelope(id?, r.expected_version),
            facility(
                profile.facility_id.clone(),
                FacilityCommand::Register(profile),
            ),
        ))
    })();
    finish(v, parsed)
}

pub fn update(r: &pb::UpdateFacilityRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let changes = changes(
        Fields {
            name: &r.name,
            name_en: &r.name_en,
            medical_area: &r.medical_area,
            municipality: &r.municipality,
            jurisdiction: &r.jurisdiction,
            capabilities: &r.capabilities,
        },
        r.active,
        &mut v,
    );
    let parsed = (|| {
        Some((
            envelope(id?, r.expected_version),
            facility(facility_id?, FacilityCommand::Update(changes?)),
        ))
    })();
    finish(v, parsed)
}

pub fn declare_capacity(
    principal: &Principal,
    r: &pb::DeclareCapacityRequest,
) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let mut categories = Vec::with_capacity(r.categories.len());
    for (i, c) in r.categories.iter().enumerate() {
        let category = enum_value(c.category, &format!("categories[{i}].category"), &mut v);
        let secured = v.check(format!("categories[{i}].secured"), bed_count(c.secured));
        let ready = v.check(format!("categories[{i}].ready"), bed_count(c.ready));
        let occupied = v.check(format!("categories[{i}].occupied"), bed_count(c.occupied));
        if let (Some(category), Some(secured), Some(ready), Some(occupied)) =
            (category, secured, ready, occupied)
        {
            categories.push(CategoryFigures {
                category,
                secured,
                ready,
                occupied,
            });
        }
    }
    let proxy = proxy_entry(principal, &r.proxy_reason, &mut v);
    let (id, facility_id) = finish(v, id.zip(facility_id))?;
    let command = FacilityCommand::DeclareCapacity { categories, proxy };
    Ok((
        envelope(id, r.expected_version),
        facility(facility_id, command),
    ))
}

pub fn set_acceptance(
    principal: &Principal,
    r: &pb::SetAcceptanceRequest,
) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let facility_id = v.check("facility_id", FacilityId::parse(&r.facility_id));
    let category = enum_value(r.category, "category", &mut v);
    let acceptance = enum_value(r.acceptance, "acceptance", &mut v);
    let constraints = enum_set(&r.constraints, "constraints", &mut v);
    let proxy = proxy_entry(principal, &r.proxy_reason, &mut v);
    let parsed = (|| Some((id?, facility_id?, category?, acceptance?)))();
    let (id, facility_id, category, acceptance) = finish(v, parsed)?;
    let command = FacilityCommand::SetAcceptance {
        category,
        acceptance,
        constraints,
        proxy,
    };
    Ok((
        envelope(id, r.expected_version),
        facility(facility_id, command),
    ))
}
