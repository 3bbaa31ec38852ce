//! Why a noroshi process could not do what it was asked.

use std::time::Duration;

use noroshi_event_store::relay;
use noroshi_event_store::wire::InvalidSubjectPrefix;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
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
    #[error("{0}")]
    Connections(#[source] noroshi_api::listener::LimitsError),
    #[error("invalid duration {0:?}")]
    Duration(Duration),
    #[error("cannot set up the offer timer")]
    Timers(#[source] noroshi_app::CommandError),
    #[error("import failed")]
    Import(#[source] crate::import::ImportError),
    #[error("report failed")]
    Report(#[source] crate::report::ReportError),
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
    #[error("{0}")]
    Drill(String),
    #[error("admin")]
    Admin(#[source] crate::apply::AdminError),
    #[error("the simulation failed")]
    Simulate(#[source] noroshi_simulator::SimulateError),
    #[error("cannot write the report")]
    Output(#[source] std::io::Error),
    #[error("cannot listen for shutdown signals")]
    Signals(#[source] std::io::Error),
}
