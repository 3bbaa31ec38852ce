//! Identity over HTTP (docs/identity.md): the authentication middleware, logins and
//! sessions, CSRF, user and API client administration, and the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::connect_info::Connected;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Redirect, Response};
use noroshi_domain::authz::Principal;
use noroshi_domain::values::{FacilityId, FacilityKind};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::HttpContext;
use crate::error::ApiError;
use noroshi_identity::audit::{self, AuditQuery};
use noroshi_identity::users::{self, NewUser, Password, UserChange};
use noroshi_identity::{self as identity, Caller, Credential, Presented, clients, sessions};

use super::cookies;

/// The authenticated caller of an HTTP request; UNAUTHENTICATED when there is none.
#[derive(Debug, Clone)]
pub struct Authed(pub Caller);

impl<S: Send + Sync> FromRequestParts<S> for Authed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        identity::required(parts.extensions.get::<Caller>())
            .cloned()
            .map(Self)
            .map_err(ApiError::from)
    }
}

/// The peer of a TLS connection: its address and client certificate (DER), if any.
#[derive(Debug, Clone)]
pub struct TlsPeer {
    pub addr: SocketAddr,
    pub certificate: Option<Arc<Vec<u8>>>,
}

/// The address a request came from (the proxy's, behind a reverse proxy).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let extensions = &parts.extensions;
        Ok(Self(
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|info| info.0.ip())
                .or_else(|| {
                    extensions
                        .get::<ConnectInfo<TlsPeer>>()
                        .map(|info| info.0.addr.ip())
                }),
        ))
    }
}

/// Name of the header, and of the form field, that carries a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";
pub const CSRF_FIELD: &str = "csrf_token";

/// Authenticates every request (bearer token, session cookie, client certificate) and
/// puts the [`Caller`] in its extensions. Invalid credentials are refused here; none at
/// all go on without a caller, for the handlers that need one to refuse. A request
/// authenticated by a session cookie that changes state must carry the session's CSRF
/// token. A PERMISSION_DENIED answer to a caller is written to the audit log.
pub(super) async fn authenticate(
    State(context): State<HttpContext>,
    request: Request,
    next: Next,
) -> Response {
    if is_login(&request) {
        // Logging in acts on no one's authority: a stale session cookie must not stand
        // in the way of a new one.
        return next.run(request).await;
    }
    match authenticated(&context, request).await {
        Ok((request, principal, via)) => {
            let response = next.run(request).await;
            if let (StatusCode::FORBIDDEN, Some(principal)) = (response.status(), principal)
                && let Err(error) = context.auth.denied(&principal, &via).await
            {
                tracing::error!(error = %error, "cannot record a permission denial");
            }
            response
        }
        Err(error) => error.into_response(),
    }
}

async fn authenticated(
    context: &HttpContext,
    request: Request,
) -> Result<(Request, Option<Principal>, String), ApiError> {
    let via = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(
            || request.uri().path().to_owned(),
            |m| m.as_str().to_owned(),
        );
    let headers = request.headers();
    let authorization = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .map_err(|_| ApiError::Unauthenticated(identity::NOT_BEARER))?,
        ),
    };
    let settings = context.auth.settings();
    let session = cookies::from_headers(settings, headers);
    let certificate = request
        .extensions()
        .get::<ConnectInfo<TlsPeer>>()
        .and_then(|peer| peer.0.certificate.clone());
    let caller = context
        .auth
        .authenticate(Presented {
            authorization,
            session,
            certificate: certificate.as_deref().map(Vec::as_slice),
            via: &via,
        })
        .await?;
    let Some(caller) = caller else {
        return Ok((request, None, via));
    };
    let principal = caller.principal.clone();
    let mut request = match &caller.credential {
        Credential::Session { csrf_token } if !is_safe(request.method()) => {
            let (request, presented) = csrf_token_of(request, context.max_body_bytes).await?;
            let matches = presented.is_some_and(|presented| {
                bool::from(presented.as_bytes().ct_eq(csrf_token.as_bytes()))
            });
            if !matches {
                context.auth.denied(&principal, &via).await?;
                return Err(ApiError::CsrfRejected);
            }
            request
        }
        _ => request,
    };
    request.extensions_mut().insert(caller);
    Ok((request, Some(principal), via))
}

