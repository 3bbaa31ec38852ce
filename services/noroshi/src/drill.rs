//! `noroshi drill start|stop|list` (DESIGN.md §12, docs/drills.md): a drill beside
//! production, in a tenant of its own.
//!
//! A drill named `winter` of the production database `noroshi` lives in the database
//! `noroshi_drill_winter` on the same server, and publishes its events under the subject
//! prefix `drill.winter.noroshi` to the stream `NOROSHI_EVENTS_DRILL_WINTER` on the same
//! NATS: nothing of it reaches production's database or subjects, and nothing of
//! production's reaches it. It starts with production's organisations, medical areas
//! and logins (users and their password hashes), never with its events; the scenario
//! declares the beds and plays the health centers and facilities through the drill's own
//! HTTP API with API clients issued in the drill's database. People log in to the
//! drill's web UI (its own port) as every day, under a 訓練 / DRILL banner.
//!
//! `drill start` runs the drill in the foreground until `drill stop` (from anywhere
//! that reaches the database) or Ctrl-C. `drill stop` asks it to end, waits until it
//! has, writes the drill's report and removes the drill's stream and database (unless
//! `--keep`). While a drill runs, its process holds an advisory lock in the drill's
//! database: that is how `stop` and `list` know it runs.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{FacilityId, PrincipalId};
use noroshi_event_store::Prefecture;
use noroshi_identity::clients::{self, NewClient};
use noroshi_identity::drill::{self as tenant, NewDrill};
use noroshi_simulator::{Organisation, Scenario};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Connection, PgConnection};
use time::OffsetDateTime;

use crate::application::{self, Application, Component, Config};
use crate::cli::{DrillArgs, DrillCommand, ListArgs, NatsArgs, StartArgs, StopArgs};
use crate::error::ServeError;
use crate::report::Format;

/// Key of the advisory lock a running drill holds in its database.
const RUNNING_LOCK: i64 = 0x6e72_735f_6472_696c; // "nrs_dril"

/// Who the drill acts as when it sets up its tenant.
const DRILL_ACTOR: &str = "noroshi-drill";

/// The longest name PostgreSQL keeps for a database.
const MAX_DATABASE_NAME: usize = 63;

fn fail(message: impl Into<String>) -> ServeError {
    ServeError::Drill(message.into())
}

fn say(text: impl std::fmt::Display) -> Result<(), ServeError> {
    writeln!(std::io::stdout().lock(), "{text}").map_err(ServeError::Output)
}

/// Where a drill of a production database lives.
#[derive(Debug, Clone)]
struct Tenant {
    /// The drill's database name and URL.
    database: String,
    url: String,
    subject_prefix: String,
    stream: String,
}

impl Tenant {
    fn of(name: &str, production_url: &str, nats: &NatsArgs) -> Result<Self, ServeError> {
        let production = production_database(production_url)?;
        let database = format!("{production}_drill_{}", name.replace('-', "_"));
        if database.len() > MAX_DATABASE_NAME {
            return Err(fail(format!(
                "the drill's database name {database:?} is longer than PostgreSQL's \
                 {MAX_DATABASE_NAME} bytes: choose a shorter drill name"
            )));
        }
        Ok(Self {
            url: with_database(production_url, &database)?,
            database,
            subject_prefix: format!(
                "{}.{name}.{}",
                tenant::SUBJECT_PREFIX,
                nats.nats_subject_prefix
            ),
            stream: format!(
                "{}_DRILL_{}",
                nats.nats_stream,
                name.replace('-', "_").to_ascii_uppercase()
            ),
        })
    }
}

/// The database a PostgreSQL URL names, checked to be a plain identifier.
fn production_database(url: &str) -> Result<String, ServeError> {
    let options: PgConnectOptions = url.parse().map_err(ServeError::DatabaseUrl)?;
    let name = options
        .get_database()
        .ok_or_else(|| fail("the database URL must name production's database"))?;
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(fail(format!(
            "production's database name {name:?} is not a plain lowercase identifier"
        )));
    }
    Ok(name.to_owned())
}

