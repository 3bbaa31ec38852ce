//! `noroshi migrate` and `noroshi serve`.

use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use noroshi_api::grpc::{self, GrpcContext, GrpcSettings};
use noroshi_api::http::{self, HttpContext};
use noroshi_api::metrics::Metrics;
use noroshi_api::views::Gate;
use noroshi_app::timers::{self, TimerSettings};
use noroshi_app::{CommandHandler, CommandSettings, system_clock};
use noroshi_domain::placement::PlacementPolicy;
use noroshi_event_store::relay::{self, RelayConfig, StreamSettings};
use noroshi_event_store::wire::{InvalidSubjectPrefix, SubjectPrefix};
use noroshi_event_store::{EventStore, Prefecture, StoreLimits};
use noroshi_identity::certificates::{self, TlsFiles};
use noroshi_identity::tokens::Tokens;
use noroshi_identity::{Authenticator, IdentitySettings};
use noroshi_projections::runner::{self, Projection, ProjectionStatus, RunnerConfig};
use noroshi_projections::views::ViewSettings;
use noroshi_projections::{View, Visitor};
use sqlx::postgres::{PgConnectOptions, PgPool};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::{ApiArgs, ClientCertificates, Component, DatabaseArgs, ServeArgs};

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
    #[error("invalid --prefecture")]
    Prefecture(#[source] noroshi_event_store::InvalidPrefecture),
    #[error("cannot listen on {addr}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot load the token file")]
    Tokens(#[source] noroshi_identity::tokens::TokenFileError),
    #[error(
        "a token file is for development and tests only: its tokens are plain text, never \
         audited and never revoked; use logins, API clients or client certificates, or pass \
         --allow-token-file (NOROSHI_ALLOW_TOKEN_FILE=true) to accept it anyway"
    )]
    TokenFileRefused,
    #[error("{0}")]
    Api(#[source] noroshi_api::ApiError),
    #[error("{0}")]
    Identity(#[source] noroshi_identity::IdentityError),
    #[error("{0}")]
    Command(#[source] noroshi_app::CommandError),
    #[error("cannot issue the certificate")]
    Issue(#[source] noroshi_identity::certificates::IssueError),
    #[error("invalid TLS configuration")]
    Tls(#[source] noroshi_identity::certificates::CertificateError),
    #[error("invalid duration {0:?}")]
    Duration(Duration),
    #[error("cannot set up the offer timer")]
    Timers(#[source] noroshi_app::CommandError),
    #[error("rebuild failed")]
    Rebuild(#[source] noroshi_projections::runner::ProjectionError),
    #[error("http api failed")]
    Http(#[source] std::io::Error),
    #[error("grpc api failed")]
    Grpc(#[source] noroshi_api::grpc::GrpcError),
    #[error("components did not stop within {0:?}")]
    ShutdownTimeout(Duration),
    #[error("a component panicked")]
    Panicked(#[source] tokio::task::JoinError),
    #[error("admin")]
    Admin(#[source] noroshi_api::admin::AdminError),
    #[error("cannot write the report")]
    Output(#[source] std::io::Error),
    #[error("cannot listen for shutdown signals")]
    Signals(#[source] std::io::Error),
}

pub(crate) fn pool(args: &DatabaseArgs) -> Result<PgPool, ServeError> {
    let options = noroshi_event_store::connect_options(&args.database_url)
        .map_err(ServeError::DatabaseUrl)?;
    Ok(noroshi_event_store::pool_options()
        .max_connections(args.database_max_connections)
        .acquire_timeout(args.database_acquire_timeout)
        .connect_lazy_with(options))
}

pub(crate) async fn migrate(args: &DatabaseArgs) -> Result<(), ServeError> {
    let pool = pool(args)?;
    noroshi_event_store::migrate(&pool)
        .await
        .map_err(ServeError::Migrate)?;
    noroshi_projections::migrate(&pool)
        .await
        .map_err(ServeError::Migrate)?;
    noroshi_identity::migrate(&pool)
        .await
        .map_err(ServeError::Migrate)?;
    tracing::info!("database schema is up to date");
    Ok(())
}

pub(crate) async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    let pool = pool(&args.database)?;
    let shutdown = CancellationToken::new();
    let mut components = JoinSet::new();

    let nats = if args
        .components
        .iter()
        .any(|c| matches!(c, Component::Relay | Component::Projections))
    {
        let client = async_nats::ConnectOptions::new()
            .name("noroshi")
            .retry_on_initial_connect()
            .connect(args.nats.nats_url.as_str())
            .await
            .map_err(ServeError::NatsUrl)?;
        Some(client)
    } else {
        None
    };
    let prefix =
        SubjectPrefix::parse(&args.nats.nats_subject_prefix).map_err(ServeError::SubjectPrefix)?;
    if let (true, Some(nats)) = (args.components.contains(&Component::Relay), nats.clone()) {
        let config = RelayConfig {
            subject_prefix: prefix.clone(),
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
    if args
        .components
        .iter()
        .any(|c| matches!(c, Component::Api | Component::Timers))
    {
        let handler = Arc::new(command_handler(&args, pool.clone())?);
        if args.components.contains(&Component::Api) {
            let dev_tokens = match &args.api.tokens_file {
                Some(_) if !args.api.allow_token_file => {
                    return Err(ServeError::TokenFileRefused);
                }
                Some(path) => {
                    let tokens = Tokens::load(path).map_err(ServeError::Tokens)?;
                    tracing::warn!(
                        tokens = tokens.len(),
                        "development token file accepted; never in production"
                    );
                    Some(tokens)
                }
                None => None,
            };
            let tls = tls_files(&args.api);
            let auth = Arc::new(Authenticator::new(
                pool.clone(),
                dev_tokens,
                IdentitySettings {
                    session_idle: args.api.session_idle,
                    session_lifetime: args.api.session_lifetime,
                    max_failed_logins: args.api.max_failed_logins,
                    lockout: args.api.lockout,
                    secure_cookies: args.api.secure_cookies || tls.is_some(),
                    login_attempts_per_minute: args.api.login_attempts_per_minute,
                },
            ));
            let (http_tls, grpc_tls) = match &tls {
                Some(files) => (
                    Some(certificates::server_config(files).map_err(ServeError::Tls)?),
                    Some(grpc::grpc_config(files).map_err(ServeError::Tls)?),
                ),
                None => (None, None),
            };
            let addr = &args.api.grpc_addr;
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|source| ServeError::Listen {
                    addr: addr.clone(),
                    source,
                })?;
            tracing::info!(addr = %listener.local_addr().map_err(|source| ServeError::Listen { addr: addr.clone(), source })?, tls = tls.is_some(), "grpc api listening");
            let views = Arc::new(
                Gate::new(handler.clone(), pool.clone()).views(ViewSettings {
                    read_your_writes_wait: args.api.read_your_writes_wait,
                    stale_after: time::Duration::try_from(args.api.stale_after)
                        .map_err(|_| ServeError::Duration(args.api.stale_after))?,
                    suppress_below: args.api.suppress_below,
                }),
            );
            let http_addr = &args.api.http_addr;
            let http_listener =
                TcpListener::bind(http_addr)
                    .await
                    .map_err(|source| ServeError::Listen {
                        addr: http_addr.clone(),
                        source,
                    })?;
            tracing::info!(addr = %http_addr, "http api listening");
            let metrics = Arc::new(Metrics::default());
            let http_context = HttpContext {
                auth: auth.clone(),
                views: views.clone(),
                metrics: metrics.clone(),
                handler: handler.clone(),
                max_body_bytes: args.api.max_request_bytes,
            };
            let token = shutdown.clone();
            components.spawn(async move {
                http::serve(http_listener, http_context, http_tls, token)
                    .await
                    .map_err(ServeError::Http)
            });
            let context = GrpcContext {
                handler: handler.clone(),
                auth,
                views,
                metrics,
            };
            let settings = GrpcSettings {
                max_message_bytes: args.api.max_request_bytes,
            };
            let token = shutdown.clone();
            components.spawn(async move {
                grpc::serve(listener, context, settings, grpc_tls, token)
                    .await
                    .map_err(ServeError::Grpc)
            });
        }
        if args.components.contains(&Component::Timers) {
            let system = timers::system_principal().map_err(ServeError::Timers)?;
            let settings = TimerSettings {
                poll_interval: args.api.timer_poll_interval,
                ..TimerSettings::default()
            };
            let token = shutdown.clone();
            components.spawn(async move {
                timers::run(handler, system, settings, token).await;
                Ok(())
            });
        }
    }
    if let (true, Some(nats)) = (args.components.contains(&Component::Projections), nats) {
        let database = PgConnectOptions::from_str(&args.database.database_url)
            .map_err(ServeError::DatabaseUrl)?;
        let config = RunnerConfig {
            stream: args.nats.nats_stream.clone(),
            filter_subject: prefix.all_events_filter(),
            max_batch: args.relay.projection_batch_size.max(1),
            leader_retry_interval: args.relay.relay_leader_retry,
            max_backoff: Duration::from_secs(5),
            known_versions: runner::KNOWN_VERSIONS,
        };
        for view in View::ALL {
            view.visit(SpawnProjection {
                components: &mut components,
                database: &database,
                nats: &nats,
                config: &config,
                shutdown: &shutdown,
            });
        }
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

fn command_handler(args: &ServeArgs, pool: PgPool) -> Result<CommandHandler, ServeError> {
    let prefecture = Prefecture::parse(&args.api.prefecture).map_err(ServeError::Prefecture)?;
    let ttl = |d: Duration| time::Duration::try_from(d).map_err(|_| ServeError::Duration(d));
    let settings = CommandSettings {
        prefecture,
        policy: PlacementPolicy {
            offer_ttl: ttl(args.api.offer_deadline)?,
            hold_ttl: ttl(args.api.hold_deadline)?,
        },
        max_attempts: args.api.command_attempts,
        cache_capacity: args.api.state_cache,
    };
    let limits = StoreLimits {
        max_payload_bytes: args.max_event_bytes,
        ..StoreLimits::default()
    };
    Ok(CommandHandler::new(
        EventStore::new(pool, limits),
        settings,
        system_clock(),
    ))
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

/// Runs `projection` as a component; it leads when no other copy does.
/// Runs one projection as a component.
struct SpawnProjection<'a> {
    components: &'a mut JoinSet<Result<(), ServeError>>,
    database: &'a PgConnectOptions,
    nats: &'a async_nats::Client,
    config: &'a RunnerConfig,
    shutdown: &'a CancellationToken,
}

impl Visitor for SpawnProjection<'_> {
    type Output = ();

    fn visit<P: Projection + Copy>(self, projection: P) {
        let (database, nats, config, token) = (
            self.database.clone(),
            self.nats.clone(),
            self.config.clone(),
            self.shutdown.clone(),
        );
        let status = Arc::new(ProjectionStatus::default());
        self.components.spawn(async move {
            runner::run(database, nats, config, projection, status, token).await;
            Ok(())
        });
    }
}

/// The TLS files of the listeners, if TLS is configured.
fn tls_files(args: &ApiArgs) -> Option<TlsFiles> {
    let (cert, key) = (args.tls_cert.clone()?, args.tls_key.clone()?);
    Some(TlsFiles {
        cert,
        key,
        client_ca: args.tls_client_ca.clone(),
        client_certificates: match args.tls_client_certificates {
            ClientCertificates::Off => certificates::ClientCertificates::Off,
            ClientCertificates::Optional => certificates::ClientCertificates::Optional,
            ClientCertificates::Required => certificates::ClientCertificates::Required,
        },
    })
}
