//! `ViewService`: the read models over gRPC, with the same content as the HTTP API.

use noroshi_domain::Violations;
use noroshi_domain::values::{
    Acceptance, AcceptanceConstraint, BedCategory, Capability, CaseStatus, FacilityId,
    FacilityKind, MedicalAreaCode, PlacementStatus, RiskFactor, Severity, Sex, Vehicle,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use tonic::{Request, Response, Status};

use noroshi_codec::WireEnum;
use noroshi_codec::timestamps::to_timestamp;

use crate::convert::fields::{enum_set, finish, optional};
use crate::error::ApiError;
use crate::views::{
    AreaStats, BedBoardDelta, BedBoardFilter, BedBoardRowView, BedBoardUpdate, BedBoardView,
    BedTotalsView, CaseBoardFilter, CaseBoardUpdate, CaseBoardView, CaseRowView,
    FacilityInboxUpdate, FacilityInboxView, InboundView, MinVersions, OfferView, Page,
    PlacementQueueUpdate, PlacementQueueView, PublicStatsView, TimelineSubject, TimelineUpdate,
    TimelineView, Update,
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
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (filter, min_versions) = bed_board_request(&request.into_inner())?;
        let updates = self
            .0
            .views
            .watch_bed_board(principal, filter, &min_versions)
            .await?;
        Ok(streamed(updates, bed_board_update))
    }

    async fn get_bed_board(
        &self,
        request: Request<pb::GetBedBoardRequest>,
    ) -> Result<Response<pb::BedBoard>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
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
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let min_versions = only_min_versions(request.get_ref().min_versions.as_ref())?;
        let view = self
            .0
            .views
            .placement_queue(&principal, &min_versions)
            .await?;
        Ok(Response::new(placement_queue(view)))
    }

    type WatchPlacementQueueStream = Updates<pb::PlacementQueueUpdate>;

    async fn watch_placement_queue(
        &self,
        request: Request<pb::GetPlacementQueueRequest>,
    ) -> Result<Response<Self::WatchPlacementQueueStream>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let min_versions = only_min_versions(request.get_ref().min_versions.as_ref())?;
        let updates = self
            .0
            .views
            .watch_placement_queue(principal, &min_versions)
            .await?;
        Ok(streamed(updates, placement_queue_update))
    }

    async fn get_case_board(
        &self,
        request: Request<pb::GetCaseBoardRequest>,
    ) -> Result<Response<pb::CaseBoard>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (filter, page, min_versions) = case_board_request(request.get_ref())?;
        let view = self
            .0
            .views
            .case_board(&principal, &filter, &page, &min_versions)
            .await?;
        Ok(Response::new(case_board(view)))
    }

    type WatchCaseBoardStream = Updates<pb::CaseBoardUpdate>;

    async fn watch_case_board(
        &self,
        request: Request<pb::GetCaseBoardRequest>,
    ) -> Result<Response<Self::WatchCaseBoardStream>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (filter, _, min_versions) = case_board_request(request.get_ref())?;
        let updates = self
            .0
            .views
            .watch_case_board(principal, filter, &min_versions)
            .await?;
        Ok(streamed(updates, case_board_update))
    }

    async fn get_facility_inbox(
        &self,
        request: Request<pb::GetFacilityInboxRequest>,
    ) -> Result<Response<pb::FacilityInbox>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (facility, min_versions) = facility_inbox_request(request.get_ref())?;
        let view = self
            .0
            .views
            .facility_inbox(&principal, facility.as_ref(), &min_versions)
            .await?;
        Ok(Response::new(facility_inbox(view)))
    }

    type WatchFacilityInboxStream = Updates<pb::FacilityInboxUpdate>;

    async fn watch_facility_inbox(
        &self,
        request: Request<pb::GetFacilityInboxRequest>,
    ) -> Result<Response<Self::WatchFacilityInboxStream>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (facility, min_versions) = facility_inbox_request(request.get_ref())?;
        let updates = self
            .0
            .views
            .watch_facility_inbox(principal, facility, &min_versions)
            .await?;
        Ok(streamed(updates, facility_inbox_update))
    }

    async fn get_timeline(
        &self,
        request: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<pb::Timeline>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (subject, page, min_versions) = timeline_request(request.get_ref())?;
        let view = self
            .0
            .views
            .timeline(&principal, subject, &page, &min_versions)
            .await?;
        Ok(Response::new(timeline(view)))
    }

    type WatchTimelineStream = Updates<pb::TimelineUpdate>;

    async fn watch_timeline(
        &self,
        request: Request<pb::GetTimelineRequest>,
    ) -> Result<Response<Self::WatchTimelineStream>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let (subject, _, min_versions) = timeline_request(request.get_ref())?;
        let updates = self
            .0
            .views
            .watch_timeline(principal, subject, &min_versions)
            .await?;
        Ok(streamed(updates, timeline_update))
    }

    type WatchPublicStatsStream = Updates<pb::PublicStats>;

    async fn watch_public_stats(
        &self,
        request: Request<pb::GetPublicStatsRequest>,
    ) -> Result<Response<Self::WatchPublicStatsStream>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let min_versions = only_min_versions(request.get_ref().min_versions.as_ref())?;
        let updates = self
            .0
            .views
            .watch_public_stats(principal, &min_versions)
            .await?;
        Ok(streamed(updates, public_stats))
    }

    async fn get_public_stats(
        &self,
        request: Request<pb::GetPublicStatsRequest>,
    ) -> Result<Response<pb::PublicStats>, Status> {
        let principal = super::principal(&request, noroshi_identity::Scope::Views)?;
        let min_versions = only_min_versions(request.get_ref().min_versions.as_ref())?;
        let view = self.0.views.public_stats(&principal, &min_versions).await?;
        Ok(Response::new(public_stats(view)))
    }
}

