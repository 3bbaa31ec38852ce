//! The read side in-process: the outbox relay into a private nats-server and every
//! projection out of it, as `noroshi serve --components relay,projections` runs them (an
//! [`Application`] of those components).

use std::time::Duration;

use noroshi::application::{Application, Component, Config};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{NatsServer, TestDatabase};

/// Source-stream versions each test runner keeps in memory: few, so that every test with
/// more streams than this also checks that forgotten versions are read back correctly.
/// Benchmarks use [`Pipeline::start_with`] and the production figure.
pub const TEST_KNOWN_VERSIONS: usize = 16;

/// Relay and projections running on `db` through `nats` until dropped.
#[derive(Debug)]
pub struct Pipeline {
    config: Config,
    shutdown: CancellationToken,
}

impl Pipeline {
    /// The read side, and its task: aborting it kills the process mid-batch.
    pub async fn start(db: &TestDatabase, nats: &NatsServer) -> (Self, JoinHandle<()>) {
        Self::start_with(db, nats, TEST_KNOWN_VERSIONS).await
    }

    /// With runners that keep `known_versions` source-stream versions in memory.
    pub async fn start_with(
        db: &TestDatabase,
        nats: &NatsServer,
        known_versions: usize,
    ) -> (Self, JoinHandle<()>) {
        Self::components(
            db,
            nats,
            known_versions,
            vec![Component::Relay, Component::Projections],
        )
        .await
    }

    /// Only the relay (`[Component::Relay]`) or only the projections, for a test that
    /// does something to the stream between them.
    pub async fn components(
        db: &TestDatabase,
        nats: &NatsServer,
        known_versions: usize,
        components: Vec<Component>,
    ) -> (Self, JoinHandle<()>) {
        let mut config = Config::new(db.url());
        config.database.max_connections = 10;
        config.components = components;
        config.nats.url = nats.url();
        config.relay.poll_interval = Duration::from_millis(100);
        config.relay.leader_retry = Duration::from_millis(100);
        config.relay.max_backoff = Duration::from_millis(500);
        config.projections.batch_size = 200;
        config.projections.known_versions = known_versions;
        // Tests take snapshots of the views when they mean to (`history::snapshot`); the
        // snapshotter's own rounds would come at a time of their own.
        config.projections.snapshots.interval = Duration::from_secs(24 * 3600);
        config.shutdown_timeout = Duration::from_secs(5);
        let pipeline = Self {
            config,
            shutdown: CancellationToken::new(),
        };
        let task = pipeline.restart().await;
        (pipeline, task)
    }

    /// Another read-side process with the same configuration (it takes over the leads
    /// that no other copy holds), and its task.
    pub async fn restart(&self) -> JoinHandle<()> {
        let application = Application::build(self.config.clone())
            .await
            .expect("build the read side");
        let stop = application.shutdown();
        let shutdown = self.shutdown.clone();
        tokio::spawn(async move {
            let run = application.run_until_stopped();
            tokio::pin!(run);
            tokio::select! {
                result = &mut run => result.expect("the read side runs"),
                () = shutdown.cancelled() => {
                    stop.cancel();
                    run.await.expect("the read side stops");
                }
            }
        })
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A seeded world with its read side: the API, whose reads wait up to 10 s for the
/// writes they name (`min_versions`), a private nats-server, and the relay and
/// projections; each `(facility, its actor, category, beds)` declared by the facility
/// itself, every bed ready and free.
pub async fn live_world(
    beds: &[(crate::api::Actor, &str, noroshi_proto::v1::BedCategory, i64)],
) -> (crate::api::TestApi, (Pipeline, NatsServer)) {
    let nats = NatsServer::start().await;
    let api = crate::api::TestApi::with(crate::api::ApiOptions {
        views: noroshi_projections::views::ViewSettings {
            read_your_writes_wait: Duration::from_secs(10),
            ..noroshi_projections::views::ViewSettings::default()
        },
        ..crate::api::ApiOptions::default()
    })
    .await;
    api.seed().await;
    for &(actor, facility, category, count) in beds {
        api.declare(actor, facility, category, count, count, 0)
            .await;
    }
    let (pipeline, _) = Pipeline::start(&api.db, &nats).await;
    (api, (pipeline, nats))
}
