//! Access-token JWTs: Ed25519 (`EdDSA`) signing with keys kept in the database, and
//! verification that fixes the algorithm, checks every registered claim, and consults the
//! token's row for revocation on every use.
//!
//! Keys are cached per replica for at most a second, so a rotation made on one replica is seen
//! by all of them within a second; an unknown `kid` forces one early reload before it is refused.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use faultline_core::ids::random_base62;
use faultline_core::scope::TokenScope;
use faultline_core::time::now_micros;
use faultline_store::{AccessToken, SigningKey, Store, StoreError};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::clock::Clock;

/// The audience of every access token.
pub const AUDIENCE: &str = "faultline-faults";
/// Tokens longer than this are refused before any decoding.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// Clock leeway for `exp`, `nbf` and `iat`.
pub const LEEWAY_SECONDS: u64 = 5;
/// How long a key set is trusted before it is read again.
const KEY_CACHE_TTL: Duration = Duration::from_secs(1);
/// The longest a token lives; a retired key verifies this long (plus a minute) after retiring.
pub const MAX_TOKEN_LIFETIME_SECONDS: i64 = faultline_core::scope::MAX_EXPIRE_MINUTES * 60;
/// Header parameters that would make a verifier fetch or trust something outside the service.
const FORBIDDEN_HEADERS: [&str; 5] = ["crit", "jku", "x5u", "jwk", "x5c"];

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    pub iss: String,
    /// The customer.
    pub sub: String,
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    /// The token id, `tok_…`.
    pub jti: String,
    pub scope: TokenScope,
}

/// Why a presented token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenError {
    Invalid,
    Expired,
    Revoked,
    Store(String),
}

impl From<StoreError> for TokenError {
    fn from(err: StoreError) -> Self {
        TokenError::Store(err.to_string())
    }
}

/// A fresh Ed25519 key from the OS random generator.
pub fn generate_signing_key(now: i64) -> SigningKey {
    let mut seed = [0u8; 32];
    faultline_core::secret::random_bytes(&mut seed);
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    SigningKey {
        kid: format!("sk_{}", random_base62(16)),
        secret_key: seed.to_vec(),
        public_key: key.verifying_key().to_bytes().to_vec(),
        created_at: now,
        retired_at: None,
        verify_until: None,
    }
}

struct Keys {
    /// The id of the key that signs new tokens.
    active: Option<String>,
    /// Every key that still verifies, by id, for signing a stored token again (see
    /// [`KeyRing::token_jwt`]).
    signers: HashMap<String, EncodingKey>,
    verifiers: HashMap<String, DecodingKey>,
    /// `(kid, public key)` of every key that still verifies, for the JWKS document.
    public: Vec<(String, Vec<u8>)>,
}

impl Keys {
    fn from_rows(rows: Vec<SigningKey>) -> Keys {
        let mut active = None;
        let mut signers = HashMap::new();
        let mut verifiers = HashMap::new();
        let mut public = Vec::new();
        for row in rows {
            let seed: Option<[u8; 32]> = row.secret_key.as_slice().try_into().ok();
            let der = seed.and_then(|s| ed25519_dalek::SigningKey::from_bytes(&s).to_pkcs8_der().ok());
            if let Some(der) = der {
                if row.retired_at.is_none() && active.is_none() {
                    active = Some(row.kid.clone());
                }
                signers.insert(row.kid.clone(), EncodingKey::from_ed_der(der.as_bytes()));
            }
            if row.public_key.len() == 32 {
                verifiers.insert(row.kid.clone(), DecodingKey::from_ed_der(&row.public_key));
                public.push((row.kid, row.public_key));
            }
        }
        Keys { active, signers, verifiers, public }
    }
}

