//! Faults.

use async_trait::async_trait;
use faultline_core::fault::{Fault, FaultSink};

use std::sync::Arc;

use faultline_core::filter::FaultFilter;

use crate::analytics::GroupBy;
use crate::db::{Conn, Database, Read};
use crate::idempotency::{Claim, claim_key, fulfil_key, release_key};
use crate::ingest::apply_events_in;
use crate::rows;
use crate::sql::{self, query};
use crate::store::{
    SqlStore, append_event, derived_columns, fault_exists, fault_select, insert_comment, load_fault,
    read_faults, retry_conflicts,
};
use crate::{
    BulkFaults, EventResult, FaultQuery, Idempotency, Resolution, StoreError, StoreResult, TopQuery,
    TopResource, Written,
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

/// Pages of at most this many faults are short reads (on SQLite, on the caller's thread);
/// longer ones (exports) and free-text searches (which may read a long history to fill a page)
/// are long reads.
const MAX_SHORT_PAGE: u32 = 101;

#[async_trait]
impl<D: Database> Faults for SqlStore<D> {
    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<Written<()>> {
        let statements = sql::insert_faults(faults, actor, D::BACKEND);
        let claim = idem.map(Claim::of);
        // The answer renders the faults; they are needed only with a key.
        let faults: Vec<Fault> = if claim.is_some() { faults.to_vec() } else { Vec::new() };
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                for statement in &statements {
                    c.execute(statement).await.map_err(|e| e.on_constraint("fault"))?;
                }
                if let Some(claim) = &claim {
                    fulfil_key(c, claim, faults.as_slice()).await?;
                }
                Ok(Written::Done(()))
            })
        })
        .await
    }

    async fn bulk_insert_faults(
        &self,
        chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
        actor: &str,
        mut inserted: Box<dyn FnMut(usize) + Send>,
    ) -> StoreResult<()> {
        let Some(file) = self.db.bulk_load_file() else {
            return crate::insert_chunk_by_chunk(self, chunks, actor, inserted).await;
        };
        let actor = actor.to_owned();
        tokio::task::spawn_blocking(move || crate::db::bulk_load::load(&file, chunks, &actor, &mut *inserted))
            .await
            .map_err(|e| StoreError::NotWritten(format!("the bulk load failed: {e}")))?
    }

    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>> {
        let select = fault_select(D::BACKEND, customer_id, fault_id);
        self.read(Read::Short, move |c| Box::pin(async move { Ok(read_faults(c, &select).await?.pop()) }))
            .await
    }

    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool> {
        let (customer_id, fault_id, actor) = (customer_id.to_owned(), fault_id.to_owned(), actor.to_owned());
        self.write(move |c| {
            Box::pin(async move {
                let delete = query(rows::DELETE_FAULT).arg(&fault_id).arg(&customer_id);
                let Some(removed) = c.fetch_optional::<rows::RemovedRow>(&delete).await? else {
                    return Ok(false);
                };
                c.execute(&sql::delete_ancestors(&removed)).await?;
                append_event(c, &customer_id, &fault_id, "deleted", &actor, &rows::removed_detail(&removed))
                    .await?;
                Ok(true)
            })
        })
        .await
    }

    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>> {
        let Resolution { at, ttl, comment } = resolution;
        let (customer_id, fault_id, actor) = (customer_id.to_owned(), fault_id.to_owned(), actor.to_owned());
        let (comment, claim) = (comment.cloned(), idem.map(Claim::of));
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                if !fault_exists(c, &customer_id, &fault_id).await? {
                    if let Some(claim) = &claim {
                        release_key(c, claim).await?;
                    }
                    return Ok(Written::Done(None));
                }
                let resolve = query(rows::RESOLVE_FAULT).arg(&fault_id).arg(&customer_id).arg(at).arg(ttl);
                // Resolving a resolved fault changes nothing, not even by adding its comment again.
                if c.execute(&resolve).await? == 1 {
                    if let Some(comment) = &comment {
                        insert_comment(c, &customer_id, &fault_id, comment, &actor).await?;
                    }
                    append_event(c, &customer_id, &fault_id, "resolved", &actor, "{}").await?;
                }
                let fault = load_fault(c, &customer_id, &fault_id).await?;
                if let (Some(claim), Some(fault)) = (&claim, &fault) {
                    fulfil_key(c, claim, fault).await?;
                }
                Ok(Written::Done(fault))
            })
        })
        .await
    }

    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>> {
        let (customer_id, actor) = (Arc::<str>::from(customer_id), Arc::<str>::from(actor));
        let (events, claim) = (Arc::<[_]>::from(events), idem.map(|i| Arc::new(Claim::of(i))));
        retry_conflicts("ingest batch", || {
            let (customer_id, actor, events, claim) =
                (customer_id.clone(), actor.clone(), events.clone(), claim.clone());
            self.write(move |c| {
                Box::pin(async move {
                    apply_events_in(c, &customer_id, &events, retention_seconds, &actor, claim.as_deref())
                        .await
                })
            })
        })
        .await
    }

    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize> {
        self.write(move |c| {
            Box::pin(async move {
                let gone: Vec<rows::RemovedRow> =
                    c.fetch_all(&query(rows::SWEEP_EXPIRED).arg(now_seconds).arg(limit)).await?;
                for removed in &gone {
                    c.execute(&sql::delete_ancestors(removed)).await?;
                    let (fault_id, customer_id) = (&removed.0, &removed.1);
                    let detail = rows::removed_detail(removed);
                    append_event(c, customer_id, fault_id, "expired", "system", &detail).await?;
                }
                Ok(gone.len())
            })
        })
        .await
    }

    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>> {
        let select = sql::list_faults(customer_id, query, D::BACKEND, derived_columns(D::BACKEND));
        let how = if query.limit <= MAX_SHORT_PAGE && query.filter.text.is_none() {
            Read::Short
        } else {
            Read::Long
        };
        self.read(how, move |c| Box::pin(async move { read_faults(c, &select).await })).await
    }

    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>> {
        let owned = OwnedTopQuery::of(query);
        let customer = customer_id.to_owned();
        if let Some(indexes) = &self.analytics {
            let (owned, customer) = (owned.clone(), customer.clone());
            let answer = indexes
                .answer(customer_id, move |c, index| {
                    Box::pin(async move {
                        // The counts from the index as of this snapshot, the samples read in it.
                        let query = owned.query();
                        let counted = FaultFilter {
                            from: Some(query.since),
                            scope: query.scope.cloned(),
                            ..FaultFilter::default()
                        };
                        let counts = index.top_groups(&counted, GroupBy::Resource, query.limit, query.since);
                        with_samples(c, D::BACKEND, &customer, &query, counts).await
                    })
                })
                .await?;
            if let Some(answer) = answer {
                return Ok(answer);
            }
        }
        // One snapshot: counts and samples agree.
        self.read(Read::Snapshot, move |c| {
            Box::pin(async move {
                let query = owned.query();
                let counting = sql::top_resource_counts(&customer, &query, c.backend());
                let counts: Vec<(String, i64)> = c.fetch_all(&counting).await?;
                with_samples(c, D::BACKEND, &customer, &query, counts).await
            })
        })
        .await
    }
}

