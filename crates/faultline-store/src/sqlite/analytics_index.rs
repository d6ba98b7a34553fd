//! The SQLite backend's [analytics index](crate::analytics_index): one per customer, loaded in
//! the background on the customer's first analytics request (answers come from SQL until it is
//! ready) and brought up to date from the event log before each answer.
//!
//! SQLite has one writer, so the log grows in sequence order as readers see it: the entries
//! after the index's last one are exactly the changes it has not applied. They and the rows of
//! the faults they name are read in one read transaction, one snapshot, so the index moves from
//! one committed state of the database to a later one and never holds half a write.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::{SqliteConnection, SqlitePool};
use tokio::sync::OwnedMutexGuard;

use crate::analytics_index::{CustomerIndex, INDEX_COLUMNS, IndexRow, IndexTuple};
use crate::error::{StoreError, StoreResult};
use crate::sql::{Sql, bind_positional};

/// Log entries read per statement while catching up.
const LOG_PAGE: i64 = 10_000;
/// Faults re-read per statement while catching up.
const ROWS_PER_STATEMENT: usize = 500;
/// Faults read per statement while loading.
const LOAD_PAGE: i64 = 4_000;

/// The customers' indexes, each behind its own lock: one customer's load does not hold up
/// another's answers.
pub(super) struct AnalyticsIndexes {
    reader: SqlitePool,
    customers: Mutex<HashMap<String, Arc<Slot>>>,
}

/// One customer's index: `None` until loaded.
#[derive(Default)]
struct Slot {
    index: Arc<tokio::sync::Mutex<Option<CustomerIndex>>>,
    /// A load is running: answers do not wait for it.
    loading: AtomicBool,
}

/// A customer's index, current as of the moment it was locked, held until dropped.
pub(super) type CurrentIndex = OwnedMutexGuard<Option<CustomerIndex>>;

impl AnalyticsIndexes {
    pub(super) fn new(reader: SqlitePool) -> AnalyticsIndexes {
        AnalyticsIndexes { reader, customers: Mutex::default() }
    }

    fn slot(&self, customer_id: &str) -> Arc<Slot> {
        let mut customers = self.customers.lock().unwrap_or_else(|e| e.into_inner());
        customers.entry(customer_id.to_owned()).or_default().clone()
    }

    /// The customer's index brought up to date in the snapshot of `tx`, a read transaction of
    /// the caller's (writes that committed before its first read are in it); `None` while the
    /// index is being loaded, in which case a load is started if none runs.
    pub(super) async fn current(
        &self,
        tx: &mut SqliteConnection,
        customer_id: &str,
    ) -> StoreResult<Option<CurrentIndex>> {
        let slot = self.slot(customer_id);
        if slot.loading.load(Ordering::Acquire) {
            return Ok(None);
        }
        let mut index = slot.index.clone().lock_owned().await;
        let Some(current) = index.as_mut() else {
            if !slot.loading.swap(true, Ordering::AcqRel) {
                let (reader, customer_id) = (self.reader.clone(), customer_id.to_owned());
                tokio::spawn(async move {
                    if let Err(err) = load_into(&reader, &slot, &customer_id).await {
                        tracing::warn!(customer_id, error = %err, "analytics index not loaded; answering by SQL");
                    }
                });
            }
            return Ok(None);
        };
        catch_up(tx, current, customer_id).await?;
        Ok(Some(index))
    }

    /// Load the customer's index now, unless it is loaded (or loading) already.
    pub(super) async fn load(&self, customer_id: &str) -> StoreResult<()> {
        let slot = self.slot(customer_id);
        if slot.index.lock().await.is_some() || slot.loading.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        load_into(&self.reader, &slot, customer_id).await
    }
}

/// Load the customer's whole index into `slot` (whose `loading` flag the caller set).
async fn load_into(reader: &SqlitePool, slot: &Slot, customer_id: &str) -> StoreResult<()> {
    let mut index = slot.index.lock().await;
    let loaded = read_index(reader, customer_id).await;
    slot.loading.store(false, Ordering::Release);
    *index = Some(loaded?);
    Ok(())
}

/// Every fault of the customer, read in one snapshot, with the log position it is current at.
///
/// Rows come a page at a time, each page one string (`group_concat`) of length-prefixed
/// fields: the driver's cost is per row (a hand-off between threads and an allocation per
/// column), so a million rows read one by one took 10-11 s, against about 2 s this way.
async fn read_index(reader: &SqlitePool, customer_id: &str) -> StoreResult<CustomerIndex> {
    let started = std::time::Instant::now();
    let mut tx = reader.begin().await?;
    let mut index = CustomerIndex::default();
    index.applied_seq =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM fault_events").fetch_one(&mut *tx).await?;
    let mut after = 0i64;
    loop {
        let page: (Option<i64>, i64, Option<String>) = sqlx::query_as(PACKED_PAGE)
            .bind(customer_id)
            .bind(after)
            .bind(LOAD_PAGE)
            .fetch_one(&mut *tx)
            .await?;
        let (Some(last), count, Some(packed)) = page else { break };
        let mut rest = packed.as_str();
        for _ in 0..count {
            let row =
                unpack(&mut rest).ok_or_else(|| StoreError::Corrupt("analytics index page".to_owned()))?;
            index.upsert(&row);
        }
        after = last;
    }
    tx.commit().await?;
    tracing::info!(
        customer_id,
        faults = index.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "analytics index loaded"
    );
    Ok(index)
}

