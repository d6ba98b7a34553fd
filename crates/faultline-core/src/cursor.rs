//! Opaque, authenticated keyset cursors.
//!
//! A cursor names the last row of a page, `(created_at, id)`, and carries an HMAC-SHA256 over
//! that position, the customer and the canonical filter. A cursor from another customer, from
//! another filter, or altered in any byte fails verification.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::constant_time_eq;
use crate::time::Micros;

const MAC_LEN: usize = 16;
const MAX_CURSOR_LEN: usize = 4096;

/// The position after which the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub created_at: Micros,
    pub id: String,
}

/// Signs and verifies cursors with the deployment's shared secret.
#[derive(Clone)]
pub struct CursorCodec {
    key: Vec<u8>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec(..)")
    }
}

impl CursorCodec {
    pub fn new(key: &[u8]) -> Self {
        CursorCodec { key: key.to_vec() }
    }

    fn mac(&self, customer_id: &str, filter: &str, payload: &[u8]) -> [u8; MAC_LEN] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        for part in [customer_id.as_bytes(), filter.as_bytes(), payload] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0u8; MAC_LEN];
        out.copy_from_slice(&full[..MAC_LEN]);
        out
    }

    pub fn encode(&self, customer_id: &str, filter: &str, position: &Position) -> String {
        let mut payload = position.created_at.to_be_bytes().to_vec();
        payload.extend_from_slice(position.id.as_bytes());
        let mac = self.mac(customer_id, filter, &payload);
        payload.extend_from_slice(&mac);
        URL_SAFE_NO_PAD.encode(payload)
    }

    /// The position in `cursor`, if it was issued for this customer and filter.
    pub fn decode(&self, customer_id: &str, filter: &str, cursor: &str) -> Option<Position> {
        if cursor.len() > MAX_CURSOR_LEN {
            return None;
        }
        let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
        if bytes.len() < 8 + MAC_LEN {
            return None;
        }
        let (payload, mac) = bytes.split_at(bytes.len() - MAC_LEN);
        if !constant_time_eq(&self.mac(customer_id, filter, payload), mac) {
            return None;
        }
        let created_at = Micros::from_be_bytes(payload[..8].try_into().ok()?);
        let id = String::from_utf8(payload[8..].to_vec()).ok()?;
        Some(Position { created_at, id })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn position() -> Position {
        Position { created_at: 1_761_051_600_123_456, id: "flt_31pkd1t8FvW7qZv0jG2a9kH5mB1".into() }
    }

    #[test]
    fn round_trips_for_the_same_customer_and_filter() {
        let codec = CursorCodec::new(b"k");
        let cursor = codec.encode("cus_a", "sev=HIGH", &position());
        assert_eq!(codec.decode("cus_a", "sev=HIGH", &cursor), Some(position()));
    }

    #[test]
    fn refuses_other_customers_filters_keys_and_tampering() {
        let codec = CursorCodec::new(b"k");
        let cursor = codec.encode("cus_a", "sev=HIGH", &position());
        assert_eq!(codec.decode("cus_b", "sev=HIGH", &cursor), None);
        assert_eq!(codec.decode("cus_a", "sev=LOW", &cursor), None);
        assert_eq!(CursorCodec::new(b"other").decode("cus_a", "sev=HIGH", &cursor), None);
        let mut bytes = URL_SAFE_NO_PAD.decode(&cursor).unwrap();
        bytes[3] ^= 1;
        assert_eq!(codec.decode("cus_a", "sev=HIGH", &URL_SAFE_NO_PAD.encode(&bytes)), None);
        assert_eq!(codec.decode("cus_a", "sev=HIGH", "not a cursor!"), None);
        assert_eq!(codec.decode("cus_a", "sev=HIGH", ""), None);
    }
}
