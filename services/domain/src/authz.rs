//! Who may do what (DESIGN.md §7), as pure functions the API calls before deciding.
//!
//! A denial says nothing about the target: the API asks [`may`] about a target that does
//! not exist with [`Target::UNKNOWN`], and reports "not found" only to a principal who
//! may act on every target of that kind.

use crate::case::CaseRecord;
use crate::consult::ConsultRecord;
use crate::placement::{Origin, PlacementRecord};
pub use crate::values::Role;
use crate::values::{FacilityId, FacilityKind, PlacementStatus, PrincipalId};

impl Role {
    /// The roles of organisations where patients are: hospitals, hotels, temporary
    /// facilities and clinics (a clinic with beds takes placements; any clinic, and a
    /// mobile clinic, sees patients). Each acts for its own facility and the patients
    /// with it.
    pub fn keeps_patients(self) -> bool {
        matches!(
            self,
            Self::Hospital | Self::Hotel | Self::Temporary | Self::Clinic | Self::MobileClinic
        )
    }

    /// The role in which a user or client of an organisation of `kind` acts.
    pub fn of_kind(kind: FacilityKind) -> Self {
        match kind {
            FacilityKind::Hq => Self::Hq,
            FacilityKind::HealthCenter => Self::HealthCenter,
            FacilityKind::Hospital => Self::Hospital,
            FacilityKind::Hotel => Self::Hotel,
            FacilityKind::Temporary => Self::Temporary,
            FacilityKind::Clinic => Self::Clinic,
            FacilityKind::MobileClinic => Self::MobileClinic,
            FacilityKind::ConsultCenter => Self::ConsultCenter,
        }
    }

    /// Whether a login, client or token of this role may stand for an organisation of
    /// `kind` (`None`: not registered); `Err` says why not.
    pub fn fits(self, kind: Option<FacilityKind>) -> Result<(), String> {
        let fitting: &[FacilityKind] = match self {
            // The operator and the public belong to no facility.
            Self::Admin | Self::Public => return Ok(()),
            Self::Hq => &[FacilityKind::Hq],
            Self::HealthCenter => &[FacilityKind::HealthCenter],
            // A clinic's logins made before clinics had a role of their own act as
            // hospitals, which a clinic with beds is.
            Self::Hospital => &[FacilityKind::Hospital, FacilityKind::Clinic],
            Self::Hotel => &[FacilityKind::Hotel],
            Self::Temporary => &[FacilityKind::Temporary],
            Self::Clinic => &[FacilityKind::Clinic],
            Self::MobileClinic => &[FacilityKind::MobileClinic],
            Self::ConsultCenter => &[FacilityKind::ConsultCenter],
        };
        match kind {
            None => Err(
                "the organisation is not registered (neither in this file nor in the store)".into(),
            ),
            Some(kind) if fitting.contains(&kind) => Ok(()),
            Some(kind) => Err(format!(
                "role {self} cannot stand for a {kind} organisation"
            )),
        }
    }
}

/// Who is asking: a user or API client of one organisation, in one role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub principal_id: PrincipalId,
    pub organisation_id: FacilityId,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    RegisterFacility,
    UpdateFacility,
    DeclareCapacity,
    SetAcceptance,
    ReportCase,
    TriageCase,
    OverridePriority,
    RecordObservation,
    StartHomeCare,
    /// Putting a patient at home in a clinic's or mobile clinic's care.
    AssignCareSite,
    CloseCase,
    RequestPlacement,
    OfferPlacement,
    CancelPlacement,
    AcceptPlacement,
    DeclinePlacement,
    RecordArrival,
    ArrangeTransport,
    RecordDeparture,
    RecordDischarge,
    /// Asking for a remote consultation (DESIGN.md §5.5).
    RequestConsult,
    CancelConsult,
    /// A consult center takes a request.
    ScheduleConsult,
    /// The center that scheduled it starts, completes or marks it missed.
    ConductConsult,
    /// Opening the placement request an `ESCALATE` recommendation asked for.
    EscalateConsult,
    /// Reading a patient's identity.
    ReadPatient,
    /// Acknowledging an alert of one's audience (DESIGN.md §5.6).
    AcknowledgeAlert,
    /// Setting an alert threshold or limit.
    SetAlertRule,
}

