//! Web sessions over HTTP/JSON (docs/identity.md): `POST /api/v1/session` logs in,
//! `GET` says who is logged in, `DELETE` logs out.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use noroshi_domain::authz::Principal;
use noroshi_identity::users::{self, Password};
use noroshi_identity::{Caller, Credential, audit, sessions};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::admin::json_body;
use crate::auth::{Authed, Peer};
use crate::cookies;
use crate::error::ApiError;
use crate::state::HttpContext;

/// `POST /api/v1/session`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub(crate) username: String,
    password: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Login")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Checks the password and opens a session: the principal, the `Set-Cookie` value and
/// the CSRF token.
pub(crate) async fn log_in(
    context: &HttpContext,
    peer: Peer,
    login: &Login,
    via: &str,
) -> Result<(Principal, String, String), ApiError> {
    let auth = &context.auth;
    auth.throttle_login(peer.0)?;
    let principal = users::login(
        auth.pool(),
        auth.settings(),
        login.username.trim(),
        &Password::new(login.password.clone()),
        via,
    )
    .await?;
    let opened = sessions::open(auth.pool(), auth.settings(), login.username.trim()).await?;
    let cookie = cookies::set_cookie(auth.settings(), &opened.cookie_value);
    Ok((principal, cookie, opened.csrf_token))
}

/// A web session: who is logged in, and the token its state-changing requests carry
/// (`X-CSRF-Token`).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct SessionAnswer {
    principal_id: String,
    organisation_id: String,
    role: String,
    csrf_token: String,
}

fn session_json(principal: &Principal, csrf_token: &str) -> SessionAnswer {
    SessionAnswer {
        principal_id: principal.principal_id.to_string(),
        organisation_id: principal.organisation_id.to_string(),
        role: principal.role.as_str().to_owned(),
        csrf_token: csrf_token.to_owned(),
    }
}

/// `POST /api/v1/session` with `{"username", "password"}`: opens a session (cookie) and
/// answers the principal and the CSRF token.
pub(super) async fn create_session(
    State(context): State<HttpContext>,
    peer: Peer,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let login: Login = json_body(&body)?;
    let (principal, cookie, csrf) = log_in(&context, peer, &login, "/api/v1/session").await?;
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(session_json(&principal, &csrf)),
    )
        .into_response())
}

/// `GET /api/v1/session`: who is logged in, and the session's CSRF token.
pub(super) async fn get_session(Authed(caller): Authed) -> Result<Response, ApiError> {
    match &caller.credential {
        Credential::Session { csrf_token } => {
            Ok(Json(session_json(&caller.principal, csrf_token)).into_response())
        }
        _ => Err(ApiError::Unauthenticated("no session: log in")),
    }
}

/// `DELETE /api/v1/session` (with the CSRF token): logs out.
pub(super) async fn delete_session(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end_session(&context, &caller, &headers).await?;
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            cookies::clear_cookie(context.auth.settings()),
        )],
    )
        .into_response())
}

pub(crate) async fn end_session(
    context: &HttpContext,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    let settings = context.auth.settings();
    let cookie = cookies::from_headers(settings, headers);
    match (&caller.credential, cookie) {
        (Credential::Session { .. }, Some(cookie)) => {
            sessions::end(context.auth.pool(), cookie).await?;
            audit::record(
                context.auth.pool(),
                audit::LOGOUT,
                &caller.principal,
                "logout",
                None,
                None,
            )
            .await
            .map_err(ApiError::from)
        }
        _ => Err(ApiError::Unauthenticated("no session: log in")),
    }
}
