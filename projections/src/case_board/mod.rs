//! `case_board` (DESIGN.md §6): a health center's cases by status, with severity,
//! priority, the last observation, the deterioration flag and where the latest placement
//! stands. The rows carry the patient's identity: the API audits every read.

pub mod query;

use foldhash::{HashMap, HashSet};

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
use crate::runner::{Projection, Seen};

#[derive(Debug, Clone, Copy, Default)]
pub struct CaseBoard;

impl Projection for CaseBoard {
    const NAME: &'static str = "case_board";
    const TABLES: &'static [&'static str] = &["case_board", "case_board_placements"];
    const SOURCES: &'static [&'static str] = &[streams::CASE, streams::PLACEMENT];

    /// Loads the cases and placements a batch touches in two queries, moves them in
    /// memory event by event, and writes them back in one statement.
    async fn apply(
        &self,
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<(), sqlx::Error> {
        let mut board = Board::load(tx, batch, seen).await?;
        for (event, decoded) in batch {
            match decoded {
                DomainEvent::Case(e) => board.apply_case(aggregate_uuid(event)?, e),
                DomainEvent::Placement(e) => board.apply_placement(aggregate_uuid(event)?, e),
                DomainEvent::Facility(_)
                | DomainEvent::Consult(_)
                | DomainEvent::Alert(_)
                | DomainEvent::AlertRules(_) => {}
            }
        }
        board.write(tx).await
    }
}

/// The columns of a [`Case`].
macro_rules! case_columns {
    () => {
        "case_id, health_center_id, external_ref, name, name_kana, birth_date, sex, \
         municipality, risk_factors, severity, needs, priority, priority_overridden, status, \
         reported_at, last_observed_at, last_spo2, last_temperature, last_on_oxygen, \
         deteriorated_at, outcome, closed_at, last_observed_by, care_site"
    };
}

/// Inserts the cases of `$1`..`$22`, `$30` and `$31` (`s`: `$28`, whether the row is stored),
/// filtered by a `WHERE` that follows.
macro_rules! cases_insert {
    () => {
        "INSERT INTO case_board (case_id, health_center_id, external_ref, name, name_kana, \
           birth_date, sex, municipality, risk_factors, severity, needs, priority, \
           priority_overridden, status, reported_at, last_observed_at, last_spo2, \
           last_temperature, last_on_oxygen, deteriorated_at, outcome, closed_at, \
           last_observed_by, care_site) \
         SELECT c1, c2, c3, c4, c5, c6, c7, c8, c9::text[], c10, c11::text[], c12, c13, c14, \
           c15, c16, c17, c18, c19, c20, c21, c22, c23, c24 \
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::date[], \
           $7::text[], $8::text[], $9::text[], $10::text[], $11::text[], $12::int[], $13::bool[], \
           $14::text[], $15::timestamptz[], $16::timestamptz[], $17::int[], $18::int[], \
           $19::bool[], $20::timestamptz[], $21::text[], $22::timestamptz[], $30::text[], \
           $31::text[], $28::bool[]) \
           AS r(c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14, c15, c16, c17, \
                c18, c19, c20, c21, c22, c23, c24, s)"
    };
}

/// Inserts the placements of `$23`..`$27` (`s`: `$29`), filtered by a `WHERE` that
/// follows.
macro_rules! placements_insert {
    () => {
        "INSERT INTO case_board_placements (placement_id, case_id, requested_at, status, target) \
         SELECT p, c, ra, st, t FROM unnest($23::uuid[], $24::uuid[], $25::timestamptz[], \
           $26::text[], $27::text[], $29::bool[]) AS p(p, c, ra, st, t, s)"
    };
}

/// A stored row of `case_board`.
#[derive(Debug, Clone, FromRow)]
struct Case {
    case_id: Uuid,
    health_center_id: String,
    external_ref: Option<String>,
    name: String,
    name_kana: Option<String>,
    birth_date: Date,
    sex: String,
    municipality: String,
    risk_factors: Vec<String>,
    severity: String,
    needs: Vec<String>,
    priority: i32,
    priority_overridden: bool,
    status: String,
    reported_at: OffsetDateTime,
    last_observed_at: Option<OffsetDateTime>,
    last_spo2: Option<i32>,
    last_temperature: Option<i32>,
    last_on_oxygen: Option<bool>,
    deteriorated_at: Option<OffsetDateTime>,
    outcome: Option<String>,
    closed_at: Option<OffsetDateTime>,
    last_observed_by: Option<String>,
    care_site: Option<String>,
}

