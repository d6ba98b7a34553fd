//! `Idempotency-Key` answers (claimed and fulfilled inside each write; see [`crate: [`crate::IdempotencyKeys`] on PostgreSQL.

use super::*;

#[async_trait]
impl IdempotencyKeys for PostgresStore {
    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, crate::StoredResponse)>> {
        let row: Option<(String, i64, String)> = sqlx::query_as(crate::idempotency::ANSWER)
            .bind(credential_id)
            .bind(key)
            .bind(after)
            .fetch_optional(&self.pool)
            .await?;
        row.map(crate::idempotency::stored).transpose()
    }

    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize> {
        let result = sqlx::query(crate::idempotency::SWEEP)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() as usize)
    }
}
