//! Prometheus metrics at `/metrics`: request counts and latencies of both APIs (one
//! tower layer on the HTTP router and on the gRPC server), and, read from PostgreSQL
//! when scraped, the event store's head position (its rate is the append rate), the
//! relay's backlog, and each projection's lag; and how many appends this process
//! committed together with others (group commit).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use sqlx::PgPool;
use tracing::Instrument;

use crate::error::ApiError;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// `http` or `grpc`.
    transport: &'static str,
    /// The route (`/api/v1/views/bed_board`) or gRPC method (`/noroshi.v1.X/Y`).
    route: String,
    /// The HTTP status, or the gRPC status code.
    status: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProjectionLabels {
    projection: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    /// `http` or `grpc`.
    listener: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    listener: &'static str,
    /// `per_address` or `total`.
    reason: &'static str,
}

/// The listeners' connection figures (`crate::listener`).
#[derive(Debug, Clone, Default)]
pub struct ConnectionMetrics {
    open: Family<ListenerLabels, Gauge>,
    refused: Family<RefusalLabels, Counter>,
    timed_out: Family<ListenerLabels, Counter>,
}

impl ConnectionMetrics {
    pub(crate) fn opened(&self, listener: &'static str) {
        self.open.get_or_create(&ListenerLabels { listener }).inc();
    }

    pub(crate) fn closed(&self, listener: &'static str) {
        self.open.get_or_create(&ListenerLabels { listener }).dec();
    }

    pub(crate) fn refused(&self, listener: &'static str, reason: &'static str) {
        self.refused
            .get_or_create(&RefusalLabels { listener, reason })
            .inc();
    }

    pub(crate) fn timed_out(&self, listener: &'static str) {
        self.timed_out
            .get_or_create(&ListenerLabels { listener })
            .inc();
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_open",
            "Client connections open on each listener",
            self.open.clone(),
        );
        registry.register(
            "connections_refused",
            "Client connections closed at once because their address or the process held too many",
            self.refused.clone(),
        );
        registry.register(
            "connections_timed_out",
            "Client connections closed because they were quiet for too long",
            self.timed_out.clone(),
        );
    }
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

/// The process's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
    head_position: Gauge,
    relay_backlog: Gauge,
    projection_lag: Family<ProjectionLabels, Gauge>,
    projection_foreign: Family<ProjectionLabels, Gauge>,
    projection_healed: Family<ProjectionLabels, Gauge>,
    shared_statements: Counter,
    shared_appends: Counter,
    connections: ConnectionMetrics,
    /// Held while the two counters above catch up with the store's.
    sharing: std::sync::Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("noroshi");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered by the HTTP and gRPC APIs",
            requests.clone(),
        );
        let latency = Family::<RequestLabels, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a request (for a stream: to start answering)",
            latency.clone(),
        );
        let head_position = Gauge::default();
        registry.register(
            "event_store_head_position",
            "Global position of the newest committed event; its rate is the append rate",
            head_position.clone(),
        );
        let relay_backlog = Gauge::default();
        registry.register(
            "relay_backlog_events",
            "Committed events not yet acknowledged by JetStream",
            relay_backlog.clone(),
        );
        let projection_lag = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_lag_positions",
            "How far each projection is behind the event store, in event positions",
            projection_lag.clone(),
        );
        let projection_foreign = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_foreign_events",
            "Events of another store each projection met on its stream and refused (never applied)",
            projection_foreign.clone(),
        );
        let projection_healed = Family::<ProjectionLabels, Gauge>::default();
        registry.register(
            "projection_healed_events",
            "Events each projection read back from the event store because its stream lacked them",
            projection_healed.clone(),
        );
        let shared_statements = Counter::default();
        registry.register(
            "append_shared_statements",
            "Statements of this process that appended more than one command's events (group commit)",
            shared_statements.clone(),
        );
        let shared_appends = Counter::default();
        registry.register(
            "append_shared_appends",
            "Appends that went in such shared statements; divided by the statements, the batch size",
            shared_appends.clone(),
        );
        let connections = ConnectionMetrics::default();
        connections.register(&mut registry);
        Self {
            registry,
            connections,
            requests,
            latency,
            head_position,
            relay_backlog,
            projection_lag,
            projection_foreign,
            projection_healed,
            shared_statements,
            shared_appends,
            sharing: std::sync::Mutex::default(),
        }
    }
}