/// The facts about a target that the rules look at; `None` where they do not apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target<'a> {
    /// The facility acted on (capacity, acceptance, registration).
    pub facility: Option<&'a FacilityId>,
    /// The health center that owns the case.
    pub case_owner: Option<&'a FacilityId>,
    /// The facility where the patient is now.
    pub patient_at: Option<&'a FacilityId>,
    /// The facility of the open offer.
    pub offered_to: Option<&'a FacilityId>,
    /// The facility that accepted the placement.
    pub accepted_by: Option<&'a FacilityId>,
    /// The facility a transfer leaves from.
    pub transfer_from: Option<&'a FacilityId>,
    /// The organisation that requested a consult.
    pub consult_requester: Option<&'a FacilityId>,
    /// The consult center that scheduled a consult.
    pub consult_center: Option<&'a FacilityId>,
    /// The clinic or mobile clinic caring for a patient at home.
    pub care_site: Option<&'a FacilityId>,
    /// Who an alert tells, now (HQ too once it escalated).
    pub alert_audience: Option<&'a crate::alert::Audience>,
}

impl Target<'_> {
    /// A target that does not exist: only role-wide rights match it.
    pub const UNKNOWN: Target<'static> = Target {
        facility: None,
        case_owner: None,
        patient_at: None,
        offered_to: None,
        accepted_by: None,
        transfer_from: None,
        consult_requester: None,
        consult_center: None,
        care_site: None,
        alert_audience: None,
    };
}

impl<'a> Target<'a> {
    /// The facts of a case: its owner, where the patient is now, and the care site
    /// caring for them at home.
    pub fn of_case(case: &'a CaseRecord) -> Self {
        Target {
            case_owner: Some(&case.report.health_center_id),
            patient_at: case.stay.as_ref().map(|(_, facility)| facility),
            care_site: case.care_site.as_ref(),
            ..Target::UNKNOWN
        }
    }

    /// The facts of a placement and its case, as `asking` sees them. A facility that
    /// was offered the patient before (and declined, or accepted it already) still
    /// counts as addressed, so that a late or repeated answer learns where the placement
    /// stands rather than being told it has no rights.
    pub fn of_placement(
        placement: &'a PlacementRecord,
        case: Option<&'a CaseRecord>,
        asking: &FacilityId,
    ) -> Self {
        let accepted = placement.status.is_accepted();
        Target {
            facility: None,
            case_owner: case.map(|c| &c.report.health_center_id),
            patient_at: case.and_then(|c| c.stay.as_ref().map(|(_, facility)| facility)),
            care_site: case.and_then(|c| c.care_site.as_ref()),
            offered_to: placement
                .target
                .as_ref()
                .filter(|target| {
                    placement.status == PlacementStatus::Offered || (accepted && *target == asking)
                })
                .or_else(|| placement.declined_by.iter().find(|f| *f == asking)),
            accepted_by: placement.target.as_ref().filter(|_| accepted),
            transfer_from: match &placement.origin {
                Origin::Facility(facility) => Some(facility),
                Origin::Home(_) => None,
            },
            ..Target::UNKNOWN
        }
    }

    /// The facts of a consult and its case: the case's owner and where the patient is
    /// now (or was when the consult was requested), who requested it, and the center
    /// that scheduled it.
    pub fn of_consult(consult: &'a ConsultRecord, case: Option<&'a CaseRecord>) -> Self {
        Target {
            case_owner: Some(&consult.case_owner),
            patient_at: case
                .and_then(|c| c.stay.as_ref().map(|(_, facility)| facility))
                .or(consult.patient_at.as_ref()),
            consult_requester: Some(&consult.request.requested_by),
            consult_center: consult.center.as_ref(),
            care_site: case.and_then(|c| c.care_site.as_ref()),
            ..Target::UNKNOWN
        }
    }

    /// Every facility the target names as taking part.
    fn involved(&self) -> impl Iterator<Item = &'a FacilityId> {
        [
            self.case_owner,
            self.offered_to,
            self.accepted_by,
            self.transfer_from,
            self.patient_at,
            self.consult_requester,
            self.consult_center,
            self.care_site,
        ]
        .into_iter()
        .flatten()
    }
}

