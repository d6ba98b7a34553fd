//! PostgreSQL through one driver and one pool: sqlx's `PgPool`.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Row as _, TypeInfo};

use super::{Conn, Database, EachRow, Job, MakeJob, Read, Row};
use crate::Backend;
use crate::error::{Failure, StoreError, StoreResult};
use crate::model::Lease;
use crate::sql::{Param, Sql};

/// Connections in the pool at most.
const MAX_CONNECTIONS: u32 = 16;

/// A [`Conn`] on a sqlx PostgreSQL connection (or transaction).
pub(crate) struct Pg<'a>(pub(crate) &'a mut PgConnection);

/// `sql` as a sqlx query with its parameters bound.
fn query(sql: &Sql) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    let query = sqlx::query(&sql.text).persistent(sql.cache_plan);
    sql.params.iter().fold(query, |q, p| match p {
        Param::Text(v) => q.bind(v.as_str()),
        Param::Int(v) => q.bind(*v),
        Param::OptInt(v) => q.bind(*v),
        Param::OptText(v) => q.bind(v.as_deref()),
        Param::Blob(v) => q.bind(v.as_slice()),
    })
}

struct PgRowRef<'r>(&'r PgRow);

fn decode(err: sqlx::Error) -> StoreError {
    StoreError::Corrupt(err.to_string())
}

impl Row for PgRowRef<'_> {
    fn is_null(&self, column: usize) -> StoreResult<bool> {
        use sqlx::ValueRef;
        Ok(self.0.try_get_raw(column).map_err(decode)?.is_null())
    }
    fn int(&self, column: usize) -> StoreResult<Option<i64>> {
        let row = self.0;
        match row.column(column).type_info().name() {
            "INT4" => Ok(row.try_get::<Option<i32>, _>(column).map_err(decode)?.map(i64::from)),
            "INT2" => Ok(row.try_get::<Option<i16>, _>(column).map_err(decode)?.map(i64::from)),
            "BOOL" => Ok(row.try_get::<Option<bool>, _>(column).map_err(decode)?.map(i64::from)),
            _ => row.try_get(column).map_err(decode),
        }
    }
    fn real(&self, column: usize) -> StoreResult<Option<f64>> {
        let row = self.0;
        match row.column(column).type_info().name() {
            "FLOAT8" => row.try_get(column).map_err(decode),
            "FLOAT4" => Ok(row.try_get::<Option<f32>, _>(column).map_err(decode)?.map(f64::from)),
            _ => Ok(self.int(column)?.map(|v| v as f64)),
        }
    }
    fn text(&self, column: usize) -> StoreResult<Option<&str>> {
        self.0.try_get(column).map_err(decode)
    }
    fn blob(&self, column: usize) -> StoreResult<Option<&[u8]>> {
        self.0.try_get(column).map_err(decode)
    }
}

#[async_trait]
impl Conn for Pg<'_> {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn execute(&mut self, sql: &Sql) -> StoreResult<u64> {
        Ok(query(sql).execute(&mut *self.0).await?.rows_affected())
    }

    async fn for_each(&mut self, sql: &Sql, each: &mut EachRow<'_>) -> StoreResult<()> {
        for row in query(sql).fetch_all(&mut *self.0).await? {
            let row = PgRowRef(&row);
            each(&row)?;
        }
        Ok(())
    }

    async fn execute_script(&mut self, script: &str) -> StoreResult<()> {
        // A `&str` without arguments runs as a simple query: several statements at once.
        sqlx::Executor::execute(&mut *self.0, script).await?;
        Ok(())
    }
}

/// The store's PostgreSQL database: one pool.
pub struct PgDb {
    pub(crate) pool: PgPool,
}

impl PgDb {
    pub(crate) async fn open(url: &str) -> StoreResult<PgDb> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        PgDb::open_with(options).await
    }

    pub(crate) async fn open_with(options: PgConnectOptions) -> StoreResult<PgDb> {
        // No `test_before_acquire`: a connection lost while idle fails the one request that
        // takes it, and the pool replaces it; a ping on every acquire would cost every request
        // a round trip.
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(Duration::from_secs(10))
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(PgDb { pool })
    }
}

