//! The `timeline` view: the ordered history of one case (with its placements) or one
//! placement, within the reader's rights. Entries are read from the event store itself,
//! up to the versions the projection has applied.

use std::collections::HashMap;
use std::ops::RangeInclusive;

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, may_read_timeline, may_read_timeline_reason};
use noroshi_domain::values::FacilityId;
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use uuid::Uuid;

use super::{Timeline, TimelineEntry};
use crate::View;
use crate::runner::Projection;
use crate::views::live::{Changed, follow, locked};
use crate::views::{
    MAX_PAGE_SIZE, MinVersions, Page, QueryError, Updates, ViewQuery, Views, at, min_versions,
};

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

/// The last version of each stream a live timeline has sent.
type Seen = HashMap<String, u64>;

fn parse(r: &pb::GetTimelineRequest) -> Result<(TimelineSubject, Page, MinVersions), QueryError> {
    use pb::get_timeline_request::Subject;
    let mut v = Violations::new();
    let subject = match &r.subject {
        Some(Subject::CaseId(id)) => v
            .check(
                "case_id",
                Uuid::parse_str(id).map_err(|_| format!("{id:?} is not a UUID")),
            )
            .map(TimelineSubject::Case),
        Some(Subject::PlacementId(id)) => v
            .check(
                "placement_id",
                Uuid::parse_str(id).map_err(|_| format!("{id:?} is not a UUID")),
            )
            .map(TimelineSubject::Placement),
        None => {
            v.add(
                "case_id",
                "name exactly one case_id or placement_id whose timeline to read",
            );
            None
        }
    };
    let page = Page::parse(r.page_size, &r.page_token, &mut v);
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    match subject {
        Some(subject) => QueryError::check(v, (subject, page, min_versions)),
        None => Err(QueryError::Invalid(v)),
    }
}

fn entry(e: TimelineEntry) -> pb::TimelineEntry {
    pb::TimelineEntry {
        position: u64::try_from(e.position).unwrap_or_default(),
        stream_id: e.stream_id,
        version: u64::try_from(e.version).unwrap_or_default(),
        event_type: e.event_type,
        actor: e.actor,
        correlation_id: e.correlation_id.to_string(),
        occurred_at: at(e.occurred_at),
        recorded_at: at(e.recorded_at),
        facility_id: e.facility_id,
        status: e.status,
        priority: e.priority.and_then(|p| u32::try_from(p).ok()),
        reason: e.reason,
    }
}

impl Views {
    /// The streams of a timeline the caller may read (a case's own and its
    /// placements'), each with the versions not `seen` yet up to the last the projection
    /// has applied, and the stream sequence that reflects. Reveals nothing about a
    /// subject the caller may not read.
    async fn timeline_streams(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        seen: &Seen,
    ) -> Result<(u64, Vec<(StreamId, RangeInclusive<u64>)>), QueryError> {
        let stream_sequence = self.checkpoint(View::Timeline.name()).await?;
        let found = super::subject(&self.pool, subject.id())
            .await?
            .filter(|s| s.kind == subject.kind());
        let Some(found) = found else {
            // Only a reader of every timeline learns that it does not exist.
            return if may_read_timeline(principal, None, &[]) {
                Err(QueryError::NotFound(subject.kind().to_lowercase()))
            } else {
                Err(QueryError::Denied)
            };
        };
        let owner = found
            .case_owner
            .as_deref()
            .and_then(|o| FacilityId::parse(o).ok());
        let involved: Vec<&str> = found.facilities.iter().map(String::as_str).collect();
        if !may_read_timeline(principal, owner.as_ref(), &involved) {
            return Err(QueryError::Denied);
        }
        let ranges = super::streams(&self.pool, subject.id(), subject.kind())
            .await?
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
    ) -> Result<Vec<pb::TimelineEntry>, QueryError> {
        self.store
            .read_streams(
                ranges,
                u64::try_from(after_position).unwrap_or_default(),
                u32::try_from(limit).unwrap_or(MAX_PAGE_SIZE),
            )
            .await?
            .iter()
            .map(|recorded| {
                let decoded = noroshi_codec::decode(recorded).map_err(QueryError::internal)?;
                let mut found = TimelineEntry::of(recorded, &decoded);
                if !may_read_timeline_reason(principal, found.facility_id.as_deref()) {
                    found.reason = None;
                }
                Ok(entry(found))
            })
            .collect()
    }

