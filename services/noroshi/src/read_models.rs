//! The read models as the alert scheduler reads them: `noroshi-app` says what it needs
//! ([`Watch`]), `noroshi-projections` owns the tables and their SQL; this joins the two.

use std::collections::BTreeMap;

use noroshi_app::scheduler::{Watch, WatchError};
use noroshi_domain::alert::{AlertRules, Condition, OpenAlert};
use noroshi_domain::values::AlertKind;
use noroshi_projections::alerts::{self, conditions};
use sqlx::PgPool;
use time::OffsetDateTime;

#[derive(Debug, Clone)]
pub struct ReadModels {
    pub pool: PgPool,
}

impl Watch for ReadModels {
    async fn conditions(
        &self,
        rules: &AlertRules,
        now: OffsetDateTime,
    ) -> Result<Vec<Condition>, WatchError> {
        Ok(conditions::conditions(&self.pool, rules, now).await?)
    }

    async fn open_alerts(&self) -> Result<Vec<OpenAlert>, WatchError> {
        Ok(conditions::open_alerts(&self.pool).await?)
    }

    async fn last_episodes(
        &self,
        causes: &[(AlertKind, String)],
    ) -> Result<BTreeMap<(AlertKind, String), u32>, WatchError> {
        let kinds: Vec<String> = causes.iter().map(|(k, _)| k.to_string()).collect();
        let names: Vec<String> = causes.iter().map(|(_, c)| c.clone()).collect();
        let rows = alerts::last_episodes(&self.pool, &kinds, &names).await?;
        Ok(rows
            .into_iter()
            .filter_map(|(kind, cause, episode)| {
                Some((
                    (AlertKind::parse(&kind)?, cause),
                    u32::try_from(episode).ok()?,
                ))
            })
            .collect())
    }

    async fn due_offers(
        &self,
        now: OffsetDateTime,
    ) -> Result<Vec<(uuid::Uuid, OffsetDateTime)>, WatchError> {
        Ok(conditions::due_offers(&self.pool, now).await?)
    }
}
