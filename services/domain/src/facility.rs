//! The facility aggregate, stream `facility-<facility_id>` (DESIGN.md §5.1): registration,
//! declared capacity per bed category, acceptance, and the holds and occupied beds that
//! placements move.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DomainError, Violations};
use crate::values::{
    Acceptance, AcceptanceConstraint, BedCategory, Capability, DischargeOutcome, FacilityId,
    FacilityKind, MedicalAreaCode, MunicipalityCode, Name, PrefectureCode, Reason, Text,
};

/// What ADMIN registers about an organisation or facility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityProfile {
    pub facility_id: FacilityId,
    pub name: Name,
    pub name_en: Option<Name>,
    pub kind: FacilityKind,
    pub prefecture: PrefectureCode,
    /// Absent for the prefectural HQ, which serves every area.
    pub medical_area: Option<MedicalAreaCode>,
    pub municipality: MunicipalityCode,
    /// Health centers only: the municipalities whose cases they own.
    pub jurisdiction: BTreeSet<MunicipalityCode>,
    pub capabilities: BTreeSet<Capability>,
    pub active: bool,
}

impl FacilityProfile {
    /// The mutable part of this profile, as an update would set it.
    pub fn changes(&self) -> FacilityChanges {
        FacilityChanges {
            name: self.name.clone(),
            name_en: self.name_en.clone(),
            medical_area: self.medical_area.clone(),
            municipality: self.municipality.clone(),
            jurisdiction: self.jurisdiction.clone(),
            capabilities: self.capabilities.clone(),
            active: self.active,
        }
    }
}

/// The mutable part of a profile; an update replaces all of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FacilityChanges {
    pub name: Name,
    pub name_en: Option<Name>,
    pub medical_area: Option<MedicalAreaCode>,
    pub municipality: MunicipalityCode,
    pub jurisdiction: BTreeSet<MunicipalityCode>,
    pub capabilities: BTreeSet<Capability>,
    pub active: bool,
}

/// Declared absolute figures for one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CategoryFigures {
    pub category: BedCategory,
    pub secured: u32,
    pub ready: u32,
    pub occupied: u32,
}

/// Marks figures that HQ entered on behalf of a facility.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEntry {
    pub entered_by: FacilityId,
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacilityEvent {
    Registered(FacilityProfile),
    Updated(FacilityChanges),
    CapacityDeclared {
        categories: Vec<CategoryFigures>,
        declared_at: OffsetDateTime,
        proxy: Option<ProxyEntry>,
    },
    AcceptanceChanged {
        category: BedCategory,
        acceptance: Acceptance,
        constraints: BTreeSet<AcceptanceConstraint>,
        changed_at: OffsetDateTime,
        proxy: Option<ProxyEntry>,
    },
    BedHeld {
        category: BedCategory,
        placement_id: Uuid,
        hold_deadline: OffsetDateTime,
        /// The reason given when the facility accepted with no free bed.
        capacity_override: Option<Reason>,
    },
    BedHoldReleased {
        category: BedCategory,
        placement_id: Uuid,
        reason: Text,
    },
    BedOccupied {
        category: BedCategory,
        placement_id: Uuid,
    },
    BedVacated {
        category: BedCategory,
        placement_id: Uuid,
        outcome: DischargeOutcome,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacilityCommand {
    Register(FacilityProfile),
    Update(FacilityChanges),
    DeclareCapacity {
        categories: Vec<CategoryFigures>,
        proxy: Option<ProxyEntry>,
    },
    SetAcceptance {
        category: BedCategory,
        acceptance: Acceptance,
        constraints: BTreeSet<AcceptanceConstraint>,
        proxy: Option<ProxyEntry>,
    },
}

/// The figures of one category, as the last declaration and later placements left them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beds {
    pub secured: u32,
    pub ready: u32,
    pub occupied: u32,
    /// Beds held for accepted placements not yet arrived; only the system moves it.
    pub held: u32,
    pub acceptance: Acceptance,
    pub constraints: BTreeSet<AcceptanceConstraint>,
    pub declared_at: Option<OffsetDateTime>,
}

impl Default for Beds {
    fn default() -> Self {
        Self {
            secured: 0,
            ready: 0,
            occupied: 0,
            held: 0,
            acceptance: Acceptance::Accepting,
            constraints: BTreeSet::new(),
            declared_at: None,
        }
    }
}

impl Beds {
    /// `max(0, ready − occupied − held)`.
    pub fn available(&self) -> u32 {
        self.ready
            .saturating_sub(self.occupied)
            .saturating_sub(self.held)
    }
}

/// State of one facility stream. `profile` is `None` until it is registered.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facility {
    pub profile: Option<FacilityProfile>,
    pub beds: BTreeMap<BedCategory, Beds>,
    /// Open holds by placement.
    pub holds: BTreeMap<Uuid, BedCategory>,
    /// Patients placed through the system who occupy a bed here, by placement.
    pub occupants: BTreeMap<Uuid, BedCategory>,
}

