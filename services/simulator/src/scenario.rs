//! Drill scenarios (docs/drills.md): a TOML file that says who reports how many cases
//! and when, what beds the facilities start with, how they answer offers and what goes
//! wrong (a hospital closing to admissions at night). A scenario is checked whole
//! against the organisations of the deployment before anything runs; each problem names
//! its field.
//!
//! ```toml
//! title = "冬の感染拡大（山口・防府）"
//! title_en = "Winter surge in Yamaguchi-Hofu"
//! duration = "3days"        # simulated time the scenario covers
//! speed = 60                # simulated seconds per real second
//! hq = "participants"       # or "automatic": the drill offers beds itself
//!
//! [[arrivals]]
//! medical_area = "3504"     # its health centers report the cases (or health_center = …)
//! per_day = 80
//! shape = "surge"           # "steady", or "surge": up to per_day halfway, down again
//!
//! [capacity]
//! others = "random"         # facilities not declared below: "random" or "none"
//! [[capacity.declare]]
//! facility = "hofu-sakuragi-general"
//! category = "MODERATE"
//! secured = 20
//! ready = 12
//! occupied = 9
//!
//! [[answers]]               # the first entry naming a facility (or "*") applies
//! facility = "*"
//! accept_percent = 75
//! decline_percent = 20      # the rest are left to expire
//! minutes = [5, 40]
//!
//! [[incident]]
//! at = "14h"                # simulated time since the start
//! facility = "hofu-sakuragi-general"
//! action = "close_admissions"   # or "reopen", or "declare" (category, secured, ready, occupied)
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Value, json};

/// A scenario file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The drill's name on every page's banner and on its report.
    pub title: String,
    #[serde(default)]
    pub title_en: String,
    #[serde(default)]
    pub description: String,
    /// Simulated time the scenario covers (`"3days"`, `"10h"`).
    pub duration: String,
    /// Simulated seconds per real second; 1 plays the scenario in real time.
    #[serde(default = "real_time")]
    pub speed: f64,
    /// Who offers beds: the participants at HQ's page, or the drill itself.
    #[serde(default)]
    pub hq: Hq,
    /// Seed for a repeatable run.
    #[serde(default)]
    pub seed: Option<u64>,
    #[serde(default)]
    pub arrivals: Vec<Arrivals>,
    #[serde(default)]
    pub capacity: Capacity,
    #[serde(default)]
    pub answers: Vec<Answers>,
    #[serde(default)]
    pub incident: Vec<Incident>,
}

fn real_time() -> f64 {
    1.0
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Hq {
    /// People at HQ's page offer the beds: what a drill is for.
    #[default]
    Participants,
    /// The drill offers each waiting placement to the top candidate itself.
    Automatic,
}

/// New cases reported by the health centers of an area (or one health center).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Arrivals {
    #[serde(default)]
    pub medical_area: Option<String>,
    #[serde(default)]
    pub health_center: Option<String>,
    /// Cases a simulated day (at the peak, for a surge).
    pub per_day: f64,
    #[serde(default)]
    pub shape: Shape,
    /// When the flow starts and ends, in simulated time since the start.
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub until: Option<String>,
    /// Weights of the severities (`MILD = 50`, …); the surge simulator's mix by default.
    #[serde(default)]
    pub severity: BTreeMap<String, u32>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Shape {
    #[default]
    Steady,
    /// Rises to `per_day` halfway through its window and falls again.
    Surge,
}

/// The beds facilities declare when the drill starts.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Capacity {
    #[serde(default)]
    pub others: Others,
    #[serde(default)]
    pub declare: Vec<Declare>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Others {
    /// Figures drawn as the surge simulator draws them.
    #[default]
    Random,
    /// Nothing: their staff declare during the drill.
    None,
}

/// One category's figures of one facility.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declare {
    pub facility: String,
    pub category: String,
    pub secured: u32,
    pub ready: u32,
    #[serde(default)]
    pub occupied: u32,
}

/// How a facility (or every facility, `"*"`) answers offers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Answers {
    pub facility: String,
    pub accept_percent: u32,
    pub decline_percent: u32,
    /// Simulated minutes to answer, the shortest and the longest.
    #[serde(default = "answer_minutes")]
    pub minutes: [f64; 2],
}

fn answer_minutes() -> [f64; 2] {
    [5.0, 40.0]
}

