//! Read-only access tokens, their signing keys and their short links: [`crate::Tokens`] on PostgreSQL.

use super::*;

#[async_trait]
impl Tokens for PostgresStore {
    async fn ensure_signing_key(&self, candidate: &SigningKey) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_SIGNING_KEYS).await?;
        let active: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")
            .fetch_one(&mut *tx)
            .await?;
        if active == 0 {
            bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), candidate).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_signing_key(&self, new: &SigningKey, verify_until: i64) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_SIGNING_KEYS).await?;
        sqlx::query(rows::RETIRE_SIGNING_KEYS)
            .bind(new.created_at)
            .bind(verify_until)
            .execute(&mut *tx)
            .await?;
        bind_signing_key(sqlx::query(rows::INSERT_SIGNING_KEY), new).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR verify_until > $1 \
             ORDER BY (retired_at IS NULL) DESC, created_at DESC"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::signing_key).collect())
    }

    async fn insert_access_token(
        &self,
        token: &AccessToken,
        short_code: &str,
        idem: Option<&Idempotency<'_, AccessToken>>,
    ) -> StoreResult<Written<()>> {
        self.write(sql::insert_access_token(token, short_code)?, idem, token).await
    }

    async fn get_access_token(&self, token_id: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!("SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = $1"))
            .bind(token_id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(rows::access_token).transpose()
    }

    async fn list_access_tokens(&self, customer_id: &str, limit: u32) -> StoreResult<Vec<AccessToken>> {
        let rows: Vec<rows::AccessTokenRow> = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(customer_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(rows::access_token).collect()
    }

    async fn revoke_access_token(&self, customer_id: &str, token_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND customer_id = $2",
        )
        .bind(token_id)
        .bind(customer_id)
        .bind(at)
        .execute(&self.pool)
        .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for u in uses {
            sqlx::query(rows::RECORD_TOKEN_USE)
                .bind(u.count)
                .bind(u.last_used_at)
                .bind(&u.token_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn short_link_token(&self, code: &str) -> StoreResult<Option<AccessToken>> {
        let row = sqlx::query_as(&format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = (SELECT token_id FROM short_links WHERE code = $1)"
        ))
        .bind(code)
        .fetch_optional(&self.pool)
        .await?;
        row.map(rows::access_token).transpose()
    }

    async fn scope_ids_exist(
        &self,
        customer_id: &str,
        scope: &faultline_core::scope::TokenScope,
    ) -> StoreResult<bool> {
        for statement in sql::scope_id_counts(customer_id, scope) {
            let (expected, sql) = statement;
            let found: i64 = count(&sql).fetch_one(&self.pool).await?;
            if found != expected {
                return Ok(false);
            }
        }
        Ok(true)
    }
}
