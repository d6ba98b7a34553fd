//! Webhook endpoints, and their messages as the API shows them.

use async_trait::async_trait;

use crate::db::{Conn, Database, FromRow, FromValue, Read, Row};
use crate::idempotency::{Claim, claim_key, fulfil_key, release_key};
use crate::sql::{Sql, query};
use crate::store::SqlStore;
use crate::{Idempotency, StoreError, StoreResult, Webhook, WebhookAttempt, WebhookMessage, Written};

/// A customer's webhook endpoints, and the messages queued for them.
#[async_trait]
pub trait Webhooks: Send + Sync {
    /// Store a new endpoint; its `from_seq` is set to the event log's head, so it is sent the
    /// changes after its creation. The endpoint as stored, and `idem`'s key with it when given.
    async fn create_webhook(
        &self,
        webhook: &Webhook,
        idem: Option<&Idempotency<'_, Webhook>>,
    ) -> StoreResult<Written<Webhook>>;

    /// The customer's endpoints, newest first, after the cursor `(created_at, id)`.
    async fn list_webhooks(
        &self,
        customer_id: &str,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Webhook>>;

    /// One of the customer's endpoints.
    async fn get_webhook(&self, customer_id: &str, webhook_id: &str) -> StoreResult<Option<Webhook>>;

    /// Save what may change of one of the customer's endpoints (url, events, filter,
    /// description, enabled, disabled_reason, failing_since, updated_at); `None` when it has
    /// no such endpoint.
    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<Option<Webhook>>;

    /// Delete an endpoint with its messages and their attempts; `false` when there is none.
    async fn delete_webhook(&self, customer_id: &str, webhook_id: &str) -> StoreResult<bool>;

    /// Make `secret` the endpoint's secret; the one before signs too until `previous_until`.
    /// `None` when the customer has no such endpoint.
    async fn rotate_webhook_secret(
        &self,
        customer_id: &str,
        webhook_id: &str,
        secret: &str,
        previous_until: i64,
        now: i64,
        idem: Option<&Idempotency<'_, Webhook>>,
    ) -> StoreResult<Written<Option<Webhook>>>;

    /// An endpoint's messages with their attempts, newest first, after the cursor
    /// `(created_at, id)`, of one status or any.
    async fn list_webhook_messages(
        &self,
        customer_id: &str,
        webhook_id: &str,
        status: Option<&str>,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookMessage>>;

    /// One message of one of the customer's endpoints, with its attempts.
    async fn get_webhook_message(
        &self,
        customer_id: &str,
        webhook_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<WebhookMessage>>;

    /// Make a message due now, whatever its status; `false` when there is none.
    async fn retry_webhook_message(
        &self,
        customer_id: &str,
        webhook_id: &str,
        message_id: &str,
        now: i64,
    ) -> StoreResult<bool>;
}

/// The columns of a [`Webhook`], in the order [`FromRow`] reads them.
pub(crate) const WEBHOOK_COLUMNS: &str = "id, customer_id, url, events, filter, description, enabled, \
     disabled_reason, secret, previous_secret, previous_secret_until, failing_since, from_seq, created_at, \
     updated_at";

impl FromRow for Webhook {
    fn from_row(row: &dyn Row) -> StoreResult<Self> {
        let events: String = FromValue::from_value(row, 3)?;
        Ok(Webhook {
            id: FromValue::from_value(row, 0)?,
            customer_id: FromValue::from_value(row, 1)?,
            url: FromValue::from_value(row, 2)?,
            events: serde_json::from_str(&events)
                .map_err(|err| StoreError::Corrupt(format!("a webhook's events: {err}")))?,
            filter: FromValue::from_value(row, 4)?,
            description: FromValue::from_value(row, 5)?,
            enabled: FromValue::from_value(row, 6)?,
            disabled_reason: FromValue::from_value(row, 7)?,
            secret: FromValue::from_value(row, 8)?,
            previous_secret: FromValue::from_value(row, 9)?,
            previous_secret_until: FromValue::from_value(row, 10)?,
            failing_since: FromValue::from_value(row, 11)?,
            from_seq: FromValue::from_value(row, 12)?,
            created_at: FromValue::from_value(row, 13)?,
            updated_at: FromValue::from_value(row, 14)?,
        })
    }
}

fn events_json(events: &[String]) -> String {
    serde_json::Value::from(events.to_vec()).to_string()
}

/// The condition for rows after a newest-first cursor on `(created_at, id)`, its parameters
/// numbered from `first`.
fn before_cursor(sql: Sql, first: usize, after: Option<(i64, String)>) -> (Sql, String) {
    match after {
        Some((created_at, id)) => (
            sql.arg(created_at).arg(id),
            format!(" AND (created_at < ${first} OR (created_at = ${first} AND id < ${}))", first + 1),
        ),
        None => (sql, String::new()),
    }
}

async fn select_webhook(
    c: &mut dyn Conn,
    customer_id: &str,
    webhook_id: &str,
) -> StoreResult<Option<Webhook>> {
    let select = query(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE customer_id = $1 AND id = $2"))
        .arg(customer_id)
        .arg(webhook_id);
    c.fetch_optional(&select).await
}

const MESSAGE_COLUMNS: &str = "id, webhook_id, event_type, body, status, created_at, next_attempt_at";
type MessageRow = (String, String, String, String, String, i64, Option<i64>);
type AttemptRow = (String, i64, Option<i64>, i64, Option<String>, Option<String>);

/// The messages `select` reads, each with its attempts.
async fn with_attempts(c: &mut dyn Conn, select: &Sql) -> StoreResult<Vec<WebhookMessage>> {
    let rows: Vec<MessageRow> = c.fetch_all(select).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (1..=rows.len()).map(|i| format!("${i}")).collect();
    let mut attempts = query(format!(
        "SELECT message_id, at, status_code, duration_ms, error, response FROM webhook_attempts \
         WHERE message_id IN ({}) ORDER BY message_id, attempt",
        placeholders.join(", ")
    ));
    for row in &rows {
        attempts = attempts.arg(row.0.as_str());
    }
    let mut by_message: std::collections::HashMap<String, Vec<WebhookAttempt>> = Default::default();
    for (message_id, at, status_code, duration_ms, error, response) in
        c.fetch_all::<AttemptRow>(&attempts).await?
    {
        by_message.entry(message_id).or_default().push(WebhookAttempt {
            at,
            status_code,
            duration_ms,
            error,
            response,
        });
    }
    Ok(rows
        .into_iter()
        .map(|(id, webhook_id, event_type, body, status, created_at, next_attempt_at)| WebhookMessage {
            attempts: by_message.remove(&id).unwrap_or_default(),
            id,
            webhook_id,
            event_type,
            body,
            status,
            created_at,
            next_attempt_at,
        })
        .collect())
}

#[async_trait]
impl<D: Database> Webhooks for SqlStore<D> {
    async fn create_webhook(
        &self,
        webhook: &Webhook,
        idem: Option<&Idempotency<'_, Webhook>>,
    ) -> StoreResult<Written<Webhook>> {
        let insert = query(format!(
            "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, \
             (SELECT COALESCE(MAX(seq), 0) FROM fault_events), $13, $14)"
        ))
        .arg(&webhook.id)
        .arg(&webhook.customer_id)
        .arg(&webhook.url)
        .arg(events_json(&webhook.events))
        .arg(&webhook.filter)
        .arg(webhook.description.clone())
        .arg(webhook.enabled)
        .arg(webhook.disabled_reason.clone())
        .arg(&webhook.secret)
        .arg(webhook.previous_secret.clone())
        .arg(webhook.previous_secret_until)
        .arg(webhook.failing_since)
        .arg(webhook.created_at)
        .arg(webhook.updated_at);
        let (customer_id, id, claim) = (webhook.customer_id.clone(), webhook.id.clone(), idem.map(Claim::of));
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                c.execute(&insert).await?;
                let webhook = select_webhook(c, &customer_id, &id)
                    .await?
                    .ok_or_else(|| StoreError::Corrupt("a webhook just inserted is missing".into()))?;
                if let Some(claim) = &claim {
                    fulfil_key(c, claim, &webhook).await?;
                }
                Ok(Written::Done(webhook))
            })
        })
        .await
    }

