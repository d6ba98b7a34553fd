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
use crate::error::{StoreError, StoreResult};
use crate::model::{
    AccessToken, ApiKey, ApiKeyWithHash, Customer, EventResult, FaultEvent, Horizon, Idempotency, Lease,
    LogRead, LoggedEvent, NewApiKey, SigningKey, TokenUse, TopResource,
};
use crate::rows::{self, ACCESS_TOKEN_COLUMNS, API_KEY_COLUMNS, CUSTOMER_COLUMNS, SIGNING_KEY_COLUMNS};
use crate::sql::{self, FaultQuery, Sql, TopQuery};
use crate::{Backend, Resolution, Store};
use faultline_core::fault::{Fault, FaultSink};
use faultline_core::filter::FaultFilter;

mod analytics_index;
mod bulk_load;
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

/// Inserts written together in one transaction at most.
const MAX_GROUP: usize = 256;

struct InsertJob {
    insert: Insert,
    done: tokio::sync::oneshot::Sender<StoreResult<()>>,
}

/// What one write of a group inserts.
enum Insert {
    /// New faults by `actor`: written in the same multi-row statements as the group's other
    /// new faults by the same actor.
    Faults { faults: Vec<Fault>, actor: String },
    /// Statements of their own (a minted token).
    Statements(Vec<Sql>),
}

/// The statements of a whole group, those it builds kept in `built`: each actor's new faults
/// together, so a group of `k` new faults is a handful of multi-row statements rather than
/// three statements a fault (each statement is a round trip to the connection's thread; those
/// trips were a third of the time of `POST /fault` on SQLite); a minted token's own.
fn group_statements<'g>(group: &'g [InsertJob], built: &'g mut Vec<Sql>) -> Vec<&'g Sql> {
    let mut by_actor: Vec<(&str, Vec<&[Fault]>)> = Vec::new();
    for job in group {
        if let Insert::Faults { faults, actor } = &job.insert {
            match by_actor.iter_mut().find(|(a, _)| a == actor) {
                Some((_, writes)) => writes.push(faults),
                None => by_actor.push((actor, vec![faults])),
            }
        }
    }
    for (actor, writes) in by_actor {
        built.extend(match writes.as_slice() {
            // One write's faults (a demo's chunk of 10,000, say): not copied.
            [faults] => sql::insert_faults(faults, actor, Backend::Sqlite),
            writes => sql::insert_faults(&writes.concat(), actor, Backend::Sqlite),
        });
    }
    let built: &'g Vec<Sql> = built;
    let own = group.iter().filter_map(|job| match &job.insert {
        Insert::Statements(statements) => Some(statements),
        Insert::Faults { .. } => None,
    });
    own.flatten().chain(built).collect()
}

/// Write queued inserts in groups: one `BEGIN IMMEDIATE … COMMIT` for all the inserts that
/// arrived while the previous group was committing, acknowledged after the commit. If any
/// insert of a group fails, the group is rolled back and each insert is retried in its own
/// transaction, so a failing insert fails alone. (Savepoints per insert would do the same in
/// one pass, but SQLite then walks every dirty page at each statement: measured 43% of a bulk
/// load.)
async fn group_committer(writer: SqlitePool, mut jobs: tokio::sync::mpsc::Receiver<InsertJob>) {
    while let Some(first) = jobs.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let mut built = Vec::new();
        if run_in_transaction(&writer, &group_statements(&group, &mut built)).await.is_ok() {
            for job in group {
                let _ = job.done.send(Ok(()));
            }
            continue;
        }
        for job in group {
            let mut built = Vec::new();
            let result =
                run_in_transaction(&writer, &group_statements(std::slice::from_ref(&job), &mut built)).await;
            let _ = job.done.send(result);
        }
    }
}

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A log longer than this (in 4 KiB frames) is checkpointed to its end on the writer's
/// connection, so that it starts again from its beginning.
const RESTART_LOG_AFTER_FRAMES: i64 = 65_536;

/// Background passes stop once the log grew by fewer frames than this during a pass; the
/// writer's connection finishes only when fewer than this were left uncopied.
const CAUGHT_UP_FRAMES: i64 = 256;

