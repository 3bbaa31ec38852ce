//! Domain events ⇄ stored protobuf events (`noroshi.v1.*`, DESIGN.md §4–5).
//!
//! Encoding never fails. Decoding re-validates every stored value through the domain's
//! newtypes; a stored event that does not decode is corruption, not a caller's mistake.

use std::collections::BTreeSet;

use bytes::Bytes;
use noroshi_domain::case::{CaseEvent, CaseReport, Observation, Patient};
use noroshi_domain::facility::{
    CategoryFigures, FacilityChanges, FacilityEvent, FacilityProfile, ProxyEntry,
};
use noroshi_domain::placement::{Origin, PlacementEvent, Transport};
use noroshi_domain::values::{
    ExternalRef, FacilityId, MedicalAreaCode, MunicipalityCode, Name, Phone, PrefectureCode,
    Priority, Reason, Spo2, Temperature, Text,
};
use noroshi_event_store::{NewEvent, RecordedEvent};
use noroshi_proto::Message;
use noroshi_proto::v1 as pb;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

use crate::enums::{WireEnum, to_wire_all};
use crate::fields::{Decoded, at, field, id, message, opt_field, opt_string, wire};
use crate::timestamps::to_timestamp;

const DATE: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

use noroshi_domain::DomainEvent;

/// A stored event that cannot be turned back into a domain event.
#[derive(Debug, thiserror::Error)]
#[error("stored event {event_type} at {stream_id} v{version} does not decode: {reason}")]
pub struct CorruptEvent {
    pub stream_id: String,
    pub version: u64,
    pub event_type: String,
    pub reason: String,
}

/// The stored form of `event`, on the stream of `aggregate_id`.
pub fn encode(event: &DomainEvent, aggregate_id: &str, occurred_at: OffsetDateTime) -> NewEvent {
    let (event_type, payload) = match event {
        DomainEvent::Facility(e) => encode_facility(e, aggregate_id),
        DomainEvent::Case(e) => encode_case(e, aggregate_id),
        DomainEvent::Placement(e) => encode_placement(e, aggregate_id),
        DomainEvent::Consult(e) => crate::consult::encode(e, aggregate_id),
        DomainEvent::Alert(e) => crate::alert::encode(e, aggregate_id),
        DomainEvent::AlertRules(e) => crate::alert::encode_rules(e),
    };
    NewEvent::new(event_type, occurred_at, payload)
}

fn proxy(entry: Option<&ProxyEntry>) -> Option<pb::ProxyEntry> {
    entry.map(|p| pb::ProxyEntry {
        entered_by_organisation_id: p.entered_by.to_string(),
        reason: p.reason.to_string(),
    })
}

fn strings<'a, T: ToString + 'a>(values: impl IntoIterator<Item = &'a T>) -> Vec<String> {
    values.into_iter().map(ToString::to_string).collect()
}

fn encode_facility(event: &FacilityEvent, facility_id: &str) -> (String, Bytes) {
    let id = facility_id.to_owned();
    match event {
        FacilityEvent::Registered(p) => message(pb::FacilityRegistered {
            facility_id: id,
            name: p.name.to_string(),
            name_en: opt_string(p.name_en.as_ref()),
            kind: p.kind.to_wire(),
            prefecture: p.prefecture.to_string(),
            medical_area: opt_string(p.medical_area.as_ref()),
            municipality: p.municipality.to_string(),
            jurisdiction: strings(&p.jurisdiction),
            capabilities: to_wire_all(p.capabilities.iter().copied()),
            active: p.active,
        }),
        FacilityEvent::Updated(c) => message(pb::FacilityUpdated {
            facility_id: id,
            name: c.name.to_string(),
            name_en: opt_string(c.name_en.as_ref()),
            medical_area: opt_string(c.medical_area.as_ref()),
            municipality: c.municipality.to_string(),
            jurisdiction: strings(&c.jurisdiction),
            capabilities: to_wire_all(c.capabilities.iter().copied()),
            active: c.active,
        }),
        FacilityEvent::CapacityDeclared {
            categories,
            declared_at,
            proxy: p,
        } => message(pb::CapacityDeclared {
            facility_id: id,
            categories: categories
                .iter()
                .map(|f| pb::CategoryCapacity {
                    category: f.category.to_wire(),
                    secured: f.secured,
                    ready: f.ready,
                    occupied: f.occupied,
                })
                .collect(),
            declared_at: Some(to_timestamp(*declared_at)),
            proxy: proxy(p.as_ref()),
        }),
        FacilityEvent::AcceptanceChanged {
            category,
            acceptance,
            constraints,
            changed_at,
            proxy: p,
        } => message(pb::AcceptanceChanged {
            facility_id: id,
            category: category.to_wire(),
            acceptance: acceptance.to_wire(),
            constraints: to_wire_all(constraints.iter().copied()),
            changed_at: Some(to_timestamp(*changed_at)),
            proxy: proxy(p.as_ref()),
        }),
        FacilityEvent::BedHeld {
            category,
            placement_id,
            hold_deadline,
            capacity_override,
        } => message(pb::BedHeld {
            facility_id: id,
            category: category.to_wire(),
            placement_id: placement_id.to_string(),
            hold_deadline: Some(to_timestamp(*hold_deadline)),
            capacity_overridden: capacity_override.is_some(),
            override_reason: opt_string(capacity_override.as_ref()),
        }),
        FacilityEvent::BedHoldReleased {
            category,
            placement_id,
            reason,
        } => message(pb::BedHoldReleased {
            facility_id: id,
            category: category.to_wire(),
            placement_id: placement_id.to_string(),
            reason: reason.to_string(),
        }),
        FacilityEvent::BedOccupied {
            category,
            placement_id,
        } => message(pb::BedOccupied {
            facility_id: id,
            category: category.to_wire(),
            placement_id: placement_id.to_string(),
        }),
        FacilityEvent::BedVacated {
            category,
            placement_id,
            outcome,
        } => message(pb::BedVacated {
            facility_id: id,
            category: category.to_wire(),
            placement_id: placement_id.to_string(),
            outcome: outcome.to_wire(),
        }),
    }
}

