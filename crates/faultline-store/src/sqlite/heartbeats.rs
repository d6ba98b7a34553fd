//! Sites' heartbeats and the detection of sites gone silent: [`crate::Heartbeats`] on SQLite.

use super::*;

#[async_trait]
impl Heartbeats for SqliteStore {
    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Written<Vec<String>>> {
        let mut tx = self.write_tx().await?;
        let resolved =
            record_heartbeats_in(&mut tx, customer_id, beats, at, retention_seconds, actor, idem).await?;
        tx.commit().await?;
        Ok(resolved)
    }

    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)> {
        let mut tx = self.write_tx().await?;
        let handled = detect_offline_in(&mut tx, policy, now, retention_seconds, limit, after).await?;
        tx.commit().await?;
        Ok(handled)
    }
}
