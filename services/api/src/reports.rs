//! The after-action report (DESIGN.md §12): its period as HTTP and the CLI give it, and
//! its figures, read from the event log and the register of areas.

use noroshi_interop::export;
use time::macros::format_description;

use crate::error::ApiError;

/// The days of an after-action report: `from` and `to` (YYYY-MM-DD in Japan), by default
/// the two weeks ending `today`; at most a year.
pub fn period(
    params: &[(String, String)],
    today: time::Date,
) -> Result<(time::Date, time::Date), ApiError> {
    let (mut from, mut to) = (None, None);
    for (name, value) in params {
        let parsed = || {
            time::Date::parse(value, format_description!("[year]-[month]-[day]")).map_err(|_| {
                ApiError::invalid(
                    name.as_str(),
                    format!("{value:?} is not a day (YYYY-MM-DD)"),
                )
            })
        };
        match name.as_str() {
            "from" => from = Some(parsed()?),
            "to" => to = Some(parsed()?),
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown parameter; from and to are known",
                ));
            }
        }
    }
    let to = to.unwrap_or(today);
    let from = from.unwrap_or(to - time::Duration::days(13));
    if from > to {
        return Err(ApiError::invalid("from", "comes after to"));
    }
    if (to - from).whole_days() >= 366 {
        return Err(ApiError::invalid(
            "to",
            "the period is longer than 366 days",
        ));
    }
    Ok((from, to))
}

/// The figures of an after-action report over `handler`'s log, the areas named from
/// `pool`'s register.
pub async fn after_action(
    handler: &noroshi_app::CommandHandler,
    pool: &sqlx::PgPool,
    from: time::Date,
    to: time::Date,
) -> Result<noroshi_interop::report::AfterAction, ApiError> {
    let (areas, _) = noroshi_identity::areas::list(pool).await?;
    let names = areas.into_iter().map(|a| (a.code, a.name)).collect();
    let prefecture = export::prefecture_name(&handler.prefecture().code()).unwrap_or_default();
    Ok(noroshi_app::report::after_action(
        handler.store(),
        handler.now(),
        from,
        to,
        prefecture,
        &names,
    )
    .await?)
}