fn encode_case(event: &CaseEvent, case_id: &str) -> (String, Bytes) {
    let id = case_id.to_owned();
    match event {
        CaseEvent::Reported {
            report,
            priority,
            priority_rule_version,
            reported_at,
        } => {
            let p = &report.patient;
            message(pb::CaseReported {
                case_id: id,
                health_center_id: report.health_center_id.to_string(),
                external_ref: opt_string(report.external_ref.as_ref()),
                patient: Some(pb::PatientIdentity {
                    name: p.name.to_string(),
                    name_kana: opt_string(p.name_kana.as_ref()),
                    birth_date: p.birth_date.format(DATE).unwrap_or_default(),
                    sex: p.sex.to_wire(),
                    phone: opt_string(p.phone.as_ref()),
                    address: p.address.to_string(),
                }),
                municipality: report.municipality.to_string(),
                risk_factors: to_wire_all(report.risk_factors.iter().copied()),
                severity: report.severity.to_wire(),
                needs: to_wire_all(report.needs.iter().copied()),
                priority: u32::from(priority.get()),
                priority_rule_version: *priority_rule_version,
                reported_at: Some(to_timestamp(*reported_at)),
            })
        }
        CaseEvent::Triaged {
            severity,
            risk_factors,
            needs,
            priority,
            priority_rule_version,
            note,
        } => message(pb::CaseTriaged {
            case_id: id,
            severity: severity.to_wire(),
            risk_factors: to_wire_all(risk_factors.iter().copied()),
            needs: to_wire_all(needs.iter().copied()),
            priority: u32::from(priority.get()),
            priority_rule_version: *priority_rule_version,
            note: note.to_string(),
        }),
        CaseEvent::PriorityOverridden {
            priority,
            computed_priority,
            reason,
        } => message(pb::PriorityOverridden {
            case_id: id,
            priority: u32::from(priority.get()),
            computed_priority: u32::from(computed_priority.get()),
            reason: reason.to_string(),
        }),
        CaseEvent::ObservationRecorded(o) => message(pb::ObservationRecorded {
            case_id: id,
            observed_at: Some(to_timestamp(o.observed_at)),
            temperature_decicelsius: o.temperature.map_or(0, |t| u32::from(t.decicelsius())),
            spo2_percent: o.spo2.map_or(0, |s| u32::from(s.percent())),
            on_oxygen: o.on_oxygen,
            symptoms: strings(&o.symptoms),
            note: o.note.to_string(),
            recorded_by: opt_string(o.recorded_by.as_ref()),
        }),
        CaseEvent::DeteriorationFlagged {
            observed_at,
            spo2,
            severity,
            band_floor,
        } => message(pb::DeteriorationFlagged {
            case_id: id,
            observed_at: Some(to_timestamp(*observed_at)),
            spo2_percent: u32::from(spo2.percent()),
            severity: severity.to_wire(),
            band_floor_percent: u32::from(band_floor.percent()),
        }),
        CaseEvent::HomeCareStarted { started_at, note } => message(pb::HomeCareStarted {
            case_id: id,
            started_at: Some(to_timestamp(*started_at)),
            note: note.to_string(),
        }),
        CaseEvent::CareSiteAssigned { care_site, note } => message(pb::CareSiteAssigned {
            case_id: id,
            care_site_id: opt_string(care_site.as_ref()),
            note: note.to_string(),
        }),
        CaseEvent::StatusChanged {
            from,
            to,
            placement_id,
            facility_id,
        } => message(pb::CaseStatusChanged {
            case_id: id,
            from: from.to_wire(),
            to: to.to_wire(),
            placement_id: placement_id.to_string(),
            facility_id: opt_string(facility_id.as_ref()),
        }),
        CaseEvent::TransferRequested {
            placement_id,
            from_facility,
        } => message(pb::TransferRequested {
            case_id: id,
            placement_id: placement_id.to_string(),
            from_facility_id: from_facility.to_string(),
        }),
        CaseEvent::TransferCancelled { placement_id } => message(pb::TransferCancelled {
            case_id: id,
            placement_id: placement_id.to_string(),
        }),
        CaseEvent::ConsultOpened { consult_id, center } => message(pb::ConsultOpened {
            case_id: id,
            consult_id: consult_id.to_string(),
            center_id: opt_string(center.as_ref()),
        }),
        CaseEvent::ConsultClosed { consult_id } => message(pb::ConsultClosed {
            case_id: id,
            consult_id: consult_id.to_string(),
        }),
        CaseEvent::Closed {
            outcome,
            closed_at,
            note,
        } => message(pb::CaseClosed {
            case_id: id,
            outcome: outcome.to_wire(),
            closed_at: Some(to_timestamp(*closed_at)),
            note: note.to_string(),
        }),
    }
}

