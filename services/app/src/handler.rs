//! Command handling: load the aggregates a command touches, authorize, decide, and
//! append every resulting event in one transaction with optimistic concurrency.
//!
//! A conflict (another command moved one of the streams first) is retried on states
//! read fresh from the store, re-deciding each time, a bounded number of times; then
//! the caller gets [`CommandError::Conflict`]. A command id that was committed before
//! returns the original result, whether the retry arrives concurrently or days later.

use std::collections::HashMap;
use std::sync::Arc;

use noroshi_domain::alert::{Alert, AlertRules};
use noroshi_domain::authz::{self, Action, Principal, Target};
use noroshi_domain::case::Case;
use noroshi_domain::consult::Consult;
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::{Placement, PlacementPolicy};
use noroshi_domain::values::FacilityId;
use noroshi_domain::{DomainError, DomainEvent};
use noroshi_event_store::{
    AppendError, AppendRequest, AppendResult, EventStore, ExpectedVersion, InvalidAppend,
    Prefecture, StreamId, StreamWrite,
};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::cache::{Aggregate, Loaded, StateCache};
use crate::command::{CommandError, Envelope, Outcome, Recorded, Refusal, StreamVersion};

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
    /// Attempts of one command under concurrency conflicts before [`CommandError::Conflict`].
    pub max_attempts: u32,
    /// Aggregate states kept in memory per aggregate type.
    pub cache_capacity: usize,
}

/// Executes commands against the event store; shared by every front end and the timers.
pub struct CommandHandler {
    store: EventStore,
    settings: CommandSettings,
    clock: Clock,
    pub(crate) facilities: StateCache<Facility>,
    pub(crate) cases: StateCache<Case>,
    pub(crate) placements: StateCache<Placement>,
    pub(crate) consults: StateCache<Consult>,
    pub(crate) alerts: StateCache<Alert>,
    pub(crate) alert_rules: StateCache<AlertRules>,
}

impl std::fmt::Debug for CommandHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandHandler")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// Why one attempt at a command stopped short of an append.
#[derive(Debug)]
pub(crate) enum Stop {
    Refused(Refusal),
    Failed(CommandError),
}

impl From<Refusal> for Stop {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

impl From<DomainError> for Stop {
    fn from(error: DomainError) -> Self {
        Self::Refused(error.into())
    }
}

impl From<authz::Denied> for Stop {
    fn from(denied: authz::Denied) -> Self {
        Self::Refused(denied.into())
    }
}

impl From<CommandError> for Stop {
    fn from(error: CommandError) -> Self {
        Self::Failed(error)
    }
}

impl From<noroshi_event_store::StoreError> for Stop {
    fn from(error: noroshi_event_store::StoreError) -> Self {
        Self::Failed(error.into())
    }
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
    ) -> Result<Self, Stop> {
        if !events.is_empty() {
            let stream = stream_id(A::TYPE, id)?;
            self.writes
                .push((stream, events.into_iter().map(A::wrap).collect()));
        }
        Ok(self)
    }
}

pub(crate) fn stream_id(aggregate_type: &str, id: &str) -> Result<StreamId, CommandError> {
    StreamId::new(aggregate_type, id).map_err(CommandError::internal)
}

