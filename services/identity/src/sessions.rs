//! Web sessions: a 256-bit random id in an HttpOnly, SameSite=Strict cookie (Secure
//! behind TLS), stored as its SHA-256. A session ends when unused for the idle timeout,
//! at its absolute lifetime, at logout, and when its user is disabled or has the
//! password reset. Each has a CSRF token that state-changing requests must send back.

use noroshi_domain::authz::Principal;
use sqlx::{PgExecutor, PgPool};

use super::IdentitySettings;
use super::secrets::{digest, random_token};
use crate::error::{IdentityError, store_failure};

/// A session just opened: the cookie's value (shown to the browser only) and its CSRF
/// token.
#[derive(Clone)]
pub struct Opened {
    pub cookie_value: String,
    pub csrf_token: String,
}

impl std::fmt::Debug for Opened {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Opened(…)")
    }
}

/// Opens a session for `username` (who just logged in), and removes the sessions that
/// have ended anywhere.
pub async fn open(
    pool: &PgPool,
    settings: &IdentitySettings,
    username: &str,
) -> Result<Opened, IdentityError> {
    let cookie_value = random_token()?;
    let csrf_token = csrf_token(&cookie_value);
    sqlx::query(
        "DELETE FROM sessions WHERE expires_at <= now() \
            OR last_seen <= now() - make_interval(secs => $1)",
    )
    .bind(settings.session_idle.as_secs_f64())
    .execute(pool)
    .await
    .map_err(store_failure)?;
    sqlx::query(
        "INSERT INTO sessions (id_hash, username, expires_at) \
         VALUES ($1, $2, now() + make_interval(secs => $3))",
    )
    .bind(digest(&cookie_value))
    .bind(username)
    .bind(settings.session_lifetime.as_secs_f64())
    .execute(pool)
    .await
    .map_err(store_failure)?;
    Ok(Opened {
        cookie_value,
        csrf_token,
    })
}

/// The principal and CSRF token of a live session, marking it used; `None` when the
/// session is unknown or has ended.
pub async fn resume(
    pool: &PgPool,
    settings: &IdentitySettings,
    cookie_value: &str,
) -> Result<Option<(Principal, String)>, IdentityError> {
    let row: Option<(String, String, String)> = sqlx::query_as(
        "UPDATE sessions s SET last_seen = now() FROM users u \
         WHERE s.id_hash = $1 AND u.username = s.username AND NOT u.disabled \
           AND s.expires_at > now() AND s.last_seen > now() - make_interval(secs => $2) \
         RETURNING u.username, u.organisation_id, u.role",
    )
    .bind(digest(cookie_value))
    .bind(settings.session_idle.as_secs_f64())
    .fetch_optional(pool)
    .await
    .map_err(store_failure)?;
    row.map(|(username, organisation_id, role)| {
        crate::user_principal(&username, &organisation_id, &role)
            .map(|principal| (principal, csrf_token(cookie_value)))
    })
    .transpose()
}

/// The CSRF token of a session: derived from its id, which only the browser holds (the
/// cookie is HttpOnly, and another site cannot read it), so nothing needs storing.
fn csrf_token(cookie_value: &str) -> String {
    use base64::Engine;
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("noroshi-csrf:{cookie_value}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Ends one session (logout). Ending an ended session is not an error.
pub async fn end(pool: &PgPool, cookie_value: &str) -> Result<(), IdentityError> {
    sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
        .bind(digest(cookie_value))
        .execute(pool)
        .await
        .map_err(store_failure)?;
    Ok(())
}

/// Ends every session of a user.
pub async fn end_all(executor: impl PgExecutor<'_>, username: &str) -> Result<(), IdentityError> {
    sqlx::query("DELETE FROM sessions WHERE username = $1")
        .bind(username)
        .execute(executor)
        .await
        .map_err(store_failure)?;
    Ok(())
}
