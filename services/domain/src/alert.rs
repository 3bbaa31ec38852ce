//! Alerts, stream `alert-<alert_id>`, and the rules HQ sets for them, stream
//! `alertrules-prefecture` (DESIGN.md §5.6).
//!
//! ```text
//! OPEN --acknowledge (by whom, note)--> ACKNOWLEDGED
//!   \                                       |
//!    \--- its cause went away -------------+--> RESOLVED
//! OPEN and CRITICAL, unacknowledged for the escalation delay --> escalated to HQ
//! ```
//!
//! An alert's id derives from its kind, its cause and the cause's episode
//! ([`alert_id`]), so a cause raises its alert once however many schedulers see it; a
//! cause that comes back after its alert was resolved is the next episode.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{DomainError, Violations};
use crate::values::{
    AlertKind, AlertSeverity, AlertStatus, AlertSubjectKind, BedCategory, FacilityId,
    MedicalAreaCode, PrincipalId, Role, Text,
};

/// Namespace of alert ids derived from their causes.
const ALERT_NAMESPACE: Uuid = Uuid::from_u128(0x6e6f_726f_7368_6900_8000_616c_6572_7473);

/// The one stream of alert rules: the prefecture's.
pub const RULES_STREAM_ID: &str = "prefecture";

/// The id of the alert of `kind` for `cause` (e.g. a placement and its offer number), in
/// its `episode` (1 for the first time the cause holds).
pub fn alert_id(kind: AlertKind, cause: &str, episode: u32) -> Uuid {
    Uuid::new_v5(
        &ALERT_NAMESPACE,
        format!("{kind}/{cause}/{episode}").as_bytes(),
    )
}

/// What an alert names: a facility, case, placement or consult by its id, or a medical
/// area by its code (with the bed category, `3504/MODERATE`, for occupancy).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct AlertSubject {
    pub kind: AlertSubjectKind,
    pub id: String,
}

/// Who is told: every principal of these roles, and every principal of these
/// organisations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Audience {
    pub roles: BTreeSet<Role>,
    pub organisations: BTreeSet<FacilityId>,
}

impl Audience {
    /// Whether a principal of `role` in `organisation` is told.
    pub fn includes(&self, role: Role, organisation: &FacilityId) -> bool {
        self.roles.contains(&role) || self.organisations.contains(organisation)
    }
}

/// Who decides a command: the principal and its organisation.
#[derive(Debug, Clone, Copy)]
pub struct By<'a> {
    pub principal: &'a PrincipalId,
    pub organisation: &'a FacilityId,
}

/// An alert as the scheduler raises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raise {
    pub kind: AlertKind,
    pub severity: AlertSeverity,
    pub subject: AlertSubject,
    pub audience: Audience,
    /// What raised it, e.g. `placement-<id>/offer-2`: with `episode`, its id.
    pub cause: String,
    pub episode: u32,
    /// What a reader needs to act, in facts rather than patient data.
    pub message: Text,
    /// The case the subject belongs to, if any: the alert shows in its timeline.
    pub case_id: Option<Uuid>,
}

/// A cause that holds now, as the scheduler finds it in the read models: the alert to
/// raise when none is open for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub kind: AlertKind,
    pub severity: AlertSeverity,
    pub subject: AlertSubject,
    pub audience: Audience,
    pub cause: String,
    pub message: Text,
    pub case_id: Option<Uuid>,
}

impl Condition {
    /// The alert of this cause's `episode`.
    pub fn raise(self, episode: u32) -> Raise {
        Raise {
            kind: self.kind,
            severity: self.severity,
            subject: self.subject,
            audience: self.audience,
            cause: self.cause,
            episode,
            message: self.message,
            case_id: self.case_id,
        }
    }
}

