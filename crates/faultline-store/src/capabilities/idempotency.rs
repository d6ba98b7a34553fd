//! Idempotency-Key answers.

use async_trait::async_trait;

use crate::db::Database;
use crate::sql::query;
use crate::store::SqlStore;
use crate::{StoreResult, StoredResponse};

/// `Idempotency-Key` answers (claimed and fulfilled inside each write; see [`crate::Idempotency`]).
#[async_trait]
pub trait IdempotencyKeys: Send + Sync {
    /// The answer stored with a credential's `Idempotency-Key`, with its request's fingerprint,
    /// unless it was claimed before `after` (or never).
    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, StoredResponse)>>;

    /// Forget up to `limit` `Idempotency-Key`s created before `before`; returns how many.
    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize>;
}

#[async_trait]
impl<D: Database> IdempotencyKeys for SqlStore<D> {
    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, StoredResponse)>> {
        let select = query(crate::idempotency::ANSWER).arg(credential_id).arg(key).arg(after);
        let row: Option<(String, i64, String)> = self.fetch_optional(select).await?;
        row.map(crate::idempotency::stored).transpose()
    }

    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize> {
        Ok(self.execute(query(crate::idempotency::SWEEP).arg(before).arg(limit)).await? as usize)
    }
}
