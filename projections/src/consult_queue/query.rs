//! The `consult_queue` view: each reader's consults, identified or de-identified as the
//! domain says (`authz::consult_sight`); every identified patient sent is audited.

use std::collections::{BTreeMap, BTreeSet};

use noroshi_codec::WireEnum;
use noroshi_domain::Violations;
use noroshi_domain::authz::{ConsultSight, Principal, Target, consult_sight, may_read_consults};
use noroshi_domain::values::{
    ConsultMode, ConsultStatus, ConsultUrgency, FacilityId, Recommendation, Severity, Sex,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{CaseFacts, ConsultQueue, ConsultRow};
use crate::View;
use crate::runner::Projection;
use crate::views::live::{audited, whole_list};
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, age_band, age_on, at, at_opt, min_versions,
    wire,
};

/// What a reader asks of the queue.
#[derive(Debug, Clone, Default)]
struct Filter {
    statuses: BTreeSet<ConsultStatus>,
}

fn parse(r: &pb::GetConsultQueueRequest) -> Result<(Filter, MinVersions), QueryError> {
    let mut v = Violations::new();
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| v.check(format!("statuses[{i}]"), ConsultStatus::from_wire(s)))
        .collect();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, (Filter { statuses }, min_versions))
}

fn facility(id: &str) -> Option<FacilityId> {
    FacilityId::parse(id).ok()
}

/// The row `principal` may see of a consult, or `None`.
fn row(
    principal: &Principal,
    consult: &ConsultRow,
    case: Option<&CaseFacts>,
    areas: &BTreeMap<String, String>,
    now: OffsetDateTime,
    today: Date,
) -> Option<pb::ConsultRow> {
    let (requester, owner) = (
        facility(&consult.requested_by)?,
        facility(&consult.case_owner)?,
    );
    let (patient_at, center, addressed) = (
        consult.patient_at.as_deref().and_then(facility),
        consult.center.as_deref().and_then(facility),
        consult.addressed_to.as_deref().and_then(facility),
    );
    let target = Target {
        case_owner: Some(&owner),
        patient_at: patient_at.as_ref(),
        consult_requester: Some(&requester),
        consult_center: center.as_ref(),
        ..Target::UNKNOWN
    };
    let sight = consult_sight(
        principal,
        &target,
        addressed.as_ref(),
        consult.status == "REQUESTED",
    );
    if sight == ConsultSight::Hidden {
        return None;
    }
    let identified = sight == ConsultSight::Identified;
    let shown = |value: Option<String>| value.filter(|_| identified);
    let age = case.map(|c| age_on(c.birth_date, today));
    Some(pb::ConsultRow {
        consult_id: consult.consult_id.to_string(),
        status: wire(&consult.status, ConsultStatus::parse),
        mode: wire(&consult.mode, ConsultMode::parse),
        urgency: wire(&consult.urgency, ConsultUrgency::parse),
        requested_at: at(consult.requested_at),
        waiting_seconds: (now - consult.requested_at).whole_seconds(),
        requested_by: consult.requested_by.clone(),
        origin_area: areas
            .get(&consult.requested_by)
            .or_else(|| areas.get(&consult.case_owner))
            .cloned(),
        addressed_to: consult.addressed_to.clone(),
        center: consult.center.clone(),
        scheduled_for: at_opt(consult.scheduled_for),
        doctor: consult.doctor.clone(),
        preferred_from: at_opt(consult.preferred_from),
        preferred_until: at_opt(consult.preferred_until),
        sex: case.map_or(0, |c| wire(&c.sex, Sex::parse)),
        age_band: age.map(age_band).unwrap_or_default(),
        severity: case.map_or(0, |c| wire(&c.severity, Severity::parse)),
        last_spo2: case
            .and_then(|c| c.last_spo2)
            .and_then(|v| u32::try_from(v).ok()),
        deteriorated: case.is_some_and(|c| c.deteriorated_at.is_some()),
        identified,
        case_id: shown(Some(consult.case_id.to_string())),
        name: shown(case.map(|c| c.name.clone())),
        name_kana: shown(case.and_then(|c| c.name_kana.clone())),
        age: age.filter(|_| identified),
        question: shown(Some(consult.question.clone())),
        contact: shown(Some(consult.contact.clone())),
        recommendation: consult
            .recommendation
            .as_deref()
            .filter(|_| identified)
            .map(|r| wire(r, Recommendation::parse)),
        findings: shown(consult.findings.clone()),
        follow_up_at: at_opt(consult.follow_up_at.filter(|_| identified)),
        escalated_to: shown(consult.escalated_to.map(|p| p.to_string())),
        closed_at: at_opt(consult.closed_at),
        case_owner: shown(Some(consult.case_owner.clone())),
    })
}

