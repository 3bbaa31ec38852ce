//! The JetStream side of the relay: the stream it provisions and how it publishes.

use std::collections::HashMap;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::context::{CreateStreamError, GetStreamError, PublishError};
use async_nats::jetstream::stream::{
    self, LastRawMessageError, LastRawMessageErrorKind, RetentionPolicy, StorageType,
};
use async_nats::jetstream::{self, Context};
use futures_util::future::join_all;
use uuid::Uuid;

use crate::event::RecordedEvent;
use crate::stream_id::StreamId;
use crate::wire::{self, SubjectPrefix};

/// How the JetStream stream that carries the events is provisioned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSettings {
    pub name: String,
    /// 1 on a single node; 3 or 5 in a cluster (R3 is the production plan).
    pub replicas: usize,
    /// How long events stay on the log; zero keeps them for ever (PostgreSQL keeps them
    /// for ever regardless, and rebuilds can read from there).
    pub max_age: Duration,
    /// Largest size of the log in bytes; -1 for no limit.
    pub max_bytes: i64,
    /// Window in which JetStream drops a republished `Nats-Msg-Id`.
    pub duplicate_window: Duration,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self {
            name: "NOROSHI_EVENTS".to_owned(),
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: -1,
            duplicate_window: Duration::from_secs(10 * 60),
        }
    }
}

/// Why the relay could not publish (it keeps the events and tries again).
#[derive(Debug, thiserror::Error)]
pub enum PublishFailure {
    #[error("nats is not connected")]
    Disconnected,
    #[error("cannot provision jetstream stream {name}")]
    Provision {
        name: String,
        #[source]
        source: CreateStreamError,
    },
    #[error("cannot open jetstream stream {name}")]
    OpenStream {
        name: String,
        #[source]
        source: GetStreamError,
    },
    #[error("publish of event {event_id} failed")]
    Publish {
        event_id: Uuid,
        #[source]
        source: PublishError,
    },
    #[error(
        "event {event_id} was stored in stream {actual}, not {expected}; another stream captures its subject"
    )]
    WrongStream {
        event_id: Uuid,
        actual: String,
        expected: String,
    },
    #[error("cannot read the last published event on {subject}")]
    LastPublished {
        subject: String,
        #[source]
        source: LastRawMessageError,
    },
    #[error("the last message on {subject} is not a noroshi event")]
    ForeignMessage { subject: String },
    #[error(
        "jetstream stream {stream} carries the events of another store ({owner}), not this \
         one's ({store}): two deployments point at one stream; nothing is published until \
         each has its own (NOROSHI_NATS_STREAM and NOROSHI_NATS_SUBJECT_PREFIX)"
    )]
    ForeignStream {
        stream: String,
        owner: String,
        store: Uuid,
    },
}

/// How a stream names the store whose events it carries, in its description.
const OWNER: &str = "noroshi store ";

/// The store a stream's description names as its owner.
fn owner(description: Option<&str>) -> Option<&str> {
    description?.strip_prefix(OWNER).map(str::trim)
}

/// Publishes events to one JetStream stream.
#[derive(Debug)]
pub(crate) struct Publisher {
    client: async_nats::Client,
    context: Context,
    stream: stream::Stream,
    prefix: SubjectPrefix,
    stream_name: String,
    /// This store's identity, on every message as `Noroshi-Store`.
    store: Uuid,
}

impl Publisher {
    /// Creates the stream, or brings an existing one to `settings`; refused when the
    /// stream is another store's. The stream's description names its store (a stream
    /// that names none, made before stores were named, is claimed).
    pub(crate) async fn provision(
        client: async_nats::Client,
        settings: &StreamSettings,
        prefix: SubjectPrefix,
        publish_timeout: Duration,
        store: Uuid,
    ) -> Result<Self, PublishFailure> {
        let mut context = jetstream::new(client.clone());
        context.set_timeout(publish_timeout);
        if let Ok(mut existing) = context.get_stream(&settings.name).await
            && let Ok(info) = existing.info().await
            && let Some(owner) = owner(info.config.description.as_deref())
            && owner != store.to_string()
        {
            return Err(PublishFailure::ForeignStream {
                stream: settings.name.clone(),
                owner: owner.to_owned(),
                store,
            });
        }
        let config = stream::Config {
            name: settings.name.clone(),
            subjects: vec![prefix.all_events_filter()],
            storage: StorageType::File,
            retention: RetentionPolicy::Limits,
            num_replicas: settings.replicas,
            max_age: settings.max_age,
            max_bytes: settings.max_bytes,
            duplicate_window: settings.duplicate_window,
            allow_direct: true,
            description: Some(format!("{OWNER}{store}")),
            ..Default::default()
        };
        context
            .create_or_update_stream(config)
            .await
            .map_err(|source| PublishFailure::Provision {
                name: settings.name.clone(),
                source,
            })?;
        let stream = context.get_stream(&settings.name).await.map_err(|source| {
            PublishFailure::OpenStream {
                name: settings.name.clone(),
                source,
            }
        })?;
        tracing::info!(stream = %settings.name, subjects = %prefix.all_events_filter(), "jetstream stream ready");
        Ok(Self {
            client,
            context,
            stream,
            prefix,
            stream_name: settings.name.clone(),
            store,
        })
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.client.connection_state() == State::Connected
    }

