//! `consult_queue` (DESIGN.md §6): remote consultations by state and urgency, for consult
//! centers, their requesters and HQ (DESIGN.md §5.5).
//!
//! One row per consult follows it from its request to its end; the facts of its case the
//! queue shows (identity, severity, last SpO₂) are kept per case beside it and joined
//! when read, since the case's and the consult's streams arrive each in its own order.

pub mod query;

use foldhash::{HashMap, HashSet};
use noroshi_domain::case::CaseEvent;
use noroshi_domain::consult::ConsultEvent;
use noroshi_domain::{DomainEvent, streams};
use noroshi_event_store::RecordedEvent;
use sqlx::postgres::PgConnection;
use sqlx::{FromRow, PgPool};
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use crate::aggregate_uuid;
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct ConsultQueue;

impl Projection for ConsultQueue {
    const NAME: &'static str = "consult_queue";
    const TABLES: &'static [&'static str] = &["consult_queue", "consult_queue_cases"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::CONSULT];

    /// Loads the consults and cases a batch touches (two queries), moves them in memory
    /// event by event, and writes back the changed rows (one statement).
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut queue = Queue::load(tx, batch, seen).await?;
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(e) => queue.apply_case(aggregate_uuid(event)?, e),
                DomainEvent::Consult(e) => {
                    queue.apply_consult(aggregate_uuid(event)?, e, event.occurred_at);
                }
                DomainEvent::Facility(_)
                | DomainEvent::Placement(_)
                | DomainEvent::Alert(_)
                | DomainEvent::AlertRules(_) => {}
            }
        }
        queue.write(tx).await
    }
}

/// The columns of a [`ConsultRow`].
macro_rules! consult_columns {
    () => {
        "consult_id, case_id, requested_by, case_owner, patient_at, mode, urgency, question, \
         contact, preferred_from, preferred_until, addressed_to, status, center, scheduled_for, \
         doctor, recommendation, findings, follow_up_at, escalated_to, requested_at, closed_at"
    };
}

/// One consult as the queue keeps it.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ConsultRow {
    pub consult_id: Uuid,
    pub case_id: Uuid,
    pub requested_by: String,
    pub case_owner: String,
    pub patient_at: Option<String>,
    pub mode: String,
    pub urgency: String,
    pub question: String,
    pub contact: String,
    pub preferred_from: Option<OffsetDateTime>,
    pub preferred_until: Option<OffsetDateTime>,
    /// The consult center it was addressed to; `None`: any.
    pub addressed_to: Option<String>,
    pub status: String,
    /// The consult center that scheduled it.
    pub center: Option<String>,
    pub scheduled_for: Option<OffsetDateTime>,
    pub doctor: Option<String>,
    pub recommendation: Option<String>,
    pub findings: Option<String>,
    pub follow_up_at: Option<OffsetDateTime>,
    pub escalated_to: Option<Uuid>,
    pub requested_at: OffsetDateTime,
    /// When it was completed, cancelled or missed.
    pub closed_at: Option<OffsetDateTime>,
}

/// The facts of a case the queue shows.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct CaseFacts {
    pub case_id: Uuid,
    pub name: String,
    pub name_kana: Option<String>,
    pub birth_date: Date,
    pub sex: String,
    pub severity: String,
    pub last_spo2: Option<i32>,
    pub last_observed_at: Option<OffsetDateTime>,
    pub deteriorated_at: Option<OffsetDateTime>,
}

/// The rows a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Queue {
    consults: HashMap<Uuid, ConsultRow>,
    changed_consults: HashSet<Uuid>,
    cases: HashMap<Uuid, CaseFacts>,
    changed_cases: HashSet<Uuid>,
}

