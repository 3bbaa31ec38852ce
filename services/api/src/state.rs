//! What the handlers of each transport share: the command handler, the views, the
//! authenticator and the metrics.

use std::sync::Arc;

use noroshi_app::CommandHandler;
use noroshi_identity::Authenticator;
use noroshi_projections::views::Views;

use crate::metrics::Metrics;

/// What the HTTP handlers share.
#[derive(Debug, Clone)]
pub struct HttpContext {
    pub auth: Arc<Authenticator>,
    pub views: Arc<Views>,
    pub metrics: Arc<Metrics>,
    /// Runs the commands of `/api/v1/commands/…`.
    pub handler: Arc<CommandHandler>,
    /// Longest accepted request body; more is RESOURCE_EXHAUSTED.
    pub max_body_bytes: usize,
    /// Webhook endpoints may be plain `http` (development only).
    pub allow_http_webhooks: bool,
    /// The drill this server serves (DESIGN.md §12): every page shows its banner.
    pub drill: Option<Arc<DrillMark>>,
    /// How often a live stream with nothing to send sends a comment, so that a quiet
    /// view never looks like an idle connection.
    pub heartbeat: std::time::Duration,
}

/// What every gRPC service shares.
#[derive(Debug, Clone)]
pub struct GrpcContext {
    pub handler: Arc<CommandHandler>,
    pub auth: Arc<Authenticator>,
    pub views: Arc<Views>,
    pub metrics: Arc<Metrics>,
}

/// Which drill a server serves.
#[derive(Debug, Clone)]
pub struct DrillMark {
    pub name: String,
    pub title: String,
    pub title_en: String,
}
