//! The login form and logout (docs/web.md): the same session as `POST /api/v1/session`,
//! for people without script.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::escape;
use crate::auth::{Authed, Peer};
use crate::cookies;
use crate::error::ApiError;
use crate::http::sessions::{Login, end_session, log_in};
use crate::state::HttpContext;

const LOGIN_PAGE: &str = include_str!("../../assets/login.html");

/// The login form, with an error (its i18n key, and the English text for pages without
/// script) and the username typed.
fn login_page(status: StatusCode, error: Option<(&str, &str)>, username: &str) -> Response {
    let (key, text) = error.unwrap_or(("", ""));
    let page = LOGIN_PAGE
        .replace("{{error_key}}", key)
        .replace("{{error}}", &escape(text))
        .replace("{{username}}", &escape(username));
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// The i18n key of a failed login's message.
fn login_error(error: &ApiError) -> &'static str {
    match error {
        ApiError::ResourceExhausted(_) => "login.error.throttled",
        ApiError::Unauthenticated(message) if message.contains("locked") => "login.error.locked",
        _ => "login.error.wrong",
    }
}

/// `GET /login`: the login form.
pub(crate) async fn login_form() -> Response {
    login_page(StatusCode::OK, None, "")
}

/// `POST /login` (form): logs in and goes to `/`, or shows the form again with the error
/// and the username kept.
pub(crate) async fn login_submit(
    State(context): State<HttpContext>,
    peer: Peer,
    axum::Form(login): axum::Form<Login>,
) -> Response {
    match log_in(&context, peer, &login, "/login").await {
        Ok((_, cookie, _)) => ([(header::SET_COOKIE, cookie)], Redirect::to("/")).into_response(),
        Err(error @ (ApiError::Unauthenticated(_) | ApiError::ResourceExhausted(_))) => {
            let status = StatusCode::from_u16(error.code().http_status())
                .unwrap_or(StatusCode::UNAUTHORIZED);
            let text = error.to_string();
            login_page(status, Some((login_error(&error), &text)), &login.username)
        }
        Err(other) => other.into_response(),
    }
}

/// `POST /logout` (form, with `csrf_token`): ends the session and goes to `/login`.
pub(crate) async fn logout_submit(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    end_session(&context, &caller, &headers).await?;
    Ok((
        [(
            header::SET_COOKIE,
            cookies::clear_cookie(context.auth.settings()),
        )],
        Redirect::to("/login"),
    )
        .into_response())
}
