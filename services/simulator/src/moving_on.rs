//! Patients who move on from their beds (DESIGN.md §5.4–5.5): hotel residents who
//! deteriorate are observed by the hotel and either seen by a remote doctor first or
//! escalated to a hospital at once; hospital patients step down to a hotel. Each move
//! is a placement requested by the facility where the patient is, who keeps the bed
//! until arrival (the server discharges the stay then).

use rand::RngExt;
use serde_json::{Value, json};

use crate::{DAY, SimPlacement, Simulation, Step};

/// A remote consultation as the simulation follows it.
#[derive(Debug)]
pub(crate) struct SimConsult {
    pub(crate) consult_id: String,
    case_id: String,
    /// The hotel stay of the resident it is about; `None` for a patient at home.
    stay: Option<String>,
    state: ConsultStep,
    next_at: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConsultStep {
    Requested,
    Scheduled,
    InProgress,
}

/// The placement a command's result names.
fn placement_of(result: &Value) -> Option<String> {
    result["streams"]
        .as_array()?
        .iter()
        .filter_map(|s| s["stream_id"].as_str())
        .find_map(|s| s.strip_prefix("placement-"))
        .map(str::to_owned)
}

/// A real time `minutes` from now, as the server reads times.
fn real_time_in(minutes: u64) -> String {
    let at = std::time::SystemTime::now() + std::time::Duration::from_secs(minutes * 60);
    humantime::format_rfc3339_seconds(at).to_string()
}

impl Simulation {
    /// Residents of hotels deteriorate, 8 % a day: the hotel records a low SpO₂, then asks
    /// the consult center (6 times in 10, when there is one) or a hospital bed at once.
    pub(crate) async fn residents_deteriorate(&mut self, now: f64, dt: f64) {
        let p_worse = (0.08 * dt / DAY).min(1.0);
        let residents: Vec<String> = self
            .placements
            .iter()
            .filter(|(_, p)| p.state == Step::Admitted && p.category == "HOTEL_ROOM" && !p.moving)
            .map(|(id, _)| id.clone())
            .collect();
        for stay in residents {
            if !self.rng.random_bool(p_worse) {
                continue;
            }
            let Some(p) = self.placements.get(&stay) else {
                continue;
            };
            let (hotel, case) = (p.offered_to.clone().unwrap_or_default(), p.case);
            let case_id = self.cases[case].case_id.clone();
            let observation = json!({"case_id": case_id,
                "observed_at": real_time_in(0),
                "spo2_percent": self.rng.random_range(88..93),
                "temperature_decicelsius": self.rng.random_range(378..392)});
            if self
                .command(&hotel, "RecordObservation", observation)
                .await
                .is_none()
            {
                continue;
            }
            self.summary.deteriorations += 1;
            if let Some(p) = self.placements.get_mut(&stay) {
                p.moving = true;
            }
            if self.consult_center.is_some() && self.rng.random_bool(0.6) {
                self.ask_consult(&stay, &hotel, &case_id, now).await;
            } else {
                self.move_on(&stay, &hotel, "MODERATE", now).await;
            }
        }
    }

    /// A hospital patient due to leave steps down to a hotel 2 times in 10: the hospital
    /// asks for a room, and the patient keeps the bed until arriving there. Whether it
    /// asked.
    pub(crate) async fn step_down(&mut self, stay: &str, now: f64) -> bool {
        let Some(p) = self.placements.get(stay) else {
            return false;
        };
        if p.category == "HOTEL_ROOM" || p.moving || !self.rng.random_bool(0.2) {
            return false;
        }
        let hospital = p.offered_to.clone().unwrap_or_default();
        let moved = self.move_on(stay, &hospital, "HOTEL_ROOM", now).await;
        if moved {
            self.summary.step_downs += 1;
        }
        moved
    }

