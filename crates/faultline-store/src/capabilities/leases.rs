//! Leases of singleton jobs.

use async_trait::async_trait;

use crate::db::Database;
use crate::store::SqlStore;
use crate::{Lease, StoreResult};

/// Singleton jobs: which replica runs each.
#[async_trait]
pub trait Leases: Send + Sync {
    /// Try to become the one replica that runs `job`: `None` when another holds it. On
    /// PostgreSQL the lease is a session advisory lock on a connection of its own, so it ends
    /// when that connection (or its process) dies; on SQLite there is only one process.
    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>>;
}

#[async_trait]
impl<D: Database> Leases for SqlStore<D> {
    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        self.db.lease(job).await
    }
}