/// Something that happens at a moment of the scenario.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Incident {
    /// Simulated time since the start.
    pub at: String,
    pub facility: String,
    pub action: Action,
    /// For `declare`.
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub secured: Option<u32>,
    #[serde(default)]
    pub ready: Option<u32>,
    #[serde(default)]
    pub occupied: Option<u32>,
    /// What the facility says (a decline's reason while it is closed).
    #[serde(default)]
    pub note: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Every category of the facility stops accepting; offers are declined.
    CloseAdmissions,
    /// Every category accepts again.
    Reopen,
    /// New figures for one category.
    Declare,
}

/// An organisation the drill acts as: what the deployment registered and a token.
#[derive(Debug, Clone)]
pub struct Organisation {
    pub facility_id: String,
    /// `HQ`, `HEALTH_CENTER`, `HOSPITAL`, `HOTEL`, …
    pub kind: String,
    pub medical_area: String,
    pub jurisdiction: Vec<String>,
    pub token: String,
}

const CATEGORIES: &[&str] = &["SEVERE", "MODERATE", "MILD", "HOTEL_ROOM"];
const SEVERITIES: &[&str] = &[
    "ASYMPTOMATIC",
    "MILD",
    "MODERATE_I",
    "MODERATE_II",
    "SEVERE",
];
/// The surge simulator's mix of severities, in the order of [`SEVERITIES`].
pub(crate) const DEFAULT_MIX: &[u32] = &[10, 52, 22, 11, 5];

/// A flow of new cases, checked.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    /// The health centers that report them, with their municipalities.
    pub(crate) health_centers: Vec<(String, Vec<String>)>,
    pub(crate) per_day: f64,
    pub(crate) surge: bool,
    pub(crate) from: f64,
    pub(crate) until: f64,
    /// Weights in the order of [`SEVERITIES`].
    pub(crate) mix: Vec<u32>,
}

impl Flow {
    /// Cases a simulated day at simulated second `now`.
    pub(crate) fn rate(&self, now: f64) -> f64 {
        if now < self.from || now >= self.until {
            return 0.0;
        }
        if !self.surge {
            return self.per_day;
        }
        let progress = (now - self.from) / (self.until - self.from);
        self.per_day * (std::f64::consts::PI * progress).sin().max(0.05)
    }

    /// A severity drawn from the mix by `roll` in `0..total`.
    pub(crate) fn severity(&self, mut roll: u32) -> &'static str {
        for (severity, weight) in SEVERITIES.iter().zip(&self.mix) {
            if roll < *weight {
                return severity;
            }
            roll -= weight;
        }
        "MILD"
    }

    pub(crate) fn total(&self) -> u32 {
        self.mix.iter().sum()
    }
}

/// How a facility answers, checked.
#[derive(Debug, Clone)]
pub(crate) struct AnswerRule {
    pub(crate) facility: Option<String>,
    pub(crate) accept: u32,
    pub(crate) decline: u32,
    pub(crate) minutes: (f64, f64),
}

/// An incident, checked: when (simulated seconds), which facility, what it sends.
#[derive(Debug, Clone)]
pub(crate) struct Event {
    pub(crate) at: f64,
    pub(crate) facility: String,
    pub(crate) action: Action,
    /// For `declare`: the category's figures as `DeclareCapacity` takes them.
    pub(crate) figures: Option<Value>,
    pub(crate) note: String,
}

/// Everything the simulation follows, checked: the surge simulator builds one from its
/// flags, a drill from its scenario.
#[derive(Debug, Clone)]
pub(crate) struct Script {
    /// Simulated seconds.
    pub(crate) duration: f64,
    pub(crate) hq_offers: bool,
    pub(crate) flows: Vec<Flow>,
    /// Facilities' declarations at the start, and whether the others get random ones.
    pub(crate) declarations: Vec<(String, Vec<Value>)>,
    pub(crate) random_others: bool,
    pub(crate) answers: Vec<AnswerRule>,
    /// In time order.
    pub(crate) incidents: Vec<Event>,
}

