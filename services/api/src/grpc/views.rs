//! `ViewService`: the read models over gRPC, with the same content as the HTTP API.

use noroshi_domain::Violations;
use noroshi_domain::values::{
    Acceptance, AcceptanceConstraint, BedCategory, Capability, CaseStatus, FacilityKind,
    MedicalAreaCode, PlacementStatus, Vehicle,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use tonic::{Request, Response, Status};

use crate::convert::enums::WireEnum;
use crate::convert::fields::{enum_set, finish, optional, to_timestamp};
use crate::error::ApiError;
use crate::views::{
    AreaStats, BedBoardDelta, BedBoardFilter, BedBoardRowView, BedBoardUpdate, BedBoardView,
    BedTotalsView, PlacementQueueView, PublicStatsView,
};

#[derive(Debug)]
pub(super) struct Views(pub(super) super::GrpcContext);

type Updates<T> = std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl pb::view_service_server::ViewService for Views {
    type WatchBedBoardStream = Updates<pb::BedBoardUpdate>;

    async fn watch_bed_board(
        &self,
        request: Request<pb::GetBedBoardRequest>,
    ) -> Result<Response<Self::WatchBedBoardStream>, Status> {
        use futures_util::StreamExt;
        let principal = self.0.tokens.authenticate(request.metadata())?;
        let (filter, min_versions) = bed_board_request(&request.into_inner())?;
        let updates = self
            .0
            .views
            .watch_bed_board(principal, filter, &min_versions)
            .await?;
        let updates = updates.map(|update| update.map(bed_board_update).map_err(Status::from));
        Ok(Response::new(Box::pin(updates)))
    }

    async fn get_bed_board(
        &self,
        request: Request<pb::GetBedBoardRequest>,
    ) -> Result<Response<pb::BedBoard>, Status> {
        let principal = self.0.tokens.authenticate(request.metadata())?;
        let (filter, min_versions) = bed_board_request(&request.into_inner())?;
        let view = self
            .0
            .views
            .bed_board(&principal, &filter, &min_versions)
            .await?;
        Ok(Response::new(bed_board(view)))
    }

    async fn get_placement_queue(
        &self,
        request: Request<pb::GetPlacementQueueRequest>,
    ) -> Result<Response<pb::PlacementQueue>, Status> {
        let principal = self.0.tokens.authenticate(request.metadata())?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
        let min_versions = finish(v, Some(min_versions))?;
        let view = self
            .0
            .views
            .placement_queue(&principal, &min_versions)
            .await?;
        Ok(Response::new(placement_queue(view)))
    }

    async fn get_public_stats(
        &self,
        request: Request<pb::GetPublicStatsRequest>,
    ) -> Result<Response<pb::PublicStats>, Status> {
        self.0.tokens.authenticate(request.metadata())?;
        let r = request.into_inner();
        let mut v = Violations::new();
        let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
        let min_versions = finish(v, Some(min_versions))?;
        let view = self.0.views.public_stats(&min_versions).await?;
        Ok(Response::new(public_stats(view)))
    }
}

/// The filters and `min_versions` of a bed board request, each checked.
fn bed_board_request(
    r: &pb::GetBedBoardRequest,
) -> Result<(BedBoardFilter, Vec<(StreamId, u64)>), ApiError> {
    let mut v = Violations::new();
    let filter = BedBoardFilter {
        medical_area: optional(
            &r.medical_area,
            "medical_area",
            MedicalAreaCode::parse,
            &mut v,
        ),
        categories: enum_set(&r.categories, "categories", &mut v),
    };
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    finish(v, Some((filter, min_versions)))
}

fn bed_board_update(update: BedBoardUpdate) -> pb::BedBoardUpdate {
    use pb::bed_board_update::Update;
    let update = match update {
        crate::views::Update::Snapshot(view) => Update::Snapshot(bed_board(view)),
        crate::views::Update::Delta(delta) => Update::Delta(bed_board_delta(delta)),
    };
    pb::BedBoardUpdate {
        update: Some(update),
    }
}

fn bed_board_delta(delta: BedBoardDelta) -> pb::BedBoardDelta {
    pb::BedBoardDelta {
        rows: delta.rows.into_iter().map(bed_board_row).collect(),
        removed: delta
            .removed
            .into_iter()
            .map(|(facility_id, category)| pb::BedBoardKey {
                facility_id,
                category: wire(&category, BedCategory::parse),
            })
            .collect(),
        areas: delta.areas.into_iter().map(totals).collect(),
        prefecture: Some(totals(delta.prefecture)),
        stream_sequence: delta.stream_sequence,
        generated_at: Some(to_timestamp(delta.generated_at)),
    }
}

/// The `(stream, version)` pairs of a request, each checked.
fn min_versions(
    min_versions: Option<&pb::MinVersions>,
    violations: &mut Violations,
) -> Vec<(StreamId, u64)> {
    min_versions
        .map(|m| m.streams.as_slice())
        .unwrap_or_default()
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            violations
                .check(
                    format!("min_versions.streams[{i}].stream_id"),
                    StreamId::parse(&s.stream_id),
                )
                .map(|stream| (stream, s.version))
        })
        .collect()
}