    async fn list_webhooks(
        &self,
        customer_id: &str,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<Webhook>> {
        let (select, cursor) = before_cursor(query("").arg(customer_id), 2, after);
        let n = select.params.len() + 1;
        let select = Sql::new(
            format!(
                "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE customer_id = $1{cursor} \
                 ORDER BY created_at DESC, id DESC LIMIT ${n}"
            ),
            select.params,
        )
        .arg(limit);
        self.fetch_all(select).await
    }

    async fn get_webhook(&self, customer_id: &str, webhook_id: &str) -> StoreResult<Option<Webhook>> {
        let (customer_id, webhook_id) = (customer_id.to_owned(), webhook_id.to_owned());
        self.read(Read::Short, move |c| {
            Box::pin(async move { select_webhook(c, &customer_id, &webhook_id).await })
        })
        .await
    }

    async fn update_webhook(&self, webhook: &Webhook) -> StoreResult<Option<Webhook>> {
        let update = query(
            "UPDATE webhooks SET url = $3, events = $4, filter = $5, description = $6, enabled = $7, \
             disabled_reason = $8, failing_since = $9, updated_at = $10 WHERE customer_id = $1 AND id = $2",
        )
        .arg(&webhook.customer_id)
        .arg(&webhook.id)
        .arg(&webhook.url)
        .arg(events_json(&webhook.events))
        .arg(&webhook.filter)
        .arg(webhook.description.clone())
        .arg(webhook.enabled)
        .arg(webhook.disabled_reason.clone())
        .arg(webhook.failing_since)
        .arg(webhook.updated_at);
        let (customer_id, id) = (webhook.customer_id.clone(), webhook.id.clone());
        self.write(move |c| {
            Box::pin(async move {
                if c.execute(&update).await? == 0 {
                    return Ok(None);
                }
                select_webhook(c, &customer_id, &id).await
            })
        })
        .await
    }

    async fn delete_webhook(&self, customer_id: &str, webhook_id: &str) -> StoreResult<bool> {
        let delete =
            query("DELETE FROM webhooks WHERE customer_id = $1 AND id = $2").arg(customer_id).arg(webhook_id);
        let attempts = query(
            "DELETE FROM webhook_attempts WHERE message_id IN (SELECT id FROM webhook_messages WHERE webhook_id = $1)",
        )
        .arg(webhook_id);
        let messages = query("DELETE FROM webhook_messages WHERE webhook_id = $1").arg(webhook_id);
        self.write(move |c| {
            Box::pin(async move {
                if c.execute(&delete).await? == 0 {
                    return Ok(false);
                }
                c.execute(&attempts).await?;
                c.execute(&messages).await?;
                Ok(true)
            })
        })
        .await
    }

    async fn rotate_webhook_secret(
        &self,
        customer_id: &str,
        webhook_id: &str,
        secret: &str,
        previous_until: i64,
        now: i64,
        idem: Option<&Idempotency<'_, Webhook>>,
    ) -> StoreResult<Written<Option<Webhook>>> {
        let rotate = query(
            "UPDATE webhooks SET previous_secret = secret, previous_secret_until = $3, secret = $4, updated_at = $5 \
             WHERE customer_id = $1 AND id = $2",
        )
        .arg(customer_id)
        .arg(webhook_id)
        .arg(previous_until)
        .arg(secret)
        .arg(now);
        let (customer_id, webhook_id, claim) =
            (customer_id.to_owned(), webhook_id.to_owned(), idem.map(Claim::of));
        self.write(move |c| {
            Box::pin(async move {
                if let Some(claim) = &claim
                    && let Some(answer) = claim_key(c, claim).await?
                {
                    return Ok(Written::Replayed(answer));
                }
                if c.execute(&rotate).await? == 0 {
                    if let Some(claim) = &claim {
                        release_key(c, claim).await?;
                    }
                    return Ok(Written::Done(None));
                }
                let webhook = select_webhook(c, &customer_id, &webhook_id).await?;
                if let (Some(claim), Some(webhook)) = (&claim, &webhook) {
                    fulfil_key(c, claim, webhook).await?;
                }
                Ok(Written::Done(webhook))
            })
        })
        .await
    }

    async fn list_webhook_messages(
        &self,
        customer_id: &str,
        webhook_id: &str,
        status: Option<&str>,
        after: Option<(i64, String)>,
        limit: u32,
    ) -> StoreResult<Vec<WebhookMessage>> {
        let mut select = query("").arg(webhook_id).arg(customer_id);
        let mut conditions = String::new();
        if let Some(status) = status {
            select = select.arg(status);
            conditions.push_str(&format!(" AND status = ${}", select.params.len()));
        }
        let (select, cursor) = before_cursor(select.clone(), select.params.len() + 1, after);
        let n = select.params.len() + 1;
        let select = Sql::new(
            format!(
                "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE webhook_id = $1 AND customer_id = $2\
                 {conditions}{cursor} ORDER BY created_at DESC, id DESC LIMIT ${n}"
            ),
            select.params,
        )
        .arg(limit);
        self.read(Read::Snapshot, move |c| Box::pin(async move { with_attempts(c, &select).await })).await
    }

    async fn get_webhook_message(
        &self,
        customer_id: &str,
        webhook_id: &str,
        message_id: &str,
    ) -> StoreResult<Option<WebhookMessage>> {
        let select = query(format!(
            "SELECT {MESSAGE_COLUMNS} FROM webhook_messages WHERE id = $1 AND webhook_id = $2 AND customer_id = $3"
        ))
        .arg(message_id)
        .arg(webhook_id)
        .arg(customer_id);
        self.read(Read::Snapshot, move |c| {
            Box::pin(async move { Ok(with_attempts(c, &select).await?.into_iter().next()) })
        })
        .await
    }

    async fn retry_webhook_message(
        &self,
        customer_id: &str,
        webhook_id: &str,
        message_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let retry = query(
            "UPDATE webhook_messages SET status = 'pending', next_attempt_at = $4 \
             WHERE id = $1 AND webhook_id = $2 AND customer_id = $3",
        )
        .arg(message_id)
        .arg(webhook_id)
        .arg(customer_id)
        .arg(now);
        Ok(self.execute(retry).await? > 0)
    }
}