impl Script {
    /// The surge simulator's: every health center, a surge over `days` up to `peak` a
    /// day, random capacity, HQ offering, 75 % accepted and 20 % declined.
    pub(crate) fn surge(peak: f64, days: f64, health_centers: Vec<(String, Vec<String>)>) -> Self {
        let duration = days * crate::DAY;
        Self {
            duration,
            hq_offers: true,
            flows: vec![Flow {
                health_centers,
                per_day: peak,
                surge: true,
                from: 0.0,
                until: duration,
                mix: DEFAULT_MIX.to_vec(),
            }],
            declarations: Vec::new(),
            random_others: true,
            answers: vec![AnswerRule {
                facility: None,
                accept: 75,
                decline: 20,
                minutes: (5.0, 40.0),
            }],
            incidents: Vec::new(),
        }
    }

    /// How `facility` answers.
    pub(crate) fn answers_of(&self, facility: &str) -> AnswerRule {
        self.answers
            .iter()
            .find(|rule| rule.facility.as_deref().is_none_or(|f| f == facility))
            .cloned()
            .unwrap_or(AnswerRule {
                facility: None,
                accept: 75,
                decline: 20,
                minutes: (5.0, 40.0),
            })
    }
}

/// A duration written in a scenario, in seconds; `field` names it in the problem.
fn seconds(field: &str, text: &str, problems: &mut Vec<String>) -> f64 {
    match humantime::parse_duration(text.trim()) {
        Ok(duration) => duration.as_secs_f64(),
        Err(error) => {
            problems.push(format!(
                "{field}: {text:?} is not a duration ({error}; e.g. \"90min\", \"1day 6h\")"
            ));
            0.0
        }
    }
}

