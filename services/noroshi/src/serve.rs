//! `noroshi migrate` and `noroshi serve`: the flags as a [`Config`], then the
//! [`Application`] until SIGTERM or Ctrl-C.

use std::time::Duration;

use noroshi_api::listener::ConnectionLimits;
use noroshi_app::CommandSettings;
use noroshi_app::timers::TimerSettings;
use noroshi_domain::placement::PlacementPolicy;
use noroshi_event_store::relay::StreamSettings;
use noroshi_event_store::{Prefecture, StoreLimits};
use noroshi_identity::IdentitySettings;
use noroshi_identity::certificates::{self, TlsFiles};
use noroshi_identity::tokens::Tokens;
use noroshi_projections::runner::KNOWN_VERSIONS;
use noroshi_projections::views::ViewSettings;

use crate::application::{
    self, ApiConfig, Application, Config, DatabaseConfig, NatsConfig, ProjectionTuning, RelayTuning,
};
use crate::cli::{ApiArgs, ClientCertificates, DatabaseArgs, ServeArgs};
use crate::error::ServeError;

impl DatabaseArgs {
    pub fn config(&self) -> DatabaseConfig {
        DatabaseConfig {
            url: self.database_url.clone(),
            max_connections: self.database_max_connections,
            acquire_timeout: self.database_acquire_timeout,
        }
    }
}

fn time_span(d: Duration) -> Result<time::Duration, ServeError> {
    time::Duration::try_from(d).map_err(|_| ServeError::Duration(d))
}

impl ServeArgs {
    /// The process these flags describe. A token file is refused unless allowed.
    pub fn config(&self) -> Result<Config, ServeError> {
        let api = &self.api;
        let dev_tokens = match &api.tokens_file {
            Some(_) if !api.allow_token_file => return Err(ServeError::TokenFileRefused),
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
        let mut config = Config::new(&self.database.database_url);
        config.database = self.database.config();
        config.nats = NatsConfig {
            url: self.nats.nats_url.clone(),
            subject_prefix: self.nats.nats_subject_prefix.clone(),
            stream: StreamSettings {
                name: self.nats.nats_stream.clone(),
                replicas: self.nats.nats_replicas,
                max_age: self.nats.nats_max_age,
                max_bytes: self.nats.nats_max_bytes,
                duplicate_window: self.nats.nats_duplicate_window,
            },
        };
        config.components = self.components.clone();
        config.commands = CommandSettings {
            prefecture: Prefecture::parse(&api.prefecture).map_err(ServeError::Prefecture)?,
            policy: PlacementPolicy {
                offer_ttl: time_span(api.offer_deadline)?,
                hold_ttl: time_span(api.hold_deadline)?,
            },
            max_attempts: api.command_attempts,
            cache_capacity: api.state_cache,
        };
        config.store = StoreLimits {
            max_payload_bytes: self.max_event_bytes,
            ..StoreLimits::default()
        };
        config.api = ApiConfig {
            grpc_addr: api.grpc_addr.clone(),
            http_addr: api.http_addr.clone(),
            max_request_bytes: api.max_request_bytes,
            views: ViewSettings {
                read_your_writes_wait: api.read_your_writes_wait,
                stale_after: time_span(api.stale_after)?,
                suppress_below: api.suppress_below,
            },
            identity: IdentitySettings {
                session_idle: api.session_idle,
                session_lifetime: api.session_lifetime,
                max_failed_logins: api.max_failed_logins,
                lockout: api.lockout,
                secure_cookies: api.secure_cookies,
                login_attempts_per_minute: api.login_attempts_per_minute,
            },
            dev_tokens,
            tls: tls_files(api),
            allow_http_webhooks: api.allow_http_webhooks,
            connections: ConnectionLimits {
                header_read_timeout: api.header_read_timeout,
                idle_timeout: api.idle_timeout,
                request_timeout: api.request_timeout,
                per_address: api.max_connections_per_address,
                total: api
                    .max_connections
                    .unwrap_or_else(connections_within_descriptor_limit),
            }
            .checked()
            .map_err(ServeError::Connections)?,
        };
        config.relay = RelayTuning {
            batch_size: self.relay.relay_batch_size,
            poll_interval: self.relay.relay_poll_interval,
            leader_retry: self.relay.relay_leader_retry,
            publish_timeout: self.relay.relay_publish_timeout,
            max_backoff: Duration::from_secs(5),
        };
        config.projections = ProjectionTuning {
            batch_size: self.relay.projection_batch_size,
            known_versions: KNOWN_VERSIONS,
            snapshots: noroshi_projections::history::SnapshotConfig {
                every: self.relay.snapshot_every.max(1),
                interval: self.relay.snapshot_interval,
                settle: self.relay.snapshot_settle,
                max_age: self.relay.snapshot_max_age,
            },
        };
        config.timers = TimerSettings {
            poll_interval: api.timer_poll_interval,
        };
        config.scheduler = noroshi_app::scheduler::SchedulerSettings {
            interval: api.alert_interval,
            offer_interval: api.timer_poll_interval,
        };
        config.shutdown_timeout = self.shutdown_timeout;
        Ok(config)
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

/// Connections the process may hold open when `--max-connections` is not given: its
/// file-descriptor limit, first raised to the hard limit, less a quarter of it (at most
/// 1,024) kept for the database, NATS, files and the accept loop.
fn connections_within_descriptor_limit() -> usize {
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or_else(|error| {
        tracing::warn!(error = %error, "cannot read or raise the file-descriptor limit");
        1024
    });
    let reserved = (limit / 4).min(1024);
    usize::try_from(limit - reserved).unwrap_or(usize::MAX)
}

pub async fn migrate(args: &DatabaseArgs) -> Result<(), ServeError> {
    let pool = application::pool(&args.config())?;
    application::migrate(&pool).await?;
    tracing::info!("database schema is up to date");
    Ok(())
}

pub async fn serve(args: ServeArgs) -> Result<(), ServeError> {
    run(Application::build(args.config()?).await?).await
}

/// Runs `application` until SIGTERM or Ctrl-C.
pub async fn run(application: Application) -> Result<(), ServeError> {
    let stop = application.shutdown();
    let signals = shutdown_signal()?;
    tokio::spawn(async move {
        signals.await;
        stop.cancel();
    });
    application.run_until_stopped().await
}

/// Resolves at SIGTERM or Ctrl-C; listening for them is set up before it returns.
fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static, ServeError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate()).map_err(ServeError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(ServeError::Signals)?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("interrupt received"),
        }
    })
}