/// A stored row of `case_board_placements`.
#[derive(Debug, Clone, FromRow)]
struct Placement {
    placement_id: Uuid,
    case_id: Uuid,
    requested_at: OffsetDateTime,
    status: String,
    target: Option<String>,
}

/// The rows a batch touches: loaded before it, moved by its events, written after.
#[derive(Debug, Default)]
struct Board {
    cases: HashMap<Uuid, Case>,
    changed_cases: HashSet<Uuid>,
    placements: HashMap<Uuid, Placement>,
    changed_placements: HashSet<Uuid>,
    /// The cases and placements that have a row: those loaded. Every other row the
    /// batch writes is new, since the batch looked up every id its events touch.
    stored: HashSet<Uuid>,
}

fn names<T: ToString>(values: impl IntoIterator<Item = T>) -> Vec<String> {
    values.into_iter().map(|v| v.to_string()).collect()
}

impl Board {
    async fn load(
        tx: &mut PgConnection,
        batch: &[(RecordedEvent, DomainEvent)],
        seen: &mut Seen,
    ) -> Result<Self, sqlx::Error> {
        let (all_cases, all_placements) = crate::case_and_placement_ids(batch)?;
        let (cases, placements) = (seen.existing(&all_cases), seen.existing(&all_placements));
        seen.note(&all_cases);
        seen.note(&all_placements);
        let mut board = Self::default();
        if !cases.is_empty() {
            let rows: Vec<Case> = sqlx::query_as(concat!(
                "SELECT ",
                case_columns!(),
                " FROM case_board WHERE case_id = ANY($1)"
            ))
            .bind(&cases)
            .fetch_all(&mut *tx)
            .await?;
            board.stored.extend(rows.iter().map(|c| c.case_id));
            board.cases = rows.into_iter().map(|c| (c.case_id, c)).collect();
        }
        if !placements.is_empty() {
            let rows: Vec<Placement> = sqlx::query_as(
                "SELECT placement_id, case_id, requested_at, status, target \
                 FROM case_board_placements WHERE placement_id = ANY($1)",
            )
            .bind(&placements)
            .fetch_all(&mut *tx)
            .await?;
            board.stored.extend(rows.iter().map(|p| p.placement_id));
            board.placements = rows.into_iter().map(|p| (p.placement_id, p)).collect();
        }
        Ok(board)
    }

    fn apply_case(&mut self, case_id: Uuid, event: &CaseEvent) {
        if let CaseEvent::Reported {
            report,
            priority,
            reported_at,
            ..
        } = event
        {
            if !self.cases.contains_key(&case_id) {
                self.changed_cases.insert(case_id);
                self.cases.insert(
                    case_id,
                    Case {
                        case_id,
                        health_center_id: report.health_center_id.to_string(),
                        external_ref: report.external_ref.as_ref().map(ToString::to_string),
                        name: report.patient.name.to_string(),
                        name_kana: report.patient.name_kana.as_ref().map(ToString::to_string),
                        birth_date: report.patient.birth_date,
                        sex: report.patient.sex.to_string(),
                        municipality: report.municipality.to_string(),
                        risk_factors: names(&report.risk_factors),
                        severity: report.severity.to_string(),
                        needs: names(&report.needs),
                        priority: i32::from(priority.get()),
                        priority_overridden: false,
                        status: CaseStatus::Reported.to_string(),
                        reported_at: *reported_at,
                        last_observed_at: None,
                        last_spo2: None,
                        last_temperature: None,
                        last_on_oxygen: None,
                        deteriorated_at: None,
                        outcome: None,
                        closed_at: None,
                        last_observed_by: None,
                        care_site: None,
                    },
                );
            }
            return;
        }
        let Some(case) = self.cases.get_mut(&case_id) else {
            return;
        };
        match event {
            CaseEvent::Reported { .. } => return,
            CaseEvent::Triaged {
                severity,
                risk_factors,
                needs,
                priority,
                ..
            } => {
                case.severity = severity.to_string();
                case.risk_factors = names(risk_factors);
                case.needs = names(needs);
                // A new triage recomputes the priority, replacing HQ's override (as
                // `Case::evolve` does, and so the next placement request carries it).
                case.priority = i32::from(priority.get());
                case.priority_overridden = false;
                case.deteriorated_at = None;
            }
            CaseEvent::PriorityOverridden { priority, .. } => {
                case.priority = i32::from(priority.get());
                case.priority_overridden = true;
            }
            CaseEvent::ObservationRecorded(observation) => {
                // A late-recorded older observation does not replace a newer one.
                if case
                    .last_observed_at
                    .is_some_and(|last| last > observation.observed_at)
                {
                    return;
                }
                case.last_observed_at = Some(observation.observed_at);
                case.last_spo2 = observation.spo2.map(|s| i32::from(s.percent()));
                case.last_temperature = observation.temperature.map(|t| i32::from(t.decicelsius()));
                case.last_on_oxygen = Some(observation.on_oxygen);
                case.last_observed_by = observation.recorded_by.as_ref().map(ToString::to_string);
            }
            CaseEvent::DeteriorationFlagged { observed_at, .. } => {
                case.deteriorated_at = Some(*observed_at);
            }
            CaseEvent::HomeCareStarted { .. } => case.status = CaseStatus::HomeCare.to_string(),
            CaseEvent::CareSiteAssigned { care_site, .. } => {
                case.care_site = care_site.as_ref().map(ToString::to_string);
            }
            CaseEvent::StatusChanged { to, .. } => {
                // A patient who arrives at a facility leaves the care site's care.
                if matches!(to, CaseStatus::Hospitalized | CaseStatus::InHotel) {
                    case.care_site = None;
                }
                case.status = to.to_string();
            }
            // The patient stays where they are until they arrive; the placement's own
            // events show the transfer.
            CaseEvent::TransferRequested { .. }
            | CaseEvent::TransferCancelled { .. }
            | CaseEvent::ConsultOpened { .. }
            | CaseEvent::ConsultClosed { .. } => return,
            CaseEvent::Closed {
                outcome, closed_at, ..
            } => {
                case.status = CaseStatus::from(*outcome).to_string();
                case.outcome = Some(outcome.to_string());
                case.closed_at = Some(*closed_at);
                case.care_site = None;
            }
        }
        self.changed_cases.insert(case_id);
    }