/// The `min_versions` of a request that has nothing else, checked.
fn only_min_versions(requested: Option<&pb::MinVersions>) -> Result<MinVersions, ApiError> {
    let mut v = Violations::new();
    let checked = min_versions(requested, &mut v);
    finish(v, Some(checked))
}

/// A view's updates as a gRPC server stream.
fn streamed<U, M>(
    updates: impl futures_util::Stream<Item = Result<U, ApiError>> + Send + 'static,
    convert: fn(U) -> M,
) -> Response<Updates<M>>
where
    U: 'static,
    M: Send + 'static,
{
    use futures_util::StreamExt;
    Response::new(Box::pin(
        updates.map(move |update| update.map(convert).map_err(Status::from)),
    ))
}

fn case_board_request(
    r: &pb::GetCaseBoardRequest,
) -> Result<(CaseBoardFilter, Page, MinVersions), ApiError> {
    let mut v = Violations::new();
    let filter = CaseBoardFilter {
        statuses: enum_set(&r.statuses, "statuses", &mut v),
        health_center: optional(
            &r.health_center_id,
            "health_center_id",
            FacilityId::parse,
            &mut v,
        ),
    };
    let page = Page::parse(r.page_size, &r.page_token, &mut v);
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    finish(v, Some((filter, page, min_versions)))
}

fn facility_inbox_request(
    r: &pb::GetFacilityInboxRequest,
) -> Result<(Option<FacilityId>, MinVersions), ApiError> {
    let mut v = Violations::new();
    let facility = optional(&r.facility_id, "facility_id", FacilityId::parse, &mut v);
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    finish(v, Some((facility, min_versions)))
}

fn timeline_request(
    r: &pb::GetTimelineRequest,
) -> Result<(TimelineSubject, Page, MinVersions), ApiError> {
    use pb::get_timeline_request::Subject;
    let mut v = Violations::new();
    let subject = match &r.subject {
        Some(Subject::CaseId(id)) => v
            .check("case_id", uuid::Uuid::parse_str(id))
            .map(TimelineSubject::Case),
        Some(Subject::PlacementId(id)) => v
            .check("placement_id", uuid::Uuid::parse_str(id))
            .map(TimelineSubject::Placement),
        None => {
            v.add(
                "case_id",
                "name the case_id or placement_id whose timeline to read",
            );
            None
        }
    };
    let page = Page::parse(r.page_size, &r.page_token, &mut v);
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    finish(v, subject.map(|subject| (subject, page, min_versions)))
}

