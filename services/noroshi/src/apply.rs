//! `noroshi admin apply`: organisations, facilities and bearer tokens from a TOML file.
//!
//! The file is declarative. Applying it registers the facilities that do not exist yet,
//! updates those whose profile differs from the file, and leaves the rest alone, so
//! applying the same file twice changes nothing. Facilities missing from the file are not
//! touched. Every change goes through the command path as the ADMIN principal, exactly as
//! a `RegisterFacility` or `UpdateFacility` call over gRPC would, and the whole file is
//! checked before the first change is written.
//!
//! ```toml
//! [[facility]]
//! facility_id = "hofu-central"
//! name = "防府中央病院"
//! name_en = "Hofu Central Hospital"
//! kind = "HOSPITAL"
//! medical_area = "3504"
//! municipality = "352063"
//! capabilities = ["OXYGEN", "VENTILATOR"]
//!
//! [[token]]
//! token = "…at least 16 characters…"
//! principal_id = "hofu-central-beds"
//! organisation_id = "hofu-central"
//! role = "HOSPITAL"
//! ```
//!
//! The `[[token]]` entries are the ones `serve` reads from `NOROSHI_TOKENS_FILE`; applying
//! checks that each names a registered organisation of a kind that fits its role.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::Path;

use noroshi_domain::authz::Principal;
use noroshi_domain::facility::FacilityProfile;
use noroshi_domain::values::{Capability, FacilityId, FacilityKind};
pub use noroshi_identity::areas::{AreaEntry, MunicipalityEntry};
use noroshi_proto::v1 as pb;
use serde::Deserialize;
use uuid::Uuid;

use noroshi_api::ApiError;
use noroshi_api::commands::facility;
use noroshi_app::CommandHandler;
use noroshi_app::{Command, Envelope};
use noroshi_codec::WireEnum;
use noroshi_domain::facility::FacilityCommand;
use noroshi_identity::tokens::{TokenEntry, Tokens};

/// Namespace of the command ids `apply` derives, so that two runs registering the same
/// facility are one command.
const COMMAND_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_692d_6164_6d69_6e2d_0001);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    #[serde(default)]
    pub facility: Vec<FacilityEntry>,
    #[serde(default)]
    pub token: Vec<TokenEntry>,
    /// Users created when missing; an existing user is never changed (nor its password).
    #[serde(default)]
    pub user: Vec<UserEntry>,
    /// The medical areas and their neighbours; the file's list replaces the stored one.
    #[serde(default)]
    pub area: Vec<AreaEntry>,
}

/// A user of the web UI. For demo and first set-up: the password is in the file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    pub username: String,
    pub display_name: String,
    pub organisation_id: String,
    pub role: String,
    pub password: String,
}

impl fmt::Debug for UserEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserEntry")
            .field("username", &self.username)
            .field("organisation_id", &self.organisation_id)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// One organisation or facility; the fields of `RegisterFacilityRequest`, with enum
/// values written as DESIGN.md names them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FacilityEntry {
    pub facility_id: String,
    pub name: String,
    #[serde(default)]
    pub name_en: String,
    pub kind: String,
    /// Defaults to the deployment's prefecture.
    #[serde(default)]
    pub prefecture: Option<String>,
    #[serde(default)]
    pub medical_area: String,
    pub municipality: String,
    #[serde(default)]
    pub jurisdiction: Vec<String>,
    #[serde(default)]
    pub capabilities: Vec<String>,
    #[serde(default = "active_by_default")]
    pub active: bool,
}

fn active_by_default() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid admin file: {0}")]
    Parse(String),
    #[error("the admin file has {} problem(s); nothing was changed:\n  {}", .0.len(), .0.join("\n  "))]
    Invalid(Vec<String>),
    #[error("facility {facility_id}")]
    Apply {
        facility_id: String,
        source: ApiError,
    },
    #[error("user {username}")]
    User { username: String, source: ApiError },
    #[error("medical areas")]
    Areas(#[source] ApiError),
}

