//! The SQLite backend's [analytics indexes](crate::analytics_index): one per customer, loaded in
//! the background on the customer's first analytics request (answers come from SQL until it is
//! ready) and brought up to date from the event log before each answer.
//!
//! SQLite has one writer, so the log grows in sequence order as readers see it: the entries
//! after the index's last one are exactly the changes it has not applied. They and the rows of
//! the faults they name are read in one read transaction, one snapshot, so the index moves from
//! one committed state of the database to a later one and never holds half a write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::analytics_index::{CustomerIndex, IndexRow};
use crate::db::sqlite::ReadHandle;
use crate::db::{BoxFuture, Conn, Read, Row, job};
use crate::error::StoreResult;
use crate::sql::{Sql, query};

/// Log entries read per statement while catching up.
const LOG_PAGE: i64 = 10_000;
/// Faults re-read per statement while catching up.
const ROWS_PER_STATEMENT: usize = 500;
/// Faults read per statement while loading.
const LOAD_PAGE: i64 = 4_000;
/// A customer's index unused this long is dropped (and loaded again on its next use): an
/// open dashboard asks for its chart every minute, so only customers nobody looks at go.
const DROP_UNUSED_AFTER: Duration = Duration::from_secs(15 * 60);

/// After a load failed, how long answers come from SQL before the next load is tried.
const RETRY_LOAD_AFTER: Duration = Duration::from_secs(60);

/// The customers' indexes, each behind its own lock: one customer's load does not hold up
/// another's answers.
///
/// Lock order: a customer's index lock, then a connection of the reader pool. A load holds the
/// lock while it reads, so an answer that took a connection first and then waited for the lock
/// could leave the load without one.
pub(crate) struct AnalyticsIndexes {
    reader: ReadHandle,
    customers: Mutex<HashMap<String, Arc<Slot>>>,
    /// The clock of [`Slot::used`] and [`Slot::failed`].
    epoch: Instant,
}

/// One customer's index: `None` until loaded.
#[derive(Default)]
struct Slot {
    index: Arc<tokio::sync::Mutex<Option<CustomerIndex>>>,
    /// A load is running: answers do not wait for it.
    loading: AtomicBool,
    /// When it was last asked for, in milliseconds since the epoch of its [`AnalyticsIndexes`].
    used: AtomicU64,
    /// When a load last failed, likewise (0: never).
    failed: AtomicU64,
}

/// A customer's loaded index, locked until dropped.
type LockedIndex = OwnedMappedMutexGuard<Option<CustomerIndex>, CustomerIndex>;

impl AnalyticsIndexes {
    pub(crate) fn new(reader: ReadHandle) -> AnalyticsIndexes {
        AnalyticsIndexes { reader, customers: Mutex::default(), epoch: Instant::now() }
    }

    fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// The customer's slot, marked used now; the indexes of customers unused for
    /// [`DROP_UNUSED_AFTER`] are dropped on the way.
    fn slot(&self, customer_id: &str) -> Arc<Slot> {
        let now = self.now();
        let mut customers = self.customers.lock().unwrap_or_else(|e| e.into_inner());
        customers.retain(|_, slot| {
            slot.loading.load(Ordering::Acquire)
                || now.saturating_sub(slot.used.load(Ordering::Relaxed))
                    < DROP_UNUSED_AFTER.as_millis() as u64
        });
        let slot = customers.entry(customer_id.to_owned()).or_default().clone();
        slot.used.store(now, Ordering::Relaxed);
        slot
    }

    /// `work` on the customer's index, brought up to date first, and on a connection in the
    /// same snapshot; `None` while the index is not loaded (or could not be brought up to
    /// date: SQL answers then).
    pub(crate) async fn answer<T, F>(&self, customer_id: &str, work: F) -> StoreResult<Option<T>>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn, &'c CustomerIndex) -> BoxFuture<'c, StoreResult<T>>
            + Send
            + 'static,
    {
        let Some(mut index) = self.lock(customer_id).await else { return Ok(None) };
        let customer_id = customer_id.to_owned();
        let answer = job(move |c| {
            Box::pin(async move {
                if let Err(err) = catch_up(c, &mut index, &customer_id).await {
                    tracing::warn!(customer_id, error = %err, "analytics index not brought up to date; answering by SQL");
                    return Ok(None);
                }
                work(c, &index).await.map(Some)
            })
        });
        self.reader.read(Read::Snapshot, answer).await
    }

    /// The customer's index, locked (brought up to date with [`catch_up`] in a read
    /// transaction begun after this); `None` while it is not loaded, in which case a
    /// load starts in the background unless one runs or the last failed less than
    /// [`RETRY_LOAD_AFTER`] ago.
    async fn lock(&self, customer_id: &str) -> Option<LockedIndex> {
        let slot = self.slot(customer_id);
        if slot.loading.load(Ordering::Acquire) {
            return None;
        }
        let index = slot.index.clone().lock_owned().await;
        match OwnedMutexGuard::try_map(index, Option::as_mut) {
            Ok(loaded) => Some(loaded),
            Err(unloaded) => {
                drop(unloaded);
                let failed = slot.failed.load(Ordering::Relaxed);
                let retry = failed == 0 || self.now() - failed >= RETRY_LOAD_AFTER.as_millis() as u64;
                if retry && !slot.loading.swap(true, Ordering::AcqRel) {
                    let (reader, customer_id, now) =
                        (self.reader.clone(), customer_id.to_owned(), self.now());
                    tokio::spawn(async move {
                        if let Err(err) = load_into(&reader, &slot, &customer_id, now).await {
                            tracing::warn!(customer_id, error = %err, "analytics index not loaded; answering by SQL");
                        }
                    });
                }
                None
            }
        }
    }

