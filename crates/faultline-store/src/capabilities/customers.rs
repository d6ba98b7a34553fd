//! Customers and API keys.

use async_trait::async_trait;

use crate::db::{Conn, Database};
use crate::rows::{self, API_KEY_COLUMNS, CUSTOMER_COLUMNS};
use crate::sql::query;
use crate::store::{Exclusive, SqlStore, exclusive};
use crate::{ApiKey, ApiKeyWithHash, Customer, NewApiKey, StoreResult};

/// Customers and their API keys.
#[async_trait]
pub trait Customers: Send + Sync {
    async fn create_customer(&self, name: &str) -> StoreResult<Customer>;

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>>;

    async fn list_customers(&self) -> StoreResult<Vec<Customer>>;

    /// Create the first customer and its admin key, unless a customer exists already.
    /// Atomic across processes: two replicas starting on one empty database bootstrap once.
    async fn bootstrap(&self, customer_name: &str, key: NewApiKey)
    -> StoreResult<Option<(Customer, ApiKey)>>;

    /// Store a new API key; the customer must exist (`StoreError::NotFound` otherwise).
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;

    /// Keys of one customer, or of every customer, oldest first.
    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>>;

    /// Revoke a key; `false` when no such key exists. Revoking twice keeps the first time.
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool>;

    /// The key whose secret has this lookup part, with its secret's hash, revoked or not.
    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>>;

    /// Record that a key was used at `at` (microseconds).
    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()>;
}

async fn insert_customer(c: &mut dyn Conn, customer: &Customer) -> StoreResult<()> {
    let insert = query("INSERT INTO customers (id, name, created_at) VALUES ($1, $2, $3)")
        .arg(&customer.id)
        .arg(&customer.name)
        .arg(customer.created_at);
    c.execute(&insert).await?;
    Ok(())
}

async fn insert_api_key(c: &mut dyn Conn, key: NewApiKey) -> StoreResult<ApiKey> {
    let insert = query(rows::INSERT_API_KEY)
        .arg(&key.id)
        .arg(&key.customer_id)
        .arg(&key.user_id)
        .arg(&key.name)
        .arg(&key.lookup)
        .arg(&key.secret_hash)
        .arg(key.permissions.to_string())
        .arg(key.rate_limit_per_minute.map(i64::from))
        .arg(key.created_at);
    c.execute(&insert).await.map_err(|e| e.on_constraint("customer"))?;
    Ok(rows::api_key_from_new(key))
}

#[async_trait]
impl<D: Database> Customers for SqlStore<D> {
    async fn create_customer(&self, name: &str) -> StoreResult<Customer> {
        let customer = rows::new_customer(None, name);
        let copy = customer.clone();
        self.write(move |c| Box::pin(async move { insert_customer(c, &copy).await })).await?;
        Ok(customer)
    }

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>> {
        let select =
            query(format!("SELECT {CUSTOMER_COLUMNS} FROM customers WHERE id = $1")).arg(customer_id);
        Ok(self.fetch_optional(select).await?.map(rows::customer))
    }

    async fn list_customers(&self) -> StoreResult<Vec<Customer>> {
        let select = query(format!("SELECT {CUSTOMER_COLUMNS} FROM customers ORDER BY created_at, id"));
        Ok(self.fetch_all(select).await?.into_iter().map(rows::customer).collect())
    }

    async fn bootstrap(
        &self,
        customer_name: &str,
        key: NewApiKey,
    ) -> StoreResult<Option<(Customer, ApiKey)>> {
        let customer = rows::new_customer(Some(&key.customer_id), customer_name);
        self.write(move |c| {
            Box::pin(async move {
                // One bootstrap at a time, so the emptiness check cannot race.
                exclusive(c, Exclusive::Bootstrap).await?;
                let existing: i64 = c.scalar(&query("SELECT COUNT(*) FROM customers")).await?;
                if existing > 0 {
                    return Ok(None);
                }
                insert_customer(c, &customer).await?;
                let api_key = insert_api_key(c, key).await?;
                Ok(Some((customer, api_key)))
            })
        })
        .await
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.write(move |c| Box::pin(async move { insert_api_key(c, key).await })).await
    }

    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>> {
        let select = query(format!(
            "SELECT {API_KEY_COLUMNS} FROM api_keys WHERE (CAST($1 AS TEXT) IS NULL OR customer_id = $1) \
             ORDER BY created_at, id"
        ))
        .arg(customer_id);
        Ok(self.fetch_all(select).await?.into_iter().map(rows::api_key).collect())
    }

    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool> {
        let revoke = query("UPDATE api_keys SET revoked_at = COALESCE(revoked_at, $2) WHERE id = $1")
            .arg(key_id)
            .arg(at);
        // The key's console sessions end with it (each request checks the key too).
        let end_sessions = query("DELETE FROM console_sessions WHERE key_id = $1").arg(key_id);
        self.write(move |c| {
            Box::pin(async move {
                let revoked = c.execute(&revoke).await? == 1;
                c.execute(&end_sessions).await?;
                Ok(revoked)
            })
        })
        .await
    }

    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>> {
        let select = query(format!("SELECT secret_hash, {API_KEY_COLUMNS} FROM api_keys WHERE lookup = $1"))
            .arg(lookup);
        Ok(self.fetch_optional(select).await?.map(rows::api_key_with_hash))
    }

    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        let touch = query(
            "UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $2)",
        )
        .arg(key_id)
        .arg(at);
        self.execute(touch).await?;
        Ok(())
    }
}
