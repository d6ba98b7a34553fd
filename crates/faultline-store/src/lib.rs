//! faultline's storage: the [`Store`] trait and its two backends.
//!
//! The backend is chosen once, from the database URL's scheme: `sqlite://PATH` (the file is
//! created if missing) or `postgres://…`. Each backend owns its SQL and its migrations; the
//! conformance suite in `tests/` runs the same tests against both.
#![forbid(unsafe_code)]

pub mod analytics;
mod analytics_index;
mod error;
mod heartbeat;
mod idempotency;
mod ingest;
#[cfg(test)]
mod migration_tests;
mod model;
mod postgres;
mod rows;
mod sql;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use faultline_core::fault::{Fault, FaultSink};

pub use error::{DatabaseError, StoreError, StoreResult};
pub use model::*;
pub use postgres::PostgresStore;
pub use sql::{FaultQuery, TopQuery};
pub use sqlite::SqliteStore;

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Result<Backend, StoreError> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::Config(format!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                redact_url(url)
            )))
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// The URL with any password replaced, fit for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Open the store named by `url` and bring its schema up to date.
pub async fn open(url: &str) -> StoreResult<Arc<dyn Store>> {
    let store: Arc<dyn Store> = match Backend::from_url(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::open(url).await?),
        Backend::Postgres => Arc::new(PostgresStore::open(url).await?),
    };
    store.migrate().await?;
    Ok(store)
}

/// Logs that migration `version` is being applied: at `info` on a database that had some
/// (an upgrade's migration may rebuild a table, and the log says what the wait is for), at
/// `debug` on a new one, built in milliseconds.
pub(crate) fn log_migration(version: i64, new_database: bool) {
    if new_database {
        tracing::debug!(version, "applying migration");
    } else {
        tracing::info!(version, "applying migration");
    }
}