/// The login form and `POST /api/v1/session`.
fn is_login(request: &Request) -> bool {
    let path = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str);
    match path {
        Some("/login") => true,
        Some("/api/v1/session") => request.method() == Method::POST,
        _ => false,
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The CSRF token a request carries: the header, or the form field of a form post (the
/// body is read, and put back for the handler).
async fn csrf_token_of(
    request: Request,
    limit: usize,
) -> Result<(Request, Option<String>), ApiError> {
    if let Some(value) = request.headers().get(CSRF_HEADER) {
        let token = value.to_str().ok().map(str::to_owned);
        return Ok((request, token));
    }
    let form = request
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| {
            v.as_bytes()
                .starts_with(b"application/x-www-form-urlencoded")
        });
    if !form {
        return Ok((request, None));
    }
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::ResourceExhausted(format!("the request body is over {limit} bytes"))
    })?;
    let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .ok()
        .and_then(|fields| {
            fields
                .into_iter()
                .find(|(name, _)| name == CSRF_FIELD)
                .map(|(_, value)| value)
        });
    Ok((Request::from_parts(parts, Body::from(bytes)), token))
}

/// `POST /api/v1/session`'s body.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    username: String,
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
async fn log_in(
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

async fn end_session(
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

const LOGIN_PAGE: &str = include_str!("../../assets/login.html");

/// The login form, with an error (its i18n key, and the English text for pages without
/// script) and the username typed.
fn login_page(status: StatusCode, error: Option<(&str, &str)>, username: &str) -> Response {
    let (key, text) = error.unwrap_or(("", ""));
    let page = LOGIN_PAGE
        .replace("{{error_key}}", key)
        .replace("{{error}}", &crate::web::escape(text))
        .replace("{{username}}", &crate::web::escape(username));
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
pub(super) async fn login_form() -> Response {
    login_page(StatusCode::OK, None, "")
}

/// `POST /login` (form): logs in and goes to `/`, or shows the form again with the error
/// and the username kept.
pub(super) async fn login_submit(
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
pub(super) async fn logout_submit(
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

/// The kind of a registered organisation, for checking the role of a user or client.
async fn organisation_kind(
    context: &HttpContext,
    organisation_id: &str,
) -> Result<Option<FacilityKind>, ApiError> {
    let Ok(id) = FacilityId::parse(organisation_id) else {
        return Ok(None);
    };
    let (facility, _) = context.handler.facility(&id).await?;
    Ok(facility.profile.map(|p| p.kind))
}

fn json_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
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

impl Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A listener that hands out TLS connections once their handshake is done; handshakes
/// run concurrently, so a slow client holds up nobody else.
#[derive(Debug)]
pub struct TlsListener {
    accepted: tokio::sync::mpsc::Receiver<(TlsStream<tokio::net::TcpStream>, TlsPeer)>,
    local: SocketAddr,
}

/// Longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl TlsListener {
    pub fn new(
        listener: TcpListener,
        config: rustls::ServerConfig,
        shutdown: CancellationToken,
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (sender, accepted) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (tcp, addr) = tokio::select! {
                    () = shutdown.cancelled() => return,
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!(error = %error, "cannot accept a connection");
                            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                let _ = tcp.set_nodelay(true);
                let acceptor = acceptor.clone();
                let sender = sender.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let certificate = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|certs| certs.first())
                                .map(|cert| Arc::new(cert.to_vec()));
                            let peer = TlsPeer { addr, certificate };
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => {
                            tracing::debug!(peer = %addr, error = %error, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(peer = %addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { accepted, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<tokio::net::TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(accepted) => accepted,
            // The acceptor stopped at shutdown: no more connections.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(TlsPeer {
            addr: self.local,
            certificate: None,
        })
    }
}
