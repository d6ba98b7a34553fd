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
    let mut out = Vec::with_capacity(27);
    write_micros(&mut out, micros);
    String::from_utf8(out).expect("a timestamp is ASCII")
}

/// [`format_micros`], appended to `out`.
///
/// Written digit by digit for the years 0000-9999 (jiff's `strftime` parses its format on every
/// call, and a page of faults formats two or three timestamps a fault), by jiff outside them.
pub fn write_micros(out: &mut Vec<u8>, micros: Micros) {
    const DAY: i64 = 86_400_000_000;
    let (days, of_day) = (micros.div_euclid(DAY), micros.rem_euclid(DAY));
    // Days since 1970-01-01 to the civil date (H. Hinnant, "chrono-Compatible Low-Level Date
    // Algorithms", civil_from_days), on the proleptic Gregorian calendar as jiff.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    if !(0..=9_999).contains(&year) {
        let ts = Timestamp::from_microsecond(micros).unwrap_or(Timestamp::UNIX_EPOCH);
        out.extend_from_slice(ts.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string().as_bytes());
        return;
    }
    let seconds = of_day / 1_000_000;
    let mut text = [0u8; 27];
    let mut put = |at: usize, width: usize, mut value: i64| {
        for i in (at..at + width).rev() {
            text[i] = b'0' + (value % 10) as u8;
            value /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, seconds / 3_600);
    put(14, 2, seconds / 60 % 60);
    put(17, 2, seconds % 60);
    put(20, 6, of_day % 1_000_000);
    for (at, separator) in [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':'), (19, b'.'), (26, b'Z')]
    {
        text[at] = separator;
    }
    out.extend_from_slice(&text);
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
    fn formats_as_jiff_does_across_the_calendar() {
        let jiff = |micros: Micros| {
            Timestamp::from_microsecond(micros).unwrap().strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
        };
        // Leap days, century and 400-year rules, the epoch, times before it, the ends of the
        // range written digit by digit, and a spread of values between.
        let mut samples = vec![
            0,
            -1,
            951_782_400_000_000,
            951_868_799_999_999,
            4_107_542_400_000_000,
            -2_208_988_800_000_000,
            -62_167_219_200_000_000,
            253_402_207_200_000_000,
        ];
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            samples.push((x % 315_569_426_400_000_000) as i64 - 62_167_219_200_000_000);
        }
        for micros in samples {
            assert_eq!(format_micros(micros), jiff(micros), "{micros}");
        }
        assert_eq!(format_micros(-62_167_219_200_000_001), jiff(-62_167_219_200_000_001), "year -1 by jiff");
    }

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
