//! Faults.

use async_trait::async_trait;
use faultline_core::fault::{Fault, FaultSink};

use crate::{
    BulkFaults, EventResult, FaultQuery, Idempotency, Resolution, StoreResult, TopQuery, TopResource, Written,
};

/// Faults: written one by one, in bulk or by ingest events; read one by one or a page at a time;
/// resolved, deleted and expired.
#[async_trait]
pub trait Faults: Send + Sync {
    /// Store new faults (their ancestry elements, and a `created` event each, by `actor`) in
    /// one transaction, with `idem`'s key when given.
    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<Written<()>>;

    /// Insert a long run of new faults (`faultline demo`): every chunk `chunks` yields, in
    /// order, as [`Store::insert_faults`] would (the same rows, the same `created` events),
    /// calling `inserted` with each chunk's size once it is written, until [`BulkFaults::End`].
    /// A channel that closes before `End` (its producer failed) fails the load. All of it is
    /// committed when this returns `Ok`; on an error, what is committed depends on the backend
    /// (SQLite: nothing, see `sqlite::bulk_load`; PostgreSQL: the chunks before the failure).
    async fn bulk_insert_faults(
        &self,
        chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
        actor: &str,
        inserted: Box<dyn FnMut(usize) + Send>,
    ) -> StoreResult<()> {
        crate::insert_chunk_by_chunk(self, chunks, actor, inserted).await
    }

    /// One of the customer's faults; another customer's id reads as missing.
    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>>;

    /// Delete one of the customer's faults for good; `false` when there was none. Its history
    /// stays in the event log, with a `deleted` event by `actor`.
    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool>;

    /// Resolve a fault as `resolution` says (when, its new `ttl`, an optional comment), in one
    /// transaction. Resolving a resolved fault changes nothing (its comment is not added).
    /// `None` when the customer has no such fault.
    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>>;

    /// Apply a batch of ingest events in order, in one transaction: a trigger deduplicates
    /// onto the open fault of its (resource, type) or opens one; a resolve closes it at the
    /// event's time. A unique index (not a read-then-write check) keeps a second fault from
    /// opening, even under concurrent batches on many replicas. `retention_seconds` sets the
    /// `ttl` of resolved faults.
    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>>;

    /// Delete up to `limit` faults whose `ttl` (Unix seconds) is before `now_seconds`, with an
    /// `expired` event each, in one short transaction; returns how many went. Safe to run on
    /// several replicas at once.
    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize>;

    /// A page of the customer's faults matching the query, newest first.
    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>>;

    /// [`Store::list_faults`], each fault given to `sink` as it is read (newest first), so a
    /// backend that can lend its rows skips building a [`Fault`] of each. On an error the sink
    /// may hold part of the page.
    async fn list_faults_into(
        &self,
        customer_id: &str,
        query: &FaultQuery<'_>,
        sink: &mut dyn FaultSink,
    ) -> StoreResult<()> {
        for fault in self.list_faults(customer_id, query).await? {
            sink.fault(&fault.as_ref());
        }
        Ok(())
    }

    /// The resources with the most faults created since `query.since` (within its scope), at
    /// most `query.limit`, most faults first, ties by resource id in byte order; each with its
    /// `query.sample` newest faults in the window. Counts and samples are read from one snapshot,
    /// so they agree. The count reads one index range of the window, never the whole history.
    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>>;
}