/// The wire number of a domain enum named as the read model stores it.
fn wire<T: WireEnum>(name: &str, parse: impl Fn(&str) -> Option<T>) -> i32 {
    parse(name).map_or(0, WireEnum::to_wire)
}

fn totals(t: BedTotalsView) -> pb::BedTotals {
    pb::BedTotals {
        medical_area: t.medical_area.unwrap_or_default(),
        secured: t.secured,
        ready: t.ready,
        occupied: t.occupied,
        held: t.held,
        available: t.available,
        occupancy_rate: t.occupancy_rate,
    }
}

fn bed_board_row(view: BedBoardRowView) -> pb::BedBoardRow {
    let row = view.row;
    pb::BedBoardRow {
        kind: wire(&row.kind, FacilityKind::parse),
        category: wire(&row.category, BedCategory::parse),
        acceptance: wire(&row.acceptance, Acceptance::parse),
        constraints: row
            .constraints
            .iter()
            .map(|c| wire(c, AcceptanceConstraint::parse))
            .collect(),
        declared_at: row.declared_at.map(to_timestamp),
        facility_id: row.facility_id,
        name: row.name,
        name_en: row.name_en.unwrap_or_default(),
        medical_area: row.medical_area.unwrap_or_default(),
        municipality: row.municipality,
        active: row.active,
        secured: row.secured,
        ready: row.ready,
        occupied: row.occupied,
        held: row.held,
        available: view.available,
        stale: view.stale,
        overflow: view.overflow,
        proxy_by: row.proxy_by.unwrap_or_default(),
    }
}

fn bed_board(view: BedBoardView) -> pb::BedBoard {
    pb::BedBoard {
        rows: view.rows.into_iter().map(bed_board_row).collect(),
        areas: view.areas.into_iter().map(totals).collect(),
        prefecture: Some(totals(view.prefecture)),
        occupancy_definition: view.occupancy_definition.into(),
        stream_sequence: view.stream_sequence,
        stale_after_seconds: u64::try_from(view.stale_after_seconds).unwrap_or_default(),
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}

fn placement_queue(view: PlacementQueueView) -> pb::PlacementQueue {
    pb::PlacementQueue {
        rows: view
            .rows
            .into_iter()
            .map(|view| {
                let row = view.row;
                pb::PlacementQueueRow {
                    placement_id: row.placement_id.to_string(),
                    case_id: row.case_id.to_string(),
                    case_owner: row.case_owner.unwrap_or_default(),
                    requested_by: row.requested_by,
                    category: wire(&row.category, BedCategory::parse),
                    needs: row
                        .needs
                        .iter()
                        .map(|n| wire(n, Capability::parse))
                        .collect(),
                    priority: u32::try_from(row.priority).unwrap_or_default(),
                    origin_kind: row.origin_kind,
                    origin: row.origin,
                    requested_at: Some(to_timestamp(row.requested_at)),
                    status: wire(&row.status, PlacementStatus::parse),
                    target: row.target.unwrap_or_default(),
                    offered_at: row.offered_at.map(to_timestamp),
                    offer_deadline: row.offer_deadline.map(to_timestamp),
                    hold_deadline: row.hold_deadline.map(to_timestamp),
                    declined_by: row.declined_by,
                    vehicle: row
                        .vehicle
                        .as_deref()
                        .map_or(0, |v| wire(v, Vehicle::parse)),
                    waiting_seconds: view.waiting_seconds,
                    hold_overdue: view.hold_overdue,
                }
            })
            .collect(),
        stream_sequence: view.stream_sequence,
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}

fn area_stats(area: AreaStats) -> pb::AreaStats {
    pb::AreaStats {
        medical_area: area.medical_area.unwrap_or_default(),
        beds: area
            .beds
            .into_iter()
            .map(|b| pb::CategoryStats {
                category: wire(&b.category, BedCategory::parse),
                secured: b.secured,
                ready: b.ready,
                occupied: b.occupied,
                available: b.available,
            })
            .collect(),
        occupancy_rate: area.occupancy_rate,
        cases: area
            .cases
            .into_iter()
            .map(|c| pb::StatusCount {
                status: wire(&c.status, CaseStatus::parse),
                count: c.count,
            })
            .collect(),
    }
}

fn public_stats(view: PublicStatsView) -> pb::PublicStats {
    pb::PublicStats {
        areas: view.areas.into_iter().map(area_stats).collect(),
        prefecture: Some(area_stats(view.prefecture)),
        occupancy_definition: view.occupancy_definition.into(),
        suppress_below: view.suppress_below,
        stream_sequence: view.stream_sequence,
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}
