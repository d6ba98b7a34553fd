//! `GET /fault/stream`: the live event stream, as Server-Sent Events.
//!
//! The `fault_events` log is the source of truth. One tailer per process (the [`Hub`]) reads
//! it in sequence order and publishes each entry once to every local subscriber. While this
//! process has a subscriber, it wakes when this process writes (a nudge from the write
//! middleware) and when any replica commits to the log (PostgreSQL `LISTEN`); with or without
//! one, at least every second. (Without a subscriber, a read of the log after every write would
//! add a statement to every `POST /fault`, for nobody.) A new subscriber waits for a read begun
//! after it arrived before it joins, so a stream still starts after the writes before it. A client that
//! reconnects with `Last-Event-ID` is first served the entries it missed from the log, then
//! joins the live feed, so nothing is lost or repeated.
//!
//! On PostgreSQL a sequence number is taken before its transaction commits, so the log can
//! show 11 while 10 is still in flight. The tailer publishes only a gap-free prefix; a gap is
//! waited out until every transaction that was running when it was seen has ended
//! ([`faultline_store::Horizon`]), after which whatever filled it is final.
//!
//! A subscriber that falls more than [`BUFFER`] events behind is sent a `resync` event and
//! cut off, rather than buffered without bound.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use faultline_core::Permission;
use faultline_core::fault::{Severity, ancestry_elements};
use faultline_core::scope::TokenScope;
use faultline_core::time::format_micros;
use faultline_store::{Horizon, LogRead, LoggedEvent, Store, StoreResult};
use serde::Serialize;
use tokio::sync::{Notify, broadcast, watch};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Auth;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::faults::FaultView;
use crate::state::AppState;

/// Events a subscriber may fall behind by before it is cut off with `resync`.
pub const BUFFER: usize = 4_096;
/// Idle connections get an SSE comment line this often, to hold them open through proxies.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The tailer reads the log this many entries at a time.
const PAGE: u32 = 1_000;
/// How often the tailer polls when nothing woke it (by default), and retries a failed read.
pub const POLL: Duration = Duration::from_secs(1);
const GAP_POLL: Duration = Duration::from_millis(20);
/// How long a new subscriber waits for the tailer to read the log (past it, it starts from
/// the position the tailer has, which may be behind: the tailer may be failing to read, or
/// waiting out a gap on PostgreSQL).
const FIRST_READ_WAIT: Duration = Duration::from_secs(5);
/// How often a stream checks that its credential still holds.
const RECHECK: Duration = Duration::from_secs(2);
/// At shutdown, streams end with this reconnection delay (the SSE `retry` field).
pub const SHUTDOWN_RETRY: Duration = Duration::from_secs(1);

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// The `data` of every stream event.
#[derive(Debug, Serialize, ToSchema)]
pub struct StreamEventData {
    #[schema(example = "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1")]
    pub fault_id: String,
    /// When the change was logged.
    #[schema(example = "2025-10-21T13:00:00.000000Z")]
    pub occurred_at: String,
    /// The fault as it is now; absent for `fault.deleted` (and when it was deleted since).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault: Option<FaultView>,
}

/// One log entry, ready to send: its event, and who may see it.
#[derive(Debug)]
pub struct Published {
    pub seq: i64,
    customer_id: String,
    /// What a token's scope is checked against; `None` (the fault is gone and its details
    /// were not logged) means only unrestricted credentials see it.
    visibility: Option<Visibility>,
    kind: &'static str,
    data: String,
}

#[derive(Debug)]
struct Visibility {
    fault_id: String,
    resource_id: String,
    fault_type: String,
    severity: Severity,
    elements: Vec<String>,
}

impl Published {
    fn visible_to(&self, customer_id: &str, scope: Option<&TokenScope>) -> bool {
        if self.customer_id != customer_id {
            return false;
        }
        match (scope, &self.visibility) {
            (None, _) => true,
            (Some(scope), _) if scope.is_unrestricted() => true,
            (Some(scope), Some(v)) => {
                scope.matches_parts(&v.fault_id, &v.resource_id, &v.fault_type, v.severity, &v.elements)
            }
            (Some(_), None) => false,
        }
    }