    /// `facility` asks for a `category` bed for the patient of `stay`: a placement the
    /// simulation follows from here; the stay ends with its arrival, on the server.
    async fn move_on(
        &mut self,
        stay: &str,
        facility: &str,
        category: &'static str,
        now: f64,
    ) -> bool {
        let Some(case) = self.placements.get(stay).map(|p| p.case) else {
            return false;
        };
        let body = json!({"case_id": self.cases[case].case_id,
                          "category": format!("BED_CATEGORY_{category}")});
        let Some(placement) = self
            .command(facility, "RequestPlacement", body)
            .await
            .as_ref()
            .and_then(placement_of)
        else {
            if let Some(p) = self.placements.get_mut(stay) {
                p.moving = false;
            }
            return false;
        };
        self.follow_move(stay, case, placement, category, now);
        true
    }

    /// Follows the placement that moves the patient of `stay` on.
    fn follow_move(
        &mut self,
        stay: &str,
        case: usize,
        placement: String,
        category: &'static str,
        now: f64,
    ) {
        self.summary.placements += 1;
        if category != "HOTEL_ROOM" {
            self.summary.escalations += 1;
        }
        let origin = self.placements.get_mut(stay).and_then(|p| {
            p.state = Step::Done;
            p.offered_to.clone()
        });
        self.cases[case].placement = Some(placement.clone());
        self.placements.insert(
            placement,
            SimPlacement {
                case,
                requested_at: now,
                category,
                origin,
                ..SimPlacement::default()
            },
        );
    }

    /// The hotel asks the consult center to see its resident remotely, with a nurse
    /// beside them.
    async fn ask_consult(&mut self, stay: &str, hotel: &str, case_id: &str, now: f64) {
        let body = json!({"case_id": case_id, "mode": "CONSULT_MODE_D_TO_P_WITH_N",
            "urgency": "CONSULT_URGENCY_URGENT",
            "question": "SpO₂ が低下、入院の要否をご判断ください",
            "contact": "0835-00-0000"});
        let consult_id = self
            .command(hotel, "RequestConsult", body)
            .await
            .and_then(|r| r["stream_id"].as_str().map(str::to_owned))
            .and_then(|s| s.strip_prefix("consult-").map(str::to_owned));
        let Some(consult_id) = consult_id else {
            if let Some(p) = self.placements.get_mut(stay) {
                p.moving = false;
            }
            return;
        };
        self.summary.consults += 1;
        let next_at = now + self.rng.random_range(300.0..1800.0);
        self.consults.push(SimConsult {
            consult_id,
            case_id: case_id.to_owned(),
            stay: Some(stay.to_owned()),
            state: ConsultStep::Requested,
            next_at,
        });
    }

    /// The consult center takes each request, holds it, and recommends a hospital bed 7
    /// times in 10 (opening the placement request itself), else continued care.
    pub(crate) async fn advance_consults(&mut self, now: f64) {
        let Some(center) = self.consult_center.clone() else {
            return;
        };
        let mut index = 0;
        while index < self.consults.len() {
            if self.consults[index].next_at > now {
                index += 1;
                continue;
            }
            let id = self.consults[index].consult_id.clone();
            let step = self.consults[index].state;
            let done = match step {
                ConsultStep::Requested => {
                    let body = json!({"consult_id": id, "scheduled_for": real_time_in(30),
                                      "doctor": "遠隔 当番医"});
                    self.command(&center, "ScheduleConsult", body)
                        .await
                        .map(|_| Some(ConsultStep::Scheduled))
                }
                ConsultStep::Scheduled => self
                    .command(&center, "StartConsult", json!({"consult_id": id}))
                    .await
                    .map(|_| Some(ConsultStep::InProgress)),
                // A patient at home whose care site asked is followed up remotely; the
                // health center places them if they get worse.
                ConsultStep::InProgress => {
                    let at_home = self.consults[index].stay.is_none();
                    let escalate = !at_home && self.rng.random_bool(0.7);
                    let recommendation = match (escalate, at_home) {
                        (true, _) => "RECOMMENDATION_ESCALATE",
                        (false, true) => "RECOMMENDATION_PRESCRIBE",
                        (false, false) => "RECOMMENDATION_CONTINUE",
                    };
                    let body = json!({"consult_id": id, "findings": "呼吸状態を遠隔で確認",
                                      "recommendation": recommendation});
                    if self
                        .command(&center, "CompleteConsult", body)
                        .await
                        .is_some()
                    {
                        self.consult_ended(index, escalate, &center, now).await;
                    }
                    Some(None)
                }
            };
            match done {
                Some(Some(next)) => {
                    let consult = &mut self.consults[index];
                    consult.state = next;
                    consult.next_at = now + self.rng.random_range(600.0..2700.0);
                    index += 1;
                }
                // Completed (or failed at its end): no longer followed.
                Some(None) => {
                    self.consults.remove(index);
                }
                // Refused or failed: tried again at the next step.
                None => index += 1,
            }
        }
    }

