//! Command handling: load the aggregates a command touches, authorize, decide, and
//! append every resulting event in one transaction with optimistic concurrency.
//!
//! A conflict (another command moved one of the streams first) is retried on states
//! read fresh from the store, re-deciding each time, a bounded number of times; then
//! the caller gets `ABORTED`. A command id that was committed before returns the
//! original result, whether the retry arrives concurrently or days later.

mod cache;
pub mod case;
pub mod facility;
pub mod placement;

use std::collections::HashMap;
use std::sync::Arc;

use noroshi_domain::authz::{self, Action, Principal, Target};
use noroshi_domain::case::Case;
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::{Placement, PlacementPolicy};
use noroshi_domain::values::FacilityId;
use noroshi_event_store::{
    AppendError, AppendRequest, AppendResult, EventStore, ExpectedVersion, Prefecture, StreamId,
    StreamWrite,
};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
pub(crate) use cache::{Aggregate, Loaded, StateCache};
use noroshi_codec::events;
use noroshi_domain::DomainEvent;

/// Events read per round trip when catching a state up with its stream.
const READ_PAGE: u32 = 500;

/// The source of "now" for every decision; tests pass a controllable one.
pub type Clock = Arc<dyn Fn() -> OffsetDateTime + Send + Sync>;

pub fn system_clock() -> Clock {
    Arc::new(OffsetDateTime::now_utc)
}

/// Settings of the command path.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    pub prefecture: Prefecture,
    pub policy: PlacementPolicy,
    /// Attempts of one command under concurrency conflicts before `ABORTED`.
    pub max_attempts: u32,
    /// Aggregate states kept in memory per aggregate type.
    pub cache_capacity: usize,
}

/// Executes commands against the event store; shared by every API front end.
pub struct CommandHandler {
    store: EventStore,
    settings: CommandSettings,
    clock: Clock,
    facilities: StateCache<Facility>,
    cases: StateCache<Case>,
    placements: StateCache<Placement>,
}

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// What every command carries besides its own fields.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CommandMeta {
    pub(crate) command_id: Uuid,
    pub(crate) expected_version: Option<u64>,
    /// The aggregate type of the stream the command addresses, which the result names.
    pub(crate) addressed: &'static str,
}

/// The events a decision produced, by stream; the addressed stream first.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    writes: Vec<(StreamId, Vec<DomainEvent>)>,
}

impl Changes {
    pub(crate) fn add<A: Aggregate>(
        mut self,
        id: &str,
        events: Vec<A::Event>,
    ) -> Result<Self, ApiError> {
        if !events.is_empty() {
            let stream = stream_id(A::TYPE, id)?;
            self.writes
                .push((stream, events.into_iter().map(A::wrap).collect()));
        }
        Ok(self)
    }
}

fn stream_id(aggregate_type: &str, id: &str) -> Result<StreamId, ApiError> {
    StreamId::new(aggregate_type, id).map_err(ApiError::internal)
}

/// Which aggregates a command needs, resolved in this order: the placement, then the
/// case (possibly the placement's), then the facility (possibly the placement's target
/// or the principal's own organisation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Needs {
    pub(crate) placement: Option<Uuid>,
    pub(crate) case: Option<CaseRef>,
    pub(crate) facility: Option<FacilityRef>,
}

#[derive(Debug, Clone)]
pub(crate) enum CaseRef {
    Id(Uuid),
    /// The case of the loaded placement, if it exists.
    OfPlacement,
}

#[derive(Debug, Clone)]
pub(crate) enum FacilityRef {
    Id(FacilityId),
    /// The facility the loaded placement is offered to or accepted by, if any.
    PlacementTarget,
    /// The principal's own organisation.
    Principal,
}

/// The states one attempt at a command decides on, and the versions they were at.
pub(crate) struct Session<'h> {
    handler: &'h CommandHandler,
    /// Read every stream's tail from the store instead of trusting the cache.
    fresh: bool,
    /// True when a state came from the cache without a read.
    cached: bool,
    pub(crate) now: OffsetDateTime,
    pub(crate) principal: &'h Principal,
    versions: HashMap<StreamId, u64>,
    facility: Option<(FacilityId, Arc<Loaded<Facility>>)>,
    case: Option<(Uuid, Arc<Loaded<Case>>)>,
    placement: Option<(Uuid, Arc<Loaded<Placement>>)>,
}

