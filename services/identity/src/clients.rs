//! API clients: machine-to-machine tokens (a hospital system posting capacity, say).
//! ADMIN issues them for one organisation and a set of scopes, with an expiry. The token
//! is shown once and stored as its SHA-256; every request looks it up, so revocation and
//! expiry take effect at once. Each use is recorded (`TOKEN_USED`), and so is each use
//! of a revoked or expired token (`TOKEN_REFUSED`).

use std::time::Duration;

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, FacilityKind};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::secrets::{digest, random_token};
use super::{CLIENT_TOKEN_PREFIX, Scope};
use crate::audit;
use crate::error::{IdentityError, store_failure};

/// Longest lifetime of a token.
pub const MAX_LIFETIME: Duration = Duration::from_secs(366 * 24 * 3600);

/// An API client to issue.
#[derive(Debug, Clone)]
pub struct NewClient {
    pub name: String,
    pub organisation_id: String,
    pub scopes: Vec<String>,
    pub lifetime: Duration,
}

/// A client as ADMIN sees it; never the token.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct ClientRecord {
    pub client_id: Uuid,
    pub name: String,
    pub organisation_id: String,
    pub role: String,
    pub scopes: Vec<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub revoked_at: Option<OffsetDateTime>,
}

/// A client just issued, with its token: the only time the token is shown.
#[derive(Clone, Serialize, schemars::JsonSchema)]
pub struct Issued {
    pub client: ClientRecord,
    pub token: String,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Issued")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

/// The role in which an organisation of `kind` (`None`: not registered) acts, or the
/// violation of `organisation_id` that says why there is none.
pub(crate) fn organisation_role(
    organisation_id: &str,
    kind: Option<FacilityKind>,
    violations: &mut Violations,
) -> Option<Role> {
    match (FacilityId::parse(organisation_id), kind) {
        (Err(reason), _) => {
            violations.add("organisation_id", reason.to_string());
            None
        }
        (Ok(_), None) => {
            violations.add("organisation_id", "is not a registered organisation");
            None
        }
        (Ok(_), Some(kind)) => Some(Role::of_kind(kind)),
    }
}

/// The principal id of a client.
pub fn principal_id(client_id: Uuid) -> String {
    format!("client:{client_id}")
}

fn may_manage(actor: &Principal) -> Result<(), IdentityError> {
    if actor.role == Role::Admin {
        Ok(())
    } else {
        Err(IdentityError::PermissionDenied)
    }
}

/// Issues a client for an organisation of `kind` (`None`: not registered). Recorded as
/// `CLIENT_ISSUED`.
pub async fn issue(
    pool: &PgPool,
    actor: &Principal,
    client: &NewClient,
    kind: Option<FacilityKind>,
    via: &str,
) -> Result<Issued, IdentityError> {
    may_manage(actor)?;
    let mut violations = Violations::new();
    if !(1..=100).contains(&client.name.trim().chars().count()) {
        violations.add("name", "must be 1 to 100 characters");
    }
    let role = organisation_role(&client.organisation_id, kind, &mut violations);
    let mut scopes = Vec::new();
    for (index, scope) in client.scopes.iter().enumerate() {
        match Scope::parse(scope) {
            Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
            Some(_) => violations.add(format!("scopes[{index}]"), "is listed twice"),
            None => violations.add(
                format!("scopes[{index}]"),
                format!(
                    "must be one of {}",
                    Scope::ALL
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    if client.scopes.is_empty() {
        violations.add("scopes", "must name at least one scope");
    }
    if client.lifetime.is_zero() || client.lifetime > MAX_LIFETIME {
        violations.add("expires_in", "must be more than 0 and at most 366 days");
    }
    let role = match role {
        Some(role) if violations.is_empty() => role,
        _ => return Err(IdentityError::Invalid(violations)),
    };
    let token = format!("{CLIENT_TOKEN_PREFIX}{}", random_token()?);
    let scopes: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
    let mut tx = pool.begin().await.map_err(store_failure)?;
    let record = sqlx::query_as::<_, ClientRecord>(
        "INSERT INTO api_clients (client_id, name, organisation_id, role, scopes, token_hash, \
                                  created_by, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, now() + make_interval(secs => $8)) \
         RETURNING client_id, name, organisation_id, role, scopes, created_by, created_at, \
                   expires_at, revoked_at",
    )
    .bind(Uuid::now_v7())
    .bind(client.name.trim())
    .bind(&client.organisation_id)
    .bind(role.as_str())
    .bind(&scopes)
    .bind(digest(&token))
    .bind(actor.principal_id.as_str())
    .bind(client.lifetime.as_secs_f64())
    .fetch_one(&mut *tx)
    .await
    .map_err(store_failure)?;
    audit::record(
        &mut *tx,
        audit::CLIENT_ISSUED,
        actor,
        via,
        None,
        Some(json!({
            "client_id": record.client_id,
            "name": record.name,
            "organisation_id": record.organisation_id,
            "scopes": record.scopes,
            "expires_at": record.expires_at.unix_timestamp(),
        })),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(Issued {
        client: record,
        token,
    })
}

/// Revokes a client at once. Recorded as `CLIENT_REVOKED`; revoking twice is NOT_FOUND
/// the second time, so that nobody believes a second revocation did something.
pub async fn revoke(
    pool: &PgPool,
    actor: &Principal,
    client_id: Uuid,
    via: &str,
) -> Result<ClientRecord, IdentityError> {
    may_manage(actor)?;
    let mut tx = pool.begin().await.map_err(store_failure)?;
    let record = sqlx::query_as::<_, ClientRecord>(
        "UPDATE api_clients SET revoked_at = now(), revoked_by = $2 \
         WHERE client_id = $1 AND revoked_at IS NULL \
         RETURNING client_id, name, organisation_id, role, scopes, created_by, created_at, \
                   expires_at, revoked_at",
    )
    .bind(client_id)
    .bind(actor.principal_id.as_str())
    .fetch_optional(&mut *tx)
    .await
    .map_err(store_failure)?
    .ok_or_else(|| IdentityError::NotFound(format!("unrevoked API client {client_id}")))?;
    audit::record(
        &mut *tx,
        audit::CLIENT_REVOKED,
        actor,
        via,
        None,
        Some(json!({"client_id": client_id, "name": record.name})),
    )
    .await?;
    tx.commit().await.map_err(store_failure)?;
    Ok(record)
}

pub async fn list(pool: &PgPool, actor: &Principal) -> Result<Vec<ClientRecord>, IdentityError> {
    may_manage(actor)?;
    sqlx::query_as::<_, ClientRecord>(
        "SELECT client_id, name, organisation_id, role, scopes, created_by, created_at, \
                expires_at, revoked_at FROM api_clients ORDER BY created_at",
    )
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// The principal and scopes of a live client token, recording the use; `None` for an
/// unknown, expired or revoked token. One statement: the lookup and the audit record.
pub(super) async fn authenticate(
    pool: &PgPool,
    token: &str,
    via: &str,
) -> Result<Option<(Principal, Vec<Scope>)>, IdentityError> {
    let row: Option<(Uuid, String, String, Vec<String>, bool)> = sqlx::query_as(
        "WITH client AS ( \
           SELECT client_id, organisation_id, role, scopes, \
                  revoked_at IS NULL AND expires_at > now() AS live \
           FROM api_clients WHERE token_hash = $1 \
         ), used AS ( \
           INSERT INTO audit_log (kind, principal_id, organisation_id, role, via) \
           SELECT CASE WHEN live THEN $2 ELSE $3 END, 'client:' || client_id, \
                  organisation_id, role, $4 FROM client \
         ) \
         SELECT client_id, organisation_id, role, scopes, live FROM client",
    )
    .bind(digest(token))
    .bind(audit::TOKEN_USED)
    .bind(audit::TOKEN_REFUSED)
    .bind(via)
    .fetch_optional(pool)
    .await
    .map_err(store_failure)?;
    let Some((client_id, organisation_id, role, scopes, true)) = row else {
        return Ok(None);
    };
    let principal = super::principal(principal_id(client_id), &organisation_id, &role)?;
    let scopes = scopes.iter().filter_map(|s| Scope::parse(s)).collect();
    Ok(Some((principal, scopes)))
}