    /// A completed consult: with ESCALATE the center opens the placement request, else
    /// the resident stays where they are.
    async fn consult_ended(&mut self, index: usize, escalate: bool, center: &str, now: f64) {
        let (consult_id, Some(stay)) = (
            self.consults[index].consult_id.clone(),
            self.consults[index].stay.clone(),
        ) else {
            return;
        };
        let case = self.placements.get(&stay).map(|p| p.case);
        let escalated = if escalate {
            let body = json!({"consult_id": consult_id, "category": "BED_CATEGORY_MODERATE"});
            self.command(center, "EscalateConsult", body)
                .await
                .as_ref()
                .and_then(placement_of)
        } else {
            None
        };
        match (escalated, case) {
            (Some(placement), Some(case)) => {
                self.follow_move(&stay, case, placement, "MODERATE", now);
            }
            _ => {
                if let Some(p) = self.placements.get_mut(&stay) {
                    p.moving = false;
                }
            }
        }
    }

    /// The health center puts a patient starting home care in the care of a clinic or
    /// mobile clinic, 4 times in 10 when the world has one.
    pub(crate) async fn assign_care_site(&mut self, index: usize) {
        if self.care_sites.is_empty() || !self.rng.random_bool(0.4) {
            return;
        }
        let site = self.care_sites[self.rng.random_range(0..self.care_sites.len())].clone();
        let case = &self.cases[index];
        let (hc, case_id) = (case.health_center.clone(), case.case_id.clone());
        let body =
            json!({"case_id": case_id, "care_site_id": site, "note": "訪問・オンライン診療"});
        if self.command(&hc, "AssignCareSite", body).await.is_some() {
            self.summary.cared += 1;
            self.cases[index].care_site = Some(site);
        }
    }

    /// Patients at home in a care site's care are visited, 15 % a day: the care site
    /// records what it sees and asks the consult center for a routine look (with a nurse
    /// beside the patient, D to P with N) half the time.
    pub(crate) async fn cared_at_home(&mut self, now: f64, dt: f64) {
        let p_visit = (0.15 * dt / DAY).min(1.0);
        for index in 0..self.cases.len() {
            let case = &self.cases[index];
            let Some(site) = case.care_site.clone() else {
                continue;
            };
            if !case.at_home || case.placement.is_some() || !self.rng.random_bool(p_visit) {
                continue;
            }
            let case_id = case.case_id.clone();
            let observation = json!({"case_id": case_id, "observed_at": real_time_in(0),
                "spo2_percent": self.rng.random_range(96..99),
                "temperature_decicelsius": self.rng.random_range(365..378)});
            if self
                .command(&site, "RecordObservation", observation)
                .await
                .is_none()
            {
                continue;
            }
            // One open consult per patient.
            if self.consult_center.is_none()
                || self.consults.iter().any(|c| c.case_id == case_id)
                || !self.rng.random_bool(0.5)
            {
                continue;
            }
            let body = json!({"case_id": case_id, "mode": "CONSULT_MODE_D_TO_P_WITH_N",
                "urgency": "CONSULT_URGENCY_ROUTINE",
                "question": "訪問時の所見について、処方の要否をご相談します",
                "contact": "https://meet.example.invalid/visit"});
            let consult_id = self
                .command(&site, "RequestConsult", body)
                .await
                .and_then(|r| r["stream_id"].as_str().map(str::to_owned))
                .and_then(|s| s.strip_prefix("consult-").map(str::to_owned));
            if let Some(consult_id) = consult_id {
                self.summary.consults += 1;
                let next_at = now + self.rng.random_range(300.0..1800.0);
                self.consults.push(SimConsult {
                    consult_id,
                    case_id,
                    stay: None,
                    state: ConsultStep::Requested,
                    next_at,
                });
            }
        }
    }
}
