//! The composition root: [`Application::build`] turns a [`Config`] into the running
//! components of one noroshi process (relay, APIs, timers, projections), and
//! [`Application::run_until_stopped`] runs them until told to stop. `noroshi serve`,
//! `noroshi dev`, every test and every benchmark go through it, so they run the same
//! object graph with the settings they state.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use noroshi_api::grpc::{self, GrpcContext, GrpcSettings};
use noroshi_api::http::{self, HttpContext};
use noroshi_api::listener::{Admission, ConnectionLimits};
use noroshi_api::metrics::Metrics;
use noroshi_api::views::Gate;
use noroshi_api::web::DrillMark;
use noroshi_app::scheduler::{self, SchedulerSettings};
use noroshi_app::timers::{self, TimerSettings};
use noroshi_app::{Clock, CommandHandler, CommandSettings, system_clock};
use noroshi_domain::placement::PlacementPolicy;
use noroshi_event_store::relay::{self, RelayConfig, StreamSettings};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_event_store::{EventStore, Prefecture, StoreLimits};
use noroshi_identity::certificates::{self, TlsFiles};
use noroshi_identity::drill::Drill;
use noroshi_identity::tokens::Tokens;
use noroshi_identity::{Authenticator, IdentitySettings};
use noroshi_projections::runner::{self, Projection, ProjectionStatus, RunnerConfig};
use noroshi_projections::views::ViewSettings;
use noroshi_projections::{View, Visitor};
use sqlx::postgres::{PgConnectOptions, PgPool};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::error::ServeError;

/// The components one process may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Component {
    /// Publishes committed events from the outbox to JetStream.
    Relay,
    /// The gRPC and HTTP APIs.
    Api,
    /// Appends `OfferExpired` when an offer's deadline passes.
    Timers,
    /// Maintains the read models from the JetStream stream (every view).
    Projections,
}

