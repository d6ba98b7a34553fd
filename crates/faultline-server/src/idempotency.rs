//! `Idempotency-Key` on every POST: the same key with the same request from the same
//! credential within 24 hours replays the first answer (status and body, marked
//! `Idempotent-Replayed: true`) without doing the work again; the same key with another request
//! answers 409 `idempotency_key_reused`.
//!
//! The key is claimed and its answer stored by the store, in the very transaction of the
//! write: a retry after a cut connection finds either both the effect and the answer, or
//! neither. Only answers of writes that happened are stored; a request that failed (400, 404…)
//! changed nothing, so retrying it with the same key runs it again.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use faultline_core::Principal;
use faultline_core::time::now_micros;
use faultline_store::{IDEMPOTENCY_KEEP_MICROS, Idempotency, Store, StoreError, StoredResponse};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{ApiError, ApiResult};

pub const HEADER: &str = "idempotency-key";
/// Marks an answer replayed from an earlier request with the same key.
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
pub const MAX_KEY_LEN: usize = 255;

/// The request's `Idempotency-Key` header, if any, with the request line it came with.
#[derive(Debug, Clone)]
pub struct IdempotencyKey(Option<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(HEADER) else {
            return Ok(IdempotencyKey(None));
        };
        let invalid = |reason| ApiError::invalid("Idempotency-Key", reason);
        let key = value.to_str().map_err(|_| invalid("use printable ASCII characters only"))?;
        if key.is_empty() || key.len() > MAX_KEY_LEN {
            return Err(invalid("it must be 1 to 255 characters long"));
        }
        if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid("use printable ASCII characters only"));
        }
        if key.starts_with(' ') || key.ends_with(' ') {
            return Err(invalid("it must not begin or end with a space"));
        }
        Ok(IdempotencyKey(Some((key.to_owned(), format!("{} {}", parts.method, parts.uri.path())))))
    }
}

/// What [`IdempotencyKey::begin`] found.
#[derive(Debug)]
pub enum Begun {
    /// Do the work; record its answer under this key, if there is one.
    Run(Option<KeyedRequest>),
    /// The key was used before for this very request: its answer, replayed.
    Replay(Response),
}

impl IdempotencyKey {
    /// Bind the key to the credential and the request (its method, path and JSON body) and
    /// look for an answer stored under it. Checked before the request is validated, so a key
    /// reused with another body is always 409; a replay costs one read and no write. The
    /// write's own claim stays the authority for requests that race past this check.
    pub async fn begin(&self, store: &dyn Store, principal: &Principal, body: &Value) -> ApiResult<Begun> {
        let Some((key, request_line)) = self.0.as_ref() else {
            return Ok(Begun::Run(None));
        };
        let mut hash = Sha256::new();
        hash.update(request_line.as_bytes());
        hash.update(b"\n");
        // `Value` keeps object keys sorted: the same JSON in another layout hashes the same.
        hash.update(body.to_string().as_bytes());
        let keyed = KeyedRequest {
            credential_id: principal.credential_id().to_owned(),
            key: key.clone(),
            fingerprint: hex::encode(hash.finalize()),
            at: now_micros(),
        };
        let stored =
            store.idempotency_answer(&keyed.credential_id, key, keyed.at - IDEMPOTENCY_KEEP_MICROS).await?;
        match stored {
            None => Ok(Begun::Run(Some(keyed))),
            Some((fingerprint, answer)) if fingerprint == keyed.fingerprint => {
                Ok(Begun::Replay(replay(answer)))
            }
            Some(_) => Err(StoreError::IdempotencyKeyReused.into()),
        }
    }
}

/// A request with its key, ready to hand to a store write.
#[derive(Debug, Clone)]
pub struct KeyedRequest {
    credential_id: String,
    key: String,
    fingerprint: String,
    at: i64,
}

impl KeyedRequest {
    /// The store's record of this key: on success, the answer `render` makes of the write's
    /// result is kept with status `status`.
    pub fn record<T: ?Sized>(
        &self,
        status: StatusCode,
        render: impl Fn(&T) -> String + Send + Sync + 'static,
    ) -> Idempotency<'_, T> {
        Idempotency {
            credential_id: &self.credential_id,
            key: &self.key,
            fingerprint: &self.fingerprint,
            at: self.at,
            status: status.as_u16(),
            render: std::sync::Arc::new(render),
        }
    }
}

/// A JSON body as the store keeps it for replays (the same bytes `axum::Json` would send).
pub fn render_json<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The answer stored under a key the same request used before, sent again.
pub fn replay(stored: StoredResponse) -> Response {
    let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