fn encode_placement(event: &PlacementEvent, placement_id: &str) -> (String, Bytes) {
    let id = placement_id.to_owned();
    match event {
        PlacementEvent::Requested {
            case_id,
            requested_by,
            category,
            needs,
            priority,
            origin,
            requested_at,
            note,
        } => message(pb::PlacementRequested {
            placement_id: id,
            case_id: case_id.to_string(),
            requested_by: requested_by.to_string(),
            category: category.to_wire(),
            needs: to_wire_all(needs.iter().copied()),
            priority: u32::from(priority.get()),
            origin: Some(pb::PlacementOrigin {
                origin: Some(match origin {
                    Origin::Home(m) => {
                        pb::placement_origin::Origin::HomeMunicipality(m.to_string())
                    }
                    Origin::Facility(f) => pb::placement_origin::Origin::FacilityId(f.to_string()),
                }),
            }),
            requested_at: Some(to_timestamp(*requested_at)),
            note: note.to_string(),
        }),
        PlacementEvent::Offered {
            target,
            offered_at,
            offer_deadline,
        } => message(pb::PlacementOffered {
            placement_id: id,
            target_facility_id: target.to_string(),
            offered_at: Some(to_timestamp(*offered_at)),
            offer_deadline: Some(to_timestamp(*offer_deadline)),
        }),
        PlacementEvent::Accepted {
            facility,
            accepted_at,
            hold_deadline,
            capacity_override,
        } => message(pb::PlacementAccepted {
            placement_id: id,
            facility_id: facility.to_string(),
            accepted_at: Some(to_timestamp(*accepted_at)),
            hold_deadline: Some(to_timestamp(*hold_deadline)),
            capacity_overridden: capacity_override.is_some(),
            override_reason: opt_string(capacity_override.as_ref()),
        }),
        PlacementEvent::Declined {
            facility,
            reason,
            declined_at,
        } => message(pb::PlacementDeclined {
            placement_id: id,
            facility_id: facility.to_string(),
            reason: reason.to_string(),
            declined_at: Some(to_timestamp(*declined_at)),
        }),
        PlacementEvent::OfferExpired {
            facility,
            offer_deadline,
        } => message(pb::OfferExpired {
            placement_id: id,
            facility_id: facility.to_string(),
            offer_deadline: Some(to_timestamp(*offer_deadline)),
        }),
        PlacementEvent::TransportArranged(t) => message(pb::TransportArranged {
            placement_id: id,
            vehicle: t.vehicle.to_wire(),
            pickup_at: t.pickup_at.map(to_timestamp),
            note: t.note.to_string(),
        }),
        PlacementEvent::Departed { departed_at } => message(pb::PatientDeparted {
            placement_id: id,
            departed_at: Some(to_timestamp(*departed_at)),
        }),
        PlacementEvent::Arrived {
            facility,
            arrived_at,
        } => message(pb::PatientArrived {
            placement_id: id,
            facility_id: facility.to_string(),
            arrived_at: Some(to_timestamp(*arrived_at)),
        }),
        PlacementEvent::Cancelled {
            reason,
            cancelled_in,
            cancelled_at,
        } => message(pb::PlacementCancelled {
            placement_id: id,
            reason: reason.to_string(),
            cancelled_in: cancelled_in.to_wire(),
            cancelled_at: Some(to_timestamp(*cancelled_at)),
        }),
        PlacementEvent::Discharged {
            facility,
            case_id,
            outcome,
            discharged_at,
            note,
            transferred_to,
        } => message(pb::PatientDischarged {
            placement_id: id,
            facility_id: facility.to_string(),
            case_id: case_id.to_string(),
            outcome: outcome.to_wire(),
            discharged_at: Some(to_timestamp(*discharged_at)),
            note: note.to_string(),
            transferred_to: opt_string(transferred_to.as_ref()),
        }),
    }
}

