//! `noroshi`: one binary for every component. It parses the command line and calls the
//! library.

use std::process::ExitCode;

use clap::Parser;
use noroshi::cli::{Cli, Command};
use noroshi::{ServeError, admin, dev, drill, import, rebuild, report, serve, telemetry};

/// mimalloc rather than the system allocator: decoding JetStream messages, protobuf and
/// SQL rows allocates many small short-lived buffers, and with it the same machine
/// serves about 10 % more commands per second and reads the event stream about 15 %
/// faster (README, "Operations").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(error = %error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Migrate(args) => serve::migrate(&args).await,
            Command::Serve(args) => serve::serve(*args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Rebuild(args) => rebuild::run(args).await,
            Command::Simulate(args) => noroshi_simulator::run(args)
                .await
                .map_err(ServeError::Simulate),
            Command::Dev(args) => dev::run(args).await,
            Command::Drill(args) => drill::run(args).await,
            Command::Import(args) => import::run(args).await.map_err(ServeError::Import),
            Command::Report(args) => report::run(args).await.map_err(ServeError::Report),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "noroshi stopped");
            ExitCode::FAILURE
        }
    }
}

/// `error: cause: cause…`, for the one log line an operator reads.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
