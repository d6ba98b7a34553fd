//! Sites' heartbeats and the detection of sites gone silent: [`crate::Heartbeats`] on PostgreSQL.

use super::*;

#[async_trait]
impl Heartbeats for PostgresStore {
    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Written<Vec<String>>> {
        retry_deadlocks("heartbeats", || async {
            let mut tx = self.pool.begin().await?;
            let resolved =
                record_heartbeats_in(&mut tx, customer_id, beats, at, retention_seconds, actor, idem).await?;
            tx.commit().await?;
            Ok(resolved)
        })
        .await
    }

    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
        retry_deadlocks("offline detection", || async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(crate::heartbeat::SWEEP_PLANNER_SETTINGS).execute(&mut *tx).await?;
            let handled = detect_offline_in(&mut tx, policy, now, retention_seconds, limit, after).await?;
            tx.commit().await?;
            Ok(handled)
        })
        .await
    }
}
