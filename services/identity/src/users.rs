//! Users of the web UI: one organisation and one role each, a password hashed with
//! argon2id, and a lockout after repeated failed logins. ADMIN manages every user; HQ
//! manages every user but ADMINs. Each change is written to the audit log in the same
//! transaction (who changed what, and when); passwords never are.

use std::fmt;
use std::sync::OnceLock;

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, FacilityKind};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio::sync::Semaphore;

use super::IdentitySettings;
use crate::audit;
use crate::error::{IdentityError, store_failure};

/// Shortest and longest password accepted.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 12..=256;

/// Argon2 hashes computed at once: each takes ~19 MiB and a core for tens of
/// milliseconds, so a burst of logins must queue rather than exhaust the server.
const CONCURRENT_HASHES: usize = 4;

const WRONG_PASSWORD: &str = "wrong username or password";
const LOCKED: &str = "too many failed logins: the account is locked for a while, or until an administrator resets its password";

/// A password in memory: never printed, never logged.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub organisation_id: String,
    pub role: String,
    pub password: Password,
}

/// A user as ADMIN and HQ see it; no hash.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct UserRecord {
    pub username: String,
    pub display_name: String,
    pub organisation_id: String,
    pub role: String,
    pub disabled: bool,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub locked_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub updated_at: OffsetDateTime,
}

/// 3 to 64 of `a-z`, `0-9`, `.`, `_` and `-`, starting with a letter or digit.
pub fn check_username(username: &str) -> Result<(), &'static str> {
    let ok = (3..=64).contains(&username.len())
        && username
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
        && username
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err("must be 3 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit")
    }
}

pub fn check_password(password: &Password) -> Result<(), String> {
    let chars = password.0.chars().count();
    if PASSWORD_CHARS.contains(&chars) {
        Ok(())
    } else {
        Err(format!(
            "must be {} to {} characters",
            PASSWORD_CHARS.start(),
            PASSWORD_CHARS.end()
        ))
    }
}

fn hash_permits() -> &'static Semaphore {
    static PERMITS: OnceLock<Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| Semaphore::new(CONCURRENT_HASHES))
}

/// Runs argon2 off the async threads, a few at a time.
async fn with_argon2<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, IdentityError> {
    let _permit = hash_permits()
        .acquire()
        .await
        .map_err(IdentityError::internal)?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(IdentityError::internal)
}

/// An argon2id hash (PHC string) of `password` with a fresh salt.
pub async fn hash_password(password: &Password) -> Result<String, IdentityError> {
    let salt = SaltString::encode_b64(&super::secrets::random_bytes::<16>()?)
        .map_err(|e| IdentityError::internal(std::io::Error::other(format!("salt: {e}"))))?;
    let password = password.clone();
    with_argon2(move || {
        Argon2::default()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await?
    .map_err(|e| IdentityError::internal(std::io::Error::other(format!("argon2: {e}"))))
}

async fn verify_password(hash: String, password: &Password) -> Result<bool, IdentityError> {
    let password = password.clone();
    with_argon2(move || {
        PasswordHash::new(&hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(password.0.as_bytes(), &parsed)
                .is_ok()
        })
    })
    .await
}

/// A hash that matches no password, verified against for unknown usernames so that
/// they take as long to refuse as known ones.
async fn decoy_hash() -> Result<String, IdentityError> {
    static DECOY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    DECOY
        .get_or_try_init(|| async {
            hash_password(&Password::new(super::secrets::random_token()?)).await
        })
        .await
        .cloned()
}

/// Whether `actor` may manage users of `role`.
fn may_manage(actor: &Principal, role: Role) -> Result<(), IdentityError> {
    match actor.role {
        Role::Admin => Ok(()),
        Role::Hq if role != Role::Admin => Ok(()),
        _ => Err(IdentityError::PermissionDenied),
    }
}

/// Whether `actor` may list users.
pub fn may_list(actor: &Principal) -> Result<(), IdentityError> {
    match actor.role {
        Role::Admin | Role::Hq => Ok(()),
        _ => Err(IdentityError::PermissionDenied),
    }
}

/// Whether a user of this name exists.
pub async fn exists(pool: &PgPool, username: &str) -> Result<bool, IdentityError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE username = $1)")
        .bind(username)
        .fetch_one(pool)
        .await
        .map_err(store_failure)
}

