//! API-key secrets: generation, hashing and constant-time comparison.
//!
//! A secret looks like `flk_<lookup>_<secret>`: the recognisable `flk_` prefix lets secret
//! scanners find leaked keys, the 12-character lookup part finds the row, and only the
//! SHA-256 of the whole secret is stored.

use sha2::{Digest, Sha256};

use crate::ids::random_base62;

pub const API_KEY_PREFIX: &str = "flk_";
const LOOKUP_LEN: usize = 12;
const SECRET_LEN: usize = 40;

/// Fill `buf` from the operating system's random generator.
pub fn random_bytes(buf: &mut [u8]) {
    getrandom::fill(buf).expect("the OS random generator is available");
}

/// A freshly generated API key secret with its lookup part and hash.
#[derive(Debug, Clone)]
pub struct NewSecret {
    pub secret: String,
    pub lookup: String,
    pub hash: String,
}

/// Generate a new API key secret (about 238 bits of entropy in the secret part).
pub fn generate_api_key() -> NewSecret {
    let lookup = random_base62(LOOKUP_LEN);
    let secret = format!("{API_KEY_PREFIX}{lookup}_{}", random_base62(SECRET_LEN));
    let hash = sha256_hex(&secret);
    NewSecret { secret, lookup, hash }
}

/// The lookup part of a presented API key, if it has the API-key shape.
pub fn api_key_lookup(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(API_KEY_PREFIX)?;
    let (lookup, secret) = rest.split_once('_')?;
    (lookup.len() == LOOKUP_LEN
        && secret.len() == SECRET_LEN
        && lookup.bytes().chain(secret.bytes()).all(|b| b.is_ascii_alphanumeric()))
    .then_some(lookup)
}

pub fn sha256_hex(input: &str) -> String {
    hex::encode(Sha256::digest(input.as_bytes()))
}

/// Compare two byte strings in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Does `presented` hash to `stored_hash`? Constant time in the hash comparison.
pub fn verify_api_key(presented: &str, stored_hash: &str) -> bool {
    constant_time_eq(sha256_hex(presented).as_bytes(), stored_hash.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_verify_and_expose_their_lookup() {
        let key = generate_api_key();
        assert!(key.secret.starts_with("flk_"));
        assert_eq!(api_key_lookup(&key.secret), Some(key.lookup.as_str()));
        assert!(verify_api_key(&key.secret, &key.hash));
        assert!(!verify_api_key(&format!("{}x", key.secret), &key.hash));
    }

    #[test]
    fn malformed_keys_have_no_lookup() {
        for bad in ["", "flk_", "flk_short_x", "Bearer flk_abc", "eyJhbGciOi.x.y"] {
            assert_eq!(api_key_lookup(bad), None, "{bad}");
        }
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
