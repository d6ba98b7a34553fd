//! Records as the store returns them. Times are microseconds since the Unix epoch.

use faultline_core::Permissions;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

/// A key to create: the caller generates the id, secret and hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub id: String,
    pub customer_id: String,
    pub user_id: String,
    pub name: String,
    pub lookup: String,
    pub secret_hash: String,
    pub permissions: Permissions,
    pub rate_limit_per_minute: Option<u32>,
    pub created_at: i64,
}

/// An API key as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: String,
    pub customer_id: String,
    pub user_id: String,
    pub name: String,
    pub permissions: Permissions,
    pub rate_limit_per_minute: Option<u32>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// An API key with the SHA-256 of its secret, for authentication only.
#[derive(Debug, Clone)]
pub struct ApiKeyWithHash {
    pub key: ApiKey,
    pub secret_hash: String,
}
