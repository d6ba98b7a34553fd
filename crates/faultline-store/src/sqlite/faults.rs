//! Faults: [`crate::Faults`] on SQLite.

use super::*;

#[async_trait]
impl Faults for SqliteStore {
    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<Written<()>> {
        match idem {
            None => {
                let insert = Insert::Faults { faults: faults.to_vec(), actor: actor.to_owned() };
                self.group_write(insert).await.map(Written::Done)
            }
            Some(idem) => {
                self.write_once(sql::insert_faults(faults, actor, Backend::Sqlite), idem, faults).await
            }
        }
    }

    async fn bulk_insert_faults(
        &self,
        chunks: tokio::sync::mpsc::Receiver<crate::BulkFaults>,
        actor: &str,
        mut inserted: Box<dyn FnMut(usize) + Send>,
    ) -> StoreResult<()> {
        let Some(file) = self.file.clone() else {
            // In memory: through the writer.
            return crate::insert_chunk_by_chunk(self, chunks, actor, inserted).await;
        };
        let actor = actor.to_owned();
        tokio::task::spawn_blocking(move || bulk_load::load(&file, chunks, &actor, &mut *inserted))
            .await
            .map_err(|e| StoreError::NotWritten(format!("the bulk load failed: {e}")))?
    }

    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>> {
        Ok(self.read_faults(&fault_select(customer_id, fault_id), true).await?.pop())
    }

    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
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
        let mut tx = self.write_tx().await?;
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
        self.ingest.apply(&self.writer, customer_id, events, retention_seconds, actor, idem).await
    }

    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize> {
        let mut tx = self.write_tx().await?;
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
        let select = list_select(customer_id, query);
        let mut faults = self.read_faults(&select, reads_inline(query)).await?;
        newest_first(&mut faults);
        Ok(faults)
    }

    async fn list_faults_into(
        &self,
        customer_id: &str,
        query: &FaultQuery<'_>,
        sink: &mut dyn FaultSink,
    ) -> StoreResult<()> {
        let select = list_select(customer_id, query);
        // Inline rows come in the statement's order, newest first.
        if reads_inline(query)
            && let Some(reads) = &self.inline_reads
        {
            if reads.faults_into(&select, sink) {
                return Ok(());
            }
            sink.clear();
        }
        let mut faults = read_packed_faults(&self.reader, &select).await?;
        newest_first(&mut faults);
        for fault in &faults {
            sink.fault(&fault.as_ref());
        }
        Ok(())
    }

    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>> {
        // One read transaction sees one snapshot of the database: counts and samples agree.
        // The index's lock before the transaction's connection (see `AnalyticsIndexes`).
        let mut index = match &self.analytics {
            Some(indexes) => indexes.lock(customer_id).await,
            None => None,
        };
        let mut tx = self.reader.begin().await?;
        if let Some(locked) = index.as_mut()
            && let Err(err) = analytics_index::catch_up(&mut tx, locked, customer_id).await
        {
            tracing::warn!(customer_id, error = %err, "analytics index not brought up to date; answering by SQL");
            index = None;
        }
        let top = match index {
            None => read_top_resources(&mut tx, customer_id, query).await?,
            Some(index) => {
                // The counts from the index as of this transaction's snapshot, the samples
                // read in it.
                let counted = FaultFilter {
                    from: Some(query.since),
                    scope: query.scope.cloned(),
                    ..FaultFilter::default()
                };
                let (limit, since) = (query.limit, query.since);
                let counts =
                    off_the_workers(move || index.top_groups(&counted, GroupBy::Resource, limit, since))
                        .await;
                with_samples(&mut tx, customer_id, query, counts).await?
            }
        };
        tx.commit().await?;
        Ok(top)
    }
}
