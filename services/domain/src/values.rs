//! Value objects: newtypes that cannot hold an invalid value, and the shared enums of
//! DESIGN.md §5. The API parses wire fields into these at the edge.

use std::fmt;

/// Longest name (facility, patient) in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// Longest free text (notes, reasons, addresses) in characters.
pub const MAX_TEXT_CHARS: usize = 2000;

/// Why a field value was refused; the message becomes the field violation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidValue(pub &'static str);

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, min = $min:expr, max = $max:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                let trimmed = value.trim();
                let chars = trimmed.chars().count();
                if !($min..=$max).contains(&chars) || trimmed.chars().any(|c| c.is_control() && c != '\n') {
                    return Err(InvalidValue($message));
                }
                Ok(Self(trimmed.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// A display name: 1 to 200 characters, Japanese welcome.
    Name, min = 1, max = MAX_NAME_CHARS, "must be 1 to 200 characters"
);
text_newtype!(
    /// Optional free text (a note): up to 2,000 characters.
    Text, min = 0, max = MAX_TEXT_CHARS, "must be at most 2000 characters"
);
text_newtype!(
    /// A mandatory explanation (decline, cancel, override, proxy entry): 1 to 2,000 characters.
    Reason, min = 1, max = MAX_TEXT_CHARS, "is required and must be at most 2000 characters"
);

macro_rules! code_newtype {
    ($(#[$doc:meta])* $name:ident, $valid:expr, $message:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            pub fn parse(value: &str) -> Result<Self, InvalidValue> {
                let valid: fn(&str) -> bool = $valid;
                if valid(value) {
                    Ok(Self(value.to_owned()))
                } else {
                    Err(InvalidValue($message))
                }
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

impl Text {
    pub fn empty() -> Self {
        Self(String::new())
    }
}

impl From<Reason> for Text {
    fn from(reason: Reason) -> Self {
        Self(reason.0)
    }
}

code_newtype!(
    /// A facility or organisation slug chosen by ADMIN, e.g. `hofu-central`: 2 to 64 of
    /// `[a-z0-9-]`, starting and ending with a letter or digit. Organisations are
    /// facilities (HQ and health centers included), so this is also the organisation id.
    FacilityId,
    |v| {
        (2..=64).contains(&v.len())
            && v.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !v.starts_with('-')
            && !v.ends_with('-')
    },
    "must be 2 to 64 of a-z, 0-9 and '-', not starting or ending with '-'"
);
code_newtype!(
    /// JIS X 0401 prefecture code, `01` to `47` (Yamaguchi = `35`).
    PrefectureCode,
    |v| v.len() == 2 && v.parse::<u8>().is_ok_and(|n| (1..=47).contains(&n)),
    "must be a JIS X 0401 prefecture code, 01 to 47"
);
code_newtype!(
    /// 全国地方公共団体コード of a municipality: 6 digits with the check digit (5 without).
    MunicipalityCode,
    |v| (5..=6).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_digit()),
    "must be a 5 or 6 digit municipality code"
);
code_newtype!(
    /// 二次医療圏 code: 4 digits, the prefecture code first (e.g. `3504`).
    MedicalAreaCode,
    |v| v.len() == 4 && v.bytes().all(|b| b.is_ascii_digit()),
    "must be a 4 digit medical area code"
);
code_newtype!(
    /// Reference in an external register (e.g. HER-SYS): 1 to 64 printable ASCII characters.
    ExternalRef,
    |v| (1..=64).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()),
    "must be 1 to 64 printable ASCII characters"
);
code_newtype!(
    /// A phone number: digits, optionally with `+`, `-`, spaces or parentheses.
    Phone,
    |v| {
        v.len() <= 32
            && v.bytes().filter(u8::is_ascii_digit).count() >= 3
            && v.bytes().all(|b| b.is_ascii_digit() || b"+-() ".contains(&b))
    },
    "must be a phone number of digits, '+', '-', spaces or parentheses"
);
code_newtype!(
    /// Who issued a command: a user or API client id, or `system:<component>`.
    PrincipalId,
    |v| (1..=200).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()),
    "must be 1 to 200 printable ASCII characters"
);

/// Oxygen saturation in percent, 1 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Spo2(u8);

impl Spo2 {
    pub fn new(percent: i64) -> Result<Self, InvalidValue> {
        match u8::try_from(percent) {
            Ok(p) if (1..=100).contains(&p) => Ok(Self(p)),
            _ => Err(InvalidValue("must be a percentage from 1 to 100")),
        }
    }

    pub fn percent(self) -> u8 {
        self.0
    }
}

/// Body temperature in tenths of a degree Celsius, 30.0 °C to 45.0 °C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Temperature(u16);

impl Temperature {
    pub fn from_decicelsius(value: i64) -> Result<Self, InvalidValue> {
        match u16::try_from(value) {
            Ok(v) if (300..=450).contains(&v) => Ok(Self(v)),
            _ => Err(InvalidValue(
                "must be between 300 and 450 tenths of a degree Celsius",
            )),
        }
    }

    pub fn decicelsius(self) -> u16 {
        self.0
    }
}

/// Placement priority, 1 (most urgent) to 5.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Priority(u8);

impl Priority {
    pub const MOST_URGENT: Self = Self(1);
    pub const LEAST_URGENT: Self = Self(5);

    pub fn new(value: i64) -> Result<Self, InvalidValue> {
        match u8::try_from(value) {
            Ok(v) if (1..=5).contains(&v) => Ok(Self(v)),
            _ => Err(InvalidValue("must be from 1 (most urgent) to 5")),
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }
}

/// A bed count: never negative, at most 100,000.
pub fn bed_count(value: i64) -> Result<u32, InvalidValue> {
    match u32::try_from(value) {
        Ok(v) if v <= 100_000 => Ok(v),
        Ok(_) => Err(InvalidValue("must be at most 100000")),
        Err(_) => Err(InvalidValue("must not be negative")),
    }
}

macro_rules! domain_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The value named `name` in UPPER_SNAKE case, as DESIGN.md writes it.
            pub fn parse(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.to_string() == name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let name = match self { $(Self::$variant => stringify!($variant)),+ };
                f.write_str(&upper_snake(name))
            }
        }
    };
}

