//! The `placement_queue` view: HQ's queue of live placements, most urgent first; a
//! health center sees its own cases'.

use std::collections::BTreeMap;

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, ViewScope, placement_queue_scope};
use noroshi_domain::values::{BedCategory, Capability, FacilityId, PlacementStatus, Vehicle};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;

use super::{PlacementQueue, QueueRow};
use crate::View;
use crate::runner::Projection;
use crate::views::live::{Changed, Listed, diff, follow, merged};
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, at, at_opt, min_versions, wire, wires,
};

/// Whose placements `principal` may see in the queue: `None` for everyone's.
fn queue_owner(principal: &Principal) -> Result<Option<FacilityId>, QueryError> {
    match placement_queue_scope(principal) {
        ViewScope::All => Ok(None),
        ViewScope::Own(owner) => Ok(Some(owner)),
        ViewScope::None => Err(QueryError::Denied),
    }
}

/// A stored row as the queue shows it, with what is derived now.
fn row(row: QueueRow, now: OffsetDateTime) -> pb::PlacementQueueRow {
    pb::PlacementQueueRow {
        waiting_seconds: (now - row.requested_at).whole_seconds(),
        hold_overdue: row.hold_overdue(now),
        placement_id: row.placement_id.to_string(),
        case_id: row.case_id.to_string(),
        case_owner: row.case_owner,
        requested_by: row.requested_by,
        category: wire(&row.category, BedCategory::parse),
        needs: wires(&row.needs, Capability::parse),
        priority: u32::try_from(row.priority).unwrap_or_default(),
        origin_kind: row.origin_kind,
        origin: row.origin,
        requested_at: at(row.requested_at),
        status: wire(&row.status, PlacementStatus::parse),
        target: row.target,
        offered_at: at_opt(row.offered_at),
        offer_deadline: at_opt(row.offer_deadline),
        hold_deadline: at_opt(row.hold_deadline),
        declined_by: row.declined_by,
        vehicle: row.vehicle.as_deref().map(|v| wire(v, Vehicle::parse)),
        priority_overridden: row.priority_overridden,
        priority_reason: row.priority_reason,
        deteriorated: row.deteriorated_at.is_some(),
        deteriorated_at: at_opt(row.deteriorated_at),
    }
}

fn rows(stored: Vec<QueueRow>, now: OffsetDateTime) -> Vec<pb::PlacementQueueRow> {
    stored.into_iter().map(|r| row(r, now)).collect()
}

impl Views {
    async fn placement_queue(
        &self,
        principal: &Principal,
        min_versions: &[(StreamId, u64)],
    ) -> Result<pb::PlacementQueue, QueryError> {
        let owner = queue_owner(principal)?;
        self.ready(principal, &[View::PlacementQueue], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(View::PlacementQueue.name()).await?;
        let stored = super::rows(&self.pool, owner.as_ref().map(|o| o.as_str())).await?;
        Ok(pb::PlacementQueue {
            rows: rows(stored, self.now()),
            stream_sequence,
            generated_at: at(self.now()),
        })
    }

    /// What a live queue shows again after batches that listed these streams: the rows
    /// of the placements they list and of every placement of the cases they list, as the
    /// caller may see them, with the checkpoint read before them.
    async fn placement_queue_changes(
        &self,
        principal: &Principal,
        listed: &Listed,
    ) -> Result<pb::PlacementQueue, QueryError> {
        let owner = queue_owner(principal)?;
        let stream_sequence = self.checkpoint(View::PlacementQueue.name()).await?;
        let stored = if listed.cases.is_empty() && listed.placements.is_empty() {
            Vec::new()
        } else {
            super::rows_of(
                &self.pool,
                owner.as_ref().map(|o| o.as_str()),
                &listed.placements,
                &listed.cases,
            )
            .await?
        };
        Ok(pb::PlacementQueue {
            rows: rows(stored, self.now()),
            stream_sequence,
            generated_at: at(self.now()),
        })
    }
}

fn request_min_versions(r: &pb::GetPlacementQueueRequest) -> Result<MinVersions, QueryError> {
    let mut v = Violations::new();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, min_versions)
}

impl ViewQuery for PlacementQueue {
    const NAME: &'static str = "placement_queue";
    type Request = pb::GetPlacementQueueRequest;
    type Response = pb::PlacementQueue;
    type Update = pb::PlacementQueueUpdate;

    fn as_of(request: &pb::GetPlacementQueueRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetPlacementQueueRequest) -> Violations {
        crate::views::violations(request_min_versions(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPlacementQueueRequest,
    ) -> Result<pb::PlacementQueue, QueryError> {
        let min_versions = request_min_versions(request)?;
        views.placement_queue(principal, &min_versions).await
    }

    /// The snapshot, then the placements that changed in or left the caller's queue.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPlacementQueueRequest,
    ) -> Result<Updates<pb::PlacementQueueUpdate>, QueryError> {
        use pb::placement_queue_update::Update;
        let min_versions = request_min_versions(request)?;
        let changes = views.subscribe().await;
        let snapshot = views.placement_queue(principal, &min_versions).await?;
        // Waiting time grows by itself; only what the queue says about a placement counts.
        let state = |rows: &[pb::PlacementQueueRow]| -> BTreeMap<String, pb::PlacementQueueRow> {
            rows.iter()
                .map(|r| {
                    let mut r = r.clone();
                    r.waiting_seconds = 0;
                    (r.placement_id.clone(), r)
                })
                .collect()
        };
        let mut before = state(&snapshot.rows);
        let (views, principal) = (views.clone(), principal.clone());
        // After batches that listed their streams, only the placements they touched are
        // read again; the rest of the caller's queue is as it was.
        let read = move |changed: Changed| {
            let (views, principal) = (views.clone(), principal.clone());
            async move {
                match changed {
                    Changed::Any => Ok((None, views.placement_queue(&principal, &[]).await?)),
                    Changed::Streams(streams) => {
                        let listed = Listed::from(&streams);
                        let view = views.placement_queue_changes(&principal, &listed).await?;
                        Ok((Some(listed), view))
                    }
                }
            }
        };
        let next = move |(listed, view): (Option<Listed>, pb::PlacementQueue)| {
            let untouched = listed.map(|listed| {
                move |placement_id: &String, row: &pb::PlacementQueueRow| {
                    !listed.has(placement_id, &row.case_id)
                }
            });
            let after = merged(&before, untouched, state(&view.rows));
            let changes = diff(&before, &after);
            before = after;
            let (changed, removed) = changes?;
            Some(pb::PlacementQueueUpdate {
                update: Some(Update::Delta(pb::PlacementQueueDelta {
                    rows: view
                        .rows
                        .into_iter()
                        .filter(|r| changed.contains(&r.placement_id))
                        .collect(),
                    removed,
                    stream_sequence: view.stream_sequence,
                    generated_at: view.generated_at,
                })),
            })
        };
        let first = pb::PlacementQueueUpdate {
            update: Some(Update::Snapshot(snapshot)),
        };
        Ok(Box::pin(follow(
            changes,
            &[<PlacementQueue as Projection>::NAME],
            first,
            read,
            next,
        )))
    }
}
