//! What holds now, read from the read models for the scheduler (DESIGN.md §5.6): each
//! cause that should have an open alert, with the audience it tells. The scheduler
//! raises the alerts of new causes and resolves those whose cause went away.

use std::collections::BTreeSet;

use noroshi_domain::alert::{AlertRules, AlertSubject, Audience, Condition, OpenAlert};
use noroshi_domain::authz::Role;
use noroshi_domain::values::{
    AlertKind, AlertSeverity, AlertStatus, AlertSubjectKind, BedCategory, FacilityId,
    MedicalAreaCode, Text,
};
use sqlx::{FromRow, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

/// How long before an offer's deadline its facility is reminded.
pub const OFFER_DEADLINE_NEAR: time::Duration = time::Duration::minutes(10);
/// How long an URGENT consult request may wait to be taken, and an EMERGENCY one.
pub const URGENT_CONSULT_WAIT: time::Duration = time::Duration::minutes(30);
pub const EMERGENCY_CONSULT_WAIT: time::Duration = time::Duration::minutes(10);
/// How long a facility's figures may disagree with what noroshi knows before
/// `BED_MISMATCH`: long enough for a declaration made just before an arrival to catch up.
pub const BED_MISMATCH_AFTER: time::Duration = time::Duration::minutes(30);

fn organisations(ids: &[Option<&str>]) -> BTreeSet<FacilityId> {
    ids.iter()
        .flatten()
        .filter_map(|id| FacilityId::parse(id).ok())
        .collect()
}

fn audience(roles: &[Role], ids: &[Option<&str>]) -> Audience {
    Audience {
        roles: roles.iter().copied().collect(),
        organisations: organisations(ids),
    }
}

fn text(message: String) -> Text {
    Text::parse(&message).unwrap_or_else(|_| Text::empty())
}

/// `2026-12-07T03:10:00Z`: a time as causes and messages name it, to the second.
fn stamp(at: OffsetDateTime) -> String {
    let at = at.replace_nanosecond(0).unwrap_or(at);
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[derive(Debug, FromRow)]
struct LivePlacement {
    placement_id: Uuid,
    case_id: Uuid,
    case_owner: Option<String>,
    status: String,
    target: Option<String>,
    origin_kind: String,
    origin: String,
    requested_at: OffsetDateTime,
    offer_deadline: Option<OffsetDateTime>,
    hold_deadline: Option<OffsetDateTime>,
    pickup_at: Option<OffsetDateTime>,
    offer_expired_at: Option<OffsetDateTime>,
    /// The medical area of the origin facility, or of the case's health center.
    area: Option<String>,
}

fn placement_subject(p: &LivePlacement) -> AlertSubject {
    AlertSubject {
        kind: AlertSubjectKind::Placement,
        id: p.placement_id.to_string(),
    }
}

/// The conditions of the live placements: offers near their deadline, offers expired,
/// holds overdue, transport late, waiting too long.
async fn placements(
    pool: &PgPool,
    rules: &AlertRules,
    now: OffsetDateTime,
) -> Result<Vec<Condition>, sqlx::Error> {
    let live: Vec<LivePlacement> = sqlx::query_as(
        "SELECT q.placement_id, q.case_id, q.case_owner, q.status, q.target, q.origin_kind, \
           q.origin, q.requested_at, q.offer_deadline, q.hold_deadline, q.pickup_at, \
           q.offer_expired_at, f.medical_area AS area \
         FROM placement_queue q LEFT JOIN bed_board_facilities f ON f.facility_id = \
           CASE WHEN q.origin_kind = 'FACILITY' THEN q.origin ELSE q.case_owner END",
    )
    .fetch_all(pool)
    .await?;
    let mut conditions = Vec::new();
    for p in &live {
        let id = p.placement_id;
        let (owner, target) = (p.case_owner.as_deref(), p.target.as_deref());
        let origin = (p.origin_kind == "FACILITY").then_some(p.origin.as_str());
        let condition = |kind, severity, audience, cause: String, message: String| Condition {
            kind,
            severity,
            subject: placement_subject(p),
            audience,
            cause,
            message: text(message),
            case_id: Some(p.case_id),
        };
        match (p.status.as_str(), p.offer_deadline) {
            ("OFFERED", Some(deadline)) if deadline - now <= OFFER_DEADLINE_NEAR => {
                conditions.push(condition(
                    AlertKind::OfferDeadlineNear,
                    AlertSeverity::Warning,
                    audience(&[], &[target]),
                    format!("placement-{id}/offer-due-{}", stamp(deadline)),
                    format!("offer to {} due {}", target.unwrap_or("?"), stamp(deadline)),
                ));
            }
            _ => {}
        }
        if let ("REQUESTED", Some(expired)) = (p.status.as_str(), p.offer_expired_at) {
            conditions.push(condition(
                AlertKind::OfferExpired,
                AlertSeverity::Warning,
                audience(&[Role::Hq], &[owner]),
                format!("placement-{id}/offer-expired-{}", stamp(expired)),
                format!("offer due {} expired unanswered", stamp(expired)),
            ));
        }
        let held = matches!(
            p.status.as_str(),
            "ACCEPTED" | "TRANSPORT_ARRANGED" | "IN_TRANSIT"
        );
        if let (true, Some(deadline)) = (held, p.hold_deadline)
            && deadline < now
        {
            conditions.push(condition(
                AlertKind::HoldOverdue,
                AlertSeverity::Warning,
                audience(&[Role::Hq], &[owner, target]),
                format!("placement-{id}/hold-{}", stamp(deadline)),
                format!(
                    "bed at {} held past {} without arrival",
                    target.unwrap_or("?"),
                    stamp(deadline)
                ),
            ));
        }
        if let ("TRANSPORT_ARRANGED", Some(pickup)) = (p.status.as_str(), p.pickup_at)
            && pickup < now
        {
            conditions.push(condition(
                AlertKind::TransportLate,
                AlertSeverity::Warning,
                audience(&[], &[owner, target, origin]),
                format!("placement-{id}/pickup-{}", stamp(pickup)),
                format!("pickup at {} passed without departure", stamp(pickup)),
            ));
        }
        let area = p
            .area
            .as_deref()
            .and_then(|a| MedicalAreaCode::parse(a).ok());
        let limit = rules.waiting_limit(area.as_ref());
        if matches!(p.status.as_str(), "REQUESTED" | "OFFERED") && now - p.requested_at > limit {
            conditions.push(condition(
                AlertKind::WaitingTooLong,
                AlertSeverity::Critical,
                audience(&[Role::Hq], &[owner]),
                format!("placement-{id}/waiting"),
                format!(
                    "waiting since {} for longer than {} min",
                    stamp(p.requested_at),
                    limit.whole_minutes()
                ),
            ));
        }
    }
    Ok(conditions)
}

/// Facilities whose last declaration is older than the stale limit.
async fn stale(
    pool: &PgPool,
    rules: &AlertRules,
    now: OffsetDateTime,
) -> Result<Vec<Condition>, sqlx::Error> {
    let limit = rules.stale_limit();
    let rows: Vec<(String, OffsetDateTime)> = sqlx::query_as(
        "SELECT b.facility_id, max(b.declared_at) FROM bed_board_beds b \
         JOIN bed_board_facilities f USING (facility_id) WHERE f.active \
         GROUP BY b.facility_id HAVING max(b.declared_at) < $1",
    )
    .bind(now - limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(facility, declared_at)| Condition {
            kind: AlertKind::CapacityStale,
            severity: AlertSeverity::Warning,
            subject: AlertSubject {
                kind: AlertSubjectKind::Facility,
                id: facility.clone(),
            },
            audience: audience(&[Role::Hq], &[Some(facility.as_str())]),
            cause: format!("facility-{facility}/declared-{}", stamp(declared_at)),
            message: text(format!(
                "capacity last declared {} (limit {} h)",
                stamp(declared_at),
                limit.whole_hours()
            )),
            case_id: None,
        })
        .collect())
}

/// Areas whose category is occupied beyond HQ's thresholds: occupied beds over secured
/// beds (確保病床使用率), the national stage indicators' measure.
async fn occupancy(pool: &PgPool, rules: &AlertRules) -> Result<Vec<Condition>, sqlx::Error> {
    let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT f.medical_area, b.category, sum(b.secured)::bigint, sum(b.occupied)::bigint \
         FROM bed_board_beds b JOIN bed_board_facilities f USING (facility_id) \
         WHERE f.active AND f.medical_area IS NOT NULL \
         GROUP BY f.medical_area, b.category HAVING sum(b.secured) > 0",
    )
    .fetch_all(pool)
    .await?;
    let mut conditions = Vec::new();
    for (area, category, secured, occupied) in rows {
        let (Ok(code), Some(bed)) = (MedicalAreaCode::parse(&area), BedCategory::parse(&category))
        else {
            continue;
        };
        let (warning, critical) = rules.occupancy(&code, bed);
        let percent = occupied * 100 / secured;
        let (level, severity) = if percent >= i64::from(critical) {
            ("critical", AlertSeverity::Critical)
        } else if percent >= i64::from(warning) {
            ("warning", AlertSeverity::Warning)
        } else {
            continue;
        };
        conditions.push(Condition {
            kind: AlertKind::OccupancyThreshold,
            severity,
            subject: AlertSubject {
                kind: AlertSubjectKind::Area,
                id: format!("{area}/{category}"),
            },
            audience: audience(&[Role::Hq], &[]),
            cause: format!("area-{area}/{category}/{level}"),
            message: text(format!(
                "{area} {category}: {occupied} of {secured} secured beds occupied ({percent} %, \
                 threshold {warning} % / {critical} %)"
            )),
            case_id: None,
        });
    }
    Ok(conditions)
}

