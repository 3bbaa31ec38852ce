//! The figures of the after-action report (DESIGN.md §12) for a period of days in Japan,
//! folded from the event log itself in one read (facilities, cases, placements, alerts),
//! so that a report can be written for any period, also long after it. The page is
//! written by `noroshi_interop::report`.

use std::collections::BTreeMap;

use futures_util::TryStreamExt;
use noroshi_domain::DomainEvent;
use noroshi_domain::alert::AlertEvent;
use noroshi_domain::case::CaseEvent;
use noroshi_domain::facility::Facility;
use noroshi_domain::placement::PlacementEvent;
use noroshi_domain::streams;
use noroshi_domain::values::AlertKind;
use noroshi_event_store::{EventStore, StoreError, read_snapshot};
use noroshi_interop::report::{AfterAction, AlertFigures, AreaFigures, DayFigures};
use time::{Date, OffsetDateTime, UtcOffset};
use uuid::Uuid;

use crate::command::CommandError;

const JST: UtcOffset = time::macros::offset!(+9);

/// Midnight in Japan at the start of `day`.
fn midnight(day: Date) -> OffsetDateTime {
    day.midnight().assume_offset(JST)
}

fn jst_day(at: OffsetDateTime) -> Date {
    at.to_offset(JST).date()
}

/// What the report knows of one placement.
#[derive(Debug, Default)]
struct Steps {
    requested_by: String,
    requested_at: Option<OffsetDateTime>,
    accepted_at: Option<OffsetDateTime>,
    arrived_at: Option<OffsetDateTime>,
    cancelled_at: Option<OffsetDateTime>,
}

/// An alert's kind, when it was raised and first acknowledged.
#[derive(Debug)]
struct Raised {
    kind: AlertKind,
    raised_at: OffsetDateTime,
    acknowledged_at: Option<OffsetDateTime>,
}

/// The Japanese label of an alert kind, as the pages say it.
fn alert_label(kind: AlertKind) -> &'static str {
    match kind {
        AlertKind::OfferDeadlineNear => "打診の回答期限が近い",
        AlertKind::OfferExpired => "打診が回答なしで期限切れ",
        AlertKind::HoldOverdue => "確保した病床に到着しない",
        AlertKind::TransportLate => "迎車時刻を過ぎても未出発",
        AlertKind::WaitingTooLong => "入院調整待ちが長い",
        AlertKind::CapacityStale => "病床報告が古い",
        AlertKind::OccupancyThreshold => "病床使用率が基準を超えた",
        AlertKind::Deterioration => "病状の悪化",
        AlertKind::ConsultUnanswered => "遠隔診療の依頼に応答がない",
        AlertKind::BedMismatch => "病床数の報告が患者数と合わない",
    }
}

