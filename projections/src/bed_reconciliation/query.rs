//! The `bed_reconciliation` view: HQ every facility's figures against what noroshi
//! knows, a facility its own. No patient data, so nothing to audit.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, ViewScope, facility_inbox_scope};
use noroshi_domain::values::{BedCategory, FacilityId};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;

use super::{BedReconciliation, Reconciled};
use crate::View;
use crate::runner::Projection;
use crate::views::live::whole;
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, at, at_opt, min_versions, wire,
};

#[derive(Debug, Clone, Default)]
struct Filter {
    facility: Option<FacilityId>,
    mismatched_only: bool,
}

fn parse(r: &pb::GetBedReconciliationRequest) -> Result<(Filter, MinVersions), QueryError> {
    let mut v = Violations::new();
    let facility = (!r.facility_id.trim().is_empty())
        .then(|| v.check("facility_id", FacilityId::parse(&r.facility_id)))
        .flatten();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(
        v,
        (
            Filter {
                facility,
                mismatched_only: r.mismatched_only,
            },
            min_versions,
        ),
    )
}

/// The facility whose rows `principal` reads (`None`: every facility): a facility its
/// own, HQ any or all; nobody else.
fn facility_of(
    principal: &Principal,
    requested: Option<&FacilityId>,
) -> Result<Option<FacilityId>, QueryError> {
    match (facility_inbox_scope(principal), requested) {
        (ViewScope::All, requested) => Ok(requested.cloned()),
        (ViewScope::Own(own), None) => Ok(Some(own)),
        (ViewScope::Own(own), Some(requested)) if *requested == own => Ok(Some(own)),
        _ => Err(QueryError::Denied),
    }
}

fn row(r: Reconciled, now: OffsetDateTime) -> pb::ReconciliationRow {
    let count = |n: i32| u32::try_from(n).unwrap_or_default();
    pb::ReconciliationRow {
        mismatched: r.disagrees(),
        facility_id: r.facility_id,
        category: wire(&r.category, BedCategory::parse),
        occupied: count(r.occupied),
        patients: count(r.patients),
        held: count(r.held),
        holds: count(r.holds),
        unplaced: i64::from(r.occupied) - i64::from(r.patients),
        mismatch_since: at_opt(r.mismatch_since),
        mismatch_seconds: r
            .mismatch_since
            .map(|since| (now - since).whole_seconds().max(0)),
    }
}

impl Views {
    async fn bed_reconciliation(
        &self,
        principal: &Principal,
        filter: &Filter,
        min_versions: &[(noroshi_event_store::StreamId, u64)],
    ) -> Result<pb::BedReconciliation, QueryError> {
        let facility = facility_of(principal, filter.facility.as_ref())?;
        self.ready(principal, &[View::BedReconciliation], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(View::BedReconciliation.name()).await?;
        let now = self.now();
        let rows: Vec<pb::ReconciliationRow> =
            super::rows(&self.pool, facility.as_ref().map(FacilityId::as_str))
                .await?
                .into_iter()
                .map(|r| row(r, now))
                .filter(|r| r.mismatched || !filter.mismatched_only)
                .collect();
        Ok(pb::BedReconciliation {
            mismatches: rows.iter().filter(|r| r.mismatched).count() as u64,
            rows,
            stream_sequence,
            generated_at: at(now),
        })
    }
}

impl ViewQuery for BedReconciliation {
    const NAME: &'static str = "bed_reconciliation";
    type Request = pb::GetBedReconciliationRequest;
    type Response = pb::BedReconciliation;
    /// The whole (small) list, each time a figure or a disagreement changed.
    type Update = pb::BedReconciliation;

    fn as_of(request: &pb::GetBedReconciliationRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetBedReconciliationRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetBedReconciliationRequest,
    ) -> Result<pb::BedReconciliation, QueryError> {
        let (filter, min_versions) = parse(request)?;
        views
            .bed_reconciliation(principal, &filter, &min_versions)
            .await
    }

    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetBedReconciliationRequest,
    ) -> Result<Updates<pb::BedReconciliation>, QueryError> {
        let (filter, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let first = views
            .bed_reconciliation(principal, &filter, &min_versions)
            .await?;
        let (views, principal) = (views.clone(), principal.clone());
        let read = move || {
            let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
            async move { views.bed_reconciliation(&principal, &filter, &[]).await }
        };
        Ok(Box::pin(whole(
            changes,
            &[<BedReconciliation as Projection>::NAME],
            first,
            read,
            // What changes it, leaving out the seconds that pass.
            |v: &pb::BedReconciliation| {
                v.rows
                    .iter()
                    .map(|r| pb::ReconciliationRow {
                        mismatch_seconds: None,
                        ..r.clone()
                    })
                    .collect::<Vec<_>>()
            },
        )))
    }
}