impl Queue {
    async fn load(
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<Self, sqlx::Error> {
        let (mut cases, mut consults) = (Vec::new(), Vec::new());
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(_) => cases.push(aggregate_uuid(event)?),
                DomainEvent::Consult(_) => consults.push(aggregate_uuid(event)?),
                _ => {}
            }
        }
        let (existing_cases, existing_consults) = (seen.existing(&cases), seen.existing(&consults));
        seen.note(&cases);
        seen.note(&consults);
        let mut queue = Self::default();
        if !existing_consults.is_empty() {
            let rows: Vec<ConsultRow> = sqlx::query_as(concat!(
                "SELECT ",
                consult_columns!(),
                " FROM consult_queue WHERE consult_id = ANY($1)"
            ))
            .bind(&existing_consults)
            .fetch_all(&mut *tx)
            .await?;
            queue.consults = rows.into_iter().map(|r| (r.consult_id, r)).collect();
        }
        if !existing_cases.is_empty() {
            let rows: Vec<CaseFacts> = sqlx::query_as(
                "SELECT case_id, name, name_kana, birth_date, sex, severity, last_spo2, \
                 last_observed_at, deteriorated_at FROM consult_queue_cases \
                 WHERE case_id = ANY($1)",
            )
            .bind(&existing_cases)
            .fetch_all(&mut *tx)
            .await?;
            queue.cases = rows.into_iter().map(|c| (c.case_id, c)).collect();
        }
        Ok(queue)
    }

    fn apply_case(&mut self, case_id: Uuid, event: &CaseEvent) {
        if let CaseEvent::Reported { report, .. } = event {
            self.cases.entry(case_id).or_insert_with(|| CaseFacts {
                case_id,
                name: report.patient.name.to_string(),
                name_kana: report.patient.name_kana.as_ref().map(ToString::to_string),
                birth_date: report.patient.birth_date,
                sex: report.patient.sex.to_string(),
                severity: report.severity.to_string(),
                last_spo2: None,
                last_observed_at: None,
                deteriorated_at: None,
            });
            self.changed_cases.insert(case_id);
            return;
        }
        let Some(case) = self.cases.get_mut(&case_id) else {
            return;
        };
        match event {
            CaseEvent::Triaged { severity, .. } => {
                case.severity = severity.to_string();
                case.deteriorated_at = None;
            }
            CaseEvent::ObservationRecorded(observation) => {
                if case
                    .last_observed_at
                    .is_some_and(|last| last > observation.observed_at)
                {
                    return;
                }
                case.last_observed_at = Some(observation.observed_at);
                case.last_spo2 = observation.spo2.map(|s| i32::from(s.percent()));
            }
            CaseEvent::DeteriorationFlagged { observed_at, .. } => {
                case.deteriorated_at = Some(*observed_at);
            }
            _ => return,
        }
        self.changed_cases.insert(case_id);
    }

    fn apply_consult(&mut self, consult_id: Uuid, event: &ConsultEvent, at: OffsetDateTime) {
        if let ConsultEvent::Requested {
            request,
            case_owner,
            patient_at,
            requested_at,
        } = event
        {
            self.consults
                .entry(consult_id)
                .or_insert_with(|| ConsultRow {
                    consult_id,
                    case_id: request.case_id,
                    requested_by: request.requested_by.to_string(),
                    case_owner: case_owner.to_string(),
                    patient_at: patient_at.as_ref().map(ToString::to_string),
                    mode: request.mode.to_string(),
                    urgency: request.urgency.to_string(),
                    question: request.question.to_string(),
                    contact: request.contact.to_string(),
                    preferred_from: request.preferred_from,
                    preferred_until: request.preferred_until,
                    addressed_to: request.center.as_ref().map(ToString::to_string),
                    status: "REQUESTED".into(),
                    center: None,
                    scheduled_for: None,
                    doctor: None,
                    recommendation: None,
                    findings: None,
                    follow_up_at: None,
                    escalated_to: None,
                    requested_at: *requested_at,
                    closed_at: None,
                });
            self.changed_consults.insert(consult_id);
            return;
        }
        let Some(row) = self.consults.get_mut(&consult_id) else {
            return;
        };
        match event {
            ConsultEvent::Requested { .. } => return,
            ConsultEvent::Scheduled {
                center,
                scheduled_for,
                doctor,
                ..
            } => {
                row.status = "SCHEDULED".into();
                row.center = Some(center.to_string());
                row.scheduled_for = Some(*scheduled_for);
                row.doctor = Some(doctor.to_string());
            }
            ConsultEvent::Started { .. } => row.status = "IN_PROGRESS".into(),
            ConsultEvent::Completed {
                findings,
                recommendation,
                follow_up_at,
                completed_at,
            } => {
                row.status = "COMPLETED".into();
                row.findings = Some(findings.to_string());
                row.recommendation = Some(recommendation.to_string());
                row.follow_up_at = *follow_up_at;
                row.closed_at = Some(*completed_at);
            }
            ConsultEvent::Escalated { placement_id, .. } => {
                row.escalated_to = Some(*placement_id);
            }
            ConsultEvent::Cancelled { cancelled_at, .. } => {
                row.status = "CANCELLED".into();
                row.closed_at = Some(*cancelled_at);
            }
            ConsultEvent::Missed { .. } => {
                row.status = "MISSED".into();
                row.closed_at = Some(at);
            }
        }
        self.changed_consults.insert(consult_id);
    }

    /// Writes the changed consults and cases.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if !self.changed_consults.is_empty() {
            let rows: Vec<&ConsultRow> = self
                .changed_consults
                .iter()
                .filter_map(|id| self.consults.get(id))
                .collect();
            let text = |f: fn(&ConsultRow) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
            let opt =
                |f: fn(&ConsultRow) -> Option<&str>| rows.iter().map(|r| f(r)).collect::<Vec<_>>();
            let time = |f: fn(&ConsultRow) -> Option<OffsetDateTime>| {
                rows.iter().map(|r| f(r)).collect::<Vec<_>>()
            };
            sqlx::query(concat!(
                "INSERT INTO consult_queue (",
                consult_columns!(),
                ") SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], \
                   $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], \
                   $10::timestamptz[], $11::timestamptz[], $12::text[], $13::text[], \
                   $14::text[], $15::timestamptz[], $16::text[], $17::text[], $18::text[], \
                   $19::timestamptz[], $20::uuid[], $21::timestamptz[], $22::timestamptz[]) \
                 ON CONFLICT (consult_id) DO UPDATE SET status = excluded.status, \
                   center = excluded.center, scheduled_for = excluded.scheduled_for, \
                   doctor = excluded.doctor, recommendation = excluded.recommendation, \
                   findings = excluded.findings, follow_up_at = excluded.follow_up_at, \
                   escalated_to = excluded.escalated_to, closed_at = excluded.closed_at"
            ))
            .bind(rows.iter().map(|r| r.consult_id).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.case_id).collect::<Vec<_>>())
            .bind(text(|r| &r.requested_by))
            .bind(text(|r| &r.case_owner))
            .bind(opt(|r| r.patient_at.as_deref()))
            .bind(text(|r| &r.mode))
            .bind(text(|r| &r.urgency))
            .bind(text(|r| &r.question))
            .bind(text(|r| &r.contact))
            .bind(time(|r| r.preferred_from))
            .bind(time(|r| r.preferred_until))
            .bind(opt(|r| r.addressed_to.as_deref()))
            .bind(text(|r| &r.status))
            .bind(opt(|r| r.center.as_deref()))
            .bind(time(|r| r.scheduled_for))
            .bind(opt(|r| r.doctor.as_deref()))
            .bind(opt(|r| r.recommendation.as_deref()))
            .bind(opt(|r| r.findings.as_deref()))
            .bind(time(|r| r.follow_up_at))
            .bind(rows.iter().map(|r| r.escalated_to).collect::<Vec<_>>())
            .bind(rows.iter().map(|r| r.requested_at).collect::<Vec<_>>())
            .bind(time(|r| r.closed_at))
            .execute(&mut *tx)
            .await?;
        }
        if !self.changed_cases.is_empty() {
            let cases: Vec<&CaseFacts> = self
                .changed_cases
                .iter()
                .filter_map(|id| self.cases.get(id))
                .collect();
            sqlx::query(
                "INSERT INTO consult_queue_cases (case_id, name, name_kana, birth_date, sex, \
                   severity, last_spo2, last_observed_at, deteriorated_at) \
                 SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::date[], \
                   $5::text[], $6::text[], $7::int[], $8::timestamptz[], $9::timestamptz[]) \
                 ON CONFLICT (case_id) DO UPDATE SET severity = excluded.severity, \
                   last_spo2 = excluded.last_spo2, last_observed_at = excluded.last_observed_at, \
                   deteriorated_at = excluded.deteriorated_at",
            )
            .bind(cases.iter().map(|c| c.case_id).collect::<Vec<_>>())
            .bind(cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>())
            .bind(
                cases
                    .iter()
                    .map(|c| c.name_kana.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(cases.iter().map(|c| c.birth_date).collect::<Vec<_>>())
            .bind(cases.iter().map(|c| c.sex.as_str()).collect::<Vec<_>>())
            .bind(
                cases
                    .iter()
                    .map(|c| c.severity.as_str())
                    .collect::<Vec<_>>(),
            )
            .bind(cases.iter().map(|c| c.last_spo2).collect::<Vec<_>>())
            .bind(cases.iter().map(|c| c.last_observed_at).collect::<Vec<_>>())
            .bind(cases.iter().map(|c| c.deteriorated_at).collect::<Vec<_>>())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }
}

/// How long a closed consult stays in the queue.
pub const RECENT_HOURS: i64 = 24;

/// The consults a reader may be shown, open ones and those closed in the last
/// [`RECENT_HOURS`], with their case's facts: most urgent first, then longest waiting.
pub async fn rows(
    pool: &PgPool,
    now: OffsetDateTime,
) -> Result<Vec<(ConsultRow, Option<CaseFacts>)>, sqlx::Error> {
    /// A case's facts as the outer join gives them: absent until the case is read.
    #[derive(FromRow)]
    struct CaseFactsColumns {
        name: Option<String>,
        name_kana: Option<String>,
        birth_date: Option<Date>,
        sex: Option<String>,
        severity: Option<String>,
        last_spo2: Option<i32>,
        last_observed_at: Option<OffsetDateTime>,
        deteriorated_at: Option<OffsetDateTime>,
    }
    let rows: Vec<(ConsultRow, CaseFactsColumns)> = sqlx::query(
        "SELECT q.consult_id, q.case_id, q.requested_by, q.case_owner, q.patient_at, q.mode, \
         q.urgency, q.question, q.contact, q.preferred_from, q.preferred_until, q.addressed_to, \
         q.status, q.center, q.scheduled_for, q.doctor, q.recommendation, q.findings, \
         q.follow_up_at, q.escalated_to, q.requested_at, q.closed_at, \
         c.name, c.name_kana, c.birth_date, c.sex, c.severity, c.last_spo2, \
         c.last_observed_at, c.deteriorated_at \
         FROM consult_queue q LEFT JOIN consult_queue_cases c USING (case_id) \
         WHERE q.closed_at IS NULL OR q.closed_at > $1 \
         ORDER BY q.closed_at IS NOT NULL, \
           CASE q.urgency WHEN 'EMERGENCY' THEN 0 WHEN 'URGENT' THEN 1 ELSE 2 END, \
           q.requested_at, q.consult_id",
    )
    .bind(now - time::Duration::hours(RECENT_HOURS))
    .try_map(|row: sqlx::postgres::PgRow| {
        Ok((
            ConsultRow::from_row(&row)?,
            CaseFactsColumns::from_row(&row)?,
        ))
    })
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(consult, c)| {
            let facts = match (c.name, c.birth_date, c.sex, c.severity) {
                (Some(name), Some(birth_date), Some(sex), Some(severity)) => Some(CaseFacts {
                    case_id: consult.case_id,
                    name,
                    name_kana: c.name_kana,
                    birth_date,
                    sex,
                    severity,
                    last_spo2: c.last_spo2,
                    last_observed_at: c.last_observed_at,
                    deteriorated_at: c.deteriorated_at,
                }),
                _ => None,
            };
            (consult, facts)
        })
        .collect())
}