    fn apply_placement(&mut self, placement_id: Uuid, event: &PlacementEvent) {
        if let PlacementEvent::Requested {
            case_id,
            requested_at,
            ..
        } = event
        {
            if !self.placements.contains_key(&placement_id) {
                self.changed_placements.insert(placement_id);
                self.placements.insert(
                    placement_id,
                    Placement {
                        placement_id,
                        case_id: *case_id,
                        requested_at: *requested_at,
                        status: "REQUESTED".into(),
                        target: None,
                    },
                );
            }
            return;
        }
        // The target moves only with an offer, a decline or an expiry.
        let (status, target): (&str, Option<Option<&str>>) = match event {
            PlacementEvent::Requested { .. } => return,
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
        let Some(placement) = self.placements.get_mut(&placement_id) else {
            return;
        };
        placement.status = status.to_owned();
        if let Some(target) = target {
            placement.target = target.map(str::to_owned);
        }
        self.changed_placements.insert(placement_id);
    }

    /// Writes the changed cases and placements in one statement.
    async fn write(self, tx: &mut PgConnection) -> Result<(), sqlx::Error> {
        if self.changed_cases.is_empty() && self.changed_placements.is_empty() {
            return Ok(());
        }
        let cases: Vec<&Case> = self
            .changed_cases
            .iter()
            .filter_map(|id| self.cases.get(id))
            .collect();
        let placements: Vec<&Placement> = self
            .changed_placements
            .iter()
            .filter_map(|id| self.placements.get(id))
            .collect();
        // Arrays as literals, one per row: unnest cannot take an array per row.
        let column = |f: &dyn Fn(&Case) -> String| cases.iter().map(|c| f(c)).collect::<Vec<_>>();
        let stored = |id: &Uuid| self.stored.contains(id);
        // New rows go in without the conflict check, which costs PostgreSQL about a
        // fifth of each insert; in a rebuild nearly every row is new.
        sqlx::query(concat!(
            "WITH new_placements AS (",
            placements_insert!(),
            " WHERE NOT s), placements AS (",
            placements_insert!(),
            " WHERE s ON CONFLICT (placement_id) \
               DO UPDATE SET status = excluded.status, target = excluded.target), \
             new_cases AS (",
            cases_insert!(),
            " WHERE NOT s) ",
            cases_insert!(),
            " WHERE s ON CONFLICT (case_id) DO UPDATE SET risk_factors = excluded.risk_factors, \
               severity = excluded.severity, needs = excluded.needs, priority = excluded.priority, \
               priority_overridden = excluded.priority_overridden, status = excluded.status, \
               last_observed_at = excluded.last_observed_at, last_spo2 = excluded.last_spo2, \
               last_temperature = excluded.last_temperature, last_on_oxygen = excluded.last_on_oxygen, \
               deteriorated_at = excluded.deteriorated_at, outcome = excluded.outcome, \
               closed_at = excluded.closed_at, last_observed_by = excluded.last_observed_by, \
               care_site = excluded.care_site"
        ))
        .bind(cases.iter().map(|c| c.case_id).collect::<Vec<_>>())
        .bind(column(&|c| c.health_center_id.clone()))
        .bind(cases.iter().map(|c| c.external_ref.clone()).collect::<Vec<_>>())
        .bind(column(&|c| c.name.clone()))
        .bind(cases.iter().map(|c| c.name_kana.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.birth_date).collect::<Vec<_>>())
        .bind(column(&|c| c.sex.clone()))
        .bind(column(&|c| c.municipality.clone()))
        .bind(column(&|c| crate::text_array(&c.risk_factors)))
        .bind(column(&|c| c.severity.clone()))
        .bind(column(&|c| crate::text_array(&c.needs)))
        .bind(cases.iter().map(|c| c.priority).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.priority_overridden).collect::<Vec<_>>())
        .bind(column(&|c| c.status.clone()))
        .bind(cases.iter().map(|c| c.reported_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_observed_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_spo2).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_temperature).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_on_oxygen).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.deteriorated_at).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.outcome.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.closed_at).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| p.placement_id).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| p.case_id).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| p.requested_at).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| p.status.clone()).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| p.target.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| stored(&c.case_id)).collect::<Vec<_>>())
        .bind(placements.iter().map(|p| stored(&p.placement_id)).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.last_observed_by.clone()).collect::<Vec<_>>())
        .bind(cases.iter().map(|c| c.care_site.clone()).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
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
    /// Who recorded the last observation (DESIGN.md §5.4).
    pub last_observed_by: Option<String>,
    /// The clinic or mobile clinic caring for the patient at home.
    pub care_site: Option<String>,
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
    /// Only the cases in this care site's care.
    pub care_site: Option<&'a str>,
    /// Only these statuses; empty for all.
    pub statuses: Vec<String>,
    pub offset: i64,
    pub limit: i64,
}

