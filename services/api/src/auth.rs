//! Who is asking, on each transport: the authentication middleware of HTTP (bearer
//! token, session cookie with its CSRF token, client certificate), the extractors of
//! the caller, and the principal of a gRPC request (authenticated by the gRPC server's
//! layer).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use noroshi_domain::authz::Principal;
use noroshi_identity::{self as identity, Caller, Credential, Presented, Scope};
use subtle::ConstantTimeEq;

use crate::cookies;
use crate::error::ApiError;
use crate::state::HttpContext;

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

/// The caller of a page request, if any: pages redirect to the login instead of
/// answering 401.
#[derive(Debug, Clone)]
pub struct PageCaller(pub Option<Caller>);

impl<S: Send + Sync> FromRequestParts<S> for PageCaller {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Self(parts.extensions.get::<Caller>().cloned()))
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
pub(crate) async fn authenticate(
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
/// The principal of an authenticated request, for an action of `scope`.
pub(crate) fn principal<T>(
    request: &tonic::Request<T>,
    scope: Scope,
) -> Result<Principal, ApiError> {
    Ok(
        noroshi_identity::required(request.extensions().get::<Caller>())?
            .scoped(scope)
            .cloned()?,
    )
}
