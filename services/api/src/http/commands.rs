//! The commands over HTTP: `POST /api/v1/commands/<Rpc>` with the gRPC request message
//! as JSON (the canonical protobuf JSON mapping; field names as in the `.proto` or in
//! lowerCamelCase), answered with the same `CommandResult` and the same error model.
//! The body is decoded against the protobuf schema itself, so the two APIs cannot drift.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use noroshi_proto::v1 as pb;

use super::HttpContext;
use crate::auth::Authed;
use crate::error::ApiError;
use crate::json::{from_json, to_json};
use noroshi_identity::{Caller, Scope};

macro_rules! http_commands {
    ($($name:literal => $scope:ident => $request:ty;)+) => {
        /// Every command served at `/api/v1/commands/<name>`, with the name of its request
        /// message in package `noroshi.v1`.
        pub const COMMANDS: &[(&str, &str)] = &[$(($name, <$request as prost::Name>::NAME)),+];

        async fn dispatch(
            context: &HttpContext,
            caller: &Caller,
            name: &str,
            body: &[u8],
        ) -> Result<pb::CommandResult, ApiError> {
            match name {
                $($name => {
                    let principal = caller.scoped(Scope::$scope)?;
                    let request: $request = from_json(body)?;
                    crate::commands::execute(&context.handler, principal, &request).await
                })+
                _ => Err(ApiError::invalid(
                    "command",
                    format!("unknown command {name:?}; see /api/v1/openapi.json"),
                )),
            }
        }
    };
}

http_commands! {
    "RegisterFacility" => Facilities => pb::RegisterFacilityRequest;
    "UpdateFacility" => Facilities => pb::UpdateFacilityRequest;
    "DeclareCapacity" => Facilities => pb::DeclareCapacityRequest;
    "SetAcceptance" => Facilities => pb::SetAcceptanceRequest;
    "ReportCase" => Cases => pb::ReportCaseRequest;
    "TriageCase" => Cases => pb::TriageCaseRequest;
    "OverridePriority" => Cases => pb::OverridePriorityRequest;
    "RecordObservation" => Cases => pb::RecordObservationRequest;
    "StartHomeCare" => Cases => pb::StartHomeCareRequest;
    "AssignCareSite" => Cases => pb::AssignCareSiteRequest;
    "CloseCase" => Cases => pb::CloseCaseRequest;
    "RequestPlacement" => Placements => pb::RequestPlacementRequest;
    "OfferPlacement" => Placements => pb::OfferPlacementRequest;
    "AcceptPlacement" => Placements => pb::AcceptPlacementRequest;
    "DeclinePlacement" => Placements => pb::DeclinePlacementRequest;
    "ArrangeTransport" => Placements => pb::ArrangeTransportRequest;
    "RecordDeparture" => Placements => pb::RecordDepartureRequest;
    "RecordArrival" => Placements => pb::RecordArrivalRequest;
    "CancelPlacement" => Placements => pb::CancelPlacementRequest;
    "RecordDischarge" => Placements => pb::RecordDischargeRequest;
    "RequestConsult" => Consults => pb::RequestConsultRequest;
    "ScheduleConsult" => Consults => pb::ScheduleConsultRequest;
    "StartConsult" => Consults => pb::StartConsultRequest;
    "CompleteConsult" => Consults => pb::CompleteConsultRequest;
    "EscalateConsult" => Consults => pb::EscalateConsultRequest;
    "CancelConsult" => Consults => pb::CancelConsultRequest;
    "MarkConsultMissed" => Consults => pb::MarkConsultMissedRequest;
    "AcknowledgeAlert" => Alerts => pb::AcknowledgeAlertRequest;
    "SetAlertRule" => Alerts => pb::SetAlertRuleRequest;
}

/// `POST /api/v1/commands/{name}`: authenticate, read at most the configured number of
/// bytes, decode, run the command as gRPC runs it.
pub(super) async fn command(
    State(context): State<HttpContext>,
    Path(name): Path<String>,
    Authed(caller): Authed,
    body: Body,
) -> Result<Response, ApiError> {
    let limit = context.max_body_bytes;
    let body = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::ResourceExhausted(format!("the request body is over {limit} bytes"))
    })?;
    let result = dispatch(&context, &caller, &name, &body).await?;
    Ok(Json(to_json(&result)?).into_response())
}
