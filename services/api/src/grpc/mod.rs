//! The gRPC front end: `FacilityService`, `CaseService`, `PlacementService`,
//! `ConsultService`, `AlertService`, `ViewService`, plus
//! `grpc.health.v1.Health` and server reflection.

mod alert;
mod case;
mod consult;
mod facility;
mod placement;

pub use crate::state::GrpcContext;

use std::sync::Arc;

use noroshi_identity::certificates;
use noroshi_proto::v1::alert_service_server::AlertServiceServer;
use noroshi_proto::v1::case_service_server::CaseServiceServer;
use noroshi_proto::v1::consult_service_server::ConsultServiceServer;
use noroshi_proto::v1::facility_service_server::FacilityServiceServer;
use noroshi_proto::v1::placement_service_server::PlacementServiceServer;
use noroshi_proto::v1::view_service_server::ViewServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codegen::http;
use tonic::transport::server::Connected;

use crate::error::ApiError;
use crate::listener::{Admission, Watched};
use crate::metrics::MetricsLayer;
use noroshi_identity::{Authenticator, Presented};

#[derive(Debug, Clone, Copy)]
pub struct GrpcSettings {
    /// Largest request message; a larger one is refused with RESOURCE_EXHAUSTED.
    pub max_message_bytes: usize,
}

/// TLS for the gRPC listener, from [`grpc_config`].
pub type GrpcTls = tonic::transport::ServerTlsConfig;

/// tonic's TLS configuration from the same files.
pub fn grpc_config(
    files: &certificates::TlsFiles,
) -> Result<tonic::transport::ServerTlsConfig, certificates::CertificateError> {
    use tonic::transport::{Certificate, Identity, ServerTlsConfig};
    let identity = Identity::from_pem(
        certificates::read(&files.cert)?,
        certificates::read(&files.key)?,
    );
    let config = ServerTlsConfig::new().identity(identity);
    Ok(match files.client_certificates {
        certificates::ClientCertificates::Off => config,
        mode => {
            let ca = files
                .client_ca
                .as_ref()
                .ok_or(certificates::CertificateError::NoClientCa)?;
            config
                .client_ca_root(Certificate::from_pem(certificates::read(ca)?))
                .client_auth_optional(mode == certificates::ClientCertificates::Optional)
        }
    })
}

