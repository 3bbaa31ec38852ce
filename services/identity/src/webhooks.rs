//! Webhooks (DESIGN.md §5.6): an organisation's endpoints, each POSTed every alert of the
//! organisation's audience (of the kinds it asked for) until it answers 2xx, signed with
//! HMAC-SHA256 under a secret shown once at registration. HQ and the operator register
//! them for an organisation; the organisation's own principals see them and their
//! deliveries. Secrets are never listed, logged or audited.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{AlertKind, FacilityKind};
use serde::Serialize;
use serde_json::json;
use sqlx::PgPool;
use time::OffsetDateTime;
use uuid::Uuid;

use super::secrets::random_token;
use crate::audit;
use crate::error::{IdentityError, store_failure};

/// Consecutive failed attempts after which an endpoint shows as failing.
pub const FAILING_AFTER: i32 = 3;

/// An endpoint to register.
#[derive(Debug, Clone)]
pub struct NewWebhook {
    pub organisation_id: String,
    pub url: String,
    /// Alert kinds (`HOLD_OVERDUE`, …); empty: every kind.
    pub kinds: Vec<String>,
}

/// An endpoint as its readers see it: never its secret.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct WebhookRecord {
    pub webhook_id: Uuid,
    pub organisation_id: String,
    pub url: String,
    pub kinds: Vec<String>,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub created_at: OffsetDateTime,
    /// Deliveries not yet answered with a 2xx.
    pub pending: i64,
    /// A delivery failed at least [`FAILING_AFTER`] times in a row and is still pending.
    pub failing: bool,
}

/// An endpoint just registered, with its secret: the only time the secret is shown.
#[derive(Clone, Serialize, schemars::JsonSchema)]
pub struct Registered {
    pub webhook: WebhookRecord,
    pub secret: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// One delivery of one alert to one endpoint.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct Delivery {
    pub alert_id: Uuid,
    pub status: String,
    pub attempts: i32,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub last_attempt_at: Option<OffsetDateTime>,
    pub last_status_code: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    #[schemars(with = "Option<String>", extend("format" = "date-time"))]
    pub delivered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub next_attempt_at: OffsetDateTime,
}

/// An endpoint as the sender needs it: with its secret.
#[derive(Clone, sqlx::FromRow)]
pub struct Endpoint {
    pub webhook_id: Uuid,
    pub organisation_id: String,
    pub role: String,
    pub url: String,
    pub kinds: Vec<String>,
    pub secret: String,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("webhook_id", &self.webhook_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// A delivery due now, with its endpoint.
#[derive(Clone, sqlx::FromRow)]
pub struct Due {
    pub webhook_id: Uuid,
    pub alert_id: Uuid,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
}

impl std::fmt::Debug for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Due")
            .field("webhook_id", &self.webhook_id)
            .field("alert_id", &self.alert_id)
            .finish_non_exhaustive()
    }
}

fn may_register(actor: &Principal) -> Result<(), IdentityError> {
    match actor.role {
        Role::Admin | Role::Hq => Ok(()),
        _ => Err(IdentityError::PermissionDenied),
    }
}

/// Whether `actor` reads `organisation`'s endpoints: HQ and the operator any, an
/// organisation's principals its own.
fn may_read(actor: &Principal, organisation: &str) -> bool {
    matches!(actor.role, Role::Admin | Role::Hq) || actor.organisation_id.as_str() == organisation
}

const RECORD: &str = "SELECT w.webhook_id, w.organisation_id, w.url, w.kinds, w.created_by, \
    w.created_at, \
    (SELECT count(*) FROM webhook_deliveries d WHERE d.webhook_id = w.webhook_id \
       AND d.status = 'PENDING') AS pending, \
    EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.webhook_id = w.webhook_id \
       AND d.status = 'PENDING' AND d.attempts >= 3) AS failing \
    FROM webhooks w WHERE w.deleted_at IS NULL";

