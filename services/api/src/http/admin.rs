//! Users, API clients and the audit log over HTTP/JSON (docs/identity.md): for ADMIN,
//! and HQ where the identity rules allow.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use noroshi_domain::values::{FacilityId, FacilityKind};
use noroshi_identity::audit::{self, AuditQuery};
use noroshi_identity::clients;
use noroshi_identity::users::{self, NewUser, Password, UserChange};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::auth::Authed;
use crate::error::ApiError;
use crate::state::HttpContext;

/// `GET /api/v1/admin/users`.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Users {
    users: Vec<users::UserRecord>,
}

/// `GET /api/v1/admin/clients`: never their tokens.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Clients {
    clients: Vec<clients::ClientRecord>,
}

/// `GET /api/v1/audit`, newest first.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct AuditRecords {
    records: Vec<audit::AuditRecord>,
}

/// The kind of a registered organisation, for checking the role of a user or client.
pub(super) async fn organisation_kind(
    context: &HttpContext,
    organisation_id: &str,
) -> Result<Option<FacilityKind>, ApiError> {
    let Ok(id) = FacilityId::parse(organisation_id) else {
        return Ok(None);
    };
    let (facility, _) = context.handler.facility(&id).await?;
    Ok(facility.profile.map(|p| p.kind))
}

pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut json).map_err(|error| {
        ApiError::invalid(
            crate::json::field_of(error.path().to_string()),
            format!("malformed JSON: {}", error.inner()),
        )
    })
}

/// `POST /api/v1/admin/users`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UserBody {
    username: String,
    display_name: String,
    organisation_id: String,
    role: String,
    password: String,
}

/// `GET /api/v1/admin/users` (ADMIN, HQ).
pub(super) async fn list_users(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    let users = users::list(context.auth.pool(), &caller.principal).await?;
    Ok(Json(Users { users }).into_response())
}

/// `POST /api/v1/admin/users` (ADMIN; HQ for every role but ADMIN).
pub(super) async fn create_user(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: UserBody = json_body(&body)?;
    let kind = organisation_kind(&context, &body.organisation_id).await?;
    let user = NewUser {
        username: body.username,
        display_name: body.display_name,
        organisation_id: body.organisation_id,
        role: body.role,
        password: Password::new(body.password),
    };
    let created = users::create(
        context.auth.pool(),
        &caller.principal,
        &user,
        kind,
        "/api/v1/admin/users",
    )
    .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// `PATCH /api/v1/admin/users/{username}` with `display_name` and/or `disabled`.
pub(super) async fn update_user(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let change: UserChange = json_body(&body)?;
    let updated = users::update(
        context.auth.pool(),
        &caller.principal,
        &username,
        &change,
        "/api/v1/admin/users/{username}",
    )
    .await?;
    Ok(Json(updated).into_response())
}

/// `POST /api/v1/admin/users/{username}/password`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    password: String,
}

/// `POST /api/v1/admin/users/{username}/password` with the new `password`: resets it,
/// lifts a lockout and ends the user's sessions.
pub(super) async fn reset_password(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(username): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: PasswordBody = json_body(&body)?;
    users::reset_password(
        context.auth.pool(),
        &caller.principal,
        &username,
        &Password::new(body.password),
        "/api/v1/admin/users/{username}/password",
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /api/v1/admin/clients`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClientBody {
    name: String,
    organisation_id: String,
    scopes: Vec<String>,
    /// Seconds until the token expires.
    expires_in: u64,
}

/// `GET /api/v1/admin/clients` (ADMIN).
pub(super) async fn list_clients(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    let clients = clients::list(context.auth.pool(), &caller.principal).await?;
    Ok(Json(Clients { clients }).into_response())
}

/// `POST /api/v1/admin/clients` (ADMIN): issues a client; the answer holds its token,
/// the only time it is shown.
pub(super) async fn issue_client(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let body: ClientBody = json_body(&body)?;
    let kind = organisation_kind(&context, &body.organisation_id).await?;
    let issued = clients::issue(
        context.auth.pool(),
        &caller.principal,
        &clients::NewClient {
            name: body.name,
            organisation_id: body.organisation_id,
            scopes: body.scopes,
            lifetime: std::time::Duration::from_secs(body.expires_in),
        },
        kind,
        "/api/v1/admin/clients",
    )
    .await?;
    Ok((StatusCode::CREATED, Json(issued)).into_response())
}

/// `POST /api/v1/admin/clients/{client_id}/revoke` (ADMIN): effective at once.
pub(super) async fn revoke_client(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(client_id): Path<String>,
) -> Result<Response, ApiError> {
    let client_id = Uuid::parse_str(&client_id)
        .map_err(|_| ApiError::invalid("client_id", "must be a UUID"))?;
    let revoked = clients::revoke(
        context.auth.pool(),
        &caller.principal,
        client_id,
        "/api/v1/admin/clients/{client_id}/revoke",
    )
    .await?;
    Ok(Json(revoked).into_response())
}

/// `GET /api/v1/audit?case_id=&principal_id=&kind=&from=&to=&limit=&format=csv` (HQ,
/// ADMIN): the audit log, newest first, as JSON or CSV.
pub(super) async fn audit_log(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let (query, csv) = AuditQuery::from_params(&params)?;
    let records = audit::query(context.auth.pool(), &caller.principal, &query).await?;
    if csv {
        let body = audit::to_csv(&records)?;
        let name = format!(
            "noroshi-audit-{}.csv",
            OffsetDateTime::now_utc().unix_timestamp()
        );
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (
                    header::CONTENT_DISPOSITION,
                    format!("attachment; filename=\"{name}\""),
                ),
            ],
            body,
        )
            .into_response());
    }
    Ok(Json(AuditRecords { records }).into_response())
}
