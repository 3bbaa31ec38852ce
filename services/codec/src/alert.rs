//! Alert events (`alert-<id>`) and alert rules (`alertrules-prefecture`, DESIGN.md §5.6)
//! ⇄ `noroshi.v1.Alert*` messages.

use bytes::Bytes;
use noroshi_domain::alert::{
    AlertEvent, AlertRule, AlertRulesEvent, AlertSubject, Audience, Raise,
};
use noroshi_domain::authz::Role;
use noroshi_domain::values::{FacilityId, MedicalAreaCode, PrincipalId, Text};
use noroshi_domain::{DomainEvent, Violations};
use noroshi_proto::Message;
use noroshi_proto::v1 as pb;
use pb::alert_rule::Rule;

use crate::enums::WireEnum;
use crate::fields::{Decoded, at, field, message, opt_field, opt_string, wire};
use crate::timestamps::to_timestamp;

fn parse<M: Message + Default>(payload: &Bytes) -> Decoded<M> {
    M::decode(payload.clone()).map_err(|e| e.to_string())
}

pub(crate) fn encode(event: &AlertEvent, alert_id: &str) -> (String, Bytes) {
    let id = alert_id.to_owned();
    match event {
        AlertEvent::Raised { alert, raised_at } => message(pb::AlertRaised {
            alert_id: id,
            kind: alert.kind.to_wire(),
            severity: alert.severity.to_wire(),
            subject_kind: alert.subject.kind.to_wire(),
            subject_id: alert.subject.id.clone(),
            audience_roles: alert
                .audience
                .roles
                .iter()
                .map(|r| r.as_str().to_owned())
                .collect(),
            audience_organisations: alert
                .audience
                .organisations
                .iter()
                .map(ToString::to_string)
                .collect(),
            cause: alert.cause.clone(),
            episode: alert.episode,
            message: alert.message.to_string(),
            case_id: opt_string(alert.case_id.as_ref()),
            raised_at: Some(to_timestamp(*raised_at)),
        }),
        AlertEvent::Escalated { escalated_at } => message(pb::AlertEscalated {
            alert_id: id,
            escalated_at: Some(to_timestamp(*escalated_at)),
        }),
        AlertEvent::Acknowledged {
            by,
            organisation,
            note,
            acknowledged_at,
        } => message(pb::AlertAcknowledged {
            alert_id: id,
            by: by.to_string(),
            organisation_id: organisation.to_string(),
            note: note.to_string(),
            acknowledged_at: Some(to_timestamp(*acknowledged_at)),
        }),
        AlertEvent::Resolved {
            resolved_at,
            reason,
        } => message(pb::AlertResolved {
            alert_id: id,
            resolved_at: Some(to_timestamp(*resolved_at)),
            reason: reason.to_string(),
        }),
    }
}

pub(crate) fn encode_rules(event: &AlertRulesEvent) -> (String, Bytes) {
    let AlertRulesEvent::RuleSet {
        rule,
        set_by,
        set_at,
    } = event;
    message(pb::AlertRuleSet {
        rule: Some(rule_to_wire(rule)),
        set_by: set_by.to_string(),
        set_at: Some(to_timestamp(*set_at)),
    })
}

/// A rule as the wire carries it.
pub fn rule_to_wire(rule: &AlertRule) -> pb::AlertRule {
    let area = |area: &Option<MedicalAreaCode>| opt_string(area.as_ref());
    let rule = match rule {
        AlertRule::Occupancy {
            area: a,
            category,
            warning_percent,
            critical_percent,
        } => Rule::Occupancy(pb::OccupancyRule {
            medical_area: area(a),
            category: category.to_wire(),
            warning_percent: *warning_percent,
            critical_percent: *critical_percent,
        }),
        AlertRule::WaitingLimit { area: a, minutes } => Rule::WaitingLimit(pb::WaitingLimitRule {
            medical_area: area(a),
            minutes: *minutes,
        }),
        AlertRule::StaleLimit { hours } => Rule::StaleLimit(pb::StaleLimitRule { hours: *hours }),
        AlertRule::EscalationDelay { minutes } => {
            Rule::EscalationDelay(pb::EscalationDelayRule { minutes: *minutes })
        }
    };
    pb::AlertRule { rule: Some(rule) }
}

