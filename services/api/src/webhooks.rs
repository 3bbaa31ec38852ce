//! Webhook delivery (DESIGN.md §5.6; docs/alerts.md "Webhooks"): every alert of an
//! endpoint's organisation's audience is POSTed to it as canonical protobuf JSON (the
//! `AlertRow` the `alerts` view answers), signed, until the endpoint answers 2xx:
//!
//! - `Noroshi-Timestamp: <unix seconds>`;
//! - `Noroshi-Signature: v1=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`;
//! - `Idempotency-Key: <alert id>`: a retried delivery carries the same key.
//!
//! A failed attempt is tried again after 2, 4, 8 … seconds, at most an hour apart, and
//! forever; an endpoint whose delivery failed three times in a row shows as failing.
//! Deliveries are taken with a lease (`FOR UPDATE SKIP LOCKED`), so two senders share
//! the work and neither sends what the other is sending.

use std::time::Duration;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use noroshi_identity::webhooks::{self, Due};
use sha2::Sha256;
use sqlx::PgPool;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Time between looks for alerts to queue and deliveries due.
    pub interval: Duration,
    /// Longest wait for an endpoint's answer.
    pub timeout: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(10),
        }
    }
}

/// How long a sender keeps a delivery it took before another may take it.
const LEASE: time::Duration = time::Duration::minutes(1);
/// Longest wait between two attempts.
const LONGEST_BACKOFF: i64 = 3600;

type Https = hyper_rustls::HttpsConnector<HttpConnector>;

/// The signature of `body` sent at `timestamp` under `secret`: what a receiver computes
/// again and compares.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        // HMAC takes a key of any length.
        return String::new();
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Seconds before the next attempt after `attempts` failed ones.
fn backoff(attempts: i32) -> i64 {
    let exponent = u32::try_from(attempts.clamp(1, 12)).unwrap_or(12);
    2_i64.pow(exponent).min(LONGEST_BACKOFF)
}

/// The webhook sender: an HTTPS client (plain `http` too, for the endpoints a
/// development deployment allows) and its settings.
#[derive(Debug, Clone)]
pub struct Sender {
    client: Client<Https, Full<Bytes>>,
    settings: WebhookSettings,
}

impl Sender {
    pub fn new(settings: WebhookSettings) -> Result<Self, std::io::Error> {
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
            .map_err(std::io::Error::other)?
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            client: Client::builder(TokioExecutor::new()).build(https),
            settings,
        })
    }

    /// Queues the alerts each endpoint is owed, then sends what is due at `now`.
    pub async fn round(&self, pool: &PgPool, now: OffsetDateTime) -> Result<(), ApiError> {
        round(pool, &self.client, &self.settings, now).await
    }
}

/// Sends until `shutdown`; a failed round is logged and the next one tries again.
pub async fn run(
    pool: PgPool,
    settings: WebhookSettings,
    clock: impl Fn() -> OffsetDateTime + Send + Sync + 'static,
    shutdown: CancellationToken,
) {
    let sender = match Sender::new(settings) {
        Ok(sender) => sender,
        Err(error) => {
            tracing::error!(error = %error, "webhook sender cannot start");
            return;
        }
    };
    tracing::info!("webhook sender running");
    while !shutdown.is_cancelled() {
        if let Err(error) = sender.round(&pool, clock()).await {
            tracing::warn!(error = %error, "webhook round failed; retrying");
        }
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(settings.interval) => {}
        }
    }
    tracing::info!("webhook sender stopped");
}

/// Queues the alerts each endpoint is owed, then sends what is due.
async fn round(
    pool: &PgPool,
    client: &Client<Https, Full<Bytes>>,
    settings: &WebhookSettings,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    for endpoint in webhooks::endpoints(pool).await? {
        let told = noroshi_projections::alerts::told_since(
            pool,
            &endpoint.role,
            &endpoint.organisation_id,
            endpoint.created_at,
            &endpoint.kinds,
        )
        .await
        .map_err(ApiError::internal)?;
        if told.is_empty() {
            continue;
        }
        let queued = webhooks::queued(pool, endpoint.webhook_id, &told).await?;
        let new: Vec<uuid::Uuid> = told.into_iter().filter(|a| !queued.contains(a)).collect();
        if !new.is_empty() {
            webhooks::enqueue(pool, endpoint.webhook_id, &new, now).await?;
        }
    }
    for delivery in webhooks::due(pool, now, LEASE, 50).await? {
        send(pool, client, settings, &delivery, now).await?;
    }
    Ok(())
}

/// One attempt at one delivery, recorded whatever its outcome.
async fn send(
    pool: &PgPool,
    client: &Client<Https, Full<Bytes>>,
    settings: &WebhookSettings,
    delivery: &Due,
    now: OffsetDateTime,
) -> Result<(), ApiError> {
    let Some(alert) = noroshi_projections::alerts::one(pool, delivery.alert_id)
        .await
        .map_err(ApiError::internal)?
    else {
        return Ok(());
    };
    let row = noroshi_projections::alerts::query::row(&alert, now);
    let body = serde_json::to_vec(&crate::json::to_json(&row)?).map_err(ApiError::internal)?;
    let timestamp = now.unix_timestamp();
    let request = http::Request::post(&delivery.url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("noroshi-timestamp", timestamp.to_string())
        .header(
            "noroshi-signature",
            signature(&delivery.secret, timestamp, &body),
        )
        .header("idempotency-key", delivery.alert_id.to_string())
        .header("noroshi-webhook-id", delivery.webhook_id.to_string())
        .body(Full::new(Bytes::from(body)));
    let (status, error) = match request {
        Err(error) => (None, Some(error.to_string())),
        Ok(request) => {
            match tokio::time::timeout(settings.timeout, client.request(request)).await {
                Err(_) => (None, Some("no answer in time".to_owned())),
                Ok(Err(error)) => (None, Some(error.to_string())),
                Ok(Ok(response)) => {
                    let status = response.status().as_u16();
                    let failed = !response.status().is_success();
                    (
                        Some(status),
                        failed.then(|| format!("answered {}", response.status())),
                    )
                }
            }
        }
    };
    let retry_at = now + time::Duration::seconds(backoff(delivery.attempts + 1));
    if let Some(error) = &error {
        tracing::info!(
            webhook_id = %delivery.webhook_id,
            alert_id = %delivery.alert_id,
            attempts = delivery.attempts + 1,
            error,
            "webhook delivery failed; tried again later"
        );
    }
    webhooks::attempted(
        pool,
        delivery.webhook_id,
        delivery.alert_id,
        now,
        status,
        error.as_deref(),
        retry_at,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_over_the_timestamp_and_the_body() {
        // As a receiver computes it (docs/alerts.md): Python's hmac and openssl both give
        // this for key `whsec_test` over `1700000000.{}`.
        assert_eq!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            "v1=35495024f4ef3f94e5a93e22221544c4b75e9a42300cd965ab81cb85cd994e91"
        );
        assert_ne!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            signature("whsec_other", 1_700_000_000, b"{}")
        );
        assert_ne!(
            signature("whsec_test", 1_700_000_000, b"{}"),
            signature("whsec_test", 1_700_000_001, b"{}")
        );
    }

    #[test]
    fn retries_wait_longer_each_time_up_to_an_hour() {
        assert_eq!(backoff(1), 2);
        assert_eq!(backoff(2), 4);
        assert_eq!(backoff(5), 32);
        assert_eq!(backoff(40), LONGEST_BACKOFF);
    }
}
