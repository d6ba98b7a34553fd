//! The event log.

use async_trait::async_trait;

use crate::{FaultEvent, Horizon, LogRead, LoggedEvent, StoreResult};

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