impl Facility {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a FacilityEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }

    pub fn exists(&self) -> bool {
        self.profile.is_some()
    }

    pub fn id(&self) -> Option<&FacilityId> {
        self.profile.as_ref().map(|p| &p.facility_id)
    }

    fn registered(&self) -> Result<&FacilityProfile, DomainError> {
        self.profile
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("facility".into()))
    }

    /// The figures of `category`, zero when never declared.
    pub fn beds(&self, category: BedCategory) -> Beds {
        self.beds.get(&category).cloned().unwrap_or_default()
    }

    pub fn decide(
        &self,
        command: FacilityCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<FacilityEvent>, DomainError> {
        match command {
            FacilityCommand::Register(profile) => {
                if self.exists() {
                    return Err(DomainError::AlreadyExists(format!(
                        "facility {}",
                        profile.facility_id
                    )));
                }
                check_jurisdiction(profile.kind, &profile.jurisdiction)?;
                Ok(vec![FacilityEvent::Registered(profile)])
            }
            FacilityCommand::Update(changes) => {
                let profile = self.registered()?;
                check_jurisdiction(profile.kind, &changes.jurisdiction)?;
                Ok(vec![FacilityEvent::Updated(changes)])
            }
            FacilityCommand::DeclareCapacity { categories, proxy } => {
                let profile = self.registered()?;
                check_figures(profile.kind, &categories)?;
                Ok(vec![FacilityEvent::CapacityDeclared {
                    categories,
                    declared_at: now,
                    proxy,
                }])
            }
            FacilityCommand::SetAcceptance {
                category,
                acceptance,
                constraints,
                proxy,
            } => {
                let profile = self.registered()?;
                check_category(profile.kind, category, "category")?;
                if acceptance == Acceptance::Accepting && !constraints.is_empty() {
                    return Err(DomainError::invalid(
                        "constraints",
                        "must be empty while ACCEPTING; use LIMITED",
                    ));
                }
                Ok(vec![FacilityEvent::AcceptanceChanged {
                    category,
                    acceptance,
                    constraints,
                    changed_at: now,
                    proxy,
                }])
            }
        }
    }

    /// Holds a bed of `category` for an accepted placement. Refused when no bed is
    /// available, unless the facility overrides capacity with a reason.
    pub fn hold_bed(
        &self,
        category: BedCategory,
        placement_id: Uuid,
        hold_deadline: OffsetDateTime,
        capacity_override: Option<Reason>,
    ) -> Result<FacilityEvent, DomainError> {
        let profile = self.registered()?;
        check_category(profile.kind, category, "category")?;
        if self.holds.contains_key(&placement_id) {
            return Err(DomainError::precondition(format!(
                "a bed is already held for placement {placement_id}"
            )));
        }
        let beds = self.beds(category);
        if beds.available() == 0 && capacity_override.is_none() {
            return Err(DomainError::precondition(format!(
                "no free {category} bed: ready {}, occupied {}, held {}",
                beds.ready, beds.occupied, beds.held
            )));
        }
        Ok(FacilityEvent::BedHeld {
            category,
            placement_id,
            hold_deadline,
            capacity_override,
        })
    }

    /// Releases the hold of `placement_id`; nothing when it holds no bed here.
    pub fn release_hold(&self, placement_id: Uuid, reason: Text) -> Option<FacilityEvent> {
        self.holds
            .get(&placement_id)
            .map(|&category| FacilityEvent::BedHoldReleased {
                category,
                placement_id,
                reason,
            })
    }

    /// Turns the hold of `placement_id` into an occupied bed.
    pub fn occupy(&self, placement_id: Uuid) -> Result<FacilityEvent, DomainError> {
        let category = self.holds.get(&placement_id).ok_or_else(|| {
            DomainError::precondition(format!("no bed is held for placement {placement_id}"))
        })?;
        Ok(FacilityEvent::BedOccupied {
            category: *category,
            placement_id,
        })
    }

    /// Frees the bed of the patient placed by `placement_id`.
    pub fn vacate(
        &self,
        placement_id: Uuid,
        outcome: DischargeOutcome,
    ) -> Result<FacilityEvent, DomainError> {
        let category = self.occupants.get(&placement_id).ok_or_else(|| {
            DomainError::precondition(format!(
                "no patient of placement {placement_id} occupies a bed here"
            ))
        })?;
        Ok(FacilityEvent::BedVacated {
            category: *category,
            placement_id,
            outcome,
        })
    }

    pub fn evolve(&mut self, event: &FacilityEvent) {
        match event {
            FacilityEvent::Registered(profile) => self.profile = Some(profile.clone()),
            FacilityEvent::Updated(changes) => {
                if let Some(profile) = &mut self.profile {
                    profile.name = changes.name.clone();
                    profile.name_en = changes.name_en.clone();
                    profile.medical_area = changes.medical_area.clone();
                    profile.municipality = changes.municipality.clone();
                    profile.jurisdiction = changes.jurisdiction.clone();
                    profile.capabilities = changes.capabilities.clone();
                    profile.active = changes.active;
                }
            }
            FacilityEvent::CapacityDeclared {
                categories,
                declared_at,
                ..
            } => {
                for figures in categories {
                    let beds = self.beds.entry(figures.category).or_default();
                    beds.secured = figures.secured;
                    beds.ready = figures.ready;
                    beds.occupied = figures.occupied;
                    beds.declared_at = Some(*declared_at);
                }
            }
            FacilityEvent::AcceptanceChanged {
                category,
                acceptance,
                constraints,
                ..
            } => {
                let beds = self.beds.entry(*category).or_default();
                beds.acceptance = *acceptance;
                beds.constraints = constraints.clone();
            }
            FacilityEvent::BedHeld {
                category,
                placement_id,
                ..
            } => {
                self.holds.insert(*placement_id, *category);
                self.beds.entry(*category).or_default().held += 1;
            }
            FacilityEvent::BedHoldReleased {
                category,
                placement_id,
                ..
            } => {
                if self.holds.remove(placement_id).is_some() {
                    let beds = self.beds.entry(*category).or_default();
                    beds.held = beds.held.saturating_sub(1);
                }
            }
            FacilityEvent::BedOccupied {
                category,
                placement_id,
            } => {
                let beds = self.beds.entry(*category).or_default();
                if self.holds.remove(placement_id).is_some() {
                    beds.held = beds.held.saturating_sub(1);
                }
                beds.occupied = beds.occupied.saturating_add(1);
                self.occupants.insert(*placement_id, *category);
            }
            FacilityEvent::BedVacated {
                category,
                placement_id,
                ..
            } => {
                if self.occupants.remove(placement_id).is_some() {
                    let beds = self.beds.entry(*category).or_default();
                    beds.occupied = beds.occupied.saturating_sub(1);
                }
            }
        }
    }
}

