//! The database itself: [`crate::Admin`] on PostgreSQL.

use super::*;

#[async_trait]
impl Admin for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.locked_tx(LOCK_MIGRATE).await?;
        (&mut *tx).execute(sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS faultline_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        ))
        .await?;
        let applied: Vec<i64> =
            sqlx::query_scalar("SELECT version FROM faultline_migrations").fetch_all(&mut *tx).await?;
        for (version, sql) in MIGRATIONS {
            if applied.contains(version) {
                continue;
            }
            crate::log_migration(*version, applied.is_empty());
            (&mut *tx).execute(sqlx::raw_sql(sql)).await.map_err(|source| StoreError::Migration {
                version: *version,
                source: DatabaseError(source),
            })?;
            sqlx::query("INSERT INTO faultline_migrations (version, applied_at) VALUES ($1, $2)")
                .bind(version)
                .bind(faultline_core::time::now_micros())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        Ok(sqlx::query_scalar("SELECT version FROM faultline_migrations ORDER BY version")
            .fetch_all(&self.pool)
            .await?)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reads.close().await;
        self.pool.close().await;
    }

    async fn analyze(&self) -> StoreResult<()> {
        sqlx::raw_sql("ANALYZE").execute(&self.pool).await?;
        Ok(())
    }

    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        faultline_core::secret::random_bytes(&mut fresh);
        sqlx::query("INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .bind(faultline_core::time::now_micros())
            .execute(&self.pool)
            .await?;
        Ok(sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await?)
    }
}
