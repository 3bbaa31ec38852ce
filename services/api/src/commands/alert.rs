//! `AlertService` requests as alert commands (DESIGN.md §5.6).

use noroshi_app::Command;
use noroshi_domain::Violations;
use noroshi_domain::values::Text;
use noroshi_proto::v1 as pb;

use super::{Parsed, envelope};
use crate::convert::fields::{command_id, finish, uuid};
use crate::error::ApiError;

pub fn acknowledge(r: &pb::AcknowledgeAlertRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let alert_id = uuid(&r.alert_id, "alert_id", &mut v);
    let note = v.check("note", Text::parse(&r.note));
    let (id, alert_id, note) = finish(v, (|| Some((id?, alert_id?, note?)))())?;
    Ok((
        envelope(id, r.expected_version),
        Command::AcknowledgeAlert { alert_id, note },
    ))
}

pub fn set_rule(r: &pb::SetAlertRuleRequest) -> Result<Parsed, ApiError> {
    let mut v = Violations::new();
    let id = command_id(&r.command_id, &mut v);
    let rule = noroshi_codec::alert::rule_from_wire(r.rule.as_ref(), "rule")
        .map_err(|violations| v.extend(violations))
        .ok();
    let (id, rule) = finish(v, (|| Some((id?, rule?)))())?;
    Ok((
        envelope(id, r.expected_version),
        Command::SetAlertRule(rule),
    ))
}
