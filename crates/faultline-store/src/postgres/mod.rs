//! The production backend: PostgreSQL, shared by every replica. Cross-process rules
//! (one migration at a time, one bootstrap) are enforced with transaction-scoped advisory
//! locks, so any number of replicas may start at once.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::Executor;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};

use crate::error::{DatabaseError, StoreError, StoreResult};
use crate::model::{
    AccessToken, ApiKey, ApiKeyWithHash, Customer, EventResult, FaultEvent, Horizon, Idempotency, Lease,
    LogRead, LoggedEvent, NewApiKey, SigningKey, TokenUse, TopResource, Written,
};
use crate::prelude::*;
use crate::rows::{self, ACCESS_TOKEN_COLUMNS, API_KEY_COLUMNS, CUSTOMER_COLUMNS, SIGNING_KEY_COLUMNS};
use crate::sql::{self, FaultQuery, Sql, TopQuery};
use crate::{Backend, Resolution};
use faultline_core::fault::Fault;

mod reads;

pub(crate) const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_foundation.sql")),
    (2, include_str!("migrations/0002_faults.sql")),
    (3, include_str!("migrations/0003_tokens.sql")),
    (4, include_str!("migrations/0004_lifecycle.sql")),
    (5, include_str!("migrations/0005_ingest.sql")),
    (6, include_str!("migrations/0006_idempotency.sql")),
    (7, include_str!("migrations/0007_heartbeats_and_stream.sql")),
    (8, include_str!("migrations/0008_ancestors_without_cascade.sql")),
    (9, include_str!("migrations/0009_ancestors_with_severity.sql")),
    (10, include_str!("migrations/0010_comment_counts.sql")),
];

/// Advisory lock keys, one per cross-replica critical section.
const LOCK_MIGRATE: i64 = 0x6661_756c_0001;
const LOCK_BOOTSTRAP: i64 = 0x6661_756c_0002;
const LOCK_SIGNING_KEYS: i64 = 0x6661_756c_0003;

pub struct PostgresStore {
    pool: PgPool,
    /// One fault, or a page of a list, in one round trip (`reads`).
    reads: reads::Reads,
}

impl PostgresStore {
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?;
        Self::open_with(options).await
    }

    pub async fn open_with(options: PgConnectOptions) -> StoreResult<PostgresStore> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options.clone())
            .await?;
        Ok(PostgresStore { pool, reads: reads::Reads::new(options) })
    }

    async fn locked_tx(&self, lock: i64) -> StoreResult<sqlx::Transaction<'static, sqlx::Postgres>> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(lock).execute(&mut *tx).await?;
        Ok(tx)
    }

    /// Run `statements` in one transaction, with `idem`'s key when given.
    async fn write<T: ?Sized>(
        &self,
        statements: Vec<Sql>,
        idem: Option<&Idempotency<'_, T>>,
        result: &T,
    ) -> StoreResult<Written<()>> {
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem
            && let Some(answer) = claim_key(&mut tx, idem).await?
        {
            return Ok(Written::Replayed(answer));
        }
        for statement in &statements {
            execute(statement).execute(&mut *tx).await.map_err(|e| StoreError::on_constraint(e, "fault"))?;
        }
        if let Some(idem) = idem {
            fulfil_key(&mut tx, idem, result).await?;
        }
        tx.commit().await?;
        Ok(Written::Done(()))
    }

    async fn apply_events_once(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>> {
        let mut tx = self.pool.begin().await?;
        let written = apply_events_in(&mut tx, customer_id, events, retention_seconds, actor, idem).await?;
        if let Written::Done(_) = written {
            tx.commit().await?;
        }
        Ok(written)
    }
}

// The capabilities, one file each.
mod admin;
mod analytics;
mod comments;
mod customers;
mod event_log;
mod faults;
mod heartbeats;
mod idempotency;
mod leases;
mod tokens;

async fn insert_api_key(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    key: NewApiKey,
) -> StoreResult<ApiKey> {
    sqlx::query(rows::INSERT_API_KEY)
        .bind(&key.id)
        .bind(&key.customer_id)
        .bind(&key.user_id)
        .bind(&key.name)
        .bind(&key.lookup)
        .bind(&key.secret_hash)
        .bind(key.permissions.to_string())
        .bind(key.rate_limit_per_minute.map(i64::from))
        .bind(key.created_at)
        .execute(&mut **tx)
        .await
        .map_err(|e| StoreError::on_constraint(e, "customer"))?;
    Ok(rows::api_key_from_new(key))
}

/// A statement with its parameters bound.
fn execute(statement: &Sql) -> sqlx::query::Query<'_, sqlx::Postgres, PgArguments> {
    sql::bind_params!(sqlx::query(&statement.text), statement)
}

fn bind_signing_key<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, PgArguments>,
    key: &'q SigningKey,
) -> sqlx::query::Query<'q, sqlx::Postgres, PgArguments> {
    query.bind(&key.kid).bind(key.secret_key.as_slice()).bind(key.public_key.as_slice()).bind(key.created_at)
}

