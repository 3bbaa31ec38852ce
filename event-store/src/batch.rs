//! Group commit: concurrent single-stream appends share one statement and one commit.
//!
//! Under load, most commands append to one stream (a capacity declaration, a triage, an
//! observation) and each cost PostgreSQL a statement of its own, a commit and a flush of
//! the write-ahead log, and the API a round trip. Here such appends go through a few
//! *lanes*, each a task that takes every append waiting for it and writes them with one
//! statement ([`APPEND_BATCH`]) in one transaction. Nothing waits on purpose: an append
//! that arrives while its lane is idle goes alone, through the ordinary statement, and
//! batches form only from appends that arrive while the lane is writing the previous one.
//!
//! Each append in a batch keeps its own outcome, exactly as if it had gone alone:
//! - a command committed before returns its original events (`replayed`);
//! - a stream not at the expected version refuses that append alone, with the actual
//!   version, and the others commit;
//! - otherwise its events are appended at the versions after the current one.
//!
//! What could make the statement itself fail is kept out of it, or undone: a lane puts
//! at most one append per stream and per command id in a batch (the others wait for the
//! next), and a stream is always served by the same lane, so two batches of one process
//! never race for a version. Anything else that refuses the statement (a writer outside
//! the lanes taking a version or committing the same command first, a lost connection)
//! rolls the whole batch back, and then every append in it is made again on its own,
//! where the store's usual rules answer it. Appends are idempotent by command id, so
//! that second attempt can neither lose nor double one.

use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};
use tokio::sync::{mpsc, oneshot};

use crate::append::{Refused, append_pooled, append_result, to_u64};
use crate::error::{AppendError, StoreError, connection_lost};
use crate::event::{AppendRequest, AppendResult, ExpectedVersion};

/// Lanes per store: batches written at once. Each holds one pooled connection while it
/// writes.
const LANES: usize = 4;

/// Most appends in one batch.
const MAX_BATCH: usize = 128;

/// Most payload bytes in one batch (events may carry up to a mebibyte each); an append
/// larger than this alone still goes, alone.
const MAX_BATCH_BYTES: usize = 4 << 20;

/// Many single-stream appends, each with its own outcome, in one statement.
///
/// `req` holds one row per append (at most one per stream and per command id). Each is
/// answered by the rows of its index `i`: its earlier events (`replayed`), its new
/// events, or one row with the stream's `current` version when that is not the expected
/// one. Inserts go in stream order, the order every multi-stream append takes too.
const APPEND_BATCH: &str = "\
WITH req AS (
    SELECT * FROM unnest($1::int[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                         $7::text[], $8::bigint[], $16::bytea[])
        AS r(i, command_id, correlation_id, causation_id, actor, prefecture, stream_id, expected,
             request_digest)
), previous AS (
    SELECT r.i, e.event_id, e.stream_id, e.version, e.position, e.request_digest
    FROM req r CROSS JOIN LATERAL (
        SELECT e.event_id, e.stream_id, e.version, e.position, e.request_digest FROM events e
        WHERE e.command_id = r.command_id
        OFFSET 0) AS e
), fresh AS (
    SELECT r.*, (SELECT coalesce(max(e.version), 0) FROM events e WHERE e.stream_id = r.stream_id)
               AS current
    FROM req r
    WHERE NOT EXISTS (SELECT 1 FROM previous p WHERE p.i = r.i)
), inserted AS (
    INSERT INTO events (event_id, stream_id, version, event_type, schema_version, occurred_at,
                        command_id, command_seq, correlation_id, causation_id, actor, prefecture, payload,
                        request_digest)
    SELECT n.event_id, f.stream_id, f.current + n.seq, n.event_type, n.schema_version, n.occurred_at,
           f.command_id, n.seq, f.correlation_id, f.causation_id, f.actor, f.prefecture, n.payload,
           f.request_digest
    FROM fresh f
    JOIN unnest($9::int[], $10::int[], $11::uuid[], $12::text[], $13::int[], $14::timestamptz[],
                $15::bytea[])
        AS n(i, seq, event_id, event_type, schema_version, occurred_at, payload) ON n.i = f.i
    WHERE f.expected = f.current
    ORDER BY f.stream_id, n.seq
    RETURNING event_id, stream_id, version, position, command_id
), outboxed AS (
    INSERT INTO event_outbox (position) SELECT position FROM inserted
)
SELECT r.i, n.event_id, n.stream_id, n.version, n.position AS event_position,
       false AS replayed, NULL::bigint AS current, NULL::bytea AS request_digest
