//! SQLite through one driver, rusqlite (a bundled libsqlite3): one writer thread that owns the
//! write connection and commits concurrent writes together, a few reader connections, and a
//! checkpointer. Every connection is opened by [`open_connection`], where every pragma is set.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};

use super::{Conn, Database, EachRow, Job, MakeJob, Read, Row, run_to_end};
use crate::Backend;
use crate::error::{StoreError, StoreResult};
use crate::model::Lease;
use crate::sql::{Param, Sql};

/// What a connection is for; each has its own page cache and lock waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Writer,
    Reader,
    Checkpointer,
    BulkLoad,
}

// What the store's SQLite connections may hold in memory (the memory model, and the
// measurements these were chosen by: docs/operations.md, "Memory").

/// How much of the database file each connection maps into memory (`PRAGMA mmap_size`): none.
/// Every connection maps the file on its own, so a mapped page counts in the process's resident
/// memory once for each connection that read it, and what is mapped grows with the file and is
/// never given back. Unmapped, a read copies its page from the kernel's page cache (shared, and
/// reclaimed under memory pressure) into the connection's page cache, which is bounded.
const MMAP_SIZE: i64 = 0;

/// The writer's page cache, in KiB: a write group's transaction keeps every page it dirties
/// here until it commits, and the next groups dirty largely the same pages. Smaller, the ingest
/// measured more CPU per event.
const WRITER_CACHE_KIB: i64 = 64 * 1024;

/// The page cache of each reader, in KiB. What a reader reads again and again (the upper
/// levels of the B-trees) is small; the rest comes from the kernel's page cache.
const READER_CACHE_KIB: i64 = 8 * 1024;

/// The bulk loader's page cache, in KiB: the pages a load keeps touching (the last leaf of each
/// index, the ancestry elements' leaves) stay in memory until its commit.
const BULK_LOAD_CACHE_KIB: i64 = 512 * 1024;

/// The checkpointer's page cache, in KiB: a checkpoint copies frames from the log into the
/// file through a buffer of its own, not through the page cache.
const CHECKPOINTER_CACHE_KIB: i64 = 1024;

/// After a checkpoint that reached its end, the write-ahead log file is cut back to this many
/// bytes (`journal_size_limit`): without it the file keeps the largest size it ever reached.
const JOURNAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Statements each connection keeps prepared (rusqlite's default is 16; a batch of the ingest
/// alone runs more distinct ones).
const PREPARED_STATEMENTS: usize = 256;

/// Reader connections at most.
const MAX_READERS: usize = 8;

/// Writes committed together in one transaction at most.
const MAX_GROUP: usize = 256;

/// Open a connection to the database file at `path` for `role`, with every pragma the store
/// runs with.
pub(crate) fn open_connection(path: &Path, role: Role) -> rusqlite::Result<Connection> {
    let flags = match role {
        Role::Reader => OpenFlags::SQLITE_OPEN_READ_ONLY,
        _ => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
    };
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    // Writers wait for each other's locks (the bulk loader, a second process); a reader never
    // needs a lock except while the log is recovered.
    conn.busy_timeout(match role {
        Role::Reader => Duration::from_secs(5),
        _ => Duration::from_secs(10),
    })?;
    if role != Role::Reader {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "journal_size_limit", JOURNAL_SIZE_LIMIT)?;
    }
    // NORMAL in WAL mode: a committed transaction survives the process being killed; only an
    // operating-system crash or power loss can take the last commits back.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", true)?;
    conn.pragma_update(None, "temp_store", "memory")?;
    conn.pragma_update(None, "mmap_size", MMAP_SIZE)?;
    let cache_kib = match role {
        Role::Writer => WRITER_CACHE_KIB,
        Role::BulkLoad => BULK_LOAD_CACHE_KIB,
        Role::Reader => READER_CACHE_KIB,
        Role::Checkpointer => CHECKPOINTER_CACHE_KIB,
    };
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    // The writer does not checkpoint after its commits (the copy would run on the writer's time,
    // between its transactions); the checkpointer does, beside it ([`checkpoint`]).
    if role == Role::Writer {
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
    }
    conn.set_prepared_statement_cache_capacity(PREPARED_STATEMENTS);
    Ok(conn)
}

/// A [`Conn`] on a rusqlite connection: every call completes before it returns.
pub(crate) struct Lite<'a>(pub(crate) &'a mut Connection);

