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

/// An Ed25519 key that signs access tokens.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    /// The 32-byte secret seed.
    pub secret_key: Vec<u8>,
    /// The 32-byte public key.
    pub public_key: Vec<u8>,
    pub created_at: i64,
    /// Set when a newer key took over signing.
    pub retired_at: Option<i64>,
    /// A retired key verifies tokens until this time (microseconds).
    pub verify_until: Option<i64>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// An access token as stored: everything but the JWT, which is never kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    /// `tok_…`, the JWT's `jti`.
    pub id: String,
    pub customer_id: String,
    pub kid: String,
    pub label: String,
    pub scope: faultline_core::scope::TokenScope,
    /// The API key that minted it.
    pub created_by: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub use_count: i64,
}

/// Uses of one token since the last flush.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenUse {
    pub token_id: String,
    pub count: i64,
    pub last_used_at: i64,
}

/// One entry of a fault's history, from the append-only `fault_events` log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultEvent {
    /// The deployment-wide sequence number.
    pub seq: i64,
    pub fault_id: String,
    /// `created`, `commented`, `resolved`, `deleted` or `token_minted`.
    pub kind: String,
    /// The credential that acted (`key_…`, `tok_…`) or `system`.
    pub actor: String,
    pub at: i64,
    /// Kind-specific details (JSON object).
    pub detail: serde_json::Value,
}

/// How long an `Idempotency-Key` is remembered: 24 hours, in microseconds.
pub const IDEMPOTENCY_KEEP_MICROS: i64 = 24 * 3_600 * 1_000_000;

/// An `Idempotency-Key` recorded in the same transaction as the write it guards. The write's
/// first statement claims the key; if the key was already claimed by this credential, the
/// write does nothing and answers [`Written::Replayed`] (same request) or fails with
/// [`crate::StoreError::IdempotencyKeyReused`] (another request). On success the answer,
/// rendered from the write's result, is stored with the key before the commit.
pub struct Idempotency<'a, T: ?Sized> {
    /// The API key (or other credential) the key belongs to.
    pub credential_id: &'a str,
    pub key: &'a str,
    /// A hash of the request (method, path, body); a replay must carry the same one.
    pub fingerprint: &'a str,
    /// When the request arrived (microseconds); claims older than a day are forgotten.
    pub at: i64,
    /// The status of the answer to store.
    pub status: u16,
    /// Renders the answer's body from the write's result.
    pub render: std::sync::Arc<dyn Fn(&T) -> String + Send + Sync>,
}

/// What one ingest event did: the fault it opened, deduplicated onto or resolved (none for
/// `no_open_fault`), and how.
pub type EventResult = (Option<String>, faultline_core::ingest::Outcome);

/// How a fault is resolved by hand.
#[derive(Debug, Clone, Copy)]
pub struct Resolution<'a> {
    /// When (microseconds): the fault's `resolved_at`.
    pub at: i64,
    /// The fault's `ttl` (Unix seconds) once resolved.
    pub ttl: i64,
    /// Added in the same transaction, unless the fault was resolved already.
    pub comment: Option<&'a faultline_core::fault::Comment>,
}

/// What a write that may carry an [`Idempotency`] key did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written<T> {
    /// The write was done now; its result. Always this for a write without a key.
    Done(T),
    /// The key was claimed before by the same request: nothing was written now, and this is
    /// the answer stored then.
    Replayed(StoredResponse),
}

impl<T> Written<T> {
    /// The result of a write done now; `None` for a replay.
    pub fn done(self) -> Option<T> {
        match self {
            Written::Done(result) => Some(result),
            Written::Replayed(_) => None,
        }
    }
}

/// The answer stored with an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// A resource as [`crate::Store::top_resources`] ranks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopResource {
    pub resource_id: String,
    /// Its faults in the window and scope.
    pub count: i64,
    /// Its newest faults in the window and scope, newest first, without comments.
    pub faults: Vec<faultline_core::fault::Fault>,
}