impl Session<'_> {
    pub(crate) fn policy(&self) -> PlacementPolicy {
        self.handler.settings.policy
    }

    /// The loaded facility and its id; `None` when the command's reference resolved to
    /// nothing (a placement without a target).
    pub(crate) fn facility(&self) -> Option<(&FacilityId, &Facility)> {
        self.facility
            .as_ref()
            .map(|(id, loaded)| (id, &loaded.state))
    }

    pub(crate) fn case(&self) -> Option<(Uuid, &Case)> {
        self.case.as_ref().map(|(id, loaded)| (*id, &loaded.state))
    }

    pub(crate) fn placement(&self) -> Option<(Uuid, &Placement)> {
        self.placement
            .as_ref()
            .map(|(id, loaded)| (*id, &loaded.state))
    }

    /// Checks the rules of DESIGN.md §7 before anything is decided. `exists` says whether
    /// the target exists; a missing target is NOT_FOUND only for a principal who may act
    /// on every target of its kind, and PERMISSION_DENIED for everyone else.
    pub(crate) fn authorize(
        &self,
        action: Action,
        exists: bool,
        target: &Target<'_>,
        what: &str,
    ) -> Result<(), ApiError> {
        if exists {
            return authz::may(self.principal, action, target).map_err(ApiError::from);
        }
        authz::may(self.principal, action, &Target::UNKNOWN)?;
        Err(ApiError::NotFound(what.to_owned()))
    }

    async fn resolve(&mut self, needs: &Needs) -> Result<(), ApiError> {
        let handler = self.handler;
        if let Some(id) = needs.placement {
            let loaded = self.load(&handler.placements, &id.to_string()).await?;
            self.placement = Some((id, loaded));
        }
        let case_id = match &needs.case {
            Some(CaseRef::Id(id)) => Some(*id),
            Some(CaseRef::OfPlacement) => self
                .placement
                .as_ref()
                .and_then(|(_, p)| p.state.record.as_ref())
                .map(|r| r.case_id),
            None => None,
        };
        if let Some(id) = case_id {
            let loaded = self.load(&handler.cases, &id.to_string()).await?;
            self.case = Some((id, loaded));
        }
        let facility_id = match &needs.facility {
            Some(FacilityRef::Id(id)) => Some(id.clone()),
            Some(FacilityRef::PlacementTarget) => self
                .placement
                .as_ref()
                .and_then(|(_, p)| p.state.record.as_ref())
                .and_then(|r| r.target.clone()),
            Some(FacilityRef::Principal) => Some(self.principal.organisation_id.clone()),
            None => None,
        };
        if let Some(id) = facility_id {
            let loaded = self.load(&handler.facilities, id.as_str()).await?;
            self.facility = Some((id, loaded));
        }
        Ok(())
    }

    async fn load<A: Aggregate>(
        &mut self,
        cache: &StateCache<A>,
        id: &str,
    ) -> Result<Arc<Loaded<A>>, ApiError> {
        let stream = stream_id(A::TYPE, id)?;
        let cached = cache.get(id);
        let loaded = match cached {
            Some(loaded) if !self.fresh => {
                self.cached = true;
                loaded
            }
            cached => {
                let start = cached.unwrap_or_default();
                let loaded = self.handler.catch_up::<A>(&stream, start).await?;
                cache.put(id, loaded.clone());
                loaded
            }
        };
        self.versions.insert(stream, loaded.version);
        Ok(loaded)
    }

    /// Puts the states the committed changes produced into the cache.
    fn commit(&self, changes: &Changes, result: &AppendResult) {
        for (stream, events) in &changes.writes {
            let Some(version) = result
                .streams
                .iter()
                .find(|s| &s.stream_id == stream)
                .map(|s| s.version)
            else {
                continue;
            };
            let id = stream.aggregate_id();
            let handler = self.handler;
            match stream.aggregate_type() {
                Facility::TYPE => {
                    let before = self
                        .facility
                        .as_ref()
                        .filter(|(f, _)| f.as_str() == id)
                        .map(|(_, l)| l);
                    advance(&handler.facilities, before, id, events, version);
                }
                Case::TYPE => {
                    let before = self
                        .case
                        .as_ref()
                        .filter(|(c, _)| c.to_string() == id)
                        .map(|(_, l)| l);
                    advance(&handler.cases, before, id, events, version);
                }
                Placement::TYPE => {
                    let before = self
                        .placement
                        .as_ref()
                        .filter(|(p, _)| p.to_string() == id)
                        .map(|(_, l)| l);
                    advance(&handler.placements, before, id, events, version);
                }
                _ => {}
            }
        }
    }
}

fn advance<A: Aggregate>(
    cache: &StateCache<A>,
    before: Option<&Arc<Loaded<A>>>,
    id: &str,
    events: &[DomainEvent],
    version: u64,
) {
    let mut state = before.map(|l| l.state.clone()).unwrap_or_default();
    let expected = before.map_or(0, |l| l.version) + events.len() as u64;
    if expected != version {
        cache.forget(id);
        return;
    }
    for event in events.iter().cloned().filter_map(A::select) {
        state.apply(&event);
    }
    cache.put(id, Arc::new(Loaded { state, version }));
}

