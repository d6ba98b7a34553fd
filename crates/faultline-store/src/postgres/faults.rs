//! Faults: [`crate::Faults`] on PostgreSQL.

use super::*;

#[async_trait]
impl Faults for PostgresStore {
    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<Written<()>> {
        self.write(sql::insert_faults(faults, actor, Backend::Postgres), idem, faults).await
    }

    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>> {
        Ok(self.reads.faults(&fault_select(customer_id, fault_id)).await?.pop())
    }

    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        let removed: Option<rows::RemovedRow> = sqlx::query_as(rows::DELETE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(removed) = removed else {
            return Ok(false);
        };
        execute(&sql::delete_ancestors(&removed)).execute(&mut *tx).await?;
        append_event(&mut tx, customer_id, fault_id, "deleted", actor, &rows::removed_detail(&removed))
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>> {
        let Resolution { at, ttl, comment } = resolution;
        let mut tx = self.pool.begin().await?;
        if let Some(idem) = idem
            && let Some(answer) = claim_key(&mut tx, idem).await?
        {
            return Ok(Written::Replayed(answer));
        }
        if !fault_exists(&mut tx, customer_id, fault_id).await? {
            return Ok(Written::Done(None));
        }
        let resolved = sqlx::query(rows::RESOLVE_FAULT)
            .bind(fault_id)
            .bind(customer_id)
            .bind(at)
            .bind(ttl)
            .execute(&mut *tx)
            .await?;
        // Resolving a resolved fault changes nothing, not even by adding its comment again.
        if resolved.rows_affected() == 1 {
            if let Some(comment) = comment {
                insert_comment(&mut tx, customer_id, fault_id, comment, actor).await?;
            }
            append_event(&mut tx, customer_id, fault_id, "resolved", actor, "{}").await?;
        }
        let fault = load_fault(&mut tx, customer_id, fault_id).await?;
        if let (Some(idem), Some(fault)) = (idem, &fault) {
            fulfil_key(&mut tx, idem, fault).await?;
        }
        tx.commit().await?;
        Ok(Written::Done(fault))
    }

    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>> {
        retry_deadlocks("ingest batch", || {
            self.apply_events_once(customer_id, events, retention_seconds, actor, idem)
        })
        .await
    }

    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize> {
        let mut tx = self.pool.begin().await?;
        let gone: Vec<rows::RemovedRow> = sqlx::query_as(rows::SWEEP_EXPIRED)
            .bind(now_seconds)
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        for removed in &gone {
            execute(&sql::delete_ancestors(removed)).execute(&mut *tx).await?;
            let (fault_id, customer_id) = (&removed.0, &removed.1);
            append_event(&mut tx, customer_id, fault_id, "expired", "system", &rows::removed_detail(removed))
                .await?;
        }
        tx.commit().await?;
        Ok(gone.len())
    }

    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>> {
        self.reads
            .faults(&sql::list_faults(customer_id, query, Backend::Postgres, reads::comments_column()))
            .await
    }

    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>> {
        // REPEATABLE READ gives both statements one snapshot: counts and samples agree.
        let mut tx = self.pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY").await?;
        let top = read_top_resources(&mut tx, customer_id, query).await?;
        tx.commit().await?;
        Ok(top)
    }
}