/// Which aggregates a command needs, resolved in this order: the placement, then the
/// case (possibly the placement's), then the facility (possibly the placement's target
/// or the principal's own organisation).
#[derive(Debug, Clone, Default)]
pub(crate) struct Needs {
    pub(crate) placement: Option<Uuid>,
    pub(crate) case: Option<CaseRef>,
    pub(crate) facility: Option<FacilityRef>,
    /// The stay the case records at another placement than the loaded one, with the
    /// facility of that stay (a transfer's arrival ends it).
    pub(crate) stay: bool,
    /// A consult, loaded first; its case with `CaseRef::OfConsult`.
    pub(crate) consult: Option<Uuid>,
    /// An alert.
    pub(crate) alert: Option<Uuid>,
    /// The alert rules.
    pub(crate) alert_rules: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum CaseRef {
    Id(Uuid),
    /// The case of the loaded placement, if it exists.
    OfPlacement,
    /// The case of the loaded consult, if it exists.
    OfConsult,
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
    stay: Option<LoadedStay>,
    consult: Option<(Uuid, Arc<Loaded<Consult>>)>,
    alert: Option<(Uuid, Arc<Loaded<Alert>>)>,
    alert_rules: Option<Arc<Loaded<AlertRules>>>,
}

/// The stay a transfer leaves: its placement and its facility.
struct LoadedStay {
    placement_id: Uuid,
    placement: Arc<Loaded<Placement>>,
    facility_id: FacilityId,
    facility: Arc<Loaded<Facility>>,
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

    pub(crate) fn consult(&self) -> Option<(Uuid, &Consult)> {
        self.consult
            .as_ref()
            .map(|(id, loaded)| (*id, &loaded.state))
    }

    pub(crate) fn alert(&self) -> Option<(Uuid, &Alert)> {
        self.alert.as_ref().map(|(id, loaded)| (*id, &loaded.state))
    }

    pub(crate) fn alert_rules(&self) -> Option<&AlertRules> {
        self.alert_rules.as_ref().map(|loaded| &loaded.state)
    }

    /// The stay the case records elsewhere, when the command asked for it.
    pub(crate) fn stay(&self) -> Option<noroshi_domain::placement::Stay<'_>> {
        self.stay
            .as_ref()
            .map(|stay| noroshi_domain::placement::Stay {
                placement_id: stay.placement_id,
                placement: &stay.placement.state,
                facility: &stay.facility.state,
            })
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
    ) -> Result<(), Stop> {
        if exists {
            return Ok(authz::may(self.principal, action, target)?);
        }
        authz::may(self.principal, action, &Target::UNKNOWN)?;
        Err(DomainError::NotFound(what.to_owned()).into())
    }

    async fn resolve(&mut self, needs: &Needs) -> Result<(), Stop> {
        let handler = self.handler;
        if let Some(id) = needs.alert {
            let loaded = self.load(&handler.alerts, &id.to_string()).await?;
            self.alert = Some((id, loaded));
        }
        if needs.alert_rules {
            let loaded = self
                .load(&handler.alert_rules, noroshi_domain::alert::RULES_STREAM_ID)
                .await?;
            self.alert_rules = Some(loaded);
        }
        if let Some(id) = needs.consult {
            let loaded = self.load(&handler.consults, &id.to_string()).await?;
            self.consult = Some((id, loaded));
        }
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
            Some(CaseRef::OfConsult) => self
                .consult
                .as_ref()
                .and_then(|(_, c)| c.state.record.as_ref())
                .map(|r| r.request.case_id),
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
        let stay = self
            .case
            .as_ref()
            .and_then(|(_, c)| c.state.record.as_ref())
            .and_then(|r| r.stay.clone())
            .filter(|(p, _)| needs.stay && Some(*p) != needs.placement);
        if let Some((placement_id, facility_id)) = stay {
            let placement = self
                .load(&handler.placements, &placement_id.to_string())
                .await?;
            let facility = self.load(&handler.facilities, facility_id.as_str()).await?;
            self.stay = Some(LoadedStay {
                placement_id,
                placement,
                facility_id,
                facility,
            });
        }
        Ok(())
    }