/// Everything a process is configured with. `noroshi serve` builds it from its flags and
/// environment; tests and benchmarks write it as a literal from [`Config::new`].
#[derive(Clone)]
pub struct Config {
    pub database: DatabaseConfig,
    pub nats: NatsConfig,
    pub components: Vec<Component>,
    /// The prefecture served, the placement policy, retries and the state cache.
    pub commands: CommandSettings,
    /// The event store's limits (largest event payload, events per append).
    pub store: StoreLimits,
    pub api: ApiConfig,
    pub relay: RelayTuning,
    pub projections: ProjectionTuning,
    pub timers: TimerSettings,
    /// How often the alert scheduler (part of the timers) looks at the read models.
    pub scheduler: SchedulerSettings,
    /// How the webhook sender (part of the timers) delivers alerts.
    pub webhooks: noroshi_api::webhooks::WebhookSettings,
    /// How long components may take to finish their work once told to stop.
    pub shutdown_timeout: Duration,
    /// The source of "now" for every decision.
    pub clock: Clock,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("components", &self.components)
            .field("database", &self.database)
            .field("nats", &self.nats)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct DatabaseConfig {
    /// PostgreSQL URL of this prefecture's event store (and read models and identities).
    pub url: String,
    pub max_connections: u32,
    /// How long to wait for a pooled connection before reporting the store unavailable.
    pub acquire_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// NATS server URL(s), comma-separated.
    pub url: String,
    /// First tokens of every subject: `<prefix>.<prefecture>.events.<type>.<id>`.
    pub subject_prefix: String,
    pub stream: StreamSettings,
}

#[derive(Clone)]
pub struct ApiConfig {
    /// Where the gRPC API listens (`127.0.0.1:0`: a free port, see
    /// [`Application::grpc_addr`]).
    pub grpc_addr: String,
    pub http_addr: String,
    /// Largest gRPC request message or HTTP command body.
    pub max_request_bytes: usize,
    pub views: ViewSettings,
    pub identity: IdentitySettings,
    /// Development bearer tokens, for `noroshi dev`, tests and benchmarks only.
    pub dev_tokens: Option<Tokens>,
    /// TLS on both listeners.
    pub tls: Option<TlsFiles>,
    /// Webhook endpoints may be plain `http` (development and tests only).
    pub allow_http_webhooks: bool,
    /// Timeouts and connection caps of both listeners.
    pub connections: ConnectionLimits,
}

impl std::fmt::Debug for ApiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiConfig")
            .field("grpc_addr", &self.grpc_addr)
            .field("http_addr", &self.http_addr)
            .field("tls", &self.tls.is_some())
            .field("dev_tokens", &self.dev_tokens.as_ref().map(Tokens::len))
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
pub struct RelayTuning {
    /// Most events the relay publishes per round.
    pub batch_size: u32,
    /// Longest the relay sleeps without a commit notification.
    pub poll_interval: Duration,
    /// How often a standby relay or projection tries to take over.
    pub leader_retry: Duration,
    /// How long to wait for one JetStream ack.
    pub publish_timeout: Duration,
    /// Longest pause between retries after failures.
    pub max_backoff: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct ProjectionTuning {
    /// Most events a projection applies in one transaction.
    pub batch_size: usize,
    /// Source-stream versions each runner keeps in memory.
    pub known_versions: usize,
    /// When the views' snapshots for reads of the past are taken.
    pub snapshots: noroshi_projections::history::SnapshotConfig,
}

impl Config {
    /// The defaults of `noroshi serve` (every flag's default), over `database_url`.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database: DatabaseConfig {
                url: database_url.into(),
                max_connections: 16,
                acquire_timeout: Duration::from_secs(5),
            },
            nats: NatsConfig {
                url: "nats://127.0.0.1:4222".into(),
                subject_prefix: "noroshi".into(),
                stream: StreamSettings::default(),
            },
            components: vec![Component::Relay],
            commands: CommandSettings {
                prefecture: Prefecture::YAMAGUCHI,
                policy: PlacementPolicy::default(),
                max_attempts: 32,
                cache_capacity: 100_000,
            },
            store: StoreLimits::default(),
            api: ApiConfig {
                grpc_addr: "127.0.0.1:50051".into(),
                http_addr: "127.0.0.1:8080".into(),
                max_request_bytes: 1024 * 1024,
                views: ViewSettings::default(),
                identity: IdentitySettings::default(),
                dev_tokens: None,
                tls: None,
                allow_http_webhooks: false,
                connections: ConnectionLimits::default(),
            },
            relay: RelayTuning {
                batch_size: 500,
                poll_interval: Duration::from_secs(1),
                leader_retry: Duration::from_secs(1),
                publish_timeout: Duration::from_secs(5),
                max_backoff: Duration::from_secs(5),
            },
            projections: ProjectionTuning {
                batch_size: 500,
                known_versions: runner::KNOWN_VERSIONS,
                snapshots: noroshi_projections::history::SnapshotConfig::default(),
            },
            timers: TimerSettings::default(),
            scheduler: SchedulerSettings::default(),
            webhooks: noroshi_api::webhooks::WebhookSettings::default(),
            shutdown_timeout: Duration::from_secs(30),
            clock: system_clock(),
        }
    }

    fn runs(&self, component: Component) -> bool {
        self.components.contains(&component)
    }
}

/// The servers of a NATS URL list (`nats://n1:4222,nats://n2:4222`): the client connects
/// to one of them and fails over to the others.
pub fn nats_servers(urls: &str) -> Vec<&str> {
    urls.split(',')
        .map(str::trim)
        .filter(|url| !url.is_empty())
        .collect()
}

/// The pool of a database configuration.
pub fn pool(database: &DatabaseConfig) -> Result<PgPool, ServeError> {
    let options =
        noroshi_event_store::connect_options(&database.url).map_err(ServeError::DatabaseUrl)?;
    Ok(noroshi_event_store::pool_options()
        .max_connections(database.max_connections)
        .acquire_timeout(database.acquire_timeout)
        .connect_lazy_with(options))
}

