//! A fresh PostgreSQL database per test.

use std::str::FromStr;

use noroshi_event_store::{EventStore, StoreLimits};
use sqlx::postgres::{PgConnectOptions, PgPool};
use sqlx::{AssertSqlSafe, ConnectOptions, Connection, Executor};

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A migrated database that exists for one test and is dropped with this value.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    pool: PgPool,
}

fn admin_url() -> String {
    std::env::var("NOROSHI_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// `url` with its database name replaced by `database`, keeping any query string.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{}", &base[..path_start], database);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

impl TestDatabase {
    /// Creates and migrates a database, with a pool of up to 10 connections.
    pub async fn create() -> Self {
        Self::with_pool_size(10).await
    }

    /// Creates and migrates a database with a pool of up to `max_connections`.
    pub async fn with_pool_size(max_connections: u32) -> Self {
        let admin = admin_url();
        let name = format!("noroshi_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = PgConnectOptions::from_str(&admin)
            .expect("NOROSHI_TEST_DATABASE_URL is not a valid PostgreSQL URL")
            .connect()
            .await
            .unwrap_or_else(|e| {
                panic!("cannot reach PostgreSQL at {admin} ({e}); run ops/test or set NOROSHI_TEST_DATABASE_URL")
            });
        // The name is generated here, never input: safe to splice.
        conn.execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create test database");
        conn.close().await.ok();

        let url = with_database(&admin, &name);
        let pool = noroshi_event_store::pool_options()
            .max_connections(max_connections)
            .connect_with(noroshi_event_store::connect_options(&url).expect("test database url"))
            .await
            .expect("connect to test database");
        noroshi::application::migrate(&pool)
            .await
            .expect("migrate the test database");
        Self { name, url, pool }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// URL of this database, for child processes.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An event store on this database with default limits.
    pub fn store(&self) -> EventStore {
        EventStore::new(self.pool.clone(), StoreLimits::default())
    }

    /// How many events are stored.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// How many events of `event_type` (e.g. `noroshi.v1.CaseReported`) are stored.
    pub async fn event_count_of(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        // Drop may run on the test's runtime thread, which is blocked while we wait here:
        // do not touch the pool (its connections live on that runtime). FORCE ends them.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async move {
                let mut conn = PgConnectOptions::from_str(&admin_url())
                    .ok()?
                    .connect()
                    .await
                    .ok()?;
                // A drill started beside the test's database lives in its own
                // (`<name>_drill_<drill>`): it goes too.
                let drills: Vec<String> = sqlx::query_scalar(
                    "SELECT datname FROM pg_database WHERE starts_with(datname, $1)",
                )
                .bind(format!("{name}_drill_"))
                .fetch_all(&mut conn)
                .await
                .unwrap_or_default();
                for drill in drills {
                    let _ = conn
                        .execute(AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {drill} WITH (FORCE)"
                        )))
                        .await;
                }
                conn.execute(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn replaces_the_database_name() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgres://u@h/db?sslmode=disable", "x"),
            "postgres://u@h/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://u@h:1", "x"), "postgres://u@h:1/x");
    }
}
