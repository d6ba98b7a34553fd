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
//! - connections are this module's own, kept idle in a list and handed out without a ping. A
//!   connection that turns out lost (the server restarted or ended it, a proxy closed it)
//!   fails its read: it is dropped and the read, which changes nothing, is sent once more on a
//!   new connection. A connection is only put back after a read that finished, so a read
//!   abandoned half-way (its request dropped) never leaves a connection mid-protocol behind.

use std::sync::Mutex;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgRow};
use sqlx::{ConnectOptions, Connection, FromRow, Row};
use tokio::sync::Semaphore;

use faultline_core::fault::{Comment, Fault};

use crate::error::{StoreError, StoreResult};
use crate::rows::{self, FaultRow};
use crate::sql::{self, FAULT_COLUMNS, Sql};

/// Connections this module opens at most (beside the pool's).
pub(super) const MAX_CONNECTIONS: usize = 8;

/// The result column, on the fault's alias `f`, with the fault's comments oldest first as a JSON
/// array of `[id, user_id, comment, created_at]` arrays, or NULL when it has none.
pub(super) fn comments_column() -> &'static str {
    "(SELECT json_agg(json_build_array(c.id, c.user_id, c.comment, c.created_at) \
      ORDER BY c.created_at, c.id)::text FROM comments c WHERE c.fault_id = f.id)"
}

/// `SELECT` of one fault with its [`comments_column`].
pub(super) fn fault_select(customer_id: &str, fault_id: &str) -> Sql {
    let params = vec![sql::Param::Text(fault_id.to_owned()), sql::Param::Text(customer_id.to_owned())];
    Sql::new(
        format!(
            "SELECT {FAULT_COLUMNS}, {} AS comments FROM faults f WHERE f.id = $1 AND f.customer_id = $2",
            comments_column()
        ),
        params,
    )
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
    idle: Mutex<Vec<PgConnection>>,
    connections: Semaphore,
}

impl Reads {
    pub(super) fn new(options: PgConnectOptions) -> Reads {
        Reads { options, idle: Mutex::default(), connections: Semaphore::new(MAX_CONNECTIONS) }
    }

    /// The faults `select` reads (its result columns [`FaultRow`]'s, then a
    /// [`comments_column`]), in its order.
    pub(super) async fn faults(&self, select: &Sql) -> StoreResult<Vec<Fault>> {
        let _permit = self.connections.acquire().await.map_err(|_| sqlx::Error::PoolClosed)?;
        let mut retried = false;
        loop {
            let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let (mut conn, reused) = match idle {
                Some(conn) => (conn, true),
                None => (self.options.connect().await?, false),
            };
            match sql::bind_params!(sqlx::query(&select.text), select).fetch_all(&mut conn).await {
                Ok(rows) => {
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
                    return rows.iter().map(fault).collect();
                }
                // A connection lost while it was idle: once more, on a new one.
                Err(err) if connection_lost(&err) && reused && !retried => retried = true,
                Err(err) if connection_lost(&err) => return Err(err.into()),
                Err(err) => {
                    self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(conn);
                    return Err(err.into());
                }
            }
        }
    }

    /// Close the idle connections; reads after this fail, as the pool's do once it is closed.
    pub(super) async fn close(&self) {
        self.connections.close();
        let idle = std::mem::take(&mut *self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        for conn in idle {
            conn.close().await.ok();
        }
    }
}
