//! Leadership of a singleton component (the outbox relay, each projection, each
//! scheduler) through a PostgreSQL advisory lock.
//!
//! The lock lives on one dedicated connection: when the leader's process dies, or its
//! connection does, PostgreSQL releases the lock and a waiting copy takes over. The
//! leader does its own database work on that same connection, so a leader that has
//! lost its connection cannot go on writing as if it still led.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};
use tokio_util::sync::CancellationToken;

use crate::error::StoreError;

/// A held advisory lock and the connection that holds it.
#[derive(Debug)]
pub struct Leadership {
    connection: PgConnection,
    key: i64,
}

impl Leadership {
    /// Waits until this process holds lock `key`, the lock of `role`; `None` when shut
    /// down first.
    ///
    /// Retries every `retry` while another process leads, and on connection failures.
    /// The lock's connection is named `<application name> leads <role>` in
    /// `pg_stat_activity`, so that operators see which node leads what (`ops/cluster
    /// status`); the application name is the database URL's `application_name`, or
    /// `noroshi`.
    pub async fn acquire(
        options: &PgConnectOptions,
        key: i64,
        role: &str,
        retry: Duration,
        shutdown: &CancellationToken,
    ) -> Option<Self> {
        let name = format!(
            "{} leads {role}",
            options.get_application_name().unwrap_or("noroshi")
        );
        let options = options.clone().application_name(&name);
        let mut waiting_logged = false;
        let mut connection: Option<PgConnection> = None;
        loop {
            if shutdown.is_cancelled() {
                return None;
            }
            let attempt = async {
                let conn = match connection.as_mut() {
                    Some(conn) => conn,
                    None => connection.insert(options.connect().await?),
                };
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(conn)
                    .await
            };
            match attempt.await {
                Ok(true) => {
                    let connection = connection.take()?;
                    tracing::info!(lock_key = key, "leadership acquired");
                    return Some(Self { connection, key });
                }
                Ok(false) if !waiting_logged => {
                    tracing::info!(lock_key = key, "another process leads; standing by");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => {
                    let error = StoreError::from(error);
                    tracing::warn!(lock_key = key, error = %error, "cannot try leadership");
                    connection = None;
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return None,
                () = tokio::time::sleep(retry) => {}
            }
        }
    }

    /// The connection that holds the lock; do the leader's writes on it.
    pub fn connection(&mut self) -> &mut PgConnection {
        &mut self.connection
    }

    /// Gives the lock up now rather than when the connection drops.
    pub async fn release(mut self) {
        let released = sqlx::query("SELECT pg_advisory_unlock($1)")
            .bind(self.key)
            .execute(&mut self.connection)
            .await;
        if let Err(error) = released {
            tracing::debug!(error = %error, "advisory unlock failed; closing the connection releases it");
        }
        let _ = self.connection.close().await;
        tracing::info!(lock_key = self.key, "leadership released");
    }
}
