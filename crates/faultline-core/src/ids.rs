//! Type-prefixed, time-sortable identifiers (`flt_` + KSUID and friends).
//!
//! A KSUID is 4 bytes of seconds since the KSUID epoch (2014-05-13T16:53:20Z) followed by
//! 16 random bytes, written as 27 base62 characters. Lexical order is creation order to the
//! second, which keeps id indexes append-mostly.

use crate::secret::random_bytes;

/// Seconds between the Unix epoch and the KSUID epoch.
const KSUID_EPOCH: i64 = 1_400_000_000;
/// Length of a base62-encoded KSUID.
pub const KSUID_LEN: usize = 27;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The kinds of object that carry an id, each with its prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Fault,
    Customer,
    User,
    ApiKey,
    AccessToken,
    Webhook,
    /// A webhook message: the `webhook-id` of its deliveries.
    WebhookMessage,
    Comment,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Fault => "flt_",
            IdKind::Customer => "cus_",
            IdKind::User => "usr_",
            IdKind::ApiKey => "key_",
            IdKind::AccessToken => "tok_",
            IdKind::Webhook => "whk_",
            IdKind::WebhookMessage => "msg_",
            IdKind::Comment => "cmt_",
        }
    }

    /// A new id of this kind, stamped with `unix_seconds`.
    pub fn new_id_at(self, unix_seconds: i64) -> String {
        let mut payload = [0u8; 16];
        random_bytes(&mut payload);
        let mut id = String::with_capacity(self.prefix().len() + KSUID_LEN);
        id.push_str(self.prefix());
        id.push_str(&ksuid_from_parts(unix_seconds, payload));
        id
    }

    /// A new id of this kind stamped with the current time.
    pub fn new_id(self) -> String {
        self.new_id_at(jiff::Timestamp::now().as_second())
    }

    /// True when `id` has this kind's prefix followed by a well-formed KSUID.
    pub fn is_valid(self, id: &str) -> bool {
        id.strip_prefix(self.prefix())
            .is_some_and(|rest| rest.len() == KSUID_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
    }
}

/// The 27-character KSUID stamped with `unix_seconds` (clamped to the KSUID range) and
/// carrying `payload`. Callers that need reproducible ids (the demo generator) supply the
/// payload; everything else goes through [`IdKind::new_id_at`].
pub fn ksuid_from_parts(unix_seconds: i64, payload: [u8; 16]) -> String {
    let mut bytes = [0u8; 20];
    let stamp = (unix_seconds - KSUID_EPOCH).clamp(0, u32::MAX as i64) as u32;
    bytes[..4].copy_from_slice(&stamp.to_be_bytes());
    bytes[4..].copy_from_slice(&payload);
    encode_ksuid(&bytes)
}

/// Base62 of a 160-bit big-endian number, left-padded with '0' to 27 characters.
fn encode_ksuid(bytes: &[u8; 20]) -> String {
    // Repeated division of the number held as five big-endian u32 words.
    let mut words = [0u32; 5];
    for (i, word) in words.iter_mut().enumerate() {
        *word = u32::from_be_bytes([bytes[i * 4], bytes[i * 4 + 1], bytes[i * 4 + 2], bytes[i * 4 + 3]]);
    }
    let mut out = [b'0'; KSUID_LEN];
    let mut pos = KSUID_LEN;
    while words.iter().any(|w| *w != 0) && pos > 0 {
        let mut remainder: u64 = 0;
        for word in words.iter_mut() {
            let acc = (remainder << 32) | u64::from(*word);
            *word = (acc / 62) as u32;
            remainder = acc % 62;
        }
        pos -= 1;
        out[pos] = BASE62[remainder as usize];
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

/// `len` characters drawn uniformly from base62 with the OS random generator.
pub fn random_base62(len: usize) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        random_bytes(&mut buf);
        for b in buf {
            // 248 = 4 * 62: rejecting larger bytes keeps every character equally likely.
            if b < 248 && out.len() < len {
                out.push(BASE62[(b % 62) as usize] as char);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_ids_have_prefix_and_27_base62_chars() {
        let id = IdKind::Fault.new_id();
        assert!(id.starts_with("flt_"), "{id}");
        assert_eq!(id.len(), 4 + KSUID_LEN);
        assert!(IdKind::Fault.is_valid(&id));
        assert!(!IdKind::Customer.is_valid(&id));
    }

    #[test]
    fn ids_sort_by_time() {
        let a = IdKind::Fault.new_id_at(1_700_000_000);
        let b = IdKind::Fault.new_id_at(1_700_000_001);
        let c = IdKind::Fault.new_id_at(1_800_000_000);
        assert!(a < b && b < c, "{a} {b} {c}");
    }

    #[test]
    fn encoding_matches_the_ksuid_reference() {
        // Reference values from the KSUID specification: all-zero and all-max payloads.
        assert_eq!(encode_ksuid(&[0u8; 20]), "000000000000000000000000000");
        assert_eq!(encode_ksuid(&[0xFF; 20]), "aWgEPTl1tmebfsQzFP4bxwgy80V");
    }

    #[test]
    fn ksuid_from_parts_matches_the_reference_example() {
        // The KSUID README's example: timestamp 107608047 after the KSUID epoch, payload below.
        let payload =
            [0xB5, 0xA1, 0xCD, 0x34, 0xB5, 0xF9, 0x9D, 0x11, 0x54, 0xFB, 0x68, 0x53, 0x34, 0x5C, 0x97, 0x35];
        assert_eq!(ksuid_from_parts(KSUID_EPOCH + 107_608_047, payload), "0ujtsYcgvSTl8PAuAdqWYSMnLOv");
        assert_eq!(ksuid_from_parts(KSUID_EPOCH, [0; 16]), "000000000000000000000000000");
        // Before the epoch clamps to it rather than wrapping.
        assert_eq!(ksuid_from_parts(0, [0; 16]), ksuid_from_parts(KSUID_EPOCH, [0; 16]));
    }

    #[test]
    fn random_base62_has_requested_length_and_alphabet() {
        let s = random_base62(40);
        assert_eq!(s.len(), 40);
        assert!(s.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(s, random_base62(40));
    }
}
