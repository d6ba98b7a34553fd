//! Loading a long run of new faults (`faultline demo`) into SQLite.
//!
//! Through the store's usual writer, a long load was slow three ways: each statement was a round
//! trip to sqlx's connection thread, each 10,000-fault transaction wrote the pages it touched to
//! the write-ahead log again (so the log carried the database several times over), and every row
//! went into faults' ten indexes one B-tree search at a time.
//!
//! Here the same statements ([`sql::insert_faults`]) run on one connection of this module's
//! own (`rusqlite`, on the same SQLite library), on a blocking thread, in **one** transaction:
//!
//! - nothing of the faults is committed unless all of them are (up to [`BulkFaults::End`]), so
//!   a load that fails or is killed leaves them out;
//! - when the `faults` table is empty at the start, its secondary indexes are dropped inside
//!   that transaction and created again from their own SQL (read from `sqlite_schema`, so a
//!   later migration's index is included) once the rows are in: building an index from the
//!   finished table sorts it once instead of searching it once per row. Readers never see
//!   the table without them: the drop is not committed until they are back.
//!
//! The transaction holds SQLite's write lock for the whole load: other writers wait (up to the
//! busy timeout) and then fail. `serve --demo` loads before it listens, and `faultline demo` is
//! a command of its own, so nothing of faultline's writes meanwhile.

use std::path::Path;

use rusqlite::Connection;

use super::Conn;
use super::sqlite::Lite;

use crate::error::{StoreError, StoreResult};
use crate::{BulkFaults, sql};

/// Insert every chunk `chunks` yields, up to [`BulkFaults::End`], in one transaction of a new
/// connection to the database file at `path`; see the module documentation. Runs on the
/// calling (blocking) thread.
pub(crate) fn load(
    path: &Path,
    chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
    actor: &str,
    inserted: &mut dyn FnMut(usize),
) -> StoreResult<()> {
    let failed = |e: rusqlite::Error| StoreError::NotWritten(format!("the bulk load failed: {e}"));
    let conn = insert_all(path, chunks, actor, inserted)?;
    // The log now holds every page the load wrote: copy it into the database file and start it
    // again from nothing, rather than leave a log as large as the load behind. The load is
    // committed already, so this is only tried: a reader holding an old snapshot, or the
    // store's own checkpointer at work, leaves it to the background checkpoints.
    let checkpoint: rusqlite::Result<(i64, i64, i64)> =
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        });
    match checkpoint {
        Ok((0, _, _)) => {}
        Ok((_, log, copied)) => {
            tracing::warn!(log, copied, "after the bulk load: the log was not truncated (busy)")
        }
        Err(err) => tracing::warn!(error = %failed(err), "after the bulk load: the log was not checkpointed"),
    }
    Ok(())
}

/// Insert and commit everything, as the module documentation says; the connection, for the
/// checkpoint after.
fn insert_all(
    path: &Path,
    mut chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
    actor: &str,
    inserted: &mut dyn FnMut(usize),
) -> StoreResult<Connection> {
    let failed = |e: rusqlite::Error| StoreError::NotWritten(format!("the bulk load failed: {e}"));
    let mut conn = super::sqlite::open_connection(path, super::sqlite::Role::BulkLoad).map_err(failed)?;
    conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
    let loaded = load_in_transaction(&mut conn, &mut chunks, actor, inserted);
    match loaded {
        Ok(()) => conn.execute_batch("COMMIT").map_err(failed)?,
        Err(err) => {
            // Everything is rolled back, the dropped indexes included.
            let _ = conn.execute_batch("ROLLBACK");
            return Err(err);
        }
    }
    Ok(conn)
}

fn load_in_transaction(
    conn: &mut Connection,
    chunks: &mut tokio::sync::mpsc::Receiver<BulkFaults>,
    actor: &str,
    inserted: &mut dyn FnMut(usize),
) -> StoreResult<()> {
    let failed = |e: rusqlite::Error| StoreError::NotWritten(format!("the bulk load failed: {e}"));
    let empty: bool =
        conn.query_row("SELECT NOT EXISTS (SELECT 1 FROM faults)", [], |row| row.get(0)).map_err(failed)?;
    let deferred = if empty { secondary_indexes(conn).map_err(failed)? } else { Vec::new() };
    for (name, _) in &deferred {
        conn.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\""))).map_err(failed)?;
    }
    loop {
        match chunks.blocking_recv() {
            Some(BulkFaults::Chunk(chunk)) => {
                for statement in sql::insert_faults(&chunk, actor, crate::Backend::Sqlite) {
                    super::run_to_end(Lite(conn).execute(&statement))?;
                }
                inserted(chunk.len());
            }
            Some(BulkFaults::End) => break,
            None => return Err(BulkFaults::cut_short()),
        }
    }
    for (_, create) in &deferred {
        conn.execute_batch(create).map_err(failed)?;
    }
    Ok(())
}

/// `(name, CREATE INDEX statement)` of each index of `faults` that SQL created (not the one
/// behind its primary key, which SQLite keeps itself).
fn secondary_indexes(conn: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut statement = conn.prepare(
        "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND tbl_name = 'faults' AND sql IS NOT NULL \
         ORDER BY name",
    )?;
    statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?.collect()
}
