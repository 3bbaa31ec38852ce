//! The HTTP/JSON API (axum): the views under `/api/v1/views/…` with the same content as
//! `ViewService`, the commands under `/api/v1/commands/…`, `/healthz`, `/readyz` and
//! `/metrics`. Errors follow the one table, as `{"code", "message", "violations"}`.

mod commands;
mod cookies;
pub mod identity;
mod openapi;

pub use commands::COMMANDS;

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::serve::ListenerExt;
use futures_util::StreamExt;
use noroshi_domain::Violations;
use noroshi_domain::values::{BedCategory, CaseStatus, FacilityId, MedicalAreaCode};
use noroshi_event_store::StreamId;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::{self as prometheus, Metrics, MetricsLayer};
use crate::views::{
    BedBoardFilter, CaseBoardFilter, MinVersions, Page, TimelineSubject, Update, Views, to_json,
};
use crate::web;
use identity::Authed;
use noroshi_app::CommandHandler;
use noroshi_identity::{Authenticator, Scope};

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
        let status =
            StatusCode::from_u16(self.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
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
        let body = json!({"code": self.code_name(), "message": message, "violations": violations});
        (status, Json(body)).into_response()
    }
}

pub fn router(context: HttpContext) -> axum::Router {
    axum::Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/v1/views/bed_board", get(bed_board))
        .route("/api/v1/views/bed_board/stream", get(bed_board_stream))
        .route("/api/v1/views/placement_queue", get(placement_queue))
        .route(
            "/api/v1/views/placement_queue/stream",
            get(placement_queue_stream),
        )
        .route("/api/v1/views/public_stats", get(public_stats))
        .route(
            "/api/v1/views/public_stats/stream",
            get(public_stats_stream),
        )
        .route("/api/v1/views/case_board", get(case_board))
        .route("/api/v1/views/case_board/stream", get(case_board_stream))
        .route("/api/v1/views/facility_inbox", get(facility_inbox))
        .route(
            "/api/v1/views/facility_inbox/stream",
            get(facility_inbox_stream),
        )
        .route("/api/v1/views/timeline", get(timeline))
        .route("/api/v1/views/timeline/stream", get(timeline_stream))
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
    let shared = context.handler.store().batched().get();
    let text = context.metrics.render(context.views.pool(), shared).await?;
    Ok(([(header::CONTENT_TYPE, prometheus::CONTENT_TYPE)], text).into_response())
}

async fn readyz(State(context): State<HttpContext>) -> Result<Json<serde_json::Value>, ApiError> {
    let lag = context.views.lag().await?;
    let projections: Vec<serde_json::Value> = lag
        .into_iter()
        .map(|(name, lag)| json!({"projection": name, "lag_positions": lag}))
        .collect();
    Ok(Json(json!({"status": "ready", "projections": projections})))
}

/// Reads a view's query string: `min_versions` for every view, and the view's own
/// filters through `filter`, which returns false for a parameter the view does not know.
fn view_params(
    params: &[(String, String)],
    mut filter: impl FnMut(&str, &str, &mut Violations) -> bool,
) -> Result<Vec<(StreamId, u64)>, ApiError> {
    let mut v = Violations::new();
    let mut min_versions = Vec::new();
    for (key, value) in params {
        if key == "min_versions" {
            min_versions.extend(parse_min_versions(value, &mut v));
        } else if !filter(key, value, &mut v) {
            v.add(key.as_str(), "is not a parameter of this view");
        }
    }
    if v.is_empty() {
        Ok(min_versions)
    } else {
        Err(ApiError::Invalid(v))
    }
}

/// The filters and `min_versions` of `bed_board` and its stream.
fn bed_board_params(
    params: &[(String, String)],
) -> Result<(BedBoardFilter, MinVersions), ApiError> {
    let mut filter = BedBoardFilter::default();
    let min_versions = view_params(params, |key, value, v| {
        match key {
            "medical_area" => {
                filter.medical_area = v.check("medical_area", MedicalAreaCode::parse(value));
            }
            "category" => match BedCategory::parse(value) {
                Some(category) => {
                    filter.categories.insert(category);
                }
                None => v.add("category", format!("unknown bed category {value:?}")),
            },
            _ => return false,
        }
        true
    })?;
    Ok((filter, min_versions))
}

/// `?medical_area=3504&category=MODERATE&category=SEVERE&min_versions=facility-x:3,case-y:2`
async fn bed_board(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (filter, min_versions) = bed_board_params(&params)?;
    let view = context
        .views
        .bed_board(&principal, &filter, &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// The same parameters as `bed_board`; Server-Sent Events: `snapshot`, then `delta`s
/// (and `error` if a read fails, e.g. during a rebuild; the stream goes on).
async fn bed_board_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (filter, min_versions) = bed_board_params(&params)?;
    let updates = context
        .views
        .watch_bed_board(principal, filter, &min_versions)
        .await?;
    Ok(sse_updates(updates))
}

/// `?min_versions=…`; Server-Sent Events as for `bed_board`.
async fn placement_queue_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let min_versions = view_params(&params, |_, _, _| false)?;
    let updates = context
        .views
        .watch_placement_queue(principal, &min_versions)
        .await?;
    Ok(sse_updates(updates))
}

