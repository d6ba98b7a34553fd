//! Analytics.

use async_trait::async_trait;

use crate::StoreResult;
use crate::analytics;

/// Counts and durations over a customer's faults, for `/fault/analytics`, the SLA report and
/// `/fault/recent`.
#[async_trait]
pub trait Analytics: Send + Sync {
    /// `(group, count)` of the customer's faults matching `filter` (all of it, `recent`
    /// measured against `now`), largest first, at most `limit`.
    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// `(slot, group, count)` of the customer's faults matching `filter`, by `slots` and, with
    /// `group`, by group (those outside the listed groups counted under the given name).
    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: analytics::Slots,
        group: Option<(analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>>;

    /// Repair times (`resolved_at - created_at`, microseconds) of the matching resolved faults.
    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<Vec<i64>>;

    /// `(site, start, end)` of the customer's `site`-type faults matching `filter` (sites and
    /// scope; not its window) that overlap `[from, to)`; `end` is `None` while open.
    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<(String, i64, Option<i64>)>>;

    /// How many of the matching faults are unresolved.
    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<i64>;
}
