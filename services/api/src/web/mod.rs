//! The web UI (docs/web.md): one page per role, server-rendered shells that fill
//! themselves from the same HTTP API every other client uses, kept live by Server-Sent
//! Events. Japanese first, with an English switch. The assets are embedded in the
//! binary; there is no front-end build.

mod candidates;
mod drill;
mod login;
mod trend;

pub use candidates::{Candidate, candidates};
pub use drill::DrillMark;
pub(crate) use drill::mark as mark_drill;
pub(crate) use login::{login_form, login_submit, logout_submit};
pub use trend::{ObservationPoint, observations};

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use noroshi_domain::authz::Role;

use crate::auth::{Authed, PageCaller};
use crate::error::ApiError;
use crate::state::HttpContext;
use noroshi_identity::{Caller, Credential, Scope};

/// `GET /api/v1/placements/{placement_id}/candidates`, best first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Candidates {
    candidates: Vec<Candidate>,
}

/// `GET /api/v1/areas`: the medical areas and their municipalities, by code.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Areas {
    areas: Vec<noroshi_identity::areas::MedicalArea>,
    municipalities: Vec<noroshi_identity::areas::Municipality>,
}

/// `GET /api/v1/facilities`: every registered facility's names, by id.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Facilities {
    facilities: Vec<noroshi_projections::bed_board::FacilityName>,
}

/// `GET /api/v1/cases/{case_id}/observations`, oldest first.
#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
pub(crate) struct Observations {
    observations: Vec<ObservationPoint>,
}

const SHELL: &str = include_str!("../../assets/shell.html");
const HQ: &str = include_str!("../../assets/hq.html");
const HEALTH_CENTER: &str = include_str!("../../assets/hc.html");
const FACILITY: &str = include_str!("../../assets/facility.html");
const TIMELINE: &str = include_str!("../../assets/timeline.html");
const PUBLIC: &str = include_str!("../../assets/public.html");
const FORBIDDEN: &str = include_str!("../../assets/forbidden.html");
const ADMIN: &str = include_str!("../../assets/admin.html");
const CONSULT: &str = include_str!("../../assets/consult.html");

/// The embedded static files: name, content type, content.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
];

/// Escapes text for HTML content and attribute values.
pub use noroshi_interop::report::escape;

/// The page `body` (one of the embedded fragments) in the shell, for `caller`.
fn render(page: &str, body: &str, caller: &Caller) -> Response {
    render_with(page, body, caller, &[])
}

