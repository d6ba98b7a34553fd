//! Access tokens and short links.

use async_trait::async_trait;

use crate::{AccessToken, Idempotency, SigningKey, StoreResult, TokenUse, Written};

/// Read-only access tokens, their signing keys and their short links.
#[async_trait]
pub trait Tokens: Send + Sync {
    /// Insert `candidate` as the signing key unless an active one exists; atomic across replicas.
    async fn ensure_signing_key(&self, candidate: &SigningKey) -> StoreResult<()>;

    /// Retire the active key(s) (verifying until `verify_until`) and make `new` the signing key.
    async fn rotate_signing_key(&self, new: &SigningKey, verify_until: i64) -> StoreResult<()>;

    /// Keys that still verify at `now`: the active one first, then retired ones, newest first.
    async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>>;

    /// Store a minted token and its short link together, with a `token_minted` event (on the
    /// token's id and on each fault its scope names) and `idem`'s key when given.
    async fn insert_access_token(
        &self,
        token: &AccessToken,
        short_code: &str,
        idem: Option<&Idempotency<'_, AccessToken>>,
    ) -> StoreResult<Written<()>>;

    /// A token by id (`jti`), whatever its customer or state.
    async fn get_access_token(&self, token_id: &str) -> StoreResult<Option<AccessToken>>;

    /// The customer's tokens, newest first.
    async fn list_access_tokens(&self, customer_id: &str, limit: u32) -> StoreResult<Vec<AccessToken>>;

    /// Revoke one of the customer's tokens; `false` when there is none. The first revocation
    /// time is kept.
    async fn revoke_access_token(&self, customer_id: &str, token_id: &str, at: i64) -> StoreResult<bool>;

    /// Add counted uses to tokens (batched, so a read never waits on a write).
    async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()>;

    /// The token a short-link code opens, if the code exists.
    async fn short_link_token(&self, code: &str) -> StoreResult<Option<AccessToken>>;

    /// Whether every id the scope names belongs to the customer: faults by id, resources by
    /// id, and sites as ancestry elements of the customer's faults.
    async fn scope_ids_exist(
        &self,
        customer_id: &str,
        scope: &faultline_core::scope::TokenScope,
    ) -> StoreResult<bool>;
}