#[derive(Debug, FromRow)]
struct Deteriorated {
    case_id: Uuid,
    health_center_id: String,
    deteriorated_at: OffsetDateTime,
    care_site: Option<String>,
    /// The facility where the patient is, if any.
    facility: Option<String>,
}

/// Cases an observation flagged as deteriorating, until a new triage or their end.
async fn deteriorations(pool: &PgPool) -> Result<Vec<Condition>, sqlx::Error> {
    let rows: Vec<Deteriorated> = sqlx::query_as(
        "SELECT c.case_id, c.health_center_id, c.deteriorated_at, c.care_site, \
           CASE WHEN c.status IN ('HOSPITALIZED', 'IN_HOTEL') THEN p.target END AS facility \
         FROM case_board c \
         LEFT JOIN LATERAL (SELECT target FROM case_board_placements \
           WHERE case_id = c.case_id ORDER BY requested_at DESC, placement_id DESC \
           LIMIT 1) p ON true \
         WHERE c.deteriorated_at IS NOT NULL AND c.closed_at IS NULL",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| Condition {
            kind: AlertKind::Deterioration,
            severity: AlertSeverity::Critical,
            subject: AlertSubject {
                kind: AlertSubjectKind::Case,
                id: r.case_id.to_string(),
            },
            audience: audience(
                &[],
                &[
                    Some(r.health_center_id.as_str()),
                    r.care_site.as_deref(),
                    r.facility.as_deref(),
                ],
            ),
            cause: format!(
                "case-{}/deteriorated-{}",
                r.case_id,
                stamp(r.deteriorated_at)
            ),
            message: text(format!(
                "SpO₂ below its band, observed {}",
                stamp(r.deteriorated_at)
            )),
            case_id: Some(r.case_id),
        })
        .collect())
}

