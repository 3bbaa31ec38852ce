//! Bed capacity as FHIR R4 (4.0.1) `MeasureReport`s (docs/interop.md): a facility's beds,
//! the prefecture's totals, a `Bundle` of them, and the server's `CapabilityStatement`.
//! The populations are the HL7 SANER measured values (`numTotBeds`, `numTotBedsOcc`,
//! `numTotBedsAvail`, `numICUBeds`, …); noroshi's own categories and figures follow in
//! groups of their own code system.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// HL7 SANER's measured values (populations of bed capacity measures).
pub const SANER_MEASURED_VALUES: &str = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasuredValues";
/// HL7 SANER's measure groups.
pub const SANER_GROUPS: &str = "http://hl7.org/fhir/uv/saner/CodeSystem/MeasureGroupSystem";
/// noroshi's bed categories (DESIGN.md §5.1) and figures, as codes.
pub const NOROSHI_CATEGORIES: &str = "urn:noroshi:fhir:CodeSystem:bed-category";
pub const NOROSHI_FIGURES: &str = "urn:noroshi:fhir:CodeSystem:bed-figure";
/// The measure every report is of.
pub const MEASURE: &str = "urn:noroshi:fhir:Measure:bed-capacity";

/// One category of a facility's beds, as the bed board shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub secured: u64,
    pub ready: u64,
    pub occupied: u64,
    pub held: u64,
    pub available: u64,
}

impl std::ops::AddAssign for Figures {
    fn add_assign(&mut self, other: Self) {
        self.secured += other.secured;
        self.ready += other.ready;
        self.occupied += other.occupied;
        self.held += other.held;
        self.available += other.available;
    }
}

/// A place reported on: a facility, or the prefecture.
#[derive(Debug, Clone)]
pub struct Subject {
    /// The `Location` id: the facility id, or `prefecture-<code>`.
    pub id: String,
    pub name: String,
    /// `(category, figures)`, category as DESIGN.md names it (`SEVERE`, `MODERATE`,
    /// `MILD`, `HOTEL_ROOM`).
    pub categories: Vec<(String, Figures)>,
    /// When its figures were last declared (`None`: never, or a total).
    pub declared_at: Option<OffsetDateTime>,
}

/// A time as FHIR writes it, in Japan's offset.
fn instant(at: OffsetDateTime) -> String {
    at.to_offset(time::macros::offset!(+9))
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn coded(system: &str, code: &str, display: &str) -> Value {
    json!({"coding": [{"system": system, "code": code, "display": display}]})
}

fn population(system: &str, code: &str, display: &str, count: u64) -> Value {
    json!({"code": coded(system, code, display), "count": count})
}

/// The `MeasureReport` of `subject` at `now`, for the day (JST) up to `now`.
pub fn measure_report(subject: &Subject, now: OffsetDateTime) -> Value {
    let hospital = ["SEVERE", "MODERATE", "MILD"];
    let (mut beds, mut icu) = (Figures::default(), Figures::default());
    for (category, figures) in &subject.categories {
        if hospital.contains(&category.as_str()) {
            beds += *figures;
        }
        if category == "SEVERE" {
            icu += *figures;
        }
    }
    let saner = |code: &str, display: &str, count: u64| {
        population(SANER_MEASURED_VALUES, code, display, count)
    };
    let mut groups = vec![json!({
        "code": coded(SANER_GROUPS, "Beds", "Beds"),
        "population": [
            saner("numTotBeds", "All Hospital Beds", beds.secured),
            saner("numTotBedsOcc", "Hospital Beds Occupied", beds.occupied),
            saner("numTotBedsAvail", "Hospital Beds Available", beds.available),
            saner("numICUBeds", "ICU Beds", icu.secured),
            saner("numICUBedsOcc", "ICU Beds Occupied", icu.occupied),
            saner("numICUBedsAvail", "ICU Beds Available", icu.available),
        ],
    })];
    for (category, figures) in &subject.categories {
        let figure = |code: &str, display: &str, count: u64| {
            population(NOROSHI_FIGURES, code, display, count)
        };
        groups.push(json!({
            "code": coded(NOROSHI_CATEGORIES, category, category_display(category)),
            "population": [
                figure("secured", "Secured beds (確保病床)", figures.secured),
                figure("ready", "Ready beds (即応病床)", figures.ready),
                figure("occupied", "Occupied", figures.occupied),
                figure("held", "Held for an accepted placement", figures.held),
                figure("available", "Available", figures.available),
            ],
        }));
    }
    let day_start = now
        .to_offset(time::macros::offset!(+9))
        .replace_time(time::Time::MIDNIGHT);
    let mut report = json!({
        "resourceType": "MeasureReport",
        "id": format!("bed-capacity-{}", subject.id),
        "meta": {"lastUpdated": instant(now)},
        "status": "complete",
        "type": "summary",
        "measure": MEASURE,
        "subject": {"reference": format!("Location/{}", subject.id), "display": subject.name},
        "date": instant(now),
        "period": {"start": instant(day_start), "end": instant(now)},
        "group": groups,
    });
    if let Some(declared) = subject.declared_at {
        report["extension"] = json!([{
            "url": "urn:noroshi:fhir:StructureDefinition:declared-at",
            "valueDateTime": instant(declared),
        }]);
    }
    report
}

fn category_display(category: &str) -> &'static str {
    match category {
        "SEVERE" => "Severe (重症)",
        "MODERATE" => "Moderate (中等症)",
        "MILD" => "Mild (軽症)",
        "HOTEL_ROOM" => "Hotel recovery room (宿泊療養)",
        _ => "Other",
    }
}

