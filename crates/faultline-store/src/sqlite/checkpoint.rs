//! Copying the write-ahead log into the database file, beside the writer, so that the log
//! stays short under sustained writes.

use super::*;

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
/// still runs, so without step 2 the log grows without bound under steady ingest, and the
/// writes that extend it wait for the kernel to allocate and zero the file's new blocks. Ends
/// when the store is closed.
pub(super) async fn checkpoint_in_background(checkpointer: SqlitePool, writer: SqlitePool) {
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
