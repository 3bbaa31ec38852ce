//! The views over both transports: each view is defined once in `noroshi-projections`
//! (its projection, its query and its protobuf messages); this lists every view once and
//! derives its gRPC methods, its HTTP/JSON and Server-Sent Events routes and its OpenAPI
//! description from that definition (docs/adding-a-view.md).

mod gate;
pub(crate) mod grpc;
pub(crate) mod http;

pub use gate::Gate;

use noroshi_projections::alerts::Alerts;
use noroshi_projections::bed_board::BedBoard;
use noroshi_projections::bed_reconciliation::BedReconciliation;
use noroshi_projections::case_board::CaseBoard;
use noroshi_projections::consult_queue::ConsultQueue;
use noroshi_projections::facility_inbox::FacilityInbox;
use noroshi_projections::placement_queue::PlacementQueue;
use noroshi_projections::placement_sla::PlacementSla;
use noroshi_projections::public_stats::PublicStats;
use noroshi_projections::timeline::Timeline;
use noroshi_projections::views::ViewQuery;
use noroshi_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::error::ApiError;
use crate::openapi::schema::Document;
use crate::state::HttpContext;

/// Registers every view, with its gRPC methods and the name of its stream type.
macro_rules! views {
    ($($view:ty => $get:ident, $watch:ident, $stream:ident;)+) => {
        /// Every view served under `/api/v1/views/`.
        pub const NAMES: &[&str] = &[$(<$view as ViewQuery>::NAME),+];

        /// The routes of every view: `/api/v1/views/<view>` and its `/stream`.
        pub(crate) fn routes(router: axum::Router<HttpContext>) -> axum::Router<HttpContext> {
            $(let router = http::routes::<$view>(router);)+
            router
        }

        /// Every view's paths and schemas in the OpenAPI document.
        pub(crate) fn describe(document: &mut Document) -> Result<(), ApiError> {
            $(http::describe::<$view>(document)?;)+
            Ok(())
        }

        #[tonic::async_trait]
        impl pb::view_service_server::ViewService for grpc::Views {
            $(
                type $stream = grpc::Updates<<$view as ViewQuery>::Update>;

                async fn $get(
                    &self,
                    request: Request<<$view as ViewQuery>::Request>,
                ) -> Result<Response<<$view as ViewQuery>::Response>, Status> {
                    self.get::<$view>(request).await
                }

                async fn $watch(
                    &self,
                    request: Request<<$view as ViewQuery>::Request>,
                ) -> Result<Response<Self::$stream>, Status> {
                    self.watch::<$view>(request).await
                }
            )+
        }
    };
}

views! {
    BedBoard => get_bed_board, watch_bed_board, WatchBedBoardStream;
    PlacementQueue => get_placement_queue, watch_placement_queue, WatchPlacementQueueStream;
    CaseBoard => get_case_board, watch_case_board, WatchCaseBoardStream;
    FacilityInbox => get_facility_inbox, watch_facility_inbox, WatchFacilityInboxStream;
    Timeline => get_timeline, watch_timeline, WatchTimelineStream;
    PublicStats => get_public_stats, watch_public_stats, WatchPublicStatsStream;
    ConsultQueue => get_consult_queue, watch_consult_queue, WatchConsultQueueStream;
    Alerts => get_alerts, watch_alerts, WatchAlertsStream;
    PlacementSla => get_placement_sla, watch_placement_sla, WatchPlacementSlaStream;
    BedReconciliation => get_bed_reconciliation, watch_bed_reconciliation, WatchBedReconciliationStream;
}
