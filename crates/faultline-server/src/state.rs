//! Shared application state and the server's runtime configuration.

use std::sync::Arc;
use std::time::Duration;

use faultline_core::cursor::CursorCodec;
use faultline_store::{Store, StoreResult};

use crate::auth::KeyUsage;
use crate::clock::{Clock, SystemClock};
use crate::jwt::{KeyRing, TokenUsage};
use crate::rate_limit::RateLimiter;
use crate::ttl_cache::TtlCache;

/// How stale a cached credential may be: a revocation reaches every replica within this.
pub const CREDENTIAL_CACHE_TTL: Duration = Duration::from_secs(1);

/// What the HTTP server needs to know; the binary builds it from flags, environment and file.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The externally visible base URL, without a trailing slash (used in `doc_url`, links).
    pub public_url: String,
    /// Base URL of short links; `None` means `<public_url>/s`.
    pub short_link_base: Option<String>,
    /// Requests per minute for a credential without its own limit.
    pub default_rate_limit: u32,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
    /// A request that takes longer answers 503.
    pub request_timeout: Duration,
    /// On shutdown, in-flight requests get this long to finish.
    pub shutdown_grace: Duration,
    /// A request head must be complete this long after its first byte.
    pub header_timeout: Duration,
    /// A keep-alive connection with no request in flight is closed after this long.
    pub idle_timeout: Duration,
    /// Bytes a second a request body must keep arriving at, after `header_timeout` of slack;
    /// 0: no floor.
    pub body_min_rate: u64,
    /// Connections open at once; past it, new ones wait to be accepted.
    pub max_connections: usize,
    /// Requests handled at once; past it, requests answer 503 `overloaded` at once.
    pub max_concurrent_requests: usize,
    /// How long a fault is kept after it began (or was resolved).
    pub retention: Duration,
    /// Requests per minute for each access token.
    pub token_rate_limit: u32,
    /// How often sites send heartbeats.
    pub heartbeat_interval: Duration,
    /// Heartbeats a site may miss in a row before the detector finds it offline.
    pub heartbeat_misses: u32,
    /// Events a stream subscriber may fall behind by before it is cut off with `resync`.
    pub stream_buffer: usize,
    /// How often an idle stream gets a comment line.
    pub stream_keep_alive: Duration,
    /// How often the stream's tailer reads the log when no write woke it.
    pub stream_poll: Duration,
    /// Origins allowed to frame the shared dashboard (CSP `frame-ancestors`); empty: none.
    pub frame_ancestors: Vec<String>,
    /// Which labels of an Alertmanager alert name a fault's resource, site and severity.
    pub alertmanager_labels: faultline_core::alertmanager::LabelNames,
    /// A webhook attempt that takes longer fails.
    pub webhook_timeout: Duration,
    /// The delays before each attempt of a webhook message.
    pub webhook_retry_schedule: faultline_core::webhooks::RetrySchedule,
    /// Where webhooks may be sent.
    pub webhook_allowed_hosts: faultline_core::webhooks::AllowedHosts,
    /// A webhook endpoint whose every attempt failed for this long is disabled.
    pub webhook_disable_after: Duration,
    /// What the caches and rate limits read the time from.
    pub clock: Arc<dyn Clock>,
}

impl ServerConfig {
    /// Defaults for a server reachable at `public_url`.
    pub fn new(public_url: impl Into<String>) -> Self {
        ServerConfig {
            public_url: public_url.into().trim_end_matches('/').to_owned(),
            short_link_base: None,
            default_rate_limit: 60,
            body_limit: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            body_min_rate: 1024,
            max_connections: 4096,
            max_concurrent_requests: crate::load_shedding::default_max_concurrent_requests(),
            retention: Duration::from_secs(faultline_core::fault::DEFAULT_RETENTION_SECONDS as u64),
            token_rate_limit: 300,
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_misses: 10,
            stream_buffer: crate::stream::BUFFER,
            stream_keep_alive: crate::stream::KEEP_ALIVE,
            stream_poll: crate::stream::POLL,
            frame_ancestors: Vec::new(),
            alertmanager_labels: Default::default(),
            webhook_timeout: Duration::from_secs(15),
            webhook_retry_schedule: Default::default(),
            webhook_allowed_hosts: Default::default(),
            webhook_disable_after: Duration::from_secs(5 * 86_400),
            clock: Arc::new(SystemClock),
        }
    }