/// `ModerateI` → `MODERATE_I`, `Age65Plus` → `AGE_65_PLUS`, the names of DESIGN.md.
fn upper_snake(camel: &str) -> String {
    let mut out = String::with_capacity(camel.len() + 4);
    let mut previous: Option<char> = None;
    for c in camel.chars() {
        if let Some(p) = previous {
            let boundary = (c.is_ascii_uppercase()
                && (p.is_ascii_lowercase() || p.is_ascii_digit()))
                || (c.is_ascii_digit() && !p.is_ascii_digit());
            if boundary {
                out.push('_');
            }
        }
        out.push(c.to_ascii_uppercase());
        previous = Some(c);
    }
    out
}

domain_enum!(FacilityKind {
    Hospital,
    Hotel,
    HealthCenter,
    Hq,
    Clinic,
    ConsultCenter,
    MobileClinic,
    Temporary
});
domain_enum!(Capability {
    Ventilator,
    Ecmo,
    Dialysis,
    Pediatric,
    Perinatal,
    Psychiatric,
    DementiaCare,
    Oxygen
});
domain_enum!(
    /// 重症 / 中等症 / 軽症 / 宿泊療養居室.
    BedCategory { Severe, Moderate, Mild, HotelRoom }
);
domain_enum!(Acceptance {
    Accepting,
    Limited,
    NotAccepting
});
domain_enum!(AcceptanceConstraint {
    Staff,
    Rooms,
    Equipment,
    InfectionControl
});
domain_enum!(RiskFactor {
    Age65Plus,
    Diabetes,
    ChronicLung,
    ChronicKidney,
    Dialysis,
    Pregnancy,
    Immunosuppressed,
    Obesity,
    Cardiovascular
});
domain_enum!(Severity {
    Asymptomatic,
    Mild,
    ModerateI,
    ModerateII,
    Severe
});
domain_enum!(Sex {
    Female,
    Male,
    Other
});
domain_enum!(CaseStatus {
    Reported,
    HomeCare,
    AwaitingPlacement,
    PlacementInProgress,
    Hospitalized,
    InHotel,
    Recovered,
    Deceased,
    TransferredOut
});
domain_enum!(CaseOutcome {
    Recovered,
    Deceased,
    TransferredOut
});
domain_enum!(PlacementStatus {
    Requested,
    Offered,
    Accepted,
    TransportArranged,
    InTransit,
    Arrived,
    Cancelled
});
domain_enum!(Vehicle {
    Ambulance,
    HealthCenterVehicle,
    Private,
    Other
});
domain_enum!(DischargeOutcome {
    Recovered,
    Deceased,
    StepDown,
    Transfer
});