    fn event(&self) -> Event {
        Event::default().id(self.seq.to_string()).event(self.kind).data(&self.data)
    }
}

/// The stream event a log entry becomes, if any (`token_minted` entries are not fault changes).
pub(crate) fn stream_kind(kind: &str) -> Option<&'static str> {
    match kind {
        "created" => Some("fault.created"),
        "resolved" => Some("fault.resolved"),
        "commented" => Some("fault.commented"),
        "deleted" | "expired" => Some("fault.deleted"),
        _ => None,
    }
}

/// Turn a log entry into an event: the fault's current state for changes, the logged details
/// for deletions. `None` for entries that are not fault changes.
async fn publishable(store: &dyn Store, entry: LoggedEvent) -> StoreResult<Option<Published>> {
    let Some(kind) = stream_kind(&entry.kind) else {
        return Ok(None);
    };
    let (fault, visibility) = if kind == "fault.deleted" {
        (None, removed_visibility(&entry))
    } else {
        match store.get_fault(&entry.customer_id, &entry.fault_id).await? {
            Some(fault) => {
                let visibility = Visibility {
                    fault_id: fault.id.clone(),
                    resource_id: fault.resource_id.clone(),
                    fault_type: fault.fault_type.clone(),
                    severity: fault.severity,
                    elements: fault.ancestry_elements(),
                };
                (Some(FaultView::from(fault)), Some(visibility))
            }
            None => (None, None),
        }
    };
    let data = StreamEventData { fault_id: entry.fault_id, occurred_at: format_micros(entry.at), fault };
    Ok(Some(Published {
        seq: entry.seq,
        customer_id: entry.customer_id,
        visibility,
        kind,
        data: serde_json::to_string(&data).unwrap_or_default(),
    }))
}

/// What the log kept of a deleted fault (see `LoggedEvent::detail`).
fn removed_visibility(entry: &LoggedEvent) -> Option<Visibility> {
    let detail: serde_json::Value = serde_json::from_str(&entry.detail).ok()?;
    let text = |name: &str| detail.get(name).and_then(|v| v.as_str()).map(str::to_owned);
    let (resource_id, path) = (text("resource_id")?, text("resource_ancestry_path")?);
    Some(Visibility {
        fault_id: entry.fault_id.clone(),
        fault_type: text("type")?,
        severity: text("severity")?.parse().ok()?,
        elements: ancestry_elements(&resource_id, &path),
        resource_id,
    })
}

/// A gap the tailer is waiting out: entries up to `seq` were seen at `horizon`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gap {
    seq: i64,
    horizon: Horizon,
}

/// Of a page of the log read after `position`, how many entries (from the front) may be
/// published now, and the position after them. See the module documentation.
pub(crate) fn settle(position: i64, read: &LogRead, page_full: bool, gap: &mut Option<Gap>) -> (usize, i64) {
    let Some(horizon) = read.horizon else {
        return (read.entries.len(), read.entries.last().map_or(position, |e| e.seq));
    };
    // Every sequence number up to `settled` is final: committed (and in this page or a later
    // one) or never to be.
    let mut settled = position;
    if let Some(waiting) = *gap
        && horizon.settles(&waiting.horizon)
    {
        settled = waiting.seq;
        *gap = None;
    }
    let (mut count, mut upto) = (0, position);
    for entry in &read.entries {
        if entry.seq <= settled || entry.seq == upto + 1 {
            count += 1;
            upto = entry.seq;
        } else {
            break;
        }
    }
    if !page_full {
        upto = upto.max(settled);
    }
    if count < read.entries.len() && gap.is_none() {
        let last = read.entries.last().map_or(upto, |e| e.seq);
        *gap = Some(Gap { seq: last, horizon });
    }
    if gap.is_some_and(|g| g.seq <= upto) {
        *gap = None;
    }
    (count, upto)
}

