//! `case_board` (DESIGN.md §6): a health center's cases by status, with severity,
//! priority, the last observation, the deterioration flag and where the latest placement
//! stands. The rows carry the patient's identity: the API audits every read.

use noroshi_domain::case::CaseEvent;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::values::CaseStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::Projection;

#[derive(Debug, Clone, Copy, Default)]
pub struct CaseBoard;

impl Projection for CaseBoard {
    const NAME: &'static str = "case_board";
    const TABLES: &'static [&'static str] = &["case_board", "case_board_placements"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
    ) -> Result<(), sqlx::Error> {
        for (event, decoded) in batch {
            apply_event(tx, event, decoded).await?;
        }
        Ok(())
    }
}

/// Applies one event.
async fn apply_event(
    tx: &mut PgConnection,
    event: &RecordedEvent,
    decoded: &DomainEvent,
) -> Result<(), sqlx::Error> {
    match decoded {
        DomainEvent::Case(case_event) => apply_case(tx, aggregate_uuid(event)?, case_event).await,
        DomainEvent::Placement(placement_event) => {
            apply_placement(tx, aggregate_uuid(event)?, placement_event).await
        }
        DomainEvent::Facility(_) => Ok(()),
    }
}

async fn apply_case(
    tx: &mut PgConnection,
    case_id: Uuid,
    event: &CaseEvent,
) -> Result<(), sqlx::Error> {
    let strings = |set: &mut dyn Iterator<Item = String>| set.collect::<Vec<_>>();
    let query = match event {
        CaseEvent::Reported {
            report,
            priority,
            reported_at,
            ..
        } => sqlx::query(
            "INSERT INTO case_board (case_id, health_center_id, external_ref, name, name_kana, \
             birth_date, sex, municipality, risk_factors, severity, needs, priority, status, \
             reported_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (case_id) DO NOTHING",
        )
        .bind(case_id)
        .bind(report.health_center_id.as_str())
        .bind(report.external_ref.as_ref().map(ToString::to_string))
        .bind(report.patient.name.as_str())
        .bind(report.patient.name_kana.as_ref().map(|n| n.as_str()))
        .bind(report.patient.birth_date)
        .bind(report.patient.sex.to_string())
        .bind(report.municipality.as_str())
        .bind(strings(
            &mut report.risk_factors.iter().map(ToString::to_string),
        ))
        .bind(report.severity.to_string())
        .bind(strings(&mut report.needs.iter().map(ToString::to_string)))
        .bind(i32::from(priority.get()))
        .bind(CaseStatus::Reported.to_string())
        .bind(reported_at),
        CaseEvent::Triaged {
            severity,
            risk_factors,
            needs,
            priority,
            ..
        } => sqlx::query(
            "UPDATE case_board SET severity = $2, risk_factors = $3, needs = $4, \
             priority = CASE WHEN priority_overridden THEN priority ELSE $5 END, \
             deteriorated_at = NULL WHERE case_id = $1",
        )
        .bind(case_id)
        .bind(severity.to_string())
        .bind(strings(&mut risk_factors.iter().map(ToString::to_string)))
        .bind(strings(&mut needs.iter().map(ToString::to_string)))
        .bind(i32::from(priority.get())),
        CaseEvent::PriorityOverridden { priority, .. } => sqlx::query(
            "UPDATE case_board SET priority = $2, priority_overridden = true WHERE case_id = $1",
        )
        .bind(case_id)
        .bind(i32::from(priority.get())),
        CaseEvent::ObservationRecorded(observation) => sqlx::query(
            "UPDATE case_board SET last_observed_at = $2, last_spo2 = $3, \
             last_temperature = $4, last_on_oxygen = $5 \
             WHERE case_id = $1 AND (last_observed_at IS NULL OR last_observed_at <= $2)",
        )
        .bind(case_id)
        .bind(observation.observed_at)
        .bind(observation.spo2.map(|s| i32::from(s.percent())))
        .bind(observation.temperature.map(|t| i32::from(t.decicelsius())))
        .bind(observation.on_oxygen),
        CaseEvent::DeteriorationFlagged { observed_at, .. } => {
            sqlx::query("UPDATE case_board SET deteriorated_at = $2 WHERE case_id = $1")
                .bind(case_id)
                .bind(observed_at)
        }
        CaseEvent::HomeCareStarted { .. } => {
            sqlx::query("UPDATE case_board SET status = $2 WHERE case_id = $1")
                .bind(case_id)
                .bind(CaseStatus::HomeCare.to_string())
        }
        CaseEvent::StatusChanged { to, .. } => {
            sqlx::query("UPDATE case_board SET status = $2 WHERE case_id = $1")
                .bind(case_id)
                .bind(to.to_string())
        }
        CaseEvent::Closed {
            outcome, closed_at, ..
        } => sqlx::query(
            "UPDATE case_board SET status = $2, outcome = $3, closed_at = $4 WHERE case_id = $1",
        )
        .bind(case_id)
        .bind(CaseStatus::from(*outcome).to_string())
        .bind(outcome.to_string())
        .bind(closed_at),
    };
    query.execute(&mut *tx).await?;
    Ok(())
}

