//! The `bed_board` view: a row per (facility, category) with every figure of DESIGN.md
//! §5.1, staleness and overflow, and the totals per medical area and prefecture.

use std::collections::{BTreeMap, BTreeSet};

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, ViewScope, bed_board_scope};
use noroshi_domain::streams;
use noroshi_domain::values::{
    Acceptance, AcceptanceConstraint, BedCategory, FacilityKind, MedicalAreaCode,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;

use super::{BedBoard, BedRow, OCCUPANCY_DEFINITION, Totals};
use crate::View;
use crate::runner::Projection;
use crate::views::live::{Changed, diff, follow, merged};
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, at, at_opt, min_versions, wire,
};

/// The rows a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct BedBoardFilter {
    pub medical_area: Option<MedicalAreaCode>,
    /// Empty: every category.
    pub categories: BTreeSet<i32>,
}

impl BedBoardFilter {
    fn parse(r: &pb::GetBedBoardRequest) -> Result<(Self, MinVersions), QueryError> {
        let mut v = Violations::new();
        let medical_area = (!r.medical_area.trim().is_empty())
            .then(|| v.check("medical_area", MedicalAreaCode::parse(&r.medical_area)))
            .flatten();
        for (i, &category) in r.categories.iter().enumerate() {
            v.check(
                format!("categories[{i}]"),
                <BedCategory as noroshi_codec::WireEnum>::from_wire(category),
            );
        }
        let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
        let filter = Self {
            medical_area,
            categories: r.categories.iter().copied().collect(),
        };
        QueryError::check(v, (filter, min_versions))
    }

    fn admits(&self, row: &pb::BedBoardRow) -> bool {
        self.medical_area
            .as_ref()
            .is_none_or(|area| row.medical_area.as_deref() == Some(area.as_str()))
            && (self.categories.is_empty() || self.categories.contains(&row.category))
    }
}

type RowKey = (String, i32);

fn keyed(rows: impl IntoIterator<Item = pb::BedBoardRow>) -> BTreeMap<RowKey, pb::BedBoardRow> {
    rows.into_iter()
        .map(|r| ((r.facility_id.clone(), r.category), r))
        .collect()
}

/// A stored row as the view shows it, with what is derived now.
pub(crate) fn row(
    row: BedRow,
    now: OffsetDateTime,
    stale_after: time::Duration,
) -> pb::BedBoardRow {
    pb::BedBoardRow {
        kind: wire(&row.kind, FacilityKind::parse),
        category: wire(&row.category, BedCategory::parse),
        acceptance: wire(&row.acceptance, Acceptance::parse),
        constraints: row
            .constraints
            .iter()
            .map(|c| wire(c, AcceptanceConstraint::parse))
            .collect(),
        declared_at: at_opt(row.declared_at),
        available: row.available(),
        stale: row.stale(now, stale_after),
        overflow: row.overflow(),
        facility_id: row.facility_id,
        name: row.name,
        name_en: row.name_en,
        medical_area: row.medical_area,
        municipality: row.municipality,
        active: row.active,
        secured: row.secured,
        ready: row.ready,
        occupied: row.occupied,
        held: row.held,
        proxy_by: row.proxy_by,
    }
}

fn totals_message(medical_area: Option<String>, totals: &Totals) -> pb::BedTotals {
    pb::BedTotals {
        medical_area,
        secured: totals.secured,
        ready: totals.ready,
        occupied: totals.occupied,
        held: totals.held,
        available: totals.available,
        occupancy_rate: totals.occupancy_rate(),
    }
}

/// The totals per medical area (facilities without one count only in the prefecture)
/// and for the prefecture of `rows`.
pub(crate) fn totals<'a>(
    rows: impl IntoIterator<Item = &'a pb::BedBoardRow>,
) -> (Vec<pb::BedTotals>, pb::BedTotals) {
    let mut areas: BTreeMap<String, Totals> = BTreeMap::new();
    let mut prefecture = Totals::default();
    for row in rows {
        let figures = Totals {
            secured: u64::from(row.secured),
            ready: u64::from(row.ready),
            occupied: u64::from(row.occupied),
            held: u64::from(row.held),
            available: u64::from(row.available),
        };
        prefecture.merge(&figures);
        if let Some(area) = &row.medical_area {
            areas.entry(area.clone()).or_default().merge(&figures);
        }
    }
    let areas = areas
        .iter()
        .map(|(area, totals)| totals_message(Some(area.clone()), totals))
        .collect();
    (areas, totals_message(None, &prefecture))
}

/// The delta from the board `before` to the board `after`, with the totals of `after`;
/// `None` when no row changed.
fn delta(
    before: &BTreeMap<RowKey, pb::BedBoardRow>,
    after: &BTreeMap<RowKey, pb::BedBoardRow>,
    stream_sequence: u64,
) -> Option<pb::BedBoardDelta> {
    let (changed, removed) = diff(before, after)?;
    let rows = changed
        .iter()
        .filter_map(|key| after.get(key))
        .cloned()
        .collect();
    let (areas, prefecture) = totals(after.values());
    Some(pb::BedBoardDelta {
        rows,
        removed: removed
            .into_iter()
            .map(|(facility_id, category)| pb::BedBoardKey {
                facility_id,
                category,
            })
            .collect(),
        areas,
        prefecture: Some(prefecture),
        stream_sequence,
        generated_at: at(OffsetDateTime::now_utc()),
    })
}