/// Creates or updates every crate's schema: the event store's, the read models' and the
/// identities'. Safe to run repeatedly and concurrently.
pub async fn migrate(pool: &PgPool) -> Result<(), ServeError> {
    noroshi_event_store::migrate(pool)
        .await
        .map_err(ServeError::Migrate)?;
    noroshi_projections::migrate(pool)
        .await
        .map_err(ServeError::Migrate)?;
    noroshi_identity::migrate(pool)
        .await
        .map_err(ServeError::Migrate)?;
    Ok(())
}

/// How long a starting process waits for its database to say whether it is a drill's.
const DRILL_READ_PATIENCE: Duration = Duration::from_secs(30);

/// The drill whose tenant the database is, if it is one (DESIGN.md §12). A drill's
/// events must never reach production's subjects, nor production's a drill's: a drill
/// tenant is served only under the subject prefix and stream it recorded when it
/// started, and production never under a drill's prefix. A process that cannot read
/// its database at start waits for it a while, then gives up rather than guess.
async fn drill_of(pool: &PgPool, nats: &NatsConfig) -> Result<Option<Drill>, ServeError> {
    let deadline = tokio::time::Instant::now() + DRILL_READ_PATIENCE;
    let drill = loop {
        match noroshi_identity::drill::read(pool).await {
            Ok(drill) => break drill,
            Err(error) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(error = %error, "cannot read whether the database is a drill's; trying again");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => {
                return Err(ServeError::Drill(format!(
                    "cannot read whether the database is a drill's: {error}"
                )));
            }
        }
    };
    let drill_prefix = nats
        .subject_prefix
        .split('.')
        .next()
        .is_some_and(|first| first == noroshi_identity::drill::SUBJECT_PREFIX);
    match &drill {
        Some(drill)
            if drill.nats_subject_prefix != nats.subject_prefix
                || drill.nats_stream != nats.stream.name =>
        {
            Err(ServeError::Drill(format!(
                "the database is drill {:?}'s, whose events go to subject prefix {:?} and stream \
                 {:?}, not {:?} and {:?}: run it with `noroshi drill start`, or set \
                 NOROSHI_NATS_SUBJECT_PREFIX and NOROSHI_NATS_STREAM to the drill's",
                drill.name,
                drill.nats_subject_prefix,
                drill.nats_stream,
                nats.subject_prefix,
                nats.stream.name
            )))
        }
        None if drill_prefix => Err(ServeError::Drill(format!(
            "subject prefix {:?} is a drill's, and this database is no drill's",
            nats.subject_prefix
        ))),
        _ => Ok(drill),
    }
}

/// The listeners and what they serve.
struct Api {
    grpc: TcpListener,
    http: TcpListener,
    grpc_context: GrpcContext,
    http_context: HttpContext,
    grpc_settings: GrpcSettings,
    admission: Arc<Admission>,
}

/// One process's components, built and bound, ready to run.
pub struct Application {
    config: Config,
    pool: PgPool,
    handler: Arc<CommandHandler>,
    nats: Option<async_nats::Client>,
    api: Option<Api>,
    shutdown: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Connects what the configured components need and binds the API's listeners, so
    /// that their addresses are known before anything runs.
    pub async fn build(config: Config) -> Result<Self, ServeError> {
        let pool = pool(&config.database)?;
        let store = EventStore::new(pool.clone(), config.store);
        let handler = Arc::new(CommandHandler::new(
            store,
            config.commands.clone(),
            config.clock.clone(),
        ));
        let nats = if config.runs(Component::Relay) || config.runs(Component::Projections) {
            let client = async_nats::ConnectOptions::new()
                .name("noroshi")
                .retry_on_initial_connect()
                .connect(nats_servers(&config.nats.url))
                .await
                .map_err(ServeError::NatsUrl)?;
            Some(client)
        } else {
            None
        };
        let drill = drill_of(&pool, &config.nats).await?;
        let api = if config.runs(Component::Api) {
            Some(Self::api(&config, &pool, &handler, drill.as_ref()).await?)
        } else {
            None
        };
        Ok(Self {
            config,
            pool,
            handler,
            nats,
            api,
            shutdown: CancellationToken::new(),
        })
    }

