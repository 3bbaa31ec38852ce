//! The HTTP/JSON API (axum): the views under `/api/v1/views/…` with the same content as
//! `ViewService`, the commands under `/api/v1/commands/…`, `/healthz`, `/readyz` and
//! `/metrics`. Errors follow the one table, as `{"code", "message", "violations"}`.

pub(crate) mod admin;
pub(crate) mod alerts;
pub(crate) mod commands;
mod connections;
pub(crate) mod exports;
pub(crate) mod fhir;
pub(crate) mod import;
pub(crate) mod operations;
pub(crate) mod sessions;
mod tls;
pub(crate) mod webhooks;

pub use crate::state::HttpContext;
pub use commands::COMMANDS;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};
use serde_json::json;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::listener::{Admission, Watched};
use crate::metrics::MetricsLayer;
use crate::web;

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
    let router = crate::views::routes(axum::Router::new())
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(operations::readyz))
        .route("/metrics", get(operations::metrics))
        .route("/api/v1/views/{view}", get(operations::unknown_view))
        .route("/api/v1/views/{view}/stream", get(operations::unknown_view))
        .route("/api/v1/commands/{name}", post(commands::command))
        .route(
            "/api/v1/openapi.json",
            get(crate::openapi::openapi_document),
        )
        .route(
            "/api/v1/session",
            get(sessions::get_session)
                .post(sessions::create_session)
                .delete(sessions::delete_session),
        )
        .route("/login", get(web::login_form).post(web::login_submit))
        .route("/logout", post(web::logout_submit))
        .route(
            "/api/v1/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route("/api/v1/admin/users/{username}", patch(admin::update_user))
        .route(
            "/api/v1/admin/users/{username}/password",
            post(admin::reset_password),
        )
        .route(
            "/api/v1/admin/clients",
            get(admin::list_clients).post(admin::issue_client),
        )
        .route(
            "/api/v1/admin/clients/{client_id}/revoke",
            post(admin::revoke_client),
        )
        .route("/api/v1/audit", get(admin::audit_log))
        .route(
            "/api/v1/webhooks",
            get(webhooks::list).post(webhooks::register),
        )
        .route("/api/v1/webhooks/{webhook_id}", delete(webhooks::delete))
        .route("/api/v1/alert-rules", get(alerts::rules))
        .route("/api/v1/import/cases", post(import::cases))
        .route("/api/v1/import/capacity", post(import::capacity))
        .route("/api/v1/exports/bed_board.csv", get(exports::bed_board))
        .route("/api/v1/exports/cases.csv", get(exports::cases))
        .route("/api/v1/exports/open_data.csv", get(exports::open_data))
        .route("/api/v1/exports/placements.csv", get(exports::placements))
        .route("/api/v1/reports/after_action", get(exports::after_action))
        .route("/fhir/r4/metadata", get(fhir::metadata))
        .route("/fhir/r4/MeasureReport", get(fhir::search))
        .route("/fhir/r4/MeasureReport/{id}", get(fhir::read))
        .route("/fhir/r4/Bundle/prefecture", get(fhir::prefecture))
        .route(
            "/api/v1/webhooks/{webhook_id}/deliveries",
            get(webhooks::deliveries),
        )
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
        .route("/consult", get(web::consult_page))
        .route("/facility/{facility_id}", get(web::facility_page))
        .route("/timeline", get(web::timeline_page))
        .route("/public", get(web::public_page))
        .route("/assets/{name}", get(web::asset))
        .route_layer(axum::middleware::from_fn_with_state(
            context.clone(),
            crate::auth::authenticate,
        ))
        .layer(MetricsLayer(context.metrics.clone()));
    let router = match context.drill.clone() {
        Some(drill) => router.layer(axum::middleware::from_fn_with_state(drill, web::mark_drill)),
        None => router,
    };
    router.with_state(context)
}

/// Serves HTTP on `listener` until `shutdown`, then finishes requests in flight.
/// With `tls`, connections are TLS, and a client certificate the configuration asks for
/// authenticates the connection's organisation. Connections are admitted and watched
/// by `admission` (`crate::listener`).
pub async fn serve(
    listener: TcpListener,
    context: HttpContext,
    tls: Option<rustls::ServerConfig>,
    admission: Arc<Admission>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let limits = admission.limits();
    let app = router(context).layer(axum::middleware::from_fn_with_state(
        limits.request_timeout,
        request_timeout,
    ));
    match tls {
        None => {
            let listener = PlainListener {
                listener,
                admission,
            };
            connections::run(listener, app, limits, shutdown).await
        }
        Some(config) => {
            let listener = tls::TlsListener::new(listener, config, admission, shutdown.clone())?;
            connections::run(listener, app, limits, shutdown).await
        }
    }
}

/// Answers 503 to a request that takes longer than the limit (a live stream counts
/// until it starts); its work is cancelled.
async fn request_timeout(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::Unavailable(format!(
            "the request took longer than {} s and was stopped; a command may or may not have taken effect, so retry it with the same idempotency key",
            limit.as_secs()
        ))
        .into_response(),
    }
}

/// Plain TCP connections, admitted and watched.
struct PlainListener {
    listener: TcpListener,
    admission: Arc<Admission>,
}

impl axum::serve::Listener for PlainListener {
    type Io = Watched<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        self.admission.accept(&self.listener, "http").await
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}