/// `url` naming `database` instead of its own.
fn with_database(url: &str, database: &str) -> Result<String, ServeError> {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority = base
        .find("://")
        .map(|at| at + 3)
        .ok_or_else(|| fail("the database URL must be postgres://…/<database>"))?;
    let path = base[authority..]
        .find('/')
        .map(|at| authority + at)
        .ok_or_else(|| fail("the database URL must name production's database"))?;
    let mut out = format!("{}/{database}", &base[..path]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    Ok(out)
}

async fn connect(url: &str, connections: u32) -> Result<PgPool, ServeError> {
    let options = noroshi_event_store::connect_options(url).map_err(ServeError::DatabaseUrl)?;
    PgPoolOptions::new()
        .max_connections(connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(ServeError::DatabaseUrl)
}

async fn database_exists(production: &PgPool, database: &str) -> Result<bool, ServeError> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(database)
        .fetch_one(production)
        .await
        .map_err(ServeError::DatabaseUrl)
}

fn drill_actor() -> Result<Principal, ServeError> {
    Ok(Principal {
        principal_id: PrincipalId::parse(DRILL_ACTOR).map_err(|e| fail(e.to_string()))?,
        organisation_id: FacilityId::parse(DRILL_ACTOR).map_err(|e| fail(e.to_string()))?,
        role: Role::Admin,
    })
}

pub async fn run(args: DrillArgs) -> Result<(), ServeError> {
    match args.command {
        DrillCommand::Start(args) => start(args).await,
        DrillCommand::Stop(args) => stop(args).await,
        DrillCommand::List(args) => list(args).await,
    }
}

/// Reads and checks the scenario file.
fn scenario(path: &Path) -> Result<(Scenario, String), ServeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| fail(format!("cannot read the scenario {}: {e}", path.display())))?;
    let scenario = Scenario::parse(&text)
        .map_err(|e| fail(format!("the scenario {} is not valid: {e}", path.display())))?;
    let problems = scenario.problems();
    if !problems.is_empty() {
        return Err(fail(format!(
            "the scenario {} has {} problem(s):\n  {}",
            path.display(),
            problems.len(),
            problems.join("\n  ")
        )));
    }
    Ok((scenario, text))
}

async fn start(args: StartArgs) -> Result<(), ServeError> {
    let (scenario, scenario_text) = scenario(&args.scenario)?;
    let speed = args.speed.unwrap_or(scenario.speed);
    if !(speed.is_finite() && speed > 0.0) {
        return Err(fail("--speed must be more than 0"));
    }
    let tenant = Tenant::of(&args.name, &args.database.database_url, &args.nats)?;
    let prefecture = Prefecture::parse(&args.prefecture).map_err(ServeError::Prefecture)?;
    let production = connect(&args.database.database_url, 4).await?;
    if let Some(drill) = tenant::read(&production)
        .await
        .map_err(ServeError::Identity)?
    {
        return Err(fail(format!(
            "the database is itself drill {:?}'s: point --database-url at production's",
            drill.name
        )));
    }
    if database_exists(&production, &tenant.database).await? {
        return Err(fail(format!(
            "drill {:?} exists already (database {}): `noroshi drill stop {}` ends it, or \
             choose another name",
            args.name, tenant.database, args.name
        )));
    }
    sqlx::Executor::execute(
        &production,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {}", tenant.database)),
    )
    .await
    .map_err(ServeError::DatabaseUrl)?;
    // A drill that could not be set up leaves nothing behind.
    let set_up = set_up(&args, &scenario, &scenario_text, &tenant, &production).await;
    let (drill, running, cast) = match set_up {
        Ok(set_up) => set_up,
        Err(error) => {
            let _ = sqlx::Executor::execute(
                &production,
                sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    tenant.database
                )),
            )
            .await;
            return Err(error);
        }
    };
    production.close().await;

    let mut config = Config::new(&tenant.url);
    config.components = vec![
        Component::Relay,
        Component::Api,
        Component::Timers,
        Component::Projections,
    ];
    config.database.max_connections = args.database.database_max_connections;
    config.nats.url = args.nats.nats_url.clone();
    config.nats.subject_prefix = tenant.subject_prefix.clone();
    config.nats.stream.name = tenant.stream.clone();
    config.nats.stream.replicas = args.nats.nats_replicas;
    config.nats.stream.duplicate_window = args.nats.nats_duplicate_window;
    config.commands.prefecture = prefecture;
    config.store.max_payload_bytes = args.max_event_bytes;
    config.api.http_addr = args.http_addr.clone();
    config.api.grpc_addr = args.grpc_addr.clone();
    let application = Application::build(config).await?;
    let http = application
        .http_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    say(format!(
        "\n  訓練 / DRILL {name}: {title}\n\
         \x20   web UI      http://{http}/  (log in as every day; every page shows the drill's banner)\n\
         \x20   scenario    {scenario} at {speed}× ({hq})\n\
         \x20   database    {database}, NATS subjects {prefix}.>, stream {stream}\n\
         \x20   end it with noroshi drill stop {name}\n",
        name = args.name,
        title = scenario.title,
        scenario = args.scenario.display(),
        hq = match scenario.hq {
            noroshi_simulator::Hq::Participants => "HQ's staff place the patients",
            noroshi_simulator::Hq::Automatic => "the drill places the patients",
        },
        database = tenant.database,
        prefix = tenant.subject_prefix,
        stream = tenant.stream,
    ))?;

    let shutdown = application.shutdown();
    let player = {
        let url = format!("http://{http}");
        let http = http.clone();
        tokio::spawn(async move {
            for _ in 0..600 {
                if tokio::net::TcpStream::connect(&http).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            match noroshi_simulator::play(&url, &cast, &scenario, speed).await {
                Ok(summary) => tracing::info!(summary, "the scenario has played to its end"),
                Err(error) => tracing::error!(error = %error, "the scenario stopped"),
            }
        })
    };
    let watcher = {
        let drill = drill.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                match tenant::read(&drill).await {
                    Ok(Some(d)) if d.stop_requested_at.is_some() => {
                        tracing::info!("`noroshi drill stop` asked the drill to end");
                        shutdown.cancel();
                        return;
                    }
                    Ok(_) => {}
                    Err(error) => tracing::warn!(error = %error, "cannot read the drill's state"),
                }
            }
        })
    };
    let served = crate::serve::run(application).await;
    player.abort();
    watcher.abort();
    tenant::stopped(&drill)
        .await
        .map_err(ServeError::Identity)?;
    drill.close().await;
    let _ = running.close().await;
    say(format!(
        "drill {} stopped; `noroshi drill stop {}` writes its report",
        args.name, args.name
    ))?;
    served
}