impl rusqlite::ToSql for Param {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Param::Text(v) => ValueRef::Text(v.as_bytes()),
            Param::Int(v) => ValueRef::Integer(*v),
            Param::OptInt(v) => v.map_or(ValueRef::Null, ValueRef::Integer),
            Param::OptText(v) => v.as_deref().map_or(ValueRef::Null, |v| ValueRef::Text(v.as_bytes())),
            Param::Blob(v) => ValueRef::Blob(v),
        }))
    }
}

impl Lite<'_> {
    /// `sql` prepared (from the connection's cache unless it asks not to be) with its
    /// parameters bound, given to `run`.
    fn with_statement<T>(
        &mut self,
        sql: &Sql,
        run: impl FnOnce(&mut rusqlite::Statement<'_>) -> rusqlite::Result<T>,
    ) -> StoreResult<T> {
        let (text, order) = sql.positional();
        let bind = |statement: &mut rusqlite::Statement<'_>| -> rusqlite::Result<()> {
            for (i, &param) in order.iter().enumerate() {
                statement.raw_bind_parameter(i + 1, &sql.params[param])?;
            }
            Ok(())
        };
        let result = if sql.cache_plan {
            let mut statement = self.0.prepare_cached(text)?;
            bind(&mut statement).and_then(|()| run(&mut statement))
        } else {
            let mut statement = self.0.prepare(text)?;
            bind(&mut statement).and_then(|()| run(&mut statement))
        };
        Ok(result?)
    }
}

struct LiteRow<'a, 'r>(&'a rusqlite::Row<'r>);

fn decode(err: rusqlite::Error) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

impl Row for LiteRow<'_, '_> {
    fn is_null(&self, column: usize) -> StoreResult<bool> {
        Ok(matches!(self.0.get_ref(column).map_err(decode)?, rusqlite::types::ValueRef::Null))
    }
    fn int(&self, column: usize) -> StoreResult<Option<i64>> {
        self.0.get(column).map_err(decode)
    }
    fn real(&self, column: usize) -> StoreResult<Option<f64>> {
        use rusqlite::types::ValueRef;
        Ok(match self.0.get_ref(column).map_err(decode)? {
            ValueRef::Integer(v) => Some(v as f64),
            ValueRef::Real(v) => Some(v),
            ValueRef::Null => None,
            other => {
                return Err(StoreError::Corrupt(format!("column {column}: {:?} is not a number", other)));
            }
        })
    }
    fn text(&self, column: usize) -> StoreResult<Option<&str>> {
        self.0
            .get_ref(column)
            .map_err(decode)?
            .as_str_or_null()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
    fn blob(&self, column: usize) -> StoreResult<Option<&[u8]>> {
        self.0
            .get_ref(column)
            .map_err(decode)?
            .as_blob_or_null()
            .map_err(|e| StoreError::Corrupt(e.to_string()))
    }
}

#[async_trait]
impl Conn for Lite<'_> {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn execute(&mut self, sql: &Sql) -> StoreResult<u64> {
        self.with_statement(sql, |statement| statement.raw_execute()).map(|n| n as u64)
    }

    async fn for_each(&mut self, sql: &Sql, each: &mut EachRow<'_>) -> StoreResult<()> {
        let mut failed = None;
        self.with_statement(sql, |statement| {
            let mut rows = statement.raw_query();
            while let Some(row) = rows.next()? {
                let row = LiteRow(row);
                if let Err(err) = each(&row) {
                    failed = Some(err);
                    break;
                }
            }
            Ok(())
        })?;
        failed.map_or(Ok(()), Err)
    }

    async fn execute_script(&mut self, script: &str) -> StoreResult<()> {
        Ok(self.0.execute_batch(script)?)
    }
}

/// A write waiting for the writer thread: `run` does it (in a transaction the writer began) and
/// says whether it succeeded, and may be called again if that transaction was rolled back;
/// `finish` is told whether the transaction committed.
pub(crate) struct WriteJob {
    run: Box<dyn FnMut(&mut Connection) -> bool + Send>,
    finish: Box<dyn FnOnce(StoreResult<()>) + Send>,
}

/// Work for the writer thread: a write, or maintenance outside any transaction.
pub(crate) enum Work {
    Write(WriteJob),
    /// Maintenance between two write transactions (the checkpointer's last pass).
    Outside(Box<dyn FnOnce(&mut Connection) + Send>),
}

