//! Aggregate states kept in memory between commands, so that a facility that has
//! declared capacity thousands of times is not replayed on every command.
//!
//! A cached state is only a starting point: every append still carries the version the
//! state was at, so a state that another process has moved past is caught by the store's
//! version check, and the command is re-decided on a state read from the store.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use noroshi_domain::alert::{Alert, AlertEvent, AlertRules, AlertRulesEvent};
use noroshi_domain::case::{Case, CaseEvent};
use noroshi_domain::consult::{Consult, ConsultEvent};
use noroshi_domain::facility::{Facility, FacilityEvent};
use noroshi_domain::placement::{Placement, PlacementEvent};

use noroshi_domain::DomainEvent;

/// An aggregate the command handler can load, cache and evolve.
pub(crate) trait Aggregate: Clone + Default + Send + Sync + 'static {
    type Event: Clone;
    /// The `<aggregate_type>` of its streams.
    const TYPE: &'static str;
    fn apply(&mut self, event: &Self::Event);
    fn select(event: DomainEvent) -> Option<Self::Event>;
    fn wrap(event: Self::Event) -> DomainEvent;
}

/// The one way each aggregate's state follows its events.
macro_rules! aggregate {
    ($state:ty, $event:ty, $stream:ident, $variant:ident) => {
        impl Aggregate for $state {
            type Event = $event;
            const TYPE: &'static str = noroshi_domain::streams::$stream;
            fn apply(&mut self, event: &$event) {
                self.evolve(event);
            }
            fn select(event: DomainEvent) -> Option<$event> {
                match event {
                    DomainEvent::$variant(e) => Some(e),
                    _ => None,
                }
            }
            fn wrap(event: $event) -> DomainEvent {
                DomainEvent::$variant(event)
            }
        }
    };
}

aggregate!(Facility, FacilityEvent, FACILITY, Facility);
aggregate!(Case, CaseEvent, CASE, Case);
aggregate!(Placement, PlacementEvent, PLACEMENT, Placement);
aggregate!(Consult, ConsultEvent, CONSULT, Consult);
aggregate!(Alert, AlertEvent, ALERT, Alert);
aggregate!(AlertRules, AlertRulesEvent, ALERT_RULES, AlertRules);

#[derive(Debug, Clone, Default)]
pub(crate) struct Loaded<A> {
    pub(crate) state: A,
    pub(crate) version: u64,
}

/// A bounded map from aggregate id to its latest known state.
#[derive(Debug)]
pub(crate) struct StateCache<A> {
    entries: Mutex<HashMap<String, Arc<Loaded<A>>>>,
    capacity: usize,
}

impl<A> StateCache<A> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<Loaded<A>>> {
        self.lock().get(id).cloned()
    }

    /// Keeps `loaded` unless a newer version is cached already.
    pub(crate) fn put(&self, id: &str, loaded: Arc<Loaded<A>>) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.lock();
        if entries
            .get(id)
            .is_some_and(|current| current.version >= loaded.version)
        {
            return;
        }
        if entries.len() >= self.capacity && !entries.contains_key(id) {
            // Any entry will do: a miss costs one read of the stream's tail.
            if let Some(victim) = entries.keys().next().cloned() {
                entries.remove(&victim);
            }
        }
        entries.insert(id.to_owned(), loaded);
    }

    pub(crate) fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Loaded<A>>>> {
        // A panic while holding the lock cannot leave a map half-updated.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
