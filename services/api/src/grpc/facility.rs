use noroshi_proto::v1 as pb;

use super::command_service;
use crate::commands::facility;

command_service! {
    Facilities: pb::facility_service_server::FacilityService, noroshi_identity::Scope::Facilities, {
        register_facility(pb::RegisterFacilityRequest) => facility::register;
        update_facility(pb::UpdateFacilityRequest) => facility::update;
        declare_capacity(pb::DeclareCapacityRequest) => facility::declare_capacity;
        set_acceptance(pb::SetAcceptanceRequest) => facility::set_acceptance;
    }
}
