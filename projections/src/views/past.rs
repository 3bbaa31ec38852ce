//! Reading a view as of a past moment (DESIGN.md §6, time travel): the view's own query,
//! with the same rules for the caller, over a [`Past`] session brought to the moment.

use std::sync::Arc;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use noroshi_domain::authz::{Principal, may_read_as_of};
use noroshi_proto::v1 as pb;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{PiiAudit, QueryError, ViewQuery, Views};
use crate::View;
use crate::history::Past;
use crate::runner::ProjectionError;

/// Past sessions kept open between reads: opening one (a connection, often with TLS) cost
/// more than the rest of a small view's read.
const IDLE_SESSIONS: usize = 4;

/// The moment a past answer reflects: every event up to and including `position`, which
/// was recorded at or before `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Moment {
    pub position: u64,
    /// The time asked for, or for a position the time its event was recorded.
    pub time: OffsetDateTime,
}

impl Moment {
    /// Its time in RFC 3339, as answers name it (headers, gRPC metadata).
    pub fn time_text(&self) -> Result<String, time::error::Format> {
        self.time
            .format(&time::format_description::well_known::Rfc3339)
    }
}

impl Views {
    /// Reads `V` as `principal` may see it as of the moment `as_of` names.
    ///
    /// Refused (`PERMISSION_DENIED`) to those who may not read the past; a moment in the
    /// future, a position beyond the log, or `min_versions` with it are invalid.
    pub async fn get_as_of<V: ViewQuery>(
        &self,
        principal: &Principal,
        request: &V::Request,
        as_of: &pb::AsOf,
    ) -> Result<(V::Response, Moment), QueryError> {
        if !may_read_as_of(principal) {
            return Err(QueryError::Denied);
        }
        QueryError::check(V::violations(request), ())?;
        let view = View::parse(V::NAME).ok_or_else(|| {
            QueryError::internal(std::io::Error::other(format!(
                "no read model for {}",
                V::NAME
            )))
        })?;
        let moment = self.moment(as_of).await?;
        let session = self
            .sessions
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_else(|| crate::history::session(&self.pool.connect_options()));
        let mut past = match Past::on(session.clone(), view.reads()).await {
            Ok(past) => past,
            Err(error) => {
                session.close().await;
                return Err(error.into());
            }
        };
        let answer = async {
            let replayed = past
                .reach(&self.store, moment.position)
                .await
                .map_err(QueryError::from)?;
            tracing::debug!(
                view = V::NAME,
                position = moment.position,
                restored_rows = replayed.restored_rows,
                events = replayed.events,
                "view read as of a past moment"
            );
            past.settle_checkpoints().await?;
            let views = Views {
                pool: past.pool().clone(),
                store: self.store.clone(),
                settings: self.settings,
                visibility: self.visibility.clone(),
                audit: Arc::new(PastAudit {
                    audit: self.audit.clone(),
                    moment,
                }),
                changes: Arc::default(),
                past: Some(moment),
                sessions: Arc::default(),
            };
            V::get(&views, principal, request).await
        }
        .await;
        if let Some(session) = past.finish().await
            && let Ok(mut idle) = self.sessions.lock()
            && idle.len() < IDLE_SESSIONS
        {
            idle.push(session);
        }
        Ok((answer?, moment))
    }

    /// The position and time `as_of` names.
    async fn moment(&self, as_of: &pb::AsOf) -> Result<Moment, QueryError> {
        let now = OffsetDateTime::now_utc();
        match as_of.point {
            Some(pb::as_of::Point::Time(time)) => {
                // Before the year 1 no answer could name it (RFC 3339), nor any log hold it.
                let time = crate::views::timestamp(&time)
                    .filter(|time| time.year() >= 1)
                    .ok_or_else(|| QueryError::invalid("as_of.time", "not a valid timestamp"))?;
                if time > now {
                    return Err(QueryError::invalid(
                        "as_of.time",
                        "is in the future; the present is read without as_of",
                    ));
                }
                let position = self
                    .store
                    .position_at(time)
                    .await?
                    .map_or(0, |(position, _)| position);
                Ok(Moment { position, time })
            }
            Some(pb::as_of::Point::Position(position)) => {
                let (head, _) = self.store.head().await?;
                if position > head {
                    return Err(QueryError::invalid(
                        "as_of.position",
                        format!("{position} is beyond the end of the log ({head})"),
                    ));
                }
                let time = self.store.recorded_at(position).await?.unwrap_or(now);
                Ok(Moment { position, time })
            }
            None => Err(QueryError::invalid(
                "as_of",
                "names neither a time nor a position",
            )),
        }
    }
}

impl From<ProjectionError> for QueryError {
    fn from(error: ProjectionError) -> Self {
        match error {
            ProjectionError::Database(error) => error.into(),
            ProjectionError::Store(error) => error.into(),
            other => Self::internal(other),
        }
    }
}

/// The audit of a past read: the same log, the read marked with its moment.
struct PastAudit {
    audit: Arc<dyn PiiAudit>,
    moment: Moment,
}

impl PiiAudit for PastAudit {
    fn patients_read<'a>(
        &'a self,
        principal: &'a Principal,
        via: &'a str,
        cases: &'a [Uuid],
    ) -> BoxFuture<'a, Result<(), QueryError>> {
        async move {
            let via = format!("{via} as_of {}", self.moment.position);
            self.audit.patients_read(principal, &via, cases).await
        }
        .boxed()
    }
}