/// The process's tailer of the event log and its subscribers.
pub struct Hub {
    sender: broadcast::Sender<Arc<Published>>,
    /// The position and the subscribers, under one lock: a new subscriber registers,
    /// subscribes and reads the position under it, and the tailer stores a position under it,
    /// so an entry is never skipped for a customer whose subscriber started before it.
    feed: Mutex<Feed>,
    nudge: Notify,
    /// Subscribers in this process (of any customer): nudges wake the tailer only while some.
    watching: AtomicUsize,
    /// Reads of the log begun, and (published) those ended.
    reads_begun: AtomicU64,
    reads_ended: watch::Sender<u64>,
    closing: watch::Sender<bool>,
    /// Set once the starting position is known; streams wait for it.
    ready: watch::Sender<bool>,
    /// How often the tailer reads the log when nothing woke it.
    poll: Duration,
}

#[derive(Default)]
struct Feed {
    /// Every entry up to here has been published (or predates this process).
    position: i64,
    /// Subscribers per customer: entries of other customers are not prepared at all.
    watchers: HashMap<String, usize>,
}

impl Hub {
    /// A hub whose subscribers may fall `buffer` events behind (at least 1), whose tailer
    /// reads the log at least every `poll`.
    pub fn new(buffer: usize, poll: Duration) -> Self {
        Hub {
            poll,
            sender: broadcast::channel(buffer.max(1)).0,
            feed: Mutex::new(Feed::default()),
            nudge: Notify::new(),
            watching: AtomicUsize::new(0),
            reads_begun: AtomicU64::new(0),
            reads_ended: watch::channel(0).0,
            closing: watch::channel(false).0,
            ready: watch::channel(false).0,
        }
    }

    /// Something may have been written to the log by this process: read it now if anyone
    /// here is watching (otherwise the next poll reads it).
    pub fn nudge(&self) {
        if self.watched() {
            self.nudge.notify_one();
        }
    }

    /// Reads of the log the tailer has ended so far.
    pub fn log_reads(&self) -> u64 {
        *self.reads_ended.borrow()
    }

    fn watched(&self) -> bool {
        self.watching.load(Ordering::SeqCst) > 0
    }

