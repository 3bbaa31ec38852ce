//! The `case_board` view: a health center's cases (HQ: any health center's) by status,
//! with severity, priority, the last observation, the deterioration flag and where the
//! placement stands. It identifies patients: every case sent is audited.

use std::collections::{BTreeMap, BTreeSet};

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role, ViewScope, case_board_scope};
use noroshi_domain::values::{
    Capability, CaseOutcome, CaseStatus, FacilityId, RiskFactor, Severity, Sex,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{CaseBoard, CaseQuery, CaseRow};
use crate::View;
use crate::runner::Projection;
use crate::views::live::{Changed, Listed, audited, diff, follow, merged};
use crate::views::page::encode_token;
use crate::views::{
    MinVersions, Page, QueryError, Updates, ViewQuery, Views, age_on, at, at_opt, min_versions,
    wire, wires,
};

/// The cases a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct CaseBoardFilter {
    /// Empty: every status.
    pub statuses: BTreeSet<CaseStatus>,
    /// HQ only: one health center's cases.
    pub health_center: Option<FacilityId>,
}

fn parse(r: &pb::GetCaseBoardRequest) -> Result<(CaseBoardFilter, Page, MinVersions), QueryError> {
    let mut v = Violations::new();
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| {
            v.check(
                format!("statuses[{i}]"),
                <CaseStatus as noroshi_codec::WireEnum>::from_wire(s),
            )
        })
        .collect();
    let health_center = (!r.health_center_id.trim().is_empty())
        .then(|| v.check("health_center_id", FacilityId::parse(&r.health_center_id)))
        .flatten();
    let page = Page::parse(r.page_size, &r.page_token, &mut v);
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    let filter = CaseBoardFilter {
        statuses,
        health_center,
    };
    QueryError::check(v, (filter, page, min_versions))
}

/// Whose cases `principal` may see on the board asked for with `filter`.
#[derive(Debug, Clone, Default)]
struct Sight {
    /// The owning health center; `None` for every one.
    owner: Option<FacilityId>,
    /// The care site (a clinic's board); `None` for any.
    care_site: Option<FacilityId>,
}

impl Sight {
    fn query(&self, filter: &CaseBoardFilter) -> CaseQuery<'_> {
        CaseQuery {
            owner: self.owner.as_ref().map(|o| o.as_str()),
            care_site: self.care_site.as_ref().map(|c| c.as_str()),
            statuses: filter.statuses.iter().map(ToString::to_string).collect(),
            ..CaseQuery::default()
        }
    }
}

fn board_sight(principal: &Principal, filter: &CaseBoardFilter) -> Result<Sight, QueryError> {
    let cares = matches!(principal.role, Role::Clinic | Role::MobileClinic);
    match (case_board_scope(principal), &filter.health_center) {
        (ViewScope::All, requested) => Ok(Sight {
            owner: requested.clone(),
            care_site: None,
        }),
        (ViewScope::Own(own), None) if cares => Ok(Sight {
            owner: None,
            care_site: Some(own),
        }),
        (ViewScope::Own(own), None) => Ok(Sight {
            owner: Some(own),
            care_site: None,
        }),
        (ViewScope::Own(own), Some(requested)) if *requested == own && !cares => Ok(Sight {
            owner: Some(own),
            care_site: None,
        }),
        _ => Err(QueryError::Denied),
    }
}

fn row(row: CaseRow, today: time::Date) -> pb::CaseBoardRow {
    pb::CaseBoardRow {
        age: age_on(row.birth_date, today),
        deteriorated: row.deteriorated_at.is_some(),
        case_id: row.case_id.to_string(),
        health_center_id: row.health_center_id,
        external_ref: row.external_ref,
        name: row.name,
        name_kana: row.name_kana,
        birth_date: row.birth_date.to_string(),
        sex: wire(&row.sex, Sex::parse),
        municipality: row.municipality,
        risk_factors: wires(&row.risk_factors, RiskFactor::parse),
        severity: wire(&row.severity, Severity::parse),
        needs: wires(&row.needs, Capability::parse),
        priority: u32::try_from(row.priority).unwrap_or_default(),
        priority_overridden: row.priority_overridden,
        status: wire(&row.status, CaseStatus::parse),
        reported_at: at(row.reported_at),
        last_observed_at: at_opt(row.last_observed_at),
        last_spo2: row.last_spo2.and_then(|v| u32::try_from(v).ok()),
        last_temperature: row.last_temperature.and_then(|v| u32::try_from(v).ok()),
        last_on_oxygen: row.last_on_oxygen.unwrap_or_default(),
        last_observed_by: row.last_observed_by,
        care_site_id: row.care_site,
        deteriorated_at: at_opt(row.deteriorated_at),
        placement_id: row.placement_id.map(|id| id.to_string()),
        placement_status: row.placement_status,
        placement_target: row.placement_target,
        closed_at: at_opt(row.closed_at),
        outcome: row.outcome.as_deref().map(|o| wire(o, CaseOutcome::parse)),
    }
}

fn rows(stored: Vec<CaseRow>, today: time::Date) -> Vec<pb::CaseBoardRow> {
    stored.into_iter().map(|r| row(r, today)).collect()
}

/// The case ids of rows, for the audit log.
fn identified(rows: &[pb::CaseBoardRow]) -> Vec<Uuid> {
    rows.iter()
        .filter_map(|r| Uuid::parse_str(&r.case_id).ok())
        .collect()
}

