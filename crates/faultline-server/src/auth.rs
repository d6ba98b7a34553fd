//! Authentication: `Authorization: Bearer <credential>` resolved to a [`Principal`], then the
//! credential's rate limit. Runs as middleware on every non-public route; handlers take the
//! principal with the [`Auth`] extractor. Without the header, a console session's cookie
//! authenticates as the session's API key ([`crate::console`]); a change so authenticated must
//! come from the console's own origin.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use faultline_core::auth::CredentialKind;
use faultline_core::{Permission, Principal, secret};

use crate::clock::Clock;
use crate::error::{ApiError, ErrorCode};
use crate::rate_limit::Decision;
use crate::state::AppState;

/// How often a key's `last_used_at` is written at most: a read must not cost a write.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// The authenticated principal of a request.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl Auth {
    /// The principal, if it holds `permission`; 403 `permission_denied` otherwise.
    pub fn require(&self, permission: Permission) -> Result<&Principal, ApiError> {
        if self.0.can(permission) { Ok(&self.0) } else { Err(ApiError::permission_denied(permission)) }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Principal>()
            .cloned()
            .map(Auth)
            .ok_or_else(|| ApiError::internal("route is not behind the authentication middleware"))
    }
}

/// Remembers when each key's use was last written, so that it is written once a minute.
pub struct KeyUsage {
    clock: Arc<dyn Clock>,
    last_written: Mutex<HashMap<String, Instant>>,
}

impl KeyUsage {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        KeyUsage { clock, last_written: Mutex::default() }
    }

    /// True when the use of `key_id` (or of another credential, such as a console session, by
    /// an id of its own) now should be written to the store.
    pub(crate) fn should_write(&self, key_id: &str) -> bool {
        let now = self.clock.now();
        let mut table = self.last_written.lock().unwrap_or_else(|e| e.into_inner());
        match table.get(key_id) {
            Some(at) if now.duration_since(*at) < TOUCH_EVERY => false,
            _ => {
                // Entries older than a minute decide nothing: dropped once the table is large,
                // so that sessions come and go without it growing for good.
                if table.len() >= PRUNE_USAGE_ABOVE {
                    table.retain(|_, at| now.duration_since(*at) < TOUCH_EVERY);
                }
                table.insert(key_id.to_owned(), now);
                true
            }
        }
    }
}

/// [`KeyUsage`] forgets what is over a minute old once it remembers this many credentials.
const PRUNE_USAGE_ABOVE: usize = 4096;

/// Middleware: authenticate, rate-limit, and stamp `RateLimit-*` headers on the answer.
pub async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let by_cookie = !request.headers().contains_key(header::AUTHORIZATION)
        && crate::console::session_secret(request.headers()).is_some();
    if by_cookie
        && crate::console::changes_state(request.method())
        && !crate::console::same_origin(&state, request.headers())
    {
        return axum::response::IntoResponse::into_response(crate::console::cross_origin());
    }
    let principal = match resolve(&state, request.headers()).await {
        Ok(p) => p,
        Err(err) => return axum::response::IntoResponse::into_response(err),
    };
    let decision = match check_rate(&state, principal.credential_id(), principal.rate_limit_per_minute) {
        Ok(decision) => decision,
        Err(err) => return axum::response::IntoResponse::into_response(err),
    };
    request.extensions_mut().insert(principal);
    let mut response = next.run(request).await;
    response.headers_mut().extend(rate_limit_headers(&decision).map(|(k, v)| (Some(k), v)));
    response
}

/// Count one request against `key`'s limit; the 429 (with `Retry-After`) when it is spent.
pub fn check_rate(state: &AppState, key: &str, per_minute: u32) -> Result<Decision, ApiError> {
    let decision = state.rate_limiter.check(key, per_minute);
    if decision.allowed {
        return Ok(decision);
    }
    let mut err = ApiError::new(
        ErrorCode::RateLimited,
        format!(
            "Rate limit of {per_minute} requests per minute exceeded; retry in {} s.",
            decision.retry_after_seconds
        ),
    );
    err.headers.extend(rate_limit_headers(&decision));
    err.headers.push((header::RETRY_AFTER, HeaderValue::from(decision.retry_after_seconds)));
    Err(err)
}

fn rate_limit_headers(decision: &Decision) -> [(HeaderName, HeaderValue); 3] {
    [
        (HeaderName::from_static("ratelimit-limit"), HeaderValue::from(decision.limit)),
        (HeaderName::from_static("ratelimit-remaining"), HeaderValue::from(decision.remaining)),
        (HeaderName::from_static("ratelimit-reset"), HeaderValue::from(decision.reset_seconds)),
    ]
}

/// Does the credential in `headers` still authenticate (not revoked, not expired)? For
/// long-lived answers such as the event stream, re-checked as they go; through the same
/// caches as every request, and without counting a use. While the database is out of reach
/// the answer is yes (the credential cannot be checked; it is checked again later).
pub async fn still_authenticates(state: &AppState, headers: &HeaderMap) -> bool {
    match resolve_with(state, headers, false).await {
        Ok(_) => true,
        // The database cannot tell now (an outage): what was open stays open, and the
        // credential is checked again at the next opportunity.
        Err(err) => err.code.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE,
    }
}

