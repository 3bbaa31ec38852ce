//! The audit log (DESIGN.md §7): every read of a patient's identity is recorded before
//! the data leaves the server. The table is append-only (a trigger refuses changes).

use noroshi_domain::authz::Principal;
use sqlx::PgPool;
use uuid::Uuid;

use crate::error::{ApiError, store_failure};

/// The kind of a record of a patient's identity being read.
pub const PII_READ: &str = "PII_READ";

/// Records that `principal` read the identity of each of `cases` through `via` (a view
/// name). Nothing is recorded for an empty list; a failure fails the read.
pub async fn pii_reads(
    pool: &PgPool,
    principal: &Principal,
    via: &str,
    cases: &[Uuid],
) -> Result<(), ApiError> {
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
