//! `noroshi migrate` and `noroshi serve`.

use std::time::Duration;

use noroshi_event_store::relay::{self, RelayConfig, StreamSettings};
use noroshi_event_store::wire::{InvalidSubjectPrefix, SubjectPrefix};
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::{Component, DatabaseArgs, ServeArgs};

#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeError {
    #[error("invalid database url")]
    DatabaseUrl(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error("invalid nats url")]
    NatsUrl(#[source] async_nats::ConnectError),
    #[error("invalid --nats-subject-prefix")]
    SubjectPrefix(#[source] InvalidSubjectPrefix),
    #[error("relay failed")]
    Relay(#[source] relay::RelayError),
    #[error("components did not stop within {0:?}")]
    ShutdownTimeout(Duration),
    #[error("a component panicked")]
    Panicked(#[source] tokio::task::JoinError),
    #[error("cannot listen for shutdown signals")]
    Signals(#[source] std::io::Error),
}

fn pool(args: &DatabaseArgs) -> Result<PgPool, ServeError> {
    PgPoolOptions::new()
        .max_connections(args.database_max_connections)
        .acquire_timeout(args.database_acquire_timeout)
        .connect_lazy(&args.database_url)
        .map_err(ServeError::DatabaseUrl)
}

pub(crate) async fn migrate(args: &DatabaseArgs) -> Result<(), ServeError> {
    let pool = pool(args)?;
    noroshi_event_store::migrate(&pool)
        .await
        .map_err(ServeError::Migrate)?;
    tracing::info!("database schema is up to date");
    Ok(())
}

pub(crate) async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let pool = pool(&args.database)?;
    let shutdown = CancellationToken::new();
    let mut components = JoinSet::new();

    if args.components.contains(&Component::Relay) {
        let prefix = SubjectPrefix::parse(&args.nats.nats_subject_prefix)
            .map_err(ServeError::SubjectPrefix)?;
        let nats = async_nats::ConnectOptions::new()
            .name("noroshi-relay")
            .retry_on_initial_connect()
            .connect(args.nats.nats_url.as_str())
            .await
            .map_err(ServeError::NatsUrl)?;
        let config = RelayConfig {
            subject_prefix: prefix,
            stream: StreamSettings {
                name: args.nats.nats_stream.clone(),
                replicas: args.nats.nats_replicas,
                max_age: args.nats.nats_max_age,
                max_bytes: args.nats.nats_max_bytes,
                duplicate_window: args.nats.nats_duplicate_window,
            },
            batch_size: args.relay.relay_batch_size,
            poll_interval: args.relay.relay_poll_interval,
            leader_retry_interval: args.relay.relay_leader_retry,
            publish_timeout: args.relay.relay_publish_timeout,
            max_backoff: Duration::from_secs(5),
            max_payload_bytes: args.max_event_bytes,
        };
        let token = shutdown.clone();
        let pool = pool.clone();
        components.spawn(async move {
            relay::run(pool, nats, config, token)
                .await
                .map_err(ServeError::Relay)
        });
    }
    tracing::info!(components = ?args.components, "noroshi running");

    let mut outcome = tokio::select! {
        signal = shutdown_signal() => { signal?; Ok(()) }
        Some(finished) = components.join_next() => flatten(finished),
    };
    shutdown.cancel();
    tracing::info!("shutting down; finishing work in flight");
    let drained = tokio::time::timeout(args.shutdown_timeout, async {
        while let Some(finished) = components.join_next().await {
            if let Err(error) = flatten(finished) {
                tracing::error!(error = %error, "component failed while stopping");
            }
        }
    })
    .await;
    if drained.is_err() && outcome.is_ok() {
        outcome = Err(ServeError::ShutdownTimeout(args.shutdown_timeout));
    }
    pool.close().await;
    outcome
}

fn flatten(
    finished: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match finished {
        Ok(result) => result,
        Err(error) => Err(ServeError::Panicked(error)),
    }
}

/// Resolves at SIGTERM or Ctrl-C.
async fn shutdown_signal() -> Result<(), ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!("SIGTERM received"),
        result = tokio::signal::ctrl_c() => {
            result.map_err(ServeError::Signals)?;
            tracing::info!("interrupt received");
        }
    }
    Ok(())
}