/// The drill's tenant: its schema, its mark, production's organisations and logins, and
/// the scenario's API clients; the drill's pool, the connection holding the running
/// lock, and whom the scenario acts as.
async fn set_up(
    args: &StartArgs,
    scenario: &Scenario,
    scenario_text: &str,
    tenant: &Tenant,
    production: &PgPool,
) -> Result<(PgPool, PgConnection, Vec<Organisation>), ServeError> {
    let drill = connect(&tenant.url, 8).await?;
    application::migrate(&drill).await?;
    tenant::mark(
        &drill,
        &NewDrill {
            name: &args.name,
            title: &scenario.title,
            title_en: &scenario.title_en,
            scenario: scenario_text,
            production_database: &production_database(&args.database.database_url)?,
            nats_subject_prefix: &tenant.subject_prefix,
            nats_stream: &tenant.stream,
            http_addr: &args.http_addr,
            grpc_addr: &args.grpc_addr,
        },
    )
    .await
    .map_err(ServeError::Identity)?;
    // Held while the drill runs: `stop` and `list` know it runs by it.
    let mut running = PgConnection::connect(&tenant.url)
        .await
        .map_err(ServeError::DatabaseUrl)?;
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(RUNNING_LOCK)
        .execute(&mut running)
        .await
        .map_err(ServeError::DatabaseUrl)?;
    let copied = tenant::copy_logins(production, &drill)
        .await
        .map_err(ServeError::Identity)?;
    let organisations = copy_organisations(production, &drill, &args.prefecture).await?;
    let cast = issue_clients(&drill, &organisations).await?;
    tracing::info!(
        drill = args.name,
        database = tenant.database,
        users = copied.users,
        organisations = organisations.len(),
        "drill tenant set up"
    );

    Ok((drill, running, cast))
}

/// Registers production's organisations in the drill, as they are registered now; the
/// organisations the scenario may act as, with what it needs of them.
async fn copy_organisations(
    production: &PgPool,
    drill: &PgPool,
    prefecture: &str,
) -> Result<Vec<noroshi_domain::facility::FacilityProfile>, ServeError> {
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT substr(stream_id, length('facility-') + 1) FROM events \
         WHERE stream_id LIKE 'facility-%' AND version = 1 ORDER BY position",
    )
    .fetch_all(production)
    .await
    .map_err(ServeError::DatabaseUrl)?;
    let reader = crate::admin::handler(production, prefecture, ids.len())?;
    let mut profiles = Vec::with_capacity(ids.len());
    for id in ids {
        let Ok(id) = FacilityId::parse(&id) else {
            continue;
        };
        let (facility, _) = reader.facility(&id).await.map_err(ServeError::Command)?;
        profiles.extend(facility.profile);
    }
    let writer = crate::admin::handler(drill, prefecture, profiles.len())?;
    let plan = crate::apply::Plan::of_facilities(profiles.clone());
    crate::apply::apply(&writer, &drill_actor()?, &plan, false)
        .await
        .map_err(ServeError::Admin)?;
    Ok(profiles)
}

