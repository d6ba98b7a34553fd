//! Short reads on the caller's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it and
//! its answer back: two thread switches per statement, which cost far more than reading a fault
//! (two thirds of the server's time under a load of `GET /fault/{id}` went to switching
//! threads, 1.5% to SQLite itself). The reads that answer the hot paths (one fault, a page of
//! a list) take tens of microseconds, so they run here, through connections of this module's
//! own (`rusqlite`, on the same SQLite library), on the thread that asks.
//!
//! A read that turns out long must not hold that thread (an async worker) up: each read has a
//! budget of [`BUDGET`], checked by SQLite's progress handler; past it the read is interrupted
//! and `None` tells the caller to read through sqlx instead, as it does when anything else goes
//! wrong here. So this path can make a read faster, never different or failed.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use faultline_core::fault::{Comment, Fault, FaultRef, FaultSink};

use crate::sql::{Param, Sql};

/// How long a read may run here before it is handed to sqlx's threads.
const BUDGET: Duration = Duration::from_millis(2);
/// SQLite virtual-machine steps between two looks at the clock.
const STEPS_PER_CHECK: i32 = 1_000;
/// Idle connections kept.
const MAX_IDLE: usize = 8;

pub(super) struct InlineReads {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    /// Reads answered here, and reads handed to sqlx.
    answered: AtomicU64,
    handed_over: AtomicU64,
}

impl InlineReads {
    /// Reads of the database file at `path` (which the writer has opened, so it exists);
    /// `None` when there is no such file (an in-memory database).
    pub(super) fn new(path: &Path) -> Option<InlineReads> {
        if !path.is_file() {
            return None;
        }
        Some(InlineReads {
            path: path.to_owned(),
            idle: Mutex::default(),
            answered: AtomicU64::new(0),
            handed_over: AtomicU64::new(0),
        })
    }

    /// `(answered here, handed to sqlx)` so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.answered.load(Ordering::Relaxed), self.handed_over.load(Ordering::Relaxed))
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        // A reader waits for a lock only while the log is being recovered; not here.
        conn.busy_timeout(Duration::ZERO)?;
        conn.pragma_update(None, "cache_size", -65_536)?;
        conn.pragma_update(None, "temp_store", "memory")?;
        conn.pragma_update(None, "mmap_size", super::MMAP_SIZE)?;
        Ok(conn)
    }

    /// The faults `select` reads (a statement whose result columns are those of
    /// [`crate::rows::FaultRow`]), with their comments, or `None` when they could not be read
    /// here within [`BUDGET`]. Statements here are cheap, so the comments come from a second
    /// one in the same read transaction rather than a lookup per fault in the first (which
    /// took 40% of a page's query when there were no comments to find).
    pub(super) fn faults(&self, select: &Sql) -> Option<Vec<Fault>> {
        self.run(|conn| {
            let snapshot = Snapshot::begin(conn)?;
            let mut faults = Vec::new();
            each_fault(&snapshot, select, |f| faults.push(f.to_fault()))?;
            let ids: Vec<&str> = faults.iter().map(|f| f.id.as_str()).collect();
            let comments = comments_of(&snapshot, &ids)?;
            crate::rows::attach_comments(&mut faults, comments);
            Ok(faults)
        })
    }

    /// [`InlineReads::faults`], each fault given to `sink` straight from its row (no field
    /// copied), in the statement's order, then the comments; `false` when they could not be
    /// read here (the sink may then hold part of them).
    pub(super) fn faults_into(&self, select: &Sql, sink: &mut dyn FaultSink) -> bool {
        self.run(|conn| {
            let snapshot = Snapshot::begin(conn)?;
            let ids = each_fault(&snapshot, select, |f| sink.fault(f))?;
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            for (fault_id, id, user_id, comment, created_at) in comments_of(&snapshot, &ids)? {
                if let Some(index) = ids.iter().position(|&f| f == fault_id) {
                    sink.comment(index, &Comment { id, user_id, comment, created_at });
                }
            }
            Ok(())
        })
        .is_some()
    }

    /// `read`, run here within [`BUDGET`]; `None` if it was not.
    fn run<T>(&self, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Option<T> {
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some(conn) => conn,
            None => match self.open() {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::debug!(error = %err, "inline read: cannot open the database");
                    self.handed_over.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
            },
        };
        let deadline = Instant::now() + BUDGET;
        conn.progress_handler(STEPS_PER_CHECK, Some(move || Instant::now() > deadline));
        let result = read(&conn);
        conn.progress_handler(STEPS_PER_CHECK, None::<fn() -> bool>);
        let interrupted = matches!(&result, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::OperationInterrupted);
        // A connection whose read was interrupted is as good as new (its statement was reset);
        // after any other error it is closed.
        if (result.is_ok() || interrupted) && conn.is_autocommit() {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            if idle.len() < MAX_IDLE {
                idle.push(conn);
            }
        }
        match result {
            Ok(answer) => {
                self.answered.fetch_add(1, Ordering::Relaxed);
                Some(answer)
            }
            Err(err) => {
                // Too long, or something odd: sqlx reads it (and reports what is wrong).
                tracing::debug!(error = %err, "inline read handed to sqlx");
                self.handed_over.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }
}

/// A read transaction, ended when dropped. Its `BEGIN` and `ROLLBACK` are prepared once per
/// connection (rusqlite's own transactions prepare them anew each time: 2% of a page's time).
struct Snapshot<'c>(&'c Connection);

