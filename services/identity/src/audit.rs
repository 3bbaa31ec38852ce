//! The audit log (DESIGN.md §7, docs/identity.md): every read of a patient's identity,
//! recorded before the data leaves the server; every login, token use and permission
//! denial; every change to users, API clients and certificates. The table is
//! append-only (a trigger refuses changes). HQ and ADMIN query it, as JSON or CSV.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use serde::Serialize;
use sqlx::PgPool;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::error::{IdentityError, store_failure};

/// The kind of a record of a patient's identity being read.
pub const PII_READ: &str = "PII_READ";

/// Records that `principal` read the identity of each of `cases` through `via` (a view
/// name). Nothing is recorded for an empty list; a failure fails the read.
pub async fn pii_reads(
    pool: &PgPool,
    principal: &Principal,
    via: &str,
    cases: &[Uuid],
) -> Result<(), IdentityError> {
    if cases.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO audit_log (kind, principal_id, organisation_id, role, via, case_id) \
         SELECT $1, $2, $3, $4, $5, case_id FROM unnest($6::uuid[]) AS c(case_id)",
    )
    .bind(PII_READ)
    .bind(principal.principal_id.as_str())
    .bind(principal.organisation_id.as_str())
    .bind(principal.role.as_str())
    .bind(via)
    .bind(cases)
    .execute(pool)
    .await
    .map_err(store_failure)?;
    Ok(())
}

/// A principal was refused an action or a read.
pub const PERMISSION_DENIED: &str = "PERMISSION_DENIED";
pub const LOGIN_SUCCEEDED: &str = "LOGIN_SUCCEEDED";
pub const LOGIN_FAILED: &str = "LOGIN_FAILED";
/// A login refused because the account is locked, whatever the password.
pub const LOGIN_LOCKED: &str = "LOGIN_LOCKED";
pub const LOGOUT: &str = "LOGOUT";
/// An API client token was used (or, revoked or expired, refused: `TOKEN_REFUSED`).
pub const TOKEN_USED: &str = "TOKEN_USED";
pub const TOKEN_REFUSED: &str = "TOKEN_REFUSED";
pub const USER_CREATED: &str = "USER_CREATED";
pub const USER_UPDATED: &str = "USER_UPDATED";
pub const PASSWORD_RESET: &str = "PASSWORD_RESET";
pub const CLIENT_ISSUED: &str = "CLIENT_ISSUED";
pub const CLIENT_REVOKED: &str = "CLIENT_REVOKED";
pub const CERTIFICATE_ISSUED: &str = "CERTIFICATE_ISSUED";
pub const WEBHOOK_REGISTERED: &str = "WEBHOOK_REGISTERED";
pub const WEBHOOK_DELETED: &str = "WEBHOOK_DELETED";
/// Someone read the audit log itself.
pub const AUDIT_READ: &str = "AUDIT_READ";

/// Appends one record. `detail` says what changed; it never holds a secret.
pub async fn record(
    executor: impl sqlx::PgExecutor<'_>,
    kind: &str,
    principal: &Principal,
    via: &str,
    case_id: Option<Uuid>,
    detail: Option<serde_json::Value>,
) -> Result<(), IdentityError> {
    sqlx::query(
        "INSERT INTO audit_log (kind, principal_id, organisation_id, role, via, case_id, detail) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(kind)
    .bind(principal.principal_id.as_str())
    .bind(principal.organisation_id.as_str())
    .bind(principal.role.as_str())
    .bind(via)
    .bind(case_id)
    .bind(detail.map(|d| d.to_string()))
    .execute(executor)
    .await
    .map_err(store_failure)?;
    Ok(())
}

/// Largest number of records one query returns.
pub const MAX_RECORDS: i64 = 10_000;

/// Which records to read: every filter is optional; newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub case_id: Option<Uuid>,
    pub principal_id: Option<String>,
    pub kind: Option<String>,
    pub from: Option<OffsetDateTime>,
    pub to: Option<OffsetDateTime>,
    pub limit: i64,
}

