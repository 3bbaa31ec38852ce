//! The read side in-process: the outbox relay into a private nats-server and the
//! projection runner out of it, as `serve --components relay,projections` runs them.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use noroshi_event_store::relay::{self, RelayConfig};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_projections::bed_board::BedBoard;
use noroshi_projections::case_board::CaseBoard;
use noroshi_projections::facility_inbox::FacilityInbox;
use noroshi_projections::placement_queue::PlacementQueue;
use noroshi_projections::public_stats::PublicStats;
use noroshi_projections::runner::{self, Projection, ProjectionStatus, RunnerConfig};
use noroshi_projections::timeline::Timeline;
use sqlx::postgres::PgConnectOptions;
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
    db_url: String,
    nats_url: String,
    shutdown: CancellationToken,
    known_versions: usize,
}

impl Pipeline {
    pub async fn start(db: &TestDatabase, nats: &NatsServer) -> (Self, JoinHandle<()>) {
        Self::start_with(db, nats, TEST_KNOWN_VERSIONS).await
    }

    /// With runners that keep `known_versions` source-stream versions in memory.
    pub async fn start_with(
        db: &TestDatabase,
        nats: &NatsServer,
        known_versions: usize,
    ) -> (Self, JoinHandle<()>) {
        let pipeline = Self {
            db_url: db.url().to_owned(),
            nats_url: nats.url(),
            shutdown: CancellationToken::new(),
            known_versions,
        };
        let mut config = RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap());
        config.poll_interval = Duration::from_millis(100);
        config.leader_retry_interval = Duration::from_millis(100);
        config.max_backoff = Duration::from_millis(500);
        tokio::spawn(relay::run(
            db.pool().clone(),
            nats.client().await,
            config,
            pipeline.shutdown.clone(),
        ));
        let (projection, _) = pipeline.spawn_bed_board().await;
        pipeline.spawn(PlacementQueue).await;
        pipeline.spawn(CaseBoard).await;
        pipeline.spawn(FacilityInbox).await;
        pipeline.spawn(Timeline).await;
        pipeline.spawn(PublicStats).await;
        (pipeline, projection)
    }

    /// Another copy of the `bed_board` runner (it leads when no other copy does).
    pub async fn spawn_bed_board(&self) -> (JoinHandle<()>, Arc<ProjectionStatus>) {
        self.spawn(BedBoard).await
    }

    /// A runner of `projection` (it leads when no other copy does).
    pub async fn spawn<P: Projection>(
        &self,
        projection: P,
    ) -> (JoinHandle<()>, Arc<ProjectionStatus>) {
        let status = Arc::new(ProjectionStatus::default());
        let config = RunnerConfig {
            stream: RelayConfig::new(SubjectPrefix::parse("noroshi").unwrap())
                .stream
                .name,
            filter_subject: "noroshi.*.events.>".into(),
            max_batch: 200,
            leader_retry_interval: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            known_versions: self.known_versions,
        };
        let client = async_nats::connect(&self.nats_url).await.unwrap();
        let task = tokio::spawn(runner::run(
            PgConnectOptions::from_str(&self.db_url).unwrap(),
            client,
            config,
            projection,
            status.clone(),
            self.shutdown.clone(),
        ));
        (task, status)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
