//! The database itself: [`crate::Admin`] on SQLite.

use super::*;

#[async_trait]
impl Admin for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn migrate(&self) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        (&mut *tx).execute(sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS faultline_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
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
            .fetch_all(&self.reader)
            .await?)
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
        self.checkpointer.close().await;
    }

    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        faultline_core::secret::random_bytes(&mut fresh);
        sqlx::query("INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING")
            .bind(name)
            .bind(fresh.as_slice())
            .bind(faultline_core::time::now_micros())
            .execute(&self.writer)
            .await?;
        Ok(sqlx::query_scalar("SELECT secret FROM shared_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.writer)
            .await?)
    }
}
