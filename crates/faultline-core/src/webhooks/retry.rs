//! When a delivery is attempted again after a failure.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::duration::{format_duration, parse_duration};

/// The API's documented default: at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (about 27.5
/// hours in all, so a receiver down for a day still gets everything).
pub const DEFAULT_RETRY_SCHEDULE: &str = "0s,5s,5m,30m,2h,5h,10h,10h";
/// Most attempts a schedule may make, so a typo cannot keep a message alive for ever.
pub const MAX_ATTEMPTS: usize = 50;
/// Longest delay between two attempts; longer ones look like mistakes (`10d` for `10h`).
pub const MAX_DELAY: Duration = Duration::from_secs(30 * 86_400);

/// The delay before each attempt at delivering one message, the first (index 0) counted from
/// the message's creation and each later one from the attempt before it. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

impl RetrySchedule {
    /// A comma-separated list of durations (`0s,5s,5m`), 1 to [`MAX_ATTEMPTS`] of them, each
    /// at most [`MAX_DELAY`]. The error is a sentence for the configuration's user.
    pub fn parse(text: &str) -> Result<Self, String> {
        let delays = text
            .split(',')
            .map(|part| match parse_duration(part) {
                Ok(delay) if delay > MAX_DELAY => {
                    Err(format!("'{}' is longer than the longest retry delay, 30d", part.trim()))
                }
                Ok(delay) => Ok(delay),
                Err(err) => Err(format!("the retry schedule '{text}' is a comma-separated list: {err}")),
            })
            .collect::<Result<Vec<_>, _>>()?;
        if delays.len() > MAX_ATTEMPTS {
            return Err(format!(
                "a retry schedule has at most {MAX_ATTEMPTS} attempts, not {}",
                delays.len()
            ));
        }
        Ok(RetrySchedule(delays))
    }

    /// How many attempts a message gets before it is marked `failed`.
    pub fn attempts(&self) -> usize {
        self.0.len()
    }

    /// The delay before attempt `attempt_index` (0 is the first attempt), or `None` when the
    /// schedule is exhausted and the message has failed.
    pub fn delay_before(&self, attempt_index: usize) -> Option<Duration> {
        self.0.get(attempt_index).copied()
    }

    /// `delay` lengthened by up to 10 %, `random_unit` (in `[0, 1)`, supplied by the caller so
    /// this stays pure) choosing how much. Spreading retries keeps the messages that failed
    /// together, when a receiver went down, from all arriving together when it comes back.
    /// A zero delay stays zero: "at once" means at once. An out-of-range unit is clamped.
    pub fn with_jitter(delay: Duration, random_unit: f64) -> Duration {
        let unit = if random_unit.is_finite() { random_unit.clamp(0.0, 1.0) } else { 0.0 };
        delay.saturating_add(delay.mul_f64(0.1 * unit))
    }
}

impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule::parse(DEFAULT_RETRY_SCHEDULE).expect("the default retry schedule is valid")
    }
}

impl FromStr for RetrySchedule {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        RetrySchedule::parse(text)
    }
}

/// The schedule in the form [`parse`](RetrySchedule::parse) reads.
impl fmt::Display for RetrySchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, delay) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            // format_duration writes zero as `0ms`; `0s` reads as the default does.
            f.write_str(&if delay.is_zero() { "0s".to_owned() } else { format_duration(*delay) })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_is_the_documented_schedule() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.delay_before(0), Some(Duration::ZERO));
        assert_eq!(schedule.delay_before(1), Some(Duration::from_secs(5)));
        assert_eq!(schedule.delay_before(2), Some(Duration::from_secs(300)));
        assert_eq!(schedule.delay_before(7), Some(Duration::from_secs(36_000)));
        assert_eq!(schedule.delay_before(8), None);
        assert_eq!(schedule.to_string(), DEFAULT_RETRY_SCHEDULE);
    }

    #[test]
    fn parses_and_writes_back() {
        let schedule: RetrySchedule = " 1s , 90s,500ms, 30d,0ms".parse().unwrap();
        assert_eq!(schedule.attempts(), 5);
        assert_eq!(schedule.delay_before(3), Some(MAX_DELAY));
        assert_eq!(schedule.to_string(), "1s,90s,500ms,30d,0s");
        assert_eq!(RetrySchedule::parse(&schedule.to_string()).unwrap(), schedule);
        assert_eq!(
            RetrySchedule::parse(&vec!["1m"; MAX_ATTEMPTS].join(",")).unwrap().attempts(),
            MAX_ATTEMPTS
        );
    }

    #[test]
    fn refuses_empty_entries_long_delays_and_long_schedules() {
        let too_many = vec!["1m"; MAX_ATTEMPTS + 1].join(",");
        for bad in ["", " ", "1s,", ",1s", "1s,,2s", "1s;2s", "5 minutes", "31d", "721h", too_many.as_str()] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
        assert!(RetrySchedule::parse("1s,31d").unwrap_err().contains("30d"));
        assert!(RetrySchedule::parse(&too_many).unwrap_err().contains("50"));
    }

    #[test]
    fn jitter_adds_up_to_ten_percent() {
        let delay = Duration::from_secs(100);
        assert_eq!(RetrySchedule::with_jitter(delay, 0.0), delay);
        assert_eq!(RetrySchedule::with_jitter(delay, 0.5), Duration::from_secs(105));
        let high = RetrySchedule::with_jitter(delay, 0.999_999);
        assert!(high > Duration::from_secs(109) && high <= Duration::from_secs(110), "{high:?}");
        assert_eq!(RetrySchedule::with_jitter(delay, 7.0), Duration::from_secs(110));
        assert_eq!(RetrySchedule::with_jitter(delay, -1.0), delay);
        assert_eq!(RetrySchedule::with_jitter(delay, f64::NAN), delay);
        assert_eq!(RetrySchedule::with_jitter(Duration::ZERO, 0.9), Duration::ZERO);
        assert_eq!(RetrySchedule::with_jitter(Duration::MAX, 0.9), Duration::MAX);
    }
}
