//! Shared application state and the server's runtime configuration.

use std::sync::Arc;
use std::time::Duration;

use faultline_store::Store;

use crate::auth::KeyUsage;
use crate::rate_limit::RateLimiter;

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
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub config: Arc<ServerConfig>,
    pub rate_limiter: Arc<RateLimiter>,
    pub key_usage: Arc<KeyUsage>,
}

impl AppState {
    pub fn new(store: Arc<dyn Store>, config: ServerConfig) -> Self {
        AppState {
            store,
            config: Arc::new(config),
            rate_limiter: Arc::new(RateLimiter::new()),
            key_usage: Arc::new(KeyUsage::default()),
        }
    }
}