domain_enum!(
    /// How soon a consult is needed: unscheduled `URGENT` requests raise an alert after
    /// 30 minutes, `EMERGENCY` after 10 (DESIGN.md §5.5).
    ConsultUrgency {
        Routine,
        Urgent,
        Emergency
    }
);
domain_enum!(
    /// What the consulting doctor recommends.
    Recommendation {
        Continue,
        Escalate,
        Prescribe,
        FollowUp
    }
);
domain_enum!(ConsultStatus {
    Requested,
    Scheduled,
    InProgress,
    Completed,
    Cancelled,
    Missed
});

/// The role a principal acts in (DESIGN.md §7); the rules of each are `authz`'s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Hq,
    HealthCenter,
    Hospital,
    Hotel,
    /// A temporary medical facility: declares capacity and takes placements like a
    /// hospital (DESIGN.md §1).
    Temporary,
    /// A rural clinic or an online-consultation site; one with beds takes placements
    /// like a hospital.
    Clinic,
    /// A mobile clinic vehicle with a nurse on board.
    MobileClinic,
    /// A support center whose doctors consult remotely.
    ConsultCenter,
    Public,
    Admin,
}

impl Role {
    pub const ALL: &'static [Self] = &[
        Self::Hq,
        Self::HealthCenter,
        Self::Hospital,
        Self::Hotel,
        Self::Temporary,
        Self::Clinic,
        Self::MobileClinic,
        Self::ConsultCenter,
        Self::Public,
        Self::Admin,
    ];

    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|r| r.as_str() == value)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hq => "HQ",
            Self::HealthCenter => "HEALTH_CENTER",
            Self::Hospital => "HOSPITAL",
            Self::Hotel => "HOTEL",
            Self::Temporary => "TEMPORARY",
            Self::Clinic => "CLINIC",
            Self::MobileClinic => "MOBILE_CLINIC",
            Self::ConsultCenter => "CONSULT_CENTER",
            Self::Public => "PUBLIC",
            Self::Admin => "ADMIN",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

domain_enum!(
    /// What an alert is about (DESIGN.md §5.6).
    AlertKind {
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
    }
);

domain_enum!(
    /// How urgent an alert is; an unacknowledged `CRITICAL` one escalates to HQ.
    AlertSeverity { Info, Warning, Critical }
);

domain_enum!(
    /// Where an alert stands: `OPEN` until acknowledged or resolved.
    AlertStatus { Open, Acknowledged, Resolved }
);

domain_enum!(
    /// The kind of thing an alert names.
    AlertSubjectKind { Facility, Case, Placement, Consult, Area }
);

/// Who is with whom in a remote consultation (DESIGN.md §5.5): a doctor examines the
/// patient with a nurse beside them (D-to-P with N), advises the patient's doctor
/// (D-to-D), or sees the patient alone (D-to-P). Named by hand: the names do not follow
/// the camel-case rule of the other enums.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConsultMode {
    DToPWithN,
    DToD,
    DToP,
}

impl ConsultMode {
    pub const ALL: &'static [Self] = &[Self::DToPWithN, Self::DToD, Self::DToP];

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|v| v.to_string() == name)
    }
}

impl fmt::Display for ConsultMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::DToPWithN => "D_TO_P_WITH_N",
            Self::DToD => "D_TO_D",
            Self::DToP => "D_TO_P",
        })
    }
}

