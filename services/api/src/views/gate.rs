//! What the views ask of the rest of the system: whether a principal may follow a
//! stream (the command side's states and the domain's rule) and where reads of
//! patients are written (the audit log).

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use noroshi_app::CommandHandler;
use noroshi_domain::authz::Principal;
use noroshi_event_store::StreamId;
use noroshi_identity::audit;
use noroshi_projections::views::{PiiAudit, QueryError, ViewSettings, Views, Visibility};
use sqlx::PgPool;
use uuid::Uuid;

/// The views' [`Visibility`] and [`PiiAudit`].
#[derive(Debug, Clone)]
pub struct Gate {
    handler: Arc<CommandHandler>,
    pool: PgPool,
}

impl Gate {
    pub fn new(handler: Arc<CommandHandler>, pool: PgPool) -> Self {
        Self { handler, pool }
    }

    /// The views over `pool`, guarded by this gate.
    pub fn views(self, settings: ViewSettings) -> Views {
        let store = self.handler.store().clone();
        let pool = self.pool.clone();
        let gate = Arc::new(self);
        Views::new(pool, store, settings, gate.clone(), gate)
    }
}

/// A failure of another part, as a view reports it.
fn query_error(
    code: noroshi_domain::ErrorCode,
    error: impl std::error::Error + Send + Sync + 'static,
) -> QueryError {
    match code {
        noroshi_domain::ErrorCode::Unavailable => QueryError::Unavailable(error.to_string()),
        _ => QueryError::internal(error),
    }
}

impl Visibility for Gate {
    fn may_follow<'a>(
        &'a self,
        principal: &'a Principal,
        stream: &'a StreamId,
    ) -> BoxFuture<'a, Result<bool, QueryError>> {
        async move {
            self.handler
                .may_follow(principal, stream)
                .await
                .map_err(|e| query_error(e.code(), e))
        }
        .boxed()
    }
}

impl PiiAudit for Gate {
    fn patients_read<'a>(
        &'a self,
        principal: &'a Principal,
        via: &'a str,
        cases: &'a [Uuid],
    ) -> BoxFuture<'a, Result<(), QueryError>> {
        async move {
            audit::pii_reads(&self.pool, principal, via, cases)
                .await
                .map_err(|e| query_error(e.code(), e))
        }
        .boxed()
    }
}