/// An alert not resolved, as the scheduler reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    pub alert_id: Uuid,
    pub kind: AlertKind,
    pub cause: String,
    pub severity: AlertSeverity,
    pub status: AlertStatus,
    pub raised_at: OffsetDateTime,
    pub escalated_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertEvent {
    Raised {
        alert: Raise,
        raised_at: OffsetDateTime,
    },
    /// Unacknowledged past the escalation delay: HQ is told too.
    Escalated { escalated_at: OffsetDateTime },
    Acknowledged {
        by: PrincipalId,
        organisation: FacilityId,
        note: Text,
        acknowledged_at: OffsetDateTime,
    },
    /// Its cause went away.
    Resolved {
        resolved_at: OffsetDateTime,
        reason: Text,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertCommand {
    /// By the scheduler.
    Raise(Raise),
    /// By the scheduler.
    Escalate,
    /// By a principal of its audience.
    Acknowledge { note: Text },
    /// By the scheduler.
    Resolve { reason: Text },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgement {
    pub by: PrincipalId,
    pub organisation: FacilityId,
    pub note: Text,
    pub at: OffsetDateTime,
}

/// A raised alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRecord {
    pub alert: Raise,
    pub raised_at: OffsetDateTime,
    pub status: AlertStatus,
    pub escalated_at: Option<OffsetDateTime>,
    pub acknowledged: Option<Acknowledgement>,
    pub resolved_at: Option<OffsetDateTime>,
}

impl AlertRecord {
    /// Its audience now: HQ joins once it escalated.
    pub fn audience(&self) -> Audience {
        let mut audience = self.alert.audience.clone();
        if self.escalated_at.is_some() {
            audience.roles.insert(Role::Hq);
        }
        audience
    }
}

/// State of one alert stream; `record` is `None` until raised.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Alert {
    pub record: Option<AlertRecord>,
}

impl Alert {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a AlertEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }

    /// Decides `command` of `by` at `now`. Access is checked before (`authz`).
    pub fn decide(
        &self,
        command: AlertCommand,
        by: By<'_>,
        now: OffsetDateTime,
    ) -> Result<Vec<AlertEvent>, DomainError> {
        match command {
            AlertCommand::Raise(alert) => {
                if self.record.is_some() {
                    return Err(DomainError::AlreadyExists("alert".into()));
                }
                if alert.episode == 0 || alert.cause.is_empty() {
                    return Err(DomainError::invalid("cause", "an alert names its cause"));
                }
                Ok(vec![AlertEvent::Raised {
                    alert,
                    raised_at: now,
                }])
            }
            AlertCommand::Escalate => {
                let record = self.unresolved()?;
                if record.alert.severity != AlertSeverity::Critical {
                    return Err(DomainError::precondition("only a CRITICAL alert escalates"));
                }
                if record.status != AlertStatus::Open || record.escalated_at.is_some() {
                    return Err(DomainError::precondition(format!(
                        "the alert is {}{}; only an open alert escalates, once",
                        record.status,
                        if record.escalated_at.is_some() {
                            " and escalated"
                        } else {
                            ""
                        }
                    )));
                }
                Ok(vec![AlertEvent::Escalated { escalated_at: now }])
            }
            AlertCommand::Acknowledge { note } => match &self.unresolved()?.acknowledged {
                Some(done) => Err(DomainError::precondition(format!(
                    "the alert was acknowledged already by {} of {}",
                    done.by, done.organisation
                ))),
                None => Ok(vec![AlertEvent::Acknowledged {
                    by: by.principal.clone(),
                    organisation: by.organisation.clone(),
                    note,
                    acknowledged_at: now,
                }]),
            },
            AlertCommand::Resolve { reason } => {
                self.unresolved()?;
                Ok(vec![AlertEvent::Resolved {
                    resolved_at: now,
                    reason,
                }])
            }
        }
    }

    /// The record of a raised alert whose cause has not gone away.
    fn unresolved(&self) -> Result<&AlertRecord, DomainError> {
        let record = self
            .record
            .as_ref()
            .ok_or_else(|| DomainError::NotFound("alert".into()))?;
        if record.status == AlertStatus::Resolved {
            return Err(DomainError::precondition(
                "the alert is RESOLVED: its cause went away",
            ));
        }
        Ok(record)
    }

    pub fn evolve(&mut self, event: &AlertEvent) {
        match event {
            AlertEvent::Raised { alert, raised_at } => {
                self.record = Some(AlertRecord {
                    alert: alert.clone(),
                    raised_at: *raised_at,
                    status: AlertStatus::Open,
                    escalated_at: None,
                    acknowledged: None,
                    resolved_at: None,
                });
            }
            AlertEvent::Escalated { escalated_at } => {
                if let Some(record) = &mut self.record {
                    record.escalated_at = Some(*escalated_at);
                }
            }
            AlertEvent::Acknowledged {
                by,
                organisation,
                note,
                acknowledged_at,
            } => {
                if let Some(record) = &mut self.record {
                    record.status = AlertStatus::Acknowledged;
                    record.acknowledged = Some(Acknowledgement {
                        by: by.clone(),
                        organisation: organisation.clone(),
                        note: note.clone(),
                        at: *acknowledged_at,
                    });
                }
            }
            AlertEvent::Resolved { resolved_at, .. } => {
                if let Some(record) = &mut self.record {
                    record.status = AlertStatus::Resolved;
                    record.resolved_at = Some(*resolved_at);
                }
            }
        }
    }
}

