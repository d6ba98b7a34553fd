//! The webhook outbox: the messages owed to endpoints, as the dispatcher queues them and the
//! delivery worker works through them (`faultline-server/src/webhook_delivery.rs`).

use async_trait::async_trait;

use crate::capabilities::webhooks::WEBHOOK_COLUMNS;
use crate::db::{Database, FromRow, FromValue, Row};
use crate::sql::{Sql, query};
use crate::store::SqlStore;
use crate::{
    AttemptNext, AttemptOutcome, DueWebhookMessage, NewWebhookMessage, StoreResult, Webhook, WebhookQueue,
};

/// The messages owed to webhook endpoints, across customers: only the delivery worker calls
/// these.
#[async_trait]
pub trait WebhookOutbox: Send + Sync {
    /// Every enabled endpoint, of every customer: what the dispatcher matches log entries to.
    async fn enabled_webhooks(&self) -> StoreResult<Vec<Webhook>>;

    /// Where the dispatcher is in the event log: every entry up to it has its messages.
    async fn webhook_dispatch_position(&self) -> StoreResult<i64>;

    /// Queue `messages` and move the dispatcher's position from `from` to `to`, in one
    /// transaction. `false`, with nothing written, when the position is no longer `from`
    /// (another replica dispatched those entries).
    async fn queue_webhook_messages(
        &self,
        messages: &[NewWebhookMessage],
        from: i64,
        to: i64,
    ) -> StoreResult<bool>;

    /// Queue one message that no log entry caused (`webhook.test`).
    async fn queue_webhook_message(&self, message: &NewWebhookMessage) -> StoreResult<()>;

    /// For each of `webhooks` that is enabled, up to `per_webhook` of its pending messages due
    /// at `now`, its longest due first; all of them in the order they fell due. Each endpoint
    /// is one seek of the index on (webhook, due time): a dead endpoint's backlog is never
    /// read for another endpoint's messages.
    async fn due_webhook_messages(
        &self,
        now: i64,
        webhooks: &[String],
        per_webhook: u32,
    ) -> StoreResult<Vec<DueWebhookMessage>>;

    /// Record attempts and their consequences. An endpoint whose attempts have all failed since
    /// `disable_if_failing_since` or earlier is disabled (`failing`, `updated_at` = its last
    /// failed attempt), and its pending messages fail with it: the ids of the endpoints so
    /// disabled.
    async fn record_webhook_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        disable_if_failing_since: i64,
    ) -> StoreResult<Vec<String>>;

    /// How many messages are pending, and since when.
    async fn webhook_queue(&self) -> StoreResult<WebhookQueue>;

    /// Delete up to `limit` delivered or failed messages created before `before`, with their
    /// attempts: how many.
    async fn prune_webhook_messages(&self, before: i64, limit: u32) -> StoreResult<u64>;
}

fn insert_message(message: &NewWebhookMessage) -> Sql {
    query(
        "INSERT INTO webhook_messages (id, webhook_id, customer_id, event_type, body, status, attempts, \
         created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $7)",
    )
    .arg(&message.id)
    .arg(&message.webhook_id)
    .arg(&message.customer_id)
    .arg(&message.event_type)
    .arg(&message.body)
    .arg(message.created_at)
    .arg(message.due_at)
}

impl FromRow for DueWebhookMessage {
    fn from_row(row: &dyn Row) -> StoreResult<Self> {
        Ok(DueWebhookMessage {
            id: FromValue::from_value(row, 0)?,
            webhook_id: FromValue::from_value(row, 1)?,
            body: FromValue::from_value(row, 2)?,
            attempts: FromValue::from_value(row, 3)?,
            created_at: FromValue::from_value(row, 4)?,
            due_at: FromValue::from_value(row, 5)?,
            url: FromValue::from_value(row, 6)?,
            secret: FromValue::from_value(row, 7)?,
            previous_secret: FromValue::from_value(row, 8)?,
            previous_secret_until: FromValue::from_value(row, 9)?,
        })
    }
}

#[async_trait]
impl<D: Database> WebhookOutbox for SqlStore<D> {
    async fn enabled_webhooks(&self) -> StoreResult<Vec<Webhook>> {
        self.fetch_all(query(format!("SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE enabled = 1"))).await
    }

    async fn webhook_dispatch_position(&self) -> StoreResult<i64> {
        let position: Option<(i64,)> =
            self.fetch_optional(query("SELECT position FROM webhook_dispatch WHERE id = 1")).await?;
        Ok(position.map_or(0, |(p,)| p))
    }

    async fn queue_webhook_messages(
        &self,
        messages: &[NewWebhookMessage],
        from: i64,
        to: i64,
    ) -> StoreResult<bool> {
        let inserts: Vec<Sql> = messages.iter().map(insert_message).collect();
        let advance = query("UPDATE webhook_dispatch SET position = $2 WHERE id = 1 AND position = $1")
            .arg(from)
            .arg(to);
        self.write(move |c| {
            Box::pin(async move {
                if c.execute(&advance).await? == 0 {
                    return Ok(false);
                }
                for insert in &inserts {
                    c.execute(insert).await?;
                }
                Ok(true)
            })
        })
        .await
    }

    async fn queue_webhook_message(&self, message: &NewWebhookMessage) -> StoreResult<()> {
        self.execute(insert_message(message)).await.map(|_| ())
    }

