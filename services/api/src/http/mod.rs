//! The HTTP/JSON API (axum): the views under `/api/v1/views/…` with the same content as
//! `ViewService`, `/healthz` and `/readyz`. Errors follow the one table, as
//! `{"code", "message", "violations"}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::StreamExt;
use noroshi_domain::Violations;
use noroshi_domain::values::{BedCategory, MedicalAreaCode};
use noroshi_event_store::StreamId;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::Tokens;
use crate::error::ApiError;
use crate::views::{BedBoardFilter, Views, to_json};

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub tokens: Arc<Tokens>,
    pub views: Arc<Views>,
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
        .with_state(context)
}

/// Serves HTTP on `listener` until `shutdown`, then finishes requests in flight.
pub async fn serve(
    listener: TcpListener,
    context: HttpContext,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(context))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
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
) -> Result<(BedBoardFilter, Vec<(StreamId, u64)>), ApiError> {
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
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = principal(&context, &headers)?;
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
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = principal(&context, &headers)?;
    let (filter, min_versions) = bed_board_params(&params)?;
    let updates = context
        .views
        .watch_bed_board(principal, filter, &min_versions)
        .await?;
    Ok(sse(updates.map(|update| update.map(|u| u.named_json()))))
}

/// `?min_versions=…`; Server-Sent Events as for `bed_board`.
async fn placement_queue_stream(
    State(context): State<HttpContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = principal(&context, &headers)?;
    let min_versions = view_params(&params, |_, _, _| false)?;
    let updates = context
        .views
        .watch_placement_queue(principal, &min_versions)
        .await?;
    Ok(sse(updates.map(|update| update.map(|u| u.named_json()))))
}

/// `?min_versions=…`; Server-Sent Events: `snapshot`, then `update` with the whole
/// statistics whenever a figure changed.
async fn public_stats_stream(
    State(context): State<HttpContext>,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    principal(&context, &headers)?;
    let min_versions = view_params(&params, |_, _, _| false)?;
    let updates = context.views.watch_public_stats(&min_versions).await?;
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
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let principal = principal(&context, &headers)?;
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
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    principal(&context, &headers)?;
    let min_versions = view_params(&params, |_, _, _| false)?;
    let view = context.views.public_stats(&min_versions).await?;
    Ok(Json(view).into_response())
}

fn principal(
    context: &HttpContext,
    headers: &HeaderMap,
) -> Result<noroshi_domain::authz::Principal, ApiError> {
    context.tokens.bearer(
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok()),
    )
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