/// Only health centers have a jurisdiction, and they must have one.
fn check_jurisdiction(
    kind: FacilityKind,
    jurisdiction: &BTreeSet<crate::values::MunicipalityCode>,
) -> Result<(), DomainError> {
    match (kind, jurisdiction.is_empty()) {
        (FacilityKind::HealthCenter, true) => Err(DomainError::invalid(
            "jurisdiction",
            "a health center needs at least one municipality",
        )),
        (FacilityKind::HealthCenter, false) | (_, true) => Ok(()),
        (_, false) => Err(DomainError::invalid(
            "jurisdiction",
            "only health centers have a jurisdiction",
        )),
    }
}

fn check_category(
    kind: FacilityKind,
    category: BedCategory,
    field: &str,
) -> Result<(), DomainError> {
    if kind.bed_categories().contains(&category) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("a {kind} facility has no {category} beds"),
        ))
    }
}

/// The plausibility rules of §5.1: one entry per category, categories the kind can have,
/// and `ready ≤ secured` unless nothing is secured. `occupied > ready` is allowed.
fn check_figures(kind: FacilityKind, categories: &[CategoryFigures]) -> Result<(), DomainError> {
    let mut violations = Violations::new();
    if categories.is_empty() {
        violations.add("categories", "declare at least one category");
    }
    if !kind.has_beds() {
        violations.add("facility_id", format!("a {kind} facility has no beds"));
        return violations.into_result();
    }
    let mut seen = BTreeSet::new();
    for (i, figures) in categories.iter().enumerate() {
        if !kind.bed_categories().contains(&figures.category) {
            violations.add(
                format!("categories[{i}].category"),
                format!("a {kind} facility has no {} beds", figures.category),
            );
        }
        if !seen.insert(figures.category) {
            violations.add(
                format!("categories[{i}].category"),
                format!("{} is declared twice", figures.category),
            );
        }
        if figures.secured > 0 && figures.ready > figures.secured {
            violations.add(
                format!("categories[{i}].ready"),
                format!(
                    "ready ({}) exceeds secured ({}); secure the beds first",
                    figures.ready, figures.secured
                ),
            );
        }
    }
    violations.into_result()
}

