use noroshi_proto::v1 as pb;

use super::command_service;

command_service! {
    Placements: pb::placement_service_server::PlacementService, noroshi_identity::Scope::Placements, {
        request_placement(pb::RequestPlacementRequest);
        offer_placement(pb::OfferPlacementRequest);
        accept_placement(pb::AcceptPlacementRequest);
        decline_placement(pb::DeclinePlacementRequest);
        arrange_transport(pb::ArrangeTransportRequest);
        record_departure(pb::RecordDepartureRequest);
        record_arrival(pb::RecordArrivalRequest);
        cancel_placement(pb::CancelPlacementRequest);
        record_discharge(pb::RecordDischargeRequest);
    }
}
