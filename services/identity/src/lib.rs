//! Who is asking (docs/identity.md). A request proves its principal with one of:
//!
//! - a web session cookie, after a login with username and password ([`users`],
//!   [`sessions`]);
//! - an API client token, issued by ADMIN for one organisation and a set of scopes
//!   ([`clients`]);
//! - a client certificate from the deployment's own CA ([`certificates`]);
//! - a development token from a file ([`tokens`]), only where explicitly allowed.
//!
//! A client certificate also binds its connection: a session or token presented over it
//! must belong to the certificate's organisation.

pub mod areas;
pub mod audit;
pub mod certificates;
pub mod clients;
pub mod drill;
mod error;
mod secrets;
pub mod sessions;
pub mod tokens;
pub mod users;
pub mod webhooks;

pub use error::IdentityError;

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, PrincipalId};
use sqlx::PgPool;
use sqlx::migrate::{MigrateError, Migrator};

use crate::tokens::Tokens;

/// The identity tables' migrations (`services/identity/migrations`): users, sessions,
/// clients, certificates, the audit log and the deployment's medical areas, recorded in
/// their own table so that they never mix with the event store's or the read models'.
pub fn migrator() -> Migrator {
    let mut migrator = sqlx::migrate!("./migrations");
    migrator.dangerous_set_table_name("_sqlx_migrations_identity");
    migrator
}

/// Brings the identity schema up to date. Safe to run concurrently and repeatedly.
pub async fn migrate(pool: &PgPool) -> Result<(), MigrateError> {
    migrator().run(pool).await
}

/// Prefix of API client tokens, which tells them apart from development tokens.
pub const CLIENT_TOKEN_PREFIX: &str = "nrs_";

/// Sessions and logins.
#[derive(Debug, Clone)]
pub struct IdentitySettings {
    /// A session unused for this long ends.
    pub session_idle: Duration,
    /// A session ends this long after login, however active.
    pub session_lifetime: Duration,
    /// Consecutive failed logins that lock an account.
    pub max_failed_logins: u32,
    /// How long a locked account stays locked.
    pub lockout: Duration,
    /// Session cookies carry `Secure` (and the `__Host-` name prefix): on behind TLS.
    pub secure_cookies: bool,
    /// Login attempts one address may make per minute, whatever the usernames: the
    /// throttle against guessing across many accounts, which no single account's
    /// lockout sees. Behind a reverse proxy every user shares the proxy's address, so
    /// it is generous.
    pub login_attempts_per_minute: u32,
}

impl Default for IdentitySettings {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(30 * 60),
            session_lifetime: Duration::from_secs(12 * 3600),
            max_failed_logins: 5,
            lockout: Duration::from_secs(15 * 60),
            secure_cookies: false,
            login_attempts_per_minute: 30,
        }
    }
}

impl IdentitySettings {
    /// Name of the session cookie.
    pub fn cookie_name(&self) -> &'static str {
        if self.secure_cookies {
            "__Host-noroshi_session"
        } else {
            "noroshi_session"
        }
    }
}

/// What an API client may call: one scope per service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// `FacilityService`: capacity, acceptance and facility profiles.
    Facilities,
    /// `CaseService`.
    Cases,
    /// `PlacementService`.
    Placements,
    /// `ConsultService`.
    Consults,
    /// `AlertService`: acknowledging alerts, alert rules.
    Alerts,
    /// `ViewService` and `/api/v1/views/…`.
    Views,
}

impl Scope {
    pub const ALL: &'static [Self] = &[
        Self::Facilities,
        Self::Cases,
        Self::Placements,
        Self::Consults,
        Self::Alerts,
        Self::Views,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Facilities => "facilities",
            Self::Cases => "cases",
            Self::Placements => "placements",
            Self::Consults => "consults",
            Self::Alerts => "alerts",
            Self::Views => "views",
        }
    }

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|s| s.as_str() == value)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// A development token from the token file.
    DevToken,
    /// A web session; state-changing requests must carry its CSRF token.
    Session { csrf_token: String },
    /// An API client, limited to its scopes.
    ApiClient { scopes: Vec<Scope> },
    /// A client certificate alone.
    Certificate,
}

/// An authenticated request's principal, and how it was proved.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub credential: Credential,
}

impl Caller {
    /// The principal, for an action of `scope`: an API client without the scope is
    /// refused, every other credential carries all scopes its role allows.
    pub fn scoped(&self, scope: Scope) -> Result<&Principal, IdentityError> {
        match &self.credential {
            Credential::ApiClient { scopes } if !scopes.contains(&scope) => {
                Err(IdentityError::PermissionDenied)
            }
            _ => Ok(&self.principal),
        }
    }
}

/// What a request presented.
#[derive(Debug, Default, Clone, Copy)]
pub struct Presented<'a> {
    /// The value of an `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The value of the session cookie.
    pub session: Option<&'a str>,
    /// The DER of the client certificate of the connection.
    pub certificate: Option<&'a [u8]>,
    /// The route asked for, recorded with token uses and denials.
    pub via: &'a str,
}