impl Scenario {
    /// Reads and parses a scenario file.
    pub fn parse(text: &str) -> Result<Self, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    /// The scenario's own problems, whatever the deployment (durations, percentages,
    /// names of categories and severities).
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let _ = self.check_against(&[], &mut problems, false);
        problems
    }

    /// Checks the scenario against the organisations the drill acts as: every problem
    /// at once, or the script.
    pub(crate) fn script(&self, organisations: &[Organisation]) -> Result<Script, Vec<String>> {
        let mut problems = Vec::new();
        let script = self.check_against(organisations, &mut problems, true);
        if problems.is_empty() {
            Ok(script)
        } else {
            Err(problems)
        }
    }

    fn check_against(
        &self,
        organisations: &[Organisation],
        problems: &mut Vec<String>,
        known: bool,
    ) -> Script {
        let find = |id: &str| organisations.iter().find(|o| o.facility_id == id);
        let facility = |field: String, id: &str, problems: &mut Vec<String>| {
            if known && find(id).is_none_or(|o| !keeps_beds(&o.kind)) {
                problems.push(format!(
                    "{field}: {id:?} is not a registered hospital, hotel or temporary facility"
                ));
            }
        };
        if self.title.trim().is_empty() || self.title.chars().count() > 100 {
            problems.push("title: must be 1 to 100 characters".into());
        }
        let duration = seconds("duration", &self.duration, problems);
        if duration <= 0.0 && problems.is_empty() {
            problems.push("duration: must be more than 0".into());
        }
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 100_000.0) {
            problems.push("speed: must be more than 0 and at most 100000".into());
        }
        let mut flows = Vec::new();
        for (index, arrivals) in self.arrivals.iter().enumerate() {
            let field = format!("arrivals[{index}]");
            let health_centers: Vec<(String, Vec<String>)> = organisations
                .iter()
                .filter(|o| o.kind == "HEALTH_CENTER" && !o.jurisdiction.is_empty())
                .filter(
                    |o| match (&arrivals.medical_area, &arrivals.health_center) {
                        (_, Some(hc)) => &o.facility_id == hc,
                        (Some(area), None) => &o.medical_area == area,
                        (None, None) => true,
                    },
                )
                .map(|o| (o.facility_id.clone(), o.jurisdiction.clone()))
                .collect();
            if known && health_centers.is_empty() {
                problems.push(format!(
                    "{field}: no registered health center {} reports cases",
                    match (&arrivals.medical_area, &arrivals.health_center) {
                        (_, Some(hc)) => format!("named {hc:?}"),
                        (Some(area), None) => format!("of medical area {area:?}"),
                        (None, None) => "at all".into(),
                    }
                ));
            }
            if !(arrivals.per_day.is_finite() && (0.0..=100_000.0).contains(&arrivals.per_day)) {
                problems.push(format!("{field}.per_day: must be 0 to 100000"));
            }
            let from = arrivals
                .from
                .as_deref()
                .map_or(0.0, |t| seconds(&format!("{field}.from"), t, problems));
            let until = arrivals.until.as_deref().map_or(duration, |t| {
                seconds(&format!("{field}.until"), t, problems)
            });
            // (A duration that did not parse is named once, above.)
            if until <= from && duration > 0.0 {
                problems.push(format!("{field}.until: must come after from"));
            }
            let mut mix = DEFAULT_MIX.to_vec();
            if !arrivals.severity.is_empty() {
                mix = vec![0; SEVERITIES.len()];
                for (name, weight) in &arrivals.severity {
                    match SEVERITIES.iter().position(|s| s == name) {
                        Some(at) => mix[at] = *weight,
                        None => problems.push(format!(
                            "{field}.severity.{name}: must be one of {}",
                            SEVERITIES.join(", ")
                        )),
                    }
                }
                if mix.iter().sum::<u32>() == 0 {
                    problems.push(format!("{field}.severity: the weights add up to 0"));
                }
            }
            flows.push(Flow {
                health_centers,
                per_day: arrivals.per_day,
                surge: arrivals.shape == Shape::Surge,
                from,
                until,
                mix,
            });
        }
        let mut declarations: Vec<(String, Vec<Value>)> = Vec::new();
        for (index, declare) in self.capacity.declare.iter().enumerate() {
            let field = format!("capacity.declare[{index}]");
            facility(format!("{field}.facility"), &declare.facility, problems);
            let figures = figures(
                &field,
                &declare.category,
                declare.secured,
                declare.ready,
                declare.occupied,
                problems,
            );
            match declarations
                .iter_mut()
                .find(|(f, _)| f == &declare.facility)
            {
                Some((_, categories)) => categories.push(figures),
                None => declarations.push((declare.facility.clone(), vec![figures])),
            }
        }
        let mut answers = Vec::new();
        for (index, rule) in self.answers.iter().enumerate() {
            let field = format!("answers[{index}]");
            let named = (rule.facility != "*").then(|| rule.facility.clone());
            if let Some(id) = &named {
                facility(format!("{field}.facility"), id, problems);
            }
            if rule.accept_percent + rule.decline_percent > 100 {
                problems.push(format!(
                    "{field}: accept_percent and decline_percent add up to more than 100"
                ));
            }
            let [shortest, longest] = rule.minutes;
            if !(shortest.is_finite()
                && longest.is_finite()
                && 0.0 < shortest
                && shortest < longest)
            {
                problems.push(format!(
                    "{field}.minutes: must be [shortest, longest] with 0 < shortest < longest"
                ));
            }
            answers.push(AnswerRule {
                facility: named,
                accept: rule.accept_percent,
                decline: rule.decline_percent,
                minutes: (shortest, longest),
            });
        }
        let mut incidents = Vec::new();
        for (index, incident) in self.incident.iter().enumerate() {
            let field = format!("incident[{index}]");
            let at = seconds(&format!("{field}.at"), &incident.at, problems);
            facility(format!("{field}.facility"), &incident.facility, problems);
            let figures = match incident.action {
                Action::Declare => {
                    let (Some(category), Some(secured), Some(ready)) =
                        (&incident.category, incident.secured, incident.ready)
                    else {
                        problems.push(format!(
                            "{field}: declare needs category, secured and ready"
                        ));
                        continue;
                    };
                    Some(figures(
                        &field,
                        category,
                        secured,
                        ready,
                        incident.occupied.unwrap_or(0),
                        problems,
                    ))
                }
                Action::CloseAdmissions | Action::Reopen => None,
            };
            incidents.push(Event {
                at,
                facility: incident.facility.clone(),
                action: incident.action,
                figures,
                note: incident.note.clone(),
            });
        }
        incidents.sort_by(|a, b| a.at.total_cmp(&b.at));
        Script {
            duration,
            hq_offers: self.hq == Hq::Automatic,
            flows,
            declarations,
            random_others: self.capacity.others == Others::Random,
            answers,
            incidents,
        }
    }
}

/// Whether an organisation of `kind` keeps beds.
fn keeps_beds(kind: &str) -> bool {
    matches!(kind, "HOSPITAL" | "HOTEL" | "TEMPORARY")
}

