//! The `alerts` view: each reader's own audience (its role, its organisation; HQ also the
//! alerts escalated to it), open ones first. No patient data, so nothing to audit.

use std::collections::BTreeSet;

use noroshi_codec::WireEnum;
use noroshi_domain::Violations;
use noroshi_domain::authz::{Principal, Role};
use noroshi_domain::values::{AlertKind, AlertSeverity, AlertStatus, AlertSubjectKind};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;

use super::{AlertRow, Alerts};
use crate::View;
use crate::runner::Projection;
use crate::views::live::whole_list;
use crate::views::{
    MinVersions, QueryError, Updates, ViewQuery, Views, at, at_opt, min_versions, wire,
};

/// How long a resolved alert stays in its readers' lists.
const RECENT: time::Duration = time::Duration::hours(24);
/// The most alerts one read returns.
const MOST: i64 = 500;

#[derive(Debug, Clone, Default)]
struct Filter {
    statuses: BTreeSet<AlertStatus>,
}

fn parse(r: &pb::GetAlertsRequest) -> Result<(Filter, MinVersions), QueryError> {
    let mut v = Violations::new();
    let statuses = r
        .statuses
        .iter()
        .enumerate()
        .filter_map(|(i, &s)| v.check(format!("statuses[{i}]"), AlertStatus::from_wire(s)))
        .collect();
    let min_versions = min_versions(r.min_versions.as_ref(), &mut v);
    QueryError::check(v, (Filter { statuses }, min_versions))
}

/// Whether `principal` reads alerts at all: every role of an organisation does; the
/// public reads only `public_stats`, the operator no operational view.
fn may_read_alerts(principal: &Principal) -> bool {
    !matches!(principal.role, Role::Public | Role::Admin)
}

pub fn row(r: &AlertRow, now: OffsetDateTime) -> pb::AlertRow {
    pb::AlertRow {
        alert_id: r.alert_id.to_string(),
        kind: wire(&r.kind, AlertKind::parse),
        severity: wire(&r.severity, AlertSeverity::parse),
        status: wire(&r.status, AlertStatus::parse),
        subject_kind: wire(&r.subject_kind, AlertSubjectKind::parse),
        subject_id: r.subject_id.clone(),
        case_id: r.case_id.map(|c| c.to_string()),
        message: r.message.clone(),
        raised_at: at(r.raised_at),
        age_seconds: (now - r.raised_at).whole_seconds().max(0),
        escalated_at: at_opt(r.escalated_at),
        acknowledged_by: r.acknowledged_by.clone(),
        acknowledged_organisation: r.acknowledged_organisation.clone(),
        acknowledgement_note: r.acknowledgement_note.clone(),
        acknowledged_at: at_opt(r.acknowledged_at),
        resolved_at: at_opt(r.resolved_at),
        resolution: r.resolution.clone(),
    }
}

impl Views {
    async fn alerts(
        &self,
        principal: &Principal,
        filter: &Filter,
        min_versions: &[(noroshi_event_store::StreamId, u64)],
    ) -> Result<pb::Alerts, QueryError> {
        if !may_read_alerts(principal) {
            return Err(QueryError::Denied);
        }
        self.ready(principal, &[View::Alerts], min_versions).await?;
        let stream_sequence = self.checkpoint(View::Alerts.name()).await?;
        let now = self.now();
        let stored = super::rows_for(
            &self.pool,
            principal.role.as_str(),
            principal.organisation_id.as_str(),
            now - RECENT,
            MOST,
        )
        .await?;
        let rows = stored
            .iter()
            .filter(|r| {
                filter.statuses.is_empty()
                    || AlertStatus::parse(&r.status).is_some_and(|s| filter.statuses.contains(&s))
            })
            .map(|r| row(r, now))
            .collect();
        Ok(pb::Alerts {
            rows,
            stream_sequence,
            generated_at: at(now),
        })
    }
}

impl ViewQuery for Alerts {
    const NAME: &'static str = "alerts";
    type Request = pb::GetAlertsRequest;
    type Response = pb::Alerts;
    type Update = pb::AlertsUpdate;

    fn as_of(request: &pb::GetAlertsRequest) -> Option<&pb::AsOf> {
        request.as_of.as_ref()
    }

    fn violations(request: &pb::GetAlertsRequest) -> Violations {
        crate::views::violations(parse(request))
    }

    async fn get(
        views: &Views,
        principal: &Principal,
        request: &pb::GetAlertsRequest,
    ) -> Result<pb::Alerts, QueryError> {
        let (filter, min_versions) = parse(request)?;
        views.alerts(principal, &filter, &min_versions).await
    }

    /// The caller's alerts, then the alerts that changed in or left them, read again
    /// whole (a reader's open alerts and a day of resolved ones) after each batch of the
    /// projection, filtered exactly as the snapshot.
    async fn watch(
        views: &Views,
        principal: &Principal,
        request: &pb::GetAlertsRequest,
    ) -> Result<Updates<pb::AlertsUpdate>, QueryError> {
        use pb::alerts_update::Update;
        let (filter, min_versions) = parse(request)?;
        let changes = views.subscribe().await;
        let snapshot = views.alerts(principal, &filter, &min_versions).await?;
        let (views, principal) = (views.clone(), principal.clone());
        Ok(Box::pin(whole_list(
            changes,
            &[<Alerts as Projection>::NAME],
            snapshot,
            // An alert's age grows by itself; only what is said about it counts.
            |alerts: &pb::Alerts| {
                alerts
                    .rows
                    .iter()
                    .map(|r| {
                        let mut r = r.clone();
                        r.age_seconds = 0;
                        (r.alert_id.clone(), r)
                    })
                    .collect()
            },
            |snapshot| pb::AlertsUpdate {
                update: Some(Update::Snapshot(snapshot)),
            },
            move || {
                let (views, principal, filter) = (views.clone(), principal.clone(), filter.clone());
                async move { views.alerts(&principal, &filter, &[]).await }
            },
            |alerts: pb::Alerts, changed, removed| pb::AlertsUpdate {
                update: Some(Update::Delta(pb::AlertsDelta {
                    rows: alerts
                        .rows
                        .into_iter()
                        .filter(|r| changed.contains(&r.alert_id))
                        .collect(),
                    removed,
                    stream_sequence: alerts.stream_sequence,
                    generated_at: alerts.generated_at,
                })),
            },
        )))
    }
}
