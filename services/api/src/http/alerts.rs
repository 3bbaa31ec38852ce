//! `GET /api/v1/alert-rules`: the alert rules in force, which HQ's forms start from.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use noroshi_domain::authz::{self, Followed};
use noroshi_identity::Scope;
use noroshi_proto::v1 as pb;

use crate::auth::Authed;
use crate::error::ApiError;
use crate::json::to_json;
use crate::state::HttpContext;

/// The rules HQ set and the defaults of the rest (HQ only, as `SetAlertRule`).
pub(super) async fn rules(
    State(context): State<HttpContext>,
    Authed(caller): Authed,
) -> Result<Response, ApiError> {
    let principal = caller.scoped(Scope::Alerts)?;
    if !authz::may_follow(principal, Followed::AlertRules) {
        return Err(ApiError::PermissionDenied);
    }
    let rules = noroshi_app::alert::rules_in_force(&context.handler).await?;
    let answer = pb::AlertRulesInForce {
        rules: rules
            .in_force()
            .iter()
            .map(noroshi_codec::alert::rule_to_wire)
            .collect(),
    };
    Ok(Json(to_json(&answer)?).into_response())
}
