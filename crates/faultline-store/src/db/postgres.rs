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
    /// `make`'s job in a transaction. A connection the server ended while it sat idle in the
    /// pool fails at `BEGIN`, before anything of the job ran: the transaction is begun again
    /// on another (at most once per connection the pool can hold), so that after a restart or
    /// `pg_terminate_backend` writes do not fail once per dead connection.
    async fn write_once<T: Send + 'static>(&self, make: MakeJob<T>) -> StoreResult<T> {
        let mut attempts = 0;
        let mut tx = loop {
            attempts += 1;
            match connection(self.pool.begin()).await {
                Ok(tx) => break tx,
                // Not when no connection came free in time: that would only wait again.
                Err(err) if !matches!(err, sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed) => {
                    let err = StoreError::from(err);
                    if err.failure() != Some(Failure::Unavailable) || attempts > MAX_CONNECTIONS as usize {
                        return Err(err);
                    }
                    tracing::debug!(error = %err, "a write's connection was lost at BEGIN; beginning again");
                }
                Err(err) => return Err(err.into()),
            }
        };
        let result = make()(&mut Pg(&mut tx)).await?;
        tx.commit().await?;
        Ok(result)
    }

    pub(crate) async fn open(url: &str) -> StoreResult<PgDb> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        PgDb::open_with(options).await
    }

    pub(crate) async fn open_with(options: PgConnectOptions) -> StoreResult<PgDb> {
        // No `test_before_acquire`: a connection lost while idle fails the one request that
        // takes it, and the pool replaces it; a ping on every acquire would cost every request
        // a round trip.
        //
        // One connection first, on its own: the pool retries a refused connection until its
        // acquire timeout and then reports only that it timed out; a start-up that cannot
        // reach the database should say why.
        use sqlx::ConnectOptions;
        match tokio::time::timeout(ACQUIRE_TIMEOUT, options.connect()).await {
            Ok(Ok(first)) => drop(first),
            Ok(Err(err)) => return Err(err.into()),
            Err(_) => return Err(sqlx::Error::PoolTimedOut.into()),
        }
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        Ok(PgDb { pool })
    }
}

/// How long a request waits for a connection: for one to come free in the pool, or for a new
/// one to be opened (the pool retries a refused connection until then, so that a database
/// restarting is waited for).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The same while the database is known to be unavailable (see [`crate::outage`]): requests
/// answer 503 within about a second instead of each waiting the whole [`ACQUIRE_TIMEOUT`], and
/// the first that gets a connection once it is back ends the outage.
const ACQUIRE_TIMEOUT_IN_OUTAGE: Duration = Duration::from_secs(1);

/// Whether `err` is the pool giving up on a connection (see [`connection`]), as opposed to a
/// connection lost under a statement.
fn gave_up(err: &StoreError) -> bool {
    matches!(err, StoreError::Unavailable(e) if e.is_pool_timeout())
}

/// `acquire` (a connection or a transaction from the pool), given up on sooner during an
/// outage.
async fn connection<T>(
    acquire: impl std::future::Future<Output = Result<T, sqlx::Error>>,
) -> Result<T, sqlx::Error> {
    if crate::outage::DATABASE_UNAVAILABLE.active() {
        tokio::time::timeout(ACQUIRE_TIMEOUT_IN_OUTAGE, acquire)
            .await
            .unwrap_or(Err(sqlx::Error::PoolTimedOut))
    } else {
        acquire.await
    }
}

impl PgDb {
    async fn read_once<T: Send + 'static>(&self, how: Read, job: Job<T>) -> StoreResult<T> {
        if how == Read::Snapshot {
            // REPEATABLE READ gives every statement of the job one snapshot.
            let mut tx =
                connection(self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")).await?;
            let result = job(&mut Pg(&mut tx)).await?;
            tx.commit().await?;
            return Ok(result);
        }
        let mut conn = connection(self.pool.acquire()).await?;
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
        let started = crate::outage::now();
        let result = self.write_once(make).await;
        crate::outage::observe(&result, true, started);
        result
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
        let started = crate::outage::now();
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let answer = self.read_once(how, make()).await;
            match answer {
                // Not when no connection came in time (the pool gave up, or the database is
                // known to be down): that would only wait again, once per connection.
                Err(err)
                    if err.failure() == Some(Failure::Unavailable)
                        && !gave_up(&err)
                        && attempts <= MAX_CONNECTIONS as usize =>
                {
                    tracing::debug!(error = %err, "a read's connection was lost; reading again");
                }
                answer => break answer,
            }
        };
        crate::outage::observe(&result, false, started);
        result
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
        if let Err(err) = received {
            let err = StoreError::from(err);
            crate::outage::report(&err);
            crate::outage::warn_unless_outage(&err, "event log LISTEN connection failed; reconnecting");
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
