//! faultline's storage: the [`Store`] trait and its two backends.
//!
//! The backend is chosen once, from the database URL's scheme: `sqlite://PATH` (the file is
//! created if missing) or `postgres://…`. Each backend owns its SQL and its migrations; the
//! conformance suite in `tests/` runs the same tests against both.
#![forbid(unsafe_code)]

pub mod analytics;
mod analytics_index;
mod analytics_indexes;
mod capabilities;
mod db;
mod error;
mod heartbeat;
mod idempotency;
mod ingest;
#[cfg(test)]
mod migration_tests;
mod migrations;
mod model;
pub mod outage;
mod rows;
mod sql;
mod store;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

use faultline_core::fault::Fault;

pub use capabilities::{
    Admin, Analytics, Comments, ConsoleSessions, Customers, EventLog, Faults, Heartbeats, IdempotencyKeys,
    Leases, Sites, Tokens, WebhookOutbox, Webhooks,
};
pub use db::sqlite_file::{BackupCheck, RunningLock, SqliteFile};
pub use error::{DatabaseError, StoreError, StoreResult};
pub use model::*;
pub use sql::{FaultQuery, TopQuery};
pub use store::{PostgresStore, SqlStore, SqliteStore};

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            )))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Open the store named by `url` and bring its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::from_url(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::open(url).await?),
        Backend::Postgres => Arc::new(PostgresStore::open(url).await?),
    };
    store.migrate().await?;
    Ok(store)
}

/// Logs that migration `version` is being applied: at `info` on a database that had some
/// (an upgrade's migration may rebuild a table, and the log says what the wait is for), at
/// `debug` on a new one, built in milliseconds.
pub(crate) fn log_migration(version: i64, new_database: bool) {
    if new_database {
        tracing::debug!(version, "applying migration");
    } else {
        tracing::info!(version, "applying migration");
    }
}

/// Everything faultline keeps: every capability of `capabilities/`, on one backend.
/// Every method scoped to a customer takes the customer id first; the caller's credential,
/// never the request body, supplies it. A write that may carry an `Idempotency-Key` answers
/// [`Written`]: done now, or replayed from before. Callers bring the capabilities' methods
/// into scope with `use faultline_store::prelude::*`.
pub trait Store:
    Admin
    + Customers
    + Faults
    + Comments
    + EventLog
    + Analytics
    + Tokens
    + IdempotencyKeys
    + Heartbeats
    + Leases
    + Webhooks
    + WebhookOutbox
    + Sites
    + ConsoleSessions
    + 'static
{
}

impl<
    T: Admin
        + Customers
        + Faults
        + Comments
        + EventLog
        + Analytics
        + Tokens
        + IdempotencyKeys
        + Heartbeats
        + Leases
        + Webhooks
        + WebhookOutbox
        + Sites
        + ConsoleSessions
        + 'static,
> Store for T
{
}

/// The capability traits, for calling their methods on a [`Store`].
pub mod prelude {
    pub use crate::Store;
    pub use crate::capabilities::{
        Admin, Analytics, Comments, ConsoleSessions, Customers, EventLog, Faults, Heartbeats,
        IdempotencyKeys, Leases, Sites, Tokens, WebhookOutbox, Webhooks,
    };
}

/// What [`Store::bulk_insert_faults`] reads.
#[derive(Debug)]
pub enum BulkFaults {
    /// New faults, inserted in order.
    Chunk(Vec<Fault>),
    /// The load is complete: commit it.
    End,
}

impl BulkFaults {
    /// The error of a load whose channel closed before [`BulkFaults::End`].
    pub(crate) fn cut_short() -> StoreError {
        StoreError::NotWritten("the faults to load stopped before their end".into())
    }
}

/// [`Store::bulk_insert_faults`] as a transaction of [`Store::insert_faults`] per chunk.
async fn insert_chunk_by_chunk<S: Faults + ?Sized>(
    store: &S,
    mut chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
    actor: &str,
    mut inserted: Box<dyn FnMut(usize) + Send>,
) -> StoreResult<()> {
    loop {
        match chunks.recv().await {
            Some(BulkFaults::Chunk(chunk)) => {
                store.insert_faults(&chunk, actor, None).await?;
                inserted(chunk.len());
            }
            Some(BulkFaults::End) => return Ok(()),
            None => return Err(BulkFaults::cut_short()),
        }
    }
}