fn timestamp_opt(at: Option<time::OffsetDateTime>) -> Option<prost_types::Timestamp> {
    at.map(to_timestamp)
}

fn wires<T: WireEnum>(names: &[String], parse: impl Fn(&str) -> Option<T>) -> Vec<i32> {
    names.iter().map(|n| wire(n, &parse)).collect()
}

fn case_row(view: CaseRowView) -> pb::CaseBoardRow {
    let row = view.row;
    pb::CaseBoardRow {
        case_id: row.case_id.to_string(),
        health_center_id: row.health_center_id,
        external_ref: row.external_ref.unwrap_or_default(),
        name: row.name,
        name_kana: row.name_kana.unwrap_or_default(),
        birth_date: row.birth_date.to_string(),
        age: view.age,
        sex: wire(&row.sex, Sex::parse),
        municipality: row.municipality,
        risk_factors: wires(&row.risk_factors, RiskFactor::parse),
        severity: wire(&row.severity, Severity::parse),
        needs: wires(&row.needs, Capability::parse),
        priority: u32::try_from(row.priority).unwrap_or_default(),
        priority_overridden: row.priority_overridden,
        status: wire(&row.status, CaseStatus::parse),
        reported_at: Some(to_timestamp(row.reported_at)),
        last_observed_at: timestamp_opt(row.last_observed_at),
        last_spo2: row.last_spo2.and_then(|v| u32::try_from(v).ok()),
        last_temperature: row.last_temperature.and_then(|v| u32::try_from(v).ok()),
        last_on_oxygen: row.last_on_oxygen.unwrap_or_default(),
        deteriorated: view.deteriorated,
        deteriorated_at: timestamp_opt(row.deteriorated_at),
        placement_id: row
            .placement_id
            .map(|id| id.to_string())
            .unwrap_or_default(),
        placement_status: row.placement_status.unwrap_or_default(),
        placement_target: row.placement_target.unwrap_or_default(),
        closed_at: timestamp_opt(row.closed_at),
    }
}