impl Metrics {
    /// The listeners' connection figures, shown with the others.
    pub fn connections(&self) -> ConnectionMetrics {
        self.connections.clone()
    }

    fn observe(&self, labels: RequestLabels, started: Instant) {
        self.latency
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
        self.requests.get_or_create(&labels).inc();
    }

    /// The metrics in the OpenMetrics text format, the store's figures read now.
    /// `shared` is the event store's count of shared statements and the appends in them
    /// (`EventStore::batched`).
    pub async fn render(
        &self,
        store: &noroshi_event_store::EventStore,
        views: &PgPool,
    ) -> Result<String, ApiError> {
        let shared = store.batched().get();
        {
            // Counters only move forward: add what the store counted since the last scrape.
            let _catching_up = self
                .sharing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let (statements, appends) = shared;
            self.shared_statements
                .inc_by(statements.saturating_sub(self.shared_statements.get()));
            self.shared_appends
                .inc_by(appends.saturating_sub(self.shared_appends.get()));
        }
        let (head, backlog) = store.head().await?;
        self.head_position
            .set(i64::try_from(head).unwrap_or(i64::MAX));
        self.relay_backlog
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        for (projection, lag) in noroshi_projections::views::lag(views, head).await? {
            self.projection_lag
                .get_or_create(&ProjectionLabels { projection })
                .set(i64::try_from(lag).unwrap_or(i64::MAX));
        }
        for (projection, refused, healed) in
            noroshi_projections::views::stream_health(views).await?
        {
            let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.projection_healed
                .get_or_create(&ProjectionLabels {
                    projection: projection.clone(),
                })
                .set(gauge(healed));
            self.projection_foreign
                .get_or_create(&ProjectionLabels { projection })
                .set(gauge(refused));
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .map_err(ApiError::internal)?;
        Ok(text)
    }
}

/// The content type of [`Metrics::render`].
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Counts and times every request of the service it wraps, each in a `request` span
/// (transport, method, route, then status) that what handles it adds to: a command
/// records its `command_id`, `correlation_id` and `stream_id` there (DESIGN.md §9).
#[derive(Debug, Clone)]
pub struct MetricsLayer(pub Arc<Metrics>);

impl<S> tower::Layer<S> for MetricsLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
        // A route pattern, never the raw path: ids in paths would make labels unbounded.
        let route = if grpc {
            request.uri().path().to_owned()
        } else {
            request
                .extensions()
                .get::<axum::extract::MatchedPath>()
                .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned())
        };
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let transport = if grpc { "grpc" } else { "http" };
        let span = tracing::info_span!(
            "request",
            transport,
            method = %request.method(),
            route = %route,
            status = tracing::field::Empty,
            command_id = tracing::field::Empty,
            correlation_id = tracing::field::Empty,
            stream_id = tracing::field::Empty,
        );
        let answer = span.in_scope(|| self.inner.call(request));
        let within = span.clone();
        Box::pin(
            async move {
                let response = answer.await?;
                // gRPC errors come as trailers-only responses, their status in the headers.
                let status = if grpc {
                    response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("0")
                        .to_owned()
                } else {
                    response.status().as_u16().to_string()
                };
                span.record("status", status.as_str());
                tracing::debug!(
                    elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                    "request answered"
                );
                metrics.observe(
                    RequestLabels {
                        transport,
                        route,
                        status,
                    },
                    started,
                );
                Ok(response)
            }
            .instrument(within),
        )
    }
}
