//! Timestamps: stored as microseconds since the Unix epoch, written as RFC 3339 UTC with
//! exactly six fractional digits and `Z` (`2025-10-21T13:00:00.000000Z`).

use jiff::Timestamp;

/// Microseconds since the Unix epoch, the one representation used in storage and arithmetic.
pub type Micros = i64;

pub fn now_micros() -> Micros {
    Timestamp::now().as_microsecond()
}

/// `2025-10-21T13:00:00.000000Z`.
pub fn format_micros(micros: Micros) -> String {
    let ts = Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
    ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Parse any RFC 3339 timestamp with an offset; sub-microsecond digits are truncated.
pub fn parse_rfc3339(text: &str) -> Option<Micros> {
    // jiff's Timestamp parser accepts RFC 3339 and RFC 9557; insist on an explicit offset.
    let ts: Timestamp = text.parse().ok()?;
    Some(ts.as_microsecond())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_six_fraction_digits_and_z() {
        assert_eq!(format_micros(1_761_051_600_000_000), "2025-10-21T13:00:00.000000Z");
        assert_eq!(format_micros(1_761_051_600_123_456), "2025-10-21T13:00:00.123456Z");
    }

    #[test]
    fn parses_offsets_and_normalises_to_utc() {
        let utc = parse_rfc3339("2025-10-21T13:00:00Z").unwrap();
        assert_eq!(parse_rfc3339("2025-10-21T15:00:00+02:00"), Some(utc));
        assert_eq!(parse_rfc3339("2025-10-21T13:00:00.5Z"), Some(utc + 500_000));
        assert_eq!(parse_rfc3339("2025-10-21 13:00"), None);
        assert_eq!(parse_rfc3339("yesterday"), None);
    }
}
