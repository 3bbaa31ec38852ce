//! `public_stats` (DESIGN.md §6): per medical area and for the prefecture, beds by
//! category with the occupancy rate, and cases by status. No patient data, and counts of
//! people below a threshold are suppressed.
//!
//! The beds come from the `bed_board` read model; this projection keeps only each case's
//! status and owning health center (`case_status`), moved as `Case::evolve` moves it.

pub mod query;

use foldhash::HashMap;

use noroshi_domain::case::CaseEvent;
use noroshi_domain::values::CaseStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::PgPool;
use sqlx::postgres::PgConnection;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct PublicStats;

impl Projection for PublicStats {
    const NAME: &'static str = "public_stats";
    const TABLES: &'static [&'static str] = &["case_status"];
    const SOURCES: &'static [&'static str] = &[streams::CASE];

    /// Each case's last status in the batch, written in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        events: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        // Case → (its owner if reported in this batch, its last status in this batch).
        let mut cases: HashMap<Uuid, (Option<String>, Option<CaseStatus>)> = HashMap::default();
        for (event, decoded) in events {
            let DomainEvent::Case(case_event) = decoded else {
                continue;
            };
            let status = match case_event {
                CaseEvent::Reported { report, .. } => {
                    let case = cases.entry(aggregate_uuid(event)?).or_default();
                    case.0 = Some(report.health_center_id.to_string());
                    continue;
                }
                CaseEvent::HomeCareStarted { .. } => CaseStatus::HomeCare,
                CaseEvent::StatusChanged { to, .. } => *to,
                CaseEvent::Closed { outcome, .. } => CaseStatus::from(*outcome),
                _ => continue,
            };
            cases.entry(aggregate_uuid(event)?).or_default().1 = Some(status);
        }
        if cases.is_empty() {
            return Ok(());
        }
        let (mut reported, mut owners, mut first_statuses) = (Vec::new(), Vec::new(), Vec::new());
        let mut may_exist = Vec::new();
        let (mut moved, mut statuses) = (Vec::new(), Vec::new());
        for (case_id, (owner, status)) in cases {
            if let Some(owner) = owner {
                reported.push(case_id);
                may_exist.push(seen.may_exist(&case_id));
                owners.push(owner);
                first_statuses.push(status.unwrap_or(CaseStatus::Reported).to_string());
            }
            if let Some(status) = status
                && seen.may_exist(&case_id)
            {
                moved.push(case_id);
                statuses.push(status.to_string());
            }
            seen.note(&[case_id]);
        }
        // A case reported in this batch is inserted with its last status; the update
        // moves those already there (it does not see the rows the insert adds, and in a
        // rebuild it is given only cases an earlier batch wrote). A case no earlier batch
        // of a rebuild saw goes in without the conflict check.
        sqlx::query(
            "WITH new AS ( \
               INSERT INTO case_status (case_id, health_center_id, status) \
               SELECT i, h, s FROM unnest($1::uuid[], $2::text[], $3::text[], $6::bool[]) \
                 AS r(i, h, s, m) WHERE NOT m), \
             reported AS ( \
               INSERT INTO case_status (case_id, health_center_id, status) \
               SELECT i, h, s FROM unnest($1::uuid[], $2::text[], $3::text[], $6::bool[]) \
                 AS r(i, h, s, m) WHERE m \
               ON CONFLICT (case_id) DO NOTHING) \
             UPDATE case_status c SET status = m.status \
             FROM unnest($4::uuid[], $5::text[]) AS m(case_id, status) \
             WHERE c.case_id = m.case_id",
        )
        .bind(&reported)
        .bind(&owners)
        .bind(&first_statuses)
        .bind(&moved)
        .bind(&statuses)
        .bind(&may_exist)
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