/// API clients in the drill's database for the organisations the scenario plays (HQ,
/// health centers, facilities that keep beds), and what the scenario needs of each.
async fn issue_clients(
    drill: &PgPool,
    profiles: &[noroshi_domain::facility::FacilityProfile],
) -> Result<Vec<Organisation>, ServeError> {
    use noroshi_domain::values::FacilityKind;
    let actor = drill_actor()?;
    let mut cast = Vec::new();
    for profile in profiles.iter().filter(|p| p.active) {
        let scopes: &[&str] = match profile.kind {
            FacilityKind::Hq => &["cases", "placements", "views"],
            FacilityKind::HealthCenter => &["cases", "placements", "views"],
            FacilityKind::Hospital | FacilityKind::Hotel | FacilityKind::Temporary => {
                &["facilities", "cases", "placements", "views"]
            }
            _ => continue,
        };
        let issued = clients::issue(
            drill,
            &actor,
            &NewClient {
                name: format!("drill scenario: {}", profile.facility_id),
                organisation_id: profile.facility_id.to_string(),
                scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                lifetime: Duration::from_secs(30 * 24 * 3600),
            },
            Some(profile.kind),
            "noroshi drill start",
        )
        .await
        .map_err(ServeError::Identity)?;
        cast.push(Organisation {
            facility_id: profile.facility_id.to_string(),
            kind: profile.kind.to_string(),
            medical_area: profile
                .medical_area
                .as_ref()
                .map(|a| a.to_string())
                .unwrap_or_default(),
            jurisdiction: profile.jurisdiction.iter().map(|m| m.to_string()).collect(),
            token: issued.token,
        });
    }
    Ok(cast)
}

/// Whether the drill's process runs: it holds the lock.
async fn is_running(url: &str) -> Result<bool, ServeError> {
    let mut conn = PgConnection::connect(url)
        .await
        .map_err(ServeError::DatabaseUrl)?;
    let free: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(RUNNING_LOCK)
        .fetch_one(&mut conn)
        .await
        .map_err(ServeError::DatabaseUrl)?;
    let _ = conn.close().await;
    Ok(!free)
}