FROM inserted n JOIN req r ON r.command_id = n.command_id
UNION ALL
SELECT p.i, p.event_id, p.stream_id, p.version, p.position, true, NULL, p.request_digest
FROM previous p
UNION ALL
SELECT f.i, NULL, f.stream_id, NULL, NULL, false, f.current, NULL FROM fresh f
WHERE f.expected <> f.current
ORDER BY 1, 5";

/// An append waiting in a lane, and where its outcome goes.
struct Job {
    request: AppendRequest,
    reply: oneshot::Sender<Result<AppendResult, Refused>>,
}

/// How much the lanes have grouped: statements of more than one append, and the appends
/// they carried.
#[derive(Debug, Default)]
pub struct BatchCounts {
    batches: AtomicU64,
    appends: AtomicU64,
}

impl BatchCounts {
    /// `(batches, appends)`: statements that committed more than one append, and how many
    /// appends they carried together.
    pub fn get(&self) -> (u64, u64) {
        (
            self.batches.load(Ordering::Relaxed),
            self.appends.load(Ordering::Relaxed),
        )
    }
}

/// The lanes of one store; they end when the last clone of the store is dropped.
#[derive(Debug)]
pub(crate) struct Lanes {
    senders: Vec<mpsc::UnboundedSender<Job>>,
}

impl Lanes {
    pub(crate) fn start(pool: &PgPool, counts: &Arc<BatchCounts>) -> Self {
        let senders = (0..LANES)
            .map(|_| {
                let (sender, receiver) = mpsc::unbounded_channel();
                tokio::spawn(run(pool.clone(), receiver, counts.clone()));
                sender
            })
            .collect();
        Self { senders }
    }

    /// Whether an append can go through a lane: one stream, at an expected version.
    /// (Appends that expect any version queue on the stream instead; see
    /// `EventStore::append`.)
    pub(crate) fn takes(request: &AppendRequest) -> bool {
        matches!(request.streams.as_slice(), [write] if write.expected != ExpectedVersion::Any)
    }

    /// Appends `request` through its stream's lane. `None` when the lane is gone (its
    /// runtime shut down) or dropped the append without an answer: the outcome is then
    /// unknown, and the caller appends on its own, which a committed command id answers.
    pub(crate) async fn append(
        &self,
        request: &AppendRequest,
    ) -> Option<Result<AppendResult, Refused>> {
        let stream = request.streams.first()?.stream_id.as_str();
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(stream);
        let lane = &self.senders[usize::try_from(hash).unwrap_or(0) % self.senders.len()];
        let (reply, answer) = oneshot::channel();
        let job = Job {
            request: request.clone(),
            reply,
        };
        lane.send(job).ok()?;
        answer.await.ok()
    }
}

/// One lane: takes what waits, writes it, answers, again.
async fn run(pool: PgPool, mut receiver: mpsc::UnboundedReceiver<Job>, counts: Arc<BatchCounts>) {
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        if waiting.is_empty() {
            match receiver.recv().await {
                Some(job) => waiting.push_back(job),
                None => return,
            }
        }
        while let Ok(job) = receiver.try_recv() {
            waiting.push_back(job);
        }
        let mut batch = take_batch(&mut waiting).into_iter();
        if batch.len() > 1 {
            let jobs: Vec<Job> = batch.collect();
            match together(&pool, &jobs).await {
                Ok(outcomes) => {
                    counts.batches.fetch_add(1, Ordering::Relaxed);
                    counts
                        .appends
                        .fetch_add(jobs.len() as u64, Ordering::Relaxed);
                    for (job, outcome) in jobs.into_iter().zip(outcomes) {
                        let _ = job.reply.send(outcome);
                    }
                    continue;
                }
                Err(error) => {
                    tracing::debug!(error = %error, appends = jobs.len(), "a batch was refused; appending each alone");
                    batch = jobs.into_iter();
                }
            }
        }
        while let Some(job) = batch.next() {
            let outcome = append_pooled(&pool, &job.request).await;
            let unreachable = matches!(
                &outcome,
                Err(Refused::Error(AppendError::Store(StoreError::Unavailable(error))))
                    if !connection_lost(error)
            );
            let _ = job.reply.send(outcome);
            if unreachable {
                // The pool waited its whole timeout for a connection: the next appends
                // here would each wait as long, one after the other. They get the same
                // answer now, as they would have from the pool.
                while let Ok(job) = receiver.try_recv() {
                    waiting.push_back(job);
                }
                for job in batch.by_ref().chain(waiting.drain(..)) {
                    let _ = job.reply.send(Err(Refused::Error(
                        StoreError::Unavailable(sqlx::Error::PoolTimedOut).into(),
                    )));
                }
            }
        }
    }
}

