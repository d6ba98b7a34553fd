//! Short reads on the caller's thread.
//!
//! sqlx runs each SQLite connection on a thread of its own and hands every statement to it and
//! its answer back: two thread switches per statement, which cost far more than SQLite takes to
//! read a fault. The reads that answer the hot paths (one fault, a page of a list) are short, so
//! they run here, through connections of this module's own (`rusqlite`, on the same SQLite
//! library), on the thread that asks.
//!
//! A read that turns out long must not hold that thread (an async worker) up: each read has a
//! budget of [`BUDGET`], checked by SQLite's progress handler; past it the read is interrupted
//! and `None` tells the caller to read through sqlx instead, as it does when anything else goes
//! wrong here. So this path can make a read faster, never different or failed.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use faultline_core::fault::{Fault, FaultRef, FaultSink};

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
    /// Reads of the database file at `path` (which the writer has opened, so it exists).
    pub(super) fn new(path: PathBuf) -> InlineReads {
        InlineReads {
            path,
            idle: Mutex::default(),
            answered: AtomicU64::new(0),
            handed_over: AtomicU64::new(0),
        }
    }

    /// `(answered here, handed to sqlx)` so far.
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.answered.load(Ordering::Relaxed), self.handed_over.load(Ordering::Relaxed))
    }

    fn open(&self) -> rusqlite::Result<Connection> {
        // A reader waits for a lock only while the log is being recovered; not here.
        super::rusqlite_connection(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY,
            Duration::ZERO,
            super::READER_CACHE_KIB,
        )
    }

    /// The faults `select` reads (a statement whose result columns are those of
    /// [`crate::rows::FaultRow`] and then [`super::packed::comments_column`]), with their
    /// comments, or `None` when they could not be read here within [`BUDGET`]. One statement
    /// is one read transaction: the comments are read in the same snapshot as their faults.
    pub(super) fn faults(&self, select: &Sql) -> Option<Vec<Fault>> {
        self.run(|conn| {
            let mut faults = Vec::new();
            each_fault(conn, select, |f| faults.push(f.to_fault()))?;
            Ok(faults)
        })
    }

    /// [`InlineReads::faults`], each fault given to `sink` straight from its row (no field
    /// copied), in the statement's order; `false` when they could not be read here (the sink
    /// may then hold part of them).
    pub(super) fn faults_into(&self, select: &Sql, sink: &mut dyn FaultSink) -> bool {
        self.run(|conn| each_fault(conn, select, |f| sink.fault(f))).is_some()
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
        if result.is_ok() || interrupted {
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

/// Each fault `select` reads (its result columns those of [`crate::rows::FaultRow`], then
/// [`super::packed::comments_column`]), lent to `give` from its row.
fn each_fault(conn: &Connection, select: &Sql, mut give: impl FnMut(&FaultRef<'_>)) -> rusqlite::Result<()> {
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
    use crate::rows::{FAULT_COLUMNS, fault_column as at};
    const COMMENTS: usize = FAULT_COLUMNS.len();
    let mut prepared = prepare(conn, select)?;
    let mut rows = prepared.raw_query();
    while let Some(row) = rows.next()? {
        let comments = match row.get_ref(COMMENTS)?.as_str_or_null().map_err(corrupt)? {
            None => Vec::new(),
            Some(packed) => super::packed::read_comments(packed).ok_or(rusqlite::Error::InvalidQuery)?,
        };
        give(&FaultRef {
            id: text(row, const { at("id") })?,
            customer_id: text(row, const { at("customer_id") })?,
            resource_id: text(row, const { at("resource_id") })?,
            microservice_id: text(row, const { at("microservice_id") })?,
            fault_type: text(row, const { at("type") })?,
            status: text(row, const { at("status") })?.parse().map_err(corrupt)?,
            severity: text(row, const { at("severity") })?.parse().map_err(corrupt)?,
            message: text(row, const { at("message") })?,
            cause: text(row, const { at("cause") })?,
            created_at: int(row, const { at("created_at") })?,
            resolved_at: row.get_ref(const { at("resolved_at") })?.as_i64_or_null().map_err(corrupt)?,
            resource_ancestry_path: text(row, const { at("resource_ancestry_path") })?,
            site_id: row.get_ref(const { at("site_id") })?.as_str_or_null().map_err(corrupt)?,
            ttl: int(row, const { at("ttl") })?,
            comments: &comments,
        });
    }
    Ok(())
}

/// `statement` prepared (from the connection's cache) with its parameters bound.
pub(super) fn prepare<'c>(
    conn: &'c Connection,
    statement: &Sql,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
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
