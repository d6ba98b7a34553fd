//! Customers and API keys.

use async_trait::async_trait;

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