impl<'c> Snapshot<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Snapshot<'c>> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Snapshot(conn))
    }
}

impl std::ops::Deref for Snapshot<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.0
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // Nothing was written, so ending it cannot lose anything; if it cannot end, the
        // connection is not reused (`is_autocommit` is checked before it goes back).
        let ended = self.0.prepare_cached("ROLLBACK").and_then(|mut rollback| rollback.execute([]));
        if let Err(err) = ended {
            tracing::debug!(error = %err, "inline read: the read transaction did not end");
        }
    }
}

/// Each fault `select` reads (its result columns those of [`crate::rows::FaultRow`]), lent
/// to `give` from its row, without comments; the faults' ids, in order.
fn each_fault(
    conn: &Connection,
    select: &Sql,
    mut give: impl FnMut(&FaultRef<'_>),
) -> rusqlite::Result<Vec<String>> {
    // Not what the schema promises: sqlx's path reads it again and says so.
    fn corrupt<E>(_: E) -> rusqlite::Error {
        rusqlite::Error::InvalidQuery
    }
    fn text<'r>(row: &'r rusqlite::Row<'_>, column: usize) -> rusqlite::Result<&'r str> {
        row.get_ref(column)?.as_str().map_err(corrupt)
    }
    fn int(row: &rusqlite::Row<'_>, column: usize) -> rusqlite::Result<i64> {
        row.get_ref(column)?.as_i64().map_err(corrupt)
    }
    let mut prepared = prepare(conn, select)?;
    let mut rows = prepared.raw_query();
    let mut ids = Vec::new();
    while let Some(row) = rows.next()? {
        let fault = FaultRef {
            id: text(row, 0)?,
            customer_id: text(row, 1)?,
            resource_id: text(row, 2)?,
            microservice_id: text(row, 3)?,
            fault_type: text(row, 4)?,
            status: text(row, 5)?.parse().map_err(corrupt)?,
            severity: text(row, 6)?.parse().map_err(corrupt)?,
            message: text(row, 7)?,
            cause: text(row, 8)?,
            created_at: int(row, 9)?,
            resolved_at: row.get_ref(10)?.as_i64_or_null().map_err(corrupt)?,
            resource_ancestry_path: text(row, 11)?,
            site_id: row.get_ref(12)?.as_str_or_null().map_err(corrupt)?,
            ttl: int(row, 13)?,
            comments: &[],
        };
        ids.push(fault.id.to_owned());
        give(&fault);
    }
    Ok(ids)
}

/// The comments of the faults `ids`, each fault's oldest first.
fn comments_of(conn: &Connection, ids: &[&str]) -> rusqlite::Result<Vec<crate::rows::CommentRow>> {
    let mut comments = Vec::new();
    if ids.is_empty() {
        return Ok(comments);
    }
    let mut prepared = prepare(conn, &crate::sql::comments_of(ids))?;
    let mut rows = prepared.raw_query();
    while let Some(row) = rows.next()? {
        comments.push((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?, row.get(4)?));
    }
    Ok(comments)
}

/// `statement` prepared (from the connection's cache) with its parameters bound.
fn prepare<'c>(conn: &'c Connection, statement: &Sql) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let (text, order) = statement.positional();
    let mut prepared = conn.prepare_cached(text)?;
    for (slot, &i) in order.iter().enumerate() {
        let at = slot + 1;
        match &statement.params[i] {
            Param::Text(v) => prepared.raw_bind_parameter(at, v.as_str())?,
            Param::Int(v) => prepared.raw_bind_parameter(at, *v)?,
            Param::OptInt(v) => prepared.raw_bind_parameter(at, *v)?,
            Param::OptText(v) => prepared.raw_bind_parameter(at, v.as_deref())?,
        }
    }
    Ok(prepared)
}
