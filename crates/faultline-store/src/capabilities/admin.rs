//! The database itself.

use async_trait::async_trait;

use crate::{Backend, StoreResult};

/// The database itself: its backend, schema, health, statistics and the secrets shared by every
/// replica.
#[async_trait]
pub trait Admin: Send + Sync {
    fn backend(&self) -> Backend;

    /// Apply pending migrations; safe to call concurrently from several processes.
    async fn migrate(&self) -> StoreResult<()>;

    /// The versions of the migrations applied, oldest first.
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>>;

    /// A cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Close the pools, waiting for connections in use to be returned.
    async fn close(&self);

    /// Bring the query planner's statistics up to date after a bulk load (`faultline demo`).
    /// PostgreSQL otherwise plans with none until autovacuum analyses the new rows: on freshly
    /// loaded faults it sorted a whole site to answer one page of `site=…&severity=…`. SQLite's
    /// plans need no statistics.
    async fn analyze(&self) -> StoreResult<()> {
        Ok(())
    }

    /// A 32-byte random secret shared by every replica, created on first use.
    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>>;
}
