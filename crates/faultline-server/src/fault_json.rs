//! The JSON of faults, written straight into the body for the answers that carry many of them
//! (`GET /fault`, `GET /fault/{faultId}`, the NDJSON export). A page of `GET /fault` is written
//! from the faults the store read ([`PageWriter`], a [`FaultSink`]).
//!
//! [`FaultView`](crate::faults::FaultView) stays the schema and what every other answer
//! serialises with serde; this writes the same bytes, which the tests check on generated faults
//! (quotes, backslashes, control characters and non-ASCII text included). It exists for speed:
//! serde_json escapes a string one byte at a time, and a page of faults is mostly strings; here
//! eight bytes are checked at once, and runs that need no escape are copied whole.

use faultline_core::fault::{Comment, Fault, FaultRef, FaultSink};
use faultline_core::time::{Micros, write_micros};

/// One fault, as `serde_json::to_vec(&FaultView::from(fault))` writes it.
pub fn write_fault(out: &mut Vec<u8>, f: &FaultRef<'_>) {
    out.extend_from_slice(b"{\"id\":");
    write_str(out, f.id);
    out.extend_from_slice(b",\"resource_id\":");
    write_str(out, f.resource_id);
    out.extend_from_slice(b",\"customer_id\":");
    write_str(out, f.customer_id);
    out.extend_from_slice(b",\"microservice_id\":");
    write_str(out, f.microservice_id);
    out.extend_from_slice(b",\"type\":");
    write_str(out, f.fault_type);
    out.extend_from_slice(b",\"status\":");
    write_str(out, f.status.as_str());
    out.extend_from_slice(b",\"severity\":");
    write_str(out, f.severity.as_str());
    out.extend_from_slice(b",\"message\":");
    write_str(out, f.message);
    out.extend_from_slice(b",\"cause\":");
    write_str(out, f.cause);
    out.extend_from_slice(b",\"created_at\":");
    write_time(out, f.created_at);
    out.extend_from_slice(b",\"resolved_at\":");
    match f.resolved_at {
        Some(at) => write_time(out, at),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"resource_ancestry_path\":");
    write_str(out, f.resource_ancestry_path);
    out.extend_from_slice(b",\"ttl\":");
    out.extend_from_slice(itoa::Buffer::new().format(f.ttl).as_bytes());
    out.extend_from_slice(b",\"comments\":[");
    for (n, comment) in f.comments.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_comment(out, comment);
    }
    out.extend_from_slice(b"],\"site_id\":");
    match f.site_id {
        Some(site) => write_str(out, site),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"site_name\":");
    match f.site_name {
        Some(name) => write_str(out, name),
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// One fault's JSON.
pub fn fault(f: &Fault) -> Vec<u8> {
    let mut out = Vec::with_capacity(640);
    write_fault(&mut out, &f.as_ref());
    out
}

/// A page of `GET /fault`, `{"data": [...], "meta": {...}}` as `serde_json::to_vec(&FaultList)`
/// writes it, filled by the store: of the faults given, the first `limit` are written and one
/// more only tells that there are more.
pub struct PageWriter {
    out: Vec<u8>,
    limit: usize,
    count: usize,
    has_more: bool,
    /// The position of the last fault written, for the cursor.
    last_created_at: Micros,
    last_id: String,
}

impl PageWriter {
    pub fn new(limit: usize) -> PageWriter {
        let mut out = Vec::with_capacity(128 + limit * 640);
        out.extend_from_slice(b"{\"data\":[");
        PageWriter { out, limit, count: 0, has_more: false, last_created_at: 0, last_id: String::new() }
    }

    /// Whether more faults were given than the page holds.
    pub fn has_more(&self) -> bool {
        self.has_more
    }

    /// `(created_at, id)` of the last fault on the page.
    pub fn last(&self) -> Option<(Micros, &str)> {
        (self.count > 0).then_some((self.last_created_at, self.last_id.as_str()))
    }

    /// The page's JSON, with `cursor` in its `meta`.
    pub fn finish(self, cursor: Option<&str>) -> Vec<u8> {
        let mut out = self.out;
        out.extend_from_slice(b"],\"meta\":{\"count\":");
        out.extend_from_slice(itoa::Buffer::new().format(self.count).as_bytes());
        out.extend_from_slice(b",\"cursor\":");
        match cursor {
            Some(cursor) => write_str(&mut out, cursor),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(if self.has_more { b",\"has_more\":true}}" } else { b",\"has_more\":false}}" });
        out
    }
}

impl FaultSink for PageWriter {
    fn fault(&mut self, f: &FaultRef<'_>) {
        if self.count == self.limit {
            self.has_more = true;
            return;
        }
        if self.count > 0 {
            self.out.push(b',');
        }
        write_fault(&mut self.out, f);
        self.count += 1;
        self.last_created_at = f.created_at;
        self.last_id.clear();
        self.last_id.push_str(f.id);
    }

    fn clear(&mut self) {
        *self = PageWriter::new(self.limit);
    }
}

fn write_comment(out: &mut Vec<u8>, c: &Comment) {
    out.extend_from_slice(b"{\"user_id\":");
    write_str(out, &c.user_id);
    out.extend_from_slice(b",\"comment\":");
    write_str(out, &c.comment);
    out.extend_from_slice(b",\"created_at\":");
    write_time(out, c.created_at);
    out.push(b'}');
}

/// A timestamp as a JSON string (its text never needs escaping).
fn write_time(out: &mut Vec<u8>, micros: i64) {
    out.push(b'"');
    write_micros(out, micros);
    out.push(b'"');
}

/// `s` as a JSON string, escaped exactly as serde_json escapes it: `"` and `\`, the control
/// characters below U+0020 (`\b \t \n \f \r` by name, the rest as `\u00xx`); nothing else.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut copied = 0;
    let mut escape_from = |out: &mut Vec<u8>, from: usize, to: usize| {
        for (i, &byte) in bytes.iter().enumerate().take(to).skip(from) {
            if needs_escape(byte) {
                out.extend_from_slice(&bytes[copied..i]);
                push_escape(out, byte);
                copied = i + 1;
            }
        }
    };
    let word_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("eight bytes"));
    let mut at = 0;
    while at + 8 <= bytes.len() {
        if needs_escape_in(word_at(at)) {
            escape_from(out, at, at + 8);
        }
        at += 8;
    }
    if at < bytes.len() {
        // The last eight bytes, overlapping what was checked; a string shorter than a word is
        // checked byte by byte.
        if bytes.len() < 8 || needs_escape_in(word_at(bytes.len() - 8)) {
            escape_from(out, at, bytes.len());
        }
    }
    out.extend_from_slice(&bytes[copied..]);
    out.push(b'"');
}

