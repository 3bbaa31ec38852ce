//! The `tracing` subscriber: pretty for people, JSON for log collectors.

use tracing_subscriber::EnvFilter;

use crate::cli::{LogArgs, LogFormat};

pub fn init(args: &LogArgs) {
    let filter = EnvFilter::try_new(&args.filter).unwrap_or_else(|error| {
        eprintln!("invalid log filter {:?} ({error}); using info", args.filter);
        EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .init(),
    }
}
