//! Webhook delivery: the event log's changes become signed HTTP requests to the endpoints
//! that asked for them (`docs/webhooks.md`).
//!
//! One replica at a time holds the `webhooks` lease and runs the [`Worker`]; it does two things
//! in a loop, woken by this process's writes, by the API (a test message, a retry) and at least
//! every second:
//!
//! - **Dispatch**: read the event log after the dispatcher's position, turn each entry into a
//!   message for every enabled endpoint it matches, and store the messages with the new
//!   position in one transaction (`WebhookOutbox::queue_webhook_messages`). The log is written
//!   in the transaction of each change, so it is the outbox: a crash before that commit reads
//!   the same entries again, and nothing is lost. A gap in the log (PostgreSQL) is waited out
//!   as the live stream does ([`crate::stream::settle`]).
//! - **Deliver**: take the messages that are due, at most [`PER_ENDPOINT`] in flight for each
//!   endpoint (so that one slow endpoint never delays the others) and [`IN_FLIGHT`] in all,
//!   send each in a task of its own, and record each attempt with its consequence: delivered,
//!   due again after the next delay of the retry schedule, or failed.
//!
//! A replica killed mid-delivery leaves its messages pending: the next holder of the lease
//! sends them again (delivery is at least once; receivers deduplicate on `webhook-id`).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use faultline_core::fault::{Severity, derive_site_id};
use faultline_core::ids::IdKind;
use faultline_core::time::now_micros;
use faultline_core::webhooks::{
    AllowedHosts, EndpointFilter, RetrySchedule, WebhookSecret, message_body, signature_header, validate_url,
};
use faultline_store::{
    AttemptNext, AttemptOutcome, DueWebhookMessage, LoggedEvent, NewWebhookMessage, Store, StoreResult,
    Webhook, WebhookAttempt,
};
use tokio::sync::{Notify, mpsc};

use crate::faults::{CommentView, FaultView};
use crate::stream::{Gap, settle};

/// The lease's name.
const JOB: &str = "webhooks";
/// Messages in flight for one endpoint at most.
pub const PER_ENDPOINT: usize = 8;
/// Messages in flight in all at most.
pub const IN_FLIGHT: usize = 256;
/// The log is read this many entries at a time.
const PAGE: u32 = 1_000;
/// Without a wake-up, the worker looks for due messages this often.
const POLL: Duration = Duration::from_secs(1);
const GAP_POLL: Duration = Duration::from_millis(20);
/// The first KiB of an answer is kept with its attempt.
const RESPONSE_KEPT: usize = 1_024;
/// Delivered and failed messages are deleted after this long.
pub const MESSAGE_RETENTION_MICROS: i64 = 30 * 86_400 * 1_000_000;
/// How often old messages are deleted, and the queue's gauges set.
const PRUNE_EVERY: Duration = Duration::from_secs(600);
const GAUGES_EVERY: Duration = Duration::from_secs(5);
/// With no endpoint anywhere, the dispatcher's position follows the log's head this often.
const IDLE_ADVANCE_EVERY: Duration = Duration::from_secs(10);

/// How the worker sends.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub allowed_hosts: AllowedHosts,
    /// An endpoint failing every attempt for this long is disabled.
    pub disable_after: Duration,
}

/// The handle the API and the write path hold: wake-ups for the worker.
#[derive(Default)]
pub struct Webhooks {
    wake: Notify,
    /// Some endpoint is enabled (as last seen): only then do writes wake the worker.
    active: AtomicBool,
    /// An endpoint was created or changed here: read the enabled ones again.
    reload: AtomicBool,
}

impl Webhooks {
    /// Look for due messages now (a test message or a retry was queued).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// This process wrote to the event log: dispatch now if any endpoint may want it.
    pub fn nudge(&self) {
        if self.active.load(Ordering::Relaxed) {
            self.wake.notify_one();
        }
    }