    /// The largest message the server accepts.
    pub(crate) fn server_max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    fn subject(&self, event: &RecordedEvent) -> String {
        self.prefix
            .event_subject(event.prefecture, &event.stream_id)
    }

    /// For each stream in `events`, the highest version already on JetStream.
    ///
    /// Used after a failure or a change of leader, when an event may have been stored
    /// without its ack reaching us: such events are cleared from the outbox instead of
    /// being published again, even after the duplicate window has passed.
    pub(crate) async fn published_versions(
        &self,
        events: &[RecordedEvent],
    ) -> Result<HashMap<StreamId, u64>, PublishFailure> {
        let mut versions = HashMap::new();
        for event in events {
            if versions.contains_key(&event.stream_id) {
                continue;
            }
            let subject = self.subject(event);
            let version = match self.stream.get_last_raw_message_by_subject(&subject).await {
                Ok(message)
                    if wire::publishing_store(&message.headers)
                        .is_some_and(|s| s != self.store.to_string()) =>
                {
                    return Err(PublishFailure::ForeignStream {
                        stream: self.stream_name.clone(),
                        owner: wire::publishing_store(&message.headers)
                            .unwrap_or_default()
                            .to_owned(),
                        store: self.store,
                    });
                }
                Ok(message) => message
                    .headers
                    .get(wire::VERSION)
                    .and_then(|v| v.as_str().parse::<u64>().ok())
                    .ok_or(PublishFailure::ForeignMessage {
                        subject: subject.clone(),
                    })?,
                Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => 0,
                Err(source) => return Err(PublishFailure::LastPublished { subject, source }),
            };
            versions.insert(event.stream_id.clone(), version);
        }
        Ok(versions)
    }

    /// Publishes `events` and returns the positions whose ack arrived.
    ///
    /// Streams go out concurrently; within a stream each event waits for the ack of the
    /// one before it, so a failure can never leave a later version on JetStream ahead
    /// of an earlier one. On failure the first error is returned with the positions
    /// that did get their ack.
    pub(crate) async fn publish(
        &self,
        events: &[RecordedEvent],
    ) -> (Vec<u64>, Option<PublishFailure>) {
        if !self.is_connected() {
            return (Vec::new(), Some(PublishFailure::Disconnected));
        }
        let mut by_stream: Vec<Vec<&RecordedEvent>> = Vec::new();
        let mut slot: HashMap<&StreamId, usize> = HashMap::new();
        for event in events {
            let index = *slot.entry(&event.stream_id).or_insert_with(|| {
                by_stream.push(Vec::new());
                by_stream.len() - 1
            });
            by_stream[index].push(event);
        }
        let outcomes = join_all(by_stream.iter().map(|chain| self.publish_chain(chain))).await;
        let mut acked = Vec::with_capacity(events.len());
        let mut failure = None;
        for (positions, error) in outcomes {
            acked.extend(positions);
            if failure.is_none() {
                failure = error;
            }
        }
        (acked, failure)
    }

    async fn publish_chain(&self, chain: &[&RecordedEvent]) -> (Vec<u64>, Option<PublishFailure>) {
        let mut acked = Vec::with_capacity(chain.len());
        for event in chain {
            match self.publish_one(event).await {
                Ok(()) => acked.push(event.position),
                Err(error) => return (acked, Some(error)),
            }
        }
        (acked, None)
    }

    async fn publish_one(&self, event: &RecordedEvent) -> Result<(), PublishFailure> {
        let failed = |source| PublishFailure::Publish {
            event_id: event.event_id,
            source,
        };
        let ack = self
            .context
            .publish_with_headers(
                self.subject(event),
                {
                    let mut headers = wire::event_headers(event);
                    headers.insert(wire::STORE, self.store.to_string().as_str());
                    headers
                },
                event.payload.clone(),
            )
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        if ack.stream != self.stream_name {
            return Err(PublishFailure::WrongStream {
                event_id: event.event_id,
                actual: ack.stream,
                expected: self.stream_name.clone(),
            });
        }
        if ack.duplicate {
            tracing::debug!(event_id = %event.event_id, "jetstream already had the event");
        }
        Ok(())
    }
}
