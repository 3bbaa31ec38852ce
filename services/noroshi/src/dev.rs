//! `noroshi dev`: the whole system with the Yamaguchi demo set, in one command and with
//! no configuration. It uses the PostgreSQL and NATS it is pointed at, or the local
//! ones (`ops/dev` starts private ones when none run), creates its database, migrates,
//! loads the demo set with one login per role, runs every component, prints where to
//! go, and with `--simulate` drives a synthetic surge so that the dashboards move.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

use crate::application::Application;
use crate::cli::{ApplyArgs, Cli, Command, DatabaseArgs, DevArgs, SimulateArgs};
use crate::error::ServeError;

/// The demo set, embedded so that `noroshi dev` needs no file.
const DEMO: &str = include_str!("../../../ops/demo/yamaguchi.toml");

/// Creates the database of `url` when its server has none of that name.
async fn ensure_database(url: &str) -> Result<(), ServeError> {
    let options: PgConnectOptions = url.parse().map_err(ServeError::DatabaseUrl)?;
    if options.connect().await.is_ok() {
        return Ok(());
    }
    let name = options.get_database().unwrap_or("noroshi_dev").to_owned();
    if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(dev_error(format!(
            "database name {name:?} is not a plain identifier"
        )));
    }
    let mut admin = options
        .clone()
        .database("postgres")
        .connect()
        .await
        .map_err(|e| {
            dev_error(format!(
                "cannot reach PostgreSQL ({e}); run ops/dev, which starts a private one"
            ))
        })?;
    sqlx::Executor::execute(
        &mut admin,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .map_err(ServeError::DatabaseUrl)?;
    Ok(())
}

fn dev_error(message: String) -> ServeError {
    ServeError::Output(std::io::Error::other(message))
}

pub async fn run(args: DevArgs) -> Result<(), ServeError> {
    ensure_database(&args.database_url).await?;
    let demo = std::env::temp_dir().join(format!("noroshi-dev-demo-{}.toml", std::process::id()));
    std::fs::write(&demo, DEMO).map_err(ServeError::Output)?;
    let database = DatabaseArgs {
        database_url: args.database_url.clone(),
        database_max_connections: 16,
        database_acquire_timeout: Duration::from_secs(5),
    };
    crate::serve::migrate(&database).await?;
    crate::admin::run(crate::cli::AdminArgs {
        command: crate::cli::AdminCommand::Apply(ApplyArgs {
            database,
            file: demo.clone(),
            prefecture: "35".into(),
            actor: "noroshi-dev".into(),
            dry_run: false,
        }),
    })
    .await?;
    let demo_path = demo.to_string_lossy().into_owned();
    let cli = Cli::try_parse_from([
        "noroshi",
        "serve",
        "--components",
        "relay,api,timers,projections",
        "--database-url",
        &args.database_url,
        "--tokens-file",
        &demo_path,
        "--allow-token-file",
        "--allow-http-webhooks",
    ])
    .map_err(|e| dev_error(e.to_string()))?;
    let Command::Serve(serve) = cli.command else {
        return Err(dev_error("unexpected command".into()));
    };
    let application = Application::build(serve.config()?).await?;
    let addr = |addr: Option<std::net::SocketAddr>| addr.map(|a| a.to_string()).unwrap_or_default();
    let (http, grpc) = (addr(application.http_addr()), addr(application.grpc_addr()));
    let banner = format!(
        "\n  noroshi dev is starting.\n\
         \x20   web UI      http://{http}/  (日本語 / English)\n\
         \x20   HTTP API    http://{http}/api/v1/openapi.json\n\
         \x20   gRPC API    {grpc} (reflection on)\n\
         \x20   demo logins HQ        demo-hq / noroshi-demo-hq\n\
         \x20               保健所    demo-hc / noroshi-demo-hc\n\
         \x20               病院      demo-hospital / noroshi-demo-hospital\n\
         \x20               宿泊療養  demo-hotel / noroshi-demo-hotel\n\
         \x20               遠隔診療  demo-consult / noroshi-demo-consult\n\
         \x20               移動診療  demo-mobile / noroshi-demo-mobile\n\
         \x20               管理者    demo-admin / noroshi-demo-admin\n\
         \x20   demo tokens {demo_path} (e.g. Bearer demo-token-yamaguchi-hq)\n{}",
        if args.simulate {
            "    simulator   a synthetic surge, a simulated day per minute\n"
        } else {
            ""
        }
    );
    writeln!(std::io::stderr().lock(), "{banner}").map_err(ServeError::Output)?;
    if args.simulate {
        let simulate = SimulateArgs {
            url: format!("http://{http}"),
            file: demo.clone(),
            peak_per_day: args.peak_per_day,
            days: args.days,
            speed: args.speed,
            seed: None,
        };
        tokio::spawn(async move {
            for _ in 0..600 {
                if tokio::net::TcpStream::connect(&http).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if let Err(error) = noroshi_simulator::run(simulate).await {
                tracing::error!(error = %error, "the simulator stopped");
            }
        });
    }
    let served = crate::serve::run(application).await;
    let _ = std::fs::remove_file(&demo);
    served
}