/// The store's SQLite database: the writer thread, the readers and the checkpointer.
pub struct SqliteDb {
    path: PathBuf,
    writer: Mutex<Option<tokio::sync::mpsc::Sender<Work>>>,
    writer_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    readers: Arc<Readers>,
    checkpointer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl SqliteDb {
    /// Open (creating if missing) the database file named by a `sqlite://PATH` URL.
    pub(crate) async fn open(url: &str) -> StoreResult<SqliteDb> {
        let path = path_of(url)?;
        let writer = {
            let file = path.clone();
            tokio::task::spawn_blocking(move || open_connection(&file, Role::Writer))
                .await
                .map_err(|e| StoreError::Config(format!("opening the SQLite database failed: {e}")))?
                .map_err(|e| {
                    StoreError::Config(format!("cannot open the SQLite database {}: {e}", path.display()))
                })?
        };
        let (sender, jobs) = tokio::sync::mpsc::channel(4 * MAX_GROUP);
        let thread = std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || write_in_groups(writer, jobs))
            .map_err(|e| StoreError::Config(format!("cannot start the SQLite writer: {e}")))?;
        let db = SqliteDb {
            readers: Arc::new(Readers {
                path: path.clone(),
                idle: Mutex::default(),
                permits: tokio::sync::Semaphore::new(MAX_READERS),
            }),
            path,
            writer: Mutex::new(Some(sender.clone())),
            writer_thread: Mutex::new(Some(thread)),
            checkpointer: Mutex::new(None),
        };
        let checkpointer = tokio::spawn(super::checkpoint::checkpoint_in_background(db.path.clone(), sender));
        *db.checkpointer.lock().unwrap_or_else(|e| e.into_inner()) = Some(checkpointer);
        Ok(db)
    }

    /// The readers, for the analytics indexes.
    pub(crate) fn readers(&self) -> ReadHandle {
        Arc::clone(&self.readers)
    }

    fn sender(&self) -> StoreResult<tokio::sync::mpsc::Sender<Work>> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).clone().ok_or_else(StoreError::closed)
    }
}

/// The file of a `sqlite://PATH` (or `sqlite:PATH`) URL; a query string is ignored.
pub(crate) fn path_of(url: &str) -> StoreResult<PathBuf> {
    let rest = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Err(StoreError::Config(format!(
            "invalid SQLite URL '{url}': name a file, as sqlite://PATH (faults are kept on disk)"
        )));
    }
    Ok(PathBuf::from(path))
}

/// The write `make` makes, its result reported through `finish` once the transaction's fate is
/// known.
fn write_job<T: Send + 'static>(
    make: MakeJob<T>,
) -> (WriteJob, tokio::sync::oneshot::Receiver<StoreResult<T>>) {
    let (done, answer) = tokio::sync::oneshot::channel();
    let slot: Arc<Mutex<Option<StoreResult<T>>>> = Arc::default();
    let ran = Arc::clone(&slot);
    let run = Box::new(move |conn: &mut Connection| {
        let result = run_to_end(make()(&mut Lite(conn)));
        let ok = result.is_ok();
        *ran.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        ok
    });
    let finish = Box::new(move |committed: StoreResult<()>| {
        let result = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        let answer = match (committed, result) {
            (Ok(()), Some(result)) => result,
            (Err(err), _) => Err(err),
            (Ok(()), None) => Err(StoreError::NotWritten("the write did not run".into())),
        };
        let _ = done.send(answer);
    });
    (WriteJob { run, finish }, answer)
}

/// The writer thread: write jobs in groups, one `BEGIN IMMEDIATE … COMMIT` for all those that
/// arrived while the previous group was committing, each acknowledged after the commit. If any
/// write of a group fails (or the commit does), the group is rolled back and each write runs
/// again in a transaction of its own, so a failing write fails alone. (A savepoint per write
/// would do the same in one pass, but then SQLite copies every page a write first changes into
/// the savepoint's journal.) Ends when every sender is gone, closing the connection (which
/// checkpoints the log).
fn write_in_groups(mut conn: Connection, mut jobs: tokio::sync::mpsc::Receiver<Work>) {
    let mut pending: Option<Work> = None;
    loop {
        let first = match pending.take() {
            Some(work) => work,
            None => match jobs.blocking_recv() {
                Some(work) => work,
                None => return,
            },
        };
        let first = match first {
            Work::Outside(work) => {
                work(&mut conn);
                continue;
            }
            Work::Write(job) => job,
        };
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(Work::Write(job)) => group.push(job),
                Ok(outside) => {
                    pending = Some(outside);
                    break;
                }
                Err(_) => break,
            }
        }
        if group.len() > 1 && commit_together(&mut conn, &mut group) {
            group.into_iter().for_each(|job| (job.finish)(Ok(())));
            continue;
        }
        for job in group {
            commit_alone(&mut conn, job);
        }
    }
}