impl AdminFile {
    pub fn load(path: &Path) -> Result<Self, AdminError> {
        let text = std::fs::read_to_string(path).map_err(|source| AdminError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Self, AdminError> {
        toml::from_str(text).map_err(|e| AdminError::Parse(e.to_string()))
    }
}

/// A file whose entries all passed their checks.
#[derive(Debug)]
pub struct Plan {
    facilities: Vec<FacilityProfile>,
    tokens: Vec<(usize, Principal)>,
}

impl Plan {
    /// Checks every entry of `file`, reporting every problem at once. `prefecture` is the
    /// deployment's, the default of entries that name none.
    pub fn check(file: &AdminFile, prefecture: &str) -> Result<Self, AdminError> {
        let mut problems = Vec::new();
        let mut facilities = Vec::with_capacity(file.facility.len());
        let mut seen = HashSet::new();
        for (index, entry) in file.facility.iter().enumerate() {
            let label = format!("facility[{index}] {:?}", entry.facility_id);
            match registration(entry, prefecture) {
                Ok(profile) => {
                    if !seen.insert(profile.facility_id.clone()) {
                        problems.push(format!("{label}: facility_id is listed twice"));
                    }
                    facilities.push(profile);
                }
                Err(reasons) => {
                    problems.extend(reasons.into_iter().map(|r| format!("{label}: {r}")))
                }
            }
        }
        let mut tokens = Vec::with_capacity(file.token.len());
        match Tokens::from_entries(&file.token) {
            Ok(checked) => {
                for (index, entry) in file.token.iter().enumerate() {
                    if let Some(principal) = checked.principal(&entry.token) {
                        tokens.push((index, principal));
                    }
                }
            }
            Err(error) => problems.push(error.to_string()),
        }
        problems.extend(area_problems(&file.area));
        problems.extend(facility_area_problems(&file.area, &facilities));
        if problems.is_empty() {
            Ok(Self { facilities, tokens })
        } else {
            Err(AdminError::Invalid(problems))
        }
    }

    /// A plan of registered profiles as they are (a drill copies production's), without
    /// tokens.
    pub fn of_facilities(facilities: Vec<FacilityProfile>) -> Self {
        Self {
            facilities,
            tokens: Vec::new(),
        }
    }

    pub fn facilities(&self) -> &[FacilityProfile] {
        &self.facilities
    }
}

/// What applying did, or would do, to one facility.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Registered,
    Updated,
    Unchanged,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Registered => "registered",
            Self::Updated => "updated",
            Self::Unchanged => "unchanged",
        })
    }
}

#[derive(Debug, Default)]
pub struct Report {
    pub facilities: Vec<(FacilityId, Outcome)>,
    pub tokens: usize,
}

impl Report {
    pub fn count(&self, outcome: Outcome) -> usize {
        self.facilities
            .iter()
            .filter(|(_, o)| *o == outcome)
            .count()
    }
}

/// Applies `plan` as `admin` (an ADMIN principal). With `dry_run`, reports what would
/// change and writes nothing.
pub async fn apply(
    handler: &CommandHandler,
    admin: &Principal,
    plan: &Plan,
    dry_run: bool,
) -> Result<Report, AdminError> {
    let store_error = |facility_id: &FacilityId| {
        let facility_id = facility_id.to_string();
        move |source| AdminError::Apply {
            facility_id,
            source,
        }
    };
    // Every check against the store comes before the first write.
    let mut changes = Vec::with_capacity(plan.facilities.len());
    let mut problems = Vec::new();
    let mut kinds = BTreeMap::new();
    for profile in &plan.facilities {
        let id = &profile.facility_id;
        let (current, version) = handler
            .facility(id)
            .await
            .map_err(|e| store_error(id)(e.into()))?;
        let change = match &current.profile {
            None => Some(Outcome::Registered),
            Some(registered) if registered.kind != profile.kind => {
                problems.push(format!(
                    "facility {id}: is registered as {}; a kind cannot change",
                    registered.kind
                ));
                None
            }
            Some(registered) if registered.prefecture != profile.prefecture => {
                problems.push(format!(
                    "facility {id}: is registered in prefecture {}; a prefecture cannot change",
                    registered.prefecture
                ));
                None
            }
            Some(registered) if registered.changes() != profile.changes() => Some(Outcome::Updated),
            Some(_) => Some(Outcome::Unchanged),
        };
        kinds.insert(id.clone(), profile.kind);
        if let Some(outcome) = change {
            changes.push((profile, outcome, version));
        }
    }
    for (index, principal) in &plan.tokens {
        let org = &principal.organisation_id;
        let kind = match kinds.get(org) {
            Some(kind) => Some(*kind),
            None => {
                let (facility, _) = handler
                    .facility(org)
                    .await
                    .map_err(|e| store_error(org)(e.into()))?;
                facility.profile.map(|p| p.kind)
            }
        };
        if let Err(reason) = principal.role.fits(kind) {
            problems.push(format!("token[{index}] of {org}: {reason}"));
        }
    }
    if !problems.is_empty() {
        return Err(AdminError::Invalid(problems));
    }

    let mut report = Report {
        tokens: plan.tokens.len(),
        ..Report::default()
    };
    for (profile, outcome, version) in changes {
        let id = &profile.facility_id;
        if !dry_run {
            match outcome {
                Outcome::Registered => {
                    let envelope = Envelope {
                        command_id: registration_command_id(id),
                        expected_version: None,
                        request_digest: None,
                        dry_run: false,
                    };
                    let command = FacilityCommand::Register(profile.clone());
                    run(handler, admin, envelope, id, command)
                        .await
                        .map_err(store_error(id))?;
                }
                Outcome::Updated => {
                    let envelope = Envelope {
                        command_id: Uuid::now_v7(),
                        expected_version: Some(version),
                        request_digest: None,
                        dry_run: false,
                    };
                    let command = FacilityCommand::Update(profile.changes());
                    run(handler, admin, envelope, id, command)
                        .await
                        .map_err(store_error(id))?;
                }
                Outcome::Unchanged => {}
            }
        }
        report.facilities.push((id.clone(), outcome));
    }
    Ok(report)
}