/// Whatever the order of declarations and of the holds, arrivals and discharges the
/// placements bring (as the orchestration emits them: a hold for a new placement, a
/// release or an arrival of an open hold, a discharge of an occupant, and stray ones for
/// placements the facility does not know), the beds a facility holds are exactly its open
/// holds, category by category, and no figure wraps below zero (DESIGN.md §13).
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use time::macros::datetime;

    use super::*;

    #[derive(Debug, Clone)]
    enum Step {
        Declare(BedCategory, u32, u32, u32),
        Hold(BedCategory),
        /// Of the n-th open hold (modulo), or of an unknown placement when there is none.
        Release(usize),
        Arrive(usize),
        Discharge(usize),
        Stray(u128),
    }

    fn step() -> impl Strategy<Value = Step> {
        let category = prop::sample::select(BedCategory::ALL);
        prop_oneof![
            (category.clone(), 0_u32..50, 0_u32..50, 0_u32..50)
                .prop_map(|(c, s, r, o)| Step::Declare(c, s, r, o)),
            category.prop_map(Step::Hold),
            any::<usize>().prop_map(Step::Release),
            any::<usize>().prop_map(Step::Arrive),
            any::<usize>().prop_map(Step::Discharge),
            any::<u128>().prop_map(Step::Stray),
        ]
    }

    fn nth(map: &BTreeMap<Uuid, BedCategory>, n: usize) -> Option<(Uuid, BedCategory)> {
        (!map.is_empty()).then(|| {
            let (id, category) = map
                .iter()
                .nth(n % map.len())
                .unwrap_or_else(|| unreachable!());
            (*id, *category)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn held_beds_are_the_open_holds(steps in prop::collection::vec(step(), 0..60)) {
            let at = datetime!(2026-12-07 03:00 UTC);
            let mut facility = Facility::default();
            let mut events = Vec::new();
            for (i, step) in steps.into_iter().enumerate() {
                let event = match step {
                    Step::Declare(category, secured, ready, occupied) => FacilityEvent::CapacityDeclared {
                        categories: vec![CategoryFigures { category, secured, ready, occupied }],
                        declared_at: at,
                        proxy: None,
                    },
                    Step::Hold(category) => FacilityEvent::BedHeld {
                        category,
                        placement_id: Uuid::from_u128(i as u128 + 1),
                        hold_deadline: at,
                        capacity_override: None,
                    },
                    Step::Release(n) => match nth(&facility.holds, n) {
                        Some((placement_id, category)) => FacilityEvent::BedHoldReleased {
                            category,
                            placement_id,
                            reason: Text::parse("cancelled").unwrap_or_else(|_| unreachable!()),
                        },
                        None => continue,
                    },
                    Step::Arrive(n) => match nth(&facility.holds, n) {
                        Some((placement_id, category)) => FacilityEvent::BedOccupied { category, placement_id },
                        None => continue,
                    },
                    Step::Discharge(n) => match nth(&facility.occupants, n) {
                        Some((placement_id, category)) => FacilityEvent::BedVacated {
                            category,
                            placement_id,
                            outcome: crate::values::DischargeOutcome::ALL[0],
                        },
                        None => continue,
                    },
                    Step::Stray(id) => {
                        let placement_id = Uuid::from_u128(id | (1 << 127));
                        let category = BedCategory::ALL[(id % BedCategory::ALL.len() as u128) as usize];
                        match id % 2 {
                            0 => FacilityEvent::BedHoldReleased {
                                category,
                                placement_id,
                                reason: Text::parse("stray").unwrap_or_else(|_| unreachable!()),
                            },
                            _ => FacilityEvent::BedVacated {
                                category,
                                placement_id,
                                outcome: crate::values::DischargeOutcome::ALL[0],
                            },
                        }
                    }
                };
                let occupied_before = facility.beds.values().map(|b| u64::from(b.occupied)).sum::<u64>();
                facility.evolve(&event);
                events.push(event.clone());
                for category in BedCategory::ALL {
                    let open = facility.holds.values().filter(|c| *c == category).count() as u32;
                    let held = facility.beds.get(category).map_or(0, |b| b.held);
                    prop_assert_eq!(held, open, "{:?} after {:?}", category, event);
                }
                let occupied_after = facility.beds.values().map(|b| u64::from(b.occupied)).sum::<u64>();
                // A stray release or discharge changes nothing; a discharge frees one bed.
                if let FacilityEvent::BedVacated { .. } | FacilityEvent::BedHoldReleased { .. } = &event {
                    prop_assert!(occupied_after <= occupied_before);
                }
                prop_assert!(facility.holds.keys().all(|p| !facility.occupants.contains_key(p)));
            }
            // The state is a fold of its events, whatever the path.
            prop_assert_eq!(Facility::from_events(&events), facility);
        }
    }
}