/// The figures of the days `from` to `to` (inclusive, in Japan) in `store`'s log, written
/// `now`, with `areas` naming the medical areas (code → name) and `prefecture` the
/// prefecture.
pub async fn after_action(
    store: &EventStore,
    now: OffsetDateTime,
    from: Date,
    to: Date,
    prefecture: &str,
    areas: &BTreeMap<String, String>,
) -> Result<AfterAction, CommandError> {
    let (start, end) = (midnight(from), midnight(to.next_day().unwrap_or(to)));
    let mut conn = store.pool().acquire().await.map_err(StoreError::from)?;
    let types = [
        streams::FACILITY,
        streams::CASE,
        streams::PLACEMENT,
        streams::ALERT,
    ];
    let mut events = std::pin::pin!(read_snapshot(&mut conn, &types));
    let mut facilities: BTreeMap<String, Facility> = BTreeMap::new();
    let mut placements: BTreeMap<Uuid, Steps> = BTreeMap::new();
    let mut alerts: BTreeMap<Uuid, Raised> = BTreeMap::new();
    let mut days: BTreeMap<Date, DayFigures> = BTreeMap::new();
    let mut day = from;
    while day <= to {
        days.insert(
            day,
            DayFigures {
                day: Some(day),
                ..DayFigures::default()
            },
        );
        day = match day.next_day() {
            Some(next) => next,
            None => break,
        };
    }
    let mut report = AfterAction {
        prefecture: prefecture.to_owned(),
        from: Some(from),
        to: Some(to),
        generated_at: Some(now),
        ..AfterAction::default()
    };
    let (mut by_reason, mut by_facility): (BTreeMap<String, u64>, BTreeMap<String, u64>) =
        (BTreeMap::new(), BTreeMap::new());
    while let Some(recorded) = events.try_next().await.map_err(CommandError::from)? {
        // The log after the period says nothing about it.
        if recorded.recorded_at >= end {
            continue;
        }
        let within = recorded.recorded_at >= start;
        let today = days.get_mut(&jst_day(recorded.recorded_at));
        let decoded = noroshi_codec::decode(&recorded).map_err(CommandError::internal)?;
        let id = recorded.stream_id.aggregate_id().to_owned();
        match decoded {
            DomainEvent::Facility(event) => {
                facilities.entry(id).or_default().evolve(&event);
            }
            DomainEvent::Case(CaseEvent::Reported { .. }) => {
                if let Some(today) = today {
                    today.reported += 1;
                    report.totals.reported += 1;
                }
            }
            DomainEvent::Placement(event) => {
                let Ok(placement_id) = Uuid::parse_str(&id) else {
                    continue;
                };
                let steps = placements.entry(placement_id).or_default();
                match event {
                    PlacementEvent::Requested {
                        requested_by,
                        requested_at,
                        ..
                    } => {
                        steps.requested_by = requested_by.to_string();
                        steps.requested_at = Some(requested_at);
                        if let Some(today) = today {
                            today.requested += 1;
                            report.totals.requested += 1;
                        }
                    }
                    PlacementEvent::Accepted { accepted_at, .. } => {
                        steps.accepted_at.get_or_insert(accepted_at);
                        if within {
                            report.totals.accepted += 1;
                        }
                    }
                    PlacementEvent::Arrived { arrived_at, .. } => {
                        steps.arrived_at.get_or_insert(arrived_at);
                        if let Some(today) = today {
                            today.arrived += 1;
                            report.totals.arrived += 1;
                        }
                    }
                    PlacementEvent::Cancelled { cancelled_at, .. } => {
                        steps.cancelled_at.get_or_insert(cancelled_at);
                        if within {
                            report.totals.cancelled += 1;
                        }
                    }
                    PlacementEvent::Declined {
                        facility, reason, ..
                    } if within => {
                        report.totals.declines += 1;
                        *by_reason.entry(reason.to_string()).or_default() += 1;
                        *by_facility.entry(facility.to_string()).or_default() += 1;
                    }
                    PlacementEvent::OfferExpired { facility, .. } if within => {
                        report.totals.declines += 1;
                        *by_reason
                            .entry("回答なしで期限切れ".to_owned())
                            .or_default() += 1;
                        *by_facility.entry(facility.to_string()).or_default() += 1;
                    }
                    PlacementEvent::Discharged { .. } => {
                        if let Some(today) = today {
                            today.discharged += 1;
                        }
                    }
                    _ => {}
                }
            }
            DomainEvent::Alert(event) => {
                let Ok(alert_id) = Uuid::parse_str(&id) else {
                    continue;
                };
                match event {
                    AlertEvent::Raised { alert, raised_at } => {
                        alerts.insert(
                            alert_id,
                            Raised {
                                kind: alert.kind,
                                raised_at,
                                acknowledged_at: None,
                            },
                        );
                    }
                    AlertEvent::Acknowledged {
                        acknowledged_at, ..
                    } => {
                        if let Some(raised) = alerts.get_mut(&alert_id) {
                            raised.acknowledged_at.get_or_insert(acknowledged_at);
                        }
                    }
                    AlertEvent::Escalated { .. } | AlertEvent::Resolved { .. } => {}
                }
            }
            _ => {}
        }
    }

    // Each day's end: placements requested and neither accepted nor cancelled.
    for (day, figures) in &mut days {
        let day_end = midnight(day.next_day().unwrap_or(*day));
        figures.waiting = placements
            .values()
            .filter(|p| {
                let settled = [p.accepted_at, p.cancelled_at].into_iter().flatten().min();
                p.requested_at.is_some_and(|at| at < day_end)
                    && settled.is_none_or(|at| at >= day_end)
            })
            .count() as u64;
    }
    report.days = days.into_values().collect();

    // Areas: the beds at the end of the period, the requests from them within it.
    let area_of = |facility: &str| {
        facilities
            .get(facility)
            .and_then(|f| f.profile.as_ref())
            .and_then(|p| p.medical_area.as_ref())
            .map(ToString::to_string)
    };
    let mut by_area: BTreeMap<String, AreaFigures> = areas
        .iter()
        .map(|(code, name)| {
            (
                code.clone(),
                AreaFigures {
                    code: code.clone(),
                    name: name.clone(),
                    ..AreaFigures::default()
                },
            )
        })
        .collect();
    for (id, facility) in &facilities {
        let Some(area) = area_of(id) else { continue };
        let figures = by_area.entry(area.clone()).or_insert_with(|| AreaFigures {
            code: area.clone(),
            name: area.clone(),
            ..AreaFigures::default()
        });
        for beds in facility.beds.values() {
            figures.secured += u64::from(beds.secured);
            figures.occupied += u64::from(beds.occupied);
        }
    }
    for steps in placements.values() {
        let Some(requested_at) = steps.requested_at else {
            continue;
        };
        if requested_at < start {
            continue;
        }
        let minutes =
            |at: Option<OffsetDateTime>| at.map(|at| (at - requested_at).as_seconds_f64() / 60.0);
        if let Some(m) = minutes(steps.accepted_at) {
            report.to_acceptance.push(m);
        }
        if let Some(m) = minutes(steps.arrived_at) {
            report.to_arrival.push(m);
        }
        if let Some(area) = area_of(&steps.requested_by)
            && let Some(figures) = by_area.get_mut(&area)
        {
            figures.requested += 1;
            if steps.arrived_at.is_some() {
                figures.arrived += 1;
            }
        }
    }
    report.areas = by_area.into_values().collect();

    let most_first = |counts: BTreeMap<String, u64>| {
        let mut counts: Vec<(String, u64)> = counts.into_iter().collect();
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    };
    report.declines_by_reason = most_first(by_reason);
    report.declines_by_facility = most_first(by_facility);

    let mut by_kind: BTreeMap<AlertKind, AlertFigures> = BTreeMap::new();
    for raised in alerts.values().filter(|a| a.raised_at >= start) {
        let figures = by_kind.entry(raised.kind).or_insert_with(|| AlertFigures {
            kind: alert_label(raised.kind).to_owned(),
            ..AlertFigures::default()
        });
        figures.raised += 1;
        if let Some(at) = raised.acknowledged_at {
            figures.acknowledged += 1;
            figures
                .minutes_to_acknowledge
                .push((at - raised.raised_at).as_seconds_f64() / 60.0);
        }
    }
    report.alerts = by_kind.into_values().collect();
    Ok(report)
}
