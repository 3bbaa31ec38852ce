use noroshi_proto::v1 as pb;

use super::command_service;
use crate::commands::placement;

command_service! {
    Placements: pb::placement_service_server::PlacementService, noroshi_identity::Scope::Placements, {
        request_placement(pb::RequestPlacementRequest) => placement::request;
        offer_placement(pb::OfferPlacementRequest) => placement::offer;
        accept_placement(pb::AcceptPlacementRequest) => placement::accept;
        decline_placement(pb::DeclinePlacementRequest) => placement::decline;
        arrange_transport(pb::ArrangeTransportRequest) => placement::arrange_transport;
        record_departure(pb::RecordDepartureRequest) => placement::record_departure;
        record_arrival(pb::RecordArrivalRequest) => placement::record_arrival;
        cancel_placement(pb::CancelPlacementRequest) => placement::cancel;
        record_discharge(pb::RecordDischargeRequest) => placement::record_discharge;
    }
}