/// A rule from the wire; each bad field named under `prefix` (e.g. `rule`). The ranges
/// are the domain's to check.
pub fn rule_from_wire(rule: Option<&pb::AlertRule>, prefix: &str) -> Result<AlertRule, Violations> {
    let mut v = Violations::new();
    let mut area = |name: &str, value: &str| -> Option<Option<MedicalAreaCode>> {
        if value.is_empty() {
            return Some(None);
        }
        v.check(
            format!("{prefix}.{name}.medical_area"),
            MedicalAreaCode::parse(value),
        )
        .map(Some)
    };
    let parsed = match rule.and_then(|r| r.rule.as_ref()) {
        None => None,
        Some(Rule::Occupancy(r)) => {
            let a = area("occupancy", &r.medical_area);
            let category = v.check(
                format!("{prefix}.occupancy.category"),
                noroshi_domain::values::BedCategory::from_wire(r.category),
            );
            a.zip(category)
                .map(|(area, category)| AlertRule::Occupancy {
                    area,
                    category,
                    warning_percent: r.warning_percent,
                    critical_percent: r.critical_percent,
                })
        }
        Some(Rule::WaitingLimit(r)) => {
            area("waiting_limit", &r.medical_area).map(|area| AlertRule::WaitingLimit {
                area,
                minutes: r.minutes,
            })
        }
        Some(Rule::StaleLimit(r)) => Some(AlertRule::StaleLimit { hours: r.hours }),
        Some(Rule::EscalationDelay(r)) => Some(AlertRule::EscalationDelay { minutes: r.minutes }),
    };
    match parsed {
        Some(rule) if v.is_empty() => Ok(rule),
        Some(_) => Err(v),
        None if v.is_empty() => Err(Violations::one(
            prefix,
            "is required: occupancy, waiting_limit, stale_limit or escalation_delay",
        )),
        None => Err(v),
    }
}

pub(crate) fn decode(event_type: &str, payload: &Bytes) -> Decoded<DomainEvent> {
    let event = match event_type {
        "AlertRaised" => {
            let m: pb::AlertRaised = parse(payload)?;
            let roles = m
                .audience_roles
                .iter()
                .map(|r| Role::parse(r).ok_or_else(|| format!("audience_roles: unknown role {r}")))
                .collect::<Decoded<_>>()?;
            let organisations = m
                .audience_organisations
                .iter()
                .map(|o| field("audience_organisations", FacilityId::parse(o)))
                .collect::<Decoded<_>>()?;
            AlertEvent::Raised {
                alert: Raise {
                    kind: wire("kind", m.kind)?,
                    severity: wire("severity", m.severity)?,
                    subject: AlertSubject {
                        kind: wire("subject_kind", m.subject_kind)?,
                        id: m.subject_id,
                    },
                    audience: Audience {
                        roles,
                        organisations,
                    },
                    cause: m.cause,
                    episode: m.episode,
                    message: field("message", Text::parse(&m.message))?,
                    case_id: opt_field("case_id", &m.case_id, uuid::Uuid::try_parse)?,
                },
                raised_at: at("raised_at", m.raised_at.as_ref())?,
            }
        }
        "AlertEscalated" => {
            let m: pb::AlertEscalated = parse(payload)?;
            AlertEvent::Escalated {
                escalated_at: at("escalated_at", m.escalated_at.as_ref())?,
            }
        }
        "AlertAcknowledged" => {
            let m: pb::AlertAcknowledged = parse(payload)?;
            AlertEvent::Acknowledged {
                by: field("by", PrincipalId::parse(&m.by))?,
                organisation: field("organisation_id", FacilityId::parse(&m.organisation_id))?,
                note: field("note", Text::parse(&m.note))?,
                acknowledged_at: at("acknowledged_at", m.acknowledged_at.as_ref())?,
            }
        }
        "AlertResolved" => {
            let m: pb::AlertResolved = parse(payload)?;
            AlertEvent::Resolved {
                resolved_at: at("resolved_at", m.resolved_at.as_ref())?,
                reason: field("reason", Text::parse(&m.reason))?,
            }
        }
        "AlertRuleSet" => {
            let m: pb::AlertRuleSet = parse(payload)?;
            let rule = rule_from_wire(m.rule.as_ref(), "rule").map_err(|v| {
                v.iter()
                    .map(|v| format!("{}: {}", v.field, v.description))
                    .collect::<Vec<_>>()
                    .join("; ")
            })?;
            return Ok(DomainEvent::AlertRules(AlertRulesEvent::RuleSet {
                rule,
                set_by: field("set_by", PrincipalId::parse(&m.set_by))?,
                set_at: at("set_at", m.set_at.as_ref())?,
            }));
        }
        other => return Err(format!("unknown event type {other}")),
    };
    Ok(DomainEvent::Alert(event))
}

