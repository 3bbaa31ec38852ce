//! Command line and environment. Every flag can also be set as `NOROSHI_<FLAG>`.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use crate::application::Component;
pub use noroshi_simulator::SimulateArgs;

#[derive(Debug, Parser)]
#[command(
    name = "noroshi",
    version,
    about = "Event-sourced regional information sharing for surge coordination"
)]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update the database schema.
    Migrate(DatabaseArgs),
    /// Run the chosen components until SIGTERM or Ctrl-C.
    Serve(Box<ServeArgs>),
    /// Administration of organisations, facilities and tokens.
    Admin(AdminArgs),
    /// Rebuild read models from the event log, with a progress bar.
    Rebuild(RebuildArgs),
    /// Drive a synthetic surge through the HTTP API (demo organisations' tokens).
    Simulate(SimulateArgs),
    /// Import a file through the HTTP API (docs/import.md).
    Import(crate::import::ImportArgs),
    /// Write the after-action report of a period (振り返り報告書) as HTML or PDF, from the
    /// event log.
    Report(crate::report::ReportArgs),
    /// The whole system with the demo set and one login per role, in one command.
    Dev(DevArgs),
    /// Drills beside production, each in a tenant of its own (docs/drills.md).
    Drill(DrillArgs),
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// PostgreSQL database; created when missing.
    #[arg(
        long,
        env = "NOROSHI_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/noroshi_dev"
    )]
    pub database_url: String,
    /// Also run the surge simulator, so that the dashboards move.
    #[arg(long)]
    pub simulate: bool,
    /// Simulator: new cases a day at the peak.
    #[arg(long, default_value_t = 300.0)]
    pub peak_per_day: f64,
    /// Simulator: simulated days.
    #[arg(long, default_value_t = 30.0)]
    pub days: f64,
    /// Simulator: simulated seconds per real second.
    #[arg(long, default_value_t = 1440.0)]
    pub speed: f64,
}

/// Where `noroshi rebuild` reads the events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RebuildSource {
    /// The event store (PostgreSQL, the source of truth), in one snapshot.
    Store,
    /// The JetStream stream, from its first message.
    Stream,
}

impl RebuildSource {
    pub fn source(self) -> noroshi_projections::rebuild::Source {
        use noroshi_projections::rebuild::Source;
        match self {
            Self::Store => Source::Store,
            Self::Stream => Source::Stream,
        }
    }
}

/// A view by its name.
fn view_name(name: &str) -> Result<noroshi_projections::View, String> {
    noroshi_projections::View::parse(name).ok_or_else(|| {
        let names: Vec<&str> = noroshi_projections::View::ALL
            .iter()
            .map(|view| view.name())
            .collect();
        format!("no view {name:?}; the views are {}", names.join(", "))
    })
}

#[derive(Debug, Args)]
pub struct RebuildArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Views to rebuild (`bed_board`, `placement_queue`, `case_board`, `facility_inbox`,
    /// `timeline`, `public_stats`, `consult_queue`, `alerts`, `placement_sla`).
    #[arg(value_parser = view_name, required_unless_present = "all")]
    pub views: Vec<noroshi_projections::View>,
    /// Rebuild every view.
    #[arg(long, conflicts_with = "views")]
    pub all: bool,
    /// Where to read the events from.
    #[arg(long, value_enum, default_value = "store")]
    pub from: RebuildSource,
    /// Events handed to every view at a time: fewer use less memory and take longer.
    #[arg(long, default_value_t = noroshi_projections::rebuild::CHUNK,
          value_parser = clap::builder::TypedValueParser::map(
              clap::value_parser!(u32).range(1..), |n| n as usize))]
    pub chunk_events: usize,
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Register or update the facilities of a file and check its tokens; applying the
    /// same file twice changes nothing.
    Apply(ApplyArgs),
    /// Users of the web UI.
    User(UserArgs),
    /// API clients (machine-to-machine tokens).
    Client(ClientArgs),
    /// The deployment's CA: client certificates for terminals, server certificates.
    Ca(CaArgs),
}

