//! The `facility_inbox` view: a hospital's or hotel's offers (de-identified), the
//! patients it accepted on their way, those placed with it, and its own capacity. The
//! accepted patients are identified: every one sent is audited.

use std::collections::BTreeSet;

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, ViewScope, facility_inbox_scope};
use noroshi_domain::streams;
use noroshi_domain::values::{
    BedCategory, Capability, FacilityId, PlacementStatus, Severity, Sex, Vehicle,
};
use noroshi_event_store::StreamId;
use noroshi_proto::v1 as pb;
use time::{Date, OffsetDateTime};
use uuid::Uuid;

use super::{FacilityInbox, InboxRow};
use crate::View;
use crate::bed_board::query::BedBoardFilter;
use crate::runner::Projection;
use crate::views::live::{Changed, Listed, audited, follow, locked};
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, age_band, age_on, at, at_opt, min_versions,
    wire, wires,
};

/// The subjects of an inbox's rows, for a live inbox to tell which changes can move it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Held {
    /// The facilities whose medical areas the rows show as origin areas.
    areas: BTreeSet<String>,
    placements: BTreeSet<Uuid>,
    cases: BTreeSet<Uuid>,
}

fn offer(row: InboxRow, today: Date) -> pb::InboxOffer {
    pb::InboxOffer {
        placement_id: row.placement_id.to_string(),
        category: wire(&row.category, BedCategory::parse),
        needs: wires(&row.needs, Capability::parse),
        priority: u32::try_from(row.priority).unwrap_or_default(),
        age_band: age_band(age_on(row.birth_date, today)),
        sex: wire(&row.sex, Sex::parse),
        severity: wire(&row.severity, Severity::parse),
        origin_kind: row.origin_kind,
        origin_area: row.origin_area,
        offered_at: at_opt(row.offered_at),
        offer_deadline: at_opt(row.offer_deadline),
    }
}

fn patient(row: InboxRow, now: OffsetDateTime, today: Date) -> pb::InboxPatient {
    pb::InboxPatient {
        placement_id: row.placement_id.to_string(),
        case_id: row.case_id.to_string(),
        age: age_on(row.birth_date, today),
        hold_overdue: row.arrived_at.is_none() && row.hold_deadline.is_some_and(|d| d < now),
        status: wire(&row.status, PlacementStatus::parse),
        category: wire(&row.category, BedCategory::parse),
        needs: wires(&row.needs, Capability::parse),
        priority: u32::try_from(row.priority).unwrap_or_default(),
        name: row.name,
        name_kana: row.name_kana,
        birth_date: row.birth_date.to_string(),
        sex: wire(&row.sex, Sex::parse),
        phone: row.phone,
        severity: wire(&row.severity, Severity::parse),
        origin_kind: row.origin_kind,
        origin_area: row.origin_area,
        accepted_at: at_opt(row.accepted_at),
        hold_deadline: at_opt(row.hold_deadline),
        vehicle: row.vehicle.as_deref().map(|v| wire(v, Vehicle::parse)),
        pickup_at: at_opt(row.pickup_at),
        arrived_at: at_opt(row.arrived_at),
        last_spo2: row.last_spo2.and_then(|v| u32::try_from(v).ok()),
        last_observed_at: at_opt(row.last_observed_at),
        deteriorated: row.deteriorated_at.is_some(),
        moving_on_placement_id: row.moving_on.map(|id| id.to_string()),
        moving_on_status: row
            .moving_on_status
            .as_deref()
            .map(|status| wire(status, PlacementStatus::parse)),
        moving_on_target: row.moving_on_target,
    }
}

/// The patients an inbox identifies, for the audit log.
fn identified(inbox: &pb::FacilityInbox) -> Vec<Uuid> {
    inbox
        .inbound
        .iter()
        .chain(&inbox.placed)
        .filter_map(|p| Uuid::parse_str(&p.case_id).ok())
        .collect()
}

fn parse(r: &pb::GetFacilityInboxRequest) -> Result<(Option<FacilityId>, MinVersions), QueryError> {
    let mut v = Violations::new();
    let facility = (!r.facility_id.trim().is_empty())
        .then(|| v.check("facility_id", FacilityId::parse(&r.facility_id)))
        .flatten();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, (facility, min_versions))
}

/// The facility whose inbox `principal` asks for: its own, or for HQ the one named.
fn inbox_facility(
    principal: &Principal,
    requested: Option<&FacilityId>,
) -> Result<FacilityId, QueryError> {
    match (facility_inbox_scope(principal), requested) {
        (ViewScope::All, Some(requested)) => Ok(requested.clone()),
        (ViewScope::All, None) => Err(QueryError::invalid(
            "facility_id",
            "is required: name the facility whose inbox to read",
        )),
        (ViewScope::Own(own), None) => Ok(own),
        (ViewScope::Own(own), Some(requested)) if *requested == own => Ok(own),
        _ => Err(QueryError::Denied),
    }
}

