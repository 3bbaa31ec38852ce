//! Where HQ can offer a waiting patient: `GET /api/v1/placements/{id}/candidates`.
//!
//! A candidate has an available bed in the placement's category, accepts new patients,
//! and has every capability the patient needs. They are ranked: facilities that already
//! declined this patient last; then the patient's own medical area first, then the areas
//! that border it (the admin file's `[[area]]` entries); then those accepting without
//! limits; then the most available beds; then by id, so the order is stable.

use std::cmp::Reverse;

use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::FacilityId;
use noroshi_projections::bed_board::{self, BedRow};
use noroshi_projections::placement_queue::{self, QueueRow};
use serde::Serialize;
use uuid::Uuid;

use crate::error::{ApiError, store_failure};
use noroshi_app::CommandHandler;

/// One facility HQ could offer the patient to.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, schemars::JsonSchema)]
pub struct Candidate {
    pub facility_id: String,
    pub name: String,
    pub name_en: Option<String>,
    pub kind: String,
    pub medical_area: Option<String>,
    pub available: u32,
    pub same_area: bool,
    /// In an area that borders the patient's.
    pub near_area: bool,
    /// Accepting with limits (staff, rooms, …): after those accepting freely.
    pub limited: bool,
    pub declined_before: bool,
    pub capabilities: Vec<String>,
}

/// The facts a ranking needs about one facility.
#[derive(Debug, Clone)]
pub(super) struct Facts {
    pub(super) row: BedRow,
    pub(super) capabilities: Vec<String>,
}

/// Ranks the facilities of `facts` for `placement`, whose patient comes from
/// `origin_area`. Pure, so it can be tested without a store.
pub(super) fn rank(
    placement: &QueueRow,
    origin_area: Option<&str>,
    neighbours: &[String],
    facts: Vec<Facts>,
) -> Vec<Candidate> {
    let mut candidates: Vec<Candidate> = facts
        .into_iter()
        .filter(|f| {
            f.row.category == placement.category
                && f.row.active
                && f.row.acceptance != "NOT_ACCEPTING"
                && f.row.available() > 0
                && placement
                    .needs
                    .iter()
                    .all(|need| f.capabilities.contains(need))
        })
        .map(|f| Candidate {
            same_area: origin_area.is_some() && f.row.medical_area.as_deref() == origin_area,
            near_area: f
                .row
                .medical_area
                .as_ref()
                .is_some_and(|area| neighbours.contains(area)),
            declined_before: placement.declined_by.contains(&f.row.facility_id),
            limited: f.row.acceptance == "LIMITED",
            available: f.row.available(),
            facility_id: f.row.facility_id,
            name: f.row.name,
            name_en: f.row.name_en,
            kind: f.row.kind,
            medical_area: f.row.medical_area,
            capabilities: f.capabilities,
        })
        .collect();
    candidates.sort_by_key(|c| {
        (
            c.declined_before,
            !c.same_area,
            !c.near_area,
            c.limited,
            Reverse(c.available),
            c.facility_id.clone(),
        )
    });
    candidates
}