#[derive(Debug, thiserror::Error)]
pub enum GrpcError {
    #[error("cannot build the reflection service")]
    Reflection(#[source] tonic_reflection::server::Error),
    #[error("grpc server failed")]
    Transport(#[source] tonic::transport::Error),
    #[error("invalid TLS configuration")]
    Tls(#[source] tonic::transport::Error),
}

/// Serves gRPC on `listener` until `shutdown`, then drains requests in flight.
pub async fn serve(
    listener: TcpListener,
    context: GrpcContext,
    settings: GrpcSettings,
    tls: Option<GrpcTls>,
    admission: Arc<Admission>,
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
        .set_serving::<ConsultServiceServer<consult::Consults>>()
        .await;
    health
        .set_serving::<AlertServiceServer<alert::Alerts>>()
        .await;
    health
        .set_serving::<ViewServiceServer<crate::views::grpc::Views>>()
        .await;
    // Both versions of server reflection: clients that still ask for v1alpha (grpcurl
    // and many others) find the services too.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(noroshi_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().map_err(GrpcError::Reflection)?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .map_err(GrpcError::Reflection)?;
    let limit = settings.max_message_bytes;
    let limits = admission.limits();
    let mut builder = tonic::transport::Server::builder()
        .timeout(limits.request_timeout)
        .http2_keepalive_interval(Some(limits.heartbeat()))
        .http2_keepalive_timeout(Some(crate::listener::PING_TIMEOUT))
        .max_concurrent_streams(Some(crate::listener::MAX_CONCURRENT_STREAMS));
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).map_err(GrpcError::Tls)?;
    }
    builder
        .layer(MetricsLayer(context.metrics.clone()))
        .layer(AuthLayer(context.auth.clone()))
        .layer(tower::util::MapResponseLayer::new(transport_refusals))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
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
        .add_service(
            ConsultServiceServer::new(consult::Consults(context.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            AlertServiceServer::new(alert::Alerts(context.clone()))
                .max_decoding_message_size(limit),
        )
        .add_service(
            ViewServiceServer::new(crate::views::grpc::Views(context))
                .max_decoding_message_size(limit),
        )
        .serve_with_incoming_shutdown(incoming(listener, admission), shutdown.cancelled_owned())
        .await
        .map_err(GrpcError::Transport)
}

/// Accepted connections, admitted and watched ([`Admission::accept`], which also turns
/// Nagle's algorithm off: tonic does so only for listeners it binds itself).
fn incoming(
    listener: TcpListener,
    admission: Arc<Admission>,
) -> impl tokio_stream::Stream<Item = std::io::Result<Watched<tokio::net::TcpStream>>> {
    futures_util::stream::unfold((listener, admission), |(listener, admission)| async move {
        let (connection, _) = admission.accept(&listener, "grpc").await;
        Some((Ok(connection), (listener, admission)))
    })
}

impl<Io: Connected> Connected for Watched<Io> {
    type ConnectInfo = Io::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

/// tonic answers two kinds of bad input on its own, outside the error table: a request
/// message above the limit (OUT_OF_RANGE) and one that does not decode (INTERNAL, with
/// the message's type and field names in the text). The table says RESOURCE_EXHAUSTED
/// for every limit and INVALID_ARGUMENT for malformed input, with nothing internal in
/// the message, so both are rewritten here.
fn transport_refusals<B>(mut response: http::Response<B>) -> http::Response<B> {
    let headers = response.headers_mut();
    let status = headers.get("grpc-status").map(|v| v.as_bytes().to_vec());
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(|m| m.replace("%20", " "))
        .unwrap_or_default();
    match status.as_deref() {
        Some(b"11") if message.contains("message length too large") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        }
        Some(b"13") if message.starts_with("failed to decode Protobuf message") => {
            headers.insert("grpc-status", http::HeaderValue::from_static("3"));
            headers.insert(
                "grpc-message",
                http::HeaderValue::from_static(MALFORMED_REQUEST),
            );
        }
        _ => {}
    }
    response
}

/// The message of a request that does not decode, percent-encoded as a grpc-message.
const MALFORMED_REQUEST: &str = "invalid%20argument:%20the%20request%20is%20not%20a%20valid%20protobuf%20message%20for%20this%20method";

/// Implements a command service: each RPC authenticates, runs its command and maps the
/// error through the one error table.
macro_rules! command_service {
    ($service:ident: $server_trait:path, $scope:expr, { $($rpc:ident($request:ty);)+ }) => {
        #[derive(Debug)]
        pub(super) struct $service(pub(super) super::GrpcContext);

        #[tonic::async_trait]
        impl $server_trait for $service {
            $(
                async fn $rpc(
                    &self,
                    request: tonic::Request<$request>,
                ) -> Result<tonic::Response<noroshi_proto::v1::CommandResult>, tonic::Status> {
                    let principal = crate::auth::principal(&request, $scope)?;
                    let result =
                        crate::commands::execute(&self.0.handler, &principal, request.get_ref())
                            .await?;
                    Ok(tonic::Response::new(result))
                }
            )+
        }
    };
}
use command_service;

/// Authenticates every request before it reaches a service: a valid bearer token or
/// client certificate puts a [`Caller`] in the request's extensions; invalid ones are
/// refused here with UNAUTHENTICATED; a request with no credentials goes on without a
/// caller (health and reflection need none; every other RPC refuses it). A
/// PERMISSION_DENIED answer to a caller is written to the audit log.
#[derive(Debug, Clone)]
struct AuthLayer(Arc<Authenticator>);

impl<S> tower::Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Authenticated<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type TlsInfo = tonic::transport::server::TlsConnectInfo<tonic::transport::server::TcpConnectInfo>;

impl<S, B, R> tower::Service<http::Request<B>> for Authenticated<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
    R: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future =
        std::pin::Pin<Box<dyn std::future::Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this request.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let via = request.uri().path().to_owned();
            let authorization = match request.headers().get(http::header::AUTHORIZATION) {
                None => None,
                Some(value) => match value.to_str() {
                    Ok(value) => Some(value.to_owned()),
                    Err(_) => {
                        let refused = ApiError::Unauthenticated(noroshi_identity::NOT_BEARER);
                        return Ok(tonic::Status::from(refused).into_http());
                    }
                },
            };
            let certificate = request
                .extensions()
                .get::<TlsInfo>()
                .and_then(TlsInfo::peer_certs)
                .and_then(|certs| certs.first().map(|c| c.to_vec()));
            let caller = auth
                .authenticate(Presented {
                    authorization: authorization.as_deref(),
                    session: None,
                    certificate: certificate.as_deref(),
                    via: &via,
                })
                .await;
            let caller = match caller {
                Ok(caller) => caller,
                Err(error) => return Ok(tonic::Status::from(ApiError::from(error)).into_http()),
            };
            let principal = caller.as_ref().map(|c| c.principal.clone());
            if let Some(caller) = caller {
                request.extensions_mut().insert(caller);
            }
            let response = inner.call(request).await?;
            let denied = response
                .headers()
                .get("grpc-status")
                .is_some_and(|status| status.as_bytes() == b"7");
            if let (true, Some(principal)) = (denied, principal)
                && let Err(error) = auth.denied(&principal, &via).await
            {
                tracing::error!(error = %error, "cannot record a permission denial");
            }
            Ok(response)
        })
    }
}