    /// End every stream (on shutdown).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn feed(&self) -> std::sync::MutexGuard<'_, Feed> {
        self.feed.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Start publishing, in a task of its own: from the log's head as it is now, once every
    /// transaction in flight now has ended (so that none of them can still commit an entry
    /// below the starting position). Streams wait until then.
    pub fn start(self: &Arc<Self>, store: Arc<dyn Store>) -> tokio::task::JoinHandle<()> {
        let hub = self.clone();
        tokio::spawn(async move {
            let head = loop {
                match hub.settled_head(&*store).await {
                    Ok(head) => break head,
                    Err(err) => {
                        faultline_store::outage::warn_unless_outage(
                            &err,
                            "cannot read the event log's head; retrying",
                        );
                        tokio::time::sleep(POLL).await;
                    }
                }
            };
            hub.feed().position = head;
            hub.ready.send_replace(true);
            let notifications = match store.log_notifications().await {
                Ok(wakeups) => wakeups,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot LISTEN for other replicas' events; polling every second");
                    None
                }
            };
            hub.tail(store, notifications).await;
        })
    }

    /// The log's head, returned once every transaction running when it was read has ended.
    async fn settled_head(&self, store: &dyn Store) -> StoreResult<i64> {
        let (head, horizon) = store.log_head().await?;
        let Some(start) = horizon else {
            return Ok(head);
        };
        let since = tokio::time::Instant::now();
        let mut warned = since;
        loop {
            match store.log_head().await?.1 {
                Some(now) if !now.settles(&start) => {
                    if warned.elapsed() > Duration::from_secs(5) {
                        warned = tokio::time::Instant::now();
                        tracing::warn!(
                            waited_s = since.elapsed().as_secs(),
                            "the event stream waits for a long-running transaction to end before it starts"
                        );
                    }
                    tokio::time::sleep(GAP_POLL).await;
                }
                _ => return Ok(head),
            }
        }
    }

    async fn tail(
        self: Arc<Self>,
        store: Arc<dyn Store>,
        mut notifications: Option<tokio::sync::mpsc::Receiver<()>>,
    ) {
        let mut gap = None;
        let mut gap_since: Option<(tokio::time::Instant, tokio::time::Instant)> = None;
        let mut last_read = tokio::time::Instant::now();
        loop {
            let wait = if gap.is_some() { GAP_POLL } else { self.poll };
            tokio::select! {
                () = self.nudge.notified() => {}
                Some(()) = async { match notifications.as_mut() { Some(n) => n.recv().await, None => None } } => {
                    // Another replica wrote: read now only for someone here.
                    if !self.watched() && gap.is_none() {
                        continue;
                    }
                }
                () = tokio::time::sleep_until(last_read + wait) => {}
            }
            self.reads_begun.fetch_add(1, Ordering::SeqCst);
            metrics::counter!("faultline_stream_log_reads_total").increment(1);
            let read = self.publish_new(&*store, &mut gap).await;
            last_read = tokio::time::Instant::now();
            self.reads_ended.send_modify(|n| *n += 1);
            if let Err(err) = read {
                faultline_store::outage::warn_unless_outage(&err, "reading the event log failed; retrying");
                tokio::time::sleep(POLL).await;
            }
            // A gap waits for every transaction that was running when it was seen, anywhere in
            // the PostgreSQL cluster: a long one holds the stream (never the API) back.
            match (gap, &mut gap_since) {
                (None, since) => *since = None,
                (Some(_), None) => {
                    gap_since = Some((tokio::time::Instant::now(), tokio::time::Instant::now()))
                }
                (Some(_), Some((first, warned))) if warned.elapsed() > Duration::from_secs(5) => {
                    *warned = tokio::time::Instant::now();
                    tracing::warn!(
                        waited_s = first.elapsed().as_secs(),
                        "the event stream waits for a long-running transaction to end"
                    );
                }
                _ => {}
            }
        }
    }

    /// Publish every entry that can be, page by page.
    async fn publish_new(&self, store: &dyn Store, gap: &mut Option<Gap>) -> StoreResult<()> {
        loop {
            let position = self.feed().position;
            let read = store.read_log(position, PAGE).await?;
            let page_full = read.entries.len() == PAGE as usize;
            let (count, upto) = settle(position, &read, page_full, gap);
            let entries: Vec<LoggedEvent> = read.entries.into_iter().take(count).collect();
            // Prepare the entries of watched customers. A customer may gain its first
            // subscriber meanwhile: then prepare its entries too, until none is missing when
            // the position is stored (under the feed's lock, see `feed`).
            let mut prepared: Vec<Option<Option<Arc<Published>>>> = vec![None; entries.len()];
            loop {
                let missing: Vec<usize> = {
                    let mut feed = self.feed();
                    let missing: Vec<usize> = (0..entries.len())
                        .filter(|&i| {
                            prepared[i].is_none() && feed.watchers.contains_key(&entries[i].customer_id)
                        })
                        .collect();
                    if missing.is_empty() {
                        // Position first: a subscriber that reads it and then the log sees
                        // these entries in its catch-up, and skips them when they arrive.
                        feed.position = upto;
                    }
                    missing
                };
                if missing.is_empty() {
                    break;
                }
                for i in missing {
                    prepared[i] = Some(publishable(store, entries[i].clone()).await?.map(Arc::new));
                }
            }
            for published in prepared.into_iter().flatten().flatten() {
                let _ = self.sender.send(published);
            }
            if !page_full || count == 0 {
                return Ok(());
            }
        }
    }

    /// Register a subscriber of `customer_id`: its live feed, and the position from which the
    /// feed is whole (everything after it arrives there; up to it, the log has it).
    async fn subscribe(
        self: &Arc<Self>,
        customer_id: &str,
    ) -> (WatchGuard, broadcast::Receiver<Arc<Published>>, i64) {
        let mut ready = self.ready.subscribe();
        let _ = ready.wait_for(|r| *r).await;
        // Counted first, so that writes now wake the tailer; then wait for a read begun after
        // that (unwatched, the tailer read the log only every POLL), so the position read
        // below follows every write made before this subscriber came. Only then does it join
        // the feed: the entries that read publishes are not prepared for it, nor queued for a
        // receiver nobody drains yet.
        let counted = Counted::new(self.clone());
        let begun = self.reads_begun.load(Ordering::SeqCst);
        self.nudge.notify_one();
        let mut ended = self.reads_ended.subscribe();
        let _ = tokio::time::timeout(FIRST_READ_WAIT, ended.wait_for(|&n| n > begun)).await;
        let mut feed = self.feed();
        *feed.watchers.entry(customer_id.to_owned()).or_default() += 1;
        let live = self.sender.subscribe();
        let position = feed.position;
        drop(feed);
        (WatchGuard { customer_id: customer_id.to_owned(), counted }, live, position)
    }
}