/// Whether any of the eight bytes of `word` [`needs_escape`], all at once ("determine if a
/// word has a byte less than n", from Sean Eron Anderson's Bit Twiddling Hacks: exact as to
/// whether there is one, for n up to 128; bytes from 0x80, which UTF-8 uses beyond ASCII,
/// never count).
fn needs_escape_in(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let has_less = |x: u64, n: u64| x.wrapping_sub(ONES * n) & !x & HIGH != 0;
    has_less(word, 0x20)
        || has_less(word ^ (ONES * u64::from(b'"')), 1)
        || has_less(word ^ (ONES * u64::from(b'\\')), 1)
}

fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

fn push_escape(out: &mut Vec<u8>, byte: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x09 => out.extend_from_slice(b"\\t"),
        0x0a => out.extend_from_slice(b"\\n"),
        0x0c => out.extend_from_slice(b"\\f"),
        0x0d => out.extend_from_slice(b"\\r"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultList, FaultView, ListMeta};
    use faultline_core::fault::{FaultStatus, Severity};
    use proptest::prelude::*;

    /// Text with everything that escaping treats specially, and runs long enough to cross the
    /// 8-byte steps at every offset.
    fn text() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("\"".to_owned()),
            Just("\\".to_owned()),
            Just("\u{7f}".to_owned()),
            Just("\u{2028}".to_owned()),
            Just("é🦀".to_owned()),
            (0u8..0x20).prop_map(|b| char::from(b).to_string()),
            "[a-zA-Z0-9 |_.-]{0,40}",
            any::<char>().prop_map(String::from),
        ];
        proptest::collection::vec(piece, 0..12).prop_map(|pieces| pieces.concat())
    }

    fn micros() -> impl Strategy<Value = i64> {
        // Inside and outside the years that format_micros writes digit by digit.
        prop_oneof![0i64..4_102_444_800_000_000, -62_135_596_800_000_000i64..253_402_300_799_999_999]
    }

    fn comment() -> impl Strategy<Value = Comment> {
        (text(), text(), micros()).prop_map(|(user_id, comment, created_at)| Comment {
            id: "cmt_x".to_owned(),
            user_id,
            comment,
            created_at,
        })
    }

    prop_compose! {
        fn a_fault()(
            strings in proptest::collection::vec(text(), 8),
            resolved in any::<bool>(),
            severity in prop_oneof![
                Just(Severity::Low), Just(Severity::Medium), Just(Severity::High),
                Just(Severity::Critical), Just(Severity::Warning)
            ],
            created_at in micros(),
            resolved_at in micros(),
            site in proptest::option::of(text()),
            site_name in proptest::option::of(text()),
            ttl in any::<i64>(),
            comments in proptest::collection::vec(comment(), 0..3),
        ) -> Fault {
            Fault {
                id: strings[0].clone(),
                customer_id: strings[1].clone(),
                resource_id: strings[2].clone(),
                microservice_id: strings[3].clone(),
                fault_type: strings[4].clone(),
                status: if resolved { FaultStatus::Resolved } else { FaultStatus::Unresolved },
                severity,
                message: strings[5].clone(),
                cause: strings[6].clone(),
                created_at,
                resolved_at: resolved.then_some(resolved_at),
                resource_ancestry_path: strings[7].clone(),
                site_id: site,
                site_name,
                ttl,
                comments,
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn a_fault_is_written_as_serde_writes_its_view(f in a_fault()) {
            let expected = serde_json::to_vec(&FaultView::from(f.clone())).unwrap();
            prop_assert_eq!(String::from_utf8(fault(&f)).unwrap(), String::from_utf8(expected).unwrap());
        }

        #[test]
        fn a_page_is_written_as_serde_writes_it(
            faults in proptest::collection::vec(a_fault(), 0..5),
            limit in 1usize..4,
            cleared_first in any::<bool>(),
            cursor in proptest::option::of(text()),
        ) {
            let mut page = PageWriter::new(limit);
            if cleared_first {
                // What a store does when it starts a page again another way.
                for f in faults.iter().rev() {
                    page.fault(&f.as_ref());
                }
                page.clear();
            }
            for f in &faults {
                page.fault(&f.as_ref());
            }
            let on_page = &faults[..faults.len().min(limit)];
            prop_assert_eq!(page.has_more(), faults.len() > limit);
            prop_assert_eq!(page.last(), on_page.last().map(|f| (f.created_at, f.id.as_str())));
            let written = page.finish(cursor.as_deref());
            let data = on_page.iter().cloned().map(FaultView::from).collect();
            let meta = ListMeta { count: on_page.len(), cursor, has_more: faults.len() > limit };
            let expected = serde_json::to_vec(&FaultList { data, meta }).unwrap();
            prop_assert_eq!(String::from_utf8(written).unwrap(), String::from_utf8(expected).unwrap());
        }

        #[test]
        fn strings_are_escaped_as_serde_escapes_them(s in text()) {
            let mut out = Vec::new();
            write_str(&mut out, &s);
            prop_assert_eq!(out, serde_json::to_vec(&s).unwrap());
        }
    }

    #[test]
    fn every_byte_below_0x80_is_escaped_as_serde_escapes_it() {
        for byte in 0u8..0x80 {
            // At each position of the first three 8-byte words, and last.
            for offset in 0..25 {
                let s = format!("{}{}{}", "a".repeat(offset), char::from(byte), "b".repeat(24 - offset));
                let mut out = Vec::new();
                write_str(&mut out, &s);
                assert_eq!(out, serde_json::to_vec(&s).unwrap(), "byte {byte:#x} at {offset}");
            }
        }
    }
}