impl Views {
    async fn case_board_page(
        &self,
        principal: &Principal,
        filter: &CaseBoardFilter,
        offset: i64,
        limit: i64,
        min_versions: &[(StreamId, u64)],
    ) -> Result<pb::CaseBoard, QueryError> {
        let sight = board_sight(principal, filter)?;
        self.ready(principal, &[View::CaseBoard], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(View::CaseBoard.name()).await?;
        let query = CaseQuery {
            offset,
            limit,
            ..sight.query(filter)
        };
        let (stored, total) = super::rows(&self.pool, &query).await?;
        let next = offset.saturating_add(i64::try_from(stored.len()).unwrap_or_default());
        Ok(pb::CaseBoard {
            rows: rows(stored, self.today()),
            total: u64::try_from(total).unwrap_or_default(),
            next_page_token: (next < total).then(|| encode_token(next)),
            stream_sequence,
            generated_at: at(self.now()),
        })
    }

    /// What a live board shows again after batches that listed these streams: the cases
    /// they touched (a case's own stream, or one of its placements'), sorted, and those of
    /// them that the caller's board holds now, with the checkpoint read before them.
    async fn case_board_changes(
        &self,
        principal: &Principal,
        filter: &CaseBoardFilter,
        listed: &Listed,
    ) -> Result<(Vec<Uuid>, Vec<pb::CaseBoardRow>, u64), QueryError> {
        let sight = board_sight(principal, filter)?;
        let mut cases = listed.cases.clone();
        let stream_sequence = self.checkpoint(View::CaseBoard.name()).await?;
        if !listed.placements.is_empty() {
            cases.extend(super::cases_of_placements(&self.pool, &listed.placements).await?);
        }
        cases.sort_unstable();
        cases.dedup();
        if cases.is_empty() {
            return Ok((cases, Vec::new(), stream_sequence));
        }
        let stored = super::rows_of(&self.pool, &sight.query(filter), &cases).await?;
        Ok((cases, rows(stored, self.today()), stream_sequence))
    }
}

impl ViewQuery for CaseBoard {
    const NAME: &'static str = "case_board";
    type Request = pb::GetCaseBoardRequest;
    type Response = pb::CaseBoard;
    type Update = pb::CaseBoardUpdate;

    fn as_of(request: &pb::GetCaseBoardRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetCaseBoardRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    /// A page of the board; audits every case on it.
    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetCaseBoardRequest,
    ) -> Result<pb::CaseBoard, QueryError> {
        let (filter, page, min_versions) = parse(request)?;
        let board = views
            .case_board_page(
                principal,
                &filter,
                page.start(),
                page.limit(),
                &min_versions,
            )
            .await?;
        views
            .audit(principal, View::CaseBoard.name(), &identified(&board.rows))
            .await?;
        Ok(board)
    }

    /// Every case matching the filter (no paging), then the cases that changed in or
    /// left it. Every case sent is audited.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetCaseBoardRequest,
    ) -> Result<Updates<pb::CaseBoardUpdate>, QueryError> {
        use pb::case_board_update::Update;
        let (filter, _, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let snapshot = views
            .case_board_page(principal, &filter, 0, i64::MAX, &min_versions)
            .await?;
        let state = |rows: &[pb::CaseBoardRow]| -> BTreeMap<String, pb::CaseBoardRow> {
            rows.iter()
                .map(|r| (r.case_id.clone(), r.clone()))
                .collect()
        };
        let mut before = state(&snapshot.rows);
        // After batches that listed their streams, only the cases they touched are read
        // again; the rest of the caller's board is as it was.
        let read = {
            let (views, principal) = (views.clone(), principal.clone());
            move |changed: Changed| {
                let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
                async move {
                    match changed {
                        Changed::Any => {
                            let board = views
                                .case_board_page(&principal, &filter, 0, i64::MAX, &[])
                                .await?;
                            Ok((None, board.rows, board.stream_sequence))
                        }
                        Changed::Streams(streams) => {
                            let (cases, rows, stream_sequence) = views
                                .case_board_changes(&principal, &filter, &Listed::from(&streams))
                                .await?;
                            Ok((Some(cases), rows, stream_sequence))
                        }
                    }
                }
            }
        };
        let next = move |(touched, rows, stream_sequence): (
            Option<Vec<Uuid>>,
            Vec<pb::CaseBoardRow>,
            u64,
        )| {
            let untouched = touched.map(|touched| {
                move |case_id: &String, _: &pb::CaseBoardRow| {
                    Uuid::parse_str(case_id).is_ok_and(|id| touched.binary_search(&id).is_err())
                }
            });
            let after = merged(&before, untouched, state(&rows));
            let changes = diff(&before, &after);
            before = after;
            let (changed, removed) = changes?;
            Some(pb::CaseBoardUpdate {
                update: Some(Update::Delta(pb::CaseBoardDelta {
                    rows: rows
                        .into_iter()
                        .filter(|r| changed.contains(&r.case_id))
                        .collect(),
                    removed,
                    stream_sequence,
                    generated_at: at(OffsetDateTime::now_utc()),
                })),
            })
        };
        let first = pb::CaseBoardUpdate {
            update: Some(Update::Snapshot(snapshot)),
        };
        let updates = follow(
            changes,
            &[<CaseBoard as Projection>::NAME],
            first,
            read,
            next,
        );
        Ok(audited(
            updates,
            views,
            principal.clone(),
            View::CaseBoard.name(),
            |update| match &update.update {
                Some(Update::Snapshot(board)) => identified(&board.rows),
                Some(Update::Delta(delta)) => identified(&delta.rows),
                None => Vec::new(),
            },
        ))
    }
}
