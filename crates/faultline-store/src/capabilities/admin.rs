//! The database itself.

use async_trait::async_trait;

use crate::db::{Database, Read};
use crate::sql::query;
use crate::store::{Exclusive, SqlStore, exclusive};
use crate::{Backend, StoreError, StoreResult};

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

#[async_trait]
impl<D: Database> Admin for SqlStore<D> {
    fn backend(&self) -> Backend {
        D::BACKEND
    }

    async fn migrate(&self) -> StoreResult<()> {
        self.write(|c| {
            Box::pin(async move {
                exclusive(c, Exclusive::Migrate).await?;
                c.execute_script(
                    "CREATE TABLE IF NOT EXISTS faultline_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
                )
                .await?;
                let applied: Vec<i64> = c.scalars(&query("SELECT version FROM faultline_migrations")).await?;
                for (version, sql) in crate::migrations::migrations(c.backend()) {
                    if applied.contains(version) {
                        continue;
                    }
                    crate::log_migration(*version, applied.is_empty());
                    c.execute_script(sql).await.map_err(|err| match err {
                        StoreError::Database(source)
                        | StoreError::Unavailable(source)
                        | StoreError::StorageFull(source) => {
                            StoreError::Migration { version: *version, source }
                        }
                        other => other,
                    })?;
                    let record = query("INSERT INTO faultline_migrations (version, applied_at) VALUES ($1, $2)")
                        .arg(*version)
                        .arg(faultline_core::time::now_micros());
                    c.execute(&record).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn applied_migrations(&self) -> StoreResult<Vec<i64>> {
        let versions: Vec<(i64,)> =
            self.fetch_all(query("SELECT version FROM faultline_migrations ORDER BY version")).await?;
        Ok(versions.into_iter().map(|(v,)| v).collect())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.fetch_all::<(i64,)>(query("SELECT 1")).await?;
        Ok(())
    }

    async fn close(&self) {
        self.db.close().await;
    }

    async fn analyze(&self) -> StoreResult<()> {
        if D::BACKEND == Backend::Postgres {
            self.read(Read::Long, |c| Box::pin(async move { c.execute_script("ANALYZE").await })).await?;
        }
        Ok(())
    }

    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>> {
        let mut fresh = [0u8; 32];
        faultline_core::secret::random_bytes(&mut fresh);
        let name = name.to_owned();
        self.write(move |c| {
            Box::pin(async move {
                let insert = query(
                    "INSERT INTO shared_secrets (name, secret, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
                )
                .arg(name.as_str())
                .arg(fresh.as_slice())
                .arg(faultline_core::time::now_micros());
                c.execute(&insert).await?;
                c.scalar(&query("SELECT secret FROM shared_secrets WHERE name = $1").arg(name)).await
            })
        })
        .await
    }
}
