//! `noroshi rebuild <view>… | --all`.

use std::str::FromStr;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use noroshi_event_store::wire::SubjectPrefix;
use noroshi_projections::runner::RunnerConfig;
use noroshi_projections::{View, rebuild};
use sqlx::postgres::PgConnectOptions;
use tokio_util::sync::CancellationToken;

use crate::cli::RebuildArgs;
use crate::error::ServeError;

pub async fn run(args: RebuildArgs) -> Result<(), ServeError> {
    let views: Vec<View> = if args.all {
        View::ALL.to_vec()
    } else {
        args.views.clone()
    };
    let database =
        PgConnectOptions::from_str(&args.database.database_url).map_err(ServeError::DatabaseUrl)?;
    let prefix =
        SubjectPrefix::parse(&args.nats.nats_subject_prefix).map_err(ServeError::SubjectPrefix)?;
    let nats = async_nats::ConnectOptions::new()
        .name("noroshi-rebuild")
        .connect(crate::application::nats_servers(&args.nats.nats_url))
        .await
        .map_err(ServeError::NatsUrl)?;
    let config = RunnerConfig {
        stream: args.nats.nats_stream.clone(),
        filter_subject: prefix.all_events_filter(),
        max_batch: args.chunk_events,
        leader_retry_interval: Duration::from_secs(1),
        max_backoff: Duration::from_secs(5),
        known_versions: noroshi_projections::runner::KNOWN_VERSIONS,
    };
    let shutdown = CancellationToken::new();
    let interrupt = shutdown.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            interrupt.cancel();
        }
    });
    // Every view at once, from one read of the log, with a progress bar each.
    let bars = MultiProgress::new();
    let style = ProgressStyle::with_template(
        "{msg:>16} [{bar:40}] {pos}/{len} events  {per_sec}  ETA {eta}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    let bars: Vec<(View, ProgressBar)> = views
        .into_iter()
        .map(|view| {
            let bar = bars.add(ProgressBar::new(0).with_style(style.clone()));
            bar.set_message(view.name());
            (view, bar)
        })
        .collect();
    let progress: Vec<_> = bars
        .iter()
        .map(|(_, bar)| {
            move |done: u64, total: u64| {
                bar.set_length(total);
                bar.set_position(done);
            }
        })
        .collect();
    let rebuilds: Vec<(View, rebuild::Progress<'_>)> = bars
        .iter()
        .zip(&progress)
        .map(|((view, _), progress)| (*view, progress as rebuild::Progress<'_>))
        .collect();
    let read = rebuild::rebuild(
        database,
        nats,
        config,
        rebuild::Reading {
            source: args.from.source(),
            chunk: args.chunk_events,
        },
        &rebuilds,
        shutdown.clone(),
    )
    .await
    .map_err(ServeError::Rebuild)?;
    if let Some(read) = read {
        for (view, bar) in &bars {
            bar.finish();
            tracing::info!(view = view.name(), read, "view rebuilt");
        }
    }
    if shutdown.is_cancelled() {
        tracing::warn!("rebuild interrupted; the views are as they were");
    }
    Ok(())
}
