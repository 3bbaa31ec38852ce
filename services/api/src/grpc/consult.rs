use noroshi_proto::v1 as pb;

use super::command_service;

command_service! {
    Consults: pb::consult_service_server::ConsultService, noroshi_identity::Scope::Consults, {
        request_consult(pb::RequestConsultRequest);
        schedule_consult(pb::ScheduleConsultRequest);
        start_consult(pb::StartConsultRequest);
        complete_consult(pb::CompleteConsultRequest);
        escalate_consult(pb::EscalateConsultRequest);
        cancel_consult(pb::CancelConsultRequest);
        mark_consult_missed(pb::MarkConsultMissedRequest);
    }
}