/// One entry of the event log as the live stream reads it: any customer's, any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedEvent {
    pub seq: i64,
    pub customer_id: String,
    pub fault_id: String,
    /// As in [`FaultEvent::kind`], plus `expired` for faults the retention sweeper deleted.
    pub kind: String,
    pub at: i64,
    /// Kind-specific details (a JSON object). For `deleted` and `expired`: the fault's
    /// `resource_id`, `type`, `severity` and `resource_ancestry_path`, so that a reader can
    /// still tell which access-token scopes could see it.
    pub detail: String,
}

/// The log after a position, and whether gaps in it may still fill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRead {
    /// In sequence order.
    pub entries: Vec<LoggedEvent>,
    /// `None` when the log only ever grows in sequence order as seen by readers (SQLite: one
    /// writer). On PostgreSQL a sequence number is taken before its transaction commits, so a
    /// reader may see 11 before 10: the transactions running when the page was read.
    pub horizon: Option<Horizon>,
}

/// PostgreSQL's snapshot bounds when a page of the log was read: every transaction id below
/// `xmin` had ended; `xmax` is one past the newest that had begun.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    pub xmin: i64,
    pub xmax: i64,
}

impl Horizon {
    /// Has every transaction that was running at `earlier` ended by `self`?
    pub fn settles(&self, earlier: &Horizon) -> bool {
        self.xmin >= earlier.xmax
    }
}

/// A singleton job's lease: while it is held, no other replica runs the job.
#[async_trait::async_trait]
pub trait Lease: Send {
    /// Is the lease still held? False once the connection that holds it is gone; the caller
    /// must then stop the job and ask again.
    async fn still_held(&mut self) -> bool;
}

/// A webhook endpoint as stored (`docs/webhooks.md`). Its secrets are kept as their
/// `whsec_…` text; the server signs with them.
#[derive(Clone, PartialEq, Eq)]
pub struct Webhook {
    /// `whk_…`
    pub id: String,
    pub customer_id: String,
    pub url: String,
    /// The event types it is sent (`fault.created`, ...).
    pub events: Vec<String>,
    /// Its filter, as the JSON object the API shows.
    pub filter: String,
    pub description: Option<String>,
    pub enabled: bool,
    /// Why the service disabled it (`failing`), if it did.
    pub disabled_reason: Option<String>,
    pub secret: String,
    /// The secret before the last rotation, which also signs until `previous_secret_until`.
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
    /// When the first of its attempts failing in a row since its last success was made.
    pub failing_since: Option<i64>,
    /// The event log's head when it was created: it is sent the entries after it.
    pub from_seq: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("customer_id", &self.customer_id)
            .field("url", &self.url)
            .field("events", &self.events)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// A message to queue for one endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewWebhookMessage {
    /// `msg_…`: the `webhook-id` of every attempt.
    pub id: String,
    pub webhook_id: String,
    pub customer_id: String,
    pub event_type: String,
    /// The request body every attempt sends.
    pub body: String,
    pub created_at: i64,
    /// When its first attempt is due.
    pub due_at: i64,
}

/// A message with every attempt made so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookMessage {
    pub id: String,
    pub webhook_id: String,
    pub event_type: String,
    pub body: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub created_at: i64,
    /// When the next attempt is due, while it is pending.
    pub next_attempt_at: Option<i64>,
    /// Oldest first.
    pub attempts: Vec<WebhookAttempt>,
}

/// One attempt to deliver a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookAttempt {
    pub at: i64,
    /// The receiver's status code, if it answered.
    pub status_code: Option<i64>,
    pub duration_ms: i64,
    /// Why it failed without an answer, or why the answer was not a success.
    pub error: Option<String>,
    /// The first KiB of the answer's body.
    pub response: Option<String>,
}

