//! The embedded backend: one SQLite file in WAL mode, one writer connection and a pool of
//! readers. Every write goes through the single writer, so writers queue in the pool instead
//! of failing with "database is locked", and write transactions start `IMMEDIATE`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Executor;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};

use crate::analytics::GroupBy;
use crate::analytics_index::CustomerIndex;
use crate::error::{DatabaseError, StoreError, StoreResult};
use crate::model::{
    AccessToken, ApiKey, ApiKeyWithHash, Customer, EventResult, FaultEvent, Horizon, Idempotency, Lease,
    LogRead, LoggedEvent, NewApiKey, SigningKey, TokenUse, TopResource, Written,
};
use crate::prelude::*;
use crate::rows::{self, ACCESS_TOKEN_COLUMNS, API_KEY_COLUMNS, CUSTOMER_COLUMNS, SIGNING_KEY_COLUMNS};
use crate::sql::{self, FaultQuery, Sql, TopQuery};
use crate::{Backend, Resolution};
use faultline_core::fault::{Fault, FaultSink};
use faultline_core::filter::FaultFilter;

mod analytics_index;
mod bulk_load;
mod checkpoint;
mod group_commit;

use checkpoint::checkpoint_in_background;
use group_commit::{Insert, InsertJob, MAX_GROUP, group_committer};
mod ingest_group;
mod inline_reads;
mod packed;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_foundation.sql")),
    (2, include_str!("migrations/0002_faults.sql")),
    (3, include_str!("migrations/0003_tokens.sql")),
    (4, include_str!("migrations/0004_lifecycle.sql")),
    (5, include_str!("migrations/0005_ingest.sql")),
    (6, include_str!("migrations/0006_idempotency.sql")),
    (7, include_str!("migrations/0007_heartbeats_and_stream.sql")),
    (8, include_str!("migrations/0008_ancestors_without_cascade.sql")),
    (9, include_str!("migrations/0009_ancestors_with_severity.sql")),
    (10, include_str!("migrations/0010_comment_counts.sql")),
    (11, include_str!("migrations/0011_fault_seq.sql")),
];

pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    /// New faults go to the group committer, which writes concurrent inserts in one
    /// transaction (each in its own savepoint) and acknowledges each after the commit.
    inserts: tokio::sync::mpsc::Sender<InsertJob>,
    /// Copies the write-ahead log into the database file, beside the writer.
    checkpointer: SqlitePool,
    /// Event batches that arrive together share a write transaction.
    ingest: ingest_group::IngestGroups,
    /// Analytics answered from memory (`None`: from SQL, for comparing the two).
    analytics: Option<analytics_index::AnalyticsIndexes>,
    /// Reads of one fault or a page run on the caller's thread (`None`: in-memory database).
    inline_reads: Option<inline_reads::InlineReads>,
    /// The database file (`None`: in-memory), for [`bulk_load`].
    file: Option<std::path::PathBuf>,
}

/// Pages of at most this many faults are read on the caller's thread ([`inline_reads`]); longer
/// ones (exports) through the reader pool.
const MAX_INLINE_ROWS: u32 = 101;

/// A page read packed (in no set order) in the list's order.
fn newest_first(faults: &mut [Fault]) {
    faults.sort_unstable_by(|a, b| (b.created_at, &b.id).cmp(&(a.created_at, &a.id)));
}