/// The signing keys of the deployment, as this replica last read them.
pub struct KeyRing {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    cache: Mutex<Option<(Instant, Arc<Keys>)>>,
    issuer: String,
    /// Token rows by id, read at most a second ago, so a use costs no database round trip
    /// while a revocation on any replica takes effect everywhere within a second.
    tokens: crate::ttl_cache::TtlCache<Option<AccessToken>>,
    /// Tokens whose header, signature and claims verified in the last minute, by their exact
    /// text: a signature over the same bytes cannot change, so a dashboard polling with one
    /// token pays for Ed25519 verification once a minute. `exp` and the token's row are still
    /// checked on every use.
    verified: crate::ttl_cache::TtlCache<(String, Claims)>,
}

impl KeyRing {
    /// Make sure a signing key exists (creating the first one), and load the keys.
    pub async fn load(
        store: Arc<dyn Store>,
        issuer: String,
        clock: Arc<dyn Clock>,
    ) -> Result<KeyRing, StoreError> {
        store.ensure_signing_key(&generate_signing_key(now_micros())).await?;
        let ring = KeyRing {
            store,
            cache: Mutex::new(None),
            issuer,
            tokens: crate::ttl_cache::TtlCache::new(crate::state::CREDENTIAL_CACHE_TTL, clock.clone()),
            verified: crate::ttl_cache::TtlCache::new(Duration::from_secs(60), clock.clone()),
            clock,
        };
        ring.reload().await?;
        Ok(ring)
    }

    /// Forget the cached row of a token (after revoking it on this replica).
    pub fn forget_token(&self, token_id: &str) {
        self.tokens.remove(token_id);
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    async fn reload(&self) -> Result<Arc<Keys>, StoreError> {
        let keys = Arc::new(Keys::from_rows(self.store.signing_keys(now_micros()).await?));
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some((self.clock.now(), keys.clone()));
        Ok(keys)
    }

    async fn keys(&self) -> Result<Arc<Keys>, StoreError> {
        let cached = self.cache.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match cached {
            Some((at, keys)) if self.clock.now().duration_since(at) < KEY_CACHE_TTL => Ok(keys),
            _ => self.reload().await,
        }
    }

    /// The id of the key that signs new tokens.
    pub async fn active_kid(&self) -> Result<String, StoreError> {
        self.keys().await?.active.clone().ok_or_else(|| StoreError::Corrupt("no active signing key".into()))
    }

    /// The JWT of a stored token: its claims, from the row, signed with the row's key. Ed25519
    /// signatures are deterministic, so this is the very JWT handed out when it was minted,
    /// and the shared page can carry it without the JWT ever being stored. `None` once the
    /// row's key no longer verifies (its tokens stopped working with it).
    pub async fn token_jwt(&self, token: &AccessToken) -> Result<Option<String>, StoreError> {
        let keys = self.keys().await?;
        let Some(key) = keys.signers.get(&token.kid) else { return Ok(None) };
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: token.customer_id.clone(),
            aud: AUDIENCE.to_owned(),
            iat: token.created_at / 1_000_000,
            nbf: token.created_at / 1_000_000,
            exp: token.expires_at / 1_000_000,
            jti: token.id.clone(),
            scope: token.scope.clone(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(token.kid.clone());
        jsonwebtoken::encode(&header, &claims, key).map(Some).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    /// The JWKS document: every public key that still verifies.
    pub async fn jwks(&self) -> Result<serde_json::Value, StoreError> {
        let keys = self.keys().await?;
        let list: Vec<serde_json::Value> = keys
            .public
            .iter()
            .map(|(kid, public)| {
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig",
                    "kid": kid, "x": URL_SAFE_NO_PAD.encode(public)})
            })
            .collect();
        Ok(serde_json::json!({ "keys": list }))
    }

    /// Verify a presented token completely: shape, header, signature, claims, then its row
    /// (existence, customer, revocation, expiry).
    pub async fn verify(&self, jwt: &str) -> Result<(Claims, AccessToken), TokenError> {
        if jwt.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Invalid);
        }
        let (kid, claims) = match self.verified.get(jwt) {
            Some(verified) => verified,
            None => {
                let verified = self.verify_signature_and_claims(jwt).await?;
                self.verified.insert(jwt, verified.clone());
                verified
            }
        };
        // The key must still verify now: a retired key whose window has passed takes its
        // tokens with it, even those verified a moment ago.
        if !self.keys().await?.verifiers.contains_key(&kid) {
            return Err(TokenError::Invalid);
        }
        let now_seconds = now_micros() / 1_000_000;
        if claims.exp <= now_seconds - LEEWAY_SECONDS as i64 {
            return Err(TokenError::Expired);
        }
        let token = match self.tokens.get(&claims.jti) {
            Some(cached) => cached,
            None => {
                let row = self.store.get_access_token(&claims.jti).await?;
                self.tokens.insert(&claims.jti, row.clone());
                row
            }
        };
        let token = token.ok_or(TokenError::Invalid)?;
        if token.customer_id != claims.sub || token.kid != kid {
            return Err(TokenError::Invalid);
        }
        if token.revoked_at.is_some() {
            return Err(TokenError::Revoked);
        }
        if token.expires_at <= now_micros() {
            return Err(TokenError::Expired);
        }
        Ok((claims, token))
    }
}

