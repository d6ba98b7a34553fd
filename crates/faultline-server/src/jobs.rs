//! Singleton jobs: background work that exactly one replica runs at a time (the offline
//! detector, the retention sweeper, and with [`lease`] the webhook worker, which runs a loop of
//! its own). Each replica asks the store for the job's lease every
//! [`TAKEOVER_POLL`]; the holder runs the job every `period` and checks the lease before each
//! run. On PostgreSQL the lease is an advisory lock held by a connection, so when its replica
//! dies, the lock goes with the connection and another replica takes over within about
//! [`TAKEOVER_POLL`]. On SQLite the one process always holds it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use faultline_store::Store;

/// How often a replica without a job's lease asks for it.
pub const TAKEOVER_POLL: Duration = Duration::from_secs(1);

/// Wait until this replica holds `job`'s lease (asking every [`TAKEOVER_POLL`]), and say so.
/// The holder calls [`lease_lost`] when the lease's [`faultline_store::Lease::still_held`]
/// turns false, then asks again.
pub async fn lease(store: &dyn Store, job: &'static str) -> Box<dyn faultline_store::Lease> {
    loop {
        match store.lease(job).await {
            Ok(Some(lease)) => {
                tracing::info!(job, "this replica now runs the job");
                metrics::gauge!("faultline_singleton_leader", "job" => job).set(1.0);
                return lease;
            }
            Ok(None) => {}
            Err(err) => {
                faultline_store::outage::warn_unless_outage(&err, "cannot ask for a job's lease; retrying")
            }
        }
        tokio::time::sleep(TAKEOVER_POLL).await;
    }
}

/// The lease [`lease`] gave is gone: say so, and wait before asking again.
pub async fn lease_lost(job: &'static str) {
    tracing::warn!(job, "lost the job's lease; asking for it again");
    metrics::gauge!("faultline_singleton_leader", "job" => job).set(0.0);
    tokio::time::sleep(TAKEOVER_POLL).await;
}

/// Run `work` every `period` for as long as this replica holds `job`'s lease, asking for the
/// lease again whenever it is lost. Never returns; abort the task to stop it.
pub async fn run_singleton<F, Fut>(store: Arc<dyn Store>, job: &'static str, period: Duration, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        let mut lease = lease(&*store, job).await;
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if !lease.still_held().await {
                break;
            }
            work().await;
        }
        lease_lost(job).await;
    }
}
