//! Console sessions and one-time sign-in links. A session acts as the API key that signed
//! in, so it is read with the key: a revoked key ends its sessions at once.

use async_trait::async_trait;

use crate::db::Database;
use crate::rows::{API_KEY_COLUMNS, ApiKeyRow};
use crate::sql::{Sql, query};
use crate::store::SqlStore;
use crate::{ApiKey, ConsoleLink, ConsoleSession, StoreResult};

/// Console sign-in: sessions and one-time links.
#[async_trait]
pub trait ConsoleSessions: Send + Sync {
    /// Store a new session; sessions idle since before `idle_before` are removed with it.
    async fn create_console_session(&self, session: &ConsoleSession, idle_before: i64) -> StoreResult<()>;

    /// The session with this hash and the API key it acts as.
    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<(ConsoleSession, ApiKey)>>;

    /// Record that the session was used at `at`.
    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()>;

    /// End a session (logout); `false` when there was none.
    async fn end_console_session(&self, id_hash: &str) -> StoreResult<bool>;

    /// Store a one-time link; links expired before `expired_before` are removed with it.
    async fn create_console_link(&self, link: &ConsoleLink, expired_before: i64) -> StoreResult<()>;

    /// Use a link: the first use before its expiry answers its `(customer_id, key_id)`, every
    /// other use `None`.
    async fn redeem_console_link(&self, code_hash: &str, now: i64) -> StoreResult<Option<(String, String)>>;
}

type SessionRow = (String, String, String, i64, i64);

/// Remove what has expired, then insert: one transaction.
async fn prune_and_insert<D: Database>(store: &SqlStore<D>, prune: Sql, insert: Sql) -> StoreResult<()> {
    store
        .write(move |c| {
            Box::pin(async move {
                c.execute(&prune).await?;
                c.execute(&insert).await?;
                Ok(())
            })
        })
        .await
}

#[async_trait]
impl<D: Database> ConsoleSessions for SqlStore<D> {
    async fn create_console_session(&self, session: &ConsoleSession, idle_before: i64) -> StoreResult<()> {
        let prune = query("DELETE FROM console_sessions WHERE last_seen_at < $1").arg(idle_before);
        let insert = query(
            "INSERT INTO console_sessions (id_hash, customer_id, key_id, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .arg(&session.id_hash)
        .arg(&session.customer_id)
        .arg(&session.key_id)
        .arg(session.created_at)
        .arg(session.last_seen_at);
        prune_and_insert(self, prune, insert).await
    }

    async fn console_session(&self, id_hash: &str) -> StoreResult<Option<(ConsoleSession, ApiKey)>> {
        let key_columns: Vec<String> = API_KEY_COLUMNS.split(", ").map(|c| format!("k.{c}")).collect();
        let select = query(format!(
            "SELECT s.id_hash, s.customer_id, s.key_id, s.created_at, s.last_seen_at, {} \
             FROM console_sessions s JOIN api_keys k ON k.id = s.key_id WHERE s.id_hash = $1",
            key_columns.join(", ")
        ))
        .arg(id_hash);
        // The session's 5 columns, then the key's 9.
        type Row = (
            String,
            String,
            String,
            i64,
            i64,
            String,
            String,
            String,
            String,
            String,
            Option<i64>,
            i64,
            Option<i64>,
            Option<i64>,
        );
        let found: Option<Row> = self.fetch_optional(select).await?;
        let row = found.map(
            |(a, b, c, d, e, id, customer, user, name, permissions, limit, created, used, revoked)| {
                let session: SessionRow = (a, b, c, d, e);
                let key: ApiKeyRow = (id, customer, user, name, permissions, limit, created, used, revoked);
                (session, key)
            },
        );
        Ok(row.map(|((id_hash, customer_id, key_id, created_at, last_seen_at), key)| {
            (
                ConsoleSession { id_hash, customer_id, key_id, created_at, last_seen_at },
                crate::rows::api_key(key),
            )
        }))
    }

    async fn touch_console_session(&self, id_hash: &str, at: i64) -> StoreResult<()> {
        let touch =
            query("UPDATE console_sessions SET last_seen_at = $2 WHERE id_hash = $1 AND last_seen_at < $2")
                .arg(id_hash)
                .arg(at);
        self.execute(touch).await?;
        Ok(())
    }

    async fn end_console_session(&self, id_hash: &str) -> StoreResult<bool> {
        Ok(self.execute(query("DELETE FROM console_sessions WHERE id_hash = $1").arg(id_hash)).await? == 1)
    }

    async fn create_console_link(&self, link: &ConsoleLink, expired_before: i64) -> StoreResult<()> {
        let prune = query("DELETE FROM console_links WHERE expires_at < $1").arg(expired_before);
        let insert = query(
            "INSERT INTO console_links (code_hash, customer_id, key_id, created_at, expires_at, used_at) \
             VALUES ($1, $2, $3, $4, $5, NULL)",
        )
        .arg(&link.code_hash)
        .arg(&link.customer_id)
        .arg(&link.key_id)
        .arg(link.created_at)
        .arg(link.expires_at);
        prune_and_insert(self, prune, insert).await
    }

    async fn redeem_console_link(&self, code_hash: &str, now: i64) -> StoreResult<Option<(String, String)>> {
        // One statement: of two uses at once, exactly one sees `used_at` null.
        let redeem = query(
            "UPDATE console_links SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2 \
             RETURNING customer_id, key_id",
        )
        .arg(code_hash)
        .arg(now);
        self.write(move |c| Box::pin(async move { c.fetch_optional::<(String, String)>(&redeem).await }))
            .await
    }
}