fn wire_set<T: WireEnum>(name: &str, values: &[i32]) -> Decoded<BTreeSet<T>> {
    values.iter().map(|&v| wire(name, v)).collect()
}

fn priority(value: u32) -> Decoded<Priority> {
    field("priority", Priority::new(i64::from(value)))
}

fn decode_proxy(entry: Option<pb::ProxyEntry>) -> Decoded<Option<ProxyEntry>> {
    entry
        .map(|p| {
            Ok(ProxyEntry {
                entered_by: field(
                    "proxy.entered_by_organisation_id",
                    FacilityId::parse(&p.entered_by_organisation_id),
                )?,
                reason: field("proxy.reason", Reason::parse(&p.reason))?,
            })
        })
        .transpose()
}

fn set<T: Ord, E: std::fmt::Display>(
    name: &str,
    values: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
) -> Decoded<BTreeSet<T>> {
    values.iter().map(|v| field(name, parse(v))).collect()
}

/// The domain event stored as `recorded`.
pub fn decode(recorded: &RecordedEvent) -> Result<DomainEvent, CorruptEvent> {
    decode_payload(&recorded.event_type, &recorded.payload).map_err(|reason| CorruptEvent {
        stream_id: recorded.stream_id.to_string(),
        version: recorded.version,
        event_type: recorded.event_type.clone(),
        reason,
    })
}

macro_rules! parse_as {
    ($ty:ty, $payload:expr) => {
        <$ty>::decode($payload.clone()).map_err(|e| e.to_string())?
    };
}