/// The waiting appends that go next, in arrival order: at most [`MAX_BATCH`] of them and
/// [`MAX_BATCH_BYTES`] of payload, and at most one per stream and per command id. The
/// others keep their places for the next batch.
fn take_batch(waiting: &mut VecDeque<Job>) -> Vec<Job> {
    let mut batch = Vec::new();
    let mut bytes = 0;
    let mut kept = VecDeque::new();
    let mut streams = HashSet::new();
    let mut commands = HashSet::new();
    for job in waiting.drain(..) {
        let stream = job.request.streams.first().map(|w| w.stream_id.clone());
        let size: usize = job
            .request
            .streams
            .iter()
            .flat_map(|w| &w.events)
            .map(|e| e.payload.len())
            .sum();
        let free = batch.len() < MAX_BATCH
            && (batch.is_empty() || bytes + size <= MAX_BATCH_BYTES)
            && !streams.contains(&stream)
            && !commands.contains(&job.request.command_id);
        if free {
            bytes += size;
            streams.insert(stream);
            commands.insert(job.request.command_id);
            batch.push(job);
        } else {
            kept.push_back(job);
        }
    }
    *waiting = kept;
    batch
}

/// Writes `batch` in one statement; one outcome per append, in order. An error when the
/// statement failed as a whole: then nothing of it was written.
async fn together(
    pool: &PgPool,
    batch: &[Job],
) -> Result<Vec<Result<AppendResult, Refused>>, sqlx::Error> {
    let mut indexes = Vec::with_capacity(batch.len());
    let mut command_ids = Vec::with_capacity(batch.len());
    let mut correlation_ids = Vec::with_capacity(batch.len());
    let mut causation_ids = Vec::with_capacity(batch.len());
    let mut actors = Vec::with_capacity(batch.len());
    let mut prefectures = Vec::with_capacity(batch.len());
    let mut streams = Vec::with_capacity(batch.len());
    let mut expected = Vec::with_capacity(batch.len());
    let mut digests: Vec<Option<&[u8]>> = Vec::with_capacity(batch.len());
    let (mut event_of, mut seqs, mut event_ids, mut event_types) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut schema_versions, mut occurred_at) = (Vec::new(), Vec::new());
    let mut payloads: Vec<&[u8]> = Vec::new();
    for (index, job) in (1_i32..).zip(batch) {
        let request = &job.request;
        let Some(write) = request.streams.first() else {
            continue;
        };
        indexes.push(index);
        command_ids.push(request.command_id);
        correlation_ids.push(request.correlation_id);
        causation_ids.push(request.causation_id);
        actors.push(request.actor.as_str());
        prefectures.push(request.prefecture.code());
        streams.push(write.stream_id.as_str());
        expected.push(write.expected.to_sql());
        digests.push(request.request_digest.as_deref());
        for (seq, event) in (1_i32..).zip(&write.events) {
            event_of.push(index);
            seqs.push(seq);
            event_ids.push(event.event_id);
            event_types.push(event.event_type.as_str());
            schema_versions.push(i32::try_from(event.schema_version).unwrap_or(i32::MAX));
            occurred_at.push(event.occurred_at);
            payloads.push(&event.payload[..]);
        }
    }
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(APPEND_BATCH)
        .bind(&indexes)
        .bind(&command_ids)
        .bind(&correlation_ids)
        .bind(&causation_ids)
        .bind(&actors)
        .bind(&prefectures)
        .bind(&streams)
        .bind(&expected)
        .bind(&event_of)
        .bind(&seqs)
        .bind(&event_ids)
        .bind(&event_types)
        .bind(&schema_versions)
        .bind(&occurred_at)
        .bind(&payloads)
        .bind(&digests)
        .fetch_all(&mut *conn)
        .await?;
    drop(conn);
    let mut answers: Vec<Vec<PgRow>> = batch.iter().map(|_| Vec::new()).collect();
    for row in rows {
        let index: i32 = row.try_get("i")?;
        let slot = usize::try_from(index - 1)
            .ok()
            .and_then(|i| answers.get_mut(i))
            .ok_or_else(|| sqlx::Error::Protocol(format!("batch row for append {index}")))?;
        slot.push(row);
    }
    Ok(batch
        .iter()
        .zip(answers)
        .map(|(job, rows)| outcome(&job.request, &rows))
        .collect())
}

