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
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::error::{StoreError, StoreResult};
use crate::{BulkFaults, sql};

/// Page cache of the loading connection: the pages the load keeps touching (the last leaf of
/// each index, the ancestry elements' leaves) stay in memory until the commit.
const CACHE_KIB: i64 = 512 * 1024;

/// Insert every chunk `chunks` yields, up to [`BulkFaults::End`], in one transaction of a new
/// connection to the database file at `path`; see the module documentation. Runs on the
/// calling (blocking) thread.
pub(super) fn load(
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
    let mut conn = super::rusqlite_connection(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE,
        Duration::from_secs(10),
        CACHE_KIB,
    )
    .map_err(failed)?;
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(failed)?;
    let empty: bool =
        tx.query_row("SELECT NOT EXISTS (SELECT 1 FROM faults)", [], |row| row.get(0)).map_err(failed)?;
    let deferred = if empty { secondary_indexes(&tx).map_err(failed)? } else { Vec::new() };
    for (name, _) in &deferred {
        tx.execute_batch(&format!("DROP INDEX \"{}\"", name.replace('"', "\"\""))).map_err(failed)?;
    }
    loop {
        match chunks.blocking_recv() {
            Some(BulkFaults::Chunk(chunk)) => {
                for statement in sql::insert_faults(&chunk, actor, crate::Backend::Sqlite) {
                    super::inline_reads::prepare(&tx, &statement)
                        .and_then(|mut prepared| prepared.raw_execute())
                        .map_err(failed)?;
                }
                inserted(chunk.len());
            }
            Some(BulkFaults::End) => break,
            // Dropping `tx` rolls everything back, the dropped indexes included.
            None => return Err(BulkFaults::cut_short()),
        }
    }
    for (_, create) in &deferred {
        tx.execute_batch(create).map_err(failed)?;
    }
    tx.commit().map_err(failed)?;
    Ok(conn)
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