fn decode_payload(event_type: &str, payload: &Bytes) -> Decoded<DomainEvent> {
    let name = event_type
        .strip_prefix("noroshi.v1.")
        .ok_or("not a noroshi.v1 event")?;
    Ok(match name {
        "FacilityRegistered" => {
            let m = parse_as!(pb::FacilityRegistered, payload);
            DomainEvent::Facility(FacilityEvent::Registered(FacilityProfile {
                facility_id: field("facility_id", FacilityId::parse(&m.facility_id))?,
                name: field("name", Name::parse(&m.name))?,
                name_en: opt_field("name_en", &m.name_en, Name::parse)?,
                kind: wire("kind", m.kind)?,
                prefecture: field("prefecture", PrefectureCode::parse(&m.prefecture))?,
                medical_area: opt_field("medical_area", &m.medical_area, MedicalAreaCode::parse)?,
                municipality: field("municipality", MunicipalityCode::parse(&m.municipality))?,
                jurisdiction: set("jurisdiction", &m.jurisdiction, MunicipalityCode::parse)?,
                capabilities: wire_set("capabilities", &m.capabilities)?,
                active: m.active,
            }))
        }
        "FacilityUpdated" => {
            let m = parse_as!(pb::FacilityUpdated, payload);
            DomainEvent::Facility(FacilityEvent::Updated(FacilityChanges {
                name: field("name", Name::parse(&m.name))?,
                name_en: opt_field("name_en", &m.name_en, Name::parse)?,
                medical_area: opt_field("medical_area", &m.medical_area, MedicalAreaCode::parse)?,
                municipality: field("municipality", MunicipalityCode::parse(&m.municipality))?,
                jurisdiction: set("jurisdiction", &m.jurisdiction, MunicipalityCode::parse)?,
                capabilities: wire_set("capabilities", &m.capabilities)?,
                active: m.active,
            }))
        }
        "CapacityDeclared" => {
            let m = parse_as!(pb::CapacityDeclared, payload);
            DomainEvent::Facility(FacilityEvent::CapacityDeclared {
                categories: m
                    .categories
                    .iter()
                    .map(|c| {
                        Ok(CategoryFigures {
                            category: wire("category", c.category)?,
                            secured: c.secured,
                            ready: c.ready,
                            occupied: c.occupied,
                        })
                    })
                    .collect::<Decoded<_>>()?,
                declared_at: at("declared_at", m.declared_at.as_ref())?,
                proxy: decode_proxy(m.proxy)?,
            })
        }
        "AcceptanceChanged" => {
            let m = parse_as!(pb::AcceptanceChanged, payload);
            DomainEvent::Facility(FacilityEvent::AcceptanceChanged {
                category: wire("category", m.category)?,
                acceptance: wire("acceptance", m.acceptance)?,
                constraints: wire_set("constraints", &m.constraints)?,
                changed_at: at("changed_at", m.changed_at.as_ref())?,
                proxy: decode_proxy(m.proxy)?,
            })
        }
        "BedHeld" => {
            let m = parse_as!(pb::BedHeld, payload);
            DomainEvent::Facility(FacilityEvent::BedHeld {
                category: wire("category", m.category)?,
                placement_id: id("placement_id", &m.placement_id)?,
                hold_deadline: at("hold_deadline", m.hold_deadline.as_ref())?,
                capacity_override: if m.capacity_overridden {
                    Some(field("override_reason", Reason::parse(&m.override_reason))?)
                } else {
                    None
                },
            })
        }
        "BedHoldReleased" => {
            let m = parse_as!(pb::BedHoldReleased, payload);
            DomainEvent::Facility(FacilityEvent::BedHoldReleased {
                category: wire("category", m.category)?,
                placement_id: id("placement_id", &m.placement_id)?,
                reason: field("reason", Text::parse(&m.reason))?,
            })
        }
        "BedOccupied" => {
            let m = parse_as!(pb::BedOccupied, payload);
            DomainEvent::Facility(FacilityEvent::BedOccupied {
                category: wire("category", m.category)?,
                placement_id: id("placement_id", &m.placement_id)?,
            })
        }
        "BedVacated" => {
            let m = parse_as!(pb::BedVacated, payload);
            DomainEvent::Facility(FacilityEvent::BedVacated {
                category: wire("category", m.category)?,
                placement_id: id("placement_id", &m.placement_id)?,
                outcome: wire("outcome", m.outcome)?,
            })
        }
        "CaseReported" => {
            let m = parse_as!(pb::CaseReported, payload);
            let p = m.patient.ok_or("patient: missing")?;
            DomainEvent::Case(CaseEvent::Reported {
                report: CaseReport {
                    health_center_id: field(
                        "health_center_id",
                        FacilityId::parse(&m.health_center_id),
                    )?,
                    external_ref: opt_field("external_ref", &m.external_ref, ExternalRef::parse)?,
                    patient: Patient {
                        name: field("patient.name", Name::parse(&p.name))?,
                        name_kana: opt_field("patient.name_kana", &p.name_kana, Name::parse)?,
                        birth_date: field("patient.birth_date", Date::parse(&p.birth_date, DATE))?,
                        sex: wire("patient.sex", p.sex)?,
                        phone: opt_field("patient.phone", &p.phone, Phone::parse)?,
                        address: field("patient.address", Text::parse(&p.address))?,
                    },
                    municipality: field("municipality", MunicipalityCode::parse(&m.municipality))?,
                    risk_factors: wire_set("risk_factors", &m.risk_factors)?,
                    severity: wire("severity", m.severity)?,
                    needs: wire_set("needs", &m.needs)?,
                },
                priority: priority(m.priority)?,
                priority_rule_version: m.priority_rule_version,
                reported_at: at("reported_at", m.reported_at.as_ref())?,
            })
        }
        "CaseTriaged" => {
            let m = parse_as!(pb::CaseTriaged, payload);
            DomainEvent::Case(CaseEvent::Triaged {
                severity: wire("severity", m.severity)?,
                risk_factors: wire_set("risk_factors", &m.risk_factors)?,
                needs: wire_set("needs", &m.needs)?,
                priority: priority(m.priority)?,
                priority_rule_version: m.priority_rule_version,
                note: field("note", Text::parse(&m.note))?,
            })
        }
        "PriorityOverridden" => {
            let m = parse_as!(pb::PriorityOverridden, payload);
            DomainEvent::Case(CaseEvent::PriorityOverridden {
                priority: priority(m.priority)?,
                computed_priority: priority(m.computed_priority)?,
                reason: field("reason", Reason::parse(&m.reason))?,
            })
        }
        "ObservationRecorded" => {
            let m = parse_as!(pb::ObservationRecorded, payload);
            DomainEvent::Case(CaseEvent::ObservationRecorded(Observation {
                observed_at: at("observed_at", m.observed_at.as_ref())?,
                temperature: match m.temperature_decicelsius {
                    0 => None,
                    t => Some(field(
                        "temperature_decicelsius",
                        Temperature::from_decicelsius(i64::from(t)),
                    )?),
                },
                spo2: match m.spo2_percent {
                    0 => None,
                    s => Some(field("spo2_percent", Spo2::new(i64::from(s)))?),
                },
                on_oxygen: m.on_oxygen,
                symptoms: m
                    .symptoms
                    .iter()
                    .map(|s| field("symptoms", Name::parse(s)))
                    .collect::<Decoded<_>>()?,
                note: field("note", Text::parse(&m.note))?,
                recorded_by: opt_field("recorded_by", &m.recorded_by, FacilityId::parse)?,
            }))
        }
        "DeteriorationFlagged" => {
            let m = parse_as!(pb::DeteriorationFlagged, payload);
            DomainEvent::Case(CaseEvent::DeteriorationFlagged {
                observed_at: at("observed_at", m.observed_at.as_ref())?,
                spo2: field("spo2_percent", Spo2::new(i64::from(m.spo2_percent)))?,
                severity: wire("severity", m.severity)?,
                band_floor: field(
                    "band_floor_percent",
                    Spo2::new(i64::from(m.band_floor_percent)),
                )?,
            })
        }
        "HomeCareStarted" => {
            let m = parse_as!(pb::HomeCareStarted, payload);
            DomainEvent::Case(CaseEvent::HomeCareStarted {
                started_at: at("started_at", m.started_at.as_ref())?,
                note: field("note", Text::parse(&m.note))?,
            })
        }
        "CareSiteAssigned" => {
            let m = parse_as!(pb::CareSiteAssigned, payload);
            DomainEvent::Case(CaseEvent::CareSiteAssigned {
                care_site: opt_field("care_site_id", &m.care_site_id, FacilityId::parse)?,
                note: field("note", Text::parse(&m.note))?,
            })
        }
        "CaseStatusChanged" => {
            let m = parse_as!(pb::CaseStatusChanged, payload);
            DomainEvent::Case(CaseEvent::StatusChanged {
                from: wire("from", m.from)?,
                to: wire("to", m.to)?,
                placement_id: id("placement_id", &m.placement_id)?,
                facility_id: opt_field("facility_id", &m.facility_id, FacilityId::parse)?,
            })
        }
        "TransferRequested" => {
            let m = parse_as!(pb::TransferRequested, payload);
            DomainEvent::Case(CaseEvent::TransferRequested {
                placement_id: id("placement_id", &m.placement_id)?,
                from_facility: field("from_facility_id", FacilityId::parse(&m.from_facility_id))?,
            })
        }
        "TransferCancelled" => {
            let m = parse_as!(pb::TransferCancelled, payload);
            DomainEvent::Case(CaseEvent::TransferCancelled {
                placement_id: id("placement_id", &m.placement_id)?,
            })
        }
        "ConsultOpened" => {
            let m = parse_as!(pb::ConsultOpened, payload);
            DomainEvent::Case(CaseEvent::ConsultOpened {
                consult_id: id("consult_id", &m.consult_id)?,
                center: opt_field("center_id", &m.center_id, FacilityId::parse)?,
            })
        }
        "ConsultClosed" => {
            let m = parse_as!(pb::ConsultClosed, payload);
            DomainEvent::Case(CaseEvent::ConsultClosed {
                consult_id: id("consult_id", &m.consult_id)?,
            })
        }
        "CaseClosed" => {
            let m = parse_as!(pb::CaseClosed, payload);
            DomainEvent::Case(CaseEvent::Closed {
                outcome: wire("outcome", m.outcome)?,
                closed_at: at("closed_at", m.closed_at.as_ref())?,
                note: field("note", Text::parse(&m.note))?,
            })
        }
        "PlacementRequested" => {
            let m = parse_as!(pb::PlacementRequested, payload);
            let origin = match m.origin.and_then(|o| o.origin).ok_or("origin: missing")? {
                pb::placement_origin::Origin::HomeMunicipality(code) => Origin::Home(field(
                    "origin.home_municipality",
                    MunicipalityCode::parse(&code),
                )?),
                pb::placement_origin::Origin::FacilityId(facility) => {
                    Origin::Facility(field("origin.facility_id", FacilityId::parse(&facility))?)
                }
            };
            DomainEvent::Placement(PlacementEvent::Requested {
                case_id: id("case_id", &m.case_id)?,
                requested_by: field("requested_by", FacilityId::parse(&m.requested_by))?,
                category: wire("category", m.category)?,
                needs: wire_set("needs", &m.needs)?,
                priority: priority(m.priority)?,
                origin,
                requested_at: at("requested_at", m.requested_at.as_ref())?,
                note: field("note", Text::parse(&m.note))?,
            })
        }
        "PlacementOffered" => {
            let m = parse_as!(pb::PlacementOffered, payload);
            DomainEvent::Placement(PlacementEvent::Offered {
                target: field(
                    "target_facility_id",
                    FacilityId::parse(&m.target_facility_id),
                )?,
                offered_at: at("offered_at", m.offered_at.as_ref())?,
                offer_deadline: at("offer_deadline", m.offer_deadline.as_ref())?,
            })
        }
        "PlacementAccepted" => {
            let m = parse_as!(pb::PlacementAccepted, payload);
            DomainEvent::Placement(PlacementEvent::Accepted {
                facility: field("facility_id", FacilityId::parse(&m.facility_id))?,
                accepted_at: at("accepted_at", m.accepted_at.as_ref())?,
                hold_deadline: at("hold_deadline", m.hold_deadline.as_ref())?,
                capacity_override: if m.capacity_overridden {
                    Some(field("override_reason", Reason::parse(&m.override_reason))?)
                } else {
                    None
                },
            })
        }
        "PlacementDeclined" => {
            let m = parse_as!(pb::PlacementDeclined, payload);
            DomainEvent::Placement(PlacementEvent::Declined {
                facility: field("facility_id", FacilityId::parse(&m.facility_id))?,
                reason: field("reason", Reason::parse(&m.reason))?,
                declined_at: at("declined_at", m.declined_at.as_ref())?,
            })
        }
        "OfferExpired" => {
            let m = parse_as!(pb::OfferExpired, payload);
            DomainEvent::Placement(PlacementEvent::OfferExpired {
                facility: field("facility_id", FacilityId::parse(&m.facility_id))?,
                offer_deadline: at("offer_deadline", m.offer_deadline.as_ref())?,
            })
        }
        "TransportArranged" => {
            let m = parse_as!(pb::TransportArranged, payload);
            DomainEvent::Placement(PlacementEvent::TransportArranged(Transport {
                vehicle: wire("vehicle", m.vehicle)?,
                pickup_at: m
                    .pickup_at
                    .as_ref()
                    .map(|t| at("pickup_at", Some(t)))
                    .transpose()?,
                note: field("note", Text::parse(&m.note))?,
            }))
        }
        "PatientDeparted" => {
            let m = parse_as!(pb::PatientDeparted, payload);
            DomainEvent::Placement(PlacementEvent::Departed {
                departed_at: at("departed_at", m.departed_at.as_ref())?,
            })
        }
        "PatientArrived" => {
            let m = parse_as!(pb::PatientArrived, payload);
            DomainEvent::Placement(PlacementEvent::Arrived {
                facility: field("facility_id", FacilityId::parse(&m.facility_id))?,
                arrived_at: at("arrived_at", m.arrived_at.as_ref())?,
            })
        }
        "PlacementCancelled" => {
            let m = parse_as!(pb::PlacementCancelled, payload);
            DomainEvent::Placement(PlacementEvent::Cancelled {
                reason: field("reason", Reason::parse(&m.reason))?,
                cancelled_in: wire("cancelled_in", m.cancelled_in)?,
                cancelled_at: at("cancelled_at", m.cancelled_at.as_ref())?,
            })
        }
        "PatientDischarged" => {
            let m = parse_as!(pb::PatientDischarged, payload);
            DomainEvent::Placement(PlacementEvent::Discharged {
                facility: field("facility_id", FacilityId::parse(&m.facility_id))?,
                case_id: id("case_id", &m.case_id)?,
                outcome: wire("outcome", m.outcome)?,
                discharged_at: at("discharged_at", m.discharged_at.as_ref())?,
                note: field("note", Text::parse(&m.note))?,
                transferred_to: match m.transferred_to.as_str() {
                    "" => None,
                    placement => Some(id("transferred_to", placement)?),
                },
            })
        }
        other => return crate::consult::decode(other, payload),
    })
}