/// [`render`], with the municipalities of the caller's jurisdiction (a health center's
/// report form offers them by name).
fn render_with(page: &str, body: &str, caller: &Caller, jurisdiction: &[String]) -> Response {
    let csrf = match &caller.credential {
        Credential::Session { csrf_token } => csrf_token.as_str(),
        _ => "",
    };
    let principal = &caller.principal;
    let html = SHELL
        .replace("{{page}}", page)
        .replace("{{principal}}", &escape(principal.principal_id.as_str()))
        .replace(
            "{{organisation}}",
            &escape(principal.organisation_id.as_str()),
        )
        .replace("{{role}}", principal.role.as_str())
        .replace("{{jurisdiction}}", &escape(&jurisdiction.join(",")))
        .replace("{{csrf}}", &escape(csrf))
        .replace("{{body}}", body);
    (
        [
            (header::CACHE_CONTROL, "no-store"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        Html(html),
    )
        .into_response()
}

/// The page a role starts on.
pub fn home(caller: &Caller) -> String {
    let principal = &caller.principal;
    match principal.role {
        Role::Hq => "/hq".to_owned(),
        Role::Admin => "/admin".to_owned(),
        Role::HealthCenter => "/hc".to_owned(),
        Role::ConsultCenter => "/consult".to_owned(),
        role if role.keeps_patients() => format!("/facility/{}", principal.organisation_id),
        _ => "/public".to_owned(),
    }
}

fn login_redirect() -> Response {
    Redirect::to("/login").into_response()
}

fn forbidden(caller: &Caller) -> Response {
    let mut response = render("forbidden", FORBIDDEN, caller);
    *response.status_mut() = StatusCode::FORBIDDEN;
    response
}

/// `GET /`: the caller's own page, or the login.
pub async fn index(PageCaller(caller): PageCaller) -> Response {
    match caller {
        Some(caller) => Redirect::to(&home(&caller)).into_response(),
        None => login_redirect(),
    }
}

/// A page for the roles `allowed`.
fn page(caller: Option<Caller>, allowed: &[Role], name: &str, body: &str) -> Response {
    match caller {
        None => login_redirect(),
        Some(caller) if allowed.contains(&caller.principal.role) => render(name, body, &caller),
        Some(caller) => forbidden(&caller),
    }
}

/// `GET /hq`: bed board, placement queue, offers, alerts, proxy entry.
pub async fn hq_page(PageCaller(caller): PageCaller) -> Response {
    page(caller, &[Role::Hq], "hq", HQ)
}

/// `GET /consult`: a consult center's queue of remote consultations.
pub async fn consult_page(PageCaller(caller): PageCaller) -> Response {
    page(caller, &[Role::ConsultCenter, Role::Hq], "consult", CONSULT)
}

/// `GET /admin`: users (HQ and ADMIN), API clients (ADMIN), the audit log.
pub async fn admin_page(PageCaller(caller): PageCaller) -> Response {
    page(caller, &[Role::Hq, Role::Admin], "admin", ADMIN)
}

/// `GET /hc`: the health center's cases.
pub async fn hc_page(
    State(context): State<HttpContext>,
    PageCaller(caller): PageCaller,
) -> Response {
    let caller = match caller {
        Some(caller) if caller.principal.role == Role::HealthCenter => caller,
        other => return page(other, &[Role::HealthCenter], "hc", HEALTH_CENTER),
    };
    // Without its profile (the store cannot be reached) the form offers every
    // municipality instead.
    let jurisdiction: Vec<String> = match context
        .handler
        .facility(&caller.principal.organisation_id)
        .await
    {
        Ok((facility, _)) => facility
            .profile
            .map(|p| p.jurisdiction.iter().map(ToString::to_string).collect())
            .unwrap_or_default(),
        Err(error) => {
            tracing::warn!(error = %error, "cannot read the health center's jurisdiction");
            Vec::new()
        }
    };
    render_with("hc", HEALTH_CENTER, &caller, &jurisdiction)
}

/// `GET /facility/{facility_id}`: a hospital's or hotel's own page. Another facility's
/// page is refused, whatever the URL says (HQ may open any, as proxy).
pub async fn facility_page(
    PageCaller(caller): PageCaller,
    Path(facility_id): Path<String>,
) -> Response {
    match caller {
        None => login_redirect(),
        Some(caller) => {
            let principal = &caller.principal;
            let own = principal.role.keeps_patients()
                && principal.organisation_id.as_str() == facility_id;
            if own || principal.role == Role::Hq {
                let body = FACILITY.replace("{{facility}}", &escape(&facility_id));
                render("facility", &body, &caller)
            } else {
                forbidden(&caller)
            }
        }
    }
}

/// `GET /timeline?case_id=…|placement_id=…`: within the caller's rights (the API says).
pub async fn timeline_page(PageCaller(caller): PageCaller) -> Response {
    page(
        caller,
        &[
            Role::Hq,
            Role::Admin,
            Role::HealthCenter,
            Role::Hospital,
            Role::Hotel,
        ],
        "timeline",
        TIMELINE,
    )
}

/// `GET /public`: the statistics.
pub async fn public_page(PageCaller(caller): PageCaller) -> Response {
    page(caller, Role::ALL, "public", PUBLIC)
}

/// `GET /assets/{name}`.
pub async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, content)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *content,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, ApiError> {
    uuid::Uuid::parse_str(value).map_err(|_| ApiError::invalid(field, "must be a UUID"))
}

/// `GET /api/v1/placements/{placement_id}/candidates` (HQ): where to offer the patient.
pub async fn placement_candidates(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(placement_id): Path<String>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    let placement_id = uuid("placement_id", &placement_id)?;
    let ranked = candidates(
        &context.handler,
        context.views.pool(),
        principal,
        placement_id,
    )
    .await?;
    Ok(Json(Candidates { candidates: ranked }).into_response())
}

/// `GET /api/v1/areas`: the names of the medical areas and of their municipalities, by
/// code, for any principal that reads views. They are public reference data, like the
/// codes the views carry.
pub async fn medical_areas(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    caller.scoped(Scope::Views)?;
    let (areas, municipalities) = noroshi_identity::areas::list(context.views.pool()).await?;
    Ok(Json(Areas {
        areas,
        municipalities,
    })
    .into_response())
}

/// `GET /api/v1/facilities`: the registered facilities' names, so that pages show names
/// rather than ids. Every principal that reads views may call it except `PUBLIC`, whose
/// statistics name no facility.
pub async fn facility_names(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    if principal.role == Role::Public {
        return Err(ApiError::PermissionDenied);
    }
    let facilities = noroshi_projections::bed_board::facility_names(context.views.pool())
        .await
        .map_err(crate::error::store_failure)?;
    Ok(Json(Facilities { facilities }).into_response())
}

/// `GET /api/v1/cases/{case_id}/observations`: the SpO₂ and temperature trend.
pub async fn case_observations(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
    Path(case_id): Path<String>,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Views)?;
    let case_id = uuid("case_id", &case_id)?;
    let points = observations(&context.handler, principal, case_id).await?;
    Ok(Json(Observations {
        observations: points,
    })
    .into_response())
}