/// The ranked candidates of a live placement (HQ only).
pub async fn candidates(
    handler: &CommandHandler,
    pool: &sqlx::PgPool,
    principal: &Principal,
    placement_id: Uuid,
) -> Result<Vec<Candidate>, ApiError> {
    if !matches!(principal.role, Role::Hq | Role::Admin) {
        return Err(ApiError::PermissionDenied);
    }
    let placement = placement_queue::rows(pool, None)
        .await
        .map_err(store_failure)?
        .into_iter()
        .find(|row| row.placement_id == placement_id)
        .ok_or_else(|| ApiError::NotFound(format!("waiting placement {placement_id}")))?;
    // A transfer leaves its facility's area; a patient at home lives in the area of the
    // health center that owns the case.
    let origin_facility = match placement.origin_kind.as_str() {
        "FACILITY" => Some(placement.origin.clone()),
        _ => placement.case_owner.clone(),
    };
    let origin_area: Option<String> = match &origin_facility {
        Some(facility) => bed_board::medical_area_of(pool, facility)
            .await
            .map_err(store_failure)?,
        None => None,
    };
    let neighbours: Vec<String> = match &origin_area {
        Some(area) => noroshi_identity::areas::neighbours(pool, area).await?,
        None => Vec::new(),
    };
    let rows = bed_board::rows(pool).await.map_err(store_failure)?;
    let mut facts = Vec::new();
    for row in rows {
        if row.category != placement.category {
            continue;
        }
        let capabilities = match FacilityId::parse(&row.facility_id) {
            Ok(id) => handler
                .facility(&id)
                .await?
                .0
                .profile
                .map(|p| p.capabilities.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        facts.push(Facts { row, capabilities });
    }
    Ok(rank(&placement, origin_area.as_deref(), &neighbours, facts))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::OffsetDateTime;

    fn row(id: &str, area: &str, ready: u32, occupied: u32) -> BedRow {
        BedRow {
            facility_id: id.into(),
            name: id.into(),
            name_en: None,
            kind: "HOSPITAL".into(),
            medical_area: Some(area.into()),
            municipality: "352063".into(),
            active: true,
            category: "MODERATE".into(),
            secured: ready + occupied,
            ready,
            occupied,
            held: 0,
            acceptance: "ACCEPTING".into(),
            constraints: Vec::new(),
            declared_at: Some(OffsetDateTime::UNIX_EPOCH),
            proxy_by: None,
        }
    }

    fn facts(row: BedRow, capabilities: &[&str]) -> Facts {
        Facts {
            row,
            capabilities: capabilities.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    fn placement(needs: &[&str], declined: &[&str]) -> QueueRow {
        QueueRow {
            placement_id: Uuid::nil(),
            case_id: Uuid::nil(),
            case_owner: Some("hofu-hc".into()),
            requested_by: "user:x".into(),
            category: "MODERATE".into(),
            needs: needs.iter().map(|n| (*n).to_owned()).collect(),
            priority: 5,
            priority_overridden: false,
            priority_reason: None,
            origin_kind: "HOME".into(),
            origin: "352063".into(),
            requested_at: OffsetDateTime::UNIX_EPOCH,
            status: "REQUESTED".into(),
            target: None,
            offered_at: None,
            offer_deadline: None,
            hold_deadline: None,
            declined_by: declined.iter().map(|d| (*d).to_owned()).collect(),
            vehicle: None,
            pickup_at: None,
            offer_expired_at: None,
            deteriorated_at: None,
        }
    }

    #[test]
    fn candidates_need_beds_and_capabilities_and_rank_area_first_decliners_last() {
        let mut full = row("full", "3504", 0, 5);
        full.ready = 0;
        let mut closed = row("closed", "3504", 3, 0);
        closed.acceptance = "NOT_ACCEPTING".into();
        let mut severe = row("severe", "3504", 3, 0);
        severe.category = "SEVERE".into();
        let ranked = rank(
            &placement(&["OXYGEN"], &["near-big"]),
            Some("3504"),
            &["3503".to_owned()],
            vec![
                facts(row("far-big", "3505", 9, 0), &["OXYGEN"]),
                facts(row("bordering", "3503", 2, 0), &["OXYGEN"]),
                facts(row("near-small", "3504", 1, 0), &["OXYGEN", "VENTILATOR"]),
                facts(row("near-big", "3504", 8, 0), &["OXYGEN"]),
                facts(row("near-mid", "3504", 4, 1), &["OXYGEN"]),
                facts(row("no-oxygen", "3504", 9, 0), &[]),
                facts(full, &["OXYGEN"]),
                facts(closed, &["OXYGEN"]),
                facts(severe, &["OXYGEN"]),
            ],
        );
        let order: Vec<&str> = ranked.iter().map(|c| c.facility_id.as_str()).collect();
        assert_eq!(
            order,
            ["near-mid", "near-small", "bordering", "far-big", "near-big"]
        );
        assert!(ranked[0].same_area && !ranked[2].same_area);
        assert!(ranked[2].near_area && !ranked[3].near_area);
        assert!(ranked[4].declined_before);
    }
}