impl Views {
    async fn facility_inbox_unaudited(
        &self,
        principal: &Principal,
        facility: Option<&FacilityId>,
        min_versions: &[(StreamId, u64)],
    ) -> Result<(pb::FacilityInbox, Held), QueryError> {
        let facility = inbox_facility(principal, facility)?;
        let read_from = [View::FacilityInbox, View::BedBoard];
        self.ready(principal, &read_from, min_versions).await?;
        let stream_sequence = self.checkpoints(&read_from).await?;
        let stored = super::rows(&self.pool, Some(facility.as_str())).await?;
        let capacity = self
            .bed_board_rows(
                &ViewScope::Own(facility.clone()),
                &BedBoardFilter::default(),
                None,
            )
            .await?;
        let (now, today) = (self.now(), self.today());
        let mut inbox = pb::FacilityInbox {
            facility_id: facility.to_string(),
            capacity,
            stream_sequence,
            generated_at: at(now),
            ..pb::FacilityInbox::default()
        };
        let mut held = Held::default();
        for row in stored {
            held.areas.insert(row.health_center_id.clone());
            if row.origin_kind == "FACILITY" {
                held.areas.insert(row.origin.clone());
            }
            held.placements.insert(row.placement_id);
            held.cases.insert(row.case_id);
            match row.status.as_str() {
                "OFFERED" => inbox.offers.push(offer(row, today)),
                "ARRIVED" => inbox.placed.push(patient(row, now, today)),
                _ => inbox.inbound.push(patient(row, now, today)),
            }
        }
        Ok((inbox, held))
    }
}

impl ViewQuery for FacilityInbox {
    const NAME: &'static str = "facility_inbox";
    type Request = pb::GetFacilityInboxRequest;
    type Response = pb::FacilityInbox;
    type Update = pb::FacilityInboxUpdate;

    fn as_of(request: &pb::GetFacilityInboxRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetFacilityInboxRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    /// The inbox; audits every identified patient.
    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetFacilityInboxRequest,
    ) -> Result<pb::FacilityInbox, QueryError> {
        let (facility, min_versions) = parse(request)?;
        let (inbox, _) = views
            .facility_inbox_unaudited(principal, facility.as_ref(), &min_versions)
            .await?;
        views
            .audit(principal, View::FacilityInbox.name(), &identified(&inbox))
            .await?;
        Ok(inbox)
    }

    /// The inbox, then the whole (small) inbox again whenever it changed. Every
    /// identified patient sent is audited.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetFacilityInboxRequest,
    ) -> Result<Updates<pb::FacilityInboxUpdate>, QueryError> {
        use pb::facility_inbox_update::Update;
        let (facility, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let (snapshot, held) = views
            .facility_inbox_unaudited(principal, facility.as_ref(), &min_versions)
            .await?;
        let contents = |v: &pb::FacilityInbox| {
            (
                v.offers.clone(),
                v.inbound.clone(),
                v.placed.clone(),
                v.capacity.clone(),
            )
        };
        let mut before = contents(&snapshot);
        let own = snapshot.facility_id.clone();
        let held = std::sync::Arc::new(std::sync::Mutex::new(held));
        let read = {
            let (views, principal, held) = (views.clone(), principal.clone(), held.clone());
            move |changed: Changed| {
                let moves = moves_inbox(&changed, &own, &locked(&held));
                let (views, principal, facility, own) = (
                    views.clone(),
                    principal.clone(),
                    facility.clone(),
                    own.clone(),
                );
                async move {
                    let concerned = match moves {
                        InboxMove::Yes => true,
                        InboxMove::No => false,
                        InboxMove::Ask(listed) => {
                            super::concerns(&views.pool, &own, &listed.placements, &listed.cases)
                                .await?
                        }
                    };
                    if !concerned {
                        return Ok(None);
                    }
                    views
                        .facility_inbox_unaudited(&principal, facility.as_ref(), &[])
                        .await
                        .map(Some)
                }
            }
        };
        let next = move |read: Option<(pb::FacilityInbox, Held)>| {
            let (inbox, now_held) = read?;
            *locked(&held) = now_held;
            let after = contents(&inbox);
            let changed = after != before;
            before = after;
            changed.then_some(pb::FacilityInboxUpdate {
                update: Some(Update::Delta(inbox)),
            })
        };
        let first = pb::FacilityInboxUpdate {
            update: Some(Update::Snapshot(snapshot)),
        };
        // Offers and patients come from facility_inbox, capacity from bed_board: no other
        // projection's batch changes an inbox.
        let updates = follow(
            changes,
            &[
                <FacilityInbox as Projection>::NAME,
                <crate::bed_board::BedBoard as Projection>::NAME,
            ],
            first,
            read,
            next,
        );
        Ok(audited(
            updates,
            views,
            principal.clone(),
            View::FacilityInbox.name(),
            |update| match &update.update {
                Some(Update::Snapshot(inbox) | Update::Delta(inbox)) => identified(inbox),
                None => Vec::new(),
            },
        ))
    }
}