/// A `rusqlite` connection to the database file at `path` (inline reads, bulk loads), set up as
/// the store's sqlx connections are (`SqliteStore::open`), with its own busy timeout and page
/// cache (in KiB).
fn rusqlite_connection(
    path: &std::path::Path,
    flags: rusqlite::OpenFlags,
    busy_timeout: Duration,
    cache_kib: i64,
) -> rusqlite::Result<rusqlite::Connection> {
    let conn =
        rusqlite::Connection::open_with_flags(path, flags | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(busy_timeout)?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    Ok(conn)
}

// What the store's SQLite connections may hold in memory, set here for every connection (the
// memory model, and the measurements these were chosen by: docs/operations.md, "Memory").

/// How much of the database file each connection maps into memory (`PRAGMA mmap_size`): none.
/// Every connection maps the file on its own, so a mapped page counts in the process's resident
/// memory once for each connection that read it, and what is mapped grows with the file and is
/// never given back. Unmapped, a read copies its page from the kernel's page cache (shared, and
/// reclaimed under memory pressure) into the connection's page cache, which is bounded.
pub(super) const MMAP_SIZE: i64 = 0;

/// The writer's page cache, in KiB (`PRAGMA cache_size`): a write group's transaction keeps
/// every page it dirties here until it commits, and the next groups dirty largely the same
/// pages. Smaller, the ingest measured more CPU per event.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The page cache of each reader, in KiB: the pool's and the inline reads'. There are many of
/// them, and what a reader reads again and again (the upper levels of the B-trees) is small;
/// the rest comes from the kernel's page cache.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// The background checkpointer's page cache, in KiB: a checkpoint copies frames from the log
/// into the file through a buffer of its own, not through the page cache.
const CHECKPOINTER_CACHE_KIB: i64 = 1024;

impl SqliteStore {
    /// Open (creating if missing) the database file named by a `sqlite://PATH` URL.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // NORMAL in WAL mode: a committed transaction survives the process being killed;
            // only an operating-system crash or power loss can take the last commits back.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true)
            .pragma("temp_store", "memory")
            .pragma("cache_size", (-READER_CACHE_KIB).to_string())
            .pragma("mmap_size", MMAP_SIZE.to_string());
        // The writer does not checkpoint after its commits (the copy would run on the writer's
        // time, between its transactions); a connection of its own does, in the background, and
        // the writer only finishes what that one could not (`checkpoint_in_background`).
        // No `test_before_acquire`: an embedded database's connection cannot be lost, and the
        // ping sqlx sends on every acquire is a round trip to the connection's thread, as long
        // as the query itself. (sqlx still pings when a connection goes back to the pool, to
        // flush it; that is after the answer.)
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(
                options
                    .clone()
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("cache_size", (-WRITER_CACHE_KIB).to_string()),
            )
            .await?;
        let checkpointer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            .connect_with(options.clone().pragma("cache_size", (-CHECKPOINTER_CACHE_KIB).to_string()))
            .await?;
        let file = options.get_filename().is_file().then(|| options.get_filename().to_owned());
        let inline_reads = file.clone().map(inline_reads::InlineReads::new);
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options.read_only(true))
            .await?;
        let (inserts, jobs) = tokio::sync::mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(group_committer(writer.clone(), jobs));
        tokio::spawn(checkpoint_in_background(checkpointer.clone(), writer.clone()));
        let analytics = Some(analytics_index::AnalyticsIndexes::new(reader.clone()));
        Ok(SqliteStore {
            writer,
            reader,
            inserts,
            checkpointer,
            ingest: Default::default(),
            analytics,
            inline_reads,
            file,
        })
    }

    /// The faults `select` reads, with their comments, in no set order: on this thread when
    /// `inline` (and the read fits its budget), else packed through the reader pool.
    async fn read_faults(&self, select: &Sql, inline: bool) -> StoreResult<Vec<Fault>> {
        if inline && let Some(faults) = self.inline_reads.as_ref().and_then(|reads| reads.faults(select)) {
            return Ok(faults);
        }
        read_packed_faults(&self.reader, select).await
    }

    /// How many reads ran on the caller's thread, and how many of those were handed to the
    /// reader pool (too long, or failed there); `None` for an in-memory database.
    pub fn inline_read_counts(&self) -> Option<(u64, u64)> {
        self.inline_reads.as_ref().map(inline_reads::InlineReads::counts)
    }

    /// This store with every analytics figure read by SQL instead of from the
    /// [analytics index](crate::analytics_index): for checking one against the other.
    pub fn without_analytics_index(mut self) -> SqliteStore {
        self.analytics = None;
        self
    }

    /// Load the customer's analytics index now (it is otherwise loaded in the background on
    /// the first analytics request, which SQL answers meanwhile).
    pub async fn load_analytics_index(&self, customer_id: &str) -> StoreResult<()> {
        match &self.analytics {
            Some(indexes) => indexes.load(customer_id).await,
            None => Ok(()),
        }
    }

    /// `answer` from the customer's analytics index, brought up to date first; `None` when
    /// this store reads analytics by SQL or the index is still loading.
    async fn answer_from_index<T: Send + 'static>(
        &self,
        customer_id: &str,
        answer: impl FnOnce(&CustomerIndex) -> T + Send + 'static,
    ) -> StoreResult<Option<T>> {
        let Some(indexes) = &self.analytics else { return Ok(None) };
        let Some(mut index) = indexes.lock(customer_id).await else { return Ok(None) };
        if let Err(err) = self.catch_up(&mut index, customer_id).await {
            tracing::warn!(customer_id, error = %err, "analytics index not brought up to date; answering by SQL");
            return Ok(None);
        }
        Ok(Some(off_the_workers(move || answer(&index)).await))
    }

    /// Bring `index` up to date in a read transaction of its own.
    async fn catch_up(&self, index: &mut CustomerIndex, customer_id: &str) -> StoreResult<()> {
        let mut tx = self.reader.begin().await?;
        analytics_index::catch_up(&mut tx, index, customer_id).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Run `statements` in a transaction shared with other concurrent inserts; returns once
    /// it has committed.
    async fn group_write(&self, insert: Insert) -> StoreResult<()> {
        let (done, acknowledged) = tokio::sync::oneshot::channel();
        let job = InsertJob { insert, done };
        self.inserts.send(job).await.map_err(|_| StoreError::closed())?;
        acknowledged.await.map_err(|_| StoreError::closed())?
    }

    /// Run `statements` in their own transaction with `idem`'s key (an idempotent write does not
    /// join a group: its claim may turn it into a replay).
    async fn write_once<T: ?Sized>(
        &self,
        statements: Vec<Sql>,
        idem: &Idempotency<'_, T>,
        result: &T,
    ) -> StoreResult<Written<()>> {
        let mut tx = self.write_tx().await?;
        if let Some(answer) = claim_key(&mut tx, idem).await? {
            return Ok(Written::Replayed(answer));
        }
        for statement in &statements {
            execute(statement).execute(&mut *tx).await.map_err(|e| StoreError::on_constraint(e, "fault"))?;
        }
        fulfil_key(&mut tx, idem, result).await?;
        tx.commit().await?;
        Ok(Written::Done(()))
    }

    async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

// The capabilities, one file each.
mod admin;
mod analytics;
mod comments;
mod customers;
mod event_log;
mod faults;
mod heartbeats;
mod idempotency;
mod leases;
mod tokens;

/// SQLite's lease: one process owns the file, so it runs every singleton job.
struct OnlyProcess;

#[async_trait]
impl Lease for OnlyProcess {
    async fn still_held(&mut self) -> bool {
        true
    }
}

async fn insert_api_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    key: NewApiKey,
) -> StoreResult<ApiKey> {
    sqlx::query(rows::INSERT_API_KEY)
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.lookup)
        .bind(&key.secret_hash)
        .bind(key.permissions.to_string())
        .bind(key.rate_limit_per_minute.map(i64::from))
        .bind(key.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::on_constraint(e, "customer"))?;
    Ok(rows::api_key_from_new(key))
}

