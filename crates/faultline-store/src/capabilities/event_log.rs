//! The event log.

use async_trait::async_trait;

use crate::db::Database;
use crate::rows;
use crate::sql::query;
use crate::store::SqlStore;
use crate::{Backend, FaultEvent, Horizon, LogRead, LoggedEvent, StoreResult};

/// The event log: every change to a fault, in one sequence, read by a fault's timeline and by the
/// live stream.
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Every event of one of the customer's faults, oldest first (also after deletion).
    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>>;

    /// Up to `limit` log entries after sequence number `after`, any customer's, in order.
    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead>;

    /// The highest sequence number in the log (0 when empty), with the horizon it was read at.
    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)>;

    /// Up to `limit` of the customer's log entries with `after < seq <= upto`, in order.
    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>>;

    /// Wake-ups sent when any replica commits to the event log (PostgreSQL `LISTEN`); `None`
    /// where only this process writes (SQLite). Notifications can be lost when the connection
    /// drops, so readers also poll.
    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>>;
}

#[async_trait]
impl<D: Database> EventLog for SqlStore<D> {
    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>> {
        let select = query(
            "SELECT seq, fault_id, kind, actor, at, detail FROM fault_events \
             WHERE customer_id = $1 AND fault_id = $2 ORDER BY seq",
        )
        .arg(customer_id)
        .arg(fault_id);
        let rows: Vec<rows::EventRow> = self.fetch_all(select).await?;
        Ok(rows.into_iter().map(rows::fault_event).collect())
    }

    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead> {
        if D::BACKEND == Backend::Sqlite {
            // One writer: the log grows in sequence order as readers see it.
            let select = query(format!(
                "SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                rows::LOG_COLUMNS
            ))
            .arg(after)
            .arg(limit);
            let rows: Vec<rows::LogRow> = self.fetch_all(select).await?;
            return Ok(LogRead {
                entries: rows.into_iter().map(rows::logged_event).collect(),
                horizon: None,
            });
        }
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
        let select = query(format!(
            "SELECT e.seq, e.customer_id, e.fault_id, e.kind, e.at, e.detail, \
             pg_snapshot_xmin(s.snap)::text::bigint, pg_snapshot_xmax(s.snap)::text::bigint \
             FROM (SELECT pg_current_snapshot() AS snap) s LEFT JOIN LATERAL \
             (SELECT {} FROM fault_events WHERE seq > $1 ORDER BY seq LIMIT $2) e ON true",
            rows::LOG_COLUMNS
        ))
        .arg(after)
        .arg(limit);
        let rows: Vec<Row> = self.fetch_all(select).await?;
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
        if D::BACKEND == Backend::Sqlite {
            let (head,): (i64,) = self
                .fetch_optional(query("SELECT COALESCE(MAX(seq), 0) FROM fault_events"))
                .await?
                .unwrap_or((0,));
            return Ok((head, None));
        }
        let select = query(
            "SELECT COALESCE(MAX(seq), 0), pg_snapshot_xmin(pg_current_snapshot())::text::bigint, \
             pg_snapshot_xmax(pg_current_snapshot())::text::bigint FROM fault_events",
        );
        let (head, xmin, xmax): (i64, i64, i64) = self
            .fetch_optional(select)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("no log head".into()))?;
        Ok((head, Some(Horizon { xmin, xmax })))
    }

    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>> {
        let select = query(rows::customer_log_sql()).arg(customer_id).arg(after).arg(upto).arg(limit);
        let rows: Vec<rows::LogRow> = self.fetch_all(select).await?;
        Ok(rows.into_iter().map(rows::logged_event).collect())
    }

    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>> {
        self.db.log_notifications().await
    }
}