    async fn api(
        config: &Config,
        pool: &PgPool,
        handler: &Arc<CommandHandler>,
        drill: Option<&Drill>,
    ) -> Result<Api, ServeError> {
        let api = &config.api;
        let mut identity = api.identity.clone();
        identity.secure_cookies |= api.tls.is_some();
        let auth = Arc::new(Authenticator::new(
            pool.clone(),
            api.dev_tokens.clone(),
            identity,
        ));
        let views = Arc::new(Gate::new(handler.clone(), pool.clone()).views(api.views));
        let metrics = Arc::new(Metrics::default());
        let admission = Admission::new(api.connections, metrics.connections());
        let bind = |addr: &str| {
            let addr = addr.to_owned();
            async move {
                TcpListener::bind(&addr)
                    .await
                    .map_err(|source| ServeError::Listen { addr, source })
            }
        };
        Ok(Api {
            grpc: bind(&api.grpc_addr).await?,
            http: bind(&api.http_addr).await?,
            http_context: HttpContext {
                auth: auth.clone(),
                views: views.clone(),
                metrics: metrics.clone(),
                handler: handler.clone(),
                max_body_bytes: api.max_request_bytes,
                allow_http_webhooks: api.allow_http_webhooks,
                heartbeat: api.connections.heartbeat(),
                drill: drill.map(|drill| {
                    Arc::new(DrillMark {
                        name: drill.name.clone(),
                        title: drill.title.clone(),
                        title_en: drill.title_en.clone(),
                    })
                }),
            },
            grpc_context: GrpcContext {
                handler: handler.clone(),
                auth,
                views,
                metrics,
            },
            grpc_settings: GrpcSettings {
                max_message_bytes: api.max_request_bytes,
            },
            admission,
        })
    }