fn case_board(view: CaseBoardView) -> pb::CaseBoard {
    pb::CaseBoard {
        rows: view.rows.into_iter().map(case_row).collect(),
        total: u64::try_from(view.total).unwrap_or_default(),
        next_page_token: view.next_page_token.unwrap_or_default(),
        stream_sequence: view.stream_sequence,
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}

fn case_board_update(update: CaseBoardUpdate) -> pb::CaseBoardUpdate {
    use pb::case_board_update::Update as U;
    pb::CaseBoardUpdate {
        update: Some(match update {
            Update::Snapshot(view) => U::Snapshot(case_board(view)),
            Update::Delta(delta) => U::Delta(pb::CaseBoardDelta {
                rows: delta.rows.into_iter().map(case_row).collect(),
                removed: delta.removed.iter().map(ToString::to_string).collect(),
                stream_sequence: delta.stream_sequence,
                generated_at: Some(to_timestamp(delta.generated_at)),
            }),
        }),
    }
}

fn offer(o: OfferView) -> pb::InboxOffer {
    pb::InboxOffer {
        placement_id: o.placement_id.to_string(),
        category: wire(&o.category, BedCategory::parse),
        needs: wires(&o.needs, Capability::parse),
        priority: u32::try_from(o.priority).unwrap_or_default(),
        age_band: o.age_band,
        sex: wire(&o.sex, Sex::parse),
        severity: wire(&o.severity, Severity::parse),
        origin_kind: o.origin_kind,
        origin_area: o.origin_area.unwrap_or_default(),
        offered_at: timestamp_opt(o.offered_at),
        offer_deadline: timestamp_opt(o.offer_deadline),
    }
}

fn patient(p: InboundView) -> pb::InboxPatient {
    pb::InboxPatient {
        placement_id: p.placement_id.to_string(),
        case_id: p.case_id.to_string(),
        status: wire(&p.status, PlacementStatus::parse),
        category: wire(&p.category, BedCategory::parse),
        needs: wires(&p.needs, Capability::parse),
        priority: u32::try_from(p.priority).unwrap_or_default(),
        name: p.name,
        name_kana: p.name_kana.unwrap_or_default(),
        birth_date: p.birth_date.to_string(),
        age: p.age,
        sex: wire(&p.sex, Sex::parse),
        phone: p.phone.unwrap_or_default(),
        severity: wire(&p.severity, Severity::parse),
        origin_kind: p.origin_kind,
        origin_area: p.origin_area.unwrap_or_default(),
        accepted_at: timestamp_opt(p.accepted_at),
        hold_deadline: timestamp_opt(p.hold_deadline),
        hold_overdue: p.hold_overdue,
        vehicle: p.vehicle.as_deref().map_or(0, |v| wire(v, Vehicle::parse)),
        pickup_at: timestamp_opt(p.pickup_at),
        arrived_at: timestamp_opt(p.arrived_at),
    }
}

fn facility_inbox(view: FacilityInboxView) -> pb::FacilityInbox {
    pb::FacilityInbox {
        facility_id: view.facility_id,
        offers: view.offers.into_iter().map(offer).collect(),
        inbound: view.inbound.into_iter().map(patient).collect(),
        placed: view.placed.into_iter().map(patient).collect(),
        capacity: view.capacity.into_iter().map(bed_board_row).collect(),
        stream_sequence: view.stream_sequence,
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}

fn facility_inbox_update(update: FacilityInboxUpdate) -> pb::FacilityInboxUpdate {
    use pb::facility_inbox_update::Update as U;
    pb::FacilityInboxUpdate {
        update: Some(match update {
            Update::Snapshot(view) => U::Snapshot(facility_inbox(view)),
            Update::Delta(view) => U::Delta(facility_inbox(view)),
        }),
    }
}

fn timeline(view: TimelineView) -> pb::Timeline {
    pb::Timeline {
        kind: view.kind.into(),
        subject_id: view.subject_id.to_string(),
        entries: view
            .entries
            .into_iter()
            .map(|e| pb::TimelineEntry {
                position: u64::try_from(e.position).unwrap_or_default(),
                stream_id: e.stream_id,
                version: u64::try_from(e.version).unwrap_or_default(),
                event_type: e.event_type,
                actor: e.actor,
                correlation_id: e.correlation_id.to_string(),
                occurred_at: Some(to_timestamp(e.occurred_at)),
                recorded_at: Some(to_timestamp(e.recorded_at)),
                facility_id: e.facility_id.unwrap_or_default(),
                status: e.status.unwrap_or_default(),
                priority: e
                    .priority
                    .and_then(|p| u32::try_from(p).ok())
                    .unwrap_or_default(),
                reason: e.reason.unwrap_or_default(),
            })
            .collect(),
        next_page_token: view.next_page_token.unwrap_or_default(),
        stream_sequence: view.stream_sequence,
        generated_at: Some(to_timestamp(view.generated_at)),
    }
}

fn timeline_update(update: TimelineUpdate) -> pb::TimelineUpdate {
    use pb::timeline_update::Update as U;
    pb::TimelineUpdate {
        update: Some(match update {
            Update::Snapshot(view) => U::Snapshot(timeline(view)),
            Update::Delta(view) => U::Delta(timeline(view)),
        }),
    }
}

fn placement_queue_update(update: PlacementQueueUpdate) -> pb::PlacementQueueUpdate {
    use pb::placement_queue_update::Update as U;
    pb::PlacementQueueUpdate {
        update: Some(match update {
            Update::Snapshot(view) => U::Snapshot(placement_queue(view)),
            Update::Delta(delta) => {
                let rows = placement_queue(PlacementQueueView {
                    rows: delta.rows,
                    stream_sequence: delta.stream_sequence,
                    generated_at: delta.generated_at,
                });
                U::Delta(pb::PlacementQueueDelta {
                    rows: rows.rows,
                    removed: delta.removed.iter().map(ToString::to_string).collect(),
                    stream_sequence: delta.stream_sequence,
                    generated_at: Some(to_timestamp(delta.generated_at)),
                })
            }
        }),
    }
}

/// The filters and `min_versions` of a bed board request, each checked.
fn bed_board_request(
    r: &pb::GetBedBoardRequest,
) -> Result<(BedBoardFilter, MinVersions), ApiError> {
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
                    priority_overridden: row.priority_overridden,
                    priority_reason: row.priority_reason.unwrap_or_default(),
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
