//! Signing secrets and signatures in the Standard Webhooks format (standardwebhooks.com), so a
//! receiver can verify our deliveries with any of that specification's libraries unchanged.

use std::fmt;
use std::ops::RangeInclusive;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::random_bytes;

/// The prefix Standard Webhooks libraries expect (and strip) on a secret.
pub const SECRET_PREFIX: &str = "whsec_";
/// Length of a generated secret: 256 bits, the strength of HMAC-SHA256 itself.
pub const GENERATED_SECRET_LEN: usize = 32;
/// Decoded lengths accepted from storage or import, as the API documents (24..=64 bytes).
pub const SECRET_LEN: RangeInclusive<usize> = 24..=64;

/// The key an endpoint's deliveries are signed with.
#[derive(Clone)]
pub struct WebhookSecret(Vec<u8>);

impl WebhookSecret {
    /// A new secret of [`GENERATED_SECRET_LEN`] bytes from the OS random generator.
    pub fn generate() -> Self {
        let mut bytes = vec![0u8; GENERATED_SECRET_LEN];
        random_bytes(&mut bytes);
        WebhookSecret(bytes)
    }

    /// `whsec_` and the standard base64 (padded) of the key: the text receivers configure.
    pub fn encode(&self) -> String {
        format!("{SECRET_PREFIX}{}", STANDARD.encode(&self.0))
    }

    /// The inverse of [`encode`](Self::encode). The prefix is optional, as it is in the
    /// reference libraries; `None` for bad base64 or a key outside [`SECRET_LEN`].
    pub fn decode(text: &str) -> Option<Self> {
        let bytes = STANDARD.decode(text.strip_prefix(SECRET_PREFIX).unwrap_or(text)).ok()?;
        SECRET_LEN.contains(&bytes.len()).then_some(WebhookSecret(bytes))
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Never prints the key, so a secret in a logged struct does not leak.
impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(..)")
    }
}

/// One `webhook-signature` entry: `v1,` and the standard base64 of HMAC-SHA256 keyed by the
/// secret over `{msg_id}.{timestamp}.{body}`. The id and timestamp are signed so that a
/// captured delivery cannot be replayed later or under another id.
pub fn sign(secret: &WebhookSecret, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).expect("HMAC takes a key of any length");
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The whole `webhook-signature` header: one [`sign`] entry per secret, space-separated.
/// During a rotation both the new and the old secret sign, so a receiver still configured with
/// either one accepts the delivery.
pub fn signature_header(secrets: &[&WebhookSecret], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    secrets.iter().map(|secret| sign(secret, msg_id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reproduces_the_standard_webhooks_reference_signature() {
        // The specification's reference libraries all test against this vector; matching it is
        // what shows a receiver's library will accept our signatures.
        let secret = WebhookSecret::decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature =
            sign(&secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330, br#"{"test": 2432232314}"#);
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_receiver_recomputing_the_hmac_verifies() {
        let secret = WebhookSecret::generate();
        let body = br#"{"type":"fault.created"}"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.bytes()).unwrap();
        mac.update(b"msg_1.1700000000.");
        mac.update(body);
        let signature = sign(&secret, "msg_1", 1_700_000_000, body);
        let encoded = signature.strip_prefix("v1,").unwrap();
        mac.verify_slice(&STANDARD.decode(encoded).unwrap()).unwrap();
        assert_ne!(sign(&secret, "msg_2", 1_700_000_000, body), signature);
        assert_ne!(sign(&secret, "msg_1", 1_700_000_001, body), signature);
    }

    #[test]
    fn rotation_header_carries_one_signature_per_secret() {
        let (new, old) = (WebhookSecret::generate(), WebhookSecret::generate());
        let header = signature_header(&[&new, &old], "msg_1", 1_700_000_000, b"{}");
        let parts: Vec<&str> = header.split(' ').collect();
        assert_eq!(
            parts,
            [sign(&new, "msg_1", 1_700_000_000, b"{}"), sign(&old, "msg_1", 1_700_000_000, b"{}")]
        );
        assert!(parts.iter().all(|p| p.starts_with("v1,")) && parts[0] != parts[1]);
        assert_eq!(signature_header(&[&new], "msg_1", 1_700_000_000, b"{}"), parts[0]);
    }

    #[test]
    fn secrets_encode_and_decode() {
        let secret = WebhookSecret::generate();
        let text = secret.encode();
        assert!(text.starts_with("whsec_") && text.len() == 6 + 44, "{text}");
        assert_eq!(WebhookSecret::decode(&text).unwrap().bytes(), secret.bytes());
        assert_eq!(WebhookSecret::decode(&text[6..]).unwrap().bytes(), secret.bytes());
        assert_ne!(WebhookSecret::generate().bytes(), secret.bytes());
        let of_len = |n: usize| format!("whsec_{}", STANDARD.encode(vec![7u8; n]));
        assert!(WebhookSecret::decode(&of_len(24)).is_some() && WebhookSecret::decode(&of_len(64)).is_some());
        for bad in [of_len(23), of_len(65), "whsec_not base64!".into(), "whsec_".into(), String::new()] {
            assert!(WebhookSecret::decode(&bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let secret = WebhookSecret::decode("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let shown = format!("{secret:?} {:?}", Some(&secret));
        assert_eq!(shown, "WebhookSecret(..) Some(WebhookSecret(..))");
    }
}