/// Registers an endpoint for an organisation of `kind` (`None`: not registered). Only
/// `https` URLs, unless `allow_http` (development). Recorded as `WEBHOOK_REGISTERED`.
pub async fn register(
    pool: &PgPool,
    actor: &Principal,
    webhook: &NewWebhook,
    kind: Option<FacilityKind>,
    allow_http: bool,
    via: &str,
) -> Result<Registered, IdentityError> {
    may_register(actor)?;
    let mut violations = Violations::new();
    let role = crate::clients::organisation_role(&webhook.organisation_id, kind, &mut violations);
    match webhook.url.parse::<http::Uri>() {
        Err(e) => violations.add("url", format!("is not a URL: {e}")),
        Ok(url) if url.host().is_none() => violations.add("url", "names no host"),
        Ok(url) if url.scheme_str() == Some("https") => {}
        Ok(url) if url.scheme_str() == Some("http") && allow_http => {}
        Ok(_) => violations.add("url", "must be an https URL"),
    }
    if webhook.url.len() > 2000 {
        violations.add("url", "must be at most 2,000 characters");
    }
    let mut kinds = Vec::new();
    for (index, kind) in webhook.kinds.iter().enumerate() {
        let plain = kind.trim_start_matches("ALERT_KIND_");
        match AlertKind::parse(plain) {
            Some(kind) if !kinds.contains(&kind) => kinds.push(kind),
            Some(_) => violations.add(format!("kinds[{index}]"), "is listed twice"),
            None => violations.add(format!("kinds[{index}]"), "is not an alert kind"),
        }
    }
    let role = match role {
        Some(role) if violations.is_empty() => role,
        _ => return Err(IdentityError::Invalid(violations)),
    };
    let secret = format!("whsec_{}", random_token()?);
    let kinds: Vec<String> = kinds.iter().map(ToString::to_string).collect();
    let webhook_id = Uuid::now_v7();
    let mut tx = pool.begin().await.map_err(store_failure)?;
    sqlx::query(
        "INSERT INTO webhooks (webhook_id, organisation_id, role, url, kinds, secret, created_by) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(webhook_id)
    .bind(&webhook.organisation_id)
    .bind(role.as_str())
    .bind(&webhook.url)
    .bind(&kinds)
    .bind(&secret)
    .bind(actor.principal_id.as_str())
    .execute(&mut *tx)
    .await
    .map_err(store_failure)?;
    audit::record(
        &mut *tx,
        audit::WEBHOOK_REGISTERED,
        actor,
        via,
        None,
        Some(json!({
            "webhook_id": webhook_id,
            "organisation_id": webhook.organisation_id,
            "url": webhook.url,
            "kinds": kinds,
        })),
    )
    .await?;
    let webhook = sqlx::query_as::<_, WebhookRecord>(sqlx::AssertSqlSafe(format!(
        "{RECORD} AND w.webhook_id = $1"
    )))
    .bind(webhook_id)
    .fetch_one(&mut *tx)
    .await
    .map_err(store_failure)?;
    tx.commit().await.map_err(store_failure)?;
    Ok(Registered { webhook, secret })
}

/// The endpoints `actor` may read: every one for HQ and the operator, else its
/// organisation's.
pub async fn list(pool: &PgPool, actor: &Principal) -> Result<Vec<WebhookRecord>, IdentityError> {
    let all = matches!(actor.role, Role::Admin | Role::Hq);
    sqlx::query_as::<_, WebhookRecord>(sqlx::AssertSqlSafe(format!(
        "{RECORD} AND ($1 OR w.organisation_id = $2) ORDER BY w.organisation_id, w.created_at"
    )))
    .bind(all)
    .bind(actor.organisation_id.as_str())
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// An endpoint's deliveries, newest first; NOT_FOUND for one `actor` may not read.
pub async fn deliveries(
    pool: &PgPool,
    actor: &Principal,
    webhook_id: Uuid,
) -> Result<Vec<Delivery>, IdentityError> {
    let organisation: Option<String> = sqlx::query_scalar(
        "SELECT organisation_id FROM webhooks WHERE webhook_id = $1 AND deleted_at IS NULL",
    )
    .bind(webhook_id)
    .fetch_optional(pool)
    .await
    .map_err(store_failure)?;
    match organisation {
        Some(organisation) if may_read(actor, &organisation) => {}
        _ => return Err(IdentityError::NotFound(format!("webhook {webhook_id}"))),
    }
    sqlx::query_as(
        "SELECT alert_id, status, attempts, last_attempt_at, last_status_code, last_error, \
           delivered_at, next_attempt_at FROM webhook_deliveries WHERE webhook_id = $1 \
         ORDER BY created_at DESC LIMIT 500",
    )
    .bind(webhook_id)
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// Removes an endpoint; its pending deliveries stop. Recorded as `WEBHOOK_DELETED`.
pub async fn delete(
    pool: &PgPool,
    actor: &Principal,
    webhook_id: Uuid,
    via: &str,
) -> Result<(), IdentityError> {
    may_register(actor)?;
    let mut tx = pool.begin().await.map_err(store_failure)?;
    let deleted = sqlx::query(
        "UPDATE webhooks SET deleted_at = now() WHERE webhook_id = $1 AND deleted_at IS NULL",
    )
    .bind(webhook_id)
    .execute(&mut *tx)
    .await
    .map_err(store_failure)?
    .rows_affected();
    if deleted == 0 {
        return Err(IdentityError::NotFound(format!("webhook {webhook_id}")));
    }
    audit::record(
        &mut *tx,
        audit::WEBHOOK_DELETED,
        actor,
        via,
        None,
        Some(json!({ "webhook_id": webhook_id })),
    )
    .await?;
    tx.commit().await.map_err(store_failure)
}

/// Every endpoint in use, for the sender.
pub async fn endpoints(pool: &PgPool) -> Result<Vec<Endpoint>, IdentityError> {
    sqlx::query_as(
        "SELECT webhook_id, organisation_id, role, url, kinds, secret, created_at \
         FROM webhooks WHERE deleted_at IS NULL",
    )
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// Queues `alerts` for `webhook_id`, once each.
pub async fn enqueue(
    pool: &PgPool,
    webhook_id: Uuid,
    alerts: &[Uuid],
    now: OffsetDateTime,
) -> Result<u64, IdentityError> {
    Ok(sqlx::query(
        "INSERT INTO webhook_deliveries (webhook_id, alert_id, next_attempt_at) \
         SELECT $1, a, $3 FROM unnest($2::uuid[]) AS a \
         ON CONFLICT (webhook_id, alert_id) DO NOTHING",
    )
    .bind(webhook_id)
    .bind(alerts)
    .bind(now)
    .execute(pool)
    .await
    .map_err(store_failure)?
    .rows_affected())
}

/// The alerts already queued for `webhook_id`, of `candidates`.
pub async fn queued(
    pool: &PgPool,
    webhook_id: Uuid,
    candidates: &[Uuid],
) -> Result<Vec<Uuid>, IdentityError> {
    sqlx::query_scalar(
        "SELECT alert_id FROM webhook_deliveries WHERE webhook_id = $1 AND alert_id = ANY($2)",
    )
    .bind(webhook_id)
    .bind(candidates)
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// Deliveries due at `now`, at most `limit`, taken for this sender until `lease` (a
/// second sender skips them meanwhile).
pub async fn due(
    pool: &PgPool,
    now: OffsetDateTime,
    lease: time::Duration,
    limit: i64,
) -> Result<Vec<Due>, IdentityError> {
    sqlx::query_as(
        "WITH taken AS ( \
           SELECT d.webhook_id, d.alert_id FROM webhook_deliveries d \
           JOIN webhooks w USING (webhook_id) \
           WHERE d.status = 'PENDING' AND d.next_attempt_at <= $1 AND w.deleted_at IS NULL \
           ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED) \
         UPDATE webhook_deliveries d SET next_attempt_at = $1 + $2 \
         FROM taken, webhooks w \
         WHERE d.webhook_id = taken.webhook_id AND d.alert_id = taken.alert_id \
           AND w.webhook_id = d.webhook_id \
         RETURNING d.webhook_id, d.alert_id, d.attempts, w.url, w.secret",
    )
    .bind(now)
    .bind(lease)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map_err(store_failure)
}

/// Records an attempt: delivered on a 2xx, else tried again at `retry_at`.
pub async fn attempted(
    pool: &PgPool,
    webhook_id: Uuid,
    alert_id: Uuid,
    now: OffsetDateTime,
    status_code: Option<u16>,
    error: Option<&str>,
    retry_at: OffsetDateTime,
) -> Result<(), IdentityError> {
    let delivered = status_code.is_some_and(|code| (200..300).contains(&code));
    sqlx::query(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, last_attempt_at = $3, \
           last_status_code = $4, last_error = $5, \
           status = CASE WHEN $6 THEN 'DELIVERED' ELSE status END, \
           delivered_at = CASE WHEN $6 THEN $3 ELSE delivered_at END, \
           next_attempt_at = CASE WHEN $6 THEN next_attempt_at ELSE $7 END \
         WHERE webhook_id = $1 AND alert_id = $2",
    )
    .bind(webhook_id)
    .bind(alert_id)
    .bind(now)
    .bind(status_code.map(i32::from))
    .bind(error)
    .bind(delivered)
    .bind(retry_at)
    .execute(pool)
    .await
    .map_err(store_failure)?;
    Ok(())
}
