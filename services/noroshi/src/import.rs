//! `noroshi import cases|capacity`: a client of `POST /api/v1/import/…` (docs/import.md). The
//! file streams to the server, which reads it only as fast as it decides rows, so the
//! bytes sent are the progress; errors and the summary come back line by line.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Subcommand};
use futures_util::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub what: ImportCommand,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A health center's case file (CSV, UTF-8 or Shift_JIS; docs/import.md).
    Cases(ImportFile),
    /// A capacity file: a facility's own figures, or HQ's table of every facility's
    /// (entered on their behalf).
    Capacity(ImportFile),
}

#[derive(Debug, Args)]
pub struct ImportFile {
    /// The CSV file.
    pub file: PathBuf,
    /// The noroshi HTTP API.
    #[arg(long, env = "NOROSHI_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A bearer token: a health center's (scope `cases`) for cases, a facility's or HQ's
    /// (scope `facilities`) for capacity.
    #[arg(long, env = "NOROSHI_TOKEN", hide_env_values = true)]
    pub token: String,
    /// Decide every row, write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// auto, utf-8 or shift_jis.
    #[arg(long, default_value = "auto")]
    pub encoding: String,
    /// TOML file mapping other headers to fields (`[columns]`, docs/import.md).
    #[arg(long)]
    pub mapping: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid mapping file {path}: {reason}")]
    Mapping { path: PathBuf, reason: String },
    #[error("cannot set up TLS")]
    Tls(#[source] std::io::Error),
    #[error("invalid --url")]
    Url(#[source] http::Error),
    #[error("cannot reach the server")]
    Request(#[source] hyper_util::client::legacy::Error),
    #[error("the answer broke off")]
    Answer(#[source] hyper::Error),
    #[error("refused ({status}): {message}")]
    Refused { status: u16, message: String },
    #[error("{refused} rows refused{}", .stopped.as_ref().map(|s| format!("; the file stopped: {s}")).unwrap_or_default())]
    Incomplete {
        refused: u64,
        stopped: Option<String>,
    },
    #[error("cannot write the report")]
    Output(#[source] std::io::Error),
}

/// `[columns]` of a mapping file.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    columns: std::collections::BTreeMap<String, String>,
}

/// Imports the file; `Incomplete` when a row was refused or the file stopped.
pub async fn run(args: ImportArgs) -> Result<(), ImportError> {
    let (kind, args) = match args.what {
        ImportCommand::Cases(file) => ("cases", file),
        ImportCommand::Capacity(file) => ("capacity", file),
    };
    let mut query = vec![("encoding", args.encoding.clone())];
    if args.dry_run {
        query.push(("dry_run", "true".into()));
    }
    if let Some(path) = &args.mapping {
        let text = std::fs::read_to_string(path).map_err(read(path))?;
        let mapping: MappingFile = toml::from_str(&text).map_err(|e| ImportError::Mapping {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let json = serde_json::to_string(&mapping.columns).map_err(|e| ImportError::Mapping {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        query.push(("mapping", json));
    }
    let query = serde_urlencoded::to_string(&query).unwrap_or_default();
    let file = tokio::fs::File::open(&args.file)
        .await
        .map_err(read(&args.file))?;
    let size = file.metadata().await.map_err(read(&args.file))?.len();
    let bar = ProgressBar::new(size).with_style(
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let sent = bar.clone();
    let body = BodyExt::boxed(StreamBody::new(
        tokio_util::io::ReaderStream::new(file).map(move |chunk| {
            chunk.map(|bytes| {
                sent.inc(bytes.len() as u64);
                Frame::data(bytes)
            })
        }),
    ));
    let request = http::Request::post(format!(
        "{}/api/v1/import/{kind}?{query}",
        args.url.trim_end_matches('/')
    ))
    .header(
        http::header::AUTHORIZATION,
        format!("Bearer {}", args.token),
    )
    .header(http::header::CONTENT_TYPE, "text/csv")
    .header(http::header::ACCEPT, "application/x-ndjson")
    .body(body)
    .map_err(ImportError::Url)?;
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| ImportError::Tls(std::io::Error::other(e)))?
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build(https);
    let response = client
        .request(request)
        .await
        .map_err(ImportError::Request)?;
    let status = response.status().as_u16();
    let mut body = response.into_body();
    let mut pending = Vec::new();
    let mut summary = Value::Null;
    let mut out = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ImportError::Answer)?;
        let Some(data) = frame.data_ref() else {
            continue;
        };
        pending.extend_from_slice(data);
        while let Some(end) = pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(value) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            if let Some(error) = value.get("error") {
                bar.suspend(|| writeln!(out, "{}", row_error(error)))
                    .map_err(ImportError::Output)?;
            } else if let Some(progress) = value.get("progress") {
                bar.set_message(counts(progress));
            } else if let Some(done) = value.get("summary") {
                summary = done.clone();
            }
        }
    }
    bar.finish_and_clear();
    if status != 200 {
        let answer: Value = serde_json::from_slice(&pending).unwrap_or(Value::Null);
        let message = match answer["violations"][0]["description"].as_str() {
            Some(reason) => reason.to_owned(),
            None => answer["message"].as_str().unwrap_or("no answer").to_owned(),
        };
        return Err(ImportError::Refused { status, message });
    }
    writeln!(
        out,
        "{}{} rows: {}",
        if summary["dry_run"] == true {
            "dry run, nothing written; "
        } else {
            ""
        },
        summary["rows"],
        counts(&summary)
    )
    .map_err(ImportError::Output)?;
    if let Some(ignored) = summary["ignored_columns"]
        .as_array()
        .filter(|i| !i.is_empty())
    {
        writeln!(out, "ignored columns: {}", Value::from(ignored.clone()))
            .map_err(ImportError::Output)?;
    }
    let refused = summary["refused"].as_u64().unwrap_or(0);
    let stopped = summary["stopped"].as_str().map(str::to_owned);
    if refused > 0 || stopped.is_some() || summary.is_null() {
        return Err(ImportError::Incomplete { refused, stopped });
    }
    Ok(())
}

/// The error of reading `path`.
fn read(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> ImportError {
    let path = path.to_owned();
    move |source| ImportError::Read { path, source }
}

fn counts(value: &Value) -> String {
    format!(
        "created {}, present {}, refused {}",
        value["created"], value["present"], value["refused"]
    )
}

fn row_error(error: &Value) -> String {
    let place = match error["column"].as_u64() {
        Some(0) | None => format!("line {}", error["line"]),
        Some(column) => format!(
            "line {}, column {column} ({})",
            error["line"],
            error["header"].as_str().unwrap_or_default()
        ),
    };
    format!(
        "{place}: {}: {}",
        error["field"].as_str().unwrap_or_default(),
        error["message"].as_str().unwrap_or_default()
    )
}