impl KeyRing {
    /// Header, signature and registered claims of a token, without its row.
    async fn verify_signature_and_claims(&self, jwt: &str) -> Result<(String, Claims), TokenError> {
        let kid = checked_kid(jwt).ok_or(TokenError::Invalid)?;
        let mut keys = self.keys().await?;
        if !keys.verifiers.contains_key(&kid) {
            keys = self.reload().await?;
        }
        let key = keys.verifiers.get(&kid).ok_or(TokenError::Invalid)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_nbf = true;
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(jwt, key, &validation).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
            _ => TokenError::Invalid,
        })?;
        let claims = data.claims;
        let now_seconds = now_micros() / 1_000_000;
        if claims.iat > now_seconds + LEEWAY_SECONDS as i64 || claims.exp <= claims.iat {
            return Err(TokenError::Invalid);
        }
        Ok((kid, claims))
    }
}

/// The `kid` of a token whose header is acceptable: `alg` is EdDSA, a `kid` is given, and no
/// parameter points outside the service.
fn checked_kid(jwt: &str) -> Option<String> {
    let mut parts = jwt.split('.');
    let (header, _, _) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes).ok()?;
    if FORBIDDEN_HEADERS.iter().any(|h| header.contains_key(*h)) || header.get("alg")?.as_str()? != "EdDSA" {
        return None;
    }
    header.get("kid")?.as_str().filter(|k| !k.is_empty() && k.len() <= 64).map(str::to_owned)
}

/// Uses of tokens counted in memory and written in batches, so a read never waits on a write.
#[derive(Default)]
pub struct TokenUsage {
    pending: Mutex<HashMap<String, (i64, i64)>>,
    /// Held through a flush's write, so that a flush returns only once every use counted
    /// before it is written, also those an earlier flush took and is still writing.
    flushing: tokio::sync::Mutex<()>,
}

impl TokenUsage {
    pub fn record(&self, token_id: &str) {
        let now = now_micros();
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let entry = pending.entry(token_id.to_owned()).or_insert((0, now));
        entry.0 += 1;
        entry.1 = entry.1.max(now);
    }

    /// Write what was counted since the last flush.
    pub async fn flush(&self, store: &dyn Store) {
        let _flushing = self.flushing.lock().await;
        let batch: Vec<faultline_store::TokenUse> = {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            pending
                .drain()
                .map(|(token_id, (count, last_used_at))| faultline_store::TokenUse {
                    token_id,
                    count,
                    last_used_at,
                })
                .collect()
        };
        if batch.is_empty() {
            return;
        }
        if let Err(err) = store.record_token_uses(&batch).await {
            faultline_store::outage::warn_unless_outage(
                &err,
                &format!("could not record {} token uses", batch.len()),
            );
        }
    }
}