/// A [`TopQuery`] owned, for a job.
#[derive(Clone)]
struct OwnedTopQuery {
    since: i64,
    scope: Option<faultline_core::scope::TokenScope>,
    limit: u32,
    sample: u32,
}

impl OwnedTopQuery {
    fn of(query: &TopQuery<'_>) -> OwnedTopQuery {
        OwnedTopQuery {
            since: query.since,
            scope: query.scope.cloned(),
            limit: query.limit,
            sample: query.sample,
        }
    }

    fn query(&self) -> TopQuery<'_> {
        TopQuery { since: self.since, scope: self.scope.as_ref(), limit: self.limit, sample: self.sample }
    }
}

/// The ranked `counts` with each resource's newest faults, read on `c`.
async fn with_samples(
    c: &mut dyn Conn,
    backend: crate::Backend,
    customer_id: &str,
    query: &TopQuery<'_>,
    counts: Vec<(String, i64)>,
) -> StoreResult<Vec<TopResource>> {
    if query.sample == 0 || counts.is_empty() {
        return Ok(rows::top_resources(counts, Vec::new()));
    }
    let ranked: Vec<String> = counts.iter().map(|(resource_id, _)| resource_id.clone()).collect();
    let latest = sql::latest_faults_of(customer_id, query, &ranked, derived_columns(backend));
    let sampled = read_faults(c, &latest).await?;
    Ok(rows::top_resources(counts, sampled))
}