impl AuditQuery {
    /// The query of `?case_id=&principal_id=&kind=&from=&to=&limit=&format=`, and
    /// whether CSV was asked for. Times are RFC 3339.
    pub fn from_params(params: &[(String, String)]) -> Result<(Self, bool), IdentityError> {
        let mut query = Self {
            limit: 1000,
            ..Self::default()
        };
        let mut csv = false;
        let mut v = Violations::new();
        let time = |value: &str, field: &str, v: &mut Violations| {
            OffsetDateTime::parse(value, &Rfc3339)
                .map_err(|_| {
                    v.add(
                        field,
                        "must be an RFC 3339 time, e.g. 2026-12-01T09:00:00+09:00",
                    )
                })
                .ok()
        };
        for (key, value) in params {
            match key.as_str() {
                "case_id" => match Uuid::parse_str(value) {
                    Ok(id) => query.case_id = Some(id),
                    Err(_) => v.add("case_id", "must be a UUID"),
                },
                "principal_id" => query.principal_id = Some(value.clone()),
                "kind" => query.kind = Some(value.clone()),
                "from" => query.from = time(value, "from", &mut v),
                "to" => query.to = time(value, "to", &mut v),
                "limit" => match value.parse::<i64>() {
                    Ok(limit) if (1..=MAX_RECORDS).contains(&limit) => query.limit = limit,
                    _ => v.add("limit", format!("must be 1 to {MAX_RECORDS}")),
                },
                "format" => match value.as_str() {
                    "csv" => csv = true,
                    "json" => csv = false,
                    _ => v.add("format", "must be json or csv"),
                },
                other => v.add(other, "is not a parameter of the audit log"),
            }
        }
        if v.is_empty() {
            Ok((query, csv))
        } else {
            Err(IdentityError::Invalid(v))
        }
    }
}

/// One record of the audit log.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, schemars::JsonSchema)]
pub struct AuditRecord {
    pub id: i64,
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub at: OffsetDateTime,
    pub kind: String,
    pub principal_id: String,
    pub organisation_id: String,
    pub role: String,
    pub via: String,
    pub case_id: Option<Uuid>,
    pub detail: Option<String>,
}

/// Reads the audit log (HQ and ADMIN only). The read is itself recorded (`AUDIT_READ`).
pub async fn query(
    pool: &PgPool,
    principal: &Principal,
    query: &AuditQuery,
) -> Result<Vec<AuditRecord>, IdentityError> {
    if !matches!(principal.role, Role::Hq | Role::Admin) {
        return Err(IdentityError::PermissionDenied);
    }
    let records = sqlx::query_as::<_, AuditRecord>(
        "SELECT id, at, kind, principal_id, organisation_id, role, via, case_id, detail \
         FROM audit_log \
         WHERE ($1::uuid IS NULL OR case_id = $1) AND ($2::text IS NULL OR principal_id = $2) \
           AND ($3::text IS NULL OR kind = $3) \
           AND ($4::timestamptz IS NULL OR at >= $4) AND ($5::timestamptz IS NULL OR at < $5) \
         ORDER BY at DESC, id DESC LIMIT $6",
    )
    .bind(query.case_id)
    .bind(&query.principal_id)
    .bind(&query.kind)
    .bind(query.from)
    .bind(query.to)
    .bind(query.limit)
    .fetch_all(pool)
    .await
    .map_err(store_failure)?;
    record(
        pool,
        AUDIT_READ,
        principal,
        "/api/v1/audit",
        query.case_id,
        Some(serde_json::json!({
            "principal_id": query.principal_id,
            "kind": query.kind,
            "records": records.len(),
        })),
    )
    .await?;
    Ok(records)
}

/// Records as CSV, with a header row.
pub fn to_csv(records: &[AuditRecord]) -> Result<Vec<u8>, IdentityError> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "id",
            "at",
            "kind",
            "principal_id",
            "organisation_id",
            "role",
            "via",
            "case_id",
            "detail",
        ])
        .map_err(IdentityError::internal)?;
    for r in records {
        let at = r.at.format(&Rfc3339).map_err(IdentityError::internal)?;
        writer
            .write_record([
                r.id.to_string().as_str(),
                &at,
                &r.kind,
                &r.principal_id,
                &r.organisation_id,
                &r.role,
                &r.via,
                &r.case_id.map(|c| c.to_string()).unwrap_or_default(),
                r.detail.as_deref().unwrap_or_default(),
            ])
            .map_err(IdentityError::internal)?;
    }
    writer
        .into_inner()
        .map_err(|e| IdentityError::internal(e.into_error()))
}