/// A rule HQ sets (`SetAlertRule`). An area of `None` is every area without a rule of
/// its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertRule {
    /// Occupancy of an area's category over `warning_percent` raises a WARNING, over
    /// `critical_percent` a CRITICAL alert (the national stage indicators: 50 % and 70 %).
    Occupancy {
        area: Option<MedicalAreaCode>,
        category: BedCategory,
        warning_percent: u32,
        critical_percent: u32,
    },
    /// A request without an accepted offer for longer than this is `WAITING_TOO_LONG`.
    WaitingLimit {
        area: Option<MedicalAreaCode>,
        minutes: u32,
    },
    /// A facility that has not declared its capacity for this long is `CAPACITY_STALE`.
    StaleLimit { hours: u32 },
    /// An unacknowledged CRITICAL alert escalates to HQ after this long.
    EscalationDelay { minutes: u32 },
}

/// What a rule replaces: the rule of the same kind, area and category.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuleKey {
    Occupancy(Option<MedicalAreaCode>, BedCategory),
    WaitingLimit(Option<MedicalAreaCode>),
    StaleLimit,
    EscalationDelay,
}

impl AlertRule {
    pub fn key(&self) -> RuleKey {
        match self {
            Self::Occupancy { area, category, .. } => RuleKey::Occupancy(area.clone(), *category),
            Self::WaitingLimit { area, .. } => RuleKey::WaitingLimit(area.clone()),
            Self::StaleLimit { .. } => RuleKey::StaleLimit,
            Self::EscalationDelay { .. } => RuleKey::EscalationDelay,
        }
    }