/// A `SELECT COUNT(…)` statement with its parameters bound.
fn count(statement: &Sql) -> sqlx::query::QueryScalar<'_, sqlx::Postgres, i64, PgArguments> {
    sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
}

crate::idempotency::idempotency_fns!(sqlx::Postgres);
rows::customer_log_fn!(sqlx::Postgres);
/// Whether the multi-key lookups of the ingest and of heartbeats keep prepared statements. Not
/// on PostgreSQL: after a few runs it caches a generic plan, and one made while a new
/// deployment's `sites` or `faults` table was nearly empty (not yet analysed) scans the table
/// once it has grown, for every heartbeat and every batch. Planning each run for its values
/// costs little beside a lookup of many keys, and a plan made for them cannot go stale.
/// Values alone do not make a plan right when the statistics are wrong: see
/// `heartbeat::SWEEP_PLANNER_SETTINGS` and `ingest::open_faults_of`.
const CACHE_PLANS_OF_LOOKUPS: bool = false;

crate::ingest::ingest_fns!(sqlx::Postgres, Backend::Postgres);
crate::sql::top_resources_fn!(sqlx::Postgres, Backend::Postgres);

/// Run a write transaction again when it lost a deadlock: concurrent batches that touch the
/// same rows can deadlock on PostgreSQL, and the victim's transaction rolled back whole.
async fn retry_deadlocks<T, F, Fut>(what: &str, mut write: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        match write().await {
            Err(StoreError::Database(err)) if attempt < ATTEMPTS && is_deadlock(&err.0) => {
                tracing::debug!(attempt, what, "write deadlocked with another; retrying");
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// A statement returning rows of type `O`, with its parameters bound.
fn query_rows<O>(statement: &Sql) -> sqlx::query::QueryAs<'_, sqlx::Postgres, O, PgArguments>
where
    O: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sql::bind_params!(sqlx::query_as(&statement.text), statement)
}

crate::heartbeat::heartbeat_fns!(sqlx::Postgres, Backend::Postgres);

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
    conn: sqlx::PgConnection,
}

#[async_trait]
impl Lease for SessionLock {
    async fn still_held(&mut self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&mut self.conn);
        matches!(tokio::time::timeout(Duration::from_secs(5), probe).await, Ok(Ok(_)))
    }
}

/// Did the transaction lose a deadlock or a serialisation conflict (and roll back whole)?
fn is_deadlock(err: &sqlx::Error) -> bool {
    err.as_database_error().and_then(|e| e.code()).is_some_and(|code| code == "40P01" || code == "40001")
}

/// Append one event to the log, inside the caller's transaction.
async fn append_event(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    kind: &str,
    actor: &str,
    detail: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_EVENT)
        .bind(customer_id)
        .bind(fault_id)
        .bind(kind)
        .bind(actor)
        .bind(faultline_core::time::now_micros())
        .bind(detail)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

async fn fault_exists(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<bool> {
    let found: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM faults WHERE id = $1 AND customer_id = $2")
        .bind(fault_id)
        .bind(customer_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(found > 0)
}

async fn insert_comment(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
    comment: &faultline_core::fault::Comment,
    actor: &str,
) -> StoreResult<()> {
    sqlx::query(rows::INSERT_COMMENT)
        .bind(&comment.id)
        .bind(fault_id)
        .bind(customer_id)
        .bind(&comment.user_id)
        .bind(&comment.comment)
        .bind(comment.created_at)
        .execute(&mut *conn)
        .await?;
    // Read by `reads::comments_column`: a fault counted 0 is read without comments.
    sqlx::query("UPDATE faults SET comment_count = comment_count + 1 WHERE id = $1")
        .bind(fault_id)
        .execute(&mut *conn)
        .await?;
    let detail = serde_json::json!({"comment_id": comment.id}).to_string();
    append_event(conn, customer_id, fault_id, "commented", actor, &detail).await
}

/// One fault with its comments.
async fn load_fault(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<Option<Fault>> {
    let statement = fault_select(customer_id, fault_id);
    let row = sql::bind_params!(sqlx::query(&statement.text), statement).fetch_optional(&mut *conn).await?;
    row.as_ref().map(reads::fault).transpose()
}

/// The `SELECT` of one fault, with its comments.
fn fault_select(customer_id: &str, fault_id: &str) -> Sql {
    sql::fault_select(customer_id, fault_id, reads::comments_column())
}

/// The newest unresolved fault of a (resource, type): its id and `created_at`.
async fn open_fault_of(
    conn: &mut <sqlx::Postgres as sqlx::Database>::Connection,
    customer_id: &str,
    resource_id: &str,
    fault_type: &str,
) -> StoreResult<Option<(String, i64)>> {
    Ok(sqlx::query_as(rows::OPEN_FAULT_OF)
        .bind(customer_id)
        .bind(resource_id)
        .bind(fault_type)
        .fetch_optional(&mut *conn)
        .await?)
}
