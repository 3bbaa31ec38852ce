//! The `placement_sla` view (HQ): each step's p50 and p90 by the requester's area, the
//! case's severity and the day of the request (in Japan), the prefecture's together, and
//! the declines by reason and by facility, for a period of days.

use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::Severity;
use noroshi_proto::v1 as pb;
use sqlx::FromRow;
use time::{Date, OffsetDateTime};

use super::PlacementSla;
use crate::View;
use crate::runner::Projection;
use crate::views::live::whole;
use crate::views::{MinVersions, QueryError, Updates, ViewQuery, Views, at, min_versions, wire};

/// Days in a period unless the request says otherwise: two weeks, today included.
const DEFAULT_DAYS: i64 = 14;
/// The longest period one read sums up.
const MOST_DAYS: i64 = 366;
/// The most decline reasons listed.
const MOST_REASONS: i64 = 20;

const DAY: &[time::format_description::BorrowedFormatItem<'_>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// The figures of one group of placements, as the query sums them up.
#[derive(Debug, FromRow)]
struct Summed {
    medical_area: Option<String>,
    severity: Option<String>,
    day: Option<String>,
    requested: i64,
    offered: i64,
    offered_p50: Option<f64>,
    offered_p90: Option<f64>,
    accepted: i64,
    accepted_p50: Option<f64>,
    accepted_p90: Option<f64>,
    arrived: i64,
    arrived_p50: Option<f64>,
    arrived_p90: Option<f64>,
    cancelled: i64,
}

/// Each step's count and its percentiles of the seconds since the request (NULLs, the
/// placements that have not reached the step, are left out of both).
const FIGURES: &str = "count(*) AS requested, \
     count(s.first_offered_at) AS offered, \
     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.first_offered_at - s.requested_at)::float8) AS offered_p50, \
     percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM s.first_offered_at - s.requested_at)::float8) AS offered_p90, \
     count(s.accepted_at) AS accepted, \
     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.accepted_at - s.requested_at)::float8) AS accepted_p50, \
     percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM s.accepted_at - s.requested_at)::float8) AS accepted_p90, \
     count(s.arrived_at) AS arrived, \
     percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM s.arrived_at - s.requested_at)::float8) AS arrived_p50, \
     percentile_cont(0.9) WITHIN GROUP (ORDER BY extract(epoch FROM s.arrived_at - s.requested_at)::float8) AS arrived_p90, \
     count(s.cancelled_at) AS cancelled";

fn row(summed: Summed) -> pb::SlaRow {
    let step = |count: i64, p50: Option<f64>, p90: Option<f64>| pb::SlaStep {
        count: u64::try_from(count).unwrap_or_default(),
        p50_seconds: p50,
        p90_seconds: p90,
    };
    pb::SlaRow {
        medical_area: summed.medical_area,
        severity: summed
            .severity
            .as_deref()
            .map_or(0, |s| wire(s, Severity::parse)),
        day: summed.day.unwrap_or_default(),
        requested: u64::try_from(summed.requested).unwrap_or_default(),
        to_first_offer: Some(step(summed.offered, summed.offered_p50, summed.offered_p90)),
        to_acceptance: Some(step(
            summed.accepted,
            summed.accepted_p50,
            summed.accepted_p90,
        )),
        to_arrival: Some(step(summed.arrived, summed.arrived_p50, summed.arrived_p90)),
        cancelled: u64::try_from(summed.cancelled).unwrap_or_default(),
    }
}

/// The period asked for: its first and last day in Japan, both given, both absent, or
/// one of them (the other two weeks away).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Period {
    from: Option<Date>,
    to: Option<Date>,
}

impl Period {
    /// The days, with `today` for what the request leaves out.
    fn days(self, today: Date) -> (Date, Date) {
        let span = time::Duration::days(DEFAULT_DAYS - 1);
        match (self.from, self.to) {
            (Some(from), Some(to)) => (from, to),
            (Some(from), None) => (from, from + span),
            (None, Some(to)) => (to - span, to),
            (None, None) => (today - span, today),
        }
    }
}

fn parse(r: &pb::GetPlacementSlaRequest) -> Result<(Period, MinVersions), QueryError> {
    let mut v = Violations::new();
    let mut day = |field: &str, value: &str| {
        if value.is_empty() {
            return None;
        }
        let parsed = Date::parse(value, DAY).ok();
        if parsed.is_none() {
            v.add(field, format!("{value:?} is not a day (YYYY-MM-DD)"));
        }
        parsed
    };
    let period = Period {
        from: day("from_day", &r.from_day),
        to: day("to_day", &r.to_day),
    };
    if let (Some(from), Some(to)) = (period.from, period.to) {
        if from > to {
            v.add("from_day", "comes after to_day");
        } else if (to - from).whole_days() >= MOST_DAYS {
            v.add(
                "to_day",
                format!("the period is longer than {MOST_DAYS} days"),
            );
        }
    }
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, (period, min_versions))
}

/// Midnight in Japan at the start of `day`.
fn midnight(day: Date) -> OffsetDateTime {
    day.midnight().assume_offset(time::macros::offset!(+9))
}