async fn stop(args: StopArgs) -> Result<(), ServeError> {
    let tenant = Tenant::of(&args.name, &args.database.database_url, &args.nats)?;
    let prefecture = Prefecture::parse(&args.prefecture).map_err(ServeError::Prefecture)?;
    let production = connect(&args.database.database_url, 2).await?;
    if !database_exists(&production, &tenant.database).await? {
        return Err(fail(format!(
            "there is no drill {:?} (no database {}); `noroshi drill list` shows the drills",
            args.name, tenant.database
        )));
    }
    let drill_pool = connect(&tenant.url, 2).await?;
    let drill = tenant::request_stop(&drill_pool)
        .await
        .map_err(ServeError::Identity)?
        .ok_or_else(|| fail(format!("database {} is no drill's", tenant.database)))?;
    let deadline = tokio::time::Instant::now() + args.wait;
    while is_running(&tenant.url).await? {
        if tokio::time::Instant::now() >= deadline {
            return Err(fail(format!(
                "drill {:?} still runs after {}: stop its `noroshi drill start` process",
                args.name,
                humantime::format_duration(args.wait)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let drill = tenant::read(&drill_pool)
        .await
        .map_err(ServeError::Identity)?
        .unwrap_or(drill);
    let japan = |t: OffsetDateTime| t.to_offset(time::macros::offset!(+9)).date();
    let end = drill.stopped_at.unwrap_or_else(OffsetDateTime::now_utc);
    let output = args.output.clone().unwrap_or_else(|| {
        PathBuf::from(format!(
            "drill-{}.{}",
            args.name,
            match args.format {
                Format::Html => "html",
                Format::Pdf => "pdf",
            }
        ))
    });
    crate::report::write_report(
        &drill_pool,
        (japan(drill.started_at), japan(end)),
        prefecture,
        Some(drill.title.clone()),
        args.format,
        &output,
        &args.chromium,
    )
    .await
    .map_err(ServeError::Report)?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&drill_pool)
        .await
        .map_err(ServeError::DatabaseUrl)?;
    drill_pool.close().await;
    say(format!(
        "drill {} ({}) ended: {events} events; its report is {}",
        args.name,
        drill.title,
        output.display()
    ))?;
    if args.keep {
        say(format!(
            "kept database {} and stream {}; `noroshi drill stop {}` again removes them",
            tenant.database, drill.nats_stream, args.name
        ))?;
        return Ok(());
    }
    remove_stream(&args.nats.nats_url, &drill.nats_stream).await;
    sqlx::Executor::execute(
        &production,
        sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            tenant.database
        )),
    )
    .await
    .map_err(ServeError::DatabaseUrl)?;
    production.close().await;
    say(format!(
        "removed database {} and stream {}",
        tenant.database, drill.nats_stream
    ))
}

/// Deletes a drill's stream; a stream that is gone already is fine, and NATS out of
/// reach is said, not fatal (the stream holds only the drill's events).
async fn remove_stream(url: &str, stream: &str) {
    let client = match async_nats::ConnectOptions::new()
        .name("noroshi drill stop")
        .connection_timeout(Duration::from_secs(5))
        .connect(crate::application::nats_servers(url))
        .await
    {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(error = %error, stream, "cannot reach NATS to delete the drill's stream");
            return;
        }
    };
    let jetstream = async_nats::jetstream::new(client);
    if let Err(error) = jetstream.delete_stream(stream).await {
        tracing::warn!(error = %error, stream, "the drill's stream was not deleted");
    }
}

async fn list(args: ListArgs) -> Result<(), ServeError> {
    let url = &args.database.database_url;
    let production_name = production_database(url)?;
    let production = connect(url, 2).await?;
    let databases: Vec<String> = sqlx::query_scalar(
        "SELECT datname FROM pg_database WHERE starts_with(datname, $1) ORDER BY datname",
    )
    .bind(format!("{production_name}_drill_"))
    .fetch_all(&production)
    .await
    .map_err(ServeError::DatabaseUrl)?;
    production.close().await;
    if databases.is_empty() {
        return say("no drills");
    }
    say("NAME\tSTATE\tSTARTED\tEVENTS\tWEB UI\tTITLE")?;
    for database in databases {
        let drill_url = with_database(url, &database)?;
        let Ok(pool) = connect(&drill_url, 1).await else {
            say(format!("?\tunreachable\t\t\t\t{database}"))?;
            continue;
        };
        let drill = tenant::read(&pool).await.map_err(ServeError::Identity)?;
        let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&pool)
            .await
            .unwrap_or(0);
        pool.close().await;
        let Some(drill) = drill else {
            continue;
        };
        let state = if is_running(&drill_url).await? {
            "running"
        } else {
            "stopped"
        };
        let started = drill
            .started_at
            .to_offset(time::macros::offset!(+9))
            .format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute]"
            ))
            .unwrap_or_default();
        say(format!(
            "{}\t{state}\t{started}\t{events}\thttp://{}/\t{}",
            drill.name, drill.http_addr, drill.title
        ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drill_lives_beside_production_under_its_own_names() {
        let nats = NatsArgs {
            nats_url: "nats://127.0.0.1:4222".into(),
            nats_subject_prefix: "noroshi".into(),
            nats_stream: "NOROSHI_EVENTS".into(),
            nats_replicas: 1,
            nats_max_age: Duration::ZERO,
            nats_max_bytes: -1,
            nats_duplicate_window: Duration::from_secs(600),
        };
        let tenant = Tenant::of(
            "night-1",
            "postgres://postgres@127.0.0.1:5432/noroshi?sslmode=disable",
            &nats,
        )
        .expect("a tenant");
        assert_eq!(tenant.database, "noroshi_drill_night_1");
        assert_eq!(
            tenant.url,
            "postgres://postgres@127.0.0.1:5432/noroshi_drill_night_1?sslmode=disable"
        );
        assert_eq!(tenant.subject_prefix, "drill.night-1.noroshi");
        assert_eq!(tenant.stream, "NOROSHI_EVENTS_DRILL_NIGHT_1");
        let long = "a".repeat(32);
        let error = Tenant::of(&long, "postgres://h/noroshi_test_0123456789abcdef", &nats)
            .expect_err("too long");
        assert!(error.to_string().contains("63 bytes"), "{error}");
        assert!(crate::cli::drill_name("Winter").is_err());
        assert!(crate::cli::drill_name("1st").is_err());
        assert!(crate::cli::drill_name("winter-").is_err());
        assert!(crate::cli::drill_name("winter-2026").is_ok());
    }
}
