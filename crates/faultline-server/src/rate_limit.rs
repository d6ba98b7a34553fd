//! Per-credential rate limiting with the generic cell rate algorithm (GCRA): a limit of N a
//! minute admits a burst of N, then one request every 60/N seconds. State is one timestamp
//! per credential, kept in this replica's memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

const PERIOD: Duration = Duration::from_secs(60);
/// Forget idle credentials once the table holds this many.
const PURGE_THRESHOLD: usize = 10_000;

/// The outcome of one request against a credential's limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the full burst is available again.
    pub reset_seconds: u64,
    /// When refused: seconds to wait before the next request will be admitted.
    pub retry_after_seconds: u64,
}

pub struct RateLimiter {
    clock: Arc<dyn Clock>,
    /// Theoretical arrival time of the next request, per credential id.
    tat: Mutex<HashMap<String, Instant>>,
}

impl RateLimiter {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        RateLimiter { clock, tat: Mutex::default() }
    }

    pub fn check(&self, credential_id: &str, per_minute: u32) -> Decision {
        self.check_at(credential_id, per_minute, self.clock.now())
    }

    fn check_at(&self, credential_id: &str, per_minute: u32, now: Instant) -> Decision {
        let per_minute = per_minute.max(1);
        let interval = PERIOD / per_minute;
        let mut table = self.tat.lock().unwrap_or_else(|e| e.into_inner());
        if table.len() >= PURGE_THRESHOLD {
            table.retain(|_, tat| *tat > now);
        }
        let tat = table.get(credential_id).copied().filter(|t| *t > now).unwrap_or(now);
        let new_tat = tat + interval;
        let backlog = new_tat - now;
        if backlog > PERIOD {
            let wait = backlog - PERIOD;
            return Decision {
                allowed: false,
                limit: per_minute,
                remaining: 0,
                reset_seconds: ceil_secs(tat - now),
                retry_after_seconds: ceil_secs(wait).max(1),
            };
        }
        table.insert(credential_id.to_owned(), new_tat);
        let remaining = ((PERIOD - backlog).as_nanos() / interval.as_nanos()) as u32;
        Decision {
            allowed: true,
            limit: per_minute,
            remaining,
            reset_seconds: ceil_secs(backlog),
            retry_after_seconds: 0,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_the_burst_then_refuses_with_a_retry_time() {
        let limiter = RateLimiter::new(Arc::new(crate::clock::SystemClock));
        let now = Instant::now();
        for i in 0..60 {
            let d = limiter.check_at("key_a", 60, now);
            assert!(d.allowed, "request {i}");
            assert_eq!(d.remaining, 59 - i);
        }
        let refused = limiter.check_at("key_a", 60, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after_seconds, 1);
        // Another credential is unaffected.
        assert!(limiter.check_at("key_b", 60, now).allowed);
        // One interval later, one more request fits.
        assert!(limiter.check_at("key_a", 60, now + Duration::from_secs(1)).allowed);
        assert!(!limiter.check_at("key_a", 60, now + Duration::from_secs(1)).allowed);
    }

    #[test]
    fn the_full_burst_returns_after_a_minute() {
        let limiter = RateLimiter::new(Arc::new(crate::clock::SystemClock));
        let now = Instant::now();
        for _ in 0..10 {
            limiter.check_at("k", 10, now);
        }
        assert!(!limiter.check_at("k", 10, now).allowed);
        let later = limiter.check_at("k", 10, now + PERIOD);
        assert!(later.allowed);
        assert_eq!(later.remaining, 9);
    }
}
