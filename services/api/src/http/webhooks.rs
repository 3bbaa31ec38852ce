//! Webhooks over HTTP/JSON (docs/alerts.md "Webhooks"): HQ and the operator register and
//! delete an organisation's endpoints; every organisation reads its own, with the log of
//! their deliveries. A secret is shown once, in the answer to its registration.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use noroshi_identity::webhooks::{self, Delivery, NewWebhook, WebhookRecord};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::admin::{json_body, organisation_kind};
use crate::auth::Authed;
use crate::error::ApiError;
use crate::state::HttpContext;

/// `GET /api/v1/webhooks`: never their secrets.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Webhooks {
    webhooks: Vec<WebhookRecord>,
}

/// `GET /api/v1/webhooks/{webhook_id}/deliveries`, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Deliveries {
    deliveries: Vec<Delivery>,
}

/// `POST /api/v1/webhooks`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookBody {
    organisation_id: String,
    /// `https://…` (plain `http` only where the deployment allows it, in development).
    url: String,
    /// Alert kinds (`HOLD_OVERDUE`, …); empty or absent: every kind.
    #[serde(default)]
    kinds: Vec<String>,
}

fn webhook_id(value: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(value).map_err(|_| ApiError::invalid("webhook_id", "must be a UUID"))
}

/// `GET /api/v1/webhooks`: HQ and the operator every endpoint, others their
/// organisation's.
pub(super) async fn list(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    let webhooks = webhooks::list(context.auth.pool(), &caller.principal).await?;
    Ok(Json(Webhooks { webhooks }).into_response())
}

/// `POST /api/v1/webhooks` (HQ, ADMIN): the answer holds the secret, the only time it is
/// shown.
pub(super) async fn register(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: WebhookBody = json_body(&body)?;
    let kind = organisation_kind(&context, &body.organisation_id).await?;
    let registered = webhooks::register(
        context.auth.pool(),
        &caller.principal,
        &NewWebhook {
            organisation_id: body.organisation_id,
            url: body.url,
            kinds: body.kinds,
        },
        kind,
        context.allow_http_webhooks,
        "/api/v1/webhooks",
    )
    .await?;
    Ok((StatusCode::CREATED, Json(registered)).into_response())
}

/// `DELETE /api/v1/webhooks/{webhook_id}` (HQ, ADMIN).
pub(super) async fn delete(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    webhooks::delete(
        context.auth.pool(),
        &caller.principal,
        webhook_id(&id)?,
        "/api/v1/webhooks/{webhook_id}",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /api/v1/webhooks/{webhook_id}/deliveries`.
pub(super) async fn deliveries(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let deliveries =
        webhooks::deliveries(context.auth.pool(), &caller.principal, webhook_id(&id)?).await?;
    Ok(Json(Deliveries { deliveries }).into_response())
}