/// Counts a subscriber in [`Hub::watching`] while it lives (also while it waits to join).
struct Counted(Arc<Hub>);

impl Counted {
    fn new(hub: Arc<Hub>) -> Counted {
        hub.watching.fetch_add(1, Ordering::SeqCst);
        Counted(hub)
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.watching.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Counts a subscriber for its customer while it lives.
struct WatchGuard {
    customer_id: String,
    counted: Counted,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        let mut feed = self.counted.0.feed();
        if let Some(n) = feed.watchers.get_mut(&self.customer_id) {
            *n -= 1;
            if *n == 0 {
                feed.watchers.remove(&self.customer_id);
            }
        }
    }
}

/// One client's stream: catch-up from the log, then the live feed.
struct Subscriber {
    state: AppState,
    customer_id: String,
    scope: Option<TokenScope>,
    /// The request's `Authorization`, re-checked every [`RECHECK`].
    credential: HeaderMap,
    live: broadcast::Receiver<Arc<Published>>,
    closing: watch::Receiver<bool>,
    /// The last sequence number sent (or skipped as not this client's).
    last: i64,
    /// Catch-up reads the log up to here; live events at or below it are skipped.
    catch_up_to: i64,
    queue: VecDeque<Event>,
    checked: tokio::time::Instant,
    ended: bool,
    _watch: WatchGuard,
}

impl Subscriber {
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.queue.pop_front() {
                return Some(event);
            }
            if self.ended {
                return None;
            }
            if *self.closing.borrow() {
                // The server is shutting down: the client is told to reconnect in a second
                // (to another replica, or to this one restarted), resuming from its last id.
                self.ended = true;
                return Some(Event::default().comment("shutting down").retry(SHUTDOWN_RETRY));
            }
            if !self.credential_holds().await {
                self.ended = true;
                continue;
            }
            if self.last < self.catch_up_to {
                match self.catch_up().await {
                    Ok(()) => {}
                    // The database is out of reach: the stream waits for it, and goes on where
                    // it stopped.
                    Err(err) if err.is_outage() => tokio::time::sleep(POLL).await,
                    Err(err) => {
                        tracing::warn!(error = %err, "stream catch-up failed; ending the stream");
                        self.ended = true;
                    }
                }
                continue;
            }
            tokio::select! {
                received = self.live.recv() => self.receive(received),
                _ = self.closing.changed() => {}
                () = tokio::time::sleep(RECHECK) => {}
            }
        }
    }

    async fn catch_up(&mut self) -> StoreResult<()> {
        let store = self.state.store.clone();
        let entries = store.customer_log(&self.customer_id, self.last, self.catch_up_to, PAGE).await?;
        if entries.is_empty() {
            self.last = self.catch_up_to;
            return Ok(());
        }
        for entry in entries {
            self.last = entry.seq;
            if let Some(published) = publishable(&*store, entry).await?
                && published.visible_to(&self.customer_id, self.scope.as_ref())
            {
                self.queue.push_back(published.event());
            }
        }
        Ok(())
    }

    fn receive(&mut self, received: Result<Arc<Published>, broadcast::error::RecvError>) {
        match received {
            Ok(published) => {
                if published.seq > self.last && published.visible_to(&self.customer_id, self.scope.as_ref()) {
                    self.queue.push_back(published.event());
                }
                self.last = self.last.max(published.seq);
            }
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                metrics::counter!("faultline_stream_resyncs_total").increment(1);
                let data = serde_json::json!({"reason": "slow_consumer", "missed": missed,
                    "last_event_id": self.last.to_string()});
                self.queue.push_back(Event::default().event("resync").data(data.to_string()));
                self.ended = true;
            }
            Err(broadcast::error::RecvError::Closed) => self.ended = true,
        }
    }

    /// The stream ends once its credential (API key or access token) is revoked or expires;
    /// checked every [`RECHECK`] at most, through the credential caches.
    async fn credential_holds(&mut self) -> bool {
        if self.checked.elapsed() < RECHECK {
            return true;
        }
        self.checked = tokio::time::Instant::now();
        crate::auth::still_authenticates(&self.state, &self.credential).await
    }
}

