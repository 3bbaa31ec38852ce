//! `alerts` (DESIGN.md §5.6, §6): every alert with its audience, severity, subject and
//! life cycle, as its stream tells it. Each reader sees its own audience
//! ([`query`]); the scheduler reads the open ones ([`open`]) to resolve and escalate them.

pub mod conditions;
pub mod query;

use foldhash::{HashMap, HashSet};
use noroshi_domain::alert::AlertEvent;
use noroshi_domain::authz::Role;
use noroshi_domain::values::AlertStatus;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct Alerts;

impl Projection for Alerts {
    const NAME: &'static str = "alerts";
    const TABLES: &'static [&'static str] = &["alerts"];
    const SOURCES: &'static [&'static str] = &[streams::ALERT];

    /// Loads the alerts a batch touches (one query), moves them event by event, and
    /// writes back the changed rows (one statement).
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut ids = Vec::new();
        for (event, decoded) in batch {
            if let DomainEvent::Alert(_) = decoded {
                ids.push(aggregate_uuid(event)?);
            }
        }
        ids.sort_unstable();
        ids.dedup();
        let existing = seen.existing(&ids);
        seen.note(&ids);
        let stored: Vec<AlertRow> = sqlx::query_as(concat!(
            "SELECT ",
            alert_columns!(),
            " FROM alerts WHERE alert_id = ANY($1)"
        ))
        .bind(&existing)
        .fetch_all(&mut *tx)
        .await?;
        let mut rows: HashMap<Uuid, AlertRow> =
            stored.into_iter().map(|r| (r.alert_id, r)).collect();
        let mut changed: HashSet<Uuid> = HashSet::default();
        for (event, decoded) in batch {
            let DomainEvent::Alert(alert_event) = decoded else {
                continue;
            };
            let alert_id = aggregate_uuid(event)?;
            if apply(&mut rows, alert_id, alert_event) {
                changed.insert(alert_id);
            }
        }
        write(tx, changed.iter().filter_map(|id| rows.get(id)).collect()).await
    }
}

/// The columns of an [`AlertRow`].
macro_rules! alert_columns {
    () => {
        "alert_id, kind, severity, subject_kind, subject_id, case_id, audience_roles, \
         audience_organisations, cause, episode, message, raised_at, status, escalated_at, \
         acknowledged_by, acknowledged_organisation, acknowledgement_note, acknowledged_at, \
         resolved_at, resolution"
    };
}
use alert_columns;

/// One alert as the view keeps it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct AlertRow {
    pub alert_id: Uuid,
    pub kind: String,
    pub severity: String,
    pub subject_kind: String,
    pub subject_id: String,
    pub case_id: Option<Uuid>,
    pub audience_roles: Vec<String>,
    pub audience_organisations: Vec<String>,
    pub cause: String,
    pub episode: i32,
    pub message: String,
    pub raised_at: OffsetDateTime,
    pub status: String,
    pub escalated_at: Option<OffsetDateTime>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_organisation: Option<String>,
    pub acknowledgement_note: Option<String>,
    pub acknowledged_at: Option<OffsetDateTime>,
    pub resolved_at: Option<OffsetDateTime>,
    pub resolution: Option<String>,
}

/// Moves the row of `alert_id` by `event`; whether it changed.
fn apply(rows: &mut HashMap<Uuid, AlertRow>, alert_id: Uuid, event: &AlertEvent) -> bool {
    if let AlertEvent::Raised { alert, raised_at } = event {
        if rows.contains_key(&alert_id) {
            return false;
        }
        rows.insert(
            alert_id,
            AlertRow {
                alert_id,
                kind: alert.kind.to_string(),
                severity: alert.severity.to_string(),
                subject_kind: alert.subject.kind.to_string(),
                subject_id: alert.subject.id.clone(),
                case_id: alert.case_id,
                audience_roles: alert
                    .audience
                    .roles
                    .iter()
                    .map(|r| r.as_str().to_owned())
                    .collect(),
                audience_organisations: alert
                    .audience
                    .organisations
                    .iter()
                    .map(ToString::to_string)
                    .collect(),
                cause: alert.cause.clone(),
                episode: i32::try_from(alert.episode).unwrap_or(i32::MAX),
                message: alert.message.to_string(),
                raised_at: *raised_at,
                status: AlertStatus::Open.to_string(),
                escalated_at: None,
                acknowledged_by: None,
                acknowledged_organisation: None,
                acknowledgement_note: None,
                acknowledged_at: None,
                resolved_at: None,
                resolution: None,
            },
        );
        return true;
    }
    let Some(row) = rows.get_mut(&alert_id) else {
        return false;
    };
    match event {
        AlertEvent::Raised { .. } => return false,
        AlertEvent::Escalated { escalated_at } => {
            row.escalated_at = Some(*escalated_at);
            let hq = Role::Hq.as_str();
            if !row.audience_roles.iter().any(|r| r == hq) {
                row.audience_roles.push(hq.to_owned());
            }
        }
        AlertEvent::Acknowledged {
            by,
            organisation,
            note,
            acknowledged_at,
        } => {
            row.status = AlertStatus::Acknowledged.to_string();
            row.acknowledged_by = Some(by.to_string());
            row.acknowledged_organisation = Some(organisation.to_string());
            row.acknowledgement_note = Some(note.to_string());
            row.acknowledged_at = Some(*acknowledged_at);
        }
        AlertEvent::Resolved {
            resolved_at,
            reason,
        } => {
            row.status = AlertStatus::Resolved.to_string();
            row.resolved_at = Some(*resolved_at);
            row.resolution = Some(reason.to_string());
        }
    }
    true
}