    /// An endpoint was created or changed here.
    pub fn endpoints_changed(&self) {
        self.active.store(true, Ordering::Relaxed);
        self.reload.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Run the worker whenever this replica holds the lease. Never returns; abort it to stop.
    pub async fn run(self: Arc<Self>, store: Arc<dyn Store>, config: DeliveryConfig) {
        let client = match http_client(&config) {
            Ok(client) => client,
            Err(err) => {
                tracing::error!(error = %err, "cannot build the webhook HTTP client; webhooks are not sent");
                return;
            }
        };
        loop {
            let mut lease = crate::jobs::lease(&*store, JOB).await;
            Worker::new(self.clone(), store.clone(), config.clone(), client.clone()).run(&mut *lease).await;
            crate::jobs::lease_lost(JOB).await;
        }
    }
}

/// The client every attempt uses: no redirects, no proxy, the timeouts, and the resolver that
/// refuses addresses `webhook_allowed_hosts` does not allow.
fn http_client(config: &DeliveryConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(config.timeout)
        .connect_timeout(config.timeout.min(Duration::from_secs(10)))
        .pool_max_idle_per_host(PER_ENDPOINT)
        .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(GuardedResolver { allowed: config.allowed_hosts.clone() }))
        .build()
}

/// Resolves a host name and hands the client its addresses only when every one is allowed:
/// the check is made on the very addresses the client connects to, so a name that resolves
/// to an allowed address when the endpoint is created and to another one later (DNS
/// rebinding) is refused then.
struct GuardedResolver {
    allowed: AllowedHosts,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allowed = self.allowed.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let ips: Vec<IpAddr> = addresses.iter().map(SocketAddr::ip).collect();
            if !allowed.allows_target(&host, &ips) {
                return Err(refusal(&host, &ips).into());
            }
            Ok(Box::new(addresses.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn refusal(host: &str, ips: &[IpAddr]) -> String {
    match ips.iter().find(|ip| !ip.is_unspecified()) {
        Some(ip) => format!("'{host}' resolves to {ip}, which webhook_allowed_hosts does not allow"),
        None => format!("'{host}' does not resolve"),
    }
}

/// Whether the service may send to `url` now, by the rule the resolver applies at delivery;
/// why not, when not.
pub async fn check_target(allowed: &AllowedHosts, url: &str) -> Result<(), String> {
    let url = validate_url(url).map_err(|err| err.to_string())?;
    if let Ok(ip) = url.host.parse::<IpAddr>() {
        return if allowed.allows_ip(ip) {
            Ok(())
        } else {
            Err(format!("{ip} is an address webhook_allowed_hosts does not allow"))
        };
    }
    if allowed.allows_host_name(&url.host) {
        return Ok(());
    }
    let ips: Vec<IpAddr> = match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
        Ok(addresses) => addresses.map(|a| a.ip()).collect(),
        Err(_) => Vec::new(),
    };
    if allowed.allows_target(&url.host, &ips) { Ok(()) } else { Err(refusal(&url.host, &ips)) }
}

/// An enabled endpoint as the dispatcher matches entries to it.
struct Endpoint {
    id: String,
    customer_id: String,
    events: Vec<String>,
    filter: EndpointFilter,
    from_seq: i64,
}

impl Endpoint {
    fn of(webhook: Webhook) -> Endpoint {
        Endpoint {
            filter: serde_json::from_str(&webhook.filter).unwrap_or_default(),
            id: webhook.id,
            customer_id: webhook.customer_id,
            events: webhook.events,
            from_seq: webhook.from_seq,
        }
    }

    fn wants(&self, entry: &LoggedEvent, event_type: &str) -> bool {
        self.customer_id == entry.customer_id
            && entry.seq > self.from_seq
            && self.events.iter().any(|e| e == event_type)
    }
}

/// The lease holder's state.
struct Worker {
    shared: Arc<Webhooks>,
    store: Arc<dyn Store>,
    config: DeliveryConfig,
    client: reqwest::Client,
    position: Option<i64>,
    gap: Option<Gap>,
    /// Messages in flight, by id, with their endpoint's id.
    in_flight: HashMap<String, String>,
    per_endpoint: HashMap<String, usize>,
    outcomes: (mpsc::UnboundedSender<AttemptOutcome>, mpsc::UnboundedReceiver<AttemptOutcome>),
    /// Outcomes not recorded yet (the store failed): recorded at the next round.
    unrecorded: Vec<AttemptOutcome>,
    /// The enabled endpoints' ids, and when they were read.
    enabled: Vec<String>,
    enabled_at: Option<Instant>,
    /// The earliest retry recorded by this worker and not yet due (microseconds).
    next_retry: Option<i64>,
    last_idle_advance: Option<Instant>,
    last_gauges: Option<Instant>,
    last_prune: Option<Instant>,
}

impl Worker {
    fn new(
        shared: Arc<Webhooks>,
        store: Arc<dyn Store>,
        config: DeliveryConfig,
        client: reqwest::Client,
    ) -> Self {
        Worker {
            shared,
            store,
            config,
            client,
            position: None,
            gap: None,
            in_flight: HashMap::new(),
            per_endpoint: HashMap::new(),
            outcomes: mpsc::unbounded_channel(),
            unrecorded: Vec::new(),
            enabled: Vec::new(),
            enabled_at: None,
            next_retry: None,
            last_idle_advance: None,
            last_gauges: None,
            last_prune: None,
        }
    }

    async fn run(&mut self, lease: &mut dyn faultline_store::Lease) {
        let mut lease_checked = Instant::now();
        loop {
            let mut wait = if self.gap.is_some() { GAP_POLL } else { POLL };
            if let Some(at) = self.next_retry {
                let until = u64::try_from(at - now_micros()).unwrap_or(0);
                wait = wait.min(Duration::from_micros(until));
            }
            tokio::select! {
                () = self.shared.wake.notified() => {}
                Some(outcome) = self.outcomes.1.recv() => self.unrecorded.push(outcome),
                () = tokio::time::sleep(wait) => {}
            }
            while let Ok(outcome) = self.outcomes.1.try_recv() {
                self.unrecorded.push(outcome);
            }
            if lease_checked.elapsed() >= crate::jobs::TAKEOVER_POLL {
                if !lease.still_held().await {
                    return;
                }
                lease_checked = Instant::now();
            }
            if let Err(err) = self.round().await {
                faultline_store::outage::warn_unless_outage(
                    &err,
                    "webhook delivery failed to read or write its queue; retrying",
                );
                tokio::time::sleep(POLL).await;
            }
        }
    }

    async fn round(&mut self) -> StoreResult<()> {
        if self.next_retry.is_some_and(|at| at <= now_micros()) {
            self.next_retry = None;
        }
        self.record().await?;
        self.dispatch().await?;
        self.start_due().await?;
        self.upkeep().await
    }

    /// Record the attempts that ended.
    async fn record(&mut self) -> StoreResult<()> {
        if self.unrecorded.is_empty() {
            return Ok(());
        }
        let disable_after = i64::try_from(self.config.disable_after.as_micros()).unwrap_or(i64::MAX / 2);
        let disabled = self
            .store
            .record_webhook_attempts(&self.unrecorded, now_micros().saturating_sub(disable_after))
            .await?;
        for outcome in self.unrecorded.drain(..) {
            if let AttemptNext::RetryAt(at) = outcome.next {
                self.next_retry = Some(self.next_retry.map_or(at, |next| next.min(at)));
            }
            if self.in_flight.remove(&outcome.message_id).is_some()
                && let Some(n) = self.per_endpoint.get_mut(&outcome.webhook_id)
            {
                *n -= 1;
                if *n == 0 {
                    self.per_endpoint.remove(&outcome.webhook_id);
                }
            }
        }
        for webhook_id in disabled {
            tracing::warn!(
                webhook_id,
                "webhook endpoint disabled: every attempt failed for the disable period"
            );
        }
        Ok(())
    }

    /// Queue the messages the log's new entries make.
    async fn dispatch(&mut self) -> StoreResult<()> {
        let position = match self.position {
            Some(position) => position,
            None => *self.position.insert(self.store.webhook_dispatch_position().await?),
        };
        // The head before the endpoints: an endpoint created after this read starts past it.
        let (head, _) = self.store.log_head().await?;
        if head <= position {
            return Ok(());
        }
        let endpoints = self.store.enabled_webhooks().await?;
        self.shared.active.store(!endpoints.is_empty(), Ordering::Relaxed);
        self.enabled = endpoints.iter().map(|w| w.id.clone()).collect();
        self.enabled_at = Some(Instant::now());
        if endpoints.is_empty() {
            // Nobody is owed anything up to the head: follow it, now and then.
            if self.last_idle_advance.is_none_or(|at| at.elapsed() >= IDLE_ADVANCE_EVERY) {
                self.last_idle_advance = Some(Instant::now());
                self.advance(position, head, &[]).await?;
                self.gap = None;
            }
            return Ok(());
        }
        let endpoints: Vec<Endpoint> = endpoints.into_iter().map(Endpoint::of).collect();
        let mut position = position;
        loop {
            let read = self.store.read_log(position, PAGE).await?;
            let page_full = read.entries.len() == PAGE as usize;
            let (count, upto) = settle(position, &read, page_full, &mut self.gap);
            if upto == position {
                return Ok(());
            }
            let mut messages = Vec::new();
            for entry in read.entries.iter().take(count) {
                self.messages_for(entry, &endpoints, &mut messages).await?;
            }
            if !self.advance(position, upto, &messages).await? {
                return Ok(());
            }
            position = upto;
            if !messages.is_empty() {
                self.shared.wake();
            }
            if !page_full || count == 0 {
                return Ok(());
            }
        }
    }

    /// Store `messages` and move the position from `from` to `to`; `false` when another
    /// replica moved it first (then this one reads the position again).
    async fn advance(&mut self, from: i64, to: i64, messages: &[NewWebhookMessage]) -> StoreResult<bool> {
        if self.store.queue_webhook_messages(messages, from, to).await? {
            self.position = Some(to);
            metrics::counter!("faultline_webhook_messages_queued_total").increment(messages.len() as u64);
            Ok(true)
        } else {
            tracing::warn!("another replica dispatched webhook messages; reading its position");
            self.position = None;
            self.gap = None;
            Ok(false)
        }
    }

    /// The messages one log entry makes.
    async fn messages_for(
        &self,
        entry: &LoggedEvent,
        endpoints: &[Endpoint],
        out: &mut Vec<NewWebhookMessage>,
    ) -> StoreResult<()> {
        // The same events as the live stream's.
        let Some(event_type) = crate::stream::stream_kind(&entry.kind) else { return Ok(()) };
        let wanting: Vec<&Endpoint> = endpoints.iter().filter(|e| e.wants(entry, event_type)).collect();
        if wanting.is_empty() {
            return Ok(());
        }
        let (severity, site_id, data) = if event_type == "fault.deleted" {
            let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
            let text = |name: &str| detail.get(name).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
            let severity: Option<Severity> = text("severity").parse().ok();
            let site = derive_site_id(&text("resource_id"), &text("resource_ancestry_path"));
            (severity, site, serde_json::json!({"id": entry.fault_id}))
        } else {
            // The fault as it is now; one deleted since is sent only its deletion.
            let Some(fault) = self.store.get_fault(&entry.customer_id, &entry.fault_id).await? else {
                return Ok(());
            };
            let (severity, site) = (Some(fault.severity), fault.site_id.clone());
            let comment = (event_type == "fault.commented")
                .then(|| {
                    let detail: serde_json::Value = serde_json::from_str(&entry.detail).unwrap_or_default();
                    let id = detail.get("comment_id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                    fault.comments.iter().find(|c| c.id == id).map(|c| CommentView {
                        user_id: c.user_id.clone(),
                        comment: c.comment.clone(),
                        created_at: faultline_core::time::format_micros(c.created_at),
                    })
                })
                .flatten();
            let fault = serde_json::to_value(FaultView::from(fault)).unwrap_or_default();
            let data = match comment {
                Some(comment) => serde_json::json!({"fault": fault, "comment": comment}),
                None if event_type == "fault.commented" => {
                    serde_json::json!({"fault": fault, "comment": null})
                }
                None => fault,
            };
            (severity, site, data)
        };
        let body = message_body(event_type, entry.at, &data);
        let now = now_micros();
        for endpoint in wanting {
            let matches = severity.is_some_and(|s| endpoint.filter.matches(s, site_id.as_deref()));
            if !matches {
                continue;
            }
            out.push(NewWebhookMessage {
                id: IdKind::WebhookMessage.new_id(),
                webhook_id: endpoint.id.clone(),
                customer_id: entry.customer_id.clone(),
                event_type: event_type.to_owned(),
                body: body.clone(),
                created_at: now,
                due_at: now + micros(self.config.schedule.delay_before(0).unwrap_or_default()),
            });
        }
        Ok(())
    }

    /// Send the messages that are due, as far as the limits allow: the due messages of each
    /// enabled endpoint with room for more in flight.
    async fn start_due(&mut self) -> StoreResult<()> {
        let room = IN_FLIGHT.saturating_sub(self.in_flight.len());
        if room == 0 {
            return Ok(());
        }
        if self.shared.reload.swap(false, Ordering::Relaxed)
            || self.enabled_at.is_none_or(|at| at.elapsed() >= POLL)
        {
            self.enabled = self.store.enabled_webhooks().await?.into_iter().map(|w| w.id).collect();
            self.enabled_at = Some(Instant::now());
            self.shared.active.store(!self.enabled.is_empty(), Ordering::Relaxed);
        }
        let open: Vec<String> = self
            .enabled
            .iter()
            .filter(|id| self.per_endpoint.get(*id).is_none_or(|n| *n < PER_ENDPOINT))
            .cloned()
            .collect();
        if open.is_empty() {
            return Ok(());
        }
        // Each endpoint's in-flight messages are still pending and due: ask for as many more.
        let per_endpoint = u32::try_from(PER_ENDPOINT).unwrap_or(u32::MAX);
        let due = self.store.due_webhook_messages(now_micros(), &open, per_endpoint).await?;
        let mut started = 0;
        for message in due {
            if started == room || self.in_flight.contains_key(&message.id) {
                continue;
            }
            let count = self.per_endpoint.entry(message.webhook_id.clone()).or_default();
            if *count >= PER_ENDPOINT {
                continue;
            }
            *count += 1;
            started += 1;
            self.in_flight.insert(message.id.clone(), message.webhook_id.clone());
            let (client, schedule, sender) =
                (self.client.clone(), self.config.schedule.clone(), self.outcomes.0.clone());
            let allowed = self.config.allowed_hosts.clone();
            tokio::spawn(async move {
                let outcome = attempt(&client, &allowed, &schedule, message).await;
                let _ = sender.send(outcome);
            });
        }
        Ok(())
    }

    /// Now and then: the queue's gauges, and old messages deleted.
    async fn upkeep(&mut self) -> StoreResult<()> {
        if self.last_gauges.is_none_or(|at| at.elapsed() >= GAUGES_EVERY) {
            self.last_gauges = Some(Instant::now());
            let queue = self.store.webhook_queue().await?;
            metrics::gauge!("faultline_webhook_queue_depth").set(queue.pending as f64);
            let oldest = queue.oldest_created_at.map_or(0.0, |at| (now_micros() - at).max(0) as f64 / 1e6);
            metrics::gauge!("faultline_webhook_oldest_pending_seconds").set(oldest);
        }
        if self.last_prune.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            self.last_prune = Some(Instant::now());
            let before = now_micros() - MESSAGE_RETENTION_MICROS;
            while self.store.prune_webhook_messages(before, 1_000).await? == 1_000 {}
        }
        Ok(())
    }
}