/// Every write of `group` in one transaction; whether it committed (if not, it was rolled back).
fn commit_together(conn: &mut Connection, group: &mut [WriteJob]) -> bool {
    if conn.execute_batch("BEGIN IMMEDIATE").is_err() {
        return false;
    }
    if !group.iter_mut().all(|job| catch(conn, &mut job.run)) || conn.execute_batch("COMMIT").is_err() {
        let _ = conn.execute_batch("ROLLBACK");
        return false;
    }
    true
}

/// One write in a transaction of its own, answered.
fn commit_alone(conn: &mut Connection, mut job: WriteJob) {
    if let Err(err) = conn.execute_batch("BEGIN IMMEDIATE") {
        (job.finish)(Err(StoreError::from(err)));
        return;
    }
    let committed = if catch(conn, &mut job.run) {
        conn.execute_batch("COMMIT").map_err(|err| {
            let _ = conn.execute_batch("ROLLBACK");
            StoreError::from(err)
        })
    } else {
        // The write's own error is its answer.
        let _ = conn.execute_batch("ROLLBACK");
        Ok(())
    };
    (job.finish)(committed);
}

/// `run`, a panic in it counted as a failure (it reaches its caller as an unanswered write).
fn catch(conn: &mut Connection, run: &mut (dyn FnMut(&mut Connection) -> bool + Send)) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(conn))).unwrap_or(false)
}

/// The readers, shared (the analytics indexes load through them in the background).
pub(crate) type ReadHandle = Arc<Readers>;

/// Idle reader connections, and permits for at most [`MAX_READERS`].
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: tokio::sync::Semaphore,
}

impl Readers {
    /// Run `job` as a read (see [`Database::read`]).
    pub(crate) async fn read<T: Send + 'static>(self: &Arc<Self>, how: Read, job: Job<T>) -> StoreResult<T> {
        let _permit = self.permits.acquire().await.map_err(|_| StoreError::closed())?;
        let mut conn = self.take()?;
        if how == Read::Short {
            let result = read_on(&mut conn, false, job);
            self.put_back(conn);
            return result;
        }
        let readers = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = read_on(&mut conn, how == Read::Snapshot, job);
            readers.put_back(conn);
            result
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    fn take(&self) -> StoreResult<Connection> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match idle {
            Some(conn) => Ok(conn),
            None => Ok(open_connection(&self.path, Role::Reader)?),
        }
    }

    fn put_back(&self, conn: Connection) {
        if !self.permits.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
        }
    }
}

/// `job` on a reader connection; in one read transaction when `snapshot`.
fn read_on<T>(conn: &mut Connection, snapshot: bool, job: Job<T>) -> StoreResult<T> {
    if !snapshot {
        return run_to_end(job(&mut Lite(conn)));
    }
    conn.execute_batch("BEGIN")?;
    let result = run_to_end(job(&mut Lite(conn)));
    conn.execute_batch(if result.is_ok() { "COMMIT" } else { "ROLLBACK" })?;
    result
}

#[async_trait]
impl Database for SqliteDb {
    const BACKEND: Backend = Backend::Sqlite;

    async fn write<T: Send + 'static>(&self, make: MakeJob<T>) -> StoreResult<T> {
        let started = crate::outage::now();
        let (job, answer) = write_job(make);
        let result = match self.sender()?.send(Work::Write(job)).await {
            Ok(()) => answer.await.unwrap_or_else(|_| Err(StoreError::closed())),
            Err(_) => Err(StoreError::closed()),
        };
        crate::outage::observe(&result, true, started);
        result
    }

    async fn read<T: Send + 'static>(
        &self,
        how: Read,
        make: &(dyn Fn() -> Job<T> + Send + Sync),
    ) -> StoreResult<T> {
        let started = crate::outage::now();
        let result = self.readers.read(how, make()).await;
        crate::outage::observe(&result, false, started);
        result
    }

    fn bulk_load_file(&self) -> Option<PathBuf> {
        Some(self.path.clone())
    }

    async fn lease(&self, _job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        Ok(Some(Box::new(OnlyProcess)))
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }

    async fn close(&self) {
        if let Some(checkpointer) = self.checkpointer.lock().unwrap_or_else(|e| e.into_inner()).take() {
            checkpointer.abort();
        }
        self.readers.permits.close();
        self.readers.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        drop(self.writer.lock().unwrap_or_else(|e| e.into_inner()).take());
        let thread = self.writer_thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
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