/// A `Bundle` of `reports`: `collection` for the prefecture, `searchset` for a search.
pub fn bundle(kind: &str, id: &str, reports: Vec<Value>, now: OffsetDateTime) -> Value {
    let total = reports.len();
    let entries: Vec<Value> = reports
        .into_iter()
        .map(|report| {
            let id = report["id"].as_str().unwrap_or_default().to_owned();
            let url = uuid::Uuid::new_v5(
                &uuid::Uuid::NAMESPACE_URL,
                format!("noroshi:MeasureReport/{id}").as_bytes(),
            );
            let mut entry = json!({
                "fullUrl": format!("urn:uuid:{url}"),
                "resource": report,
            });
            if kind == "searchset" {
                entry["search"] = json!({"mode": "match"});
            }
            entry
        })
        .collect();
    let mut bundle = json!({
        "resourceType": "Bundle",
        "id": id,
        "meta": {"lastUpdated": instant(now)},
        "type": kind,
        "timestamp": instant(now),
        "entry": entries,
    });
    if kind == "searchset" {
        bundle["total"] = json!(total);
    }
    bundle
}

/// What `/fhir/r4` serves.
pub fn capability_statement(version: &str, now: OffsetDateTime) -> Value {
    let read = |name: &str, search: bool| {
        let mut interactions = vec![json!({"code": "read"})];
        if search {
            interactions.push(json!({"code": "search-type"}));
        }
        json!({"type": name, "interaction": interactions})
    };
    json!({
        "resourceType": "CapabilityStatement",
        "id": "noroshi",
        "status": "active",
        "date": instant(now),
        "publisher": "noroshi",
        "kind": "instance",
        "software": {"name": "noroshi", "version": version},
        "implementation": {"description": "noroshi bed capacity (SANER populations)"},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json"],
        "rest": [{
            "mode": "server",
            "documentation": "Bed capacity per facility and for the prefecture. Requests carry a bearer token or a session, as the rest of noroshi's API; each caller sees the facilities its bed board shows.",
            "security": {"description": "Bearer tokens (API clients) or the web session; see docs/identity.md"},
            "resource": [read("MeasureReport", true), read("Bundle", false)],
        }],
    })
}

/// An `OperationOutcome` for an error: `code` the FHIR issue type.
pub fn operation_outcome(code: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": code, "diagnostics": diagnostics}],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_facility_s_report_sums_its_hospital_beds_into_saner_populations() {
        let figures = |secured, occupied| Figures {
            secured,
            ready: secured,
            occupied,
            held: 0,
            available: secured - occupied,
        };
        let report = measure_report(
            &Subject {
                id: "hofu-central".into(),
                name: "防府中央病院".into(),
                categories: vec![
                    ("SEVERE".into(), figures(4, 1)),
                    ("MODERATE".into(), figures(10, 3)),
                    ("HOTEL_ROOM".into(), figures(50, 5)),
                ],
                declared_at: None,
            },
            datetime!(2026-12-06 18:00 UTC),
        );
        let saner = &report["group"][0]["population"];
        let count = |code: &str| {
            saner
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["code"]["coding"][0]["code"] == code)
                .unwrap()["count"]
                .clone()
        };
        assert_eq!(count("numTotBeds"), 14);
        assert_eq!(count("numTotBedsOcc"), 4);
        assert_eq!(count("numTotBedsAvail"), 10);
        assert_eq!(count("numICUBeds"), 4);
        assert_eq!(report["group"].as_array().unwrap().len(), 4);
        assert_eq!(report["period"]["start"], "2026-12-07T00:00:00+09:00");
        assert_eq!(report["period"]["end"], "2026-12-07T03:00:00+09:00");
    }
}