/// Whether a change can move an inbox.
#[derive(Debug, PartialEq)]
enum InboxMove {
    Yes,
    No,
    /// Only if one of these placements, or a placement of one of these cases, is now in
    /// the inbox: a new offer.
    Ask(Listed),
}

/// Whether what `changed` can move the inbox of `facility`, which holds `held`.
/// - Facility streams (`bed_board`'s: capacity and registrations): only the facility's
///   own, for its capacity, and those of the facilities whose medical areas its rows
///   show. Another hospital's capacity declaration, the most frequent change in a surge,
///   does not.
/// - Case and placement streams: those of its rows do (a placement that changed, or
///   left for another facility); others only if they are now in the inbox, which one
///   query asks, rather than a read of the whole inbox for every nurse's update anywhere.
fn moves_inbox(changed: &Changed, facility: &str, held: &Held) -> InboxMove {
    let Changed::Streams(streams) = changed else {
        return InboxMove::Yes;
    };
    let mut subjects = false;
    for stream in streams {
        match stream.split_once('-') {
            Some((streams::FACILITY, id)) => {
                if id == facility || held.areas.contains(id) {
                    return InboxMove::Yes;
                }
            }
            Some((streams::CASE | streams::PLACEMENT, _)) => subjects = true,
            _ => return InboxMove::Yes,
        }
    }
    if !subjects {
        return InboxMove::No;
    }
    let listed = Listed::from(streams);
    let holds = listed
        .placements
        .iter()
        .any(|p| held.placements.contains(p))
        || listed.cases.iter().any(|c| held.cases.contains(c));
    if holds {
        InboxMove::Yes
    } else {
        InboxMove::Ask(listed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn streams(names: &[&str]) -> Changed {
        Changed::Streams(names.iter().map(|s| (*s).to_owned()).collect())
    }

    #[test]
    fn an_inbox_moves_with_its_rows_its_capacity_and_its_origins_areas_and_asks_about_the_rest() {
        let placement = Uuid::parse_str("01a2363f-0b75-739c-8a1d-ba317792f5a7").unwrap();
        let case = Uuid::parse_str("01a2363f-0b75-739c-8a1d-000000000001").unwrap();
        let other = Uuid::parse_str("01a2363f-0b75-739c-8a1d-000000000002").unwrap();
        let held = Held {
            areas: ["hofu-hc".to_owned()].into(),
            placements: [placement].into(),
            cases: [case].into(),
        };
        let moves = |changed: &Changed| moves_inbox(changed, "hofu-central", &held);
        assert_eq!(moves(&Changed::Any), InboxMove::Yes);
        assert_eq!(
            moves(&streams(&[&format!("placement-{placement}")])),
            InboxMove::Yes,
            "a placement it holds"
        );
        assert_eq!(
            moves(&streams(&[
                &format!("case-{case}"),
                &format!("case-{other}")
            ])),
            InboxMove::Yes,
            "a case it holds"
        );
        assert_eq!(
            moves(&streams(&[
                &format!("placement-{other}"),
                &format!("case-{other}"),
                "facility-ube-medical"
            ])),
            InboxMove::Ask(Listed {
                cases: vec![other],
                placements: vec![other],
            }),
            "others, which may have been offered to it"
        );
        assert_eq!(
            moves(&streams(&["facility-hofu-central"])),
            InboxMove::Yes,
            "its capacity"
        );
        assert_eq!(
            moves(&streams(&["facility-hofu-hc"])),
            InboxMove::Yes,
            "an origin's area"
        );
        assert_eq!(
            moves(&streams(&["facility-ube-medical", "facility-hofu-central"])),
            InboxMove::Yes,
            "its own among others"
        );
        assert_eq!(
            moves(&streams(&["facility-ube-medical", "facility-yuda-hotel"])),
            InboxMove::No,
            "other facilities' capacity"
        );
    }
}