/// Who the CLI acts as, recorded in the audit log.
#[derive(Debug, Args)]
pub struct ActorArgs {
    /// Principal recorded as the actor of the changes.
    #[arg(long, env = "NOROSHI_ADMIN_ACTOR", default_value = "noroshi-admin")]
    pub actor: String,
    /// JIS X 0401 code of the deployment's prefecture.
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
    #[command(subcommand)]
    pub command: UserCommand,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; prints a generated first password unless one comes on stdin.
    Add {
        username: String,
        #[arg(long)]
        organisation: String,
        #[arg(long)]
        role: String,
        #[arg(long)]
        display_name: String,
        /// Read the password from the first line of stdin instead of generating one.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Set a new generated password (printed once), lift a lockout, end the sessions.
    ResetPassword { username: String },
    /// Disable a user: no more logins, sessions end.
    Disable { username: String },
    /// Enable a disabled user.
    Enable { username: String },
    /// List the users.
    List,
}

#[derive(Debug, Args)]
pub struct ClientArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub actor: ActorArgs,
    #[command(subcommand)]
    pub command: ClientCommand,
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Issue a client token for an organisation; the token is printed once.
    Issue {
        #[arg(long)]
        name: String,
        #[arg(long)]
        organisation: String,
        /// Scopes: facilities, cases, placements, views.
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime of the token.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "90days")]
        expires_in: Duration,
    },
    /// Revoke a client; effective at once.
    Revoke { client_id: String },
    /// List the clients (never their tokens).
    List,
}

#[derive(Debug, Args)]
pub struct CaArgs {
    /// Directory of the CA (`ca.pem`, `ca-key.pem`).
    #[arg(long, env = "NOROSHI_CA_DIR", default_value = "ca")]
    pub dir: std::path::PathBuf,
    #[command(subcommand)]
    pub command: CaCommand,
}

#[derive(Debug, Subcommand)]
pub enum CaCommand {
    /// Create the CA; refuses to overwrite one.
    Init,
    /// Issue and register a client certificate for an organisation's terminal.
    Issue {
        organisation: String,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        actor: ActorArgs,
        /// Where to write `<organisation>-<serial>.pem` and `-key.pem`.
        #[arg(long, default_value = ".")]
        out_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Issue a server certificate for the TLS listeners.
    Server {
        /// DNS names and IP addresses the server is reached by.
        #[arg(required = true)]
        names: Vec<String>,
        /// Where to write `server.pem` and `server-key.pem`.
        #[arg(long, default_value = ".")]
        out_dir: std::path::PathBuf,
        #[arg(long, default_value_t = 365)]
        days: i64,
    },
    /// Revoke a registered client certificate by serial; effective at once.
    Revoke {
        serial: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// TOML file of `[[facility]]` and `[[token]]` entries (see docs/admin.md).
    pub file: std::path::PathBuf,
    /// JIS X 0401 code of the deployment's prefecture, for entries that name none.
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
    /// Principal recorded as the actor of the changes.
    #[arg(long, env = "NOROSHI_ADMIN_ACTOR", default_value = "noroshi-admin")]
    pub actor: String,
    /// Print what would change without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Log filter, in `tracing` env-filter syntax (e.g. `info,noroshi_event_store=debug`).
    #[arg(
        long = "log",
        env = "NOROSHI_LOG",
        default_value = "info",
        global = true
    )]
    pub filter: String,
    /// Log line format.
    #[arg(long, env = "NOROSHI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL of this prefecture's event store.
    #[arg(long, env = "NOROSHI_DATABASE_URL")]
    pub database_url: String,
    /// Connections in the pool.
    #[arg(long, env = "NOROSHI_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,
    /// How long to wait for a pooled connection before reporting the store unavailable.
    #[arg(long, env = "NOROSHI_DATABASE_ACQUIRE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub database_acquire_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub relay: RelayArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Components to run in this process.
    #[arg(
        long,
        env = "NOROSHI_COMPONENTS",
        value_enum,
        value_delimiter = ',',
        default_value = "relay"
    )]
    pub components: Vec<Component>,
    /// Largest event payload the store accepts, in bytes.
    #[arg(long, env = "NOROSHI_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,
    /// How long to wait for components to finish their work after SIGTERM.
    #[arg(long, env = "NOROSHI_SHUTDOWN_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
}

