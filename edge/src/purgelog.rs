//! Which cache keys were purged recently, so a fill that started before a purge is never
//! admitted after it.
//!
//! A request notes the purge epoch when it starts; when its upstream response arrives, the
//! proxy asks whether its key was purged since then. If it was, the response still goes to this
//! client (it asked before the purge), but it is not cached: otherwise an old body fetched
//! before a delete could be admitted after the delete's purge, and later readers would see it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use moka::sync::Cache;

/// How long purges are remembered: longer than any upstream fetch is allowed to take.
const MEMORY: Duration = Duration::from_secs(300);
/// Most prefix purges remembered; older ones fold into the "everything" epoch.
const MAX_PREFIXES: usize = 10_000;

/// The purge log.
#[derive(Debug)]
pub struct PurgeLog {
    epoch: AtomicU64,
    all: AtomicU64,
    exact: Cache<String, u64>,
    prefixes: Mutex<VecDeque<(String, u64)>>,
}

impl Default for PurgeLog {
    fn default() -> Self {
        PurgeLog {
            epoch: AtomicU64::new(1),
            all: AtomicU64::new(0),
            exact: Cache::builder()
                .max_capacity(1_000_000)
                .time_to_live(MEMORY)
                .build(),
            prefixes: Mutex::new(VecDeque::new()),
        }
    }
}

impl PurgeLog {
    /// The current epoch; a request records it before it looks the cache up.
    pub fn current(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    fn next(&self) -> u64 {
        self.epoch.fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Notes a purge of one primary key.
    pub fn exact(&self, key: &str) {
        let e = self.next();
        self.exact.insert(key.to_owned(), e);
    }

    /// Notes a purge of every key starting with `prefix`.
    pub fn prefix(&self, prefix: &str) {
        let e = self.next();
        let mut p = self
            .prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.push_back((prefix.to_owned(), e));
        while p.len() > MAX_PREFIXES {
            if let Some((_, old)) = p.pop_front() {
                // Forgetting a prefix purge must stay safe: treat everything as purged then.
                self.all.fetch_max(old, Ordering::AcqRel);
            }
        }
    }

    /// Notes a purge of everything.
    pub fn all(&self) {
        let e = self.next();
        self.all.fetch_max(e, Ordering::AcqRel);
    }

    /// True if `key` was purged after epoch `since`.
    pub fn purged_since(&self, key: &str, since: u64) -> bool {
        if self.all.load(Ordering::Acquire) > since {
            return true;
        }
        if self.exact.get(key).is_some_and(|e| e > since) {
            return true;
        }
        let p = self
            .prefixes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        p.iter()
            .rev()
            .take_while(|(_, e)| *e > since)
            .any(|(pre, _)| key.starts_with(pre.as_str()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purges_after_the_start_are_seen() {
        let log = PurgeLog::default();
        let start = log.current();
        assert!(!log.purged_since("/v1/AUTH_a/c/o", start));
        log.exact("/v1/AUTH_a/c/other");
        assert!(!log.purged_since("/v1/AUTH_a/c/o", start));
        log.prefix("/v1/AUTH_a/c/o#");
        assert!(!log.purged_since("/v1/AUTH_a/c/o", start));
        assert!(log.purged_since("/v1/AUTH_a/c/o#s1", start));
        log.exact("/v1/AUTH_a/c/o");
        assert!(log.purged_since("/v1/AUTH_a/c/o", start));
        let later = log.current();
        assert!(!log.purged_since("/v1/AUTH_a/c/o", later));
        log.all();
        assert!(log.purged_since("/anything", later));
    }
}
