//! `POST /api/v1/import/cases` and `/capacity` (docs/import.md): a health center's case
//! file, a facility's (or HQ's) capacity file, streamed through in constant memory; every
//! row is decided as the command it stands for (`ReportCase`, `DeclareCapacity`; appended,
//! or only decided in a dry run), and what became of each comes back as JSON, or line by
//! line as NDJSON (`Accept: application/x-ndjson`) for a progress display.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use axum::Json;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use noroshi_app::import::{self, RowOutcome};
use noroshi_domain::authz::Principal;
use noroshi_domain::values::{MunicipalityCode, Role};
use noroshi_identity::Scope;
use noroshi_interop::capacity::{self, CapacityRow};
use noroshi_interop::cases::{self, CaseRow};
use noroshi_interop::table::{self, CellError, Columns, Mapping, RowField};
use noroshi_interop::text::{self, Encoding, TextError};
use schemars::JsonSchema;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::auth::Authed;
use crate::error::ApiError;
use crate::state::HttpContext;

/// Rows decided at once: enough to share the store's commits, few enough to keep
/// memory flat.
const IN_FLIGHT: usize = 64;
/// Errors an answer in one JSON document lists; NDJSON lists every one.
const MAX_LISTED_ERRORS: usize = 10_000;
/// A progress line every this many rows.
const PROGRESS_EVERY: u64 = 200;

/// What an import did (or, in a dry run, would do).
#[derive(Debug, Default, Clone, Serialize, JsonSchema)]
pub(crate) struct ImportSummary {
    dry_run: bool,
    /// The encoding the file was read in.
    encoding: String,
    /// Data rows read (the header not counted).
    rows: u64,
    /// Cases recorded (in a dry run: that would be).
    created: u64,
    /// Rows whose case was recorded before.
    present: u64,
    refused: u64,
    /// Refused rows by the field (or refusal code) of their first reason.
    refused_by_reason: BTreeMap<String, u64>,
    /// Header cells that hold no field (not read).
    ignored_columns: Vec<String>,
    /// Why the file could not be read to its end, and where; the rows before were
    /// decided. Importing the whole file again after fixing it adds only the rest.
    stopped: Option<String>,
}

/// The answer as one JSON document.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct ImportAnswer {
    summary: ImportSummary,
    /// Every refused row's reasons, by line and column (the first 10,000).
    errors: Vec<RowError>,
    errors_truncated: bool,
}

/// A refused row's reason. `column` is 0 when the reason is the row's as a whole
/// (outside the jurisdiction, another rule of the case).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub(crate) struct RowError {
    line: u64,
    column: usize,
    header: String,
    field: String,
    message: String,
}

impl From<CellError> for RowError {
    fn from(e: CellError) -> Self {
        Self {
            line: e.line,
            column: e.column,
            header: e.header,
            field: e.field.to_owned(),
            message: e.message,
        }
    }
}

/// The request's options, from its query.
struct Options<F> {
    dry_run: bool,
    encoding: Encoding,
    mapping: Mapping<F>,
}