/// Writes the changed rows in one statement.
async fn write(tx: &mut PgConnection, rows: Vec<&AlertRow>) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let text = |f: &dyn Fn(&AlertRow) -> String| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
    sqlx::query(concat!(
        "INSERT INTO alerts (",
        alert_columns!(),
        ") SELECT a, k, sv, sk, si, c, ar::text[], ao::text[], ca, e, m, ra, st, es, ab, \
           ag, an, aa, rs, rn \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], \
           $7::text[], $8::text[], $9::text[], $10::int[], $11::text[], $12::timestamptz[], \
           $13::text[], $14::timestamptz[], $15::text[], $16::text[], $17::text[], \
           $18::timestamptz[], $19::timestamptz[], $20::text[]) \
           AS r(a, k, sv, sk, si, c, ar, ao, ca, e, m, ra, st, es, ab, ag, an, aa, rs, rn) \
         ON CONFLICT (alert_id) DO UPDATE SET audience_roles = excluded.audience_roles, \
           status = excluded.status, escalated_at = excluded.escalated_at, \
           acknowledged_by = excluded.acknowledged_by, \
           acknowledged_organisation = excluded.acknowledged_organisation, \
           acknowledgement_note = excluded.acknowledgement_note, \
           acknowledged_at = excluded.acknowledged_at, resolved_at = excluded.resolved_at, \
           resolution = excluded.resolution"
    ))
    .bind(rows.iter().map(|r| r.alert_id).collect::<Vec<_>>())
    .bind(text(&|r| r.kind.clone()))
    .bind(text(&|r| r.severity.clone()))
    .bind(text(&|r| r.subject_kind.clone()))
    .bind(text(&|r| r.subject_id.clone()))
    .bind(rows.iter().map(|r| r.case_id).collect::<Vec<_>>())
    // Arrays as literals, one per row: unnest cannot take an array per row.
    .bind(text(&|r| crate::text_array(&r.audience_roles)))
    .bind(text(&|r| crate::text_array(&r.audience_organisations)))
    .bind(text(&|r| r.cause.clone()))
    .bind(rows.iter().map(|r| r.episode).collect::<Vec<_>>())
    .bind(text(&|r| r.message.clone()))
    .bind(rows.iter().map(|r| r.raised_at).collect::<Vec<_>>())
    .bind(text(&|r| r.status.clone()))
    .bind(rows.iter().map(|r| r.escalated_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.acknowledged_by.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.acknowledged_organisation.clone())
            .collect::<Vec<_>>(),
    )
    .bind(
        rows.iter()
            .map(|r| r.acknowledgement_note.clone())
            .collect::<Vec<_>>(),
    )
    .bind(rows.iter().map(|r| r.acknowledged_at).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.resolved_at).collect::<Vec<_>>())
    .bind(
        rows.iter()
            .map(|r| r.resolution.clone())
            .collect::<Vec<_>>(),
    )
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// The alerts a reader of `role` and `organisation` is in the audience of: open and
/// acknowledged ones, and those resolved since `resolved_since`; open first, then the
/// most severe, then the newest. At most `limit`.
pub async fn rows_for(
    pool: &PgPool,
    role: &str,
    organisation: &str,
    resolved_since: OffsetDateTime,
    limit: i64,
) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE (audience_roles @> ARRAY[$1::text] \
           OR audience_organisations @> ARRAY[$2::text]) \
           AND (resolved_at IS NULL OR resolved_at >= $3) \
         ORDER BY (status = 'OPEN') DESC, \
           CASE severity WHEN 'CRITICAL' THEN 0 WHEN 'WARNING' THEN 1 ELSE 2 END, \
           raised_at DESC, alert_id \
         LIMIT $4"
    ))
    .bind(role)
    .bind(organisation)
    .bind(resolved_since)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Every alert not resolved, for the scheduler: to resolve those whose cause went away
/// and escalate the critical ones nobody acknowledged.
pub async fn open(pool: &PgPool) -> Result<Vec<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE resolved_at IS NULL"
    ))
    .fetch_all(pool)
    .await
}

/// The last episode of each of `causes` (`kind/cause`) that was ever raised, for the
/// scheduler: a cause that comes back after its alert was resolved is the next episode.
pub async fn last_episodes(
    pool: &PgPool,
    kinds: &[String],
    causes: &[String],
) -> Result<Vec<(String, String, i32)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT kind, cause, max(episode) FROM alerts \
         WHERE (kind, cause) IN (SELECT * FROM unnest($1::text[], $2::text[])) \
         GROUP BY kind, cause",
    )
    .bind(kinds)
    .bind(causes)
    .fetch_all(pool)
    .await
}

/// The alerts told to a principal of `role` in `organisation`, raised since `since`, of
/// `kinds` (every kind when empty): what a webhook of that organisation is sent.
pub async fn told_since(
    pool: &PgPool,
    role: &str,
    organisation: &str,
    since: OffsetDateTime,
    kinds: &[String],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT alert_id FROM alerts WHERE (audience_roles @> ARRAY[$1::text] \
           OR audience_organisations @> ARRAY[$2::text]) AND raised_at >= $3 \
           AND (cardinality($4::text[]) = 0 OR kind = ANY($4)) \
         ORDER BY raised_at LIMIT 1000",
    )
    .bind(role)
    .bind(organisation)
    .bind(since)
    .bind(kinds)
    .fetch_all(pool)
    .await
}

/// One alert, as a webhook is sent it.
pub async fn one(pool: &PgPool, alert_id: Uuid) -> Result<Option<AlertRow>, sqlx::Error> {
    sqlx::query_as(concat!(
        "SELECT ",
        alert_columns!(),
        " FROM alerts WHERE alert_id = $1"
    ))
    .bind(alert_id)
    .fetch_optional(pool)
    .await
}
