//! The hot reads on PostgreSQL (one fault, one page of a list): one round trip each.
//!
//! Through sqlx's pool a read of one fault took four round trips to the server: the pool's ping
//! when it handed a connection out (`test_before_acquire`), the fault, its comments, and the
//! ping sqlx 0.8 always sends when a connection goes back to the pool. Each wakes a server
//! process; on the benchmark machine (two cores shared by the load, the service and
//! PostgreSQL) they, not the queries, set the pace.
//!
//! Here:
//!
//! - a fault's comments come in the same statement as the fault, as one JSON column
//!   ([`comments_column`]); one statement is also one snapshot;
//! - connections are this module's own, kept idle in a list and handed out without a ping. An
//!   idle connection that turns out lost (the server restarted or ended it, a proxy closed it)
//!   fails its read: it and every other idle connection are dropped, and the read, which
//!   changes nothing, is sent once more on a new connection. A connection is put back only
//!   when its read got an answer from the server (rows or an SQL error), so a read abandoned
//!   half-way (its request dropped) never leaves a connection mid-protocol behind; such a
//!   request costs the next read a new connection.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Connection, FromRow, Row};
use tokio::sync::Semaphore;

use faultline_core::fault::{Comment, Fault};

use crate::error::{StoreError, StoreResult};
use crate::rows::{self, FaultRow};
use crate::sql::{self, Sql};

/// Connections this module opens at most (beside the pool's).
pub(super) const MAX_CONNECTIONS: usize = 8;
/// An idle connection is closed after this long unused (as sqlx's pool does by default).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a read waits for a connection (as the pool's `acquire_timeout`).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// Run `select`.
async fn query(conn: &mut PgConnection, select: &Sql) -> Result<Vec<PgRow>, sqlx::Error> {
    sql::bind_params!(sqlx::query(&select.text), select).fetch_all(conn).await
}

/// The result column, on the fault's alias `f`, with the fault's comments oldest first as a JSON
/// array of `[id, user_id, comment, created_at]` arrays, or NULL when it has none.
/// `faults.comment_count` says which (migration 10), so the faults without comments, nearly
/// all, cost no lookup.
pub(super) fn comments_column() -> &'static str {
    "CASE WHEN f.comment_count > 0 THEN (SELECT json_agg(json_build_array(c.id, c.user_id, c.comment, \
      c.created_at) ORDER BY c.created_at, c.id)::text FROM comments c WHERE c.fault_id = f.id) END"
}

/// A fault from a row of [`FaultRow`]'s columns followed by a [`comments_column`].
pub(super) fn fault(row: &PgRow) -> StoreResult<Fault> {
    let mut fault = rows::fault(FaultRow::from_row(row)?)?;
    if let Some(json) = row.try_get::<Option<String>, _>(14)? {
        let comments: Vec<(String, String, String, i64)> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("comments of fault {}: {e}", fault.id)))?;
        fault.comments = comments
            .into_iter()
            .map(|(id, user_id, comment, created_at)| Comment { id, user_id, comment, created_at })
            .collect();
    }
    Ok(fault)
}

/// The connection is gone: closed under it (an I/O error), or ended by the server
/// (`57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect now).
fn connection_lost(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| code.starts_with("57P0")),
        _ => false,
    }
}

pub(super) struct Reads {
    options: PgConnectOptions,
    /// Idle connections, each with when it was last put back.
    idle: Mutex<Vec<(PgConnection, Instant)>>,
    connections: Semaphore,
}

impl Reads {
    pub(super) fn new(options: PgConnectOptions) -> Reads {
        Reads { options, idle: Mutex::default(), connections: Semaphore::new(MAX_CONNECTIONS) }
    }

    /// The faults `select` reads (its result columns [`FaultRow`]'s, then a
    /// [`comments_column`]), in its order.
    pub(super) async fn faults(&self, select: &Sql) -> StoreResult<Vec<Fault>> {
        let _permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.connections.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let mut conn = match self.take_idle() {
            Some(mut conn) => match query(&mut conn, select).await {
                Err(err) if connection_lost(&err) => {
                    // Lost while idle, and so, most likely, are the others (a restart, a proxy
                    // that closes idle connections): drop them all, and read once more on a new
                    // connection.
                    drop(conn);
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
                    self.connect().await?
                }
                answer => return self.kept(conn, answer),
            },
            None => self.connect().await?,
        };
        let answer = query(&mut conn, select).await;
        self.kept(conn, answer)
    }

    /// The most recently used idle connection; those idle longer than [`IDLE_TIMEOUT`] are
    /// closed (dropped).
    fn take_idle(&self) -> Option<PgConnection> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
        idle.pop().map(|(conn, _)| conn)
    }

    async fn connect(&self) -> StoreResult<PgConnection> {
        Ok(tokio::time::timeout(ACQUIRE_TIMEOUT, self.options.connect())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)??)
    }

    /// `answer`, after putting `conn` back among the idle ones unless it was lost or this
    /// store is closed.
    fn kept(&self, conn: PgConnection, answer: Result<Vec<PgRow>, sqlx::Error>) -> StoreResult<Vec<Fault>> {
        let lost = matches!(&answer, Err(err) if connection_lost(err));
        if !lost && !self.connections.is_closed() {
            self.idle.lock().unwrap_or_else(|e| e.into_inner()).push((conn, Instant::now()));
        }
        answer?.iter().map(fault).collect()
    }

    /// Close the idle connections; reads after this fail, as the pool's do once it is closed.
    pub(super) async fn close(&self) {
        self.connections.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for (conn, _) in idle {
            conn.close().await.ok();
        }
    }
}
