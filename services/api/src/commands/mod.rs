//! The command requests of `FacilityService`, `CaseService`, `PlacementService` and
//! `ConsultService`,
//! parsed into the domain's commands ([`noroshi_app::Command`]) and run by the
//! application. gRPC and HTTP/JSON both come through here, so they parse, check and
//! answer alike.

pub mod alert;
pub mod case;
pub mod consult;
pub mod facility;
pub mod placement;

use noroshi_app::{Command, CommandHandler, Envelope, Recorded};
use noroshi_domain::authz::Principal;
use noroshi_proto::v1 as pb;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ApiError;

/// A parsed command request: its envelope and the command.
pub type Parsed = (Envelope, Command);

pub(crate) fn envelope(command_id: Uuid, expected_version: Option<u64>) -> Envelope {
    Envelope {
        command_id,
        expected_version,
        request_digest: None,
        dry_run: false,
    }
}

/// What parsing a request may look at besides the request itself.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Who asks: a health center reports its own cases, only HQ enters figures as proxy.
    pub principal: &'a Principal,
    /// The time of an observation that names none.
    pub now: OffsetDateTime,
}

/// A command request message of the gRPC services.
pub trait CommandRequest: prost::Message + prost::Name + Default + 'static {
    /// The request as the domain's command, or every invalid field.
    fn parse(&self, context: &Context<'_>) -> Result<Parsed, ApiError>;
}

macro_rules! command_requests {
    ($($request:ty => |$r:ident, $c:ident| $parse:expr;)+) => {
        $(impl CommandRequest for $request {
            fn parse(&self, $c: &Context<'_>) -> Result<Parsed, ApiError> {
                let $r = self;
                $parse
            }
        })+
    };
}

command_requests! {
    pb::RegisterFacilityRequest => |r, _c| facility::register(r);
    pb::UpdateFacilityRequest => |r, _c| facility::update(r);
    pb::DeclareCapacityRequest => |r, c| facility::declare_capacity(c.principal, r);
    pb::SetAcceptanceRequest => |r, c| facility::set_acceptance(c.principal, r);
    pb::ReportCaseRequest => |r, c| case::report(c.principal, r);
    pb::TriageCaseRequest => |r, _c| case::triage(r);
    pb::OverridePriorityRequest => |r, _c| case::override_priority(r);
    pb::RecordObservationRequest => |r, c| case::record_observation(r, c.now);
    pb::StartHomeCareRequest => |r, _c| case::start_home_care(r);
    pb::AssignCareSiteRequest => |r, _c| case::assign_care_site(r);
    pb::CloseCaseRequest => |r, _c| case::close(r);
    pb::RequestPlacementRequest => |r, _c| placement::request(r);
    pb::OfferPlacementRequest => |r, _c| placement::offer(r);
    pb::AcceptPlacementRequest => |r, _c| placement::accept(r);
    pb::DeclinePlacementRequest => |r, _c| placement::decline(r);
    pb::ArrangeTransportRequest => |r, _c| placement::arrange_transport(r);
    pb::RecordDepartureRequest => |r, _c| placement::record_departure(r);
    pb::RecordArrivalRequest => |r, _c| placement::record_arrival(r);
    pb::CancelPlacementRequest => |r, _c| placement::cancel(r);
    pb::RecordDischargeRequest => |r, _c| placement::record_discharge(r);
    pb::RequestConsultRequest => |r, _c| consult::request(r);
    pb::AcknowledgeAlertRequest => |r, _c| alert::acknowledge(r);
    pb::SetAlertRuleRequest => |r, _c| alert::set_rule(r);
    pb::ScheduleConsultRequest => |r, _c| consult::schedule(r);
    pb::StartConsultRequest => |r, _c| consult::start(r);
    pb::CompleteConsultRequest => |r, _c| consult::complete(r);
    pb::EscalateConsultRequest => |r, _c| consult::escalate(r);
    pb::CancelConsultRequest => |r, _c| consult::cancel(r);
    pb::MarkConsultMissedRequest => |r, _c| consult::mark_missed(r);
}

/// Parses `request` and runs its command for `principal`; the result as the wire's
/// `CommandResult`.
pub async fn execute<R: CommandRequest>(
    handler: &CommandHandler,
    principal: &Principal,
    request: &R,
) -> Result<pb::CommandResult, ApiError> {
    let context = Context {
        principal,
        now: handler.now(),
    };
    let (mut envelope, command) = request.parse(&context)?;
    // The request span (crate::metrics) names the command, and once it is recorded the
    // stream it addressed.
    let span = tracing::Span::current();
    span.record("command_id", tracing::field::display(envelope.command_id));
    span.record(
        "correlation_id",
        tracing::field::display(envelope.command_id),
    );
    // The request as received: the same command id with other bytes is another request.
    envelope.request_digest = Some(Sha256::digest(request.encode_to_vec()).into());
    let recorded = handler.execute(principal, envelope, command).await??;
    if let Some(first) = recorded.first() {
        span.record("stream_id", tracing::field::display(&first.stream_id));
    }
    Ok(command_result(&recorded))
}

/// The wire result, naming the addressed stream first.
pub fn command_result(recorded: &Recorded) -> pb::CommandResult {
    let streams: Vec<pb::StreamVersion> = recorded
        .streams
        .iter()
        .map(|s| pb::StreamVersion {
            stream_id: s.stream_id.to_string(),
            version: s.version,
            position: s.position,
        })
        .collect();
    let first = streams.first().cloned().unwrap_or_default();
    pb::CommandResult {
        command_id: recorded.command_id.to_string(),
        stream_id: first.stream_id,
        version: first.version,
        position: first.position,
        streams,
        replayed: recorded.replayed,
    }
}