#[derive(Debug, Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long,
        env = "NOROSHI_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// First tokens of every subject: `<prefix>.<prefecture>.events.<type>.<id>`.
    #[arg(long, env = "NOROSHI_NATS_SUBJECT_PREFIX", default_value = "noroshi")]
    pub nats_subject_prefix: String,
    /// JetStream stream that carries the events.
    #[arg(long, env = "NOROSHI_NATS_STREAM", default_value = "NOROSHI_EVENTS")]
    pub nats_stream: String,
    /// Replicas of the stream (1 on one node, 3 in a cluster).
    #[arg(long, env = "NOROSHI_NATS_REPLICAS", default_value_t = 1)]
    pub nats_replicas: usize,
    /// How long events stay on the stream; `0s` keeps them.
    #[arg(long, env = "NOROSHI_NATS_MAX_AGE", value_parser = humantime::parse_duration, default_value = "0s")]
    pub nats_max_age: Duration,
    /// Largest size of the stream in bytes; -1 for no limit.
    #[arg(long, env = "NOROSHI_NATS_MAX_BYTES", default_value_t = -1, allow_negative_numbers = true)]
    pub nats_max_bytes: i64,
    /// Window in which JetStream drops a republished event id.
    #[arg(long, env = "NOROSHI_NATS_DUPLICATE_WINDOW", value_parser = humantime::parse_duration, default_value = "10m")]
    pub nats_duplicate_window: Duration,
}

#[derive(Debug, Args)]
pub struct RelayArgs {
    /// Most events the relay publishes per round.
    #[arg(long, env = "NOROSHI_RELAY_BATCH_SIZE", default_value_t = 500)]
    pub relay_batch_size: u32,
    /// Longest the relay sleeps without a commit notification.
    #[arg(long, env = "NOROSHI_RELAY_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub relay_poll_interval: Duration,
    /// How often a standby relay tries to take over.
    #[arg(long, env = "NOROSHI_RELAY_LEADER_RETRY", value_parser = humantime::parse_duration, default_value = "1s")]
    pub relay_leader_retry: Duration,
    /// How long to wait for one JetStream ack.
    #[arg(long, env = "NOROSHI_RELAY_PUBLISH_TIMEOUT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub relay_publish_timeout: Duration,
    /// Most events a projection applies in one transaction.
    #[arg(long, env = "NOROSHI_PROJECTION_BATCH_SIZE", default_value_t = 500)]
    pub projection_batch_size: usize,
    /// Positions of the event log between two snapshots of a view, which bounds the
    /// replay a read of the past needs (`as_of`, DESIGN.md §6).
    #[arg(long, env = "NOROSHI_SNAPSHOT_EVERY", default_value_t = 20_000)]
    pub snapshot_every: u64,
    /// How often the snapshotter looks whether a view is due a snapshot.
    #[arg(long, env = "NOROSHI_SNAPSHOT_INTERVAL", value_parser = humantime::parse_duration, default_value = "1m")]
    pub snapshot_interval: Duration,
    /// Events recorded more recently than this are left to the next snapshot.
    #[arg(long, env = "NOROSHI_SNAPSHOT_SETTLE", value_parser = humantime::parse_duration, default_value = "10s")]
    pub snapshot_settle: Duration,
    /// A view with fewer new events than `--snapshot-every` gets a snapshot once its last
    /// one is this old.
    #[arg(long, env = "NOROSHI_SNAPSHOT_MAX_AGE", value_parser = humantime::parse_duration, default_value = "1h")]
    pub snapshot_max_age: Duration,
}