/// A stream a principal asks to follow (to wait until a view has applied its writes,
/// `min_versions`), with the facts of its aggregate; `None` when it does not exist.
#[derive(Debug, Clone, Copy)]
pub enum Followed<'a> {
    /// A facility, by the id in its stream name.
    Facility(&'a str),
    Case(Option<&'a CaseRecord>),
    Placement(Option<(&'a PlacementRecord, Option<&'a CaseRecord>)>),
    Consult(Option<&'a ConsultRecord>),
    /// An alert: its audience follows it.
    Alert(Option<&'a crate::alert::AlertRecord>),
    /// The alert rules: HQ, who sets them.
    AlertRules,
}

/// Whether `principal` may follow a stream: a facility whose figures it may see, a case
/// whose patient it may read, a placement it takes part in. A stream that does not exist
/// is not followed, so the answer says nothing about what exists.
pub fn may_follow(principal: &Principal, followed: Followed<'_>) -> bool {
    let own = |facility: &FacilityId| facility == &principal.organisation_id;
    match followed {
        Followed::Facility(id) => match principal.role {
            Role::Hq | Role::HealthCenter | Role::Public => true,
            role if role.keeps_patients() => principal.organisation_id.as_str() == id,
            _ => false,
        },
        // A consult center follows the patients of the consults it scheduled, while they
        // are open (their observations, for the consult).
        Followed::Case(case) => case.is_some_and(|case| {
            may(principal, Action::ReadPatient, &Target::of_case(case)).is_ok()
                || (principal.role == Role::ConsultCenter
                    && case
                        .open_consults
                        .values()
                        .any(|center| center.as_ref() == Some(&principal.organisation_id)))
        }),
        Followed::Placement(placement) => placement.is_some_and(|(placement, case)| {
            principal.role == Role::Hq
                || Target::of_placement(placement, case, &principal.organisation_id)
                    .involved()
                    .any(own)
        }),
        // A consult center follows the requests it may take, as it sees them in its queue.
        Followed::Alert(alert) => alert.is_some_and(|alert| {
            alert
                .audience()
                .includes(principal.role, &principal.organisation_id)
        }),
        Followed::AlertRules => principal.role == Role::Hq,
        Followed::Consult(consult) => consult.is_some_and(|consult| {
            principal.role == Role::Hq
                || (principal.role == Role::ConsultCenter && may_take(principal, consult))
                || Target::of_consult(consult, None).involved().any(own)
        }),
    }
}

/// Whether a consult center may see a consult in its queue, de-identified: an open
/// request not yet scheduled, addressed to it or to any center.
pub fn may_take(principal: &Principal, consult: &ConsultRecord) -> bool {
    principal.role == Role::ConsultCenter
        && consult.status == crate::values::ConsultStatus::Requested
        && consult
            .request
            .center
            .as_ref()
            .is_none_or(|center| center == &principal.organisation_id)
}

/// Whether `principal` may read views as of a past moment (DESIGN.md §7): HQ, health
/// centers and the organisations that keep or look after patients, each within what the
/// view shows it now (own cases, own facility); not the public, nor the operator.
pub fn may_read_as_of(principal: &Principal) -> bool {
    !matches!(principal.role, Role::Public | Role::Admin)
}

#[cfg(test)]
mod as_of_tests {
    use super::*;

    #[test]
    fn the_past_is_read_by_those_who_work_with_the_views() {
        let principal = |role| Principal {
            principal_id: crate::values::PrincipalId::parse("p").unwrap(),
            organisation_id: FacilityId::parse("hofu-hc").unwrap(),
            role,
        };
        for role in Role::ALL {
            let expected = !matches!(role, Role::Public | Role::Admin);
            assert_eq!(may_read_as_of(&principal(*role)), expected, "{role:?}");
        }
    }
}

/// How a reader sees a consult in `consult_queue` (DESIGN.md §5.5, §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsultSight {
    /// With the patient's identity and the request's texts.
    Identified,
    /// An open request a consult center may take, without the patient's identity.
    DeIdentified,
    Hidden,
}

/// Whether `principal` may read `consult_queue` at all: the organisations that take part
/// in consults and HQ; not the public, nor the operator.
pub fn may_read_consults(principal: &Principal) -> bool {
    matches!(
        principal.role,
        Role::Hq | Role::HealthCenter | Role::ConsultCenter
    ) || principal.role.keeps_patients()
}

/// How `principal` sees a consult with the facts `target` (see [`Target::of_consult`]),
/// addressed to `addressed_to` (`None`: any center), still `requested` (not scheduled):
/// whoever may read the patient sees it identified; a consult center sees an open request
/// for it or for any center de-identified; nobody else sees it.
pub fn consult_sight(
    principal: &Principal,
    target: &Target<'_>,
    addressed_to: Option<&FacilityId>,
    requested: bool,
) -> ConsultSight {
    if may(principal, Action::ReadPatient, target).is_ok() {
        ConsultSight::Identified
    } else if principal.role == Role::ConsultCenter
        && requested
        && addressed_to.is_none_or(|center| center == &principal.organisation_id)
    {
        ConsultSight::DeIdentified
    } else {
        ConsultSight::Hidden
    }
}

/// A refusal; deliberately carries nothing about the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{role} may not {action:?} here")]
pub struct Denied {
    pub role: Role,
    pub action: Action,
}

/// The matrix of DESIGN.md §7.
pub fn may(principal: &Principal, action: Action, target: &Target<'_>) -> Result<(), Denied> {
    use Action::*;
    use Role::*;
    let own = |facility: Option<&FacilityId>| facility == Some(&principal.organisation_id);
    let allowed = match (action, principal.role) {
        (RegisterFacility | UpdateFacility, Admin) => true,
        (DeclareCapacity | SetAcceptance, Hq) => true,
        (DeclareCapacity | SetAcceptance, role) if role.keeps_patients() => own(target.facility),
        (
            ReportCase | TriageCase | RecordObservation | StartHomeCare | AssignCareSite
            | CloseCase,
            HealthCenter,
        ) => own(target.case_owner),
        // A clinic or mobile clinic observes, and asks for consults on, the patients at
        // home in its care.
        (RecordObservation | RequestConsult, Clinic | MobileClinic) if own(target.care_site) => {
            true
        }
        (OverridePriority | OfferPlacement, Hq) => true,
        (RequestPlacement | CancelPlacement | ArrangeTransport | RecordDeparture, Hq) => true,
        (RequestPlacement | CancelPlacement | ArrangeTransport | RecordDeparture, HealthCenter) => {
            own(target.case_owner)
        }
        (RequestPlacement | RecordObservation, role) if role.keeps_patients() => {
            own(target.patient_at)
        }
        (ArrangeTransport | RecordDeparture, role) if role.keeps_patients() => {
            own(target.transfer_from)
        }
        (AcceptPlacement | DeclinePlacement, role) if role.keeps_patients() => {
            own(target.offered_to)
        }
        (RecordArrival | RecordDischarge, role) if role.keeps_patients() => own(target.accepted_by),
        (RequestConsult, Hq) => true,
        (RequestConsult, HealthCenter) => own(target.case_owner),
        (RequestConsult, role) if role.keeps_patients() => own(target.patient_at),
        (CancelConsult | EscalateConsult, Hq) => true,
        (CancelConsult | EscalateConsult, HealthCenter) => own(target.case_owner),
        (CancelConsult | EscalateConsult, role) if role.keeps_patients() => {
            own(target.consult_requester) || own(target.patient_at) || own(target.care_site)
        }
        (CancelConsult | EscalateConsult | ConductConsult, ConsultCenter) => {
            own(target.consult_center)
        }
        // Any consult center may take a request; the domain refuses one addressed to
        // another center or scheduled already.
        (ScheduleConsult, ConsultCenter) => true,
        (ReadPatient, Hq) => true,
        (ReadPatient, HealthCenter) => own(target.case_owner),
        (ReadPatient, role) if role.keeps_patients() => {
            own(target.accepted_by)
                || own(target.patient_at)
                || own(target.consult_requester)
                || own(target.care_site)
        }
        (ReadPatient, ConsultCenter) => own(target.consult_center),
        (AcknowledgeAlert, _) => target
            .alert_audience
            .is_some_and(|audience| audience.includes(principal.role, &principal.organisation_id)),
        (SetAlertRule, Hq) => true,
        _ => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(Denied {
            role: principal.role,
            action,
        })
    }
}

/// Which rows of a facility-keyed view a principal may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewScope {
    /// Every row.
    All,
    /// Only the rows of this facility.
    Own(FacilityId),
    /// Nothing: the view is refused.
    None,
}

/// The `bed_board` row of DESIGN.md §7: HQ and health centers see the whole board,
/// hospitals and hotels their own capacity, the public only `public_stats`. The operator
/// (ADMIN) manages registrations and sees no operational view.
pub fn bed_board_scope(principal: &Principal) -> ViewScope {
    match principal.role {
        Role::Hq | Role::HealthCenter => ViewScope::All,
        role if role.keeps_patients() => ViewScope::Own(principal.organisation_id.clone()),
        _ => ViewScope::None,
    }
}

#[cfg(test)]
mod view_tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            principal_id: crate::values::PrincipalId::parse("p").unwrap(),
            organisation_id: FacilityId::parse("hofu-central").unwrap(),
            role,
        }
    }

    #[test]
    fn the_bed_board_is_scoped_by_role() {
        assert_eq!(bed_board_scope(&principal(Role::Hq)), ViewScope::All);
        assert_eq!(
            bed_board_scope(&principal(Role::HealthCenter)),
            ViewScope::All
        );
        for role in [Role::Hospital, Role::Hotel] {
            assert_eq!(
                bed_board_scope(&principal(role)),
                ViewScope::Own(FacilityId::parse("hofu-central").unwrap())
            );
        }
        assert_eq!(bed_board_scope(&principal(Role::Public)), ViewScope::None);
        assert_eq!(bed_board_scope(&principal(Role::Admin)), ViewScope::None);
    }
}