/// Turns what a request presents into a [`Caller`].
pub struct Authenticator {
    pool: PgPool,
    dev_tokens: Option<Tokens>,
    settings: IdentitySettings,
    login_attempts: DefaultKeyedRateLimiter<IpAddr>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("dev_tokens", &self.dev_tokens.as_ref().map(Tokens::len))
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Addresses remembered by the login throttle before the idle ones are forgotten.
const THROTTLED_ADDRESSES: usize = 10_000;

const MISSING: &str = "no credentials: log in, or send an Authorization: Bearer token";
pub const NOT_BEARER: &str = "the Authorization header is not a Bearer token";
const UNKNOWN_TOKEN: &str = "the token is unknown, expired or revoked";
const SESSION_ENDED: &str = "the session has ended: log in again";
const CERTIFICATE_UNKNOWN: &str = "the client certificate is not registered, expired or revoked";

impl Authenticator {
    /// With `dev_tokens`, the bearer tokens of a token file are accepted too.
    pub fn new(pool: PgPool, dev_tokens: Option<Tokens>, settings: IdentitySettings) -> Self {
        let per_minute =
            NonZeroU32::new(settings.login_attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            pool,
            dev_tokens,
            login_attempts: RateLimiter::keyed(Quota::per_minute(per_minute)),
            settings,
        }
    }

    /// Counts a login attempt from `peer`; RESOURCE_EXHAUSTED once the address has used
    /// its attempts of the minute. Nothing is checked or recorded for a refused attempt.
    pub fn throttle_login(&self, peer: Option<IpAddr>) -> Result<(), IdentityError> {
        let Some(peer) = peer else { return Ok(()) };
        if self.login_attempts.len() > THROTTLED_ADDRESSES {
            self.login_attempts.retain_recent();
        }
        self.login_attempts.check_key(&peer).map_err(|_| {
            IdentityError::ResourceExhausted(
                "too many login attempts from this address: wait a minute and try again".into(),
            )
        })
    }

    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// The caller of a request, `Ok(None)` when it presented nothing at all. A bearer
    /// token wins over a session cookie; a client certificate that is presented must be
    /// registered, and must belong to the organisation of any other credential.
    pub async fn authenticate(
        &self,
        presented: Presented<'_>,
    ) -> Result<Option<Caller>, IdentityError> {
        let terminal = match presented.certificate {
            Some(der) => Some(
                certificates::lookup(&self.pool, der)
                    .await?
                    .ok_or(IdentityError::Unauthenticated(CERTIFICATE_UNKNOWN))?,
            ),
            None => None,
        };
        let caller = if let Some(header) = presented.authorization {
            let token = header
                .strip_prefix("Bearer ")
                .or_else(|| header.strip_prefix("bearer "))
                .map(str::trim)
                .ok_or(IdentityError::Unauthenticated(NOT_BEARER))?;
            Some(self.bearer(token, presented.via).await?)
        } else if let Some(cookie) = presented.session {
            let (principal, csrf_token) = sessions::resume(&self.pool, &self.settings, cookie)
                .await?
                .ok_or(IdentityError::Unauthenticated(SESSION_ENDED))?;
            Some(Caller {
                principal,
                credential: Credential::Session { csrf_token },
            })
        } else {
            None
        };
        match (caller, terminal) {
            (Some(caller), Some(terminal))
                if caller.principal.organisation_id != terminal.organisation_id =>
            {
                // The terminal belongs to another organisation.
                audit_denial(&self.pool, &caller.principal, presented.via).await?;
                Err(IdentityError::PermissionDenied)
            }
            (Some(caller), _) => Ok(Some(caller)),
            (None, Some(terminal)) => Ok(Some(Caller {
                principal: terminal,
                credential: Credential::Certificate,
            })),
            (None, None) => Ok(None),
        }
    }

    async fn bearer(&self, token: &str, via: &str) -> Result<Caller, IdentityError> {
        if token.starts_with(CLIENT_TOKEN_PREFIX) {
            let (principal, scopes) = clients::authenticate(&self.pool, token, via)
                .await?
                .ok_or(IdentityError::Unauthenticated(UNKNOWN_TOKEN))?;
            return Ok(Caller {
                principal,
                credential: Credential::ApiClient { scopes },
            });
        }
        let principal = self
            .dev_tokens
            .as_ref()
            .and_then(|tokens| tokens.principal(token))
            .ok_or(IdentityError::Unauthenticated(UNKNOWN_TOKEN))?;
        Ok(Caller {
            principal,
            credential: Credential::DevToken,
        })
    }

    /// Records that `principal` was refused `via`.
    pub async fn denied(&self, principal: &Principal, via: &str) -> Result<(), IdentityError> {
        audit_denial(&self.pool, principal, via).await
    }
}

/// The caller of a request that must be authenticated.
pub fn required(caller: Option<&Caller>) -> Result<&Caller, IdentityError> {
    caller.ok_or(IdentityError::Unauthenticated(MISSING))
}

async fn audit_denial(
    pool: &PgPool,
    principal: &Principal,
    via: &str,
) -> Result<(), IdentityError> {
    crate::audit::record(
        pool,
        crate::audit::PERMISSION_DENIED,
        principal,
        via,
        None,
        None,
    )
    .await
}

/// The principal of a web user: `user:<username>`, of its organisation, in its role.
fn user_principal(
    username: &str,
    organisation_id: &str,
    role: &str,
) -> Result<Principal, IdentityError> {
    principal(format!("user:{username}"), organisation_id, role)
}

/// A principal read back from an identity table.
fn principal(
    principal_id: String,
    organisation_id: &str,
    role: &str,
) -> Result<Principal, IdentityError> {
    let corrupt = |what: &str| {
        IdentityError::internal(std::io::Error::other(format!(
            "identity table holds an invalid {what}"
        )))
    };
    Ok(Principal {
        principal_id: PrincipalId::parse(&principal_id).map_err(|_| corrupt("principal id"))?,
        organisation_id: FacilityId::parse(organisation_id).map_err(|_| corrupt("organisation"))?,
        role: Role::parse(role).ok_or_else(|| corrupt("role"))?,
    })
}