fn micros(d: Duration) -> i64 {
    i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 2)
}

/// A number in [0, 1) for the retry delay's jitter.
fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    faultline_core::secret::random_bytes(&mut bytes);
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

/// The secrets that sign now: the endpoint's, and the one before it while it still signs.
fn signing_secrets(message: &DueWebhookMessage, now: i64) -> Vec<WebhookSecret> {
    let previous = message
        .previous_secret
        .as_deref()
        .filter(|_| message.previous_secret_until.is_some_and(|until| until > now));
    [Some(message.secret.as_str()), previous]
        .into_iter()
        .flatten()
        .filter_map(WebhookSecret::decode)
        .collect()
}

/// One attempt to deliver `message`, and what follows from it.
async fn attempt(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    schedule: &RetrySchedule,
    message: DueWebhookMessage,
) -> AttemptOutcome {
    let at = now_micros();
    let started = Instant::now();
    let secrets = signing_secrets(&message, at);
    let secrets: Vec<&WebhookSecret> = secrets.iter().collect();
    let timestamp = at / 1_000_000;
    let signature = signature_header(&secrets, &message.id, timestamp, message.body.as_bytes());
    let (status_code, error, response) = match literal_refusal(allowed, &message.url) {
        Some(refused) => (None, Some(refused), None),
        None => {
            let sent = client
                .post(&message.url)
                .header("webhook-id", &message.id)
                .header("webhook-timestamp", timestamp.to_string())
                .header("webhook-signature", signature)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(message.body.clone())
                .send()
                .await;
            match sent {
                Ok(answer) => {
                    let status = answer.status();
                    let body = first_kib(answer).await;
                    let error = if status.is_success() {
                        None
                    } else if status.is_redirection() {
                        Some(format!("status {}: redirects are not followed", status.as_u16()))
                    } else {
                        Some(format!("status {}", status.as_u16()))
                    };
                    (Some(i64::from(status.as_u16())), error, body)
                }
                Err(err) => (None, Some(describe(&err)), None),
            }
        }
    };
    let elapsed = started.elapsed();
    let delivered = error.is_none();
    let next = if delivered {
        AttemptNext::Delivered
    } else {
        let attempts_made = usize::try_from(message.attempts).unwrap_or(usize::MAX).saturating_add(1);
        match schedule.delay_before(attempts_made) {
            Some(delay) => {
                AttemptNext::RetryAt(now_micros() + micros(RetrySchedule::with_jitter(delay, random_unit())))
            }
            None => AttemptNext::Failed,
        }
    };
    let result = if delivered { "delivered" } else { "failed" };
    metrics::counter!("faultline_webhook_attempts_total", "result" => result).increment(1);
    metrics::histogram!("faultline_webhook_attempt_seconds").record(elapsed.as_secs_f64());
    match next {
        AttemptNext::Delivered => {
            metrics::counter!("faultline_webhook_messages_total", "outcome" => "delivered").increment(1);
            let latency = (now_micros() - message.created_at).max(0) as f64 / 1e6;
            metrics::histogram!("faultline_webhook_delivery_latency_seconds").record(latency);
        }
        AttemptNext::Failed => {
            metrics::counter!("faultline_webhook_messages_total", "outcome" => "failed").increment(1);
        }
        AttemptNext::RetryAt(_) => {}
    }
    if let Some(error) = &error {
        tracing::debug!(
            message_id = message.id,
            webhook_id = message.webhook_id,
            error,
            "webhook attempt failed"
        );
    }
    AttemptOutcome {
        message_id: message.id,
        webhook_id: message.webhook_id,
        attempt: WebhookAttempt {
            at,
            status_code,
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
            error,
            response,
        },
        next,
    }
}

