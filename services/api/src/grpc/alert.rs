use noroshi_proto::v1 as pb;

use super::command_service;

command_service! {
    Alerts: pb::alert_service_server::AlertService, noroshi_identity::Scope::Alerts, {
        acknowledge_alert(pb::AcknowledgeAlertRequest);
        set_alert_rule(pb::SetAlertRuleRequest);
    }
}