impl<F: RowField> Options<F> {
    fn from_query(params: &[(String, String)]) -> Result<Self, ApiError> {
        let mut options = Self {
            dry_run: false,
            encoding: Encoding::Auto,
            mapping: Mapping::new(),
        };
        for (name, value) in params {
            match name.as_str() {
                "dry_run" => {
                    options.dry_run = match value.as_str() {
                        "true" | "1" | "" => true,
                        "false" | "0" => false,
                        _ => return Err(ApiError::invalid("dry_run", "must be true or false")),
                    }
                }
                "encoding" => {
                    options.encoding = Encoding::parse(value).ok_or_else(|| {
                        ApiError::invalid("encoding", "must be auto, utf-8 or shift_jis")
                    })?
                }
                "mapping" => {
                    let names: BTreeMap<String, String> =
                        serde_json::from_str(value).map_err(|_| {
                            ApiError::invalid(
                                "mapping",
                                "must be a JSON object of header to field name",
                            )
                        })?;
                    for (header, field) in names {
                        let field = F::parse(&field).ok_or_else(|| {
                            ApiError::invalid(
                                "mapping",
                                format!(
                                    "{field:?} is not a field of this kind of row (docs/import.md)"
                                ),
                            )
                        })?;
                        options.mapping.insert(header, field);
                    }
                }
                other => {
                    return Err(ApiError::invalid(
                        other,
                        "unknown parameter; dry_run, encoding and mapping are known",
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// What the reading thread hands on.
enum ReadRow<R> {
    Row(u64, Result<R, Vec<CellError>>),
    Stopped(String),
}

/// One kind of file: how a row is read (on the reading thread) and decided.
trait Importer: Send + Sync + 'static {
    type Field: RowField + Send + Sync;
    type Row: Send + 'static;

    fn row(
        &self,
        columns: &Columns<Self::Field>,
        record: &csv::StringRecord,
        line: u64,
    ) -> Result<Self::Row, Vec<CellError>>;

    fn decide(
        handler: &noroshi_app::CommandHandler,
        principal: &Principal,
        row: Self::Row,
        dry_run: bool,
    ) -> impl std::future::Future<Output = Result<RowOutcome, noroshi_app::CommandError>> + Send;
}

/// Case files: the health center's own cases, municipalities also by name.
struct CaseFile {
    by_name: HashMap<String, MunicipalityCode>,
}

impl Importer for CaseFile {
    type Field = cases::Field;
    type Row = CaseRow;

    fn row(
        &self,
        columns: &cases::Columns,
        record: &csv::StringRecord,
        line: u64,
    ) -> Result<CaseRow, Vec<CellError>> {
        cases::row(columns, record, line, &|name| {
            self.by_name.get(name).cloned()
        })
    }

    async fn decide(
        handler: &noroshi_app::CommandHandler,
        principal: &Principal,
        row: CaseRow,
        dry_run: bool,
    ) -> Result<RowOutcome, noroshi_app::CommandError> {
        let report = row.report(principal.organisation_id.clone());
        import::report_case(handler, principal, report, dry_run).await
    }
}

/// Capacity files: a facility's own figures, or any facility's by HQ.
struct CapacityFile;

impl Importer for CapacityFile {
    type Field = capacity::Field;
    type Row = CapacityRow;

    fn row(
        &self,
        columns: &capacity::Columns,
        record: &csv::StringRecord,
        line: u64,
    ) -> Result<CapacityRow, Vec<CellError>> {
        capacity::row(columns, record, line)
    }

    async fn decide(
        handler: &noroshi_app::CommandHandler,
        principal: &Principal,
        row: CapacityRow,
        dry_run: bool,
    ) -> Result<RowOutcome, noroshi_app::CommandError> {
        import::declare_capacity(handler, principal, row.facility_id, row.figures, dry_run).await
    }
}

/// The header as read, or why the file cannot be read at all.
type Header = Result<(Encoding, Vec<String>), String>;

/// `POST /api/v1/import/cases` (health centers, scope `cases`).
pub(super) async fn cases(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Cases)?.clone();
    if principal.role != Role::HealthCenter {
        return Err(ApiError::PermissionDenied);
    }
    let options = Options::from_query(&params)?;
    let (_, municipalities) = noroshi_identity::areas::list(context.views.pool()).await?;
    let by_name = municipalities
        .into_iter()
        .filter_map(|m| Some((m.name, MunicipalityCode::parse(&m.code).ok()?)))
        .collect();
    run(
        &context,
        principal,
        options,
        &headers,
        body,
        CaseFile { by_name },
    )
    .await
}

/// `POST /api/v1/import/capacity` (hospitals, hotels and other facilities their own
/// figures; HQ any facility's, on its behalf; scope `facilities`).
pub(super) async fn capacity(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Query(params): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Facilities)?.clone();
    if matches!(
        principal.role,
        Role::HealthCenter | Role::Public | Role::Admin
    ) {
        return Err(ApiError::PermissionDenied);
    }
    let options = Options::from_query(&params)?;
    run(&context, principal, options, &headers, body, CapacityFile).await
}

/// Streams `body` through `importer`: answers 400 when its header cannot be read, then
/// decides each row, answering as JSON or NDJSON.
async fn run<I: Importer>(
    context: &HttpContext,
    principal: Principal,
    options: Options<I::Field>,
    headers: &HeaderMap,
    body: Body,
    importer: I,
) -> Result<Response, ApiError> {
    let input = StreamReader::new(
        body.into_data_stream()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::UnexpectedEof, e)),
    );
    let input = SyncIoBridge::new(input);
    let (header_tx, header_rx) = oneshot::channel();
    let (rows_tx, rows_rx) = mpsc::channel(256);
    let (encoding, mapping) = (options.encoding, options.mapping.clone());
    tokio::task::spawn_blocking(move || {
        read_rows(input, encoding, &mapping, &importer, header_tx, &rows_tx)
    });
    let (encoding, ignored) = header_rx
        .await
        .map_err(|_| ApiError::invalid("file", "the file could not be read"))?
        .map_err(|message| ApiError::invalid("file", message))?;
    let summary = ImportSummary {
        dry_run: options.dry_run,
        encoding: encoding.as_str().to_owned(),
        ignored_columns: ignored,
        ..ImportSummary::default()
    };
    let handler = context.handler.clone();
    let decided = ReceiverStream::new(rows_rx)
        .map(move |read| {
            let handler = handler.clone();
            let principal = principal.clone();
            async move { decide::<I>(&handler, &principal, read, options.dry_run).await }
        })
        .buffered(IN_FLIGHT);
    let ndjson = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/x-ndjson"));
    if ndjson {
        let (lines_tx, lines_rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(64);
        tokio::spawn(async move {
            let send = |value: serde_json::Value| {
                let lines_tx = lines_tx.clone();
                async move {
                    let mut line = value.to_string().into_bytes();
                    line.push(b'\n');
                    // A client that went away stops hearing; the import goes on.
                    let _ = lines_tx.send(Ok(Bytes::from(line))).await;
                }
            };
            let summary = tally(decided, summary, |event| async {
                match event {
                    Event::Error(error) => send(serde_json::json!({ "error": error })).await,
                    Event::Progress(counts) => {
                        send(serde_json::json!({ "progress": counts })).await
                    }
                }
            })
            .await;
            send(serde_json::json!({ "summary": summary })).await;
        });
        return Ok((
            [(header::CONTENT_TYPE, "application/x-ndjson; charset=utf-8")],
            Body::from_stream(ReceiverStream::new(lines_rx)),
        )
            .into_response());
    }
    let mut errors = Vec::new();
    let mut errors_truncated = false;
    let summary = tally(decided, summary, |event| {
        if let Event::Error(error) = event {
            if errors.len() < MAX_LISTED_ERRORS {
                errors.push(error);
            } else {
                errors_truncated = true;
            }
        }
        async {}
    })
    .await;
    Ok(Json(ImportAnswer {
        summary,
        errors,
        errors_truncated,
    })
    .into_response())
}

/// A row decided: its line and outcome, or where the file stopped.
enum Decided {
    Row(u64, Result<RowOutcome, String>),
    Cells(Vec<CellError>),
    Stopped(String),
}

async fn decide<I: Importer>(
    handler: &noroshi_app::CommandHandler,
    principal: &Principal,
    read: ReadRow<I::Row>,
    dry_run: bool,
) -> Decided {
    match read {
        ReadRow::Stopped(why) => Decided::Stopped(why),
        ReadRow::Row(_, Err(cells)) => Decided::Cells(cells),
        ReadRow::Row(line, Ok(row)) => Decided::Row(
            line,
            I::decide(handler, principal, row, dry_run)
                .await
                .map_err(|error| {
                    tracing::warn!(line, error = %error, "an imported row was not decided");
                    format!(
                        "not decided ({}); import the file again",
                        ApiError::from(error)
                    )
                }),
        ),
    }
}

/// What the summary tells as it goes.
enum Event {
    Error(RowError),
    /// Rows read and decided so far, by outcome.
    Progress(serde_json::Value),
}

/// Counts the decided rows into `summary`, telling `on` of every error and of progress.
async fn tally<S, F, Fut>(decided: S, mut summary: ImportSummary, mut on: F) -> ImportSummary
where
    S: futures_util::Stream<Item = Decided>,
    F: FnMut(Event) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut decided = std::pin::pin!(decided);
    while let Some(next) = decided.next().await {
        let reasons: Vec<RowError> = match next {
            Decided::Stopped(why) => {
                summary.stopped = Some(why);
                break;
            }
            Decided::Cells(cells) => cells.into_iter().map(RowError::from).collect(),
            Decided::Row(_, Ok(RowOutcome::Created)) => {
                summary.created += 1;
                Vec::new()
            }
            Decided::Row(_, Ok(RowOutcome::Present)) => {
                summary.present += 1;
                Vec::new()
            }
            Decided::Row(line, Ok(RowOutcome::Refused(reasons))) => reasons
                .into_iter()
                .map(|(field, message)| RowError {
                    line,
                    column: 0,
                    header: String::new(),
                    field,
                    message,
                })
                .collect(),
            Decided::Row(line, Err(message)) => vec![RowError {
                line,
                column: 0,
                header: String::new(),
                field: "row".into(),
                message,
            }],
        };
        summary.rows += 1;
        if let Some(first) = reasons.first() {
            summary.refused += 1;
            *summary
                .refused_by_reason
                .entry(first.field.clone())
                .or_default() += 1;
        }
        for reason in reasons {
            on(Event::Error(reason)).await;
        }
        if summary.rows.is_multiple_of(PROGRESS_EVERY) {
            on(Event::Progress(serde_json::json!({
                "rows": summary.rows, "created": summary.created,
                "present": summary.present, "refused": summary.refused,
            })))
            .await;
        }
    }
    summary
}

/// Reads the file on a blocking thread: the header first (answered on `header`), then
/// each row onto `rows`, until the end, an unreadable line, or nobody listening.
fn read_rows<I: Importer>(
    input: impl Read + Send + 'static,
    encoding: Encoding,
    mapping: &Mapping<I::Field>,
    importer: &I,
    header: oneshot::Sender<Header>,
    rows: &mpsc::Sender<ReadRow<I::Row>>,
) {
    let (decoded, encoding) = match text::decode(input, encoding) {
        Ok(decoded) => decoded,
        Err(error) => {
            let _ = header.send(Err(unreadable(&error)));
            return;
        }
    };
    let mut reader = table::reader(decoded);
    let mut records = reader.records();
    let columns = match records.next() {
        None => Err("the file is empty: it has no header row".to_owned()),
        Some(Err(error)) => Err(csv_error(&error)),
        Some(Ok(first)) => Columns::of(&first, mapping).map_err(|e| format!("line 1: {e}")),
    };
    let columns = match columns {
        Ok(columns) => {
            let _ = header.send(Ok((encoding, columns.ignored.clone())));
            columns
        }
        Err(message) => {
            let _ = header.send(Err(message));
            return;
        }
    };
    for record in records {
        let read = match record {
            Ok(record) => {
                let line = record.position().map_or(0, |p| p.line());
                ReadRow::Row(line, importer.row(&columns, &record, line))
            }
            Err(error) => ReadRow::Stopped(csv_error(&error)),
        };
        let stop = matches!(read, ReadRow::Stopped(_));
        if rows.blocking_send(read).is_err() || stop {
            return;
        }
    }
}

fn unreadable(error: &std::io::Error) -> String {
    match TextError::of(error) {
        Some(text) => text.to_string(),
        None => format!("the upload broke off: {error}"),
    }
}

fn csv_error(error: &csv::Error) -> String {
    let at = error
        .position()
        .map(|p| format!("line {}: ", p.line()))
        .unwrap_or_default();
    match error.kind() {
        csv::ErrorKind::Io(io) => format!("{at}{}", unreadable(io)),
        csv::ErrorKind::Utf8 { .. } => format!("{at}not valid text"),
        _ => format!("{at}{error}"),
    }
}