/// The principal behind the request's credential, or the 401 that explains why there is none.
async fn resolve(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    resolve_with(state, headers, true).await
}

/// [`resolve`]; `record_use` counts an access token's use.
async fn resolve_with(
    state: &AppState,
    headers: &HeaderMap,
    record_use: bool,
) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        if let Some(secret) = crate::console::session_secret(headers) {
            return crate::console::session_principal(state, secret, record_use).await?.ok_or_else(|| {
                ApiError::new(
                    ErrorCode::ApiKeyInvalid,
                    "The console session has ended (signed out, unused for 12 hours, or its key revoked); \
                     sign in again.",
                )
            });
        }
        return Err(ApiError::new(
            ErrorCode::ApiKeyMissing,
            "No API key was provided; send 'Authorization: Bearer <key>'.",
        ));
    };
    let credential = bearer_of(value)
        .ok_or_else(|| invalid_key("The Authorization header must be 'Bearer <credential>'."))?;
    resolve_credential(state, credential, record_use).await
}

/// The credential of an `Authorization: Bearer <credential>` value, if it is one.
pub fn bearer_of(value: &HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The principal behind a credential given some other way than the `Authorization` header (a
/// PagerDuty event's `routing_key`), checked as a header's would be and its use counted.
pub async fn principal_for(state: &AppState, credential: &str) -> Result<Principal, ApiError> {
    resolve_credential(state, credential, true).await
}

/// The principal behind `credential`: an API key, or else an access token.
async fn resolve_credential(
    state: &AppState,
    credential: &str,
    record_use: bool,
) -> Result<Principal, ApiError> {
    let Some(lookup) = secret::api_key_lookup(credential) else {
        return resolve_access_token(state, credential, record_use).await;
    };
    let found = match state.api_keys.get(lookup) {
        Some(cached) => cached,
        None => {
            let found = state.store.find_api_key(lookup).await?;
            state.api_keys.insert(lookup, found.clone());
            found
        }
    };
    let Some(found) = found.filter(|f| secret::verify_api_key(credential, &f.secret_hash)) else {
        return Err(invalid_key("The provided API key is invalid."));
    };
    if found.key.revoked_at.is_some() {
        return Err(invalid_key("The provided API key has been revoked."));
    }
    let key = found.key;
    if state.key_usage.should_write(&key.id) {
        let store = state.store.clone();
        let key_id = key.id.clone();
        tokio::spawn(async move {
            if let Err(err) = store.touch_api_key(&key_id, faultline_core::time::now_micros()).await {
                faultline_store::outage::warn_unless_outage(
                    &err,
                    &format!("could not record the use of API key {key_id}"),
                );
            }
        });
    }
    Ok(Principal {
        customer_id: key.customer_id,
        user_id: key.user_id,
        permissions: key.permissions,
        rate_limit_per_minute: key.rate_limit_per_minute.unwrap_or(state.config.default_rate_limit),
        scope: None,
        credential: CredentialKind::ApiKey { key_id: key.id },
    })
}

/// An access token as a Bearer credential: read-only, limited to its scope, counted.
async fn resolve_access_token(
    state: &AppState,
    credential: &str,
    record_use: bool,
) -> Result<Principal, ApiError> {
    use crate::jwt::TokenError;
    match state.keys.verify(credential).await {
        Ok((_, token)) => {
            if record_use {
                state.token_usage.record(&token.id);
            }
            Ok(crate::tokens::token_principal(state, token))
        }
        Err(TokenError::Expired) => {
            Err(ApiError::new(ErrorCode::TokenExpired, "The access token has expired."))
        }
        Err(TokenError::Revoked) => {
            Err(ApiError::new(ErrorCode::TokenRevoked, "The access token has been revoked."))
        }
        Err(TokenError::Invalid) => Err(invalid_key("The provided API key or access token is invalid.")),
        Err(TokenError::Store(cause)) => Err(ApiError::internal(cause)),
    }
}

fn invalid_key(message: &str) -> ApiError {
    ApiError::new(ErrorCode::ApiKeyInvalid, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::ManualClock;

    #[test]
    fn a_use_is_written_once_a_minute_and_the_table_stays_small() {
        let clock = Arc::new(ManualClock::new());
        let usage = KeyUsage::new(clock.clone());
        assert!(usage.should_write("key_1"));
        assert!(!usage.should_write("key_1"), "within the minute");
        clock.advance(TOUCH_EVERY);
        assert!(usage.should_write("key_1"), "a minute on");
        // Many sessions come and go: the table keeps only the last minute's once it is large.
        for n in 0..PRUNE_USAGE_ABOVE {
            assert!(usage.should_write(&format!("session:{n}")));
        }
        clock.advance(TOUCH_EVERY);
        assert!(usage.should_write("session:new"));
        let remembered = usage.last_written.lock().unwrap().len();
        assert_eq!(remembered, 1, "only what is under a minute old is kept");
    }
}