impl Views {
    async fn placement_sla(
        &self,
        principal: &Principal,
        period: Period,
        min_versions: &[(noroshi_event_store::StreamId, u64)],
    ) -> Result<pb::PlacementSla, QueryError> {
        if principal.role != Role::Hq {
            return Err(QueryError::Denied);
        }
        let read_from = [View::PlacementSla, View::BedBoard];
        self.ready(principal, &read_from, min_versions).await?;
        let stream_sequence = self.checkpoints(&read_from).await?;
        let (from, to) = period.days(self.today());
        let (start, end) = (midnight(from), midnight(to + time::Duration::days(1)));
        let grouped: Vec<Summed> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT f.medical_area, c.severity, \
                    to_char(s.requested_at AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD') AS day, {FIGURES} \
             FROM placement_sla s LEFT JOIN bed_board_facilities f ON f.facility_id = s.requested_by \
             LEFT JOIN placement_sla_cases c ON c.case_id = s.case_id \
             WHERE s.requested_at >= $1 AND s.requested_at < $2 \
             GROUP BY 1, 2, 3 ORDER BY 3, 1, 2"
        )))
        .bind(start)
        .bind(end)
        .fetch_all(&self.pool)
        .await?;
        let total: Summed = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT NULL::text AS medical_area, NULL::text AS severity, NULL::text AS day, {FIGURES} \
             FROM placement_sla s WHERE s.requested_at >= $1 AND s.requested_at < $2"
        )))
        .bind(start)
        .bind(end)
        .fetch_one(&self.pool)
        .await?;
        let declines = |column: &'static str, limit: i64| {
            let pool = self.pool.clone();
            async move {
                let counted: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT d.{column}, count(*) FROM placement_sla_declines d \
                     JOIN placement_sla s USING (placement_id) \
                     WHERE s.requested_at >= $1 AND s.requested_at < $2 \
                     GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT $3"
                )))
                .bind(start)
                .bind(end)
                .bind(limit)
                .fetch_all(&pool)
                .await?;
                Ok::<_, QueryError>(
                    counted
                        .into_iter()
                        .map(|(key, count)| pb::DeclineCount {
                            key,
                            count: u64::try_from(count).unwrap_or_default(),
                        })
                        .collect::<Vec<_>>(),
                )
            }
        };
        Ok(pb::PlacementSla {
            rows: grouped.into_iter().map(row).collect(),
            prefecture: Some(row(total)),
            declines_by_reason: declines("reason", MOST_REASONS).await?,
            declines_by_facility: declines("facility_id", i64::MAX).await?,
            from_day: from.format(DAY).unwrap_or_default(),
            to_day: to.format(DAY).unwrap_or_default(),
            stream_sequence,
            generated_at: at(self.now()),
        })
    }
}

impl ViewQuery for PlacementSla {
    const NAME: &'static str = "placement_sla";
    type Request = pb::GetPlacementSlaRequest;
    type Response = pb::PlacementSla;
    /// The whole figures, each time they changed.
    type Update = pb::PlacementSla;

    fn as_of(request: &pb::GetPlacementSlaRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetPlacementSlaRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPlacementSlaRequest,
    ) -> Result<pb::PlacementSla, QueryError> {
        let (period, min_versions) = parse(request)?;
        views.placement_sla(principal, period, &min_versions).await
    }

    /// The figures, then the whole figures again whenever they changed.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetPlacementSlaRequest,
    ) -> Result<Updates<pb::PlacementSla>, QueryError> {
        let (period, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let first = views
            .placement_sla(principal, period, &min_versions)
            .await?;
        let (views, principal) = (views.clone(), principal.clone());
        let read = move || {
            let (views, principal) = (views.clone(), principal.clone());
            async move { views.placement_sla(&principal, period, &[]).await }
        };
        // Areas come from the bed board's facilities; the steps from this projection.
        Ok(Box::pin(whole(
            changes,
            &[
                <crate::bed_board::BedBoard as Projection>::NAME,
                <PlacementSla as Projection>::NAME,
            ],
            first,
            read,
            |v: &pb::PlacementSla| {
                (
                    v.rows.clone(),
                    v.prefecture.clone(),
                    v.declines_by_reason.clone(),
                    v.declines_by_facility.clone(),
                )
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn a_period_defaults_to_two_weeks_ending_today_or_at_the_day_given() {
        let today = date!(2026 - 12 - 07);
        let none = Period {
            from: None,
            to: None,
        };
        assert_eq!(none.days(today), (date!(2026 - 11 - 24), today));
        let to = Period {
            from: None,
            to: Some(date!(2026 - 01 - 14)),
        };
        assert_eq!(
            to.days(today),
            (date!(2026 - 01 - 01), date!(2026 - 01 - 14))
        );
        let bad = pb::GetPlacementSlaRequest {
            from_day: "2026-12-08".into(),
            to_day: "2026-12-07".into(),
            ..Default::default()
        };
        assert!(matches!(parse(&bad), Err(QueryError::Invalid(_))));
        let garbage = pb::GetPlacementSlaRequest {
            from_day: "12/07".into(),
            ..Default::default()
        };
        let Err(QueryError::Invalid(violations)) = parse(&garbage) else {
            panic!("a day that is not one is refused");
        };
        assert_eq!(violations.iter().next().unwrap().field, "from_day");
    }
}