/// A message due for an attempt, with what the attempt needs from its endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct DueWebhookMessage {
    pub id: String,
    pub webhook_id: String,
    pub body: String,
    /// Attempts made before this one.
    pub attempts: i64,
    pub created_at: i64,
    /// When it fell due.
    pub due_at: i64,
    pub url: String,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<i64>,
}

impl std::fmt::Debug for DueWebhookMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DueWebhookMessage")
            .field("id", &self.id)
            .field("webhook_id", &self.webhook_id)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// What became of a message after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptNext {
    Delivered,
    /// Failed; the next attempt is due then.
    RetryAt(i64),
    /// Failed, and the schedule has no attempt left.
    Failed,
}

/// An attempt's record and its consequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptOutcome {
    pub message_id: String,
    pub webhook_id: String,
    pub attempt: WebhookAttempt,
    pub next: AttemptNext,
}

/// The messages waiting for delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WebhookQueue {
    pub pending: i64,
    /// When the oldest of them was queued.
    pub oldest_created_at: Option<i64>,
}

/// A customer's site: named by its heartbeats or by an operator, with its heartbeat state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    pub customer_id: String,
    pub site_id: String,
    pub name: Option<String>,
    /// The name was set by `PUT /sites/{site_id}`; heartbeats no longer change it.
    pub named_by_operator: bool,
    pub first_seen: i64,
    /// `None`: the site was named before it ever sent a heartbeat.
    pub last_heartbeat: Option<i64>,
    /// Set while the detector finds the site offline (since its first missed heartbeat).
    pub offline_since: Option<i64>,
    /// The site's unresolved faults (those whose `site_id` is this site).
    pub open_faults: i64,
}

/// Where a site stands, as `GET /sites` shows and filters it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SiteStatus {
    /// Sending heartbeats.
    Online,
    /// Found silent by the detector.
    Offline,
    /// Never sent a heartbeat (named by an operator).
    Unknown,
}

impl SiteStatus {
    pub const ALL: [SiteStatus; 3] = [SiteStatus::Online, SiteStatus::Offline, SiteStatus::Unknown];

    pub fn as_str(self) -> &'static str {
        match self {
            SiteStatus::Online => "online",
            SiteStatus::Offline => "offline",
            SiteStatus::Unknown => "unknown",
        }
    }

    pub fn parse(text: &str) -> Option<SiteStatus> {
        SiteStatus::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// The condition on a `sites` row (unqualified columns) for this status.
    pub(crate) fn condition(self) -> &'static str {
        match self {
            SiteStatus::Online => "(last_heartbeat IS NOT NULL AND offline_since IS NULL)",
            SiteStatus::Offline => "offline_since IS NOT NULL",
            SiteStatus::Unknown => "last_heartbeat IS NULL",
        }
    }
}

impl Site {
    pub fn status(&self) -> SiteStatus {
        match (self.last_heartbeat, self.offline_since) {
            (_, Some(_)) => SiteStatus::Offline,
            (None, None) => SiteStatus::Unknown,
            (Some(_), None) => SiteStatus::Online,
        }
    }

    /// What the site shows as: its name, else its id (the order of `GET /sites`).
    pub fn label(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.site_id)
    }
}

/// A page of a customer's sites, by label then id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SiteQuery {
    /// Any of these statuses; empty: all.
    pub statuses: Vec<SiteStatus>,
    /// Case-insensitive text in the name or the id.
    pub text: Option<String>,
    /// After this `(label, site_id)`.
    pub after: Option<(String, String)>,
    pub limit: u32,
}

/// A console session as stored: the SHA-256 of its cookie's secret and the key it acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSession {
    pub id_hash: String,
    pub customer_id: String,
    pub key_id: String,
    pub created_at: i64,
    pub last_seen_at: i64,
}

/// A one-time console sign-in link, by the SHA-256 of its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleLink {
    pub code_hash: String,
    pub customer_id: String,
    pub key_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}