/// The patients a queue identifies, for the audit log.
fn identified(rows: &[pb::ConsultRow]) -> Vec<Uuid> {
    rows.iter()
        .filter_map(|r| r.case_id.as_deref())
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

impl Views {
    /// The queue as `principal` may see it, unaudited.
    async fn consult_queue(
        &self,
        principal: &Principal,
        filter: &Filter,
        min_versions: &[(StreamId, u64)],
    ) -> Result<pb::ConsultQueue, QueryError> {
        if !may_read_consults(principal) {
            return Err(QueryError::Denied);
        }
        self.ready(principal, &[View::ConsultQueue], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(View::ConsultQueue.name()).await?;
        let now = self.now();
        let stored = super::rows(&self.pool, now).await?;
        let areas: BTreeMap<String, String> = crate::bed_board::facility_names(&self.pool)
            .await?
            .into_iter()
            .filter_map(|f| Some((f.facility_id, f.medical_area?)))
            .collect();
        let today = self.today();
        let rows = stored
            .iter()
            .filter(|(consult, _)| {
                filter.statuses.is_empty()
                    || ConsultStatus::parse(&consult.status)
                        .is_some_and(|s| filter.statuses.contains(&s))
            })
            .filter_map(|(consult, case)| {
                row(principal, consult, case.as_ref(), &areas, now, today)
            })
            .collect();
        Ok(pb::ConsultQueue {
            rows,
            stream_sequence,
            generated_at: at(now),
        })
    }
}

impl ViewQuery for ConsultQueue {
    const NAME: &'static str = "consult_queue";
    type Request = pb::GetConsultQueueRequest;
    type Response = pb::ConsultQueue;
    type Update = pb::ConsultQueueUpdate;

    fn as_of(request: &pb::GetConsultQueueRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetConsultQueueRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    /// The queue; audits every identified patient.
    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetConsultQueueRequest,
    ) -> Result<pb::ConsultQueue, QueryError> {
        let (filter, min_versions) = parse(request)?;
        let queue = views
            .consult_queue(principal, &filter, &min_versions)
            .await?;
        views
            .audit(
                principal,
                View::ConsultQueue.name(),
                &identified(&queue.rows),
            )
            .await?;
        Ok(queue)
    }

    /// The queue, then the consults that changed in or left it, read again whole (the
    /// queue is small: open consults and a day of closed ones) after each batch of the
    /// projection, and filtered exactly as the snapshot. Every identified patient sent is
    /// audited.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetConsultQueueRequest,
    ) -> Result<Updates<pb::ConsultQueueUpdate>, QueryError> {
        use pb::consult_queue_update::Update;
        let (filter, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let snapshot = views
            .consult_queue(principal, &filter, &min_versions)
            .await?;
        let (reader, who) = (views.clone(), principal.clone());
        let updates = whole_list(
            changes,
            &[<ConsultQueue as Projection>::NAME],
            snapshot,
            // Waiting time grows by itself; only what the queue says about a consult counts.
            |queue: &pb::ConsultQueue| {
                queue
                    .rows
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.waiting_seconds = 0;
                        (r.consult_id.clone(), r)
                    })
                    .collect()
            },
            |snapshot| pb::ConsultQueueUpdate {
                update: Some(Update::Snapshot(snapshot)),
            },
            move || {
                let (views, principal, filter) = (reader.clone(), who.clone(), filter.clone());
                async move { views.consult_queue(&principal, &filter, &[]).await }
            },
            |queue: pb::ConsultQueue, changed, removed| pb::ConsultQueueUpdate {
                update: Some(Update::Delta(pb::ConsultQueueDelta {
                    rows: queue
                        .rows
                        .into_iter()
                        .filter(|r| changed.contains(&r.consult_id))
                        .collect(),
                    removed,
                    stream_sequence: queue.stream_sequence,
                    generated_at: queue.generated_at,
                })),
            },
        );
        Ok(audited(
            updates,
            views,
            principal.clone(),
            View::ConsultQueue.name(),
            |update: &pb::ConsultQueueUpdate| match &update.update {
                Some(Update::Snapshot(queue)) => identified(&queue.rows),
                Some(Update::Delta(delta)) => identified(&delta.rows),
                None => Vec::new(),
            },
        ))
    }
}