impl ConsultStatus {
    /// Requested, scheduled or under way: it holds the case's one open consult with its
    /// provider.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Requested | Self::Scheduled | Self::InProgress)
    }
}

impl FacilityKind {
    /// The bed categories a facility of this kind can declare: hospitals and clinics have
    /// wards (a clinic with beds, 有床診療所), hotels only rooms, a temporary medical
    /// facility (臨時の医療施設) moderate and mild beds (DESIGN.md §5.4); HQ, health centers,
    /// consult centers and mobile clinics no beds.
    pub fn bed_categories(self) -> &'static [BedCategory] {
        match self {
            Self::Hospital | Self::Clinic => &[
                BedCategory::Severe,
                BedCategory::Moderate,
                BedCategory::Mild,
            ],
            Self::Temporary => &[BedCategory::Moderate, BedCategory::Mild],
            Self::Hotel => &[BedCategory::HotelRoom],
            Self::HealthCenter | Self::Hq | Self::ConsultCenter | Self::MobileClinic => &[],
        }
    }

    /// True for kinds that receive patients.
    pub fn has_beds(self) -> bool {
        !self.bed_categories().is_empty()
    }
}

impl CaseStatus {
    /// Recovered, deceased or transferred out: nothing changes a case after that.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Recovered | Self::Deceased | Self::TransferredOut
        )
    }
}

impl From<CaseOutcome> for CaseStatus {
    fn from(outcome: CaseOutcome) -> Self {
        match outcome {
            CaseOutcome::Recovered => Self::Recovered,
            CaseOutcome::Deceased => Self::Deceased,
            CaseOutcome::TransferredOut => Self::TransferredOut,
        }
    }
}

impl PlacementStatus {
    /// A placement is live until the patient arrives or it is cancelled.
    pub fn is_live(self) -> bool {
        !matches!(self, Self::Arrived | Self::Cancelled)
    }

    /// The facility it was offered to has accepted it (and the patient may be on the
    /// way, or there).
    pub fn is_accepted(self) -> bool {
        matches!(
            self,
            Self::Accepted | Self::TransportArranged | Self::InTransit | Self::Arrived
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enum_names_are_those_of_the_design() {
        assert_eq!(Severity::ModerateII.to_string(), "MODERATE_II");
        assert_eq!(RiskFactor::Age65Plus.to_string(), "AGE_65_PLUS");
        assert_eq!(BedCategory::HotelRoom.to_string(), "HOTEL_ROOM");
        assert_eq!(
            CaseStatus::PlacementInProgress.to_string(),
            "PLACEMENT_IN_PROGRESS"
        );
        assert_eq!(FacilityKind::Hq.to_string(), "HQ");
        for &kind in FacilityKind::ALL {
            assert_eq!(FacilityKind::parse(&kind.to_string()), Some(kind));
        }
        assert_eq!(
            Capability::parse("DEMENTIA_CARE"),
            Some(Capability::DementiaCare)
        );
        assert_eq!(Capability::parse("dementia_care"), None);
    }

    #[test]
    fn values_refuse_what_they_cannot_hold() {
        assert!(Spo2::new(120).is_err());
        assert!(Spo2::new(0).is_err());
        assert_eq!(Spo2::new(93).map(Spo2::percent), Ok(93));
        assert!(bed_count(-1).is_err());
        assert!(Name::parse(&"あ".repeat(201)).is_err());
        assert!(Name::parse(&"あ".repeat(200)).is_ok());
        assert!(Name::parse("  ").is_err());
        assert!(Text::parse("").is_ok());
        assert!(Reason::parse("").is_err());
        assert!(FacilityId::parse("hofu-central").is_ok());
        assert!(FacilityId::parse("Hofu").is_err());
        assert!(FacilityId::parse("-hofu").is_err());
        assert!(PrefectureCode::parse("35").is_ok());
        assert!(PrefectureCode::parse("48").is_err());
        assert!(Priority::new(0).is_err());
        assert!(Temperature::from_decicelsius(378).is_ok());
        assert!(Phone::parse("083-000-0000").is_ok());
        assert!(Phone::parse("call me").is_err());
    }
}