async fn apply_placement(
    tx: &mut PgConnection,
    placement_id: Uuid,
    event: &PlacementEvent,
) -> Result<(), sqlx::Error> {
    if let PlacementEvent::Requested {
        case_id,
        requested_at,
        ..
    } = event
    {
        sqlx::query(
            "INSERT INTO case_board_placements (placement_id, case_id, requested_at, status) \
             VALUES ($1, $2, $3, 'REQUESTED') ON CONFLICT (placement_id) DO NOTHING",
        )
        .bind(placement_id)
        .bind(case_id)
        .bind(requested_at)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    // The target moves only with an offer, a decline or an expiry.
    let (status, target): (&str, Option<Option<&str>>) = match event {
        PlacementEvent::Requested { .. } => return Ok(()),
        PlacementEvent::Offered { target, .. } => ("OFFERED", Some(Some(target.as_str()))),
        PlacementEvent::Accepted { .. } => ("ACCEPTED", None),
        PlacementEvent::Declined { .. } | PlacementEvent::OfferExpired { .. } => {
            ("REQUESTED", Some(None))
        }
        PlacementEvent::TransportArranged(_) => ("TRANSPORT_ARRANGED", None),
        PlacementEvent::Departed { .. } => ("IN_TRANSIT", None),
        PlacementEvent::Arrived { .. } => ("ARRIVED", None),
        PlacementEvent::Cancelled { .. } => ("CANCELLED", None),
        PlacementEvent::Discharged { .. } => ("DISCHARGED", None),
    };
    sqlx::query(
        "UPDATE case_board_placements SET status = $2, \
         target = CASE WHEN $3 THEN $4 ELSE target END WHERE placement_id = $1",
    )
    .bind(placement_id)
    .bind(status)
    .bind(target.is_some())
    .bind(target.flatten())
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One case as the board shows it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct CaseRow {
    pub case_id: Uuid,
    pub health_center_id: String,
    pub external_ref: Option<String>,
    pub name: String,
    pub name_kana: Option<String>,
    #[serde(with = "crate::iso_date")]
    pub birth_date: Date,
    pub sex: String,
    pub municipality: String,
    pub risk_factors: Vec<String>,
    pub severity: String,
    pub needs: Vec<String>,
    pub priority: i32,
    pub priority_overridden: bool,
    pub status: String,
    #[serde(with = "time::serde::rfc3339")]
    pub reported_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_observed_at: Option<OffsetDateTime>,
    pub last_spo2: Option<i32>,
    /// Tenths of a degree Celsius.
    pub last_temperature: Option<i32>,
    pub last_on_oxygen: Option<bool>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub deteriorated_at: Option<OffsetDateTime>,
    pub placement_id: Option<Uuid>,
    pub placement_status: Option<String>,
    pub placement_target: Option<String>,
    pub outcome: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub closed_at: Option<OffsetDateTime>,
}

/// What a caller asks of the board.
#[derive(Debug, Clone, Default)]
pub struct CaseQuery<'a> {
    /// Only the cases of this health center.
    pub owner: Option<&'a str>,
    /// Only these statuses; empty for all.
    pub statuses: Vec<String>,
    pub offset: i64,
    pub limit: i64,
}

/// The board's columns, with the case's latest placement.
const SELECT: &str = "SELECT c.case_id, c.health_center_id, c.external_ref, c.name, \
    c.name_kana, c.birth_date, c.sex, c.municipality, c.risk_factors, c.severity, c.needs, \
    c.priority, c.priority_overridden, c.status, c.reported_at, c.last_observed_at, \
    c.last_spo2, c.last_temperature, c.last_on_oxygen, c.deteriorated_at, \
    p.placement_id, p.status AS placement_status, p.target AS placement_target, \
    c.outcome, c.closed_at FROM case_board c \
    LEFT JOIN LATERAL (SELECT placement_id, status, target FROM case_board_placements \
      WHERE case_id = c.case_id ORDER BY requested_at DESC, placement_id DESC LIMIT 1) p ON true";

/// A page of cases: by status, then most urgent, then longest known; and the number of
/// cases matching in all.
pub async fn rows(
    pool: &PgPool,
    query: &CaseQuery<'_>,
) -> Result<(Vec<CaseRow>, i64), sqlx::Error> {
    const WHERE: &str = "WHERE ($1::text IS NULL OR c.health_center_id = $1) \
        AND (cardinality($2::text[]) = 0 OR c.status = ANY($2))";
    let sql = format!(
        "{SELECT} {WHERE} ORDER BY c.status, c.priority, c.reported_at, c.case_id \
         OFFSET $3 LIMIT $4"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.owner)
        .bind(&query.statuses)
        .bind(query.offset)
        .bind(query.limit)
        .fetch_all(pool)
        .await?;
    let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM case_board c {WHERE}"
    )))
    .bind(query.owner)
    .bind(&query.statuses)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Every case, in the board's order (for tests and comparisons).
pub async fn all(pool: &PgPool) -> Result<Vec<CaseRow>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY c.case_id");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
}