/// The board's columns, with the case's latest placement.
const SELECT: &str = "SELECT c.case_id, c.health_center_id, c.external_ref, c.name, \
    c.name_kana, c.birth_date, c.sex, c.municipality, c.risk_factors, c.severity, c.needs, \
    c.priority, c.priority_overridden, c.status, c.reported_at, c.last_observed_at, \
    c.last_spo2, c.last_temperature, c.last_on_oxygen, c.last_observed_by, c.care_site, \
    c.deteriorated_at, \
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
        AND (cardinality($2::text[]) = 0 OR c.status = ANY($2)) \
        AND ($3::text IS NULL OR c.care_site = $3)";
    let sql = format!(
        "{SELECT} {WHERE} ORDER BY c.status, c.priority, c.reported_at, c.case_id \
         OFFSET $4 LIMIT $5"
    );
    let rows = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.owner)
        .bind(&query.statuses)
        .bind(query.care_site)
        .bind(query.offset)
        .bind(query.limit)
        .fetch_all(pool)
        .await?;
    let total = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT count(*) FROM case_board c {WHERE}"
    )))
    .bind(query.owner)
    .bind(&query.statuses)
    .bind(query.care_site)
    .fetch_one(pool)
    .await?;
    Ok((rows, total))
}

/// Those of `cases` that match `query`'s owner and statuses (its paging does not apply),
/// in no particular order: what a live board reads again after they changed.
pub async fn rows_of(
    pool: &PgPool,
    query: &CaseQuery<'_>,
    cases: &[Uuid],
) -> Result<Vec<CaseRow>, sqlx::Error> {
    let sql = format!(
        "{SELECT} WHERE c.case_id = ANY($3) \
         AND ($1::text IS NULL OR c.health_center_id = $1) \
         AND (cardinality($2::text[]) = 0 OR c.status = ANY($2)) \
         AND ($4::text IS NULL OR c.care_site = $4)"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(query.owner)
        .bind(&query.statuses)
        .bind(cases)
        .bind(query.care_site)
        .fetch_all(pool)
        .await
}

/// The cases the board knows `placements` to belong to.
pub async fn cases_of_placements(
    pool: &PgPool,
    placements: &[Uuid],
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT case_id FROM case_board_placements WHERE placement_id = ANY($1)",
    )
    .bind(placements)
    .fetch_all(pool)
    .await
}

/// Every case, in the board's order (for tests and comparisons).
pub async fn all(pool: &PgPool) -> Result<Vec<CaseRow>, sqlx::Error> {
    let sql = format!("{SELECT} ORDER BY c.case_id");
    sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .fetch_all(pool)
        .await
}