/// The `placement_queue` row of DESIGN.md §7: HQ sees every live placement, a health
/// center those of its own cases; hospitals and hotels work from their inbox instead.
/// For a health center the scope names the case owner, not a facility of the rows.
pub fn placement_queue_scope(principal: &Principal) -> ViewScope {
    match principal.role {
        Role::Hq => ViewScope::All,
        Role::HealthCenter => ViewScope::Own(principal.organisation_id.clone()),
        _ => ViewScope::None,
    }
}

#[cfg(test)]
mod queue_scope_tests {
    use super::*;

    #[test]
    fn the_placement_queue_is_hq_s_and_each_health_center_s_own() {
        let principal = |role| Principal {
            principal_id: crate::values::PrincipalId::parse("p").unwrap(),
            organisation_id: FacilityId::parse("hofu-hc").unwrap(),
            role,
        };
        assert_eq!(placement_queue_scope(&principal(Role::Hq)), ViewScope::All);
        assert_eq!(
            placement_queue_scope(&principal(Role::HealthCenter)),
            ViewScope::Own(FacilityId::parse("hofu-hc").unwrap())
        );
        for role in [Role::Hospital, Role::Hotel, Role::Public, Role::Admin] {
            assert_eq!(placement_queue_scope(&principal(role)), ViewScope::None);
        }
    }
}