    fn violations(&self) -> Violations {
        let mut v = Violations::new();
        match self {
            Self::Occupancy {
                warning_percent,
                critical_percent,
                ..
            } => {
                if !(1..=100).contains(warning_percent) {
                    v.add("rule.occupancy.warning_percent", "must be 1 to 100");
                }
                if !(1..=100).contains(critical_percent) {
                    v.add("rule.occupancy.critical_percent", "must be 1 to 100");
                } else if critical_percent <= warning_percent {
                    v.add(
                        "rule.occupancy.critical_percent",
                        "must be above warning_percent",
                    );
                }
            }
            Self::WaitingLimit { minutes, .. } => {
                if !(1..=10_080).contains(minutes) {
                    v.add("rule.waiting_limit.minutes", "must be 1 to 10080 (a week)");
                }
            }
            Self::StaleLimit { hours } => {
                if !(1..=720).contains(hours) {
                    v.add("rule.stale_limit.hours", "must be 1 to 720 (30 days)");
                }
            }
            Self::EscalationDelay { minutes } => {
                if !(1..=1_440).contains(minutes) {
                    v.add("rule.escalation_delay.minutes", "must be 1 to 1440 (a day)");
                }
            }
        }
        v
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertRulesEvent {
    RuleSet {
        rule: AlertRule,
        set_by: PrincipalId,
        set_at: OffsetDateTime,
    },
}

/// The rules in force, by what each replaces; the defaults where HQ set none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertRules {
    pub rules: BTreeMap<RuleKey, AlertRule>,
}

/// The defaults: the national stage indicators for every area and category, three
/// hours' wait, a day without a declaration, a quarter of an hour to escalate.
pub const DEFAULT_WARNING_PERCENT: u32 = 50;
pub const DEFAULT_CRITICAL_PERCENT: u32 = 70;
pub const DEFAULT_WAITING_MINUTES: u32 = 180;
pub const DEFAULT_STALE_HOURS: u32 = 24;
pub const DEFAULT_ESCALATION_MINUTES: u32 = 15;

impl AlertRules {
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a AlertRulesEvent>) -> Self {
        events
            .into_iter()
            .fold(Self::default(), |mut state, event| {
                state.evolve(event);
                state
            })
    }

    /// Decides `SetAlertRule` by `set_by`.
    pub fn set(
        &self,
        rule: AlertRule,
        set_by: &PrincipalId,
        now: OffsetDateTime,
    ) -> Result<Vec<AlertRulesEvent>, DomainError> {
        self.rules_violations(&rule).into_result()?;
        if self.rules.get(&rule.key()) == Some(&rule) {
            return Err(DomainError::precondition("the rule is in force already"));
        }
        Ok(vec![AlertRulesEvent::RuleSet {
            rule,
            set_by: set_by.clone(),
            set_at: now,
        }])
    }

    fn rules_violations(&self, rule: &AlertRule) -> Violations {
        rule.violations()
    }

    pub fn evolve(&mut self, event: &AlertRulesEvent) {
        let AlertRulesEvent::RuleSet { rule, .. } = event;
        self.rules.insert(rule.key(), rule.clone());
    }

    /// Warning and critical occupancy percentages for an area's category.
    pub fn occupancy(&self, area: &MedicalAreaCode, category: BedCategory) -> (u32, u32) {
        let own = RuleKey::Occupancy(Some(area.clone()), category);
        let every = RuleKey::Occupancy(None, category);
        match self.rules.get(&own).or_else(|| self.rules.get(&every)) {
            Some(AlertRule::Occupancy {
                warning_percent,
                critical_percent,
                ..
            }) => (*warning_percent, *critical_percent),
            _ => (DEFAULT_WARNING_PERCENT, DEFAULT_CRITICAL_PERCENT),
        }
    }

    /// How long a request may wait for an accepted offer in an area.
    pub fn waiting_limit(&self, area: Option<&MedicalAreaCode>) -> time::Duration {
        let own = area.map(|a| RuleKey::WaitingLimit(Some(a.clone())));
        let rule = own
            .and_then(|key| self.rules.get(&key))
            .or_else(|| self.rules.get(&RuleKey::WaitingLimit(None)));
        let minutes = match rule {
            Some(AlertRule::WaitingLimit { minutes, .. }) => *minutes,
            _ => DEFAULT_WAITING_MINUTES,
        };
        time::Duration::minutes(i64::from(minutes))
    }

    pub fn stale_limit(&self) -> time::Duration {
        let hours = match self.rules.get(&RuleKey::StaleLimit) {
            Some(AlertRule::StaleLimit { hours }) => *hours,
            _ => DEFAULT_STALE_HOURS,
        };
        time::Duration::hours(i64::from(hours))
    }

