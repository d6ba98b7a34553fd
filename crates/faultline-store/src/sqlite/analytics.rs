//! Counts and durations over a customer's faults, for `/fault/analytics`, the SLA report and `/fault/recent`: [`crate::Analytics`] on SQLite.

use super::*;

#[async_trait]
impl Analytics for SqliteStore {
    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: crate::analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> crate::StoreResult<Vec<(String, i64)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.top_groups(&f, group, limit, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::top_groups(customer_id, filter, group, limit, now);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: crate::analytics::Slots,
        group: Option<(crate::analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> crate::StoreResult<Vec<(i64, String, i64)>> {
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
        let statement = crate::analytics::counts_by_slot(customer_id, filter, slots, group, now);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<Vec<i64>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.repair_times(&f, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::repair_times(customer_id, filter, now);
        Ok(crate::sql::bind_positional!(sqlx::query_scalar, statement).fetch_all(&self.reader).await?)
    }

    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> crate::StoreResult<Vec<(String, i64, Option<i64>)>> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.site_outages(&f, from, to)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::site_outages(customer_id, filter, from, to);
        Ok(crate::sql::bind_positional!(sqlx::query_as, statement).fetch_all(&self.reader).await?)
    }

    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<i64> {
        let f = filter.clone();
        if let Some(answer) =
            self.answer_from_index(customer_id, move |index| index.count_open(&f, now)).await?
        {
            return Ok(answer);
        }
        let statement = crate::analytics::count_open(customer_id, filter, now);
        Ok(crate::sql::bind_positional!(sqlx::query_scalar, statement).fetch_one(&self.reader).await?)
    }
}
