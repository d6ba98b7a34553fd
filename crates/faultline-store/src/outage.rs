//! Failures that fail every request for a while: the database out of reach, the disk full.
//! Each is an [`Outage`], logged when it begins, at most once a minute while it lasts (with
//! how many operations it failed meanwhile), and once when it ends, instead of once per failed
//! request: on a full disk an operator wants one clear line, not thousands.
//!
//! The store reports to them from the one place every operation passes through
//! ([`observe`], called by both backends' `read` and `write`), and from its background tasks
//! (the SQLite checkpointer, PostgreSQL's `LISTEN` connection).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use crate::error::{StoreError, StoreResult};

/// The database cannot be reached (PostgreSQL stopped, connections refused or lost).
pub static DATABASE_UNAVAILABLE: Outage = Outage::new(
    "database unavailable",
    "requests that need it answer 503 database_unavailable until it is back",
);

/// The disk holding the database (or PostgreSQL's) is full.
pub static STORAGE_FULL: Outage = Outage::new(
    "storage full",
    "writes answer 503 storage_full and reads keep answering; free space and writes resume",
);

/// How often a lasting outage is logged again; also the least time between two lines about
/// the beginning of one (an outage that keeps ending and beginning again, as when only some
/// operations fail, is counted, not logged each time).
const REPEAT_EVERY_MICROS: i64 = 60_000_000;

/// How long without a failure before a success ends an outage. On a full disk a write that
/// changes nothing (the detector finding nothing to do) still commits, and would otherwise end
/// the outage between two refused writes.
const QUIET_MICROS: i64 = 2_000_000;

/// One kind of outage: whether it is going on, since when, and what was logged of it.
pub struct Outage {
    what: &'static str,
    effect: &'static str,
    /// When it began (microseconds since the epoch); 0 while there is none.
    since: AtomicI64,
    /// When an operation last failed with it.
    last_failure: AtomicI64,
    last_logged: AtomicI64,
    /// Whether its beginning was logged (then so is its end).
    logged: AtomicBool,
    /// Failures since the last line about it.
    unlogged: AtomicU64,
}

impl Outage {
    const fn new(what: &'static str, effect: &'static str) -> Outage {
        Outage {
            what,
            effect,
            since: AtomicI64::new(0),
            last_failure: AtomicI64::new(0),
            last_logged: AtomicI64::new(i64::MIN / 2),
            logged: AtomicBool::new(false),
            unlogged: AtomicU64::new(0),
        }
    }

    /// Whether it is going on now.
    pub fn active(&self) -> bool {
        self.since.load(Ordering::Relaxed) != 0
    }

    /// An operation failed with it: logged if it begins now (unless a line about it was
    /// written less than a minute ago) or was last logged a minute ago.
    pub fn failed(&self, error: &dyn std::fmt::Display) {
        let now = faultline_core::time::now_micros();
        self.last_failure.store(now, Ordering::Relaxed);
        let last = self.last_logged.load(Ordering::Relaxed);
        let due = now - last >= REPEAT_EVERY_MICROS;
        if self.since.compare_exchange(0, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.logged.store(due, Ordering::Relaxed);
            if due {
                self.last_logged.store(now, Ordering::Relaxed);
                self.unlogged.store(0, Ordering::Relaxed);
                tracing::warn!(error = %error, "{}: {}", self.what, self.effect);
            } else {
                self.unlogged.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        if due && self.last_logged.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
            self.logged.store(true, Ordering::Relaxed);
            let failed = self.unlogged.swap(0, Ordering::Relaxed) + 1;
            let seconds = (now - self.since.load(Ordering::Relaxed)) / 1_000_000;
            tracing::warn!(error = %error, seconds, failed, "{} still: {}", self.what, self.effect);
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// An operation it would have failed, begun at `started` (microseconds since the epoch),
    /// succeeded: the outage, if any, is over, if nothing failed with it for [`QUIET_MICROS`].
    /// Not one begun before the outage: at its start, operations that got through just before
    /// it still end, and would end it at once.
    pub fn succeeded(&self, started: i64) {
        let since = self.since.load(Ordering::Relaxed);
        if since == 0 || started < since {
            return;
        }
        let now = faultline_core::time::now_micros();
        if now - self.last_failure.load(Ordering::Relaxed) < QUIET_MICROS {
            return;
        }
        if self.since.compare_exchange(since, 0, Ordering::AcqRel, Ordering::Relaxed).is_ok()
            && self.logged.swap(false, Ordering::Relaxed)
        {
            let seconds = (now - since) / 1_000_000;
            let failed = self.unlogged.swap(0, Ordering::Relaxed);
            tracing::info!(seconds, failed_since_last_line = failed, "{}: over", self.what);
        }
    }
}

/// Report what the `result` of an operation begun at `started` (see [`now`]) says about the
/// outages: a read that succeeds shows the database reachable; only a write that succeeds
/// shows the disk has room again.
pub(crate) fn observe<T>(result: &StoreResult<T>, write: bool, started: i64) {
    match result {
        Ok(_) => {
            DATABASE_UNAVAILABLE.succeeded(started);
            if write {
                STORAGE_FULL.succeeded(started);
            }
        }
        Err(err) => report(err),
    }
}

/// Log a failure of work that will be retried, unless it is an outage's, which is logged as
/// one instead of at every retry (count it first with [`report`] if no `read` or `write` of
/// the store did).
pub fn warn_unless_outage(err: &StoreError, what: &str) {
    if err.is_outage() {
        tracing::debug!(error = %err, "{what}");
    } else {
        tracing::warn!(error = %err, "{what}");
    }
}

/// The time an operation begins, for [`observe`].
pub(crate) fn now() -> i64 {
    faultline_core::time::now_micros()
}

/// Count `err` against its outage, if it is one.
pub(crate) fn report(err: &StoreError) {
    match err {
        StoreError::Unavailable(_) => DATABASE_UNAVAILABLE.failed(err),
        StoreError::StorageFull(_) => STORAGE_FULL.failed(err),
        _ => {}
    }
}

impl StoreError {
    /// Whether this is an outage's failure (already logged by the store, see [`crate::outage`]):
    /// callers that retry need not log it again.
    pub fn is_outage(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::StorageFull(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_begins_at_its_first_failure_and_ends_at_a_later_success_after_a_quiet_spell() {
        let outage = Outage::new("test outage", "nothing works");
        assert!(!outage.active());
        outage.failed(&"refused");
        assert!(outage.active());
        assert!(outage.logged.load(Ordering::Relaxed), "its beginning is logged");
        outage.failed(&"refused again");
        assert_eq!(outage.unlogged.load(Ordering::Relaxed), 1, "the second failure is counted, not logged");
        outage.succeeded(now() - 60_000_000);
        assert!(outage.active(), "an operation begun before the outage does not end it");
        outage.succeeded(now());
        assert!(outage.active(), "a success right after a failure does not end it");
        // As if the last failure were long ago.
        outage.last_failure.store(now() - QUIET_MICROS - 1, Ordering::Relaxed);
        outage.succeeded(now());
        assert!(!outage.active());
        outage.failed(&"refused");
        assert!(outage.active(), "a new outage begins");
        assert!(
            !outage.logged.load(Ordering::Relaxed),
            "within a minute of the last line: counted, not logged"
        );
    }
}
