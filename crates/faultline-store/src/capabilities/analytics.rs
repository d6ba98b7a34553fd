//! Analytics.

use async_trait::async_trait;

use crate::StoreResult;
use crate::analytics;
use crate::analytics_index::CustomerIndex;
use crate::db::{Database, FromRow, Read};
use crate::sql::Sql;
use crate::store::SqlStore;

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

#[async_trait]
impl<D: Database> Analytics for SqlStore<D> {
    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.top_groups(&f, group, limit, now)).await?
        {
            return Ok(answer);
        }
        self.read_all(analytics::top_groups(customer_id, filter, group, limit, now)).await
    }

    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: analytics::Slots,
        group: Option<(analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>> {
        let (f, owned) =
            (filter.clone(), group.map(|(g, listed, other)| (g, listed.to_vec(), other.to_owned())));
        let answer = self
            .answer_from_index(customer_id, move |index| {
                let group = owned.as_ref().map(|(g, listed, other)| (*g, listed.as_slice(), other.as_str()));
                index.counts_by_slot(&f, slots, group, now)
            })
            .await?;
        if let Some(answer) = answer {
            return Ok(answer);
        }
        self.read_all(analytics::counts_by_slot(customer_id, filter, slots, group, now)).await
    }

    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<Vec<i64>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.repair_times(&f, now)).await?
        {
            return Ok(answer);
        }
        let rows: Vec<(i64,)> = self.read_all(analytics::repair_times(customer_id, filter, now)).await?;
        Ok(rows.into_iter().map(|(v,)| v).collect())
    }

    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<(String, i64, Option<i64>)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.site_outages(&f, from, to)).await?
        {
            return Ok(answer);
        }
        self.read_all(analytics::site_outages(customer_id, filter, from, to)).await
    }

    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<i64> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.count_open(&f, now)).await?
        {
            return Ok(answer);
        }
        let rows: Vec<(i64,)> = self.read_all(analytics::count_open(customer_id, filter, now)).await?;
        Ok(rows.first().map_or(0, |(n,)| *n))
    }
}

#[allow(private_bounds)]
impl<D: Database> SqlStore<D> {
    /// `answer` from the customer's analytics index, brought up to date first; `None` when this
    /// store reads analytics by SQL or the index is still loading.
    async fn answer_from_index<T: Send + 'static>(
        &self,
        customer_id: &str,
        answer: impl FnOnce(&CustomerIndex) -> T + Send + 'static,
    ) -> StoreResult<Option<T>> {
        let Some(indexes) = &self.analytics else { return Ok(None) };
        indexes.answer(customer_id, move |_, index| Box::pin(async move { Ok(answer(index)) })).await
    }

    /// Every row of an analytics statement (which may read all of a customer's faults).
    async fn read_all<T: FromRow + Send + 'static>(&self, statement: Sql) -> StoreResult<Vec<T>> {
        self.read(Read::Long, move |c| Box::pin(async move { c.fetch_all(&statement).await })).await
    }
}
