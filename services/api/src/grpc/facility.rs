use noroshi_proto::v1 as pb;

use super::command_service;

command_service! {
    Facilities: pb::facility_service_server::FacilityService, noroshi_identity::Scope::Facilities, {
        register_facility(pb::RegisterFacilityRequest);
        update_facility(pb::UpdateFacilityRequest);
        declare_capacity(pb::DeclareCapacityRequest);
        set_acceptance(pb::SetAcceptanceRequest);
    }
}
