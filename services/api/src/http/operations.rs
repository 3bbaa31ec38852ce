//! What operators and tools read: health, readiness, Prometheus metrics, the OpenAPI
//! document, and the answer to a view that does not exist.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::metrics as prometheus;
use crate::state::HttpContext;

/// Prometheus metrics; open to the scraper, as `/healthz` is (they hold no patient data).
pub(crate) async fn metrics(State(context): State<HttpContext>) -> Result<Response, ApiError> {
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

pub(crate) async fn readyz(
    State(context): State<HttpContext>,
) -> Result<Json<Readiness>, ApiError> {
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

pub(crate) async fn unknown_view(Path(view): Path<String>) -> ApiError {
    ApiError::invalid(
        "view",
        format!(
            "unknown view {view:?}; the views are {}",
            crate::views::NAMES.join(", ")
        ),
    )
}