#[cfg(test)]
mod tests {
    use noroshi_domain::values::{AlertKind, AlertSeverity, AlertSubjectKind, BedCategory};
    use time::macros::datetime;

    use super::*;

    #[test]
    fn every_alert_event_decodes_to_itself() {
        let at = datetime!(2026-12-07 03:00 UTC);
        let alert = Raise {
            kind: AlertKind::HoldOverdue,
            severity: AlertSeverity::Warning,
            subject: AlertSubject {
                kind: AlertSubjectKind::Placement,
                id: uuid::Uuid::now_v7().to_string(),
            },
            audience: Audience {
                roles: [Role::Hq].into(),
                organisations: [FacilityId::parse("hofu-central").unwrap()].into(),
            },
            cause: "placement-x".into(),
            episode: 2,
            message: Text::parse("保留期限を過ぎています").unwrap(),
            case_id: Some(uuid::Uuid::now_v7()),
        };
        let events = [
            DomainEvent::Alert(AlertEvent::Raised {
                alert,
                raised_at: at,
            }),
            DomainEvent::Alert(AlertEvent::Escalated { escalated_at: at }),
            DomainEvent::Alert(AlertEvent::Acknowledged {
                by: PrincipalId::parse("user:hofu.beds").unwrap(),
                organisation: FacilityId::parse("hofu-central").unwrap(),
                note: Text::parse("搬送中と確認").unwrap(),
                acknowledged_at: at,
            }),
            DomainEvent::Alert(AlertEvent::Resolved {
                resolved_at: at,
                reason: Text::parse("arrived").unwrap(),
            }),
        ];
        for event in events {
            let DomainEvent::Alert(inner) = &event else {
                unreachable!()
            };
            let (event_type, payload) = encode(inner, "a");
            let name = event_type.strip_prefix("noroshi.v1.").unwrap();
            assert_eq!(decode(name, &payload).unwrap(), event, "{name}");
        }
        for rule in [
            AlertRule::Occupancy {
                area: Some(MedicalAreaCode::parse("3504").unwrap()),
                category: BedCategory::Moderate,
                warning_percent: 50,
                critical_percent: 70,
            },
            AlertRule::WaitingLimit {
                area: None,
                minutes: 120,
            },
            AlertRule::StaleLimit { hours: 12 },
            AlertRule::EscalationDelay { minutes: 10 },
        ] {
            let event = AlertRulesEvent::RuleSet {
                rule,
                set_by: PrincipalId::parse("user:hq.duty").unwrap(),
                set_at: at,
            };
            let (event_type, payload) = encode_rules(&event);
            let name = event_type.strip_prefix("noroshi.v1.").unwrap();
            assert_eq!(
                decode(name, &payload).unwrap(),
                DomainEvent::AlertRules(event)
            );
        }
    }

    #[test]
    fn a_rule_from_the_wire_names_its_bad_fields() {
        let bad = pb::AlertRule {
            rule: Some(Rule::Occupancy(pb::OccupancyRule {
                medical_area: "nowhere".into(),
                category: 0,
                warning_percent: 50,
                critical_percent: 70,
            })),
        };
        let violations = rule_from_wire(Some(&bad), "rule").unwrap_err();
        let fields: Vec<&str> = violations.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["rule.occupancy.medical_area", "rule.occupancy.category"]
        );
        let none = rule_from_wire(None, "rule").unwrap_err();
        assert_eq!(none.iter().next().unwrap().field, "rule");
    }
}