/// One category's figures as `DeclareCapacity` takes them.
fn figures(
    field: &str,
    category: &str,
    secured: u32,
    ready: u32,
    occupied: u32,
    problems: &mut Vec<String>,
) -> Value {
    if !CATEGORIES.contains(&category) {
        problems.push(format!(
            "{field}.category: must be one of {}",
            CATEGORIES.join(", ")
        ));
    }
    if ready > secured {
        problems.push(format!(
            "{field}.ready: must be at most secured ({secured})"
        ));
    }
    json!({"category": format!("BED_CATEGORY_{category}"),
           "secured": secured, "ready": ready, "occupied": occupied})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn organisations() -> Vec<Organisation> {
        let org = |id: &str, kind: &str, area: &str, jurisdiction: &[&str]| Organisation {
            facility_id: id.into(),
            kind: kind.into(),
            medical_area: area.into(),
            jurisdiction: jurisdiction.iter().map(|s| (*s).into()).collect(),
            token: format!("token-{id}"),
        };
        vec![
            org(
                "yamaguchi-hc",
                "HEALTH_CENTER",
                "3504",
                &["352039", "352063"],
            ),
            org("ube-hc", "HEALTH_CENTER", "3505", &["352021"]),
            org("hofu-sakuragi-general", "HOSPITAL", "3504", &[]),
        ]
    }

    #[test]
    fn the_shipped_scenarios_check_against_the_demo_organisations() {
        for text in [
            include_str!("../../../ops/drills/winter-surge-yamaguchi-hofu.toml"),
            include_str!("../../../ops/drills/night-closure.toml"),
        ] {
            let scenario = Scenario::parse(text).expect("parses");
            assert_eq!(scenario.problems(), Vec::<String>::new());
        }
    }

    #[test]
    fn a_scenario_is_checked_whole_and_each_problem_named() {
        let text = r#"
            title = "t"
            duration = "3 parsecs"
            speed = 0
            [[arrivals]]
            medical_area = "3599"
            per_day = 10
            severity = { MILD = 1, GRAVE = 2 }
            [[capacity.declare]]
            facility = "yamaguchi-hc"
            category = "ICU"
            secured = 2
            ready = 3
            [[answers]]
            facility = "*"
            accept_percent = 80
            decline_percent = 30
            [[incident]]
            at = "2h"
            facility = "nowhere"
            action = "declare"
        "#;
        let scenario = Scenario::parse(text).expect("parses");
        let problems = scenario.script(&organisations()).expect_err("refused");
        let expected = [
            "duration: \"3 parsecs\"",
            "speed: must be more than 0",
            "arrivals[0]: no registered health center of medical area \"3599\"",
            "arrivals[0].severity.GRAVE: must be one of",
            "capacity.declare[0].facility: \"yamaguchi-hc\" is not a registered hospital",
            "capacity.declare[0].category: must be one of",
            "capacity.declare[0].ready: must be at most secured (2)",
            "answers[0]: accept_percent and decline_percent add up to more than 100",
            "incident[0].facility: \"nowhere\"",
            "incident[0]: declare needs category, secured and ready",
        ];
        for text in expected {
            assert!(
                problems.iter().any(|p| p.starts_with(text)),
                "{text:?} not in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
    }

    #[test]
    fn a_surge_peaks_halfway_and_a_flow_keeps_to_its_window() {
        let scenario = Scenario::parse(
            r#"
            title = "t"
            duration = "2days"
            [[arrivals]]
            medical_area = "3504"
            per_day = 100
            shape = "surge"
            [[arrivals]]
            health_center = "ube-hc"
            per_day = 10
            from = "12h"
            until = "1day"
            severity = { SEVERE = 1 }
        "#,
        )
        .expect("parses");
        let script = scenario.script(&organisations()).expect("checks");
        let (surge, steady) = (&script.flows[0], &script.flows[1]);
        assert_eq!(surge.health_centers[0].0, "yamaguchi-hc");
        assert!((surge.rate(86_400.0) - 100.0).abs() < 1e-9);
        assert!(surge.rate(3_600.0) < 20.0);
        assert_eq!(steady.rate(3_600.0), 0.0);
        assert_eq!(steady.rate(50_000.0), 10.0);
        assert_eq!(steady.rate(86_400.0), 0.0);
        assert_eq!(steady.severity(0), "SEVERE");
        assert!(!script.hq_offers);
    }
}
