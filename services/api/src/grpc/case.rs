use noroshi_proto::v1 as pb;

use super::command_service;
use crate::commands::case;

command_service! {
    Cases: pb::case_service_server::CaseService, noroshi_identity::Scope::Cases, {
        report_case(pb::ReportCaseRequest) => case::report;
        triage_case(pb::TriageCaseRequest) => case::triage;
        override_priority(pb::OverridePriorityRequest) => case::override_priority;
        record_observation(pb::RecordObservationRequest) => case::record_observation;
        start_home_care(pb::StartHomeCareRequest) => case::start_home_care;
        close_case(pb::CloseCaseRequest) => case::close;
    }
}
