//! The cache lock handed to pingora: its own [`CacheLock`], plus one re-check of the storage
//! before a request is allowed to become the writer.
//!
//! # Why
//!
//! pingora decides who fetches a missing key in two steps that are not atomic: it looks the
//! key up in the storage, and on a miss it calls [`CacheKeyLock::lock`], which makes the caller
//! the writer if no lock is held for the key. Because [`super::TieredStorage`] supports
//! streaming partial writes, the writer releases its lock (as `Done`) as soon as its fill is
//! registered, at response-header time, and the key leaves the lock table. So a request whose
//! lookup ran just *before* the fill became visible, and whose `lock()` runs just *after* the
//! release, finds no lock and becomes a second writer: a second origin fetch of the same object
//! while the first is still streaming. Our lookup makes that window wide, since after checking
//! the fill registry it waits for a blocking-pool hop to check the disk tier (it was observed
//! at ~3 ms on a loaded node, enough for 1 in 50 concurrent cold requests to refetch).
//!
//! # The fix
//!
//! [`FillAwareLock::lock`] is pingora's lock with a double check: once a request holds a fresh
//! write permit for a miss, it asks the storage whether a lookup would now find something (a
//! fill in progress or a committed entry). If so it gives the permit back as `Done` (waking
//! anyone who queued behind it) and returns an already-released read lock, so pingora's usual
//! "lock released, look up again" path serves the request from the fill. This closes the race
//! rather than narrowing it: the writer registers its fill *before* it releases, and this check
//! runs *after* the permit was granted, i.e. after that release; a fill leaves the registry
//! only in the same critical section that commits it to a tier.
//!
//! Only plain misses are re-checked (`stale_writer == false`). A stale writer found an entry
//! on purpose and must revalidate it. A request that found an entry but forced a miss (a
//! `cache_hit_filter` returning `ForceMiss`, which the edge does not use) would be bounced
//! back until pingora's lock retry limit and then go upstream uncached.

use std::time::Duration;

use http::Extensions;
use pingora::cache::key::CacheHashKey;
use pingora::cache::lock::{CacheKeyLock, CacheLock, LockStatus, Locked, ReadLock, WritePermit};
use pingora::cache::trace::Span;
use pingora::cache::CacheKey;

use super::TieredStorage;

/// pingora's [`CacheLock`] that will not elect a writer for a key the storage already shows
/// (see the module docs). Hand it to `HttpCache::enable` as `&'static` (e.g. via `Box::leak`).
pub struct FillAwareLock {
    inner: CacheLock,
    storage: &'static TieredStorage,
    age_timeout: Duration,
}

impl FillAwareLock {
    /// A lock over `storage`; `age_timeout` is pingora's (how long a writer may hold a lock
    /// before waiting readers give up on it).
    pub fn new(storage: &'static TieredStorage, age_timeout: Duration) -> FillAwareLock {
        FillAwareLock {
            inner: CacheLock::new(age_timeout),
            storage,
            age_timeout,
        }
    }

    /// A read lock that is already released with `Done`: waiting on it returns at once and
    /// pingora looks the key up again.
    fn look_again(&self) -> ReadLock {
        let (mut permit, stub) = WritePermit::new(self.age_timeout, false, Extensions::new());
        let read = stub.read_lock();
        permit.unlock(LockStatus::Done);
        read
    }
}

impl CacheKeyLock for FillAwareLock {
    fn lock(&self, key: &CacheKey, stale_writer: bool) -> Locked {
        match self.inner.lock(key, stale_writer) {
            Locked::Write(permit)
                if !stale_writer && self.storage.inner.shows(&key.combined_bin()) =>
            {
                // The lookup that led here missed a fill that became visible before this
                // permit was granted: follow that fill instead of fetching again.
                self.inner.release(key, permit, LockStatus::Done);
                Locked::Read(self.look_again())
            }
            locked => locked,
        }
    }

    fn release(&self, key: &CacheKey, permit: WritePermit, reason: LockStatus) {
        self.inner.release(key, permit, reason);
    }

    fn trace_lock_wait(&self, span: &mut Span, read_lock: &ReadLock, lock_status: LockStatus) {
        self.inner.trace_lock_wait(span, read_lock, lock_status);
    }

    fn custom_lock_status(&self, custom_no_cache: &'static str) -> LockStatus {
        self.inner.custom_lock_status(custom_no_cache)
    }
}
