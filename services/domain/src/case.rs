//! The case aggregate, stream `case-<case_id>` (DESIGN.md §5.2): one patient's episode,
//! owned by the health center whose jurisdiction reported it.

use std::collections::BTreeSet;

use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::error::{DomainError, Violations};
use crate::facility::Facility;
use crate::priority::{self, PRIORITY_RULE_VERSION};
use crate::values::{
    Capability, CaseOutcome, CaseStatus, ExternalRef, FacilityId, FacilityKind, MunicipalityCode,
    Name, Phone, Priority, Reason, RiskFactor, Severity, Sex, Spo2, Temperature, Text,
};

/// Longest time an observation may lie in the future (clock skew between devices).
const OBSERVATION_CLOCK_SKEW: time::Duration = time::Duration::minutes(5);

/// Personally identifying data; visible only within the rights of DESIGN.md §7.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patient {
    pub name: Name,
    pub name_kana: Option<Name>,
    pub birth_date: Date,
    pub sex: Sex,
    pub phone: Option<Phone>,
    pub address: Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseReport {
    pub health_center_id: FacilityId,
    pub external_ref: Option<ExternalRef>,
    pub patient: Patient,
    pub municipality: MunicipalityCode,
    pub risk_factors: BTreeSet<RiskFactor>,
    pub severity: Severity,
    pub needs: BTreeSet<Capability>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    pub observed_at: OffsetDateTime,
    /// The organisation that recorded it: the owning health center for a patient at
    /// home, the facility where the patient is otherwise (DESIGN.md §5.4). `None` in
    /// observations recorded before it was kept.
    pub recorded_by: Option<FacilityId>,
    pub temperature: Option<Temperature>,
    pub spo2: Option<Spo2>,
    pub on_oxygen: bool,
    pub symptoms: Vec<Name>,
    pub note: Text,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseEvent {
    Reported {
        report: CaseReport,
        priority: Priority,
        priority_rule_version: u32,
        reported_at: OffsetDateTime,
    },
    Triaged {
        severity: Severity,
        risk_factors: BTreeSet<RiskFactor>,
        needs: BTreeSet<Capability>,
        priority: Priority,
        priority_rule_version: u32,
        note: Text,
    },
    PriorityOverridden {
        priority: Priority,
        computed_priority: Priority,
        reason: Reason,
    },
    ObservationRecorded(Observation),
    DeteriorationFlagged {
        observed_at: OffsetDateTime,
        spo2: Spo2,
        severity: Severity,
        band_floor: Spo2,
    },
    HomeCareStarted {
        started_at: OffsetDateTime,
        note: Text,
    },
    /// The health center put a patient at home in the care of a clinic or mobile clinic
    /// (DESIGN.md §5.4), which then observes the patient and asks for consults; `None`
    /// ends it. A patient who arrives at a facility leaves the care site's care.
    CareSiteAssigned {
        care_site: Option<FacilityId>,
        note: Text,
    },
    /// A placement that moves the patient on from the facility where they are
    /// (escalation, step-down, transfer): the case keeps its status and the patient
    /// their bed until they arrive (DESIGN.md §5.4). Appended with the placement's request.
    TransferRequested {
        placement_id: Uuid,
        from_facility: FacilityId,
    },
    /// The transfer placement ended before arrival: the patient stays where they are.
    TransferCancelled {
        placement_id: Uuid,
    },
    /// A remote consultation was requested for the case (DESIGN.md §5.5), addressed to
    /// one consult center or to any; appended with the request, so that a case has one
    /// open consult per provider, and again when a center schedules it (the consult is
    /// then open with that center).
    ConsultOpened {
        consult_id: Uuid,
        center: Option<FacilityId>,
    },
    /// The consult ended: completed, cancelled or missed.
    ConsultClosed {
        consult_id: Uuid,
    },
    /// Appended by placement commands in the same transaction as the placement event.
    StatusChanged {
        from: CaseStatus,
        to: CaseStatus,
        placement_id: Uuid,
        facility_id: Option<FacilityId>,
    },
    Closed {
        outcome: CaseOutcome,
        closed_at: OffsetDateTime,
        note: Text,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseCommand {
    Triage {
        severity: Severity,
        risk_factors: BTreeSet<RiskFactor>,
        needs: BTreeSet<Capability>,
        note: Text,
    },
    OverridePriority {
        priority: Priority,
        reason: Reason,
    },
    RecordObservation(Observation),
    StartHomeCare {
        note: Text,
    },
    AssignCareSite {
        care_site: Option<FacilityId>,
        note: Text,
    },
    Close {
        outcome: CaseOutcome,
        note: Text,
    },
}

/// A reported case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseRecord {
    pub report: CaseReport,
    pub severity: Severity,
    pub risk_factors: BTreeSet<RiskFactor>,
    pub needs: BTreeSet<Capability>,
    pub priority: Priority,
    pub priority_overridden: bool,
    pub status: CaseStatus,
    /// The status to return to when the live placement is cancelled.
    pub status_before_placement: Option<CaseStatus>,
    /// At most one live placement per case.
    pub live_placement: Option<Uuid>,
    /// The placement and facility where the patient is now.
    pub stay: Option<(Uuid, FacilityId)>,
    pub last_observation: Option<Observation>,
    pub deteriorated: bool,
    /// Open consults and the consult center each is addressed to (`None`: any).
    pub open_consults: std::collections::BTreeMap<Uuid, Option<FacilityId>>,
    /// The clinic or mobile clinic caring for the patient at home, if any.
    pub care_site: Option<FacilityId>,
}

/// State of one case stream. `record` is `None` until the case is reported.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Case {
    pub record: Option<CaseRecord>,
}

/// The lowest SpO₂ the severity band allows; below it the case is flagged as
/// deteriorating. MILD ≥ 96 %, MODERATE_I 93–96 %, MODERATE_II ≤ 93 % (below 90 %
/// suggests SEVERE); SEVERE cases are already under intensive care.
pub fn spo2_band_floor(severity: Severity) -> Option<Spo2> {
    let floor = match severity {
        Severity::Asymptomatic | Severity::Mild => 96,
        Severity::ModerateI => 93,
        Severity::ModerateII => 90,
        Severity::Severe => return None,
    };
    Spo2::new(floor).ok()
}

/// Decides `ReportCase` for the health center `reporter`, which must own the
/// municipality of the patient.
pub fn report(
    case: &Case,
    reporter: &Facility,
    report: CaseReport,
    now: OffsetDateTime,
) -> Result<Vec<CaseEvent>, DomainError> {
    if case.record.is_some() {
        return Err(DomainError::AlreadyExists(match &report.external_ref {
            Some(reference) => format!("a case with external_ref {reference}"),
            None => "case".into(),
        }));
    }
    let mut violations = Violations::new();
    match &reporter.profile {
        Some(hc) if hc.kind == FacilityKind::HealthCenter => {
            if !hc.jurisdiction.contains(&report.municipality) {
                violations.add(
                    "municipality",
                    format!(
                        "{} is outside the jurisdiction of {}",
                        report.municipality, hc.facility_id
                    ),
                );
            }
        }
        _ => {
            return Err(DomainError::precondition(format!(
                "the reporting organisation {} is not a registered health center",
                report.health_center_id
            )));
        }
    }
    if report.patient.birth_date > now.date() {
        violations.add("patient.birth_date", "must not be in the future");
    }
    violations.into_result()?;
    let priority = priority::compute(report.severity, &report.risk_factors);
    Ok(vec![CaseEvent::Reported {
        report,
        priority,
        priority_rule_version: PRIORITY_RULE_VERSION,
        reported_at: now,
    }])
}

impl Case {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a CaseEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }

    /// The record of a reported case that is not closed.
    pub fn open(&self) -> Result<&CaseRecord, DomainError> {
        let record = self
            .record
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("case".into()))?;
        if record.status.is_terminal() {
            return Err(DomainError::precondition(format!(
                "case is {}; a closed case does not change",
                record.status
            )));
        }
        Ok(record)
    }

    pub fn decide(
        &self,
        command: CaseCommand,
        now: OffsetDateTime,
    ) -> Result<Vec<CaseEvent>, DomainError> {
        let record = self.open()?;
        match command {
            CaseCommand::Triage {
                severity,
                risk_factors,
                needs,
                note,
            } => {
                let priority = priority::compute(severity, &risk_factors);
                Ok(vec![CaseEvent::Triaged {
                    severity,
                    risk_factors,
                    needs,
                    priority,
                    priority_rule_version: PRIORITY_RULE_VERSION,
                    note,
                }])
            }
            CaseCommand::OverridePriority { priority, reason } => {
                Ok(vec![CaseEvent::PriorityOverridden {
                    priority,
                    computed_priority: priority::compute(record.severity, &record.risk_factors),
                    reason,
                }])
            }
            CaseCommand::RecordObservation(observation) => {
                if observation.observed_at > now + OBSERVATION_CLOCK_SKEW {
                    return Err(DomainError::invalid(
                        "observed_at",
                        "must not be in the future",
                    ));
                }
                if observation.spo2.is_none()
                    && observation.temperature.is_none()
                    && observation.symptoms.is_empty()
                    && observation.note.as_str().is_empty()
                {
                    return Err(DomainError::invalid(
                        "spo2_percent",
                        "an observation needs a measurement, a symptom or a note",
                    ));
                }
                let flag = observation.spo2.and_then(|spo2| {
                    let floor = spo2_band_floor(record.severity)?;
                    (spo2 < floor).then_some(CaseEvent::DeteriorationFlagged {
                        observed_at: observation.observed_at,
                        spo2,
                        severity: record.severity,
                        band_floor: floor,
                    })
                });
                let mut events = vec![CaseEvent::ObservationRecorded(observation)];
                events.extend(flag);
                Ok(events)
            }
            CaseCommand::StartHomeCare { note } => match record.status {
                CaseStatus::Reported | CaseStatus::AwaitingPlacement => {
                    Ok(vec![CaseEvent::HomeCareStarted {
                        started_at: now,
                        note,
                    }])
                }
                status => Err(DomainError::precondition(format!(
                    "case is {status}; home care starts from REPORTED or AWAITING_PLACEMENT"
                ))),
            },
            CaseCommand::AssignCareSite { .. } => Err(DomainError::precondition(
                "a care site is assigned with the facility it names",
            )),
            CaseCommand::Close { outcome, note } => {
                if let Some(live) = record.live_placement {
                    return Err(DomainError::precondition(format!(
                        "case has a live placement {live}; cancel the placement before closing"
                    )));
                }
                Ok(vec![CaseEvent::Closed {
                    outcome,
                    closed_at: now,
                    note,
                }])
            }
        }
    }

    /// Decides `AssignCareSite`: `site` is the state of the facility the command names
    /// (`None` when it clears the care site). Only a patient at home (not at a facility)
    /// is cared for by a clinic or a mobile clinic.
    pub fn assign_care_site(
        &self,
        care_site: Option<(&FacilityId, &Facility)>,
        note: Text,
    ) -> Result<Vec<CaseEvent>, DomainError> {
        let record = self.open()?;
        if let Some((_, facility)) = &record.stay {
            return Err(DomainError::precondition(format!(
                "the patient is at {facility}; a care site cares for a patient at home"
            )));
        }
        let care_site = match care_site {
            None => None,
            Some((id, facility)) => {
                match facility.profile.as_ref() {
                    None => {
                        return Err(DomainError::invalid(
                            "care_site_id",
                            format!("{id} is not a registered facility"),
                        ));
                    }
                    Some(profile)
                        if !matches!(
                            profile.kind,
                            FacilityKind::Clinic | FacilityKind::MobileClinic
                        ) =>
                    {
                        return Err(DomainError::invalid(
                            "care_site_id",
                            format!("{id} is a {}, not a clinic or mobile clinic", profile.kind),
                        ));
                    }
                    Some(profile) if !profile.active => {
                        return Err(DomainError::precondition(format!("{id} is deactivated")));
                    }
                    Some(_) => {}
                }
                Some(id.clone())
            }
        };
        if care_site == record.care_site {
            return Err(DomainError::precondition(match &care_site {
                Some(id) => format!("the patient is in the care of {id} already"),
                None => "the patient is in the care of no care site".into(),
            }));
        }
        Ok(vec![CaseEvent::CareSiteAssigned { care_site, note }])
    }

    pub fn evolve(&mut self, event: &CaseEvent) {
        if let CaseEvent::Reported {
            report, priority, ..
        } = event
        {
            self.record = Some(CaseRecord {
                severity: report.severity,
                risk_factors: report.risk_factors.clone(),
                needs: report.needs.clone(),
                report: report.clone(),
                priority: *priority,
                priority_overridden: false,
                status: CaseStatus::Reported,
                status_before_placement: None,
                live_placement: None,
                stay: None,
                last_observation: None,
                deteriorated: false,
                open_consults: std::collections::BTreeMap::new(),
                care_site: None,
            });
            return;
        }
        let Some(record) = &mut self.record else {
            return;
        };
        match event {
            CaseEvent::Reported { .. } => {}
            CaseEvent::Triaged {
                severity,
                risk_factors,
                needs,
                priority,
                ..
            } => {
                record.severity = *severity;
                record.risk_factors = risk_factors.clone();
                record.needs = needs.clone();
                record.priority = *priority;
                record.priority_overridden = false;
                record.deteriorated = false;
            }
            CaseEvent::PriorityOverridden { priority, .. } => {
                record.priority = *priority;
                record.priority_overridden = true;
            }
            CaseEvent::ObservationRecorded(observation) => {
                record.last_observation = Some(observation.clone());
            }
            CaseEvent::DeteriorationFlagged { .. } => record.deteriorated = true,
            CaseEvent::HomeCareStarted { .. } => record.status = CaseStatus::HomeCare,
            CaseEvent::CareSiteAssigned { care_site, .. } => record.care_site = care_site.clone(),
            CaseEvent::TransferRequested { placement_id, .. } => {
                record.live_placement = Some(*placement_id);
                record.status_before_placement = None;
            }
            CaseEvent::TransferCancelled { placement_id } => {
                if record.live_placement == Some(*placement_id) {
                    record.live_placement = None;
                }
            }
            CaseEvent::ConsultOpened { consult_id, center } => {
                record.open_consults.insert(*consult_id, center.clone());
            }
            CaseEvent::ConsultClosed { consult_id } => {
                record.open_consults.remove(consult_id);
            }
            CaseEvent::StatusChanged {
                from,
                to,
                placement_id,
                facility_id,
            } => {
                match to {
                    CaseStatus::PlacementInProgress => {
                        record.status_before_placement = Some(*from);
                        record.live_placement = Some(*placement_id);
                    }
                    CaseStatus::Hospitalized | CaseStatus::InHotel => {
                        record.live_placement = None;
                        record.status_before_placement = None;
                        record.stay = facility_id.clone().map(|f| (*placement_id, f));
                        record.care_site = None;
                    }
                    _ => {
                        if record.live_placement == Some(*placement_id) {
                            record.live_placement = None;
                            record.status_before_placement = None;
                        }
                        if record.stay.as_ref().is_some_and(|(p, _)| p == placement_id) {
                            record.stay = None;
                        }
                    }
                }
                record.status = *to;
            }
            CaseEvent::Closed { outcome, .. } => {
                record.status = CaseStatus::from(*outcome);
                record.live_placement = None;
                record.care_site = None;
            }
        }
    }
}