impl CommandHandler {
    pub fn new(store: EventStore, settings: CommandSettings, clock: Clock) -> Self {
        let capacity = settings.cache_capacity;
        Self {
            store,
            settings,
            clock,
            facilities: StateCache::new(capacity),
            cases: StateCache::new(capacity),
            placements: StateCache::new(capacity),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// A facility's state and the version of its stream, read up to the store's tail.
    pub async fn facility(&self, id: &FacilityId) -> Result<(Facility, u64), ApiError> {
        let stream = stream_id(Facility::TYPE, id.as_str())?;
        let start = self.facilities.get(id.as_str()).unwrap_or_default();
        let loaded = self.catch_up::<Facility>(&stream, start).await?;
        self.facilities.put(id.as_str(), loaded.clone());
        Ok((loaded.state.clone(), loaded.version))
    }

    /// The current state of an aggregate, from the cache brought up to the store's tail.
    async fn current<A: Aggregate>(
        &self,
        cache: &StateCache<A>,
        id: &str,
    ) -> Result<Arc<Loaded<A>>, ApiError> {
        let stream = stream_id(A::TYPE, id)?;
        let loaded = self
            .catch_up::<A>(&stream, cache.get(id).unwrap_or_default())
            .await?;
        cache.put(id, loaded.clone());
        Ok(loaded)
    }

    /// Whether `principal` may follow `stream`, i.e. wait for its writes to reach a view
    /// (`min_versions`): a facility whose figures it may see, a case whose patient it may
    /// read, a placement it may act on. An unknown stream is not visible, so the answer
    /// says nothing about what exists.
    pub async fn stream_visible(
        &self,
        principal: &Principal,
        stream: &StreamId,
    ) -> Result<bool, ApiError> {
        use authz::Role;
        let id = stream.aggregate_id();
        let own = |facility: &FacilityId| facility == &principal.organisation_id;
        Ok(match stream.aggregate_type() {
            Facility::TYPE => match principal.role {
                Role::Hq | Role::HealthCenter | Role::Public => true,
                Role::Hospital | Role::Hotel => principal.organisation_id.as_str() == id,
                Role::Admin => false,
            },
            Case::TYPE => {
                let case = self.current(&self.cases, id).await?;
                case.state.record.as_ref().is_some_and(|record| {
                    let target = Target {
                        case_owner: Some(&record.report.health_center_id),
                        patient_at: record.stay.as_ref().map(|(_, facility)| facility),
                        ..Target::UNKNOWN
                    };
                    authz::may(principal, Action::ReadPatient, &target).is_ok()
                })
            }
            Placement::TYPE => {
                let placement = self.current(&self.placements, id).await?;
                let Some(record) = placement.state.record.as_ref() else {
                    return Ok(false);
                };
                let case = self
                    .current(&self.cases, &record.case_id.to_string())
                    .await?;
                let target = placement::target(
                    record,
                    case.state.record.as_ref(),
                    &principal.organisation_id,
                );
                principal.role == Role::Hq
                    || [
                        target.case_owner,
                        target.offered_to,
                        target.accepted_by,
                        target.transfer_from,
                        target.patient_at,
                    ]
                    .into_iter()
                    .flatten()
                    .any(own)
            }
            _ => false,
        })
    }

    /// Reads the events of `stream` after `start` and applies them.
    async fn catch_up<A: Aggregate>(
        &self,
        stream: &StreamId,
        start: Arc<Loaded<A>>,
    ) -> Result<Arc<Loaded<A>>, ApiError> {
        let mut page = self
            .store
            .read_stream(stream, start.version + 1, READ_PAGE)
            .await?;
        if page.is_empty() {
            return Ok(start);
        }
        let mut loaded = Loaded {
            state: start.state.clone(),
            version: start.version,
        };
        loop {
            let count = page.len();
            for recorded in &page {
                let event = events::decode(recorded).map_err(ApiError::internal)?;
                let event = A::select(event).ok_or_else(|| {
                    ApiError::internal(events::CorruptEvent {
                        stream_id: stream.to_string(),
                        version: recorded.version,
                        event_type: recorded.event_type.clone(),
                        reason: format!("not an event of a {}", A::TYPE),
                    })
                })?;
                loaded.state.apply(&event);
                loaded.version = recorded.version;
            }
            if count < READ_PAGE as usize {
                break;
            }
            page = self
                .store
                .read_stream(stream, loaded.version + 1, READ_PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
        }
        Ok(Arc::new(loaded))
    }

    /// Runs `decide` until its changes commit, a rule refuses it, or the attempts run out.
    pub(crate) async fn execute<F>(
        &self,
        principal: &Principal,
        meta: CommandMeta,
        needs: &Needs,
        decide: F,
    ) -> Result<pb::CommandResult, ApiError>
    where
        F: Fn(&Session<'_>) -> Result<Changes, ApiError>,
    {
        let mut fresh = false;
        for _ in 0..self.settings.max_attempts.max(1) {
            let mut session = Session {
                handler: self,
                fresh,
                cached: false,
                now: self.now(),
                principal,
                versions: HashMap::new(),
                facility: None,
                case: None,
                placement: None,
            };
            let decided = match session.resolve(needs).await {
                Ok(()) => decide(&session),
                Err(error) => Err(error),
            };
            let changes = match decided {
                Ok(changes) => changes,
                Err(error) if refusal(&error) => {
                    if session.cached {
                        // The refusal may stem from a stale cached state.
                        fresh = true;
                        continue;
                    }
                    return match self.store.command_result(meta.command_id).await? {
                        Some(original) => Ok(command_result(&original, meta.addressed)),
                        None => Err(error),
                    };
                }
                Err(error) => return Err(error),
            };
            let Some((addressed, _)) = changes.writes.first() else {
                return Err(ApiError::internal(NoEvents));
            };
            let actual = session.versions.get(addressed).copied().unwrap_or(0);
            if let Some(expected) = meta.expected_version.filter(|&e| e != actual) {
                if session.cached {
                    fresh = true;
                    continue;
                }
                if let Some(original) = self.store.command_result(meta.command_id).await? {
                    return Ok(command_result(&original, meta.addressed));
                }
                return Err(ApiError::Aborted(format!(
                    "{addressed} is at version {actual}, not the expected {expected}"
                )));
            }
            let request = self.append_request(&session, &meta, &changes)?;
            match self.store.append(&request).await {
                Ok(result) => {
                    if !result.replayed {
                        session.commit(&changes, &result);
                    }
                    return Ok(command_result(&result, meta.addressed));
                }
                Err(AppendError::WrongExpectedVersion { .. }) => fresh = true,
                Err(AppendError::CommandIdReused { .. }) => {
                    // A retry re-decided with new ids (e.g. a new case id): the original stands.
                    return match self.store.command_result(meta.command_id).await? {
                        Some(original) => Ok(command_result(&original, meta.addressed)),
                        None => Err(ApiError::Aborted("command id conflict; retry".into())),
                    };
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Aborted(format!(
            "the command lost {} races against concurrent changes; retry it with the same command_id",
            self.settings.max_attempts
        )))
    }

    fn append_request(
        &self,
        session: &Session<'_>,
        meta: &CommandMeta,
        changes: &Changes,
    ) -> Result<AppendRequest, ApiError> {
        let streams = changes
            .writes
            .iter()
            .map(|(stream, decided)| StreamWrite {
                stream_id: stream.clone(),
                expected: ExpectedVersion::Exact(
                    session.versions.get(stream).copied().unwrap_or(0),
                ),
                events: decided
                    .iter()
                    .map(|event| events::encode(event, stream.aggregate_id(), session.now))
                    .collect(),
            })
            .collect();
        Ok(AppendRequest {
            command_id: meta.command_id,
            correlation_id: meta.command_id,
            causation_id: None,
            actor: session.principal.principal_id.to_string(),
            prefecture: self.settings.prefecture,
            streams,
        })
    }
}

/// Errors that a rule gave on the state it saw (as opposed to the store failing).
fn refusal(error: &ApiError) -> bool {
    matches!(
        error,
        ApiError::PermissionDenied
            | ApiError::Invalid(_)
            | ApiError::NotFound(_)
            | ApiError::AlreadyExists(_)
            | ApiError::FailedPrecondition(_)
    )
}

#[derive(Debug, thiserror::Error)]
#[error("a decision produced no events")]
struct NoEvents;

/// The wire result, naming the stream of the addressed aggregate type first.
fn command_result(result: &AppendResult, addressed: &str) -> pb::CommandResult {
    let mut streams: Vec<pb::StreamVersion> = result
        .streams
        .iter()
        .map(|s| pb::StreamVersion {
            stream_id: s.stream_id.to_string(),
            version: s.version,
            position: s.position,
        })
        .collect();
    if let Some(index) = result
        .streams
        .iter()
        .position(|s| s.stream_id.aggregate_type() == addressed)
    {
        streams.swap(0, index);
    }
    let first = streams.first().cloned().unwrap_or_default();
    pb::CommandResult {
        command_id: result.command_id.to_string(),
        stream_id: first.stream_id,
        version: first.version,
        position: first.position,
        streams,
        replayed: result.replayed,
    }
}
