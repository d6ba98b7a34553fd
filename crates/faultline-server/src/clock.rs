//! Where the server's time-limited state reads the time: the credential and key caches, the
//! rate limiter, the once-a-minute write of a key's use. The server runs on [`SystemClock`];
//! a test gives it a clock it moves forward itself, so it never sleeps to see a cache entry
//! expire or a rate-limit window refill.

use std::time::Instant;

/// A monotonic clock.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now(&self) -> Instant;
}

/// The operating system's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when a unit test moves it.
#[cfg(test)]
#[derive(Debug)]
pub(crate) struct ManualClock(std::sync::Mutex<Instant>);

#[cfg(test)]
impl ManualClock {
    pub(crate) fn new() -> Self {
        ManualClock(std::sync::Mutex::new(Instant::now()))
    }

    pub(crate) fn advance(&self, by: std::time::Duration) {
        *self.0.lock().unwrap() += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap()
    }
}
