//! The SQLite backend's [analytics index](crate::analytics_index): one per customer, loaded in
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

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::{OwnedMappedMutexGuard, OwnedMutexGuard};

use crate::analytics_index::{CustomerIndex, IndexRow};
use crate::error::{StoreError, StoreResult};
use crate::sql::{Param, Sql, bind_positional};

use super::packed::{self, Fields};
use crate::rows::Kind;

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
pub(super) struct AnalyticsIndexes {
    reader: SqlitePool,
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
pub(super) type LockedIndex = OwnedMappedMutexGuard<Option<CustomerIndex>, CustomerIndex>;

impl AnalyticsIndexes {
    pub(super) fn new(reader: SqlitePool) -> AnalyticsIndexes {
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

    /// The customer's index, locked (bring it up to date with [`catch_up`] in the caller's
    /// read transaction, begun after this); `None` while it is not loaded, in which case a
    /// load starts in the background unless one runs or the last failed less than
    /// [`RETRY_LOAD_AFTER`] ago.
    pub(super) async fn lock(&self, customer_id: &str) -> Option<LockedIndex> {
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
    pub(super) async fn load(&self, customer_id: &str) -> StoreResult<()> {
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
async fn load_into(reader: &SqlitePool, slot: &Slot, customer_id: &str, now: u64) -> StoreResult<()> {
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
///
/// Rows come a page at a time, each page one [packed](super::packed) string, so a page crosses
/// from sqlx's connection thread once instead of once per row.
async fn read_index(reader: &SqlitePool, customer_id: &str) -> StoreResult<CustomerIndex> {
    let started = std::time::Instant::now();
    let mut tx = reader.begin().await?;
    let mut index = CustomerIndex::default();
    index.applied_seq =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM fault_events").fetch_one(&mut *tx).await?;
    let (mut before_created, mut before_id) = (i64::MAX, String::new());
    loop {
        // One range of `faults_by_customer`, newest first: a load reads the customer's faults
        // only.
        let params = vec![
            Param::Text(customer_id.to_owned()),
            Param::Int(before_created),
            Param::Text(before_id.clone()),
            Param::Int(LOAD_PAGE),
        ];
        let page = Sql::new(
            "SELECT * FROM faults INDEXED BY faults_by_customer WHERE customer_id = $1 \
             AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4",
            params,
        );
        let (count, packed) = read_packed(&mut tx, page).await?;
        let rows = unpack(count, &packed)?;
        for row in &rows {
            index.upsert(row);
        }
        // The page comes in no set order: the next starts after its smallest key.
        let Some(last) = rows.iter().min_by_key(|row| (row.created_at, row.id)) else { break };
        let (created_at, id) = (last.created_at, last.id);
        (before_created, before_id) = (created_at, id.to_owned());
        if count < LOAD_PAGE {
            break;
        }
    }
    tx.commit().await?;
    index.compact();
    tracing::info!(
        customer_id,
        faults = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "analytics index loaded"
    );
    Ok(index)
}

/// The columns of [`IndexRow`], in the order of its fields and of [`unpack`].
const INDEX_FIELDS: [(&str, Kind); 12] = [
    ("id", Kind::Text),
    ("created_at", Kind::Integer),
    ("resolved_at", Kind::OptionalInteger),
    ("status", Kind::Text),
    ("severity", Kind::Text),
    ("type", Kind::Text),
    ("resource_id", Kind::Text),
    ("site_id", Kind::OptionalText),
    ("microservice_id", Kind::Text),
    ("resource_ancestry_path", Kind::Text),
    ("message", Kind::Text),
    ("cause", Kind::Text),
];

/// The [`INDEX_FIELDS`] of the faults `select` reads (a statement over `faults`), packed: their
/// count and text.
async fn read_packed(tx: &mut SqliteConnection, select: Sql) -> StoreResult<(i64, String)> {
    let statement = Sql::new(
        format!("SELECT {} FROM ({}) AS packed", packed::page_columns(&INDEX_FIELDS), select.text),
        select.params,
    );
    let (count, text): (i64, Option<String>) =
        bind_positional!(sqlx::query_as, statement).fetch_one(&mut *tx).await?;
    Ok((count, text.unwrap_or_default()))
}

/// The `count` rows of a [`read_packed`] text.
fn unpack(count: i64, text: &str) -> StoreResult<Vec<IndexRow<'_>>> {
    let corrupt = || StoreError::Corrupt("a packed page of the analytics index".to_owned());
    let mut fields = Fields(text);
    let rows =
        (0..count).map(|_| unpack_row(&mut fields).ok_or_else(corrupt)).collect::<StoreResult<Vec<_>>>()?;
    if fields.is_empty() { Ok(rows) } else { Err(corrupt()) }
}

/// The next row of packed [`INDEX_FIELDS`]; `None` if it is malformed.
fn unpack_row<'a>(fields: &mut Fields<'a>) -> Option<IndexRow<'a>> {
    Some(IndexRow {
        id: fields.text()?,
        created_at: fields.integer()?,
        resolved_at: fields.optional_integer()?,
        status: fields.text()?,
        severity: fields.text()?,
        fault_type: fields.text()?,
        resource_id: fields.text()?,
        site_id: fields.optional_text()?,
        microservice_id: fields.text()?,
        resource_ancestry_path: fields.text()?,
        message: fields.text()?,
        cause: fields.text()?,
    })
}

/// Apply the customer's log entries after the index's position, re-reading the faults they
/// name, in the snapshot of `tx`.
pub(super) async fn catch_up(
    tx: &mut SqliteConnection,
    index: &mut CustomerIndex,
    customer_id: &str,
) -> StoreResult<()> {
    loop {
        let entries: Vec<(i64, String)> = sqlx::query_as(
            "SELECT seq, fault_id FROM fault_events WHERE customer_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(customer_id)
        .bind(index.applied_seq)
        .bind(LOG_PAGE)
        .fetch_all(&mut *tx)
        .await?;
        let Some(&(last, _)) = entries.last() else { return Ok(()) };
        let page_full = entries.len() as i64 == LOG_PAGE;
        let mut changed: Vec<String> = entries.into_iter().map(|(_, id)| id).collect();
        changed.sort_unstable();
        changed.dedup();
        let mut pages = Vec::new();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let customer = sql.text(customer_id);
            let ids = sql.list(chunk.iter().cloned());
            sql.text = format!("SELECT * FROM faults WHERE customer_id = {customer} AND id IN ({ids})");
            pages.push(read_packed(tx, sql).await?);
        }
        let mut rows = Vec::new();
        for (count, text) in &pages {
            rows.extend(unpack(*count, text)?);
        }
        index.apply(&changed, &rows, last);
        if !page_full {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packed_index_row_reads_back() {
        let packed = "5:flt_a10,,10:unresolved4:HIGH4:site6:site_1-1:m6:site_14:down0:";
        let row = unpack(1, packed).unwrap().remove(0);
        assert_eq!((row.id, row.created_at, row.resolved_at, row.site_id), ("flt_a", 10, None, None));
        assert_eq!(
            (row.resource_id, row.microservice_id, row.message, row.cause),
            ("site_1", "m", "down", "")
        );
        assert!(unpack(1, "5:flt_a10,").is_err());
        assert!(unpack(0, packed).is_err(), "text left over");
    }
}