/// Generated facility events survive the wire: encoding, then decoding, gives the event
/// back, whatever its figures, times, ids and free text (DESIGN.md §13).
#[cfg(test)]
mod properties {
    use noroshi_domain::values::{Acceptance, AcceptanceConstraint, BedCategory, DischargeOutcome};
    use proptest::prelude::*;

    use super::*;

    fn at() -> impl Strategy<Value = OffsetDateTime> {
        // 1970 to 2100, to the nanosecond (what a protobuf Timestamp carries).
        (0_i64..4_102_444_800, 0_i64..1_000_000_000).prop_map(|(s, n)| {
            OffsetDateTime::from_unix_timestamp_nanos(i128::from(s) * 1_000_000_000 + i128::from(n))
                .unwrap()
        })
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["\\PC{1,80}", "[ぁ-ん一-龥ー、。]{1,40}", "[ -~]{1,200}"]
    }

    fn reason() -> impl Strategy<Value = Reason> {
        text().prop_filter_map("a valid reason", |t| Reason::parse(&t).ok())
    }

    fn note() -> impl Strategy<Value = Text> {
        text().prop_filter_map("a valid text", |t| Text::parse(&t).ok())
    }

    fn proxy() -> impl Strategy<Value = Option<ProxyEntry>> {
        proptest::option::of(("[a-z][a-z0-9-]{1,30}[a-z0-9]", reason()).prop_filter_map(
            "a valid facility id",
            |(id, reason)| {
                FacilityId::parse(&id)
                    .ok()
                    .map(|entered_by| ProxyEntry { entered_by, reason })
            },
        ))
    }

