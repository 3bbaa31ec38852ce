//! `public_stats` (DESIGN.md §6): per medical area and for the prefecture, beds by
//! category with the occupancy rate, and cases by status. No patient data, and counts of
//! people below a threshold are suppressed.
//!
//! The beds come from the `bed_board` read model; this projection keeps only each case's
//! status and owning health center (`case_status`), moved as `Case::evolve` moves it.

use noroshi_domain::DomainEvent;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::values::CaseStatus;
use noroshi_event_store::RecordedEvent;
use sqlx::PgPool;
use sqlx::postgres::PgConnection;

use crate::aggregate_uuid;
use crate::runner::Projection;

#[derive(Debug, Clone, Copy, Default)]
pub struct PublicStats;

impl Projection for PublicStats {
    const NAME: &'static str = "public_stats";
    const TABLES: &'static [&'static str] = &["case_status"];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        event: &RecordedEvent,
        decoded: &DomainEvent,
    ) -> Result<(), sqlx::Error> {
        let DomainEvent::Case(case_event) = decoded else {
            return Ok(());
        };
        let case_id = aggregate_uuid(event)?;
        let status = match case_event {
            CaseEvent::Reported { report, .. } => {
                sqlx::query(
                    "INSERT INTO case_status (case_id, health_center_id, status) VALUES ($1, $2, $3) \
                     ON CONFLICT (case_id) DO NOTHING",
                )
                .bind(case_id)
                .bind(report.health_center_id.as_str())
                .bind(CaseStatus::Reported.to_string())
                .execute(&mut *tx)
                .await?;
                return Ok(());
            }
            CaseEvent::HomeCareStarted { .. } => CaseStatus::HomeCare,
            CaseEvent::StatusChanged { to, .. } => *to,
            CaseEvent::Closed { outcome, .. } => CaseStatus::from(*outcome),
            _ => return Ok(()),
        };
        sqlx::query("UPDATE case_status SET status = $2 WHERE case_id = $1")
            .bind(case_id)
            .bind(status.to_string())
            .execute(&mut *tx)
            .await?;
        Ok(())
    }
}

/// Cases by (medical area of the owning health center, status). The area is `None` when
/// the health center has none on record.
pub async fn case_counts(pool: &PgPool) -> Result<Vec<(Option<String>, String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.medical_area, c.status, count(*) FROM case_status c \
         LEFT JOIN bed_board_facilities f ON f.facility_id = c.health_center_id \
         GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(pool)
    .await
}
