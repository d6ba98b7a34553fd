//! Copying SQLite's write-ahead log into the database file, beside the writer, so that the log
//! stays short under sustained writes.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;

use super::sqlite::{Role, Work, open_connection};
use crate::error::StoreError;

/// How often the write-ahead log is copied into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// A log longer than this (in 4 KiB frames) is checkpointed to its end on the writer's
/// connection, so that it starts again from its beginning.
const RESTART_LOG_AFTER_FRAMES: i64 = 16_384;

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
///    writer's own connection, between two of its transactions: only what was appended during
///    the last pass is left to copy, and nothing can be appended meanwhile. Not while a reader
///    holds frames back (a long read on an older snapshot): then writes would wait for a copy
///    as long as that backlog.
///
/// SQLite starts the log again from its beginning only when a write transaction begins while
/// every frame is copied. A busy writer begins its next transaction while a background pass
/// still runs, so without step 2 the log grows without bound under steady ingest; and
/// `journal_size_limit` cuts the file back once it has started again. Ends when the store is
/// closed.
pub(crate) async fn checkpoint_in_background(path: PathBuf, writer: tokio::sync::mpsc::Sender<Work>) {
    let mut tick = tokio::time::interval(CHECKPOINT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut conn: Option<Connection> = None;
    loop {
        tick.tick().await;
        let mut taken = match conn.take() {
            Some(conn) => conn,
            None => match open_connection(&path, Role::Checkpointer) {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "WAL checkpointer cannot open the database; retrying");
                    continue;
                }
            },
        };
        let passes = tokio::task::spawn_blocking(move || {
            let result = background_passes(&mut taken);
            (taken, result)
        })
        .await;
        let Ok((back, result)) = passes else { return };
        conn = Some(back);
        match result {
            Ok(true) => {
                let (done, finished) = tokio::sync::oneshot::channel();
                let work = Work::Outside(Box::new(move |conn: &mut Connection| {
                    if let Err(err) = checkpoint(conn) {
                        checkpoint_failed(err, "WAL checkpoint on the writer failed");
                    }
                    let _ = done.send(());
                }));
                if writer.send(work).await.is_err() {
                    return;
                }
                let _ = finished.await;
            }
            Ok(false) => {}
            Err(err) => checkpoint_failed(err, "WAL checkpoint failed; retrying"),
        }
        if writer.is_closed() {
            return;
        }
    }
}

/// Log a failed checkpoint, or count it against its outage (a full disk) rather than log it
/// every 500 ms.
fn checkpoint_failed(err: rusqlite::Error, what: &str) {
    let err = StoreError::from(err);
    crate::outage::report(&err);
    crate::outage::warn_unless_outage(&err, what);
}

/// Step 1 of [`checkpoint_in_background`]; whether step 2 is due.
fn background_passes(conn: &mut Connection) -> rusqlite::Result<bool> {
    let (mut log, mut copied) = (0, 0);
    for _ in 0..MAX_BACKGROUND_PASSES {
        let before = log;
        (log, copied) = checkpoint(conn)?;
        // A log shorter than at the previous pass has started again already.
        if log <= RESTART_LOG_AFTER_FRAMES || log < before {
            return Ok(false);
        }
        if log - before < CAUGHT_UP_FRAMES {
            break;
        }
    }
    // Frames a pass could not copy are held by a reader on an older snapshot: the writer's
    // connection could not copy them either, and would hold up writes trying. Next time.
    Ok(log - copied < CAUGHT_UP_FRAMES)
}

/// One `PASSIVE` checkpoint: (frames in the log, frames copied).
fn checkpoint(conn: &mut Connection) -> rusqlite::Result<(i64, i64)> {
    let (busy, log, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?;
    tracing::debug!(busy, log, copied, "WAL checkpoint");
    Ok((log, copied))
}