/// Background passes before the writer's connection finishes the copy.
const MAX_BACKGROUND_PASSES: usize = 4;

/// Copy the write-ahead log into the database file every [`CHECKPOINT_EVERY`], in two steps:
///
/// 1. `PASSIVE` passes on a connection of their own, concurrently with the writer and the
///    readers and never waiting for them. Each pass copies what the writer appended during
///    the one before, until a pass has little left (or after [`MAX_BACKGROUND_PASSES`]).
/// 2. When the log is longer than [`RESTART_LOG_AFTER_FRAMES`], one more `PASSIVE` on the
///    writer's own connection, taken from its pool like any write: only what was appended
///    during the last pass is left to copy, and nothing can be appended meanwhile. Not while
///    a reader holds frames back (a long read on an older snapshot): then writes would wait
///    for a copy as long as that backlog.
///
/// SQLite starts the log again from its beginning only when a write transaction begins while
/// every frame is copied. A busy writer begins its next transaction while a background pass
/// still runs, so without step 2 the log grows without bound: measured under event ingest,
/// 1.5 GB in 12 s, with 28% of the writer's time spent by the kernel allocating and zeroing
/// the file's new blocks. Ends when the store is closed.
async fn checkpoint_in_background(checkpointer: SqlitePool, writer: SqlitePool) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match checkpoint_and_restart(&checkpointer, &writer).await {
            Ok(()) => {}
            Err(sqlx::Error::PoolClosed) => return,
            Err(err) => tracing::warn!(error = %err, "WAL checkpoint failed; retrying"),
        }
    }
}

async fn checkpoint_and_restart(checkpointer: &SqlitePool, writer: &SqlitePool) -> Result<(), sqlx::Error> {
    let (mut log, mut copied) = (0, 0);
    for _ in 0..MAX_BACKGROUND_PASSES {
        let before = log;
        (log, copied) = checkpoint(checkpointer).await?;
        // A log shorter than at the previous pass has started again already.
        if log <= RESTART_LOG_AFTER_FRAMES || log < before {
            return Ok(());
        }
        if log - before < CAUGHT_UP_FRAMES {
            break;
        }
    }
    // Frames a pass could not copy are held by a reader on an older snapshot: the writer's
    // connection could not copy them either, and would hold up writes trying. Next time.
    if log - copied >= CAUGHT_UP_FRAMES {
        return Ok(());
    }
    checkpoint(writer).await?;
    Ok(())
}

/// One `PASSIVE` checkpoint on a connection of `pool`: (frames in the log, frames copied).
async fn checkpoint(pool: &SqlitePool) -> Result<(i64, i64), sqlx::Error> {
    let (busy, log, copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)").fetch_one(pool).await?;
    tracing::debug!(busy, log, copied, "WAL checkpoint");
    Ok((log, copied))
}