impl PgDb {
    async fn read_once<T: Send + 'static>(&self, how: Read, job: Job<T>) -> StoreResult<T> {
        if how == Read::Snapshot {
            // REPEATABLE READ gives every statement of the job one snapshot.
            let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
            let result = job(&mut Pg(&mut tx)).await?;
            tx.commit().await?;
            return Ok(result);
        }
        let mut conn = self.pool.acquire().await?;
        let answer = job(&mut Pg(&mut conn)).await;
        if matches!(&answer, Err(err) if err.failure() == Some(Failure::Unavailable)) {
            // Not back to the pool: closed.
            drop(conn.detach());
        }
        answer
    }
}

#[async_trait]
impl Database for PgDb {
    const BACKEND: Backend = Backend::Postgres;

    async fn write<T: Send + 'static>(&self, make: MakeJob<T>) -> StoreResult<T> {
        let mut tx = self.pool.begin().await?;
        let result = make()(&mut Pg(&mut tx)).await?;
        tx.commit().await?;
        Ok(result)
    }

    async fn read<T: Send + 'static>(
        &self,
        how: Read,
        make: &(dyn Fn() -> Job<T> + Send + Sync),
    ) -> StoreResult<T> {
        // Connections are handed out without a ping, so an idle one the server ended (a restart,
        // `pg_terminate_backend`, a proxy closing idle connections) fails its read: it is
        // dropped, and the read sent again, until it is answered or a new connection fails too
        // (at most once per connection the pool can hold).
        let mut attempts = 0;
        loop {
            attempts += 1;
            let answer = self.read_once(how, make()).await;
            match answer {
                Err(err)
                    if err.failure() == Some(Failure::Unavailable)
                        && attempts <= MAX_CONNECTIONS as usize =>
                {
                    tracing::debug!(error = %err, "a read's connection was lost; reading again");
                }
                answer => return answer,
            }
        }
    }

    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        // Keyed by schema too, so deployments (and tests) sharing one database do not collide.
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended(COALESCE(current_schema(), '') || '/' || $1, 0))",
        )
        .bind(job)
        .fetch_one(&mut *conn)
        .await?;
        if !held {
            return Ok(None);
        }
        // If this replica's host dies or is cut off, PostgreSQL notices within about 20 s (TCP
        // keepalives on this session), ends the session and releases the lock.
        let mut conn = conn.detach();
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '10', false), \
             set_config('tcp_keepalives_interval', '3', false), set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut conn)
        .await?;
        Ok(Some(Box::new(SessionLock { conn })))
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(LOG_CHANNEL).await?;
        let (wake, wakeups) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_notifications(listener, wake));
        Ok(Some(wakeups))
    }

    async fn close(&self) {
        self.pool.close().await;
    }
}

/// The channel on which commits to the event log are announced (by a trigger; migration 7).
const LOG_CHANNEL: &str = "faultline_events";

/// Forward `LISTEN` notifications on [`LOG_CHANNEL`] as wake-ups, coalesced, until the
/// receiver is dropped. A lost connection is re-established by the listener; the wake-up sent
/// then makes the reader poll for whatever it missed meanwhile.
async fn forward_notifications(
    mut listener: sqlx::postgres::PgListener,
    wake: tokio::sync::mpsc::Sender<()>,
) {
    loop {
        let received = listener.recv().await;
        if let Err(sqlx::Error::PoolClosed) = received {
            return; // the store was closed
        }
        if let Err(err) = &received {
            tracing::warn!(error = %err, "event log LISTEN connection lost; reconnecting");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = wake.try_send(()) {
            return;
        }
    }
}

/// A singleton job's lease: a session advisory lock, held by a connection taken out of the
/// pool. Dropping it closes the connection, and PostgreSQL releases the lock with it.
struct SessionLock {
    conn: PgConnection,
}

#[async_trait]
impl Lease for SessionLock {
    async fn still_held(&mut self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&mut self.conn);
        matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(_)))
    }
}