    /// Every rule in force: those HQ set, and the defaults for what it did not (the
    /// occupancy thresholds of every area for each category, the prefecture's waiting limit,
    /// the stale limit and the escalation delay).
    pub fn in_force(&self) -> Vec<AlertRule> {
        let defaults = BedCategory::ALL
            .iter()
            .map(|&category| AlertRule::Occupancy {
                area: None,
                category,
                warning_percent: DEFAULT_WARNING_PERCENT,
                critical_percent: DEFAULT_CRITICAL_PERCENT,
            })
            .chain([
                AlertRule::WaitingLimit {
                    area: None,
                    minutes: DEFAULT_WAITING_MINUTES,
                },
                AlertRule::StaleLimit {
                    hours: DEFAULT_STALE_HOURS,
                },
                AlertRule::EscalationDelay {
                    minutes: DEFAULT_ESCALATION_MINUTES,
                },
            ]);
        let mut rules = self.rules.clone();
        for rule in defaults {
            rules.entry(rule.key()).or_insert(rule);
        }
        rules.into_values().collect()
    }

    pub fn escalation_delay(&self) -> time::Duration {
        let minutes = match self.rules.get(&RuleKey::EscalationDelay) {
            Some(AlertRule::EscalationDelay { minutes }) => *minutes,
            _ => DEFAULT_ESCALATION_MINUTES,
        };
        time::Duration::minutes(i64::from(minutes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2026-12-07 03:00 UTC);

    struct Who {
        id: PrincipalId,
        organisation: FacilityId,
        role: Role,
    }

    impl Who {
        fn by(&self) -> By<'_> {
            By {
                principal: &self.id,
                organisation: &self.organisation,
            }
        }
    }

    fn principal(role: Role, organisation: &str) -> Who {
        Who {
            id: PrincipalId::parse("user:nurse").unwrap(),
            organisation: FacilityId::parse(organisation).unwrap(),
            role,
        }
    }

    fn raise(severity: AlertSeverity) -> Raise {
        Raise {
            kind: AlertKind::Deterioration,
            severity,
            subject: AlertSubject {
                kind: AlertSubjectKind::Case,
                id: "0195".into(),
            },
            audience: Audience {
                roles: BTreeSet::new(),
                organisations: [FacilityId::parse("hofu-hc").unwrap()].into(),
            },
            cause: "case-0195/2026-12-07T03:00:00Z".into(),
            episode: 1,
            message: Text::parse("SpO₂ 91 %").unwrap(),
            case_id: None,
        }
    }

    fn raised(severity: AlertSeverity) -> Alert {
        let system = principal(Role::Hq, "system");
        let mut alert = Alert::default();
        for event in alert
            .decide(AlertCommand::Raise(raise(severity)), system.by(), NOW)
            .unwrap()
        {
            alert.evolve(&event);
        }
        alert
    }

    #[test]
    fn an_alert_is_acknowledged_once_and_resolved_once() {
        let nurse = principal(Role::HealthCenter, "hofu-hc");
        let mut alert = raised(AlertSeverity::Warning);
        let note = || Text::parse("電話で確認").unwrap();
        let done = alert
            .decide(AlertCommand::Acknowledge { note: note() }, nurse.by(), NOW)
            .unwrap();
        alert.evolve(&done[0]);
        assert_eq!(
            alert.record.as_ref().unwrap().status,
            AlertStatus::Acknowledged
        );
        let again = alert.decide(AlertCommand::Acknowledge { note: note() }, nurse.by(), NOW);
        assert!(matches!(again, Err(DomainError::Precondition(m)) if m.contains("user:nurse")));
        let resolve = AlertCommand::Resolve {
            reason: Text::parse("triaged").unwrap(),
        };
        let resolved = alert.decide(resolve.clone(), nurse.by(), NOW).unwrap();
        alert.evolve(&resolved[0]);
        assert!(matches!(
            alert.decide(resolve, nurse.by(), NOW),
            Err(DomainError::Precondition(_))
        ));
        assert!(matches!(
            alert.decide(
                AlertCommand::Raise(raise(AlertSeverity::Warning)),
                nurse.by(),
                NOW
            ),
            Err(DomainError::AlreadyExists(_))
        ));
    }

    #[test]
    fn only_an_open_critical_alert_escalates_and_then_hq_is_told() {
        let system = principal(Role::Hq, "system");
        let warning = raised(AlertSeverity::Warning);
        assert!(
            warning
                .decide(AlertCommand::Escalate, system.by(), NOW)
                .is_err()
        );
        let mut critical = raised(AlertSeverity::Critical);
        let hq = principal(Role::Hq, "yamaguchi-hq");
        let told = |alert: &Alert| {
            alert
                .record
                .as_ref()
                .unwrap()
                .audience()
                .includes(hq.role, &hq.organisation)
        };
        assert!(!told(&critical));
        let escalated = critical
            .decide(AlertCommand::Escalate, system.by(), NOW)
            .unwrap();
        critical.evolve(&escalated[0]);
        assert!(told(&critical));
        assert!(
            critical
                .decide(AlertCommand::Escalate, system.by(), NOW)
                .is_err()
        );
    }

    #[test]
    fn alert_ids_follow_the_cause_and_its_episode() {
        let first = alert_id(AlertKind::HoldOverdue, "placement-1", 1);
        assert_eq!(first, alert_id(AlertKind::HoldOverdue, "placement-1", 1));
        assert_ne!(first, alert_id(AlertKind::HoldOverdue, "placement-1", 2));
        assert_ne!(first, alert_id(AlertKind::TransportLate, "placement-1", 1));
    }

    #[test]
    fn rules_replace_their_own_kind_area_and_category_and_refuse_bad_figures() {
        let hq = principal(Role::Hq, "yamaguchi-hq");
        let area = MedicalAreaCode::parse("3504").unwrap();
        let mut rules = AlertRules::default();
        assert_eq!(rules.occupancy(&area, BedCategory::Moderate), (50, 70));
        let own = AlertRule::Occupancy {
            area: Some(area.clone()),
            category: BedCategory::Moderate,
            warning_percent: 40,
            critical_percent: 60,
        };
        for event in rules.set(own.clone(), &hq.id, NOW).unwrap() {
            rules.evolve(&event);
        }
        assert_eq!(rules.occupancy(&area, BedCategory::Moderate), (40, 60));
        assert_eq!(rules.occupancy(&area, BedCategory::Severe), (50, 70));
        assert!(matches!(
            rules.set(own, &hq.id, NOW),
            Err(DomainError::Precondition(_))
        ));
        let upside_down = AlertRule::Occupancy {
            area: None,
            category: BedCategory::Moderate,
            warning_percent: 70,
            critical_percent: 50,
        };
        assert!(matches!(
            rules.set(upside_down, &hq.id, NOW),
            Err(DomainError::Invalid(v))
                if v.iter().any(|v| v.field == "rule.occupancy.critical_percent")
        ));
        assert!(
            rules
                .set(AlertRule::EscalationDelay { minutes: 0 }, &hq.id, NOW)
                .is_err()
        );
        assert_eq!(rules.escalation_delay(), time::Duration::minutes(15));
        let in_force = rules.in_force();
        assert!(in_force.contains(&AlertRule::Occupancy {
            area: Some(area.clone()),
            category: BedCategory::Moderate,
            warning_percent: 40,
            critical_percent: 60,
        }));
        assert!(in_force.contains(&AlertRule::Occupancy {
            area: None,
            category: BedCategory::Moderate,
            warning_percent: 50,
            critical_percent: 70,
        }));
        assert!(in_force.contains(&AlertRule::EscalationDelay { minutes: 15 }));
        assert_eq!(in_force.len(), BedCategory::ALL.len() + 1 + 3);
    }
}