/// Creates a user. `kind` is the kind of its organisation, `None` when that is not
/// registered. Recorded as `USER_CREATED`.
pub async fn create(
    pool: &PgPool,
    actor: &Principal,
    user: &NewUser,
    kind: Option<FacilityKind>,
    via: &str,
) -> Result<UserRecord, IdentityError> {
    let mut violations = Violations::new();
    if let Err(reason) = check_username(&user.username) {
        violations.add("username", reason);
    }
    let display_chars = user.display_name.trim().chars().count();
    if !(1..=100).contains(&display_chars) {
        violations.add("display_name", "must be 1 to 100 characters");
    }
    let role = Role::parse(&user.role);
    match role {
        None => violations.add(
            "role",
            format!(
                "must be one of {}",
                Role::ALL
                    .iter()
                    .map(|r| r.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ),
        Some(role) => {
            if let Err(reason) = FacilityId::parse(&user.organisation_id) {
                violations.add("organisation_id", reason.to_string());
            } else if let Err(reason) = role.fits(kind) {
                violations.add("organisation_id", reason);
            }
        }
    }
    if let Err(reason) = check_password(&user.password) {
        violations.add("password", reason);
    }
    let role = match role {
        Some(role) if violations.is_empty() => role,
        _ => return Err(IdentityError::Invalid(violations)),
    };
    may_manage(actor, role)?;
    let hash = hash_password(&user.password).await?;
    let mut tx = pool.begin().await.map_err(store_failure)?;
    let created = sqlx::query_as::<_, Row>(
        "INSERT INTO users (username, display_name, organisation_id, role, password_hash) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (username) DO NOTHING \
         RETURNING username, display_name, organisation_id, role, disabled, locked_until, created_at, updated_at",
    )
    .bind(&user.username)
    .bind(user.display_name.trim())
    .bind(&user.organisation_id)
    .bind(role.as_str())
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_failure)?
    .ok_or_else(|| IdentityError::AlreadyExists(format!("user {}", user.username)))?;
    audit::record(
        &mut *tx,
        audit::USER_CREATED,
        actor,
        via,
        None,
        Some(json!({
            "username": created.username,
            "organisation_id": created.organisation_id,
            "role": created.role,
            "display_name": created.display_name,
        })),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(created.into())
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    pub display_name: Option<String>,
    /// A disabled user cannot log in, and its sessions end.
    pub disabled: Option<bool>,
}

/// Applies `change` to a user. Recorded as `USER_UPDATED` with the fields changed.
pub async fn update(
    pool: &PgPool,
    actor: &Principal,
    username: &str,
    change: &UserChange,
    via: &str,
) -> Result<UserRecord, IdentityError> {
    if let Some(name) = &change.display_name
        && !(1..=100).contains(&name.trim().chars().count())
    {
        return Err(IdentityError::invalid(
            "display_name",
            "must be 1 to 100 characters",
        ));
    }
    let mut tx = pool.begin().await.map_err(store_failure)?;
    lock_managed(&mut tx, actor, username).await?;
    let updated = sqlx::query_as::<_, Row>(
        "UPDATE users SET display_name = coalesce($2, display_name), \
         disabled = coalesce($3, disabled), updated_at = now() WHERE username = $1 \
         RETURNING username, display_name, organisation_id, role, disabled, locked_until, created_at, updated_at",
    )
    .bind(username)
    .bind(change.display_name.as_deref().map(str::trim))
    .bind(change.disabled)
    .fetch_one(&mut *tx)
    .await
    .map_err(store_failure)?;
    if change.disabled == Some(true) {
        super::sessions::end_all(&mut *tx, username).await?;
    }
    audit::record(
        &mut *tx,
        audit::USER_UPDATED,
        actor,
        via,
        None,
        Some(json!({
            "username": username,
            "display_name": change.display_name,
            "disabled": change.disabled,
        })),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(updated.into())
}

/// Sets a new password for a user, lifts any lockout and ends the user's sessions.
/// Recorded as `PASSWORD_RESET` (without the password).
pub async fn reset_password(
    pool: &PgPool,
    actor: &Principal,
    username: &str,
    password: &Password,
    via: &str,
) -> Result<(), IdentityError> {
    check_password(password).map_err(|reason| IdentityError::invalid("password", reason))?;
    let hash = hash_password(password).await?;
    let mut tx = pool.begin().await.map_err(store_failure)?;
    lock_managed(&mut tx, actor, username).await?;
    sqlx::query(
        "UPDATE users SET password_hash = $2, failed_logins = 0, locked_until = NULL, \
         updated_at = now() WHERE username = $1",
    )
    .bind(username)
    .bind(&hash)
    .execute(&mut *tx)
    .await
    .map_err(store_failure)?;
    super::sessions::end_all(&mut *tx, username).await?;
    audit::record(
        &mut *tx,
        audit::PASSWORD_RESET,
        actor,
        via,
        None,
        Some(json!({"username": username})),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(())
}

/// Locks the row of a user that `actor` may manage; an unknown user is NOT_FOUND only
/// for those who may manage users at all.
async fn lock_managed(
    tx: &mut sqlx::PgConnection,
    actor: &Principal,
    username: &str,
) -> Result<(), IdentityError> {
    may_list(actor)?;
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE username = $1 FOR UPDATE")
            .bind(username)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_failure)?;
    let role = role.ok_or_else(|| IdentityError::NotFound(format!("user {username}")))?;
    may_manage(actor, Role::parse(&role).unwrap_or(Role::Admin))
}

pub async fn list(pool: &PgPool, actor: &Principal) -> Result<Vec<UserRecord>, IdentityError> {
    may_list(actor)?;
    let rows = sqlx::query_as::<_, Row>(
        "SELECT username, display_name, organisation_id, role, disabled, locked_until, created_at, updated_at \
         FROM users ORDER BY organisation_id, username",
    )
    .fetch_all(pool)
    .await
    .map_err(store_failure)?;
    Ok(rows.into_iter().map(Into::into).collect())
}

/// Checks a username and password. Attempts on one account are serialized by a row
/// lock, so the lockout holds however many run in parallel: the Nth consecutive failure
/// locks the account for the configured time, and a locked account refuses even the
/// right password. Every attempt is recorded (`LOGIN_SUCCEEDED`, `LOGIN_FAILED`,
/// `LOGIN_LOCKED`); an unknown username is recorded without it, since it may be a
/// password typed into the wrong field.
pub async fn login(
    pool: &PgPool,
    settings: &IdentitySettings,
    username: &str,
    password: &Password,
    via: &str,
) -> Result<Principal, IdentityError> {
    let mut tx = pool.begin().await.map_err(store_failure)?;
    let row: Option<(String, String, bool, String, bool)> = sqlx::query_as(
        "SELECT organisation_id, role, disabled, password_hash, \
                coalesce(locked_until > now(), false) \
         FROM users WHERE username = $1 FOR UPDATE",
    )
    .bind(username)
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_failure)?;
    let Some((organisation_id, role, disabled, hash, locked)) = row else {
        verify_password(decoy_hash().await?, password).await?;
        let nobody = anonymous();
        audit::record(
            &mut *tx,
            audit::LOGIN_FAILED,
            &nobody,
            via,
            None,
            Some(json!({"reason": "unknown user"})),
        )
        .await?;
        tx.commit().await.map_err(store_failure)?;
        return Err(IdentityError::Unauthenticated(WRONG_PASSWORD));
    };
    let principal = crate::user_principal(username, &organisation_id, &role)?;
    if locked {
        audit::record(&mut *tx, audit::LOGIN_LOCKED, &principal, via, None, None).await?;
        tx.commit().await.map_err(store_failure)?;
        return Err(IdentityError::Unauthenticated(LOCKED));
    }
    let matches = verify_password(hash, password).await?;
    if matches && !disabled {
        sqlx::query("UPDATE users SET failed_logins = 0, locked_until = NULL WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await
            .map_err(store_failure)?;
        audit::record(
            &mut *tx,
            audit::LOGIN_SUCCEEDED,
            &principal,
            via,
            None,
            None,
        )
        .await?;
        tx.commit().await.map_err(store_failure)?;
        return Ok(principal);
    }
    let lockout_secs = settings.lockout.as_secs_f64();
    let now_locked: bool = sqlx::query_scalar(
        "UPDATE users SET \
           locked_until = CASE WHEN failed_logins + 1 >= $2 \
                          THEN now() + make_interval(secs => $3) ELSE locked_until END, \
           failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END \
         WHERE username = $1 RETURNING locked_until IS NOT NULL AND locked_until > now()",
    )
    .bind(username)
    .bind(i32::try_from(settings.max_failed_logins).unwrap_or(i32::MAX))
    .bind(lockout_secs)
    .fetch_one(&mut *tx)
    .await
    .map_err(store_failure)?;
    let reason = if disabled {
        "disabled"
    } else {
        "wrong password"
    };
    audit::record(
        &mut *tx,
        audit::LOGIN_FAILED,
        &principal,
        via,
        None,
        Some(json!({"reason": reason, "locked": now_locked})),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Err(IdentityError::Unauthenticated(WRONG_PASSWORD))
}

/// The principal recorded for attempts that name no known user.
fn anonymous() -> Principal {
    Principal {
        principal_id: noroshi_domain::values::PrincipalId::parse("anonymous")
            .unwrap_or_else(|_| unreachable!("a valid literal")),
        organisation_id: FacilityId::parse("unknown")
            .unwrap_or_else(|_| unreachable!("a valid literal")),
        role: Role::Public,
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    username: String,
    display_name: String,
    organisation_id: String,
    role: String,
    disabled: bool,
    locked_until: Option<OffsetDateTime>,
    created_at: OffsetDateTime,
    updated_at: OffsetDateTime,
}

impl From<Row> for UserRecord {
    fn from(row: Row) -> Self {
        Self {
            username: row.username,
            display_name: row.display_name,
            organisation_id: row.organisation_id,
            role: row.role,
            disabled: row.disabled,
            locked_until: row.locked_until,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}