/// A page of a customer's faults after rowid `$2`: the last rowid, the row count, and the rows
/// as one string, each field of [`INDEX_COLUMNS`] in order: a text as its length in bytes, `:`
/// and the text (`-` for null), an integer in decimal followed by `,` (nothing for null).
const PACKED_PAGE: &str = "SELECT MAX(r), COUNT(*), group_concat(x, '') FROM (SELECT rowid AS r, \
     octet_length(id) || ':' || id || created_at || ',' || COALESCE(resolved_at, '') || ',' || \
     octet_length(status) || ':' || status || octet_length(severity) || ':' || severity || \
     octet_length(type) || ':' || type || octet_length(resource_id) || ':' || resource_id || \
     COALESCE(octet_length(site_id) || ':' || site_id, '-') || \
     octet_length(microservice_id) || ':' || microservice_id || \
     octet_length(resource_ancestry_path) || ':' || resource_ancestry_path || \
     octet_length(message) || ':' || message || octet_length(cause) || ':' || cause AS x \
     FROM faults NOT INDEXED WHERE customer_id = $1 AND rowid > $2 ORDER BY rowid LIMIT $3)";

/// The next row of a [`PACKED_PAGE`] string; `None` if it is malformed.
fn unpack<'a>(rest: &mut &'a str) -> Option<IndexRow<'a>> {
    fn text<'a>(rest: &mut &'a str) -> Option<&'a str> {
        let (length, tail) = rest.split_once(':')?;
        let length: usize = length.parse().ok()?;
        let value = tail.get(..length)?;
        *rest = tail.get(length..)?;
        Some(value)
    }
    fn optional_text<'a>(rest: &mut &'a str) -> Option<Option<&'a str>> {
        match rest.strip_prefix('-') {
            Some(tail) => {
                *rest = tail;
                Some(None)
            }
            None => text(rest).map(Some),
        }
    }
    fn integer(rest: &mut &str) -> Option<Option<i64>> {
        let (digits, tail) = rest.split_once(',')?;
        *rest = tail;
        if digits.is_empty() { Some(None) } else { digits.parse().ok().map(Some) }
    }
    Some(IndexRow {
        id: text(rest)?,
        created_at: integer(rest)??,
        resolved_at: integer(rest)?,
        status: text(rest)?,
        severity: text(rest)?,
        fault_type: text(rest)?,
        resource_id: text(rest)?,
        site_id: optional_text(rest)?,
        microservice_id: text(rest)?,
        resource_ancestry_path: text(rest)?,
        message: text(rest)?,
        cause: text(rest)?,
    })
}

/// Apply the customer's log entries after the index's position, re-reading the faults they
/// name, in the snapshot of `tx`.
async fn catch_up(
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
        let mut rows = Vec::new();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut sql = Sql::default();
            let customer = sql.text(customer_id);
            let ids = sql.list(chunk.iter().cloned());
            sql.text = format!(
                "SELECT {INDEX_COLUMNS} FROM faults WHERE customer_id = {customer} AND id IN ({ids})"
            );
            let read: Vec<IndexTuple> = bind_positional!(sqlx::query_as, sql).fetch_all(&mut *tx).await?;
            rows.extend(read);
        }
        let rows: Vec<IndexRow<'_>> = rows.iter().map(IndexRow::from).collect();
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
    fn packed_rows_read_back_whatever_their_text_holds() {
        let packed = "5:flt_a10,,10:unresolved4:HIGH4:site6:site_1-1:m6:site_14:down0:\
                      8:flt_\u{e9}:b-20,30,8:resolved3:LOW9:wantunnel3:t,1-0:6:s|\u{e9}|t1:x3:1:2";
        let mut rest = packed;
        let first = unpack(&mut rest).unwrap();
        assert_eq!((first.id, first.created_at, first.resolved_at), ("flt_a", 10, None));
        assert_eq!(first.site_id, None);
        assert_eq!(first.resource_ancestry_path, "site_1");
        let second = unpack(&mut rest).unwrap();
        assert_eq!((second.id, second.created_at, second.resolved_at), ("flt_\u{e9}:b", -20, Some(30)));
        assert_eq!((second.resource_id, second.site_id), ("t,1", None));
        assert_eq!((second.microservice_id, second.resource_ancestry_path), ("", "s|\u{e9}|t"));
        assert_eq!((first.message, first.cause, second.message, second.cause), ("down", "", "x", "1:2"));
        assert!(rest.is_empty());
        assert!(unpack(&mut "3:ab").is_none());
    }
}