#[derive(Debug, FromRow)]
struct Waiting {
    consult_id: Uuid,
    case_id: Uuid,
    requested_by: String,
    addressed_to: Option<String>,
    urgency: String,
    requested_at: OffsetDateTime,
}

/// URGENT and EMERGENCY consult requests nobody took in time.
async fn consults(pool: &PgPool, now: OffsetDateTime) -> Result<Vec<Condition>, sqlx::Error> {
    let rows: Vec<Waiting> = sqlx::query_as(
        "SELECT consult_id, case_id, requested_by, addressed_to, urgency, requested_at \
         FROM consult_queue WHERE status = 'REQUESTED' AND urgency IN ('URGENT', 'EMERGENCY')",
    )
    .fetch_all(pool)
    .await?;
    let mut conditions = Vec::new();
    for r in rows {
        let (wait, severity) = if r.urgency == "EMERGENCY" {
            (EMERGENCY_CONSULT_WAIT, AlertSeverity::Critical)
        } else {
            (URGENT_CONSULT_WAIT, AlertSeverity::Warning)
        };
        if now - r.requested_at < wait {
            continue;
        }
        // Addressed to one center: that center; to any: every consult center.
        let roles: &[Role] = if r.addressed_to.is_some() {
            &[]
        } else {
            &[Role::ConsultCenter]
        };
        conditions.push(Condition {
            kind: AlertKind::ConsultUnanswered,
            severity,
            subject: AlertSubject {
                kind: AlertSubjectKind::Consult,
                id: r.consult_id.to_string(),
            },
            audience: audience(
                roles,
                &[Some(r.requested_by.as_str()), r.addressed_to.as_deref()],
            ),
            cause: format!("consult-{}", r.consult_id),
            message: text(format!(
                "{} consult requested {} not taken",
                r.urgency,
                stamp(r.requested_at)
            )),
            case_id: Some(r.case_id),
        });
    }
    Ok(conditions)
}

