//! Customers and their API keys: [`crate::Customers`] on PostgreSQL.

use super::*;

#[async_trait]
impl Customers for PostgresStore {
    async fn create_customer(&self, name: &str) -> StoreResult<Customer> {
        let customer = rows::new_customer(None, name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&self.pool)
            .await?;
        Ok(customer)
    }

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>> {
        let row = sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1"))
            .bind(customer_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(rows::customer))
    }

    async fn list_customers(&self) -> StoreResult<Vec<Customer>> {
        let rows =
            sqlx::query_as(&format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY created_at, id"))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(rows::customer).collect())
    }

    async fn bootstrap(
        &self,
        customer_name: &str,
        key: NewApiKey,
    ) -> StoreResult<Option<(Customer, ApiKey)>> {
        let mut tx = self.locked_tx(LOCK_BOOTSTRAP).await?;
        let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM customers").fetch_one(&mut *tx).await?;
        if existing > 0 {
            return Ok(None);
        }
        let customer = rows::new_customer(Some(&key.customer_id), customer_name);
        sqlx::query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&customer.id)
            .bind(&customer.name)
            .bind(customer.created_at)
            .execute(&mut *tx)
            .await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(Some((customer, api_key)))
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        let mut tx = self.pool.begin().await?;
        let api_key = insert_api_key(&mut tx, key).await?;
        tx.commit().await?;
        Ok(api_key)
    }

    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let rows = sqlx::query_as(&format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE ($1::TEXT IS NULL OR customer_id = $1) ORDER BY created_at, id"
        ))
        .bind(customer_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(rows::api_key).collect())
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool> {
        let result = sqlx::query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .bind(key_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(result.rows_affected() == 1)
    }

    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>> {
        let row: Option<rows::ApiKeyWithHashRow> =
            sqlx::query_as(&format!("SELECT secret_hash, {API_KEY_COLUMNS} FROM api_keys WHERE lookup = $1"))
                .bind(lookup)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(rows::api_key_with_hash))
    }

    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)")
            .bind(key_id)
            .bind(at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
