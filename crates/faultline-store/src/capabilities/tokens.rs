//! Access tokens and short links.

use async_trait::async_trait;

use crate::db::{Database, Read};
use crate::idempotency::{Claim, claim_key, fulfil_key};
use crate::rows::{self, ACCESS_TOKEN_COLUMNS, SIGNING_KEY_COLUMNS};
use crate::sql::{self, Sql, query};
use crate::store::{Exclusive, SqlStore, exclusive};
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

fn insert_signing_key(key: &SigningKey) -> Sql {
    query(rows::INSERT_SIGNING_KEY)
        .arg(&key.kid)
        .arg(key.secret_key.as_slice())
        .arg(key.public_key.as_slice())
        .arg(key.created_at)
}

#[async_trait]
impl<D: Database> Tokens for SqlStore<D> {
    async fn ensure_signing_key(&self, candidate: &SigningKey) -> StoreResult<()> {
        let insert = insert_signing_key(candidate);
        self.write(move |c| {
            Box::pin(async move {
                exclusive(c, Exclusive::SigningKeys).await?;
                let active: i64 =
                    c.scalar(&query("SELECT COUNT(*) FROM signing_keys WHERE retired_at IS NULL")).await?;
                if active == 0 {
                    c.execute(&insert).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn rotate_signing_key(&self, new: &SigningKey, verify_until: i64) -> StoreResult<()> {
        let retire = query(rows::RETIRE_SIGNING_KEYS).arg(new.created_at).arg(verify_until);
        let insert = insert_signing_key(new);
        self.write(move |c| {
            Box::pin(async move {
                exclusive(c, Exclusive::SigningKeys).await?;
                c.execute(&retire).await?;
                c.execute(&insert).await?;
                Ok(())
            })
        })
        .await
    }

    async fn signing_keys(&self, now: i64) -> StoreResult<Vec<SigningKey>> {
        let select = query(format!(
            "SELECT {SIGNING_KEY_COLUMNS} FROM signing_keys WHERE retired_at IS NULL OR verify_until > $1 \
             ORDER BY (retired_at IS NULL) DESC, created_at DESC"
        ))
        .arg(now);
        Ok(self.fetch_all(select).await?.into_iter().map(rows::signing_key).collect())
    }

    async fn insert_access_token(
        &self,
        token: &AccessToken,
        short_code: &str,
        idem: Option<&Idempotency<'_, AccessToken>>,
    ) -> StoreResult<Written<()>> {
        let statements = sql::insert_access_token(token, short_code)?;
        let (token, claim) = (token.clone(), idem.map(Claim::of));
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                for statement in &statements {
                    c.execute(statement).await?;
                }
                if let Some(claim) = &claim {
                    fulfil_key(c, claim, &token).await?;
                }
                Ok(Written::Done(()))
            })
        })
        .await
    }

    async fn get_access_token(&self, token_id: &str) -> StoreResult<Option<AccessToken>> {
        let select =
            query(format!("SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = $1")).arg(token_id);
        self.fetch_optional(select).await?.map(rows::access_token).transpose()
    }

    async fn list_access_tokens(&self, customer_id: &str, limit: u32) -> StoreResult<Vec<AccessToken>> {
        let select = query(format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE customer_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .arg(customer_id)
        .arg(limit);
        let rows: Vec<rows::AccessTokenRow> = self.fetch_all(select).await?;
        rows.into_iter().map(rows::access_token).collect()
    }

    async fn revoke_access_token(&self, customer_id: &str, token_id: &str, at: i64) -> StoreResult<bool> {
        let revoke = query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $3) WHERE id = $1 AND customer_id = $2",
        )
        .arg(token_id)
        .arg(customer_id)
        .arg(at);
        Ok(self.execute(revoke).await? == 1)
    }

    async fn record_token_uses(&self, uses: &[TokenUse]) -> StoreResult<()> {
        let updates: Vec<Sql> = uses
            .iter()
            .map(|u| query(rows::RECORD_TOKEN_USE).arg(u.count).arg(u.last_used_at).arg(&u.token_id))
            .collect();
        self.write(move |c| {
            Box::pin(async move {
                for update in &updates {
                    c.execute(update).await?;
                }
                Ok(())
            })
        })
        .await
    }

    async fn short_link_token(&self, code: &str) -> StoreResult<Option<AccessToken>> {
        let select = query(format!(
            "SELECT {ACCESS_TOKEN_COLUMNS} FROM access_tokens WHERE id = (SELECT token_id FROM short_links WHERE code = $1)"
        ))
        .arg(code);
        self.fetch_optional(select).await?.map(rows::access_token).transpose()
    }

    async fn scope_ids_exist(
        &self,
        customer_id: &str,
        scope: &faultline_core::scope::TokenScope,
    ) -> StoreResult<bool> {
        let counts = sql::scope_id_counts(customer_id, scope);
        self.read(Read::Short, move |c| {
            Box::pin(async move {
                for (expected, count) in &counts {
                    let found: i64 = c.scalar(count).await?;
                    if found != *expected {
                        return Ok(false);
                    }
                }
                Ok(true)
            })
        })
        .await
    }
}