    /// The address the gRPC API listens on, with the API component.
    pub fn grpc_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|api| api.grpc.local_addr().ok())
    }

    /// The address the HTTP API listens on, with the API component.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|api| api.http.local_addr().ok())
    }

    /// The command handler the API and the timers share.
    pub fn handler(&self) -> &Arc<CommandHandler> {
        &self.handler
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Cancelling it stops the process: components finish their work in flight, within
    /// the configured shutdown timeout.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Runs every configured component until [`Self::shutdown`] is cancelled or one of
    /// them fails; then stops the others and waits for them.
    pub async fn run_until_stopped(self) -> Result<(), ServeError> {
        let Self {
            config,
            pool,
            handler,
            nats,
            api,
            shutdown,
        } = self;
        let mut components = JoinSet::new();
        let prefix =
            SubjectPrefix::parse(&config.nats.subject_prefix).map_err(ServeError::SubjectPrefix)?;
        if let (true, Some(nats)) = (config.runs(Component::Relay), nats.clone()) {
            let relay_config = RelayConfig {
                subject_prefix: prefix.clone(),
                stream: config.nats.stream.clone(),
                batch_size: config.relay.batch_size,
                poll_interval: config.relay.poll_interval,
                leader_retry_interval: config.relay.leader_retry,
                publish_timeout: config.relay.publish_timeout,
                max_backoff: config.relay.max_backoff,
                max_payload_bytes: config.store.max_payload_bytes,
            };
            let (pool, token) = (pool.clone(), shutdown.clone());
            components.spawn(async move {
                relay::run(pool, nats, relay_config, token)
                    .await
                    .map_err(ServeError::Relay)
            });
        }
        if let Some(api) = api {
            let tls = match &config.api.tls {
                Some(files) => Some((
                    certificates::server_config(files).map_err(ServeError::Tls)?,
                    grpc::grpc_config(files).map_err(ServeError::Tls)?,
                )),
                None => None,
            };
            let (http_tls, grpc_tls) = tls.unzip();
            tracing::info!(
                grpc = ?api.grpc.local_addr().ok(),
                http = ?api.http.local_addr().ok(),
                tls = http_tls.is_some(),
                "apis listening"
            );
            let (token, admission) = (shutdown.clone(), api.admission.clone());
            components.spawn(async move {
                http::serve(api.http, api.http_context, http_tls, admission, token)
                    .await
                    .map_err(ServeError::Http)
            });
            let token = shutdown.clone();
            components.spawn(async move {
                grpc::serve(
                    api.grpc,
                    api.grpc_context,
                    api.grpc_settings,
                    grpc_tls,
                    api.admission,
                    token,
                )
                .await
                .map_err(ServeError::Grpc)
            });
        }
        if config.runs(Component::Timers) {
            let system = timers::system_principal().map_err(ServeError::Timers)?;
            let watch = crate::read_models::ReadModels { pool: pool.clone() };
            let settings = scheduler::SchedulerSettings {
                offer_interval: config.timers.poll_interval,
                ..config.scheduler
            };
            let (handler, token) = (handler.clone(), shutdown.clone());
            components.spawn(async move {
                scheduler::run(handler, watch, system, settings, token).await;
                Ok(())
            });
            let (pool, clock, token) = (pool.clone(), config.clock.clone(), shutdown.clone());
            let settings = config.webhooks;
            components.spawn(async move {
                noroshi_api::webhooks::run(pool, settings, move || clock(), token).await;
                Ok(())
            });
        }
        if let (true, Some(nats)) = (config.runs(Component::Projections), nats) {
            let database = PgConnectOptions::from_str(&config.database.url)
                .map_err(ServeError::DatabaseUrl)?;
            let runner_config = RunnerConfig {
                stream: config.nats.stream.name.clone(),
                filter_subject: prefix.all_events_filter(),
                max_batch: config.projections.batch_size.max(1),
                leader_retry_interval: config.relay.leader_retry,
                max_backoff: config.relay.max_backoff,
                known_versions: config.projections.known_versions,
            };
            let (snapshot_database, store, settings, token) = (
                database.clone(),
                handler.store().clone(),
                config.projections.snapshots,
                shutdown.clone(),
            );
            components.spawn(async move {
                noroshi_projections::history::run_snapshotter(
                    snapshot_database,
                    store,
                    settings,
                    token,
                )
                .await;
                Ok(())
            });
            for view in View::ALL {
                view.visit(SpawnProjection {
                    components: &mut components,
                    database: &database,
                    nats: &nats,
                    config: &runner_config,
                    shutdown: &shutdown,
                });
            }
        }
        tracing::info!(components = ?config.components, "noroshi running");

        let mut outcome = tokio::select! {
            () = shutdown.cancelled() => Ok(()),
            Some(finished) = components.join_next() => flatten(finished),
        };
        shutdown.cancel();
        tracing::info!("shutting down; finishing work in flight");
        let drained = tokio::time::timeout(config.shutdown_timeout, async {
            while let Some(finished) = components.join_next().await {
                if let Err(error) = flatten(finished) {
                    tracing::error!(error = %error, "component failed while stopping");
                }
            }
        })
        .await;
        if drained.is_err() && outcome.is_ok() {
            outcome = Err(ServeError::ShutdownTimeout(config.shutdown_timeout));
        }
        pool.close().await;
        outcome
    }
}

fn flatten(
    finished: Result<Result<(), ServeError>, tokio::task::JoinError>,
) -> Result<(), ServeError> {
    match finished {
        Ok(result) => result,
        Err(error) => Err(ServeError::Panicked(error)),
    }
}

/// Runs one projection as a component; it leads when no other copy does.
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

#[cfg(test)]
mod tests {
    use super::nats_servers;

    #[test]
    fn a_nats_url_list_names_every_server() {
        assert_eq!(
            nats_servers("nats://n1:4222, nats://n2:4222,,nats://n3:4222"),
            ["nats://n1:4222", "nats://n2:4222", "nats://n3:4222"]
        );
        assert_eq!(
            nats_servers("nats://127.0.0.1:4222"),
            ["nats://127.0.0.1:4222"]
        );
    }
}
