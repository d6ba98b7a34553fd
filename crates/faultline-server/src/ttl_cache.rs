//! A small per-replica cache whose entries live at most a fixed time. It holds credential
//! records (API keys, access-token rows) so that a read costs no database round trip, while a
//! revocation made on any replica still takes effect everywhere within that time.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// Entries kept before stale ones are swept.
const SWEEP_AT: usize = 10_000;

pub struct TtlCache<V> {
    ttl: Duration,
    clock: Arc<dyn Clock>,
    entries: Mutex<HashMap<String, (Instant, V)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        TtlCache { ttl, clock, entries: Mutex::new(HashMap::new()) }
    }

    /// The value cached under `key`, if it is younger than the TTL.
    pub fn get(&self, key: &str) -> Option<V> {
        let now = self.clock.now();
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.get(key).filter(|(at, _)| now.duration_since(*at) < self.ttl).map(|(_, v)| v.clone())
    }

    pub fn insert(&self, key: &str, value: V) {
        let now = self.clock.now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= SWEEP_AT {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| now.duration_since(*at) < ttl);
        }
        entries.insert(key.to_owned(), (now, value));
    }

    /// Forget `key` now (this replica learns of a revocation at once).
    pub fn remove(&self, key: &str) {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::clock::ManualClock;

    #[test]
    fn entries_expire_and_can_be_removed() {
        let clock = Arc::new(ManualClock::new());
        let advance = |by: Duration| clock.advance(by);
        let cache = TtlCache::new(Duration::from_millis(50), clock.clone());
        cache.insert("a", 1);
        assert_eq!(cache.get("a"), Some(1));
        cache.remove("a");
        assert_eq!(cache.get("a"), None);
        cache.insert("b", 2);
        advance(Duration::from_millis(49));
        assert_eq!(cache.get("b"), Some(2), "younger than the TTL");
        advance(Duration::from_millis(1));
        assert_eq!(cache.get("b"), None, "as old as the TTL");
        cache.insert("b", 3);
        assert_eq!(cache.get("b"), Some(3), "stored again, young again");
    }
}
