//! FHIR R4 at `/fhir/r4` (docs/interop.md): bed capacity as `MeasureReport`s with HL7
//! SANER populations, per facility and for the prefecture, read through the bed board
//! (so each caller sees what its board shows), as `application/fhir+json`; errors as
//! `OperationOutcome`s.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use noroshi_domain::ErrorCode;
use noroshi_domain::values::Role;
use noroshi_identity::{Caller, Scope};
use noroshi_interop::fhir::{self, Figures, Subject};
use noroshi_projections::bed_board::BedBoard;
use noroshi_projections::views::ViewQuery;
use noroshi_proto::v1 as pb;
use serde_json::Value;
use time::OffsetDateTime;

use crate::error::ApiError;
use crate::state::HttpContext;

const FHIR_JSON: &str = "application/fhir+json; charset=utf-8";

/// A FHIR answer: the resource, or an `OperationOutcome` with the error's status.
struct Fhir(Result<Value, ApiError>);

impl IntoResponse for Fhir {
    fn into_response(self) -> Response {
        let (status, body) = match self.0 {
            Ok(resource) => (StatusCode::OK, resource),
            Err(error) => {
                let code = error.code();
                let issue = match code {
                    ErrorCode::Unauthenticated => "login",
                    ErrorCode::PermissionDenied => "forbidden",
                    ErrorCode::NotFound => "not-found",
                    ErrorCode::InvalidArgument => "invalid",
                    ErrorCode::Unavailable => "transient",
                    _ => "exception",
                };
                if code == ErrorCode::Internal {
                    tracing::error!(error = %error, "a FHIR read failed");
                }
                let status = StatusCode::from_u16(code.http_status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (status, fhir::operation_outcome(issue, &error.to_string()))
            }
        };
        (
            status,
            [(header::CONTENT_TYPE, FHIR_JSON)],
            body.to_string(),
        )
            .into_response()
    }
}

/// The caller, if any (the FHIR routes answer a missing one with an `OperationOutcome`).
fn caller(caller: Option<axum::Extension<Caller>>) -> Result<Caller, ApiError> {
    noroshi_identity::required(caller.as_ref().map(|c| &c.0))
        .cloned()
        .map_err(ApiError::from)
}

/// Every facility the caller's bed board shows, with its categories; and the board's
/// rows summed by category (the prefecture's figures as the caller may see them).
async fn subjects(
    context: &HttpContext,
    caller: &Caller,
) -> Result<(Vec<Subject>, Subject), ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    let board = BedBoard::get(&context.views, principal, &Default::default()).await?;
    let mut facilities: BTreeMap<String, Subject> = BTreeMap::new();
    let mut totals: BTreeMap<String, Figures> = BTreeMap::new();
    for row in &board.rows {
        let category = pb::BedCategory::try_from(row.category)
            .map(|c| {
                c.as_str_name()
                    .trim_start_matches("BED_CATEGORY_")
                    .to_owned()
            })
            .unwrap_or_default();
        let figures = Figures {
            secured: u64::from(row.secured),
            ready: u64::from(row.ready),
            occupied: u64::from(row.occupied),
            held: u64::from(row.held),
            available: u64::from(row.available),
        };
        let declared = row
            .declared_at
            .as_ref()
            .and_then(|t| OffsetDateTime::from_unix_timestamp(t.seconds).ok());
        let subject = facilities
            .entry(row.facility_id.clone())
            .or_insert_with(|| Subject {
                id: row.facility_id.clone(),
                name: row.name.clone(),
                categories: Vec::new(),
                declared_at: None,
            });
        subject.categories.push((category.clone(), figures));
        subject.declared_at = subject.declared_at.max(declared);
        *totals.entry(category).or_default() += figures;
    }
    let prefecture = context.handler.prefecture().code();
    let total = Subject {
        id: format!("prefecture-{prefecture}"),
        name: noroshi_interop::export::prefecture_name(&prefecture)
            .unwrap_or_default()
            .to_owned(),
        categories: totals.into_iter().collect(),
        declared_at: None,
    };
    Ok((facilities.into_values().collect(), total))
}

/// `GET /fhir/r4/metadata`: open to anyone, as FHIR expects.
pub(super) async fn metadata() -> Response {
    Fhir(Ok(fhir::capability_statement(
        env!("CARGO_PKG_VERSION"),
        OffsetDateTime::now_utc(),
    )))
    .into_response()
}

/// `GET /fhir/r4/MeasureReport`: a `searchset` of every facility the caller's board shows.
pub(super) async fn search(
    State(context): State<HttpContext>,
    who: Option<axum::Extension<Caller>>,
) -> Response {
    let answer = async {
        let caller = caller(who)?;
        let (facilities, _) = subjects(&context, &caller).await?;
        let now = OffsetDateTime::now_utc();
        let reports = facilities
            .iter()
            .map(|s| fhir::measure_report(s, now))
            .collect();
        Ok(fhir::bundle(
            "searchset",
            "bed-capacity-search",
            reports,
            now,
        ))
    };
    Fhir(answer.await).into_response()
}

/// `GET /fhir/r4/MeasureReport/{id}`: `bed-capacity-<facility>` or
/// `bed-capacity-prefecture-<code>` (HQ and health centers).
pub(super) async fn read(
    State(context): State<HttpContext>,
    who: Option<axum::Extension<Caller>>,
    Path(id): Path<String>,
) -> Response {
    let answer = async {
        let caller = caller(who)?;
        let (facilities, total) = subjects(&context, &caller).await?;
        let now = OffsetDateTime::now_utc();
        let wanted = id.strip_prefix("bed-capacity-").unwrap_or_default();
        if wanted == total.id {
            whole_prefecture(&caller)?;
            return Ok(fhir::measure_report(&total, now));
        }
        facilities
            .iter()
            .find(|s| s.id == wanted)
            .map(|s| fhir::measure_report(s, now))
            .ok_or_else(|| ApiError::NotFound(format!("MeasureReport/{id}")))
    };
    Fhir(answer.await).into_response()
}

/// `GET /fhir/r4/Bundle/prefecture`: a `collection` of the prefecture's report and every
/// facility's (HQ and health centers, who see every facility).
pub(super) async fn prefecture(
    State(context): State<HttpContext>,
    who: Option<axum::Extension<Caller>>,
) -> Response {
    let answer = async {
        let caller = caller(who)?;
        whole_prefecture(&caller)?;
        let (facilities, total) = subjects(&context, &caller).await?;
        let now = OffsetDateTime::now_utc();
        let reports = std::iter::once(&total)
            .chain(&facilities)
            .map(|s| fhir::measure_report(s, now))
            .collect();
        Ok(fhir::bundle(
            "collection",
            "bed-capacity-prefecture",
            reports,
            now,
        ))
    };
    Fhir(answer.await).into_response()
}

/// The prefecture's figures are for those whose board shows every facility.
fn whole_prefecture(caller: &Caller) -> Result<(), ApiError> {
    match caller.scoped(Scope::Views)?.role {
        Role::Hq | Role::HealthCenter => Ok(()),
        _ => Err(ApiError::PermissionDenied),
    }
}
