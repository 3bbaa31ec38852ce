//! Protobuf enums ⇄ domain enums. `UNSPECIFIED` (0) and numbers this build does not know
//! are refused with a field violation, never mapped to a default.

use noroshi_domain::values as domain;
use noroshi_proto::v1 as pb;

/// A domain enum carried on the wire as a protobuf enum number.
pub trait WireEnum: Sized + Copy + Ord {
    /// The protobuf enum's name, for messages.
    const NAME: &'static str;
    fn from_known(value: i32) -> Option<Self>;
    fn to_wire(self) -> i32;

    /// Parses a wire number; `Err` holds the violation's description.
    fn from_wire(value: i32) -> Result<Self, String> {
        if value == 0 {
            return Err(format!(
                "is required ({}_UNSPECIFIED is not a value)",
                Self::NAME
            ));
        }
        Self::from_known(value).ok_or_else(|| format!("unknown {} value {value}", Self::NAME))
    }
}

macro_rules! wire_enum {
    ($domain:ident, $name:literal, { $($d:ident => $p:ident),+ $(,)? }) => {
        impl WireEnum for domain::$domain {
            const NAME: &'static str = $name;

            fn from_known(value: i32) -> Option<Self> {
                match pb::$domain::try_from(value).ok()? {
                    $(pb::$domain::$p => Some(Self::$d),)+
                    pb::$domain::Unspecified => None,
                }
            }

            fn to_wire(self) -> i32 {
                match self {
                    $(Self::$d => pb::$domain::$p as i32,)+
                }
            }
        }
    };
    ($domain:ident, $name:literal, [ $($v:ident),+ $(,)? ]) => {
        wire_enum!($domain, $name, { $($v => $v),+ });
    };
}

wire_enum!(ConsultMode, "CONSULT_MODE", [DToPWithN, DToD, DToP]);
wire_enum!(
    AlertKind,
    "ALERT_KIND",
    [
        OfferDeadlineNear,
        OfferExpired,
        HoldOverdue,
        TransportLate,
        WaitingTooLong,
        CapacityStale,
        OccupancyThreshold,
        Deterioration,
        ConsultUnanswered,
        BedMismatch
    ]
);
wire_enum!(AlertSeverity, "ALERT_SEVERITY", [Info, Warning, Critical]);
wire_enum!(AlertStatus, "ALERT_STATUS", [Open, Acknowledged, Resolved]);
wire_enum!(
    AlertSubjectKind,
    "ALERT_SUBJECT_KIND",
    [Facility, Case, Placement, Consult, Area]
);
wire_enum!(
    ConsultUrgency,
    "CONSULT_URGENCY",
    [Routine, Urgent, Emergency]
);
wire_enum!(
    Recommendation,
    "RECOMMENDATION",
    [Continue, Escalate, Prescribe, FollowUp]
);
wire_enum!(
    ConsultStatus,
    "CONSULT_STATUS",
    [
        Requested, Scheduled, InProgress, Completed, Cancelled, Missed
    ]
);
wire_enum!(
    FacilityKind,
    "FACILITY_KIND",
    [
        Hospital,
        Hotel,
        HealthCenter,
        Hq,
        Clinic,
        ConsultCenter,
        MobileClinic,
        Temporary
    ]
);
wire_enum!(
    Capability,
    "CAPABILITY",
    [
        Ventilator,
        Ecmo,
        Dialysis,
        Pediatric,
        Perinatal,
        Psychiatric,
        DementiaCare,
        Oxygen
    ]
);
wire_enum!(
    BedCategory,
    "BED_CATEGORY",
    [Severe, Moderate, Mild, HotelRoom]
);
wire_enum!(Acceptance, "ACCEPTANCE", [Accepting, Limited, NotAccepting]);
wire_enum!(
    AcceptanceConstraint,
    "ACCEPTANCE_CONSTRAINT",
    [Staff, Rooms, Equipment, InfectionControl]
);
wire_enum!(
    RiskFactor,
    "RISK_FACTOR",
    [
        Age65Plus,
        Diabetes,
        ChronicLung,
        ChronicKidney,
        Dialysis,
        Pregnancy,
        Immunosuppressed,
        Obesity,
        Cardiovascular
    ]
);
wire_enum!(Severity, "SEVERITY", { Asymptomatic => Asymptomatic, Mild => Mild, ModerateI => ModerateI, ModerateII => ModerateIi, Severe => Severe });
wire_enum!(Sex, "SEX", [Female, Male, Other]);
wire_enum!(
    CaseStatus,
    "CASE_STATUS",
    [
        Reported,
        HomeCare,
        AwaitingPlacement,
        PlacementInProgress,
        Hospitalized,
        InHotel,
        Recovered,
        Deceased,
        TransferredOut
    ]
);
wire_enum!(
    CaseOutcome,
    "CASE_OUTCOME",
    [Recovered, Deceased, TransferredOut]
);
wire_enum!(
    PlacementStatus,
    "PLACEMENT_STATUS",
    [
        Requested,
        Offered,
        Accepted,
        TransportArranged,
        InTransit,
        Arrived,
        Cancelled
    ]
);
wire_enum!(
    Vehicle,
    "VEHICLE",
    [Ambulance, HealthCenterVehicle, Private, Other]
);
wire_enum!(
    DischargeOutcome,
    "DISCHARGE_OUTCOME",
    [Recovered, Deceased, StepDown, Transfer]
);

/// Wire numbers of a set, in order.
pub fn to_wire_all<T: WireEnum>(values: impl IntoIterator<Item = T>) -> Vec<i32> {
    values.into_iter().map(WireEnum::to_wire).collect()
}
