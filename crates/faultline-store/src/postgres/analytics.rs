//! Counts and durations over a customer's faults, for `/fault/analytics`, the SLA report and `/fault/recent`: [`crate::Analytics`] on PostgreSQL.

use super::*;

#[async_trait]
impl Analytics for PostgresStore {
    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: crate::analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> crate::StoreResult<Vec<(String, i64)>> {
        let statement = crate::analytics::top_groups(customer_id, filter, group, limit, now);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: crate::analytics::Slots,
        group: Option<(crate::analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> crate::StoreResult<Vec<(i64, String, i64)>> {
        let statement = crate::analytics::counts_by_slot(customer_id, filter, slots, group, now);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<Vec<i64>> {
        let statement = crate::analytics::repair_times(customer_id, filter, now);
        Ok(crate::sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> crate::StoreResult<Vec<(String, i64, Option<i64>)>> {
        let statement = crate::analytics::site_outages(customer_id, filter, from, to);
        Ok(crate::sql::bind_params!(sqlx::query_as(&statement.text), statement).fetch_all(&self.pool).await?)
    }

    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> crate::StoreResult<i64> {
        let statement = crate::analytics::count_open(customer_id, filter, now);
        Ok(crate::sql::bind_params!(sqlx::query_scalar(&statement.text), statement)
            .fetch_one(&self.pool)
            .await?)
    }
}