/// The `case_board` of DESIGN.md §6: a health center sees its own cases, HQ every case
/// (it may read any patient, §7), a clinic or mobile clinic the patients at home in its
/// care (§5.4); nobody else. For a health center the scope names the case owner, for a
/// clinic the care site.
pub fn case_board_scope(principal: &Principal) -> ViewScope {
    match principal.role {
        Role::Hq => ViewScope::All,
        Role::HealthCenter | Role::Clinic | Role::MobileClinic => {
            ViewScope::Own(principal.organisation_id.clone())
        }
        _ => ViewScope::None,
    }
}

/// The `facility_inbox` of DESIGN.md §6: a hospital or hotel sees its own; HQ, which
/// may act for any facility (proxy entry), any facility's; nobody else.
pub fn facility_inbox_scope(principal: &Principal) -> ViewScope {
    match principal.role {
        Role::Hq => ViewScope::All,
        role if role.keeps_patients() => ViewScope::Own(principal.organisation_id.clone()),
        _ => ViewScope::None,
    }
}

/// Who may read the `timeline` of a case or placement (DESIGN.md §6, "within their
/// rights"): HQ any; a health center those of its own cases; a hospital, hotel, clinic or
/// consult center those it is `involved` in (offered the placement, accepted the patient,
/// a transfer's origin, the patient's care site, a consult it took).
pub fn may_read_timeline(
    principal: &Principal,
    case_owner: Option<&FacilityId>,
    involved: &[&str],
) -> bool {
    let own = principal.organisation_id.as_str();
    match principal.role {
        Role::Hq => true,
        Role::HealthCenter => case_owner.is_some_and(|owner| owner.as_str() == own),
        role if role.keeps_patients() || role == Role::ConsultCenter => involved.contains(&own),
        _ => false,
    }
}