/// `statements` in one write transaction, sent to the writer's connection as one query,
/// `BEGIN IMMEDIATE; …; COMMIT` (sqlx runs every statement of a query on the connection's
/// thread, binding the anonymous parameters of each after the last's): statement by statement,
/// each was a round trip to that thread, six for a group of new faults. A failed statement
/// leaves the transaction open, so it is rolled back before the connection goes back to the
/// pool; should that fail too, the connection is closed instead.
async fn run_in_transaction(writer: &SqlitePool, statements: &[&Sql]) -> StoreResult<()> {
    let mut text = String::from("BEGIN IMMEDIATE;\n");
    for statement in statements {
        text.push_str(&statement.positional().0);
        text.push_str(";\n");
    }
    text.push_str("COMMIT");
    let mut query = sqlx::query(&text);
    for statement in statements {
        query = sql::bind_positional!(@after query, statement);
    }
    let mut conn = writer.acquire().await?;
    match query.execute(&mut *conn).await {
        Ok(_) => Ok(()),
        Err(err) => {
            if sqlx::query("ROLLBACK").execute(&mut *conn).await.is_err() {
                // No transaction to end (BEGIN failed), or a connection not to trust.
                conn.close_on_drop();
            }
            Err(StoreError::on_constraint(err, "fault"))
        }
    }
}

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
        // The writer does not checkpoint after its commits (that took 17% of the writer's time
        // under event ingest); a connection of its own does, in the background, and the writer
        // only finishes what that one could not (`checkpoint_in_background`).
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
        self.inserts.send(job).await.map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?;
        acknowledged.await.map_err(|_| StoreError::Database(sqlx::Error::PoolClosed))?
    }

    /// Run `statements` in their own transaction with `idem`'s key (an idempotent write does not
    /// join a group: its claim may turn it into a replay).
    async fn write_once<T: ?Sized>(
        &self,
        statements: Vec<Sql>,
        idem: &Idempotency<'_, T>,
        result: &T,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        claim_key(&mut tx, idem).await?;
        for statement in &statements {
            execute(statement).execute(&mut *tx).await.map_err(|e| StoreError::on_constraint(e, "fault"))?;
        }
        fulfil_key(&mut tx, idem, result).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn write_tx(&self) -> StoreResult<sqlx::Transaction<'static, sqlx::Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        (&mut *tx).execute(sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS faultline_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        ))
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM faultline_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            crate::log_migration(*version, applied.is_empty());
            (&mut *tx)
                .execute(sqlx::raw_sql(sql))
                .await
                .map_err(|source| StoreError::Migration { version: *version, source })?;
            sqlx::query("INSERT INTO faultline_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(faultline_core::time::now_micros())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT version FROM faultline_migrations ORDER BY version")
            .fetch_all(&self.reader)
            .await?)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        self.checkpointer.close().await;
    }

    async fn create_customer(&self, name: &str) -> StoreResult<Customer> {
        let customer = rows::new_customer(None, name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&self.writer)
            .await?;
        Ok(customer)
    }

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>> {
        let row = sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"))
            .bind(customer_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(row.map(rows::customer))
    }

    async fn list_customers(&self) -> StoreResult<Vec<Customer>> {
        let rows =
            sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY created_at, id"))
                .fetch_all(&self.reader)
                .await?;
        Ok(rows.into_iter().map(rows::customer).collect())
    }

    async fn bootstrap(
        &self,
        customer_name: &str,
        key: NewApiKey,
    ) -> StoreResult<Option<(Customer, ApiKey)>> {
        // BEGIN IMMEDIATE takes the write lock first, so the emptiness check cannot race.
        let mut tx = self.write_tx().await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(&mut *tx).await?;
        if existing > 0 {
            return Ok(None);
        }
        let customer = rows::new_customer(Some(&key.customer_id), customer_name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&mut *tx)
            .await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(Some((customer, api_key)))
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let mut tx = self.write_tx().await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(api_key)
    }

    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1 IS NULL OR customer_id = $1) ORDER BY created_at, id"
        ))
        .bind(customer_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(rows::api_key).collect())
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(key_id)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>> {
        let row: Option<rows::ApiKeyWithHashRow> =
            sqlx::query_as(&format!("SELECT secret_hash, {API_KEY_COLUMNS} FROM api_keys WHERE lookup = $1"))
                .bind(lookup)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(rows::api_key_with_hash))
    }

    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(key_id)
            .bind(at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<()> {
        match idem {
            None => {
                let insert = Insert::Faults { faults: faults.to_vec(), actor: actor.to_owned() };
                self.group_write(insert).await
            }
            Some(idem) => {
                self.write_once(sql::insert_faults(faults, actor, Backend::Sqlite), idem, faults).await
            }
        }
    }

    async fn bulk_insert_faults(
        &self,
        chunks: tokio::sync::mpsc::Receiver<crate::BulkFaults>,
        actor: &str,
        mut inserted: Box<dyn FnMut(usize) + Send>,
    ) -> StoreResult<()> {
        let Some(file) = self.file.clone() else {
            // In memory: through the writer.
            return crate::insert_chunk_by_chunk(self, chunks, actor, inserted).await;
        };
        let actor = actor.to_owned();
        tokio::task::spawn_blocking(move || bulk_load::load(&file, chunks, &actor, &mut *inserted))
            .await
            .map_err(|e| StoreError::NotWritten(format!("the bulk load failed: {e}")))?
    }

    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>> {
        Ok(self.read_faults(&fault_select(customer_id, fault_id), true).await?.pop())
    }

    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let removed: Option<rows::RemovedRow> = sqlx::query_as(rows::DELETE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(removed) = removed else {
            return Ok(false);
        };
        execute(&sql::delete_ancestors(&removed)).execute(&mut *tx).await?;
        append_event(&mut tx, customer_id, fault_id, "deleted", actor, &rows::removed_detail(&removed))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Option<Fault>> {
        let mut tx = self.write_tx().await?;
        if let Some(idem) = idem {
            claim_key(&mut tx, idem).await?;
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(None);
        }
        insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(fault)
    }

    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Option<Fault>> {
        let Resolution { at, ttl, comment } = resolution;
        let mut tx = self.write_tx().await?;
        if let Some(idem) = idem {
            claim_key(&mut tx, idem).await?;
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(None);
        }
        let resolved = sqlx::query(rows::RESOLVE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .bind(at)
            .bind(ttl)
            .execute(&mut *tx)
            .await?;
        // Resolving a resolved fault changes nothing, not even by adding its comment again.
        if resolved.rows_affected() == 1 {
            if let Some(comment) = comment {
                insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
            }
            append_event(&mut tx, customer_id, fault_id, "resolved", actor, "{}").await?;
        }
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(fault)
    }

    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Vec<EventResult>> {
        self.ingest.apply(&self.writer, customer_id, events, retention_seconds, actor, idem).await
    }

    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize> {
        let mut tx = self.write_tx().await?;
        let gone: Vec<rows::RemovedRow> = sqlx::query_as(rows::SWEEP_EXPIRED)
            .bind(now_seconds)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        for removed in &gone {
            execute(&sql::delete_ancestors(removed)).execute(&mut *tx).await?;
            let (fault_id, customer_id) = (&removed.0, &removed.1);
            append_event(&mut tx, customer_id, fault_id, "expired", "system", &rows::removed_detail(removed))
                .await?;
        }
        tx.commit().await?;
        Ok(gone.len())
    }

    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>> {
        let rows: Vec<rows::EventRow> = sqlx::query_as(
            "SELECT seq, fault_id, kind, actor, at, detail FROM fault_events WHERE customer_id = $1 AND fault_id = $2 ORDER BY seq",
        )
        .bind(customer_id)
        .bind(fault_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(rows::fault_event).collect())
    }

    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: crate::analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> crate::StoreResult<Vec<(String, i64)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.top_groups(&f, group, limit, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::top_groups(customer_id, filter, group, limit, now);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: crate::analytics::Slots,
        group: Option<(crate::analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> crate::StoreResult<Vec<(i64, String, i64)>> {
        let (f, owned) =
            (filter.clone(), group.map(|(g, listed, other)| (g, listed.to_vec(), other.to_owned())));
        let answer = self
            .answer_from_index(customer_id, move |index| {
                let group = owned.as_ref().map(|(g, listed, other)| (*g, listed.as_slice(), other.as_str()));
                index.counts_by_slot(&f, slots, group, now)
            })
            .await?;
        if let Some(answer) = answer {
            return Ok(answer);
        }
        let statement = crate::analytics::counts_by_slot(customer_id, filter, slots, group, now);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<Vec<i64>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.repair_times(&f, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::repair_times(customer_id, filter, now);
        Ok(crate::sql::bind_positional!(sqlx::query_scalar, statement).fetch_all(&self.reader).await?)
    }

    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> crate::StoreResult<Vec<(String, i64, Option<i64>)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.site_outages(&f, from, to)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::site_outages(customer_id, filter, from, to);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<i64> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.count_open(&f, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::count_open(customer_id, filter, now);
        Ok(crate::sql::bind_positional!(sqlx::query_scalar, statement).fetch_one(&self.reader).await?)
    }
    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>> {
        let select = list_select(customer_id, query);
        let mut faults = self.read_faults(&select, reads_inline(query)).await?;
        newest_first(&mut faults);
        Ok(faults)
    }

    async fn list_faults_into(
        &self,
        customer_id: &str,
        query: &FaultQuery<'_>,
        sink: &mut dyn FaultSink,
    ) -> StoreResult<()> {
        let select = list_select(customer_id, query);
        // Inline rows come in the statement's order, newest first.
        if reads_inline(query)
            && let Some(reads) = &self.inline_reads
        {
            if reads.faults_into(&select, sink) {
                return Ok(());
            }
            sink.clear();
        }
        let mut faults = read_packed_faults(&self.reader, &select).await?;
        newest_first(&mut faults);
        for fault in &faults {
            sink.fault(&fault.as_ref());
        }
        Ok(())
    }

    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>> {
        // One read transaction sees one snapshot of the database: counts and samples agree.
        // The index's lock before the transaction's connection (see `AnalyticsIndexes`).
        let mut index = match &self.analytics {
            Some(indexes) => indexes.lock(customer_id).await,
            None => None,
        };
        let mut tx = self.reader.begin().await?;
        if let Some(locked) = index.as_mut()
            && let Err(err) = analytics_index::catch_up(&mut tx, locked, customer_id).await
        {
            tracing::warn!(customer_id, error = %err, "analytics index not brought up to date; answering by SQL");
            index = None;
        }
        let top = match index {
            None => read_top_resources(&mut tx, customer_id, query).await?,
            Some(index) => {
                // The counts from the index as of this transaction's snapshot, the samples
                // read in it.
                let counted = FaultFilter {
                    from: Some(query.since),
                    scope: query.scope.cloned(),
                    ..FaultFilter::default()
                };
                let (limit, since) = (query.limit, query.since);
                let counts =
                    off_the_workers(move || index.top_groups(&counted, GroupBy::Resource, limit, since))
                        .await;
                with_samples(&mut tx, customer_id, query, counts).await?
            }
        };
        tx.commit().await?;
        Ok(top)
    }

    async fn ensure_signing_key(&self, candidate: &SigningKey) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        if active == 0 {
            bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), candidate).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_signing_key(&self, new: &SigningKey, verify_until: i64) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(rows::RETIRE_SIGNING_KEYS)
            .bind(new.created_at)
            .bind(verify_until)
            .execute(&mut *tx)
            .await?;
        bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), new).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR verify_until > $1 \
             ORDER BY (retired_at IS NULL) DESC, created_at DESC"
        ))
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(rows::signing_key).collect())
    }

    async fn insert_access_token(
        &self,
        token: &AccessToken,
        short_code: &str,
        idem: Option<&Idempotency<'_, AccessToken>>,
    ) -> StoreResult<()> {
        let statements = sql::insert_access_token(token, short_code)?;
        match idem {
            // Through the group committer: concurrent mints share a commit.
            None => self.group_write(Insert::Statements(statements)).await,
            Some(idem) => self.write_once(statements, idem, token).await,
        }
    }

    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, crate::StoredResponse)>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(crate::idempotency::ANSWER)
            .bind(credential_id)
            .bind(key)
            .bind(after)
            .fetch_optional(&self.reader)
            .await?;
        row.map(crate::idempotency::stored).transpose()
    }

    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize> {
        let result = sqlx::query(crate::idempotency::SWEEP)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&self.writer)
            .await?;
        Ok(result.rows_affected() as usize)
    }

    async fn get_access_token(&self, token_id: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!("SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"))
            .bind(token_id)
            .fetch_optional(&self.reader)
            .await?;
        row.map(rows::access_token).transpose()
    }

    async fn list_access_tokens(&self, customer_id: &str, limit: u32) -> StoreResult<Vec<AccessToken>> {
        let rows: Vec<rows::AccessTokenRow> = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.into_iter().map(rows::access_token).collect()
    }

    async fn revoke_access_token(&self, customer_id: &str, token_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND customer_id = $2",
        )
        .bind(token_id)
        .bind(customer_id)
        .bind(at)
        .execute(&self.writer)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for u in uses {
            sqlx::query(rows::RECORD_TOKEN_USE)
                .bind(u.count)
                .bind(u.last_used_at)
                .bind(&u.token_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn short_link_token(&self, code: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = (SELECT token_id FROM short_links WHERE code = $1)"
        ))
        .bind(code)
        .fetch_optional(&self.reader)
        .await?;
        row.map(rows::access_token).transpose()
    }

    async fn scope_ids_exist(
        &self,
        customer_id: &str,
        scope: &faultline_core::scope::TokenScope,
    ) -> StoreResult<bool> {
        for statement in sql::scope_id_counts(customer_id, scope) {
            let (expected, sql) = statement;
            let found: i64 = count(&sql).fetch_one(&self.reader).await?;
            if found != expected {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        faultline_core::secret::random_bytes(&mut fresh);
        sqlx::query("INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .bind(faultline_core::time::now_micros())
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await?)
    }

    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let resolved =
            record_heartbeats_in(&mut tx, customer_id, beats, at, retention_seconds, actor, idem).await?;
        tx.commit().await?;
        Ok(resolved)
    }

    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
        let mut tx = self.write_tx().await?;
        let handled = detect_offline_in(&mut tx, policy, now, retention_seconds, limit, after).await?;
        tx.commit().await?;
        Ok(handled)
    }

    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead> {
        let rows: Vec<rows::LogRow> = sqlx::query_as(&format!(
            "SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            rows::LOG_COLUMNS
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(LogRead { entries: rows.into_iter().map(rows::logged_event).collect(), horizon: None })
    }

    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM fault_events").fetch_one(&self.reader).await?;
        Ok((head.unwrap_or(0), None))
    }

    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        customer_log_from(&self.reader, customer_id, after, upto, limit).await
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }

    async fn lease(&self, _job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        Ok(Some(Box::new(OnlyProcess)))
    }
}

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

