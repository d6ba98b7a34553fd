//! Singleton jobs: [`crate::Leases`] on PostgreSQL.

use super::*;

#[async_trait]
impl Leases for PostgresStore {
    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>> {
        // Keyed by schema too, so deployments (and tests) sharing one database do not collide.
        let mut conn = self.pool.acquire().await?;
        let held: bool = sqlx::query_scalar(
            "SELECT pg_try_advisory_lock(hashtextextended(COALESCE(current_schema(), '') || '/' || $1, 0))",
        )
        .bind(job)
        .fetch_one(&mut *conn)
        .await?;
        if !held {
            return Ok(None);
        }
        // If this replica's host dies or is cut off, PostgreSQL notices within about 20 s (TCP
        // keepalives on this session), ends the session and releases the lock.
        let mut conn = conn.detach();
        sqlx::query(
            "SELECT set_config('tcp_keepalives_idle', '10', false), \
             set_config('tcp_keepalives_interval', '3', false), set_config('tcp_keepalives_count', '3', false)",
        )
        .execute(&mut conn)
        .await?;
        Ok(Some(Box::new(SessionLock { conn })))
    }
}