    fn category() -> impl Strategy<Value = BedCategory> {
        prop::sample::select(BedCategory::ALL)
    }

    fn facility_event() -> impl Strategy<Value = FacilityEvent> {
        let figures = (category(), 0_u32..100_000, 0_u32..100_000, 0_u32..100_000).prop_map(
            |(category, secured, ready, occupied)| CategoryFigures {
                category,
                secured,
                ready,
                occupied,
            },
        );
        let placement = any::<u128>().prop_map(uuid::Uuid::from_u128);
        prop_oneof![
            (prop::collection::vec(figures, 1..5), at(), proxy()).prop_map(
                |(categories, declared_at, proxy)| FacilityEvent::CapacityDeclared {
                    categories,
                    declared_at,
                    proxy,
                }
            ),
            (
                category(),
                prop::sample::select(Acceptance::ALL),
                prop::collection::btree_set(prop::sample::select(AcceptanceConstraint::ALL), 0..4),
                at(),
                proxy()
            )
                .prop_map(|(category, acceptance, constraints, changed_at, proxy)| {
                    FacilityEvent::AcceptanceChanged {
                        category,
                        acceptance,
                        constraints,
                        changed_at,
                        proxy,
                    }
                }),
            (
                category(),
                placement.clone(),
                at(),
                proptest::option::of(reason())
            )
                .prop_map(
                    |(category, placement_id, hold_deadline, capacity_override)| {
                        FacilityEvent::BedHeld {
                            category,
                            placement_id,
                            hold_deadline,
                            capacity_override,
                        }
                    }
                ),
            (category(), placement.clone(), note()).prop_map(|(category, placement_id, reason)| {
                FacilityEvent::BedHoldReleased {
                    category,
                    placement_id,
                    reason,
                }
            }),
            (category(), placement.clone()).prop_map(|(category, placement_id)| {
                FacilityEvent::BedOccupied {
                    category,
                    placement_id,
                }
            }),
            (
                category(),
                placement,
                prop::sample::select(DischargeOutcome::ALL)
            )
                .prop_map(|(category, placement_id, outcome)| {
                    FacilityEvent::BedVacated {
                        category,
                        placement_id,
                        outcome,
                    }
                }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn a_facility_event_decodes_to_itself(event in facility_event(), occurred in at()) {
            let event = DomainEvent::Facility(event);
            let new = encode(&event, "hofu-central", occurred);
            let decoded = decode_payload(&new.event_type, &new.payload);
            prop_assert_eq!(decoded.ok(), Some(event));
        }

        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(
            payload in prop::collection::vec(any::<u8>(), 0..256),
            kind in prop::sample::select(vec![
                "CapacityDeclared", "AcceptanceChanged", "BedHeld", "CaseReported",
                "PlacementRequested", "ObservationRecorded", "Unknown",
            ]),
        ) {
            let _ = decode_payload(&format!("noroshi.v1.{kind}"), &Bytes::from(payload));
        }
    }
}