    async fn load<A: Aggregate>(
        &mut self,
        cache: &StateCache<A>,
        id: &str,
    ) -> Result<Arc<Loaded<A>>, CommandError> {
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
                        .iter()
                        .map(|(f, l)| (f, l))
                        .chain(self.stay.iter().map(|s| (&s.facility_id, &s.facility)))
                        .find(|(f, _)| f.as_str() == id)
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
                        .iter()
                        .map(|(p, l)| (p, l))
                        .chain(self.stay.iter().map(|s| (&s.placement_id, &s.placement)))
                        .find(|(p, _)| p.to_string() == id)
                        .map(|(_, l)| l);
                    advance(&handler.placements, before, id, events, version);
                }
                Consult::TYPE => {
                    let before = self
                        .consult
                        .as_ref()
                        .filter(|(c, _)| c.to_string() == id)
                        .map(|(_, l)| l);
                    advance(&handler.consults, before, id, events, version);
                }
                Alert::TYPE => {
                    let before = self
                        .alert
                        .as_ref()
                        .filter(|(a, _)| a.to_string() == id)
                        .map(|(_, l)| l);
                    advance(&handler.alerts, before, id, events, version);
                }
                AlertRules::TYPE => {
                    advance(
                        &handler.alert_rules,
                        self.alert_rules.as_ref(),
                        id,
                        events,
                        version,
                    );
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
            consults: StateCache::new(capacity),
            alerts: StateCache::new(capacity),
            alert_rules: StateCache::new(1),
        }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    pub fn now(&self) -> OffsetDateTime {
        (self.clock)()
    }

    /// The prefecture this deployment serves.
    pub fn prefecture(&self) -> noroshi_event_store::Prefecture {
        self.settings.prefecture
    }

    /// A facility's state and the version of its stream, read up to the store's tail.
    pub async fn facility(&self, id: &FacilityId) -> Result<(Facility, u64), CommandError> {
        let loaded = self.current(&self.facilities, id.as_str()).await?;
        Ok((loaded.state.clone(), loaded.version))
    }

    /// The current state of an aggregate, from the cache brought up to the store's tail.
    pub(crate) async fn current<A: Aggregate>(
        &self,
        cache: &StateCache<A>,
        id: &str,
    ) -> Result<Arc<Loaded<A>>, CommandError> {
        let stream = stream_id(A::TYPE, id)?;
        let loaded = self
            .catch_up::<A>(&stream, cache.get(id).unwrap_or_default())
            .await?;
        cache.put(id, loaded.clone());
        Ok(loaded)
    }

    /// Reads the events of `stream` after `start` and applies them.
    /// The alert rules in force now, read through the cache.
    pub(crate) async fn alert_rules_now(&self) -> Result<AlertRules, CommandError> {
        let id = noroshi_domain::alert::RULES_STREAM_ID;
        let stream = stream_id(AlertRules::TYPE, id)?;
        let start = self.alert_rules.get(id).unwrap_or_default();
        let loaded = self.catch_up::<AlertRules>(&stream, start).await?;
        self.alert_rules.put(id, loaded.clone());
        Ok(loaded.state.clone())
    }

