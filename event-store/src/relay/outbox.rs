//! Reading and clearing the outbox, on the leader's connection.

use sqlx::postgres::PgConnection;

use crate::error::StoreError;
use crate::event::RecordedEvent;
use crate::store::{event_columns, recorded_event};

/// The oldest unpublished events. Per stream, position order is version order (a
/// stream's appends are serialised by its row lock and positions are drawn inside it),
/// and a committed event's predecessors in its stream are committed too.
const FETCH: &str = concat!(
    "SELECT ",
    event_columns!(),
    " FROM event_outbox o JOIN events e ON e.position = o.position \
      ORDER BY o.position LIMIT $1"
);

const DELETE: &str = "DELETE FROM event_outbox WHERE position = ANY($1)";

const PENDING: &str = "SELECT count(*) FROM event_outbox";

pub(crate) async fn fetch(
    conn: &mut PgConnection,
    limit: u32,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows = sqlx::query(FETCH)
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await?;
    rows.iter().map(recorded_event).collect()
}

/// Marks events published: called only with positions whose JetStream ack arrived.
pub(crate) async fn mark_published(
    conn: &mut PgConnection,
    positions: &[u64],
) -> Result<(), StoreError> {
    if positions.is_empty() {
        return Ok(());
    }
    let positions: Vec<i64> = positions
        .iter()
        .map(|&p| i64::try_from(p).unwrap_or(i64::MAX))
        .collect();
    sqlx::query(DELETE).bind(&positions).execute(conn).await?;
    Ok(())
}

/// How many committed events still wait for publication.
pub async fn pending(pool: &sqlx::PgPool) -> Result<u64, StoreError> {
    let count: i64 = sqlx::query_scalar(PENDING).fetch_one(pool).await?;
    Ok(u64::try_from(count).unwrap_or_default())
}