#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address the gRPC API listens on.
    #[arg(long, env = "NOROSHI_GRPC_ADDR", default_value = "127.0.0.1:50051")]
    pub grpc_addr: String,
    /// Address the HTTP API listens on.
    #[arg(long, env = "NOROSHI_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: String,
    /// Longest a read waits for the `min_versions` it names before UNAVAILABLE.
    #[arg(long, env = "NOROSHI_READ_YOUR_WRITES_WAIT", value_parser = humantime::parse_duration, default_value = "5s")]
    pub read_your_writes_wait: Duration,
    /// Capacity figures declared longer ago than this are shown as stale.
    #[arg(long, env = "NOROSHI_STALE_AFTER", value_parser = humantime::parse_duration, default_value = "12h")]
    pub stale_after: Duration,
    /// `public_stats` suppresses counts of people from 1 up to this (exclusive).
    #[arg(long, env = "NOROSHI_PUBLIC_STATS_SUPPRESS_BELOW", default_value_t = 5)]
    pub suppress_below: u64,
    /// TOML file of development bearer tokens (`[[token]]` entries); see docs/identity.md.
    /// Refused unless `--allow-token-file`.
    #[arg(long, env = "NOROSHI_TOKENS_FILE")]
    pub tokens_file: Option<std::path::PathBuf>,
    /// Accept `--tokens-file`: for `noroshi dev`, tests and benchmarks only, since its
    /// tokens are plain text in a file and are never audited or revoked.
    #[arg(long, env = "NOROSHI_ALLOW_TOKEN_FILE")]
    pub allow_token_file: bool,
    /// Accept webhook endpoints over plain `http` (development only: alerts would cross
    /// the network unencrypted).
    #[arg(long, env = "NOROSHI_ALLOW_HTTP_WEBHOOKS")]
    pub allow_http_webhooks: bool,
    /// Longest a client may take to send a request's headers, from connecting or from
    /// its previous answer; also the longest a new connection may stay silent.
    #[arg(long, env = "NOROSHI_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration, default_value = "15s")]
    pub header_read_timeout: Duration,
    /// Longest an answered connection may go without a byte read or written while it
    /// waits on the client (live streams send a heartbeat every 15 s).
    #[arg(long, env = "NOROSHI_IDLE_TIMEOUT", value_parser = humantime::parse_duration, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Longest one request may take to be answered (503, or gRPC CANCELLED, after).
    #[arg(long, env = "NOROSHI_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, default_value = "30s")]
    pub request_timeout: Duration,
    /// Connections one client address may hold open at once over both listeners; 0: no
    /// cap (set it to 0 behind a load balancer, which has every client's address).
    #[arg(
        long,
        env = "NOROSHI_MAX_CONNECTIONS_PER_ADDRESS",
        default_value_t = 256
    )]
    pub max_connections_per_address: usize,
    /// Connections the process holds open at once over both listeners. Default: its
    /// file-descriptor limit (raised to the hard limit at start) less 1,024 kept for the
    /// database, NATS and files.
    #[arg(long, env = "NOROSHI_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// A web session unused for this long ends.
    #[arg(long, env = "NOROSHI_SESSION_IDLE", value_parser = humantime::parse_duration, default_value = "30m")]
    pub session_idle: Duration,
    /// A web session ends this long after login, however active.
    #[arg(long, env = "NOROSHI_SESSION_LIFETIME", value_parser = humantime::parse_duration, default_value = "12h")]
    pub session_lifetime: Duration,
    /// Consecutive failed logins that lock an account.
    #[arg(long, env = "NOROSHI_MAX_FAILED_LOGINS", default_value_t = 5)]
    pub max_failed_logins: u32,
    /// How long a locked account stays locked.
    #[arg(long, env = "NOROSHI_LOCKOUT", value_parser = humantime::parse_duration, default_value = "15m")]
    pub lockout: Duration,
    /// Login attempts one address may make per minute (all usernames together).
    #[arg(long, env = "NOROSHI_LOGIN_ATTEMPTS_PER_MINUTE", default_value_t = 30)]
    pub login_attempts_per_minute: u32,
    /// Mark session cookies Secure (on by itself with --tls-cert; set it behind a
    /// TLS-terminating proxy).
    #[arg(long, env = "NOROSHI_SECURE_COOKIES")]
    pub secure_cookies: bool,
    /// PEM certificate (chain) of both listeners; with it they speak TLS only.
    #[arg(long, env = "NOROSHI_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of `--tls-cert`.
    #[arg(long, env = "NOROSHI_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// PEM CA certificate that signs client certificates (`noroshi admin ca init`).
    #[arg(long, env = "NOROSHI_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// Whether the TLS listeners ask for client certificates.
    #[arg(long, env = "NOROSHI_TLS_CLIENT_CERTIFICATES", value_enum, default_value_t = ClientCertificates::Off)]
    pub tls_client_certificates: ClientCertificates,
    /// JIS X 0401 code of the prefecture this deployment serves.
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
    /// How long a facility has to answer an offer.
    #[arg(long, env = "NOROSHI_OFFER_DEADLINE", value_parser = humantime::parse_duration, default_value = "30m")]
    pub offer_deadline: Duration,
    /// How long an accepted placement holds a bed before HQ is alerted.
    #[arg(long, env = "NOROSHI_HOLD_DEADLINE", value_parser = humantime::parse_duration, default_value = "6h")]
    pub hold_deadline: Duration,
    /// Largest gRPC request message, in bytes.
    #[arg(long, env = "NOROSHI_MAX_REQUEST_BYTES", default_value_t = 1024 * 1024)]
    pub max_request_bytes: usize,
    /// Attempts of one command under concurrency conflicts before ABORTED.
    #[arg(long, env = "NOROSHI_COMMAND_ATTEMPTS", default_value_t = 32)]
    pub command_attempts: u32,
    /// Aggregate states cached in memory per aggregate type.
    #[arg(long, env = "NOROSHI_STATE_CACHE", default_value_t = 100_000)]
    pub state_cache: usize,
    /// How often the offer timer looks for new offers.
    #[arg(long, env = "NOROSHI_TIMER_POLL_INTERVAL", value_parser = humantime::parse_duration, default_value = "1s")]
    pub timer_poll_interval: Duration,
    /// How often the alert scheduler looks at the read models for alerts to raise,
    /// resolve or escalate.
    #[arg(long, env = "NOROSHI_ALERT_INTERVAL", value_parser = humantime::parse_duration, default_value = "5s")]
    pub alert_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ClientCertificates {
    /// Not asked for.
    Off,
    /// Checked when presented; other credentials still work without one.
    Optional,
    /// Every connection must present one from the CA.
    Required,
}