/// `?min_versions=…`; Server-Sent Events: `snapshot`, then `update` with the whole
/// statistics whenever a figure changed.
async fn public_stats_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let min_versions = view_params(&params, |_, _, _| false)?;
    let updates = context
        .views
        .watch_public_stats(principal, &min_versions)
        .await?;
    let mut first = true;
    Ok(sse(updates.map(move |update| {
        let name = if std::mem::take(&mut first) {
            "snapshot"
        } else {
            "update"
        };
        update.map(|stats| (name, to_json(stats)))
    })))
}

/// A view's `snapshot` and `delta` updates as Server-Sent Events.
fn sse_updates<S: Serialize, D: Serialize>(
    updates: impl futures_util::Stream<Item = Result<Update<S, D>, ApiError>> + Send + 'static,
) -> Response {
    sse(updates.map(|update| update.map(|u| u.named_json())))
}

/// Named JSON events; a failed read becomes an `error` event and the stream goes on.
fn sse(
    updates: impl futures_util::Stream<Item = Result<(&'static str, serde_json::Value), ApiError>>
    + Send
    + 'static,
) -> Response {
    let events = updates.map(|update| {
        let (name, data) = update.unwrap_or_else(|error| {
            (
                "error",
                json!({"code": error.code_name(), "message": error.to_string()}),
            )
        });
        Ok::<_, std::convert::Infallible>(
            Event::default()
                .event(name)
                .json_data(data)
                .unwrap_or_else(|_| Event::default().event("error")),
        )
    });
    Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// `?min_versions=placement-x:3`
async fn placement_queue(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let min_versions = view_params(&params, |_, _, _| false)?;
    let view = context
        .views
        .placement_queue(&principal, &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// `?min_versions=…`; the same for every principal.
async fn public_stats(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let min_versions = view_params(&params, |_, _, _| false)?;
    let view = context
        .views
        .public_stats(&principal, &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// `stream:version` pairs separated by commas, as commands return them.
fn parse_min_versions(value: &str, violations: &mut Violations) -> Vec<(StreamId, u64)> {
    value
        .split(',')
        .filter(|pair| !pair.is_empty())
        .filter_map(|pair| {
            let parsed = pair.rsplit_once(':').and_then(|(stream, version)| {
                Some((StreamId::parse(stream).ok()?, version.parse::<u64>().ok()?))
            });
            if parsed.is_none() {
                violations.add(
                    "min_versions",
                    format!("{pair:?} is not <stream_id>:<version>"),
                );
            }
            parsed
        })
        .collect()
}

/// The OpenAPI document, open like `/healthz`: it describes, it reveals no data.
async fn openapi_document() -> Result<Json<serde_json::Value>, ApiError> {
    openapi::document().map(Json)
}

/// The query parameters of each view besides `min_versions`: (view, parameter, whether
/// it repeats, what it does). Streams take the same, without paging.
pub const VIEW_PARAMETERS: &[(&str, &str, bool, &str)] = &[
    (
        "bed_board",
        "medical_area",
        false,
        "only this medical area (二次医療圏 code)",
    ),
    ("bed_board", "category", true, "only these bed categories"),
    ("case_board", "status", true, "only these case statuses"),
    (
        "case_board",
        "health_center_id",
        false,
        "HQ: one health center's cases",
    ),
    (
        "case_board",
        "page_size",
        false,
        "rows per page, at most 500 (default 100)",
    ),
    (
        "case_board",
        "page_token",
        false,
        "next_page_token of the previous page",
    ),
    (
        "facility_inbox",
        "facility_id",
        false,
        "the facility (required for HQ)",
    ),
    (
        "timeline",
        "case_id",
        false,
        "a case's history (or placement_id)",
    ),
    (
        "timeline",
        "placement_id",
        false,
        "a placement's history (or case_id)",
    ),
    (
        "timeline",
        "page_size",
        false,
        "entries per page, at most 500 (default 100)",
    ),
    (
        "timeline",
        "page_token",
        false,
        "next_page_token of the previous page",
    ),
];

/// Every view served under `/api/v1/views/`.
pub const VIEW_NAMES: &[&str] = &[
    "bed_board",
    "placement_queue",
    "case_board",
    "facility_inbox",
    "timeline",
    "public_stats",
];

async fn unknown_view(Path(view): Path<String>) -> ApiError {
    ApiError::invalid(
        "view",
        format!(
            "unknown view {view:?}; the views are {}",
            VIEW_NAMES.join(", ")
        ),
    )
}

/// Reads `page_size` and `page_token`; true when `key` was one of them.
fn page_param(page: &mut (u32, String), key: &str, value: &str, v: &mut Violations) -> bool {
    match key {
        "page_size" => match value.parse::<u32>() {
            Ok(size) => page.0 = size,
            Err(_) => v.add("page_size", format!("{value:?} is not a whole number")),
        },
        "page_token" => page.1 = value.to_owned(),
        _ => return false,
    }
    true
}

fn facility_param(value: &str, field: &str, v: &mut Violations) -> Option<FacilityId> {
    v.check(field, FacilityId::parse(value))
}

/// The filters of `case_board` (and, without paging, of its stream).
fn case_board_params(
    params: &[(String, String)],
    paged: bool,
) -> Result<(CaseBoardFilter, Page, MinVersions), ApiError> {
    let mut filter = CaseBoardFilter::default();
    let mut page = (0, String::new());
    let mut v = Violations::new();
    let min_versions = view_params(params, |key, value, violations| {
        match key {
            "status" => match CaseStatus::parse(value) {
                Some(status) => {
                    filter.statuses.insert(status);
                }
                None => violations.add("status", format!("unknown case status {value:?}")),
            },
            "health_center_id" => {
                filter.health_center = facility_param(value, "health_center_id", violations);
            }
            _ => return paged && page_param(&mut page, key, value, violations),
        }
        true
    })?;
    let page = Page::parse(page.0, &page.1, &mut v);
    if v.is_empty() {
        Ok((filter, page, min_versions))
    } else {
        Err(ApiError::Invalid(v))
    }
}

/// `?status=AWAITING_PLACEMENT&health_center_id=…&page_size=100&page_token=…&min_versions=…`
async fn case_board(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (filter, page, min_versions) = case_board_params(&params, true)?;
    let view = context
        .views
        .case_board(&principal, &filter, &page, &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// The filters of `case_board` without paging: every matching case, then deltas.
async fn case_board_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (filter, _, min_versions) = case_board_params(&params, false)?;
    let updates = context
        .views
        .watch_case_board(principal, filter, &min_versions)
        .await?;
    Ok(sse_updates(updates))
}

fn facility_inbox_params(
    params: &[(String, String)],
) -> Result<(Option<FacilityId>, MinVersions), ApiError> {
    let mut facility = None;
    let min_versions = view_params(params, |key, value, v| {
        if key != "facility_id" {
            return false;
        }
        facility = facility_param(value, "facility_id", v);
        true
    })?;
    Ok((facility, min_versions))
}

/// `?facility_id=…&min_versions=…` (a hospital or hotel may leave out its own id).
async fn facility_inbox(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (facility, min_versions) = facility_inbox_params(&params)?;
    let view = context
        .views
        .facility_inbox(&principal, facility.as_ref(), &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// As `facility_inbox`; `snapshot`, then `delta` with the whole inbox when it changed.
async fn facility_inbox_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (facility, min_versions) = facility_inbox_params(&params)?;
    let updates = context
        .views
        .watch_facility_inbox(principal, facility, &min_versions)
        .await?;
    Ok(sse_updates(updates))
}

fn timeline_params(
    params: &[(String, String)],
    paged: bool,
) -> Result<(TimelineSubject, Page, MinVersions), ApiError> {
    let mut subjects = Vec::new();
    let mut page = (0, String::new());
    let min_versions = view_params(params, |key, value, v| {
        let subject: fn(uuid::Uuid) -> TimelineSubject = match key {
            "case_id" => TimelineSubject::Case,
            "placement_id" => TimelineSubject::Placement,
            _ => return paged && page_param(&mut page, key, value, v),
        };
        match uuid::Uuid::parse_str(value) {
            Ok(id) => subjects.push(subject(id)),
            Err(_) => v.add(key, format!("{value:?} is not a UUID")),
        }
        true
    })?;
    let mut v = Violations::new();
    let page = Page::parse(page.0, &page.1, &mut v);
    if subjects.len() != 1 {
        v.add(
            "case_id",
            "name exactly one case_id or placement_id whose timeline to read",
        );
    }
    match subjects.pop() {
        Some(subject) if v.is_empty() => Ok((subject, page, min_versions)),
        _ => Err(ApiError::Invalid(v)),
    }
}

/// `?case_id=…` or `?placement_id=…`, with `page_size`, `page_token`, `min_versions`.
async fn timeline(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (subject, page, min_versions) = timeline_params(&params, true)?;
    let view = context
        .views
        .timeline(&principal, subject, &page, &min_versions)
        .await?;
    Ok(Json(view).into_response())
}

/// `?case_id=…` or `?placement_id=…`: the history so far, then each new page of entries.
async fn timeline_stream(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?.clone();
    let (subject, _, min_versions) = timeline_params(&params, false)?;
    let updates = context
        .views
        .watch_timeline(principal, subject, &min_versions)
        .await?;
    Ok(sse_updates(updates))
}