/// `work` on a thread of tokio's blocking pool (a pass over a million faults takes
/// milliseconds: not on the async workers); its panic goes on in the caller.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn job(insert: Insert) -> InsertJob {
        InsertJob { insert, done: tokio::sync::oneshot::channel().0 }
    }

    fn faults(n: i64) -> Vec<Fault> {
        (0..n)
            .map(|i| {
                let new = faultline_core::fault::NewFault {
                    resource_id: format!("dev_{i}"),
                    fault_type: "reboot".into(),
                    severity: faultline_core::fault::Severity::Low,
                    message: "m".into(),
                    cause: String::new(),
                    microservice_id: "test".into(),
                    resource_ancestry_path: format!("site_1|dev_{i}"),
                    created_at: None,
                };
                Fault::create("cus_1", new, 1_000_000 + i, 60)
            })
            .collect()
    }

    #[test]
    fn a_group_writes_each_actor_s_faults_in_shared_statements() {
        let token =
            Sql::new("INSERT INTO access_tokens (id) VALUES ($1)", vec![sql::Param::Text("t".into())]);
        let group = [
            job(Insert::Faults { faults: faults(2), actor: "key_a".into() }),
            job(Insert::Statements(vec![token])),
            job(Insert::Faults { faults: faults(3), actor: "key_b".into() }),
            job(Insert::Faults { faults: faults(4), actor: "key_a".into() }),
        ];
        let mut built = Vec::new();
        let statements = group_statements(&group, &mut built);
        let texts: Vec<&str> = statements.iter().map(|s| s.text.as_str()).collect();
        // The token's own statement, then per actor: faults, ancestry elements, events.
        assert_eq!(texts.len(), 1 + 2 * 3, "{texts:#?}");
        assert!(texts[0].starts_with("INSERT INTO access_tokens"));
        let rows = |text: &str| text.matches("), (").count() + 1;
        assert!(texts[1].starts_with("INSERT INTO faults") && rows(texts[1]) == 6, "key_a's 2 + 4");
        assert!(texts[4].starts_with("INSERT INTO faults") && rows(texts[4]) == 3, "key_b's 3");
        // One write alone is written as before.
        let mut alone = Vec::new();
        let one = group_statements(&group[2..3], &mut alone);
        let expected = sql::insert_faults(&faults(3), "key_b", Backend::Sqlite);
        assert_eq!(
            one.iter().map(|s| &s.text).collect::<Vec<_>>(),
            expected.iter().map(|s| &s.text).collect::<Vec<_>>()
        );
    }
}