/// Why a URL whose host is an address may not be sent to (the resolver sees only names).
fn literal_refusal(allowed: &AllowedHosts, url: &str) -> Option<String> {
    let url = match validate_url(url) {
        Ok(url) => url,
        Err(err) => return Some(err.to_string()),
    };
    let ip = url.host.parse::<IpAddr>().ok()?;
    (!allowed.allows_ip(ip))
        .then(|| format!("refused: {ip} is an address webhook_allowed_hosts does not allow"))
}

/// The first KiB of an answer's body, as text.
async fn first_kib(mut answer: reqwest::Response) -> Option<String> {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_KEPT {
        match answer.chunk().await {
            Ok(Some(chunk)) => kept.extend_from_slice(&chunk[..chunk.len().min(RESPONSE_KEPT - kept.len())]),
            _ => break,
        }
    }
    if kept.is_empty() {
        return None;
    }
    Some(String::from_utf8_lossy(&kept).into_owned())
}

/// A failed request in a few words: what an operator reads in the message's attempts.
fn describe(err: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    let cause = causes.last().cloned().unwrap_or_else(|| err.to_string());
    if err.is_timeout() {
        "timeout".to_owned()
    } else if err.is_connect() {
        format!("connection failed: {cause}")
    } else {
        format!("request failed: {cause}")
    }
}
