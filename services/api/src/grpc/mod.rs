//! The gRPC front end: `FacilityService`, `CaseService`, `PlacementService`,
//! `ViewService`, plus
//! `grpc.health.v1.Health` and server reflection.

mod case;
mod facility;
mod placement;
mod views;

use std::sync::Arc;

use noroshi_proto::v1::case_service_server::CaseServiceServer;
use noroshi_proto::v1::facility_service_server::FacilityServiceServer;
use noroshi_proto::v1::placement_service_server::PlacementServiceServer;
use noroshi_proto::v1::view_service_server::ViewServiceServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;

use crate::auth::Tokens;
use crate::commands::CommandHandler;
use crate::metrics::{Metrics, MetricsLayer};
use crate::views::Views;

/// Shared by every service.
#[derive(Debug, Clone)]
pub struct GrpcContext {
    pub handler: Arc<CommandHandler>,
    pub tokens: Arc<Tokens>,
    pub views: Arc<Views>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug, Clone, Copy)]
pub struct GrpcSettings {
    /// Largest request message; a larger one is refused with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("grpc server failed")]
    Transport(#[source] tonic::transport::Error),
}

/// Serves gRPC on `listener` until `shutdown`, then drains requests in flight.
pub async fn serve(
    listener: TcpListener,
    context: GrpcContext,
    settings: GrpcSettings,
    shutdown: CancellationToken,
) -> Result<(), GrpcError> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<FacilityServiceServer<facility::Facilities>>()
        .await;
    health.set_serving::<CaseServiceServer<case::Cases>>().await;
    health
        .set_serving::<PlacementServiceServer<placement::Placements>>()
        .await;
    health
        .set_serving::<ViewServiceServer<views::Views>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(noroshi_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(GrpcError::Reflection)?;
    let limit = settings.max_message_bytes;
    tonic::transport::Server::builder()
        .layer(MetricsLayer(context.metrics.clone()))
        .layer(tower::util::MapResponseLayer::new(
            oversize_is_resource_exhausted,
        ))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(
            FacilityServiceServer::new(facility::Facilities(context.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            CaseServiceServer::new(case::Cases(context.clone())).max_decoding_message_size(limit),
        )
        .add_service(
            PlacementServiceServer::new(placement::Placements(context.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(ViewServiceServer::new(views::Views(context)).max_decoding_message_size(limit))
        .serve_with_incoming_shutdown(incoming(listener), shutdown.cancelled_owned())
        .await
        .map_err(GrpcError::Transport)
}

/// Accepted connections with Nagle's algorithm off: a response is a few small HTTP/2
/// frames, and holding the last one back for the peer's delayed ACK adds tens of
/// milliseconds to a request. (tonic sets this only for listeners it binds itself.)
fn incoming(
    listener: TcpListener,
) -> impl tokio_stream::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    use tokio_stream::StreamExt;
    TcpListenerStream::new(listener).map(|accepted| {
        let stream = accepted?;
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "cannot set TCP_NODELAY");
        }
        Ok(stream)
    })
}

/// tonic refuses a request message above the limit with OUT_OF_RANGE; the API's error
/// table says RESOURCE_EXHAUSTED for every limit, so the status is rewritten.
fn oversize_is_resource_exhausted<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let oversize = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.replace("%20", " ").contains("message length too large"));
    if out_of_range && oversize {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
    }
    response
}

/// Implements a command service: each RPC authenticates, runs its command and maps the
/// error through the one error table.
macro_rules! command_service {
    ($service:ident: $server_trait:path { $($rpc:ident($request:ty) => $command:path;)+ }) => {
        #[derive(Debug)]
        pub(super) struct $service(pub(super) super::GrpcContext);

        #[tonic::async_trait]
        impl $server_trait for $service {
            $(
                #[tracing::instrument(skip_all, fields(command_id = %request.get_ref().command_id))]
                async fn $rpc(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<noroshi_proto::v1::CommandResult>, tonic::Status> {
                    let principal = self.0.tokens.authenticate(request.metadata())?;
                    let result = $command(&self.0.handler, &principal, request.into_inner()).await?;
                    Ok(tonic::Response::new(result))
                }
            )+
        }
    };
}
use command_service;
