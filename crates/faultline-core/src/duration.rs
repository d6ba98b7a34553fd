//! Human durations: in configuration (`30s`, `500ms`, `10m`, `2h`, `30d`), and the elapsed time
//! of a fault written for people (`2 hours, 15 minutes`).

use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a duration; write a whole number and a unit: ms, s, m, h or d (e.g. 30s, 10m, 90d)")]
pub struct DurationError(pub String);

pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let err = || DurationError(text.to_owned());
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().map_err(|_| err())?;
    let millis = match unit.trim() {
        "ms" => Some(n),
        "s" => n.checked_mul(1_000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        _ => None,
    }
    .ok_or_else(err)?;
    Ok(Duration::from_millis(millis))
}

/// The shortest exact text for a duration, the inverse of [`parse_duration`].
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    for (unit, size) in [("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// Elapsed time as people say it, for the legacy views' `duration`: the largest non-zero unit
/// among days, hours and minutes, then the next smaller unit when it is not zero, each a whole
/// number rounded down (`3 days, 4 hours`, `2 hours, 15 minutes`, `58 minutes`, `1 day`).
/// Under a minute, and any negative span (clock skew), is `less than a minute`. So the text is
/// never above the true span, and below it by less than one of the unit after the largest (less
/// than an hour when it counts days).
pub fn describe_elapsed(micros: i64) -> String {
    const MINUTE: i64 = 60 * 1_000_000;
    let minutes = micros.max(0) / MINUTE;
    let (days, hours, minutes) = (minutes / 1_440, minutes / 60 % 24, minutes % 60);
    let units = [(days, "day"), (hours, "hour"), (minutes, "minute")];
    let Some(first) = units.iter().position(|(n, _)| *n > 0) else {
        return "less than a minute".to_owned();
    };
    let counted = |(n, unit): (i64, &str)| format!("{n} {unit}{}", if n == 1 { "" } else { "s" });
    match units.get(first + 1) {
        Some(&next) if next.0 > 0 => format!("{}, {}", counted(units[first]), counted(next)),
        _ => counted(units[first]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elapsed_time_reads_as_two_units_rounded_down() {
        const S: i64 = 1_000_000;
        let (m, h, d) = (60 * S, 3_600 * S, 86_400 * S);
        for (micros, text) in [
            (-5 * S, "less than a minute"),
            (0, "less than a minute"),
            (59 * S + 999_999, "less than a minute"),
            (m, "1 minute"),
            (2 * m - 1, "1 minute"),
            (58 * m + 59 * S, "58 minutes"),
            (h, "1 hour"),
            (h + m, "1 hour, 1 minute"),
            (2 * h + 15 * m + 30 * S, "2 hours, 15 minutes"),
            (23 * h + 59 * m + 59 * S, "23 hours, 59 minutes"),
            (d, "1 day"),
            (d + 59 * m, "1 day"),
            (d + h, "1 day, 1 hour"),
            (3 * d + 4 * h + 59 * m, "3 days, 4 hours"),
            (400 * d + 23 * h, "400 days, 23 hours"),
            (i64::MAX, "106751991 days, 4 hours"),
        ] {
            assert_eq!(describe_elapsed(micros), text, "{micros} µs");
        }
    }

    #[test]
    fn parses_each_unit() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2h").unwrap(), Duration::from_secs(7200));
        assert_eq!(parse_duration("90d").unwrap(), Duration::from_secs(90 * 86400));
    }

    #[test]
    fn rejects_garbage_with_a_hint() {
        for bad in ["", "s", "10", "10 parsecs", "-5s", "1.5h"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.to_string().contains("unit"), "{bad}");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["500ms", "30s", "10m", "2h", "90d", "90s"] {
            assert_eq!(format_duration(parse_duration(text).unwrap()), text);
        }
    }
}
