//! Singleton jobs: [`crate::Leases`] on SQLite.

use super::*;

#[async_trait]
impl Leases for SqliteStore {
    async fn lease(&self, _job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        Ok(Some(Box::new(OnlyProcess)))
    }
}
