//! `noroshi report --from --to --format html|pdf --output FILE`: the after-action report
//! (DESIGN.md §12) of a period, computed from the event log; the PDF printed by headless
//! Chromium from the same HTML.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use noroshi_event_store::{EventStore, Prefecture, StoreLimits};
use time::OffsetDateTime;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Html,
    Pdf,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// PostgreSQL URL of this prefecture's event store.
    #[arg(long, env = "NOROSHI_DATABASE_URL")]
    pub database_url: String,
    /// The first day, YYYY-MM-DD in Japan (default: 13 days before `--to`).
    #[arg(long)]
    pub from: Option<String>,
    /// The last day, YYYY-MM-DD in Japan (default: today).
    #[arg(long)]
    pub to: Option<String>,
    #[arg(long, value_enum, default_value = "html")]
    pub format: Format,
    /// Where to write the report.
    #[arg(long, short)]
    pub output: PathBuf,
    /// JIS X 0401 code of the deployment's prefecture.
    #[arg(long, env = "NOROSHI_PREFECTURE", default_value = "35")]
    pub prefecture: String,
    /// The Chromium that prints the PDF.
    #[arg(long, env = "NOROSHI_CHROMIUM", default_value = "chromium")]
    pub chromium: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{0}")]
    Period(#[source] noroshi_api::ApiError),
    #[error("invalid --prefecture")]
    Prefecture(#[source] noroshi_event_store::InvalidPrefecture),
    #[error("cannot connect to the database")]
    Database(#[source] sqlx::Error),
    #[error("cannot read the areas")]
    Areas(#[source] noroshi_identity::IdentityError),
    #[error("cannot read the event log")]
    Log(#[source] noroshi_app::CommandError),
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "cannot run {chromium} to print the PDF (install chromium, or name it with --chromium)"
    )]
    Chromium {
        chromium: PathBuf,
        source: std::io::Error,
    },
    #[error("chromium did not print the PDF: {0}")]
    Printing(String),
}

pub async fn run(args: ReportArgs) -> Result<(), ReportError> {
    let today = OffsetDateTime::now_utc()
        .to_offset(time::macros::offset!(+9))
        .date();
    let params: Vec<(String, String)> = [("from", &args.from), ("to", &args.to)]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|v| (name.to_owned(), v)))
        .collect();
    let (from, to) = noroshi_api::reports::period(&params, today).map_err(ReportError::Period)?;
    let prefecture = Prefecture::parse(&args.prefecture).map_err(ReportError::Prefecture)?;
    let options =
        noroshi_event_store::connect_options(&args.database_url).map_err(ReportError::Database)?;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .map_err(ReportError::Database)?;
    let written = write_report(
        &pool,
        (from, to),
        prefecture,
        None,
        args.format,
        &args.output,
        &args.chromium,
    )
    .await;
    pool.close().await;
    written
}

/// Writes the report of the days `period` (first and last, in Japan) from the event log
/// of `pool` to `output`; a drill's report when `drill` names the drill.
pub async fn write_report(
    pool: &sqlx::PgPool,
    (from, to): (time::Date, time::Date),
    prefecture: Prefecture,
    drill: Option<String>,
    format: Format,
    output: &Path,
    chromium: &Path,
) -> Result<(), ReportError> {
    let (areas, _) = noroshi_identity::areas::list(pool)
        .await
        .map_err(ReportError::Areas)?;
    let names = areas.into_iter().map(|a| (a.code, a.name)).collect();
    let store = EventStore::new(pool.clone(), StoreLimits::default());
    let mut figures = noroshi_app::report::after_action(
        &store,
        OffsetDateTime::now_utc(),
        from,
        to,
        noroshi_interop::export::prefecture_name(&prefecture.code()).unwrap_or_default(),
        &names,
    )
    .await
    .map_err(ReportError::Log)?;
    figures.drill = drill;
    let html = noroshi_interop::report::html(&figures);
    match format {
        Format::Html => write(output, html.as_bytes()),
        Format::Pdf => print_pdf(chromium, &html, output).await,
    }
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ReportError> {
    std::fs::write(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_owned(),
        source,
    })
}

/// Prints `html` to `output` with headless Chromium (A4, backgrounds on).
async fn print_pdf(chromium: &Path, html: &str, output: &Path) -> Result<(), ReportError> {
    let dir = std::env::temp_dir().join(format!("noroshi-report-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).map_err(|source| ReportError::Write {
        path: dir.clone(),
        source,
    })?;
    let page = dir.join("report.html");
    write(&page, html.as_bytes())?;
    let output = std::path::absolute(output).map_err(|source| ReportError::Write {
        path: output.to_owned(),
        source,
    })?;
    let printed = tokio::process::Command::new(chromium)
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--no-pdf-header-footer")
        .arg(format!("--user-data-dir={}", dir.join("profile").display()))
        .arg(format!("--print-to-pdf={}", output.display()))
        .arg(format!("file://{}", page.display()))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|source| ReportError::Chromium {
            chromium: chromium.to_owned(),
            source,
        })?;
    let _ = std::fs::remove_dir_all(&dir);
    let written = std::fs::metadata(&output).map(|m| m.len()).unwrap_or(0);
    if !printed.status.success() || written == 0 {
        return Err(ReportError::Printing(
            String::from_utf8_lossy(&printed.stderr)
                .lines()
                .last()
                .unwrap_or("no PDF written")
                .to_owned(),
        ));
    }
    Ok(())
}