/// Everything faultline keeps. Every method scoped to a customer takes the customer id
/// first; the caller's credential, never the request body, supplies it. A write that may
/// carry an `Idempotency-Key` answers [`Written`]: done now, or replayed from before.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    /// Apply pending migrations; safe to call concurrently from several processes.
    async fn migrate(&self) -> StoreResult<()>;

    /// The versions of the migrations applied, oldest first.
    async fn applied_migrations(&self) -> StoreResult<Vec<i64>>;

    /// A cheap round trip to the database.
    async fn ping(&self) -> StoreResult<()>;

    /// Close the pools, waiting for connections in use to be returned.
    async fn close(&self);

    /// Bring the query planner's statistics up to date after a bulk load (`faultline demo`).
    /// PostgreSQL otherwise plans with none until autovacuum analyses the new rows: on a
    /// freshly loaded 1,000,000 faults it sorted a whole site (76 ms) to answer one page of
    /// `site=…&severity=…` (0.4 ms once analysed). SQLite's plans need no statistics.
    async fn analyze(&self) -> StoreResult<()> {
        Ok(())
    }

    /// Insert a long run of new faults (`faultline demo`): every chunk `chunks` yields, in
    /// order, as [`Store::insert_faults`] would (the same rows, the same `created` events),
    /// calling `inserted` with each chunk's size once it is written, until [`BulkFaults::End`].
    /// A channel that closes before `End` (its producer failed) fails the load. All of it is
    /// committed when this returns `Ok`; on an error, what is committed depends on the backend
    /// (SQLite: nothing, see `sqlite::bulk_load`; PostgreSQL: the chunks before the failure).
    async fn bulk_insert_faults(
        &self,
        chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
        actor: &str,
        inserted: Box<dyn FnMut(usize) + Send>,
    ) -> StoreResult<()> {
        insert_chunk_by_chunk(self, chunks, actor, inserted).await
    }

    // ---- customers and API keys ----

    async fn create_customer(&self, name: &str) -> StoreResult<Customer>;

    async fn get_customer(&self, customer_id: &str) -> StoreResult<Option<Customer>>;

    async fn list_customers(&self) -> StoreResult<Vec<Customer>>;

    /// Create the first customer and its admin key, unless a customer exists already.
    /// Atomic across processes: two replicas starting on one empty database bootstrap once.
    async fn bootstrap(&self, customer_name: &str, key: NewApiKey)
    -> StoreResult<Option<(Customer, ApiKey)>>;

    /// Store a new API key; the customer must exist (`StoreError::NotFound` otherwise).
    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey>;

    /// Keys of one customer, or of every customer, oldest first.
    async fn list_api_keys(&self, customer_id: Option<&str>) -> StoreResult<Vec<ApiKey>>;

    /// Revoke a key; `false` when no such key exists. Revoking twice keeps the first time.
    async fn revoke_api_key(&self, key_id: &str, at: i64) -> StoreResult<bool>;

    /// The key whose secret has this lookup part, with its secret's hash, revoked or not.
    async fn find_api_key(&self, lookup: &str) -> StoreResult<Option<ApiKeyWithHash>>;

    /// Record that a key was used at `at` (microseconds).
    async fn touch_api_key(&self, key_id: &str, at: i64) -> StoreResult<()>;

    // ---- faults ----

    /// Store new faults (their ancestry elements, and a `created` event each, by `actor`) in
    /// one transaction, with `idem`'s key when given.
    async fn insert_faults(
        &self,
        faults: &[Fault],
        actor: &str,
        idem: Option<&Idempotency<'_, [Fault]>>,
    ) -> StoreResult<Written<()>>;

    /// One of the customer's faults; another customer's id reads as missing.
    async fn get_fault(&self, customer_id: &str, fault_id: &str) -> StoreResult<Option<Fault>>;

    /// Delete one of the customer's faults for good; `false` when there was none. Its history
    /// stays in the event log, with a `deleted` event by `actor`.
    async fn delete_fault(&self, customer_id: &str, fault_id: &str, actor: &str) -> StoreResult<bool>;

    /// Add a comment (and its event) in one transaction; the fault with every comment, or
    /// `None` when the customer has no such fault.
    async fn add_comment(
        &self,
        customer_id: &str,
        fault_id: &str,
        comment: &faultline_core::fault::Comment,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>>;

    /// Resolve a fault as `resolution` says (when, its new `ttl`, an optional comment), in one
    /// transaction. Resolving a resolved fault changes nothing (its comment is not added).
    /// `None` when the customer has no such fault.
    async fn resolve_fault(
        &self,
        customer_id: &str,
        fault_id: &str,
        resolution: Resolution<'_>,
        actor: &str,
        idem: Option<&Idempotency<'_, Fault>>,
    ) -> StoreResult<Written<Option<Fault>>>;

    /// Apply a batch of ingest events in order, in one transaction: a trigger deduplicates
    /// onto the open fault of its (resource, type) or opens one; a resolve closes it at the
    /// event's time. A unique index (not a read-then-write check) keeps a second fault from
    /// opening, even under concurrent batches on many replicas. `retention_seconds` sets the
    /// `ttl` of resolved faults.
    async fn apply_events(
        &self,
        customer_id: &str,
        events: &[faultline_core::ingest::IngestEvent],
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [EventResult]>>,
    ) -> StoreResult<Written<Vec<EventResult>>>;

    /// Delete up to `limit` faults whose `ttl` (Unix seconds) is before `now_seconds`, with an
    /// `expired` event each, in one short transaction; returns how many went. Safe to run on
    /// several replicas at once.
    async fn sweep_expired(&self, now_seconds: i64, limit: u32) -> StoreResult<usize>;

    /// Every event of one of the customer's faults, oldest first (also after deletion).
    async fn fault_timeline(&self, customer_id: &str, fault_id: &str) -> StoreResult<Vec<FaultEvent>>;

    // ---- analytics ----

    /// `(group, count)` of the customer's faults matching `filter` (all of it, `recent`
    /// measured against `now`), largest first, at most `limit`.
    async fn top_groups(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        group: analytics::GroupBy,
        limit: u32,
        now: i64,
    ) -> StoreResult<Vec<(String, i64)>>;

    /// `(slot, group, count)` of the customer's faults matching `filter`, by `slots` and, with
    /// `group`, by group (those outside the listed groups counted under the given name).
    async fn counts_by_slot(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        slots: analytics::Slots,
        group: Option<(analytics::GroupBy, &[String], &str)>,
        now: i64,
    ) -> StoreResult<Vec<(i64, String, i64)>>;

    /// Repair times (`resolved_at - created_at`, microseconds) of the matching resolved faults.
    async fn repair_times(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<Vec<i64>>;

    /// `(site, start, end)` of the customer's `site`-type faults matching `filter` (sites and
    /// scope; not its window) that overlap `[from, to)`; `end` is `None` while open.
    async fn site_outages(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        from: i64,
        to: i64,
    ) -> StoreResult<Vec<(String, i64, Option<i64>)>>;

    /// How many of the matching faults are unresolved.
    async fn count_open(
        &self,
        customer_id: &str,
        filter: &faultline_core::filter::FaultFilter,
        now: i64,
    ) -> StoreResult<i64>;

    /// A page of the customer's faults matching the query, newest first.
    async fn list_faults(&self, customer_id: &str, query: &FaultQuery<'_>) -> StoreResult<Vec<Fault>>;

    /// [`Store::list_faults`], each fault given to `sink` as it is read (newest first), so a
    /// backend that can lend its rows skips building a [`Fault`] of each. On an error the sink
    /// may hold part of the page.
    async fn list_faults_into(
        &self,
        customer_id: &str,
        query: &FaultQuery<'_>,
        sink: &mut dyn FaultSink,
    ) -> StoreResult<()> {
        for fault in self.list_faults(customer_id, query).await? {
            sink.fault(&fault.as_ref());
        }
        Ok(())
    }

    /// The resources with the most faults created since `query.since` (within its scope), at
    /// most `query.limit`, most faults first, ties by resource id in byte order; each with its
    /// `query.sample` newest faults in the window. Counts and samples are read from one snapshot,
    /// so they agree. The count reads one index range of the window, never the whole history.
    async fn top_resources(&self, customer_id: &str, query: &TopQuery<'_>) -> StoreResult<Vec<TopResource>>;

    // ---- access tokens ----

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

    /// The answer stored with a credential's `Idempotency-Key`, with its request's fingerprint,
    /// unless it was claimed before `after` (or never).
    async fn idempotency_answer(
        &self,
        credential_id: &str,
        key: &str,
        after: i64,
    ) -> StoreResult<Option<(String, StoredResponse)>>;

    /// Forget up to `limit` `Idempotency-Key`s created before `before`; returns how many.
    async fn sweep_idempotency_keys(&self, before: i64, limit: u32) -> StoreResult<usize>;

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

    // ---- deployment ----

    /// A 32-byte random secret shared by every replica, created on first use.
    async fn shared_secret(&self, name: &str) -> StoreResult<Vec<u8>>;

    // ---- heartbeats and offline detection ----

    /// Record that the customer's sites in `beats` (sorted by site id, each once) were alive
    /// at `at`; sites are created on their first heartbeat. The heartbeat of a site the
    /// detector found offline resolves its outage at `at`, in the same transaction (as does
    /// `idem`'s key). Returns the outages resolved.
    async fn record_heartbeats(
        &self,
        customer_id: &str,
        beats: &[faultline_core::heartbeat::Heartbeat],
        at: i64,
        retention_seconds: i64,
        actor: &str,
        idem: Option<&Idempotency<'_, [String]>>,
    ) -> StoreResult<Written<Vec<String>>>;

    /// One detector pass over up to `limit` sites (any customer's) that are offline under
    /// `policy` at `now` and have no outage yet, oldest heartbeat first, after `after` (the
    /// cursor the previous pass of the same sweep returned): each gets its outage (a `site`
    /// trigger, which deduplicates onto a `site` fault already open for it) and is marked
    /// offline, in one transaction. Returns how many sites it handled (fewer than `limit` means
    /// the sweep is done) and where it got to. Safe on several replicas at once: a site is
    /// handled once.
    async fn detect_offline(
        &self,
        policy: &faultline_core::heartbeat::OfflinePolicy,
        now: i64,
        retention_seconds: i64,
        limit: u32,
        after: Option<&faultline_core::heartbeat::SweepCursor>,
    ) -> StoreResult<(usize, Option<faultline_core::heartbeat::SweepCursor>)>;

    // ---- the live stream ----

    /// Up to `limit` log entries after sequence number `after`, any customer's, in order.
    async fn read_log(&self, after: i64, limit: u32) -> StoreResult<LogRead>;

    /// The highest sequence number in the log (0 when empty), with the horizon it was read at.
    async fn log_head(&self) -> StoreResult<(i64, Option<Horizon>)>;

    /// Up to `limit` of the customer's log entries with `after < seq <= upto`, in order.
    async fn customer_log(
        &self,
        customer_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<LoggedEvent>>;

    /// Wake-ups sent when any replica commits to the event log (PostgreSQL `LISTEN`); `None`
    /// where only this process writes (SQLite). Notifications can be lost when the connection
    /// drops, so readers also poll.
    async fn log_notifications(&self) -> StoreResult<Option<tokio::sync::mpsc::Receiver<()>>>;

    // ---- singleton jobs ----

    /// Try to become the one replica that runs `job`: `None` when another holds it. On
    /// PostgreSQL the lease is a session advisory lock on a connection of its own, so it ends
    /// when that connection (or its process) dies; on SQLite there is only one process.
    async fn lease(&self, job: &str) -> StoreResult<Option<Box<dyn Lease>>>;
}

/// What [`Store::bulk_insert_faults`] reads.
#[derive(Debug)]
pub enum BulkFaults {
    /// New faults, inserted in order.
    Chunk(Vec<Fault>),
    /// The load is complete: commit it.
    End,
}

impl BulkFaults {
    /// The error of a load whose channel closed before [`BulkFaults::End`].
    pub(crate) fn cut_short() -> StoreError {
        StoreError::NotWritten("the faults to load stopped before their end".into())
    }
}

/// [`Store::bulk_insert_faults`] as a transaction of [`Store::insert_faults`] per chunk.
async fn insert_chunk_by_chunk<S: Store + ?Sized>(
    store: &S,
    mut chunks: tokio::sync::mpsc::Receiver<BulkFaults>,
    actor: &str,
    mut inserted: Box<dyn FnMut(usize) + Send>,
) -> StoreResult<()> {
    loop {
        match chunks.recv().await {
            Some(BulkFaults::Chunk(chunk)) => {
                store.insert_faults(&chunk, actor, None).await?;
                inserted(chunk.len());
            }
            Some(BulkFaults::End) => return Ok(()),
            None => return Err(BulkFaults::cut_short()),
        }
    }
}
