//! The views about patients: `case_board`, `facility_inbox` and `timeline`. Each answer
//! is cut to the caller's rights (DESIGN.md §7) and every patient identity it carries is
//! written to the audit log before it leaves.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use futures_util::{Stream, StreamExt};
use noroshi_domain::Violations;
use noroshi_domain::authz::{
    Principal, ViewScope, case_board_scope, facility_inbox_scope, may_read_timeline,
    may_read_timeline_reason,
};
use noroshi_domain::streams;
use noroshi_domain::values::{CaseStatus, FacilityId};
use noroshi_event_store::StreamId;
use noroshi_projections::View;

use noroshi_projections::bed_board::BedBoard;
use noroshi_projections::case_board::{self, CaseBoard, CaseQuery, CaseRow};
use noroshi_projections::facility_inbox::{self, FacilityInbox, InboxRow};
use noroshi_projections::runner::Projection;
use noroshi_projections::timeline::{self, Timeline, TimelineEntry};
use serde::Serialize;
use time::{Date, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use super::{
    BedBoardFilter, BedBoardRowView, Changed, Listed, Update, Views, diff, follow, merged,
};
use crate::error::ApiError;
use crate::error::store_failure;
use noroshi_codec::events;
use noroshi_identity::audit;

/// Rows per page when the caller does not say.
pub const DEFAULT_PAGE_SIZE: u32 = 100;
/// The most rows one page may hold.
pub const MAX_PAGE_SIZE: u32 = 500;

/// Japan Standard Time, in which ages and dates are reckoned.
const JST: UtcOffset = match UtcOffset::from_hms(9, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

/// A page: how many rows, and where to start (an opaque token from the previous page).
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub size: u32,
    pub token: Option<String>,
}

impl Page {
    /// Checks the size against [`MAX_PAGE_SIZE`]; 0 means the default.
    pub fn parse(size: u32, token: &str, violations: &mut Violations) -> Self {
        if size > MAX_PAGE_SIZE {
            violations.add(
                "page_size",
                format!("must be at most {MAX_PAGE_SIZE}, was {size}"),
            );
        }
        let token = (!token.is_empty()).then(|| token.to_owned());
        if token.as_deref().is_some_and(|t| decode_token(t).is_none()) {
            violations.add("page_token", "is not a token this API returned");
        }
        Self { size, token }
    }

    fn limit(&self) -> i64 {
        i64::from(if self.size == 0 {
            DEFAULT_PAGE_SIZE
        } else {
            self.size.min(MAX_PAGE_SIZE)
        })
    }

    fn start(&self) -> i64 {
        self.token.as_deref().and_then(decode_token).unwrap_or(0)
    }
}

/// Page tokens carry a number (an offset or a position), marked so that a mistyped token
/// is refused rather than read as a different page.
fn encode_token(value: i64) -> String {
    format!("p{value}")
}

fn decode_token(token: &str) -> Option<i64> {
    token
        .strip_prefix('p')?
        .parse::<i64>()
        .ok()
        .filter(|v| *v >= 0)
}

/// Whole years from `birth` to `today`.
pub fn age_on(birth: Date, today: Date) -> u32 {
    let years = today.year() - birth.year();
    let before_birthday = (today.month() as u8, today.day()) < (birth.month() as u8, birth.day());
    u32::try_from(years - i32::from(before_birthday)).unwrap_or(0)
}

/// The ten-year band an offer shows instead of a birth date: `"40-49"`, or `"90+"`.
pub fn age_band(age: u32) -> String {
    if age >= 90 {
        "90+".to_owned()
    } else {
        let low = age / 10 * 10;
        format!("{low}-{}", low + 9)
    }
}

/// The health center whose cases `principal` may see on the board asked for with
/// `filter`; `None` for every one.
fn board_owner(
    principal: &Principal,
    filter: &CaseBoardFilter,
) -> Result<Option<FacilityId>, ApiError> {
    match (case_board_scope(principal), &filter.health_center) {
        (ViewScope::All, requested) => Ok(requested.clone()),
        (ViewScope::Own(own), None) => Ok(Some(own)),
        (ViewScope::Own(own), Some(requested)) if *requested == own => Ok(Some(own)),
        _ => Err(ApiError::PermissionDenied),
    }
}

fn row_views(rows: Vec<CaseRow>) -> Vec<CaseRowView> {
    let today = today();
    rows.into_iter()
        .map(|row| CaseRowView {
            age: age_on(row.birth_date, today),
            deteriorated: row.deteriorated_at.is_some(),
            row,
        })
        .collect()
}

fn today() -> Date {
    OffsetDateTime::now_utc().to_offset(JST).date()
}

/// The cases a caller asks for.
#[derive(Debug, Clone, Default)]
pub struct CaseBoardFilter {
    /// Empty: every status.
    pub statuses: BTreeSet<CaseStatus>,
    /// HQ only: one health center's cases.
    pub health_center: Option<FacilityId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseRowView {
    #[serde(flatten)]
    pub row: CaseRow,
    pub age: u32,
    pub deteriorated: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct CaseBoardView {
    /// By status, then most urgent, then longest known.
    pub rows: Vec<CaseRowView>,
    /// Cases matching the filter, on every page.
    pub total: i64,
    /// The next page, if there is one.
    pub next_page_token: Option<String>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

/// The cases that changed in, or left, the caller's board.
#[derive(Debug, Clone, Serialize)]
pub struct CaseBoardDelta {
    pub rows: Vec<CaseRowView>,
    pub removed: Vec<Uuid>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

pub type CaseBoardUpdate = Update<CaseBoardView, CaseBoardDelta>;

/// An offer as the facility sees it: no identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfferView {
    pub placement_id: Uuid,
    pub category: String,
    pub needs: Vec<String>,
    pub priority: i32,
    pub age_band: String,
    pub sex: String,
    pub severity: String,
    pub origin_kind: String,
    pub origin_area: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offered_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub offer_deadline: Option<OffsetDateTime>,
}

/// A patient the facility accepted: on the way, or placed with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InboundView {
    pub placement_id: Uuid,
    pub case_id: Uuid,
    pub status: String,
    pub category: String,
    pub needs: Vec<String>,
    pub priority: i32,
    pub name: String,
    pub name_kana: Option<String>,
    #[serde(with = "noroshi_projections::iso_date")]
    pub birth_date: Date,
    pub age: u32,
    pub sex: String,
    pub phone: Option<String>,
    pub severity: String,
    pub origin_kind: String,
    pub origin_area: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub accepted_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub hold_deadline: Option<OffsetDateTime>,
    /// The bed is held past its deadline and the patient has not arrived.
    pub hold_overdue: bool,
    pub vehicle: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub pickup_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub arrived_at: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FacilityInboxView {
    pub facility_id: String,
    /// Open offers, nearest deadline first.
    pub offers: Vec<OfferView>,
    /// Accepted patients not yet arrived.
    pub inbound: Vec<InboundView>,
    /// Patients placed here through the system and not yet discharged.
    pub placed: Vec<InboundView>,
    /// The facility's own beds, as `bed_board` shows them.
    pub capacity: Vec<BedBoardRowView>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// What the rows hold, for a live inbox to tell which changes can move it. Not sent.
    #[serde(skip)]
    pub(crate) held: Held,
}

/// The subjects of an inbox's rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// The facilities whose medical areas the rows show as origin areas.
    areas: BTreeSet<String>,
    placements: BTreeSet<Uuid>,
    cases: BTreeSet<Uuid>,
}

impl FacilityInboxView {
    fn identified(&self) -> Vec<Uuid> {
        self.inbound
            .iter()
            .chain(&self.placed)
            .map(|p| p.case_id)
            .collect()
    }
}

pub type FacilityInboxUpdate = Update<FacilityInboxView, FacilityInboxView>;

/// Whose history: a case (with its placements) or one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimelineSubject {
    Case(Uuid),
    Placement(Uuid),
}

impl TimelineSubject {
    fn id(self) -> Uuid {
        match self {
            Self::Case(id) | Self::Placement(id) => id,
        }
    }

    fn kind(self) -> &'static str {
        match self {
            Self::Case(_) => "CASE",
            Self::Placement(_) => "PLACEMENT",
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineView {
    pub kind: &'static str,
    pub subject_id: Uuid,
    /// Oldest first.
    pub entries: Vec<TimelineEntry>,
    pub next_page_token: Option<String>,
    pub stream_sequence: u64,
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
}

pub type TimelineUpdate = Update<TimelineView, TimelineView>;

/// Audits the patients each update identifies, before it is sent.
fn audited<U, S>(
    updates: S,
    views: &Views,
    principal: Principal,
    via: &'static str,
    identified: fn(&U) -> Vec<Uuid>,
) -> impl Stream<Item = Result<U, ApiError>> + Send + 'static
where
    U: Send + 'static,
    S: Stream<Item = Result<U, ApiError>> + Send + 'static,
{
    let pool = views.pool.clone();
    updates.then(move |update| {
        let (pool, principal) = (pool.clone(), principal.clone());
        async move {
            let update = update?;
            audit::pii_reads(&pool, &principal, via, &identified(&update)).await?;
            Ok(update)
        }
    })
}

impl Views {
    /// `case_board` as `principal` may see it; audits every case on the page.
    pub async fn case_board(
        &self,
        principal: &Principal,
        filter: &CaseBoardFilter,
        page: &Page,
        min_versions: &[(StreamId, u64)],
    ) -> Result<CaseBoardView, ApiError> {
        let view = self
            .case_board_page(principal, filter, page.start(), page.limit(), min_versions)
            .await?;
        let cases: Vec<Uuid> = view.rows.iter().map(|r| r.row.case_id).collect();
        audit::pii_reads(&self.pool, principal, CaseBoard::NAME, &cases).await?;
        Ok(view)
    }

    async fn case_board_page(
        &self,
        principal: &Principal,
        filter: &CaseBoardFilter,
        offset: i64,
        limit: i64,
        min_versions: &[(StreamId, u64)],
    ) -> Result<CaseBoardView, ApiError> {
        let owner = board_owner(principal, filter)?;
        self.ready(principal, &[View::CaseBoard], min_versions)
            .await?;
        let stream_sequence = self.checkpoint(CaseBoard::NAME).await?;
        let query = CaseQuery {
            owner: owner.as_ref().map(|o| o.as_str()),
            statuses: filter.statuses.iter().map(ToString::to_string).collect(),
            offset,
            limit,
        };
        let (rows, total) = case_board::rows(&self.pool, &query)
            .await
            .map_err(store_failure)?;
        let next = offset.saturating_add(i64::try_from(rows.len()).unwrap_or_default());
        Ok(CaseBoardView {
            rows: row_views(rows),
            total,
            next_page_token: (next < total).then(|| encode_token(next)),
            stream_sequence,
            generated_at: OffsetDateTime::now_utc(),
        })
    }

    /// What a live board shows again after batches that listed these streams: the cases
    /// they touched (a case's own stream, or one of its placements'), sorted, and those of them
    /// that the caller's board holds now, with the checkpoint read before them.
    async fn case_board_changes(
        &self,
        principal: &Principal,
        filter: &CaseBoardFilter,
        listed: &Listed,
    ) -> Result<(Vec<Uuid>, Vec<CaseRowView>, u64), ApiError> {
        let owner = board_owner(principal, filter)?;
        let mut cases = listed.cases.clone();
        let stream_sequence = self.checkpoint(CaseBoard::NAME).await?;
        if !listed.placements.is_empty() {
            let of_placements = case_board::cases_of_placements(&self.pool, &listed.placements)
                .await
                .map_err(store_failure)?;
            cases.extend(of_placements);
        }
        cases.sort_unstable();
        cases.dedup();
        if cases.is_empty() {
            return Ok((cases, Vec::new(), stream_sequence));
        }
        let query = CaseQuery {
            owner: owner.as_ref().map(|o| o.as_str()),
            statuses: filter.statuses.iter().map(ToString::to_string).collect(),
            ..CaseQuery::default()
        };
        let rows = case_board::rows_of(&self.pool, &query, &cases)
            .await
            .map_err(store_failure)?;
        Ok((cases, row_views(rows), stream_sequence))
    }

    /// A live `case_board`: every case matching the filter (no paging), then the cases
    /// that changed in or left it. Every case sent is audited.
    pub async fn watch_case_board(
        &self,
        principal: Principal,
        filter: CaseBoardFilter,
        min_versions: &[(StreamId, u64)],
    ) -> Result<impl Stream<Item = Result<CaseBoardUpdate, ApiError>> + Send + 'static, ApiError>
    {
        let changes = self.subscribe().await;
        let snapshot = self
            .case_board_page(&principal, &filter, 0, i64::MAX, min_versions)
            .await?;
        let state = |rows: &[CaseRowView]| -> BTreeMap<Uuid, CaseRowView> {
            rows.iter().map(|r| (r.row.case_id, r.clone())).collect()
        };
        let mut before = state(&snapshot.rows);
        // After batches that listed their streams, only the cases they touched are read
        // again; the rest of the caller's board is as it was.
        let read = {
            let (views, principal) = (self.clone(), principal.clone());
            move |changed: Changed| {
                let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
                async move {
                    match changed {
                        Changed::Any => {
                            let view = views
                                .case_board_page(&principal, &filter, 0, i64::MAX, &[])
                                .await?;
                            Ok((None, view.rows, view.stream_sequence))
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
        let next =
            move |(touched, rows, stream_sequence): (Option<Vec<Uuid>>, Vec<CaseRowView>, u64)| {
                let untouched = touched.map(|touched| {
                    move |case_id: &Uuid, _: &CaseRowView| touched.binary_search(case_id).is_err()
                });
                let after = merged(&before, untouched, state(&rows));
                let changes = diff(&before, &after);
                before = after;
                let (changed, removed) = changes?;
                Some(Update::Delta(CaseBoardDelta {
                    rows: rows
                        .into_iter()
                        .filter(|r| changed.contains(&r.row.case_id))
                        .collect(),
                    removed,
                    stream_sequence,
                    generated_at: OffsetDateTime::now_utc(),
                }))
            };
        let updates = follow(
            changes,
            &[CaseBoard::NAME],
            Update::Snapshot(snapshot),
            read,
            next,
        );
        Ok(audited(
            updates,
            self,
            principal,
            CaseBoard::NAME,
            |update| {
                let rows = match update {
                    Update::Snapshot(view) => &view.rows,
                    Update::Delta(delta) => &delta.rows,
                };
                rows.iter().map(|r| r.row.case_id).collect()
            },
        ))
    }

    /// The facility whose inbox `principal` asks for: its own, or for HQ the one named.
    fn inbox_facility(
        principal: &Principal,
        requested: Option<&FacilityId>,
    ) -> Result<FacilityId, ApiError> {
        match (facility_inbox_scope(principal), requested) {
            (ViewScope::All, Some(requested)) => Ok(requested.clone()),
            (ViewScope::All, None) => Err(ApiError::invalid(
                "facility_id",
                "is required: name the facility whose inbox to read",
            )),
            (ViewScope::Own(own), None) => Ok(own),
            (ViewScope::Own(own), Some(requested)) if *requested == own => Ok(own),
            _ => Err(ApiError::PermissionDenied),
        }
    }

    /// `facility_inbox` as `principal` may see it; audits every identified patient.
    pub async fn facility_inbox(
        &self,
        principal: &Principal,
        facility: Option<&FacilityId>,
        min_versions: &[(StreamId, u64)],
    ) -> Result<FacilityInboxView, ApiError> {
        let view = self
            .facility_inbox_unaudited(principal, facility, min_versions)
            .await?;
        audit::pii_reads(
            &self.pool,
            principal,
            FacilityInbox::NAME,
            &view.identified(),
        )
        .await?;
        Ok(view)
    }

    async fn facility_inbox_unaudited(
        &self,
        principal: &Principal,
        facility: Option<&FacilityId>,
        min_versions: &[(StreamId, u64)],
    ) -> Result<FacilityInboxView, ApiError> {
        let facility = Self::inbox_facility(principal, facility)?;
        self.ready(
            principal,
            &[View::FacilityInbox, View::BedBoard],
            min_versions,
        )
        .await?;
        let stream_sequence = self
            .checkpoint(FacilityInbox::NAME)
            .await?
            .min(self.checkpoint(BedBoard::NAME).await?);
        let rows = facility_inbox::rows(&self.pool, Some(facility.as_str()))
            .await
            .map_err(store_failure)?;
        let capacity = self
            .bed_board_rows(
                &ViewScope::Own(facility.clone()),
                &BedBoardFilter::default(),
                None,
            )
            .await?;
        let (now, today) = (OffsetDateTime::now_utc(), today());
        let mut view = FacilityInboxView {
            facility_id: facility.to_string(),
            offers: Vec::new(),
            inbound: Vec::new(),
            placed: Vec::new(),
            capacity,
            stream_sequence,
            generated_at: now,
            held: Held::default(),
        };
        for row in rows {
            let held = &mut view.held;
            held.areas.insert(row.health_center_id.clone());
            if row.origin_kind == "FACILITY" {
                held.areas.insert(row.origin.clone());
            }
            held.placements.insert(row.placement_id);
            held.cases.insert(row.case_id);
            match row.status.as_str() {
                "OFFERED" => view.offers.push(offer(row, today)),
                "ARRIVED" => view.placed.push(inbound(row, now, today)),
                _ => view.inbound.push(inbound(row, now, today)),
            }
        }
        Ok(view)
    }

    /// A live `facility_inbox`: the inbox, then the whole (small) inbox again whenever
    /// it changed. Every identified patient sent is audited.
    pub async fn watch_facility_inbox(
        &self,
        principal: Principal,
        facility: Option<FacilityId>,
        min_versions: &[(StreamId, u64)],
    ) -> Result<impl Stream<Item = Result<FacilityInboxUpdate, ApiError>> + Send + 'static, ApiError>
    {
        let changes = self.subscribe().await;
        let snapshot = self
            .facility_inbox_unaudited(&principal, facility.as_ref(), min_versions)
            .await?;
        let contents = |v: &FacilityInboxView| {
            (
                v.offers.clone(),
                v.inbound.clone(),
                v.placed.clone(),
                v.capacity.clone(),
            )
        };
        let mut before = contents(&snapshot);
        let own = snapshot.facility_id.clone();
        let held = std::sync::Arc::new(std::sync::Mutex::new(snapshot.held.clone()));
        let read = {
            let (views, principal, held) = (self.clone(), principal.clone(), held.clone());
            move |changed: Changed| {
                let moves = moves_inbox(&changed, &own, &locked(&held));
                let (views, principal, facility, own) = (
                    views.clone(),
                    principal.clone(),
                    facility.clone(),
                    own.clone(),
                );
                async move {
                    let concerned = match moves {
                        InboxMove::Yes => true,
                        InboxMove::No => false,
                        InboxMove::Ask(listed) => facility_inbox::concerns(
                            &views.pool,
                            &own,
                            &listed.placements,
                            &listed.cases,
                        )
                        .await
                        .map_err(store_failure)?,
                    };
                    if !concerned {
                        return Ok(None);
                    }
                    views
                        .facility_inbox_unaudited(&principal, facility.as_ref(), &[])
                        .await
                        .map(Some)
                }
            }
        };
        let next = move |view: Option<FacilityInboxView>| {
            let view = view?;
            *locked(&held) = view.held.clone();
            let after = contents(&view);
            let changed = after != before;
            before = after;
            changed.then_some(Update::Delta(view))
        };
        // Offers and patients come from facility_inbox, capacity from bed_board: no other
        // projection's batch changes an inbox.
        let updates = follow(
            changes,
            &[FacilityInbox::NAME, BedBoard::NAME],
            Update::Snapshot(snapshot),
            read,
            next,
        );
        Ok(audited(
            updates,
            self,
            principal,
            FacilityInbox::NAME,
            |update| match update {
                Update::Snapshot(view) | Update::Delta(view) => view.identified(),
            },
        ))
    }

    /// The `timeline` of a case or placement, within the caller's rights. Reveals
    /// nothing about a subject the caller may not read.
    pub async fn timeline(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        page: &Page,
        min_versions: &[(StreamId, u64)],
    ) -> Result<TimelineView, ApiError> {
        self.ready(principal, &[View::Timeline], min_versions)
            .await?;
        let (stream_sequence, ranges) = self
            .timeline_streams(principal, subject, &Seen::new())
            .await?;
        let limit = page.limit();
        let entries = self
            .timeline_page(principal, &ranges, page.start(), limit)
            .await?;
        let full = i64::try_from(entries.len()).unwrap_or_default() == limit;
        Ok(TimelineView {
            kind: subject.kind(),
            subject_id: subject.id(),
            next_page_token: entries
                .last()
                .filter(|_| full)
                .map(|last| encode_token(last.position)),
            entries,
            stream_sequence,
            generated_at: OffsetDateTime::now_utc(),
        })
    }

    /// The streams of a timeline the caller may read (a case's own and its
    /// placements'), each with the versions not `seen` yet up to the last the projection
    /// has applied, and the stream sequence that reflects.
    async fn timeline_streams(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        seen: &Seen,
    ) -> Result<(u64, Vec<(StreamId, RangeInclusive<u64>)>), ApiError> {
        let stream_sequence = self.checkpoint(Timeline::NAME).await?;
        let found = timeline::subject(&self.pool, subject.id())
            .await
            .map_err(store_failure)?
            .filter(|s| s.kind == subject.kind());
        let Some(found) = found else {
            // Only a reader of every timeline learns that it does not exist.
            return if may_read_timeline(principal, None, &[]) {
                Err(ApiError::NotFound(subject.kind().to_lowercase()))
            } else {
                Err(ApiError::PermissionDenied)
            };
        };
        let owner = found
            .case_owner
            .as_deref()
            .and_then(|o| FacilityId::parse(o).ok());
        let involved: Vec<&str> = found.facilities.iter().map(String::as_str).collect();
        if !may_read_timeline(principal, owner.as_ref(), &involved) {
            return Err(ApiError::PermissionDenied);
        }
        let ranges = timeline::streams(&self.pool, subject.id(), subject.kind())
            .await
            .map_err(store_failure)?
            .into_iter()
            .map(|(stream, applied)| {
                let first = seen.get(stream.as_str()).map_or(1, |last| last + 1);
                (stream, first..=applied)
            })
            .filter(|(_, versions)| !versions.is_empty())
            .collect();
        Ok((stream_sequence, ranges))
    }

    /// Up to `limit` entries of `ranges` after `after_position`, read from the event
    /// store itself.
    async fn timeline_page(
        &self,
        principal: &Principal,
        ranges: &[(StreamId, RangeInclusive<u64>)],
        after_position: i64,
        limit: i64,
    ) -> Result<Vec<TimelineEntry>, ApiError> {
        self.streams
            .store()
            .read_streams(
                ranges,
                u64::try_from(after_position).unwrap_or_default(),
                u32::try_from(limit).unwrap_or(MAX_PAGE_SIZE),
            )
            .await?
            .iter()
            .map(|recorded| {
                let decoded = events::decode(recorded).map_err(ApiError::internal)?;
                let mut entry = TimelineEntry::of(recorded, &decoded);
                if !may_read_timeline_reason(principal, entry.facility_id.as_deref()) {
                    entry.reason = None;
                }
                Ok(entry)
            })
            .collect()
    }

    /// Every entry of a timeline not `seen` yet, page after page of the same streams up
    /// to the same versions: a version applied meanwhile waits for the next read, so no
    /// page can skip one.
    async fn timeline_unseen(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        seen: &Seen,
    ) -> Result<TimelineView, ApiError> {
        let (stream_sequence, ranges) = self.timeline_streams(principal, subject, seen).await?;
        let limit = i64::from(MAX_PAGE_SIZE);
        let mut entries = self.timeline_page(principal, &ranges, 0, limit).await?;
        let mut page = entries.len();
        while i64::try_from(page).unwrap_or_default() == limit {
            let after = entries.last().map_or(0, |e| e.position);
            let more = self.timeline_page(principal, &ranges, after, limit).await?;
            page = more.len();
            entries.extend(more);
        }
        Ok(TimelineView {
            kind: subject.kind(),
            subject_id: subject.id(),
            entries,
            next_page_token: None,
            stream_sequence,
            generated_at: OffsetDateTime::now_utc(),
        })
    }

    /// A live `timeline`: the history so far, then the entries of each event applied
    /// since. Streams are applied each in its own order, so an event may be applied after
    /// one of another stream with a later position: a delta carries every event not sent
    /// yet, whatever its position, and a client places entries by position.
    pub async fn watch_timeline(
        &self,
        principal: Principal,
        subject: TimelineSubject,
        min_versions: &[(StreamId, u64)],
    ) -> Result<impl Stream<Item = Result<TimelineUpdate, ApiError>> + Send + 'static, ApiError>
    {
        let changes = self.subscribe().await;
        self.ready(&principal, &[View::Timeline], min_versions)
            .await?;
        let snapshot = self
            .timeline_unseen(&principal, subject, &Seen::new())
            .await?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::new()));
        let note = {
            let seen = seen.clone();
            move |entries: &[TimelineEntry]| {
                let mut seen = locked(&seen);
                for entry in entries {
                    let version = u64::try_from(entry.version).unwrap_or_default();
                    let last = seen.entry(entry.stream_id.clone()).or_default();
                    *last = (*last).max(version);
                }
            }
        };
        note(&snapshot.entries);
        let read = {
            let views = self.clone();
            move |_: Changed| {
                let (views, principal) = (views.clone(), principal.clone());
                let seen = locked(&seen).clone();
                async move { views.timeline_unseen(&principal, subject, &seen).await }
            }
        };
        let next = move |view: TimelineView| {
            if view.entries.is_empty() {
                return None;
            }
            note(&view.entries);
            Some(Update::Delta(view))
        };
        Ok(follow(
            changes,
            &[Timeline::NAME],
            Update::Snapshot(snapshot),
            read,
            next,
        ))
    }
}

/// The last version of each stream a live timeline has sent.
type Seen = std::collections::HashMap<String, u64>;

/// What a live stream shares between its reads and its updates. A panic while it was
/// held leaves nothing half-changed in it (each holder sets or extends it whole), so a
/// poisoned lock is taken as it is.
fn locked<T>(shared: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    shared
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether a change can move an inbox.
#[derive(Debug, PartialEq)]
enum InboxMove {
    Yes,
    No,
    /// Only if one of these placements, or a placement of one of these cases, is now in
    /// the inbox: a new offer.
    Ask(Listed),
}

/// Whether what `changed` can move the inbox of `facility`, which holds `held`.
/// - Facility streams (`bed_board`'s: capacity and registrations): only the facility's
///   own, for its capacity, and those of the facilities whose medical areas its rows
///   show. Another hospital's capacity declaration, the most frequent change in a surge,
///   does not.
/// - Case and placement streams: those of its rows do (a placement that changed, or
///   left for another facility); others only if they are now in the inbox, which one
///   query asks, rather than a read of the whole inbox for every nurse's update anywhere.
fn moves_inbox(changed: &Changed, facility: &str, held: &Held) -> InboxMove {
    let Changed::Streams(streams) = changed else {
        return InboxMove::Yes;
    };
    let mut subjects = false;
    for stream in streams {
        match stream.split_once('-') {
            Some((streams::FACILITY, id)) => {
                if id == facility || held.areas.contains(id) {
                    return InboxMove::Yes;
                }
            }
            Some((streams::CASE | streams::PLACEMENT, _)) => subjects = true,
            _ => return InboxMove::Yes,
        }
    }
    if !subjects {
        return InboxMove::No;
    }
    let listed = Listed::from(streams);
    let holds = listed
        .placements
        .iter()
        .any(|p| held.placements.contains(p))
        || listed.cases.iter().any(|c| held.cases.contains(c));
    if holds {
        InboxMove::Yes
    } else {
        InboxMove::Ask(listed)
    }
}

fn offer(row: InboxRow, today: Date) -> OfferView {
    OfferView {
        placement_id: row.placement_id,
        category: row.category,
        needs: row.needs,
        priority: row.priority,
        age_band: age_band(age_on(row.birth_date, today)),
        sex: row.sex,
        severity: row.severity,
        origin_kind: row.origin_kind,
        origin_area: row.origin_area,
        offered_at: row.offered_at,
        offer_deadline: row.offer_deadline,
    }
}

fn inbound(row: InboxRow, now: OffsetDateTime, today: Date) -> InboundView {
    InboundView {
        placement_id: row.placement_id,
        case_id: row.case_id,
        age: age_on(row.birth_date, today),
        hold_overdue: row.arrived_at.is_none() && row.hold_deadline.is_some_and(|d| d < now),
        status: row.status,
        category: row.category,
        needs: row.needs,
        priority: row.priority,
        name: row.name,
        name_kana: row.name_kana,
        birth_date: row.birth_date,
        sex: row.sex,
        phone: row.phone,
        severity: row.severity,
        origin_kind: row.origin_kind,
        origin_area: row.origin_area,
        accepted_at: row.accepted_at,
        hold_deadline: row.hold_deadline,
        vehicle: row.vehicle,
        pickup_at: row.pickup_at,
        arrived_at: row.arrived_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn ages_count_whole_years_and_bands_hide_the_birth_date() {
        assert_eq!(age_on(date!(1950 - 03 - 15), date!(2026 - 03 - 14)), 75);
        assert_eq!(age_on(date!(1950 - 03 - 15), date!(2026 - 03 - 15)), 76);
        assert_eq!(age_band(0), "0-9");
        assert_eq!(age_band(47), "40-49");
        assert_eq!(age_band(89), "80-89");
        assert_eq!(age_band(90), "90+");
        assert_eq!(age_band(104), "90+");
    }

    #[test]
    fn page_sizes_are_bounded_and_tokens_checked() {
        let mut v = Violations::new();
        let page = Page::parse(0, "", &mut v);
        assert!(v.is_empty());
        assert_eq!(
            (page.limit(), page.start()),
            (i64::from(DEFAULT_PAGE_SIZE), 0)
        );
        let page = Page::parse(MAX_PAGE_SIZE, "p200", &mut v);
        assert!(v.is_empty());
        assert_eq!(page.start(), 200);
        Page::parse(MAX_PAGE_SIZE + 1, "200", &mut v);
        let fields: Vec<&str> = v.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(fields, ["page_size", "page_token"]);
    }

    fn streams(names: &[&str]) -> Changed {
        Changed::Streams(names.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn an_inbox_moves_with_its_rows_its_capacity_and_its_origins_areas_and_asks_about_the_rest() {
        let placement = Uuid::parse_str("01a2363f-0b75-739c-8a1d-ba317792f5a7").unwrap();
        let case = Uuid::parse_str("01a2363f-0b75-739c-8a1d-000000000001").unwrap();
        let other = Uuid::parse_str("01a2363f-0b75-739c-8a1d-000000000002").unwrap();
        let held = Held {
            areas: ["hofu-hc".to_owned()].into(),
            placements: [placement].into(),
            cases: [case].into(),
        };
        let moves = |changed: &Changed| moves_inbox(changed, "hofu-central", &held);
        assert_eq!(moves(&Changed::Any), InboxMove::Yes);
        assert_eq!(
            moves(&streams(&[&format!("placement-{placement}")])),
            InboxMove::Yes,
            "a placement it holds"
        );
        assert_eq!(
            moves(&streams(&[
                &format!("case-{case}"),
                &format!("case-{other}")
            ])),
            InboxMove::Yes,
            "a case it holds"
        );
        assert_eq!(
            moves(&streams(&[
                &format!("placement-{other}"),
                &format!("case-{other}"),
                "facility-ube-medical"
            ])),
            InboxMove::Ask(Listed {
                cases: vec![other],
                placements: vec![other],
            }),
            "others, which may have been offered to it"
        );
        assert_eq!(
            moves(&streams(&["facility-hofu-central"])),
            InboxMove::Yes,
            "its capacity"
        );
        assert_eq!(
            moves(&streams(&["facility-hofu-hc"])),
            InboxMove::Yes,
            "an origin's area"
        );
        assert_eq!(
            moves(&streams(&["facility-ube-medical", "facility-hofu-central"])),
            InboxMove::Yes,
            "its own among others"
        );
        assert_eq!(
            moves(&streams(&["facility-ube-medical", "facility-yuda-hotel"])),
            InboxMove::No,
            "other facilities' capacity"
        );
    }
}
