//! Event batches that arrive together share one write transaction (SQLite only).
//!
//! SQLite writes every page a transaction dirtied to the write-ahead log at its commit, and the
//! pages a batch dirties are largely the same ones the next batch dirties (the newest end of
//! the indexes by time, the event log's tail), so the more events a transaction holds, the less
//! is written to the log for each: batches waiting for the writer join the transaction of the
//! batch before them, up to [`MAX_GROUP_EVENTS`] events.
//!
//! - A batch runs inside a savepoint of the shared transaction: a batch that fails, or is an
//!   `Idempotency-Key` replay, is rolled back alone.
//! - A batch that wrote hands the transaction on when another batch is waiting for it, and
//!   otherwise commits it. Every batch is acknowledged only after the commit of its group, and
//!   a failed commit fails every batch of the group: nothing is acknowledged that is not
//!   durable, and a batch is never half applied.
//! - Writes run to completion (the server runs them in their own tasks), so a member is not
//!   cancelled halfway. If one panics anyway, or its future is dropped, while it holds the
//!   transaction, a guard rolls the whole group back and fails its batches at once (the
//!   transaction holds the one writer connection: it must not wait for a next batch).

use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Mutex, MutexGuard, watch};

use super::{Idempotency, SqlitePool, apply_events_in};
use crate::error::{StoreError, StoreResult};
use crate::model::{EventResult, Written};
use faultline_core::ingest::IngestEvent;

/// Events written in one transaction at most (a group of four batches of 1,000). It bounds
/// the pages a transaction holds in the writer's cache and how long other writers wait.
const MAX_GROUP_EVENTS: usize = 4_000;

/// How a group ended: committed, or the reason none of its batches is written.
type Settled = Option<Result<(), String>>;

/// The open group, if any, and the batches waiting to join it.
#[derive(Default)]
pub(super) struct IngestGroups {
    open: Mutex<OpenGroup>,
    /// Batches waiting for `open`'s lock.
    waiting: AtomicUsize,
}

struct OpenGroup {
    tx: Option<sqlx::Transaction<'static, sqlx::Sqlite>>,
    batches: usize,
    events: usize,
    /// Where the group's end is announced to its members.
    settled: watch::Sender<Settled>,
}

impl Default for OpenGroup {
    fn default() -> OpenGroup {
        OpenGroup { tx: None, batches: 0, events: 0, settled: watch::channel(None).0 }
    }
}

/// Counts a batch as waiting for the group's lock until dropped.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Waiting<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Waiting(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The open group, held by one batch. Dropped while `armed` (a panic, or a dropped future,
/// between taking the transaction and handing it on or ending the group), it rolls the group
/// back and tells its members.
struct Holder<'a> {
    group: MutexGuard<'a, OpenGroup>,
    armed: bool,
}

impl Drop for Holder<'_> {
    fn drop(&mut self) {
        if self.armed {
            end(&mut self.group, Err("a batch of its write group was interrupted".to_owned()));
        }
    }
}

impl IngestGroups {
    /// `apply_events` for one batch, in the group transaction.
    pub(super) async fn apply(
        &self,
        writer: &SqlitePool,
        customer_id: &str,
        events: &[IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>> {
        let waiting = Waiting::new(&self.waiting);
        let mut holder = Holder { group: self.open.lock().await, armed: false };
        drop(waiting);
        if holder.group.tx.is_none() {
            holder.group.tx = Some(writer.begin_with("BEGIN IMMEDIATE").await?);
        }
        let mut settled = holder.group.settled.subscribe();
        holder.armed = true;
        let outcome = {
            let tx = holder.group.tx.as_mut().expect("opened above");
            in_savepoint(tx, customer_id, events, retention_seconds, actor, idem).await
        };
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(broken) => {
                // The savepoint itself failed: the transaction is in no known state.
                holder.armed = false;
                end(&mut holder.group, Err(broken.to_string()));
                return Err(broken);
            }
        };
        holder.group.batches += 1;
        holder.group.events += events.len();
        hand_on_or_commit(&mut holder.group, &self.waiting).await;
        holder.armed = false;
        drop(holder);
        // Any other error of the batch itself was rolled back to its savepoint: answer it now.
        // A replay, or a refusal of a key reused with another body, may rest on a claim by an
        // earlier batch of this very group, so they wait for the commit like a write.
        if let Err(err) = &outcome
            && !matches!(err, StoreError::IdempotencyKeyReused)
        {
            return outcome;
        }
        loop {
            if let Some(end) = settled.borrow_and_update().clone() {
                return end.map_err(StoreError::NotWritten).and(outcome);
            }
            if settled.changed().await.is_err() {
                return Err(StoreError::NotWritten("its write group ended without committing".to_owned()));
            }
        }
    }
}

/// The batch inside a savepoint of `tx`: `Ok(its outcome)` once the savepoint is released or
/// rolled back, `Err` when the savepoint could not be.
async fn in_savepoint(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    customer_id: &str,
    events: &[IngestEvent],
    retention_seconds: i64,
    actor: &str,
    idem: Option<&Idempotency<'_, [EventResult]>>,
) -> StoreResult<StoreResult<Written<Vec<EventResult>>>> {
    sqlx::query("SAVEPOINT ingest_group_batch").execute(&mut **tx).await?;
    let outcome = apply_events_in(tx, customer_id, events, retention_seconds, actor, idem).await;
    // A replay wrote nothing to keep either.
    if !matches!(outcome, Ok(Written::Done(_))) {
        sqlx::query("ROLLBACK TO SAVEPOINT ingest_group_batch").execute(&mut **tx).await?;
    }
    sqlx::query("RELEASE SAVEPOINT ingest_group_batch").execute(&mut **tx).await?;
    Ok(outcome)
}

/// Leave the transaction open for a waiting batch, or commit it.
async fn hand_on_or_commit(group: &mut OpenGroup, waiting: &AtomicUsize) {
    if waiting.load(Ordering::SeqCst) > 0 && group.events < MAX_GROUP_EVENTS {
        return;
    }
    let Some(tx) = group.tx.take() else { return };
    let committed = tx.commit().await.map_err(|err| err.to_string());
    tracing::debug!(
        batches = group.batches,
        events = group.events,
        ok = committed.is_ok(),
        "ingest write group ended"
    );
    end(group, committed);
}

/// End the group: roll back its transaction if still open, tell its members how it ended, and
/// make room for the next group.
fn end(group: &mut OpenGroup, how: Result<(), String>) {
    group.tx = None; // dropped: rolled back
    group.batches = 0;
    group.events = 0;
    let settled = std::mem::replace(&mut group.settled, watch::channel(None).0);
    settled.send_replace(Some(how));
}