/// Whether a timeline reader may see the reason stated in an entry that names `facility`:
/// HQ and the case's health center (the only health center that reads it) always; a
/// hospital or hotel only its own (its decline). Free text may say more about the patient
/// than the de-identified offer it was sent.
pub fn may_read_timeline_reason(principal: &Principal, facility: Option<&str>) -> bool {
    match principal.role {
        Role::Hq | Role::HealthCenter => true,
        role if role.keeps_patients() || role == Role::ConsultCenter => {
            facility == Some(principal.organisation_id.as_str())
        }
        _ => false,
    }
}

#[cfg(test)]
mod case_view_tests {
    use super::*;

    fn principal(role: Role) -> Principal {
        Principal {
            principal_id: crate::values::PrincipalId::parse("p").unwrap(),
            organisation_id: FacilityId::parse("hofu-x").unwrap(),
            role,
        }
    }

    #[test]
    fn the_case_board_is_the_health_center_s_own_and_hq_s() {
        let own = ViewScope::Own(FacilityId::parse("hofu-x").unwrap());
        assert_eq!(case_board_scope(&principal(Role::Hq)), ViewScope::All);
        assert_eq!(case_board_scope(&principal(Role::HealthCenter)), own);
        assert_eq!(case_board_scope(&principal(Role::Clinic)), own);
        assert_eq!(case_board_scope(&principal(Role::MobileClinic)), own);
        for role in [
            Role::Hospital,
            Role::Hotel,
            Role::Temporary,
            Role::ConsultCenter,
            Role::Public,
            Role::Admin,
        ] {
            assert_eq!(case_board_scope(&principal(role)), ViewScope::None);
        }
    }

    #[test]
    fn the_inbox_is_the_facility_s_own_and_hq_s() {
        let own = ViewScope::Own(FacilityId::parse("hofu-x").unwrap());
        assert_eq!(facility_inbox_scope(&principal(Role::Hq)), ViewScope::All);
        assert_eq!(facility_inbox_scope(&principal(Role::Hospital)), own);
        assert_eq!(facility_inbox_scope(&principal(Role::Hotel)), own);
        for role in [Role::HealthCenter, Role::Public, Role::Admin] {
            assert_eq!(facility_inbox_scope(&principal(role)), ViewScope::None);
        }
    }

    #[test]
    fn a_timeline_reason_is_for_the_coordinators_and_its_own_facility() {
        for role in [Role::Hq, Role::HealthCenter] {
            assert!(may_read_timeline_reason(&principal(role), None));
            assert!(may_read_timeline_reason(&principal(role), Some("ube-y")));
        }
        for role in [Role::Hospital, Role::Hotel] {
            assert!(may_read_timeline_reason(&principal(role), Some("hofu-x")));
            assert!(!may_read_timeline_reason(&principal(role), Some("ube-y")));
            assert!(!may_read_timeline_reason(&principal(role), None));
        }
        for role in [Role::Public, Role::Admin] {
            assert!(!may_read_timeline_reason(&principal(role), Some("hofu-x")));
        }
    }

    #[test]
    fn a_timeline_is_read_within_the_reader_s_rights() {
        let owner = FacilityId::parse("hofu-x").unwrap();
        let other = FacilityId::parse("ube-y").unwrap();
        assert!(may_read_timeline(&principal(Role::Hq), Some(&other), &[]));
        assert!(may_read_timeline(
            &principal(Role::HealthCenter),
            Some(&owner),
            &[]
        ));
        assert!(!may_read_timeline(
            &principal(Role::HealthCenter),
            Some(&other),
            &["hofu-x"]
        ));
        assert!(may_read_timeline(
            &principal(Role::Hospital),
            Some(&other),
            &["hofu-x"]
        ));
        assert!(!may_read_timeline(
            &principal(Role::Hotel),
            Some(&owner),
            &["ube-y"]
        ));
        // A care site, and a consult center that took a consult, once involved.
        for role in [Role::MobileClinic, Role::Clinic, Role::ConsultCenter] {
            assert!(may_read_timeline(
                &principal(role),
                Some(&other),
                &["hofu-x"]
            ));
            assert!(!may_read_timeline(&principal(role), Some(&other), &[]));
        }
        for role in [Role::Public, Role::Admin] {
            assert!(!may_read_timeline(
                &principal(role),
                Some(&owner),
                &["hofu-x"]
            ));
        }
    }
}