    async fn due_webhook_messages(
        &self,
        now: i64,
        webhooks: &[String],
        per_webhook: u32,
    ) -> StoreResult<Vec<DueWebhookMessage>> {
        let mut due: Vec<DueWebhookMessage> = Vec::new();
        // A statement per 100 endpoints: a UNION ALL of one bounded seek each.
        for chunk in webhooks.chunks(100) {
            let mut select = query("").arg(now).arg(per_webhook);
            let mut parts = Vec::with_capacity(chunk.len());
            for id in chunk {
                select = select.arg(id);
                parts.push(format!(
                    "SELECT * FROM (SELECT m.id, m.webhook_id, m.body, m.attempts, m.created_at, m.next_attempt_at, w.url, \
                     w.secret, w.previous_secret, w.previous_secret_until FROM webhook_messages m \
                     JOIN webhooks w ON w.id = m.webhook_id WHERE m.webhook_id = ${} AND m.status = 'pending' \
                     AND m.next_attempt_at <= $1 AND w.enabled = 1 ORDER BY m.next_attempt_at LIMIT $2) d{}",
                    select.params.len(),
                    parts.len()
                ));
            }
            let select = Sql::new(parts.join(" UNION ALL "), select.params);
            due.extend(self.fetch_all::<DueWebhookMessage>(select).await?);
        }
        due.sort_by_key(|m| m.due_at);
        Ok(due)
    }

    async fn record_webhook_attempts(
        &self,
        outcomes: &[AttemptOutcome],
        disable_if_failing_since: i64,
    ) -> StoreResult<Vec<String>> {
        let mut statements: Vec<(Sql, Sql, Sql)> = Vec::with_capacity(outcomes.len());
        // The endpoints that failed, with their last failure: checked against the rule once the
        // whole batch is recorded, so that a later outcome cannot revive a message the rule
        // failed.
        let mut failed: Vec<(String, i64)> = Vec::new();
        for outcome in outcomes {
            let a = &outcome.attempt;
            let record = query(
                "INSERT INTO webhook_attempts (message_id, attempt, at, status_code, duration_ms, error, response) \
                 SELECT id, attempts + 1, $2, $3, $4, $5, $6 FROM webhook_messages WHERE id = $1",
            )
            .arg(&outcome.message_id)
            .arg(a.at)
            .arg(a.status_code)
            .arg(a.duration_ms)
            .arg(a.error.clone())
            .arg(a.response.clone());
            let (status, next) = match outcome.next {
                AttemptNext::Delivered => ("delivered", None),
                AttemptNext::RetryAt(at) => ("pending", Some(at)),
                AttemptNext::Failed => ("failed", None),
            };
            let message = query(
                "UPDATE webhook_messages SET attempts = attempts + 1, status = $2, next_attempt_at = $3 WHERE id = $1",
            )
            .arg(&outcome.message_id)
            .arg(status)
            .arg(next);
            let endpoint = if outcome.next == AttemptNext::Delivered {
                query("UPDATE webhooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL")
                    .arg(&outcome.webhook_id)
            } else {
                match failed.iter_mut().find(|(id, _)| *id == outcome.webhook_id) {
                    Some((_, last)) => *last = (*last).max(a.at),
                    None => failed.push((outcome.webhook_id.clone(), a.at)),
                }
                query("UPDATE webhooks SET failing_since = COALESCE(failing_since, $2) WHERE id = $1")
                    .arg(&outcome.webhook_id)
                    .arg(a.at)
            };
            statements.push((record, message, endpoint));
        }
        self.write(move |c| {
            Box::pin(async move {
                for (record, message, endpoint) in &statements {
                    c.execute(record).await?;
                    c.execute(message).await?;
                    c.execute(endpoint).await?;
                }
                let mut disabled = Vec::new();
                for (webhook_id, at) in &failed {
                    let disable = query(
                        "UPDATE webhooks SET enabled = 0, disabled_reason = 'failing', updated_at = $3 \
                         WHERE id = $1 AND enabled = 1 AND failing_since <= $2",
                    )
                    .arg(webhook_id)
                    .arg(disable_if_failing_since)
                    .arg(*at);
                    if c.execute(&disable).await? > 0 {
                        let fail = query(
                            "UPDATE webhook_messages SET status = 'failed', next_attempt_at = NULL \
                             WHERE webhook_id = $1 AND status = 'pending'",
                        )
                        .arg(webhook_id);
                        c.execute(&fail).await?;
                        disabled.push(webhook_id.clone());
                    }
                }
                Ok(disabled)
            })
        })
        .await
    }

    async fn webhook_queue(&self) -> StoreResult<WebhookQueue> {
        let (pending, oldest_created_at): (i64, Option<i64>) = self
            .fetch_optional(query(
                "SELECT COUNT(*), MIN(created_at) FROM webhook_messages WHERE status = 'pending'",
            ))
            .await?
            .unwrap_or((0, None));
        Ok(WebhookQueue { pending, oldest_created_at })
    }

    async fn prune_webhook_messages(&self, before: i64, limit: u32) -> StoreResult<u64> {
        // Ordered to the row, so that both statements pick the same messages.
        let old = "SELECT id FROM webhook_messages WHERE status <> 'pending' AND created_at < $1 \
                   ORDER BY created_at, id LIMIT $2";
        let attempts =
            query(format!("DELETE FROM webhook_attempts WHERE message_id IN ({old})")).arg(before).arg(limit);
        let messages =
            query(format!("DELETE FROM webhook_messages WHERE id IN ({old})")).arg(before).arg(limit);
        self.write(move |c| {
            Box::pin(async move {
                c.execute(&attempts).await?;
                c.execute(&messages).await
            })
        })
        .await
    }
}