/// Facilities whose figures have disagreed with the patients and holds noroshi knows
/// of (`bed_reconciliation`) for at least [`BED_MISMATCH_AFTER`]: ghost beds.
async fn mismatches(pool: &PgPool, now: OffsetDateTime) -> Result<Vec<Condition>, sqlx::Error> {
    let rows: Vec<(String, String, i32, i32, i32, i32, OffsetDateTime)> = sqlx::query_as(
        "SELECT facility_id, category, occupied, patients, held, holds, mismatch_since \
         FROM bed_reconciliation WHERE mismatch_since <= $1 ORDER BY facility_id, category",
    )
    .bind(now - BED_MISMATCH_AFTER)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(facility, category, occupied, patients, held, holds, since)| Condition {
            kind: AlertKind::BedMismatch,
            severity: AlertSeverity::Warning,
            subject: AlertSubject {
                kind: AlertSubjectKind::Facility,
                id: facility.clone(),
            },
            audience: audience(&[Role::Hq], &[Some(facility.as_str())]),
            cause: format!("facility-{facility}/{category}/mismatch-{}", stamp(since)),
            message: text(format!(
                "{category}: {occupied} declared occupied for {patients} patients placed and present, \
                 {held} held for {holds} accepted placements, since {}",
                stamp(since)
            )),
            case_id: None,
        })
        .collect())
}

/// Every cause that holds at `now` under `rules`.
pub async fn conditions(
    pool: &PgPool,
    rules: &AlertRules,
    now: OffsetDateTime,
) -> Result<Vec<Condition>, sqlx::Error> {
    let mut all = placements(pool, rules, now).await?;
    all.extend(stale(pool, rules, now).await?);
    all.extend(occupancy(pool, rules).await?);
    all.extend(deteriorations(pool).await?);
    all.extend(consults(pool, now).await?);
    all.extend(mismatches(pool, now).await?);
    Ok(all)
}

/// The alerts not resolved.
pub async fn open_alerts(pool: &PgPool) -> Result<Vec<OpenAlert>, sqlx::Error> {
    Ok(super::open(pool)
        .await?
        .into_iter()
        .filter_map(|row| {
            Some(OpenAlert {
                alert_id: row.alert_id,
                kind: AlertKind::parse(&row.kind)?,
                cause: row.cause,
                severity: AlertSeverity::parse(&row.severity)?,
                status: AlertStatus::parse(&row.status)?,
                raised_at: row.raised_at,
                escalated_at: row.escalated_at,
            })
        })
        .collect())
}

/// Offers whose deadline has passed, with that deadline.
pub async fn due_offers(
    pool: &PgPool,
    now: OffsetDateTime,
) -> Result<Vec<(Uuid, OffsetDateTime)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT placement_id, offer_deadline FROM placement_queue \
         WHERE status = 'OFFERED' AND offer_deadline <= $1",
    )
    .bind(now)
    .fetch_all(pool)
    .await
}