/// A statement with its parameters bound.
fn execute(statement: &Sql) -> sqlx::query::Query<'_, sqlx::Sqlite, SqliteArguments<'_>> {
    sql::bind_positional!(sqlx::query, statement)
}

fn bind_signing_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>>,
    key: &'q SigningKey,
) -> sqlx::query::Query<'q, sqlx::Sqlite, SqliteArguments<'q>> {
    query.bind(&key.kid).bind(key.secret_key.as_slice()).bind(key.public_key.as_slice()).bind(key.created_at)
}

/// A `SELECT COUNT(…)` statement with its parameters bound.
fn count(statement: &Sql) -> sqlx::query::QueryScalar<'_, sqlx::Sqlite, i64, SqliteArguments<'_>> {
    sql::bind_positional!(sqlx::query_scalar, statement)
}

/// A statement returning rows of type `O`, with its parameters bound.
fn query_rows<O>(statement: &Sql) -> sqlx::query::QueryAs<'_, sqlx::Sqlite, O, SqliteArguments<'_>>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
{
    sql::bind_positional!(sqlx::query_as, statement)
}

crate::idempotency::idempotency_fns!(sqlx::Sqlite);
rows::customer_log_fn!(sqlx::Sqlite);
/// Whether the multi-key lookups of the ingest and of heartbeats keep prepared statements. On
/// SQLite, yes: without `ANALYZE` its plans do not depend on table sizes, and preparing a
/// statement of a hundred keys again each time would cost the single writer.
const CACHE_PLANS_OF_LOOKUPS: bool = true;

