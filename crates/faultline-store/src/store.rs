//! [`SqlStore`]: the store on a [`Database`], every capability written once for both backends
//! (each in its file of `capabilities/`), and the statements those capabilities share.

use faultline_core::fault::{Comment, Fault};

use crate::Backend;
use crate::analytics_indexes::AnalyticsIndexes;
use crate::db::postgres::PgDb;
use crate::db::sqlite::SqliteDb;
use crate::db::{BoxFuture, Conn, Database, Read};
use crate::error::StoreResult;
use crate::rows;
use crate::sql::{self, Sql, query};

/// The store on the database `D`.
pub struct SqlStore<D> {
    pub(crate) db: D,
    /// Analytics answered from memory (SQLite; `None`: from SQL).
    pub(crate) analytics: Option<AnalyticsIndexes>,
}

// The backends' database types are the store's own: callers name `SqliteStore` and
// `PostgresStore`, never the type inside.

/// The embedded backend: one SQLite file in WAL mode (see `db/sqlite.rs`).
#[allow(private_interfaces)]
pub type SqliteStore = SqlStore<SqliteDb>;
/// The production backend: PostgreSQL, shared by every replica (see `db/postgres.rs`).
#[allow(private_interfaces)]
pub type PostgresStore = SqlStore<PgDb>;

impl SqlStore<SqliteDb> {
    /// Open (creating if missing) the database file named by a `sqlite://PATH` URL.
    pub async fn open(url: &str) -> StoreResult<SqliteStore> {
        let db = SqliteDb::open(url).await?;
        let analytics = Some(AnalyticsIndexes::new(db.readers()));
        Ok(SqlStore { db, analytics })
    }

    /// This store with every analytics figure read by SQL instead of from the
    /// [analytics index](crate::analytics_index): for checking one against the other.
    pub fn without_analytics_index(mut self) -> SqliteStore {
        self.analytics = None;
        self
    }

    /// Load the customer's analytics index now (it is otherwise loaded in the background on
    /// the first analytics request, which SQL answers meanwhile).
    pub async fn load_analytics_index(&self, customer_id: &str) -> StoreResult<()> {
        match &self.analytics {
            Some(indexes) => indexes.load(customer_id).await,
            None => Ok(()),
        }
    }
}

impl SqlStore<PgDb> {
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        Ok(SqlStore { db: PgDb::open(url).await?, analytics: None })
    }

    pub async fn open_with(options: sqlx::postgres::PgConnectOptions) -> StoreResult<PostgresStore> {
        Ok(SqlStore { db: PgDb::open_with(options).await?, analytics: None })
    }
}

#[allow(private_bounds)]
impl<D: Database> SqlStore<D> {
    /// Run `work` in a write transaction (perhaps more than once: see [`Database::write`]).
    pub(crate) async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, StoreResult<T>> + Clone + Send + Sync + 'static,
    {
        self.db.write(Box::new(move || -> crate::db::Job<T> { Box::new(work.clone()) })).await
    }

    /// Run `work` as a read (perhaps more than once: see [`Database::read`]).
    pub(crate) async fn read<T, F>(&self, how: Read, work: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut dyn Conn) -> BoxFuture<'c, StoreResult<T>> + Clone + Send + Sync + 'static,
    {
        self.db.read(how, &|| -> crate::db::Job<T> { Box::new(work.clone()) }).await
    }

    /// Run one statement as a short read: its rows.
    pub(crate) async fn fetch_all<T: crate::db::FromRow + Send + 'static>(
        &self,
        sql: Sql,
    ) -> StoreResult<Vec<T>> {
        self.read(Read::Short, move |c| Box::pin(async move { c.fetch_all(&sql).await })).await
    }

    /// Run one statement as a short read: its first row.
    pub(crate) async fn fetch_optional<T: crate::db::FromRow + Send + 'static>(
        &self,
        sql: Sql,
    ) -> StoreResult<Option<T>> {
        self.read(Read::Short, move |c| Box::pin(async move { c.fetch_optional(&sql).await })).await
    }

    /// Run one statement in a write transaction: how many rows it changed.
    pub(crate) async fn execute(&self, sql: Sql) -> StoreResult<u64> {
        self.write(move |c| Box::pin(async move { c.execute(&sql).await })).await
    }
}

/// Advisory locks of PostgreSQL, one per cross-replica critical section.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Exclusive {
    Migrate,
    Bootstrap,
    SigningKeys,
}

impl Exclusive {
    /// The advisory lock's key.
    fn key(self) -> i64 {
        match self {
            Exclusive::Migrate => 0x6661_756c_0001,
            Exclusive::Bootstrap => 0x6661_756c_0002,
            Exclusive::SigningKeys => 0x6661_756c_0003,
        }
    }
}

/// Hold `lock` until the transaction ends, so that one replica at a time runs what follows. On
/// SQLite nothing: its one writer runs one write transaction at a time.
pub(crate) async fn exclusive(c: &mut dyn Conn, lock: Exclusive) -> StoreResult<()> {
    if c.backend() == Backend::Postgres {
        c.execute(&query("SELECT pg_advisory_xact_lock($1)").arg(lock.key())).await?;
    }
    Ok(())
}

/// Append one event to the log, inside the caller's transaction.
pub(crate) async fn append_event(
    c: &mut dyn Conn,
    customer_id: &str,
    fault_id: &str,
    kind: &str,
    actor: &str,
    detail: &str,
) -> StoreResult<()> {
    let insert = query(rows::INSERT_EVENT)
        .arg(customer_id)
        .arg(fault_id)
        .arg(kind)
        .arg(actor)
        .arg(faultline_core::time::now_micros())
        .arg(detail);
    c.execute(&insert).await?;
    Ok(())
}

