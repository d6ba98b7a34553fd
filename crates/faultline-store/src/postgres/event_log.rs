//! The event log: [`crate::EventLog`] on PostgreSQL.

use super::*;

#[async_trait]
impl EventLog for PostgresStore {
    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>> {
        let rows: Vec<rows::EventRow> = sqlx::query_as(
            "SELECT seq, fault_id, kind, actor, at, detail FROM fault_events WHERE customer_id = $1 AND fault_id = $2 ORDER BY seq",
        )
        .bind(customer_id)
        .bind(fault_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::fault_event).collect())
    }

    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead> {
        // The page and the snapshot bounds come from one statement, so from one snapshot.
        type Row = (
            Option<i64>,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<String>,
            i64,
            i64,
        );
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "SELECT e.seq, e.customer_id, e.fault_id, e.kind, e.at, e.detail, \
             pg_snapshot_xmin(s.snap)::text::bigint, pg_snapshot_xmax(s.snap)::text::bigint \
             FROM (SELECT pg_current_snapshot() AS snap) s LEFT JOIN LATERAL \
             (SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2) e ON true",
            rows::LOG_COLUMNS
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let horizon = rows.first().map(|r| Horizon { xmin: r.6, xmax: r.7 });
        let entries = rows
            .into_iter()
            .filter_map(|(seq, customer_id, fault_id, kind, at, detail, _, _)| {
                Some(rows::logged_event((seq?, customer_id?, fault_id?, kind?, at?, detail?)))
            })
            .collect();
        Ok(LogRead { entries, horizon })
    }

    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)> {
        let (head, xmin, xmax): (i64, i64, i64) = sqlx::query_as(
            "SELECT COALESCE(MAX(seq), 0), pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
             pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM fault_events",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((head, Some(Horizon { xmin, xmax })))
    }

    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        customer_log_from(&self.pool, customer_id, after, upto, limit).await
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(LOG_CHANNEL).await?;
        let (wake, wakeups) = tokio::sync::mpsc::channel(1);
        tokio::spawn(forward_notifications(listener, wake));
        Ok(Some(wakeups))
    }
}