/// One append's outcome from its rows of [`APPEND_BATCH`].
fn outcome(request: &AppendRequest, rows: &[PgRow]) -> Result<AppendResult, Refused> {
    let conflict = rows
        .first()
        .map(|row| row.try_get::<Option<i64>, _>("current"))
        .transpose()
        .map_err(StoreError::from)?
        .flatten();
    match (conflict, request.streams.first()) {
        (Some(actual), Some(write)) => Err(Refused::Error(AppendError::WrongExpectedVersion {
            stream_id: write.stream_id.clone(),
            expected: write.expected,
            actual: to_u64(actual)?,
        })),
        _ => Ok(append_result(request, rows)?),
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use time::OffsetDateTime;
    use uuid::Uuid;

    use super::*;
    use crate::event::{NewEvent, StreamWrite};
    use crate::stream_id::{Prefecture, StreamId};

    fn job(stream: &str, command_id: Uuid, payload: usize) -> Job {
        let request = AppendRequest {
            command_id,
            correlation_id: command_id,
            causation_id: None,
            actor: "user-1".into(),
            prefecture: Prefecture::parse("35").unwrap(),
            streams: vec![StreamWrite {
                stream_id: StreamId::parse(stream).unwrap(),
                expected: ExpectedVersion::Exact(1),
                events: vec![NewEvent::new(
                    "noroshi.v1.Test",
                    OffsetDateTime::UNIX_EPOCH,
                    Bytes::from(vec![0; payload]),
                )],
            }],
            request_digest: None,
        };
        Job {
            request,
            reply: oneshot::channel().0,
        }
    }

    fn streams(jobs: &[Job]) -> Vec<&str> {
        jobs.iter()
            .map(|j| j.request.streams[0].stream_id.as_str())
            .collect()
    }

    #[test]
    fn a_batch_holds_one_append_per_stream_and_command_and_keeps_the_order() {
        let twice = Uuid::now_v7();
        let mut waiting: VecDeque<Job> = [
            job("case-a", Uuid::now_v7(), 10),
            job("case-b", twice, 10),
            job("case-a", Uuid::now_v7(), 10),
            job("case-c", twice, 10),
            job("case-d", Uuid::now_v7(), 10),
        ]
        .into_iter()
        .collect();
        let batch = take_batch(&mut waiting);
        assert_eq!(streams(&batch), ["case-a", "case-b", "case-d"]);
        let rest: Vec<Job> = waiting.drain(..).collect();
        assert_eq!(
            streams(&rest),
            ["case-a", "case-c"],
            "the others wait, in order"
        );
    }

    #[test]
    fn a_batch_stops_at_its_size_and_payload_bounds() {
        let mut waiting: VecDeque<Job> = (0..MAX_BATCH + 5)
            .map(|n| job(&format!("case-n{n}"), Uuid::now_v7(), 1))
            .collect();
        assert_eq!(take_batch(&mut waiting).len(), MAX_BATCH);
        assert_eq!(waiting.len(), 5);

        let big = MAX_BATCH_BYTES / 2 + 1;
        let mut waiting: VecDeque<Job> = [
            job("case-x", Uuid::now_v7(), big),
            job("case-y", Uuid::now_v7(), big),
            job("case-z", Uuid::now_v7(), 100),
        ]
        .into_iter()
        .collect();
        assert_eq!(streams(&take_batch(&mut waiting)), ["case-x", "case-z"]);
        let huge = MAX_BATCH_BYTES * 2;
        let mut waiting: VecDeque<Job> =
            [job("case-h", Uuid::now_v7(), huge)].into_iter().collect();
        assert_eq!(
            take_batch(&mut waiting).len(),
            1,
            "an append larger than the bound goes alone"
        );
    }
}