pub(crate) async fn fault_exists(c: &mut dyn Conn, customer_id: &str, fault_id: &str) -> StoreResult<bool> {
    let found: i64 = c
        .scalar(
            &query("SELECT COUNT(*) FROM faults WHERE id = $1 AND customer_id = $2")
                .arg(fault_id)
                .arg(customer_id),
        )
        .await?;
    Ok(found > 0)
}

pub(crate) async fn insert_comment(
    c: &mut dyn Conn,
    customer_id: &str,
    fault_id: &str,
    comment: &Comment,
    actor: &str,
) -> StoreResult<()> {
    let insert = query(rows::INSERT_COMMENT)
        .arg(&comment.id)
        .arg(fault_id)
        .arg(customer_id)
        .arg(&comment.user_id)
        .arg(&comment.comment)
        .arg(comment.created_at);
    c.execute(&insert).await?;
    // Read by `derived_columns`: a fault counted 0 is read without comments.
    c.execute(&query("UPDATE faults SET comment_count = comment_count + 1 WHERE id = $1").arg(fault_id))
        .await?;
    let detail = serde_json::json!({"comment_id": comment.id}).to_string();
    append_event(c, customer_id, fault_id, "commented", actor, &detail).await
}

/// The result columns read with a fault but not stored in its row, on the fault's alias `f`:
///
/// - `comments`: the fault's comments oldest first as a JSON array of `[id, user_id, comment,
///   created_at]` arrays, or NULL when it has none. `faults.comment_count` says which
///   (migration 10), so the faults without comments, nearly all, cost no lookup.
/// - `site_name`: the name of the fault's site, one primary-key lookup of `sites` (NULL when
///   the fault has no site, or the site no name).
pub(crate) fn derived_columns(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "CASE WHEN f.comment_count > 0 THEN (SELECT json_group_array(json_array(c.id, c.user_id, \
             c.comment, c.created_at)) FROM (SELECT * FROM comments WHERE fault_id = f.id \
             ORDER BY created_at, id) c) END AS comments, \
             (SELECT s.name FROM sites s WHERE s.customer_id = f.customer_id AND s.site_id = f.site_id) AS site_name"
        }
        Backend::Postgres => {
            "CASE WHEN f.comment_count > 0 THEN (SELECT json_agg(json_build_array(c.id, c.user_id, \
             c.comment, c.created_at) ORDER BY c.created_at, c.id)::text FROM comments c \
             WHERE c.fault_id = f.id) END AS comments, \
             (SELECT s.name FROM sites s WHERE s.customer_id = f.customer_id AND s.site_id = f.site_id) AS site_name"
        }
    }
}

/// The names of [`derived_columns`], for an outer select of a union of fault selects.
pub(crate) const DERIVED_COLUMN_NAMES: &str = "comments, site_name";

/// The faults `select` reads (its result columns those of [`rows::FaultRow`], then the
/// [`derived_columns`]), with their comments and site names, in its order.
pub(crate) async fn read_faults(c: &mut dyn Conn, select: &Sql) -> StoreResult<Vec<Fault>> {
    let mut faults = Vec::new();
    c.for_each(select, &mut |row| {
        faults.push(fault_with_comments(row)?);
        Ok(())
    })
    .await?;
    Ok(faults)
}

/// A fault from a row of [`rows::FaultRow`]'s columns followed by the [`derived_columns`].
fn fault_with_comments(row: &dyn crate::db::Row) -> StoreResult<Fault> {
    use crate::db::FromRow;
    let mut fault = rows::fault(rows::FaultRow::from_row(row)?)?;
    if let Some(json) = row.text(rows::FAULT_COLUMNS.len())? {
        let comments: Vec<(String, String, String, i64)> = serde_json::from_str(json)
            .map_err(|e| crate::StoreError::Corrupt(format!("comments of fault {}: {e}", fault.id)))?;
        fault.comments = comments
            .into_iter()
            .map(|(id, user_id, comment, created_at)| Comment { id, user_id, comment, created_at })
            .collect();
    }
    fault.site_name = row.text(rows::FAULT_COLUMNS.len() + 1)?.map(str::to_owned);
    Ok(fault)
}

/// The `SELECT` of one fault, with its comments.
pub(crate) fn fault_select(backend: Backend, customer_id: &str, fault_id: &str) -> Sql {
    sql::fault_select(customer_id, fault_id, derived_columns(backend))
}

/// One fault with its comments.
pub(crate) async fn load_fault(
    c: &mut dyn Conn,
    customer_id: &str,
    fault_id: &str,
) -> StoreResult<Option<Fault>> {
    let select = fault_select(c.backend(), customer_id, fault_id);
    Ok(read_faults(c, &select).await?.pop())
}

/// The newest unresolved fault of a (resource, type): its id and `created_at`.
pub(crate) async fn open_fault_of(
    c: &mut dyn Conn,
    customer_id: &str,
    resource_id: &str,
    fault_type: &str,
) -> StoreResult<Option<(String, i64)>> {
    c.fetch_optional(&query(rows::OPEN_FAULT_OF).arg(customer_id).arg(resource_id).arg(fault_type)).await
}

/// Run `attempt` again when its transaction lost a deadlock or a serialisation conflict (on
/// PostgreSQL, concurrent batches that touch the same rows can; the victim rolled back whole).
pub(crate) async fn retry_conflicts<T, F, Fut>(what: &str, mut attempt: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = StoreResult<T>>,
{
    const ATTEMPTS: u32 = 5;
    let mut tried = 1;
    loop {
        match attempt().await {
            Err(err) if tried < ATTEMPTS && err.failure() == Some(crate::error::Failure::Retry) => {
                tracing::debug!(attempt = tried, what, "write deadlocked with another; retrying");
                tried += 1;
            }
            other => return other,
        }
    }
}
