//! A case's observations, for the SpO₂ trend of the health center's page:
//! `GET /api/v1/cases/{case_id}/observations`. Health data, so it is readable by whoever
//! may read the patient, and audited as a PII read.

use noroshi_domain::authz::Principal;
use noroshi_domain::case::CaseEvent;
use noroshi_event_store::StreamId;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;
use noroshi_app::CommandHandler;
use noroshi_codec::decode;
use noroshi_domain::DomainEvent;
use noroshi_identity::audit;

/// Most observations returned, the latest.
const MAX_OBSERVATIONS: usize = 200;

/// One observation of a case's trend.
#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
pub struct ObservationPoint {
    #[serde(with = "time::serde::rfc3339")]
    #[schemars(with = "String", extend("format" = "date-time"))]
    pub observed_at: OffsetDateTime,
    pub spo2_percent: Option<u8>,
    pub temperature_decicelsius: Option<u16>,
    pub on_oxygen: bool,
}

/// The observations of a case, oldest first (at most the latest 200).
pub async fn observations(
    handler: &CommandHandler,
    principal: &Principal,
    case_id: Uuid,
) -> Result<Vec<ObservationPoint>, ApiError> {
    let stream = StreamId::parse(&format!("case-{case_id}"))
        .map_err(|_| ApiError::invalid("case_id", "must be a UUID"))?;
    // Unknown and forbidden look the same.
    if !handler.may_follow(principal, &stream).await? {
        return Err(ApiError::PermissionDenied);
    }
    let mut points = Vec::new();
    let mut from = 1;
    loop {
        let events = handler.store().read_stream(&stream, from, 500).await?;
        let Some(last) = events.last() else { break };
        from = last.version + 1;
        for event in &events {
            if let DomainEvent::Case(CaseEvent::ObservationRecorded(o)) =
                decode(event).map_err(ApiError::internal)?
            {
                points.push(ObservationPoint {
                    observed_at: o.observed_at,
                    spo2_percent: o.spo2.map(|s| s.percent()),
                    temperature_decicelsius: o.temperature.map(|t| t.decicelsius()),
                    on_oxygen: o.on_oxygen,
                });
            }
        }
    }
    audit::pii_reads(
        handler.store().pool(),
        principal,
        "observations",
        &[case_id],
    )
    .await?;
    let skip = points.len().saturating_sub(MAX_OBSERVATIONS);
    Ok(points.split_off(skip))
}