    /// Load the customer's index now, unless it is loaded (or loading) already.
    pub(crate) async fn load(&self, customer_id: &str) -> StoreResult<()> {
        let slot = self.slot(customer_id);
        if slot.index.lock().await.is_some() || slot.loading.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        load_into(&self.reader, &slot, customer_id, self.now()).await
    }
}

/// Load the customer's whole index into `slot`, whose `loading` flag the caller set; it is
/// cleared when this ends, however it ends (also when the caller drops it midway). A failure
/// is noted as at `now`.
async fn load_into(reader: &ReadHandle, slot: &Slot, customer_id: &str, now: u64) -> StoreResult<()> {
    struct Loading<'a>(&'a AtomicBool);
    impl Drop for Loading<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _loading = Loading(&slot.loading);
    let mut index = slot.index.lock().await;
    match read_index(reader, customer_id).await {
        Ok(loaded) => {
            *index = Some(loaded);
            Ok(())
        }
        Err(err) => {
            slot.failed.store(now, Ordering::Relaxed);
            Err(err)
        }
    }
}

/// Every fault of the customer, read in one snapshot, with the log position it is current at.
async fn read_index(reader: &ReadHandle, customer_id: &str) -> StoreResult<CustomerIndex> {
    let customer_id = customer_id.to_owned();
    reader
        .read(Read::Snapshot, job(move |c| Box::pin(async move { read_index_in(c, &customer_id).await })))
        .await
}

async fn read_index_in(c: &mut dyn Conn, customer_id: &str) -> StoreResult<CustomerIndex> {
    let started = std::time::Instant::now();
    let mut index = CustomerIndex::default();
    index.applied_seq = c.scalar(&query("SELECT COALESCE(MAX(seq), 0) FROM fault_events")).await?;
    let (mut before_created, mut before_id) = (i64::MAX, String::new());
    loop {
        // One range of `faults_by_customer`, newest first: a load reads the customer's faults
        // only.
        let page = query(format!(
            "SELECT {INDEX_COLUMNS} FROM faults INDEXED BY faults_by_customer WHERE customer_id = $1 \
             AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .arg(customer_id)
        .arg(before_created)
        .arg(before_id.as_str())
        .arg(LOAD_PAGE);
        let mut count = 0;
        let mut last = None;
        c.for_each(&page, &mut |row| {
            let row = index_row(row)?;
            index.upsert(&row);
            count += 1;
            last = Some((row.created_at, row.id.to_owned()));
            Ok(())
        })
        .await?;
        let Some(last) = last else { break };
        (before_created, before_id) = last;
        if count < LOAD_PAGE {
            break;
        }
    }
    index.compact();
    tracing::info!(
        customer_id,
        faults = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "analytics index loaded"
    );
    Ok(index)
}

/// The columns of [`IndexRow`], in the order of its fields and of [`index_row`].
const INDEX_COLUMNS: &str = "id, created_at, resolved_at, status, severity, type, resource_id, site_id, \
    microservice_id, resource_ancestry_path, message, cause";

/// An [`IndexRow`] of a row of [`INDEX_COLUMNS`].
fn index_row<'r>(row: &'r dyn Row) -> StoreResult<IndexRow<'r>> {
    let text = |i: usize| -> StoreResult<&'r str> {
        row.text(i)?
            .ok_or_else(|| crate::StoreError::Corrupt(format!("analytics index row: column {i} is NULL")))
    };
    Ok(IndexRow {
        id: text(0)?,
        created_at: row.int(1)?.unwrap_or_default(),
        resolved_at: row.int(2)?,
        status: text(3)?,
        severity: text(4)?,
        fault_type: text(5)?,
        resource_id: text(6)?,
        site_id: row.text(7)?,
        microservice_id: text(8)?,
        resource_ancestry_path: text(9)?,
        message: text(10)?,
        cause: text(11)?,
    })
}

/// An [`IndexRow`]'s values, owned.
type OwnedRow = (
    String,
    i64,
    Option<i64>,
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
);

fn borrowed(row: &OwnedRow) -> IndexRow<'_> {
    IndexRow {
        id: &row.0,
        created_at: row.1,
        resolved_at: row.2,
        status: &row.3,
        severity: &row.4,
        fault_type: &row.5,
        resource_id: &row.6,
        site_id: row.7.as_deref(),
        microservice_id: &row.8,
        resource_ancestry_path: &row.9,
        message: &row.10,
        cause: &row.11,
    }
}

/// Apply the customer's log entries after the index's position, re-reading the faults they
/// name, in the snapshot of the caller's read transaction.
async fn catch_up(c: &mut dyn Conn, index: &mut CustomerIndex, customer_id: &str) -> StoreResult<()> {
    loop {
        let log = query(
            "SELECT seq, fault_id FROM fault_events WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .arg(customer_id)
        .arg(index.applied_seq)
        .arg(LOG_PAGE);
        let entries: Vec<(i64, String)> = c.fetch_all(&log).await?;
        let Some(&(last, _)) = entries.last() else { return Ok(()) };
        let page_full = entries.len() as i64 == LOG_PAGE;
        let mut changed: Vec<String> = entries.into_iter().map(|(_, id)| id).collect();
        changed.sort_unstable();
        changed.dedup();
        let mut rows: Vec<OwnedRow> = Vec::new();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let customer = sql.text(customer_id);
            let ids = sql.list(chunk.iter().cloned());
            sql.text = format!(
                "SELECT {INDEX_COLUMNS} FROM faults WHERE customer_id = {customer} AND id IN ({ids})"
            );
            rows.extend(c.fetch_all::<OwnedRow>(&sql).await?);
        }
        let current: Vec<IndexRow<'_>> = rows.iter().map(borrowed).collect();
        index.apply(&changed, &current, last);
        if !page_full {
            return Ok(());
        }
    }
}