#[derive(Debug, Args)]
pub struct DrillArgs {
    #[command(subcommand)]
    pub command: DrillCommand,
}

#[derive(Debug, Subcommand)]
pub enum DrillCommand {
    /// Start a drill beside production and run it until `noroshi drill stop` or Ctrl-C.
    Start(StartArgs),
    /// End a drill: wait for it to stop, write its report, remove its stream and database.
    Stop(StopArgs),
    /// The drills beside the production database, running or kept.
    List(ListArgs),
}

#[derive(Debug, Args)]
pub struct StartArgs {
    /// The drill's name: lowercase letters, digits and `-`, starting with a letter.
    #[arg(value_parser = drill_name)]
    pub name: String,
    /// The scenario file (docs/drills.md; `ops/drills/` ships two).
    #[arg(long)]
    pub scenario: std::path::PathBuf,
    /// Simulated seconds per real second, instead of the scenario's.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Production's database: the drill copies its organisations and logins and lives
    /// beside it on the same server.
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Production's NATS: the drill publishes there under its own prefix and stream.
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Where the drill's HTTP API and web UI listen.
    #[arg(
        long,
        env = "NOROSHI_DRILL_HTTP_ADDR",
        default_value = "127.0.0.1:8180"
    )]
    pub http_addr: String,
    /// Where the drill's gRPC API listens.
    #[arg(
        long,
        env = "NOROSHI_DRILL_GRPC_ADDR",
        default_value = "127.0.0.1:50151"
    )]
    pub grpc_addr: String,
    /// JIS X 0401 code of the deployment's prefecture.
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
    /// Largest event payload the drill's store accepts, in bytes (as production's).
    #[arg(long, env = "NOROSHI_MAX_EVENT_BYTES", default_value_t = 1024 * 1024)]
    pub max_event_bytes: usize,
}

#[derive(Debug, Args)]
pub struct StopArgs {
    #[arg(value_parser = drill_name)]
    pub name: String,
    #[command(flatten)]
    pub database: DatabaseArgs,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Where to write the drill's report (default `drill-<name>.html` or `.pdf`).
    #[arg(long, short)]
    pub output: Option<std::path::PathBuf>,
    #[arg(long, value_enum, default_value = "html")]
    pub format: crate::report::Format,
    /// The Chromium that prints a PDF report.
    #[arg(long, env = "NOROSHI_CHROMIUM", default_value = "chromium")]
    pub chromium: std::path::PathBuf,
    /// Keep the drill's database and stream (to look at them again); `stop` again
    /// removes them.
    #[arg(long)]
    pub keep: bool,
    /// How long to wait for the running drill to shut down.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub wait: Duration,
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub database: DatabaseArgs,
}

/// A drill's name as the command line gives it.
pub fn drill_name(name: &str) -> Result<String, String> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 32
        && !name.ends_with('-');
    if ok {
        Ok(name.to_owned())
    } else {
        Err(
            "a drill's name is 1 to 32 lowercase letters, digits and '-', starting with a letter"
                .into(),
        )
    }
}
