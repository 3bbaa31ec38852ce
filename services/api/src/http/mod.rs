//! The HTTP/JSON API (axum): the views under `/api/v1/views/…` with the same content as
//! `ViewService`, the commands under `/api/v1/commands/…`, `/healthz`, `/readyz` and
//! `/metrics`. Errors follow the one table, as `{"code", "message", "violations"}`.

mod commands;
mod cookies;
pub mod identity;
pub(crate) mod openapi;

pub use commands::COMMANDS;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::serve::ListenerExt;
use noroshi_app::CommandHandler;
use noroshi_identity::Authenticator;
use noroshi_projections::views::Views;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::{self as prometheus, Metrics, MetricsLayer};
use crate::web;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub auth: Arc<Authenticator>,
    pub views: Arc<Views>,
    pub metrics: Arc<Metrics>,
    /// Runs the commands of `/api/v1/commands/…`.
    pub handler: Arc<CommandHandler>,
    /// Longest accepted request body; more is RESOURCE_EXHAUSTED.
    pub max_body_bytes: usize,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code().http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let violations: Vec<serde_json::Value> = match &self {
            ApiError::Invalid(violations) => violations
                .iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect(),
            _ => Vec::new(),
        };
        let message = match &self {
            ApiError::Internal(source) => {
                tracing::error!(error = %source, cause = ?source, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let body =
            json!({"code": self.code().as_str(), "message": message, "violations": violations});
        (status, Json(body)).into_response()
    }
}

pub fn router(context: HttpContext) -> axum::Router {
    crate::views::routes(axum::Router::new())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/views/{view}", get(unknown_view))
        .route("/api/v1/views/{view}/stream", get(unknown_view))
        .route("/api/v1/commands/{name}", post(commands::command))
        .route("/api/v1/openapi.json", get(openapi_document))
        .route(
            "/api/v1/session",
            get(identity::get_session)
                .post(identity::create_session)
                .delete(identity::delete_session),
        )
        .route(
            "/login",
            get(identity::login_form).post(identity::login_submit),
        )
        .route("/logout", post(identity::logout_submit))
        .route(
            "/api/v1/admin/users",
            get(identity::list_users).post(identity::create_user),
        )
        .route(
            "/api/v1/admin/users/{username}",
            patch(identity::update_user),
        )
        .route(
            "/api/v1/admin/users/{username}/password",
            post(identity::reset_password),
        )
        .route(
            "/api/v1/admin/clients",
            get(identity::list_clients).post(identity::issue_client),
        )
        .route(
            "/api/v1/admin/clients/{client_id}/revoke",
            post(identity::revoke_client),
        )
        .route("/api/v1/audit", get(identity::audit_log))
        .route(
            "/api/v1/placements/{placement_id}/candidates",
            get(web::placement_candidates),
        )
        .route("/api/v1/areas", get(web::medical_areas))
        .route("/api/v1/facilities", get(web::facility_names))
        .route(
            "/api/v1/cases/{case_id}/observations",
            get(web::case_observations),
        )
        .route("/", get(web::index))
        .route("/hq", get(web::hq_page))
        .route("/admin", get(web::admin_page))
        .route("/hc", get(web::hc_page))
        .route("/facility/{facility_id}", get(web::facility_page))
        .route("/timeline", get(web::timeline_page))
        .route("/public", get(web::public_page))
        .route("/assets/{name}", get(web::asset))
        .route_layer(axum::middleware::from_fn_with_state(
            context.clone(),
            identity::authenticate,
        ))
        .layer(MetricsLayer(context.metrics.clone()))
        .with_state(context)
}

/// Serves HTTP on `listener` until `shutdown`, then finishes requests in flight.
/// With `tls`, connections are TLS, and a client certificate the configuration asks for
/// authenticates the connection's organisation.
pub async fn serve(
    listener: TcpListener,
    context: HttpContext,
    tls: Option<rustls::ServerConfig>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(context);
    match tls {
        None => {
            // Live streams write small events; Nagle's algorithm would hold each one back
            // until the client acknowledged the previous (up to 40 ms with delayed ACKs).
            let listener = listener.tap_io(|tcp| {
                if let Err(error) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %error, "TCP_NODELAY not set");
                }
            });
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
        Some(config) => {
            let listener = identity::TlsListener::new(listener, config, shutdown.clone())?;
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<identity::TlsPeer>(),
            )
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
        }
    }
}

/// Prometheus metrics; open to the scraper, as `/healthz` is (they hold no patient data).
async fn metrics(State(context): State<HttpContext>) -> Result<Response, ApiError> {
    let text = context
        .metrics
        .render(context.handler.store(), context.views.pool())
        .await?;
    Ok(([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response())
}

/// `GET /readyz`: ready, with how far each projection is behind the event store.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Readiness {
    status: &'static str,
    projections: Vec<ProjectionLag>,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct ProjectionLag {
    projection: String,
    /// Event positions the projection has not applied yet.
    lag_positions: u64,
}

async fn readyz(State(context): State<HttpContext>) -> Result<Json<Readiness>, ApiError> {
    let (head, _) = context.handler.store().head().await?;
    let lag = noroshi_projections::views::lag(context.views.pool(), head).await?;
    let projections: Vec<ProjectionLag> = lag
        .into_iter()
        .map(|(projection, lag_positions)| ProjectionLag {
            projection,
            lag_positions,
        })
        .collect();
    Ok(Json(Readiness {
        status: "ready",
        projections,
    }))
}

/// The OpenAPI document, open like `/healthz`: it describes, it reveals no data.
async fn openapi_document() -> Result<Json<serde_json::Value>, ApiError> {
    openapi::document().map(Json)
}

async fn unknown_view(Path(view): Path<String>) -> ApiError {
    ApiError::invalid(
        "view",
        format!(
            "unknown view {view:?}; the views are {}",
            crate::views::NAMES.join(", ")
        ),
    )
}