/// Runs a facility command of `apply`.
async fn run(
    handler: &CommandHandler,
    admin: &Principal,
    envelope: Envelope,
    facility_id: &FacilityId,
    command: FacilityCommand,
) -> Result<(), ApiError> {
    let command = Command::Facility {
        facility_id: facility_id.clone(),
        command,
    };
    handler.execute(admin, envelope, command).await??;
    Ok(())
}

/// The command id of a facility's registration by `apply`.
pub fn registration_command_id(facility_id: &FacilityId) -> Uuid {
    Uuid::new_v5(
        &COMMAND_NAMESPACE,
        format!("register-facility/{facility_id}").as_bytes(),
    )
}

/// Checks an entry with the rules of `RegisterFacilityRequest`.
fn registration(entry: &FacilityEntry, prefecture: &str) -> Result<FacilityProfile, Vec<String>> {
    let mut reasons = Vec::new();
    let kind = FacilityKind::parse(&entry.kind);
    if kind.is_none() {
        reasons.push(format!(
            "kind: unknown kind {:?} (one of {})",
            entry.kind,
            names(FacilityKind::ALL)
        ));
    }
    let mut capabilities = Vec::with_capacity(entry.capabilities.len());
    for (i, name) in entry.capabilities.iter().enumerate() {
        match Capability::parse(name) {
            Some(capability) => capabilities.push(capability.to_wire()),
            None => reasons.push(format!(
                "capabilities[{i}]: unknown capability {name:?} (one of {})",
                names(Capability::ALL)
            )),
        }
    }
    // The command id is derived when applying; a placeholder passes the check here.
    let checked = facility::register(&pb::RegisterFacilityRequest {
        command_id: Uuid::from_u128(1).to_string(),
        facility_id: entry.facility_id.clone(),
        name: entry.name.clone(),
        name_en: entry.name_en.clone(),
        kind: kind.map_or(0, WireEnum::to_wire),
        prefecture: entry
            .prefecture
            .clone()
            .unwrap_or_else(|| prefecture.to_owned()),
        medical_area: entry.medical_area.clone(),
        municipality: entry.municipality.clone(),
        jurisdiction: entry.jurisdiction.clone(),
        capabilities,
        expected_version: None,
    });
    match checked {
        Ok((
            _,
            Command::Facility {
                command: FacilityCommand::Register(profile),
                ..
            },
        )) if reasons.is_empty() => Ok(FacilityProfile {
            active: entry.active,
            ..profile
        }),
        Ok(_) => Err(reasons),
        Err(ApiError::Invalid(violations)) => {
            reasons.extend(
                violations
                    .iter()
                    .filter(|v| !(v.field == "kind" && kind.is_none()))
                    .map(|v| format!("{}: {}", v.field, v.description)),
            );
            Err(reasons)
        }
        Err(other) => {
            reasons.push(other.to_string());
            Err(reasons)
        }
    }
}