/// [ext] The live event stream of the caller's faults.
///
/// Server-Sent Events: `fault.created`, `fault.resolved`, `fault.commented` and
/// `fault.deleted`, each with the event log's sequence number as its `id` and a JSON `data`
/// object. Reconnecting with `Last-Event-ID` resumes after that event, with nothing lost or
/// repeated. A comment line is sent every 15 s on an idle stream. A client that falls more
/// than 4,096 events behind receives a `resync` event and is disconnected: it should reload
/// what it shows and reconnect. Access tokens see only the events of their scope; their
/// stream (like an API key's) ends when they are revoked or expire.
#[utoipa::path(get, path = "/fault/stream", tag = "Faults", operation_id = "streamFaultEvents",
    security(("bearer" = [])),
    params(("Last-Event-ID" = Option<String>, Header, description = "Resume after this event id")),
    responses(
        (status = 200, description = "An event stream", content_type = "text/event-stream", body = StreamEventData),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody)))]
pub async fn stream(State(state): State<AppState>, auth: Auth, headers: HeaderMap) -> ApiResult<Response> {
    let principal = auth.require(Permission::FaultsRead)?;
    let resume_after = match headers.get("last-event-id") {
        None => None,
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| ApiError::invalid("Last-Event-ID", "must be an event id from this stream"))?,
        ),
    };
    let hub = state.stream.clone();
    let (watch, live, position) = hub.subscribe(&principal.customer_id).await;
    // An id beyond this replica's position (the client came from a replica ahead of this
    // one) needs no catch-up; live events up to it are skipped as already seen.
    let last = resume_after.unwrap_or(position);
    // What authenticated the stream, to check again as it goes: the Authorization header, or
    // else the console's session cookie (checking it also counts as the session's use, so an
    // open wall screen keeps its session).
    let mut credential = HeaderMap::new();
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        credential.insert(header::AUTHORIZATION, value.clone());
    } else if let Some(secret) = crate::console::session_secret(&headers) {
        let cookie = format!("{}={secret}", crate::console::SESSION_COOKIE);
        credential.insert(header::COOKIE, HeaderValue::from_str(&cookie).map_err(ApiError::internal)?);
    }
    let subscriber = Subscriber {
        _watch: watch,
        customer_id: principal.customer_id.clone(),
        scope: principal.scope.clone(),
        credential,
        live,
        closing: hub.closing.subscribe(),
        last,
        catch_up_to: position,
        queue: VecDeque::new(),
        checked: tokio::time::Instant::now(),
        ended: false,
        state: state.clone(),
    };
    let events = futures_util::stream::unfold(subscriber, |mut s| async move {
        s.next().await.map(|event| (Ok::<_, Infallible>(event), s))
    });
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(state.config.stream_keep_alive))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(seqs: &[i64], horizon: Option<(i64, i64)>) -> LogRead {
        LogRead {
            entries: seqs
                .iter()
                .map(|&seq| LoggedEvent {
                    seq,
                    customer_id: "cus_1".into(),
                    fault_id: format!("flt_{seq}"),
                    kind: "created".into(),
                    at: 0,
                    detail: "{}".into(),
                })
                .collect(),
            horizon: horizon.map(|(xmin, xmax)| Horizon { xmin, xmax }),
        }
    }

    #[test]
    fn without_a_horizon_every_entry_is_final() {
        let mut gap = None;
        assert_eq!(settle(10, &page(&[11, 13, 20], None), false, &mut gap), (3, 20));
        assert_eq!(gap, None);
    }

    #[test]
    fn a_gap_holds_back_what_follows_until_the_transactions_seen_with_it_end() {
        let mut gap = None;
        // 12 is missing: publish 11 only, and remember that 13 was seen while xids < 100 ran.
        assert_eq!(settle(10, &page(&[11, 13], Some((90, 100))), false, &mut gap), (1, 11));
        assert_eq!(gap, Some(Gap { seq: 13, horizon: Horizon { xmin: 90, xmax: 100 } }));
        // Transaction 95 still runs: nothing moves.
        assert_eq!(settle(11, &page(&[13, 14], Some((95, 104))), false, &mut gap), (0, 11));
        // 12 committed meanwhile: the prefix is whole again.
        assert_eq!(settle(11, &page(&[12, 13, 14], Some((95, 104))), false, &mut gap), (3, 14));
        assert_eq!(gap, None);
    }

    #[test]
    fn a_gap_that_never_fills_is_skipped_once_settled() {
        let mut gap = None;
        assert_eq!(settle(10, &page(&[12, 13], Some((90, 100))), false, &mut gap), (0, 10));
        // Every transaction older than 100 has ended: 11 rolled back; 12 and 13 go.
        assert_eq!(settle(10, &page(&[12, 13, 15], Some((100, 108))), false, &mut gap), (2, 13));
        // 15 came after the settled horizon's page: it waits for its own gap (14) to settle.
        assert_eq!(gap, Some(Gap { seq: 15, horizon: Horizon { xmin: 100, xmax: 108 } }));
        assert_eq!(settle(13, &page(&[15], Some((108, 110))), false, &mut gap), (1, 15));
        assert_eq!(gap, None);
    }

    #[test]
    fn a_settled_gap_moves_the_position_past_entries_that_will_never_come() {
        let mut gap = Some(Gap { seq: 20, horizon: Horizon { xmin: 1, xmax: 5 } });
        // Nothing at all after 10 is visible and the gap settled: 11..=20 all rolled back.
        assert_eq!(settle(10, &page(&[], Some((5, 6))), false, &mut gap), (0, 20));
        // But a full page only moves as far as what it holds.
        let mut gap = Some(Gap { seq: 20, horizon: Horizon { xmin: 1, xmax: 5 } });
        assert_eq!(settle(10, &page(&[12, 14], Some((5, 6))), true, &mut gap), (2, 14));
    }

    #[test]
    fn deleted_faults_are_visible_to_the_scopes_that_could_see_them() {
        let entry = LoggedEvent {
            seq: 1,
            customer_id: "cus_1".into(),
            fault_id: "flt_1".into(),
            kind: "deleted".into(),
            at: 0,
            detail: r#"{"resource_id":"tun_1","type":"wantunnel","severity":"HIGH","resource_ancestry_path":"site_1|tun_1"}"#.into(),
        };
        let v = removed_visibility(&entry).unwrap();
        let published = Published {
            seq: 1,
            customer_id: "cus_1".into(),
            visibility: Some(v),
            kind: "fault.deleted",
            data: String::new(),
        };
        let site = |s: &str| TokenScope { site_ids: vec![s.into()], ..TokenScope::default() };
        assert!(published.visible_to("cus_1", None));
        assert!(published.visible_to("cus_1", Some(&site("site_1"))));
        assert!(!published.visible_to("cus_1", Some(&site("site_2"))));
        assert!(!published.visible_to("cus_2", None));
        let hidden = Published { visibility: None, ..published };
        assert!(!hidden.visible_to("cus_1", Some(&site("site_1"))));
        assert!(hidden.visible_to("cus_1", Some(&TokenScope::default())));
    }
}