    /// Where short links point: the configured base, or `<public_url>/s`.
    pub fn short_link_base(&self) -> String {
        self.short_link_base.clone().unwrap_or_else(|| format!("{}/s", self.public_url))
    }

    /// When a site counts as offline.
    pub fn offline_policy(&self) -> faultline_core::heartbeat::OfflinePolicy {
        faultline_core::heartbeat::OfflinePolicy {
            interval: i64::try_from(self.heartbeat_interval.as_micros()).unwrap_or(i64::MAX / 2_000),
            misses: self.heartbeat_misses,
        }
    }

    /// The limits the connection layer enforces.
    pub fn connection_limits(&self) -> crate::connections::Limits {
        crate::connections::Limits {
            header_timeout: self.header_timeout,
            idle_timeout: self.idle_timeout,
            body_min_rate: self.body_min_rate,
            max_connections: self.max_connections,
        }
    }

    /// How the webhook worker sends.
    pub fn webhook_delivery(&self) -> crate::webhook_delivery::DeliveryConfig {
        crate::webhook_delivery::DeliveryConfig {
            timeout: self.webhook_timeout,
            schedule: self.webhook_retry_schedule.clone(),
            allowed_hosts: self.webhook_allowed_hosts.clone(),
            disable_after: self.webhook_disable_after,
        }
    }

    pub fn retention_seconds(&self) -> i64 {
        i64::try_from(self.retention.as_secs()).unwrap_or(i64::MAX / 2_000_000)
    }
}

/// What every handler and middleware shares. Cloned for each of them on every request, so it
/// is one reference count rather than one for each of its parts.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub struct Shared {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub rate_limiter: Arc<RateLimiter>,
    pub key_usage: Arc<KeyUsage>,
    /// Signs list cursors with the deployment's shared secret.
    pub cursors: CursorCodec,
    /// Signs and verifies access tokens.
    pub keys: Arc<KeyRing>,
    pub token_usage: Arc<TokenUsage>,
    /// API keys by lookup part, read at most a second ago (`None`: no such key).
    pub api_keys: Arc<TtlCache<Option<faultline_store::ApiKeyWithHash>>>,
    /// Console sessions by the hash of their secret, with their key, read at most a second ago
    /// (`None`: no such session).
    pub console_sessions: Arc<TtlCache<Option<(faultline_store::ConsoleSession, faultline_store::ApiKey)>>>,
    /// The live event stream's tailer and subscribers.
    pub stream: Arc<crate::stream::Hub>,
    /// Slots for the requests handled at once (see [`crate::load_shedding`]).
    pub admission: Arc<crate::load_shedding::Admission>,
    /// Wake-ups for the webhook worker.
    pub webhooks: Arc<crate::webhook_delivery::Webhooks>,
}

impl AppState {
    /// The state for `store`, loading the secrets every replica shares.
    pub async fn load(store: Arc<dyn Store>, config: ServerConfig) -> StoreResult<Self> {
        let cursor_key = store.shared_secret("cursor").await?;
        let clock = config.clock.clone();
        let keys = KeyRing::load(store.clone(), config.public_url.clone(), clock.clone()).await?;
        let stream = Arc::new(crate::stream::Hub::new(config.stream_buffer, config.stream_poll));
        Ok(AppState(Arc::new(Shared {
            store,
            rate_limiter: Arc::new(RateLimiter::new(clock.clone())),
            key_usage: Arc::new(KeyUsage::new(clock.clone())),
            cursors: CursorCodec::new(&cursor_key),
            keys: Arc::new(keys),
            token_usage: Arc::new(TokenUsage::default()),
            api_keys: Arc::new(TtlCache::new(CREDENTIAL_CACHE_TTL, clock.clone())),
            console_sessions: Arc::new(TtlCache::new(CREDENTIAL_CACHE_TTL, clock)),
            stream,
            admission: Arc::new(crate::load_shedding::Admission::new(
                config.max_concurrent_requests,
                &config.public_url,
            )),
            webhooks: Arc::default(),
            config: Arc::new(config),
        })))
    }
}