fn names<T: fmt::Display>(values: &[T]) -> String {
    values
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Creates the users of `entries` that do not exist yet, as `admin`; returns how many
/// were (or, with `dry_run`, would be) created and how many existed. Run after the
/// facilities are applied, since a user's organisation must be registered.
pub async fn apply_users(
    pool: &sqlx::PgPool,
    handler: &CommandHandler,
    admin: &Principal,
    entries: &[UserEntry],
    dry_run: bool,
) -> Result<(usize, usize), AdminError> {
    use noroshi_identity::users::{self, NewUser, Password};
    let (mut created, mut existing) = (0, 0);
    for entry in entries {
        let fail = |source| AdminError::User {
            username: entry.username.clone(),
            source,
        };
        if users::exists(pool, &entry.username)
            .await
            .map_err(|e| fail(e.into()))?
        {
            existing += 1;
            continue;
        }
        created += 1;
        if dry_run {
            continue;
        }
        let kind = match FacilityId::parse(&entry.organisation_id) {
            Ok(id) => handler
                .facility(&id)
                .await
                .map_err(|e| fail(e.into()))?
                .0
                .profile
                .map(|p| p.kind),
            Err(_) => None,
        };
        let user = NewUser {
            username: entry.username.clone(),
            display_name: entry.display_name.clone(),
            organisation_id: entry.organisation_id.clone(),
            role: entry.role.clone(),
            password: Password::new(entry.password.clone()),
        };
        users::create(pool, admin, &user, kind, "noroshi admin apply")
            .await
            .map_err(|e| fail(e.into()))?;
    }
    Ok((created, existing))
}

/// What is wrong with a file's `[[area]]` entries: codes that are not 4-digit area codes
/// or are listed twice, names out of bounds, municipalities with a bad code or listed twice,
/// neighbours that are not listed, and borders that go one way only.
fn area_problems(areas: &[AreaEntry]) -> Vec<String> {
    use noroshi_domain::values::{MedicalAreaCode, MunicipalityCode, Name};
    let mut problems = Vec::new();
    let mut codes = HashSet::new();
    let mut municipalities = HashSet::new();
    for (index, area) in areas.iter().enumerate() {
        let label = format!("area[{index}] {:?}", area.code);
        if MedicalAreaCode::parse(&area.code).is_err() {
            problems.push(format!("{label}: not a 4 digit medical area code"));
        }
        if !codes.insert(area.code.as_str()) {
            problems.push(format!("{label}: listed twice"));
        }
        let names = |name: &str, name_en: Option<&str>, field: &str, problems: &mut Vec<String>| {
            for (key, value) in [("name", Some(name)), ("name_en", name_en)] {
                if let Some(Err(reason)) = value.map(Name::parse) {
                    problems.push(format!("{label}: {field}{key} {reason}"));
                }
            }
        };
        names(&area.name, area.name_en.as_deref(), "", &mut problems);
        for (m, municipality) in area.municipalities.iter().enumerate() {
            let field = format!("municipalities[{m}].");
            if let Err(reason) = MunicipalityCode::parse(&municipality.code) {
                problems.push(format!("{label}: {field}code {reason}"));
            }
            if !municipalities.insert(municipality.code.as_str()) {
                problems.push(format!(
                    "{label}: municipality {} is listed twice",
                    municipality.code
                ));
            }
            names(
                &municipality.name,
                municipality.name_en.as_deref(),
                &field,
                &mut problems,
            );
        }
    }
    for area in areas {
        for neighbour in &area.neighbours {
            match areas.iter().find(|a| &a.code == neighbour) {
                None => problems.push(format!(
                    "area {}: neighbour {neighbour} is not a listed area",
                    area.code
                )),
                Some(other) if !other.neighbours.contains(&area.code) => problems.push(format!(
                    "area {}: borders {neighbour}, but {neighbour} does not list it",
                    area.code
                )),
                Some(_) => {}
            }
        }
    }
    problems
}

/// Facilities whose medical area is not the one the file's `[[area]]` entries put their
/// municipality in: a medical area is made of whole municipalities, and HQ's candidates
/// are ranked by area. Facilities without an area (HQ) are not checked.
fn facility_area_problems(areas: &[AreaEntry], facilities: &[FacilityProfile]) -> Vec<String> {
    // Where a municipality is listed twice (a problem of its own), the first listing counts.
    let mut area_of = HashMap::new();
    for area in areas {
        for municipality in &area.municipalities {
            area_of
                .entry(municipality.code.as_str())
                .or_insert(area.code.as_str());
        }
    }
    facilities
        .iter()
        .filter_map(|f| {
            let area = f.medical_area.as_ref()?.as_str();
            let listed = *area_of.get(f.municipality.as_str())?;
            (area != listed).then(|| {
                format!(
                    "facility {:?}: municipality {} lies in area {listed}, not {area}",
                    f.facility_id.as_str(),
                    f.municipality,
                )
            })
        })
        .collect()
}

/// Stores the medical areas of a file, replacing the stored list (a file without
/// `[[area]]` entries leaves it alone); the number of areas stored.
pub async fn apply_areas(
    pool: &sqlx::PgPool,
    areas: &[AreaEntry],
    dry_run: bool,
) -> Result<usize, AdminError> {
    if areas.is_empty() || dry_run {
        return Ok(areas.len());
    }
    noroshi_identity::areas::replace(pool, areas)
        .await
        .map_err(|e| AdminError::Areas(e.into()))?;
    Ok(areas.len())
}
