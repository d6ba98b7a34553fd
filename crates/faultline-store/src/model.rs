//! Records as the store returns them. Times are microseconds since the Unix epoch.

use faultline_core::Permissions;
use faultline_core::ids::IdKind;
use faultline_core::secret;

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

impl NewApiKey {
    /// A fresh key for `customer_id` acting as a new user: the record to store, and the
    /// secret, which is shown once and never stored.
    pub fn generate(
        customer_id: &str,
        name: &str,
        permissions: Permissions,
        rate_limit_per_minute: Option<u32>,
    ) -> (NewApiKey, String) {
        let generated = secret::generate_api_key();
        let key = NewApiKey {
            id: IdKind::ApiKey.new_id(),
            customer_id: customer_id.to_owned(),
            user_id: IdKind::User.new_id(),
            name: name.to_owned(),
            lookup: generated.lookup,
            secret_hash: generated.hash,
            permissions,
            rate_limit_per_minute,
            created_at: faultline_core::time::now_micros(),
        };
        (key, generated.secret)
    }
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