    async fn catch_up<A: Aggregate>(
        &self,
        stream: &StreamId,
        start: Arc<Loaded<A>>,
    ) -> Result<Arc<Loaded<A>>, CommandError> {
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
                let event = noroshi_codec::decode(recorded).map_err(CommandError::internal)?;
                let event = A::select(event).ok_or_else(|| {
                    CommandError::internal(noroshi_codec::CorruptEvent {
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

    /// The outcome of a command id recorded before, for the aggregate type the command
    /// addresses: its first result when the request is the same, a refusal when it is
    /// not, `None` when the command id is new.
    async fn original(&self, envelope: &Envelope, addressed: &str) -> Option<Outcome> {
        let digest = envelope.request_digest.as_ref().map(|d| &d[..]);
        match self.store.command_result(envelope.command_id, digest).await {
            Ok(None) => None,
            Ok(Some(original)) => Some(Ok(Ok(Recorded::of(&original, addressed)))),
            Err(AppendError::CommandIdReused { command_id }) => {
                Some(Ok(Err(Refusal::CommandIdReused { command_id })))
            }
            Err(AppendError::Store(error)) => Some(Err(error.into())),
            Err(other) => Some(Err(CommandError::internal(other))),
        }
    }

    /// Runs `decide` until its changes commit, a rule refuses it, or the attempts run out.
    pub(crate) async fn run<F>(
        &self,
        principal: &Principal,
        envelope: Envelope,
        addressed: &str,
        needs: &Needs,
        decide: F,
    ) -> Outcome
    where
        F: Fn(&Session<'_>) -> Result<Changes, Stop>,
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
                stay: None,
                consult: None,
                alert: None,
                alert_rules: None,
            };
            let decided = match session.resolve(needs).await {
                Ok(()) => decide(&session),
                Err(stop) => Err(stop),
            };
            let changes = match decided {
                Ok(changes) => changes,
                Err(Stop::Refused(refusal)) => {
                    if session.cached {
                        // The refusal may stem from a stale cached state.
                        fresh = true;
                        continue;
                    }
                    return self
                        .original(&envelope, addressed)
                        .await
                        .unwrap_or(Ok(Err(refusal)));
                }
                Err(Stop::Failed(error)) => return Err(error),
            };
            let Some((first, _)) = changes.writes.first() else {
                return Err(CommandError::internal(NoEvents));
            };
            let actual = session.versions.get(first).copied().unwrap_or(0);
            if let Some(expected) = envelope.expected_version.filter(|&e| e != actual) {
                if session.cached {
                    fresh = true;
                    continue;
                }
                if let Some(original) = self.original(&envelope, addressed).await {
                    return original;
                }
                return Ok(Err(Refusal::StaleVersion {
                    stream_id: first.clone(),
                    expected,
                    actual,
                }));
            }
            if envelope.dry_run {
                let streams = changes
                    .writes
                    .iter()
                    .map(|(stream, events)| StreamVersion {
                        stream_id: stream.clone(),
                        version: session.versions.get(stream).copied().unwrap_or(0)
                            + events.len() as u64,
                        position: 0,
                    })
                    .collect();
                return Ok(Ok(Recorded {
                    command_id: envelope.command_id,
                    streams,
                    replayed: false,
                }));
            }
            let request = self.append_request(&session, &envelope, &changes);
            match self.store.append(&request).await {
                Ok(result) => {
                    if !result.replayed {
                        session.commit(&changes, &result);
                    }
                    return Ok(Ok(Recorded::of(&result, addressed)));
                }
                Err(AppendError::WrongExpectedVersion { .. }) => fresh = true,
                Err(AppendError::CommandIdReused { .. }) => {
                    // Another request under this command id, or a retry re-decided with
                    // new ids (e.g. a new case id), whose original stands.
                    return self
                        .original(&envelope, addressed)
                        .await
                        .unwrap_or(Err(CommandError::Conflict { attempts: 1 }));
                }
                Err(AppendError::Invalid(
                    invalid @ (InvalidAppend::PayloadTooLarge { .. }
                    | InvalidAppend::TooManyEvents { .. }),
                )) => return Err(CommandError::TooLarge(invalid.to_string())),
                Err(AppendError::Invalid(invalid)) => return Err(CommandError::internal(invalid)),
                Err(AppendError::Store(error)) => return Err(error.into()),
            }
        }
        Err(CommandError::Conflict {
            attempts: self.settings.max_attempts,
        })
    }

    fn append_request(
        &self,
        session: &Session<'_>,
        envelope: &Envelope,
        changes: &Changes,
    ) -> AppendRequest {
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
                    .map(|event| noroshi_codec::encode(event, stream.aggregate_id(), session.now))
                    .collect(),
            })
            .collect();
        AppendRequest {
            command_id: envelope.command_id,
            correlation_id: envelope.command_id,
            causation_id: None,
            actor: session.principal.principal_id.to_string(),
            prefecture: self.settings.prefecture,
            streams,
            request_digest: envelope.request_digest.map(Vec::from),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a decision produced no events")]
struct NoEvents;