    async fn timeline(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        page: &Page,
        min_versions: &[(StreamId, u64)],
    ) -> Result<pb::Timeline, QueryError> {
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
        Ok(pb::Timeline {
            kind: subject.kind().into(),
            subject_id: subject.id().to_string(),
            next_page_token: entries.last().filter(|_| full).map(|last| {
                crate::views::page::encode_token(i64::try_from(last.position).unwrap_or(i64::MAX))
            }),
            entries,
            stream_sequence,
            generated_at: at(self.now()),
        })
    }

    /// Every entry of a timeline not `seen` yet, page after page of the same streams up
    /// to the same versions: a version applied meanwhile waits for the next read, so no
    /// page can skip one.
    async fn timeline_unseen(
        &self,
        principal: &Principal,
        subject: TimelineSubject,
        seen: &Seen,
    ) -> Result<pb::Timeline, QueryError> {
        let (stream_sequence, ranges) = self.timeline_streams(principal, subject, seen).await?;
        let limit = i64::from(MAX_PAGE_SIZE);
        let mut entries = self.timeline_page(principal, &ranges, 0, limit).await?;
        let mut page = entries.len();
        while i64::try_from(page).unwrap_or_default() == limit {
            let after = entries
                .last()
                .map_or(0, |e| i64::try_from(e.position).unwrap_or(i64::MAX));
            let more = self.timeline_page(principal, &ranges, after, limit).await?;
            page = more.len();
            entries.extend(more);
        }
        Ok(pb::Timeline {
            kind: subject.kind().into(),
            subject_id: subject.id().to_string(),
            entries,
            next_page_token: None,
            stream_sequence,
            generated_at: at(self.now()),
        })
    }
}

impl ViewQuery for Timeline {
    const NAME: &'static str = "timeline";
    type Request = pb::GetTimelineRequest;
    type Response = pb::Timeline;
    type Update = pb::TimelineUpdate;

    fn as_of(request: &pb::GetTimelineRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetTimelineRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetTimelineRequest,
    ) -> Result<pb::Timeline, QueryError> {
        let (subject, page, min_versions) = parse(request)?;
        views
            .timeline(principal, subject, &page, &min_versions)
            .await
    }

    /// The history so far, then the entries of each event applied since. Streams are
    /// applied each in its own order, so an event may be applied after one of another
    /// stream with a later position: a delta carries every event not sent yet, whatever
    /// its position, and a client places entries by position.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetTimelineRequest,
    ) -> Result<Updates<pb::TimelineUpdate>, QueryError> {
        use pb::timeline_update::Update;
        let (subject, _, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        views
            .ready(principal, &[View::Timeline], &min_versions)
            .await?;
        let snapshot = views
            .timeline_unseen(principal, subject, &Seen::new())
            .await?;
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Seen::new()));
        let note = {
            let seen = seen.clone();
            move |entries: &[pb::TimelineEntry]| {
                let mut seen = locked(&seen);
                for entry in entries {
                    let last = seen.entry(entry.stream_id.clone()).or_default();
                    *last = (*last).max(entry.version);
                }
            }
        };
        note(&snapshot.entries);
        let read = {
            let (views, principal) = (views.clone(), principal.clone());
            move |_: Changed| {
                let (views, principal) = (views.clone(), principal.clone());
                let seen = locked(&seen).clone();
                async move { views.timeline_unseen(&principal, subject, &seen).await }
            }
        };
        let next = move |timeline: pb::Timeline| {
            if timeline.entries.is_empty() {
                return None;
            }
            note(&timeline.entries);
            Some(pb::TimelineUpdate {
                update: Some(Update::Delta(timeline)),
            })
        };
        let first = pb::TimelineUpdate {
            update: Some(Update::Snapshot(snapshot)),
        };
        Ok(Box::pin(follow(
            changes,
            &[<Timeline as Projection>::NAME],
            first,
            read,
            next,
        )))
    }
}