impl Views {
    /// The rows in `scope` that match `filter` (of the facilities in `only`, when
    /// given), with what is derived now.
    pub(crate) async fn bed_board_rows(
        &self,
        scope: &ViewScope,
        filter: &BedBoardFilter,
        only: Option<&[String]>,
    ) -> Result<Vec<pb::BedBoardRow>, QueryError> {
        let own;
        let facilities = match (scope, only) {
            (ViewScope::All, only) => only,
            (ViewScope::Own(facility), only) => {
                own = [facility.to_string()];
                if only.is_some_and(|only| !only.contains(&own[0])) {
                    return Ok(Vec::new());
                }
                Some(&own[..])
            }
            (ViewScope::None, _) => return Ok(Vec::new()),
        };
        let now = self.now();
        Ok(super::board(&self.pool, facilities)
            .await?
            .into_iter()
            .map(|stored| row(stored, now, self.settings.stale_after))
            .filter(|row| filter.admits(row))
            .collect())
    }

    async fn bed_board(
        &self,
        principal: &Principal,
        filter: &BedBoardFilter,
        min_versions: &[(StreamId, u64)],
    ) -> Result<pb::BedBoard, QueryError> {
        let scope = bed_board_scope(principal);
        if scope == ViewScope::None {
            return Err(QueryError::Denied);
        }
        self.ready(principal, &[View::BedBoard], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(View::BedBoard.name()).await?;
        let rows = self.bed_board_rows(&scope, filter, None).await?;
        let (areas, prefecture) = totals(&rows);
        Ok(pb::BedBoard {
            rows,
            areas,
            prefecture: Some(prefecture),
            occupancy_definition: OCCUPANCY_DEFINITION.into(),
            stream_sequence,
            stale_after_seconds: u64::try_from(self.settings.stale_after.whole_seconds())
                .unwrap_or_default(),
            generated_at: at(self.now()),
        })
    }
}

impl ViewQuery for BedBoard {
    const NAME: &'static str = "bed_board";
    type Request = pb::GetBedBoardRequest;
    type Response = pb::BedBoard;
    type Update = pb::BedBoardUpdate;

    fn as_of(request: &pb::GetBedBoardRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetBedBoardRequest) -> Violations {
        crate::views::violations(BedBoardFilter::parse(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetBedBoardRequest,
    ) -> Result<pb::BedBoard, QueryError> {
        let (filter, min_versions) = BedBoardFilter::parse(request)?;
        views.bed_board(principal, &filter, &min_versions).await
    }

    /// The snapshot, then a delta whenever a committed batch changed the caller's own
    /// filtered board.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetBedBoardRequest,
    ) -> Result<Updates<pb::BedBoardUpdate>, QueryError> {
        use pb::bed_board_update::Update;
        let (filter, min_versions) = BedBoardFilter::parse(request)?;
        // Subscribed before the snapshot is read, so no change falls in between.
        let changes = views.subscribe().await;
        let snapshot = views.bed_board(principal, &filter, &min_versions).await?;
        let mut before = keyed(snapshot.rows.iter().cloned());
        let (views, principal) = (views.clone(), principal.clone());
        // After batches that listed their facilities, only those facilities' rows are
        // read again; the rest of the caller's board is as it was.
        let read = move |changed: Changed| {
            let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
            async move {
                let only = match changed {
                    Changed::Any => None,
                    Changed::Streams(listed) => Some(
                        listed
                            .iter()
                            .filter_map(|stream| StreamId::parse(stream).ok())
                            .filter(|stream| stream.aggregate_type() == streams::FACILITY)
                            .map(|stream| stream.aggregate_id().to_owned())
                            .collect::<Vec<String>>(),
                    ),
                };
                let scope = bed_board_scope(&principal);
                let stream_sequence = views.checkpoint(View::BedBoard.name()).await?;
                let rows = views
                    .bed_board_rows(&scope, &filter, only.as_deref())
                    .await?;
                Ok((only, rows, stream_sequence))
            }
        };
        let next = move |(only, rows, stream_sequence): (
            Option<Vec<String>>,
            Vec<pb::BedBoardRow>,
            u64,
        )| {
            let untouched = only.map(|facilities| {
                move |(facility, _): &RowKey, _: &pb::BedBoardRow| !facilities.contains(facility)
            });
            let after = merged(&before, untouched, keyed(rows));
            let update = delta(&before, &after, stream_sequence);
            before = after;
            update.map(|delta| pb::BedBoardUpdate {
                update: Some(Update::Delta(delta)),
            })
        };
        let first = pb::BedBoardUpdate {
            update: Some(Update::Snapshot(snapshot)),
        };
        Ok(Box::pin(follow(
            changes,
            &[<BedBoard as Projection>::NAME],
            first,
            read,
            next,
        )))
    }
}
