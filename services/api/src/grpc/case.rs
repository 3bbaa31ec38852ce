use noroshi_proto::v1 as pb;

use super::command_service;

command_service! {
    Cases: pb::case_service_server::CaseService, noroshi_identity::Scope::Cases, {
        report_case(pb::ReportCaseRequest);
        triage_case(pb::TriageCaseRequest);
        override_priority(pb::OverridePriorityRequest);
        record_observation(pb::RecordObservationRequest);
        start_home_care(pb::StartHomeCareRequest);
        assign_care_site(pb::AssignCareSiteRequest);
        close_case(pb::CloseCaseRequest);
    }
}
