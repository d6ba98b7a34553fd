//! The event log: [`crate::EventLog`] on SQLite.

use super::*;

#[async_trait]
impl EventLog for SqliteStore {
    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>> {
        let rows: Vec<rows::EventRow> = sqlx::query_as(
            "SELECT seq, fault_id, kind, actor, at, detail FROM fault_events WHERE customer_id = $1 AND fault_id = $2 ORDER BY seq",
        )
        .bind(customer_id)
        .bind(fault_id)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(rows::fault_event).collect())
    }

    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead> {
        let rows: Vec<rows::LogRow> = sqlx::query_as(&format!(
            "SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2",
            rows::LOG_COLUMNS
        ))
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        Ok(LogRead { entries: rows.into_iter().map(rows::logged_event).collect(), horizon: None })
    }

    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)> {
        let head: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM fault_events").fetch_one(&self.reader).await?;
        Ok((head.unwrap_or(0), None))
    }

    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        customer_log_from(&self.reader, customer_id, after, upto, limit).await
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        Ok(None)
    }
}