crate::ingest::ingest_fns!(sqlx::Sqlite, Backend::Sqlite);
crate::heartbeat::heartbeat_fns!(sqlx::Sqlite, Backend::Sqlite);
crate::sql::top_resources_fn!(sqlx::Sqlite, Backend::Sqlite);

/// Append one event to the log, inside the caller's transaction.
async fn append_event(
    conn: &mut <sqlx::Sqlite as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    kind: &str,
    actor: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_EVENT)
        .bind(customer_id)
        .bind(fault_id)
        .bind(kind)
        .bind(actor)
        .bind(faultline_core::time::now_micros())
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fault_exists(
    conn: &mut <sqlx::Sqlite as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<bool> {
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM faults WHERE id = $1 AND customer_id = $2")
        .bind(fault_id)
        .bind(customer_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(found > 0)
}

async fn insert_comment(
    conn: &mut <sqlx::Sqlite as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    comment: &faultline_core::fault::Comment,
    actor: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_COMMENT)
        .bind(&comment.id)
        .bind(fault_id)
        .bind(customer_id)
        .bind(&comment.user_id)
        .bind(&comment.comment)
        .bind(comment.created_at)
        .execute(&mut *conn)
        .await?;
    // Read by `packed::comments_column`: a fault counted 0 is read without comments.
    sqlx::query("UPDATE faults SET comment_count = comment_count + 1 WHERE id = $1")
        .bind(fault_id)
        .execute(&mut *conn)
        .await?;
    let detail = serde_json::json!({"comment_id": comment.id}).to_string();
    append_event(conn, customer_id, fault_id, "commented", actor, &detail).await
}

/// One fault with its comments.
async fn load_fault(
    conn: &mut <sqlx::Sqlite as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<Option<Fault>> {
    Ok(read_packed_faults(conn, &fault_select(customer_id, fault_id)).await?.pop())
}

/// The faults `select` reads, with their comments, in no set order, as one [packed] page.
async fn read_packed_faults<'c>(
    executor: impl Executor<'c, Database = sqlx::Sqlite>,
    select: &Sql,
) -> StoreResult<Vec<Fault>> {
    let statement = Sql::new(packed::fault_page(&select.text), select.params.clone());
    let (count, text): (i64, Option<String>) =
        sql::bind_positional!(sqlx::query_as, statement).fetch_one(executor).await?;
    packed::faults(count, text.as_deref().unwrap_or(""))
}

/// `work` on a thread of tokio's blocking pool (a pass over every fault of a customer is too
/// long for the async workers); its panic goes on in the caller.
async fn off_the_workers<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// The `SELECT` of one fault, with its comments packed after its columns.
fn fault_select(customer_id: &str, fault_id: &str) -> Sql {
    sql::fault_select(customer_id, fault_id, &packed::comments_column())
}

/// A page of a list, with each fault's comments packed after its columns (as both inline reads
/// and the pool's packed reads read them).
fn list_select(customer_id: &str, query: &FaultQuery<'_>) -> Sql {
    sql::list_faults(customer_id, query, Backend::Sqlite, &packed::comments_column())
}

/// Whether a page is read on the caller's thread: not an export's long page, not a free-text
/// search (which may read a long history to fill a page).
fn reads_inline(query: &FaultQuery<'_>) -> bool {
    query.limit <= MAX_INLINE_ROWS && query.filter.text.is_none()
}

/// The newest unresolved fault of a (resource, type): its id and `created_at`.
async fn open_fault_of(
    conn: &mut <sqlx::Sqlite as sqlx::Database>::Connection,
    customer_id: &str,
    resource_id: &str,
    fault_type: &str,
) -> StoreResult<Option<(String, i64)>> {
    Ok(sqlx::query_as(rows::OPEN_FAULT_OF)
        .bind(customer_id)
        .bind(resource_id)
        .bind(fault_type)
        .fetch_optional(&mut *conn)
        .await?)
}
