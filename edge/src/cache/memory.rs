//! The memory tier: complete small entries in a moka cache bounded by bytes (TinyLFU admission
//! and eviction), bodies held as `Bytes` so a hit hands out slices without copying.

use std::sync::Arc;

use bytes::Bytes;
use moka::ops::compute::Op;
use pingora::cache::key::HashBinary;

pub(crate) struct MemEntry {
    /// Generation of the disk entry this was filled or promoted from (see `disk.rs`).
    pub gen: u64,
    pub internal: Vec<u8>,
    pub header: Vec<u8>,
    pub body: Bytes,
    pub primary: Arc<str>,
    /// This version decoded for the hit fast path, on first use (`hot.rs`).
    pub hot: std::sync::OnceLock<Option<Arc<super::hot::HotEntry>>>,
}

impl MemEntry {
    pub fn weight(&self) -> u64 {
        (self.body.len() + self.internal.len() + self.header.len()) as u64
    }
}

pub(crate) struct MemoryTier {
    cache: moka::sync::Cache<HashBinary, Arc<MemEntry>>,
    /// `None` when the tier is disabled (`memory_bytes` = 0).
    object_max: Option<u64>,
    /// Bytes inserted since moka last applied its pending evictions.
    unsettled: std::sync::atomic::AtomicU64,
    /// Past this many unsettled bytes an insert applies them (a slice of the capacity).
    settle_every: u64,
}

impl MemoryTier {
    pub fn new(capacity: u64, object_max: u64) -> MemoryTier {
        let cache = moka::sync::Cache::builder()
            .max_capacity(capacity)
            // moka weights are u32; entries are at most `object_max` plus a header, and one
            // saturated weight only makes an (absurdly configured) entry look smaller.
            .weigher(|_: &HashBinary, e: &Arc<MemEntry>| {
                u32::try_from(e.weight()).unwrap_or(u32::MAX)
            })
            .build();
        MemoryTier {
            cache,
            object_max: (capacity > 0).then_some(object_max),
            unsettled: std::sync::atomic::AtomicU64::new(0),
            settle_every: (capacity / 16).max(1),
        }
    }

    /// Whether a body of this length belongs in the memory tier.
    pub fn admits(&self, body_len: u64) -> bool {
        self.object_max.is_some_and(|max| body_len <= max)
    }

    pub fn get(&self, hash: &HashBinary) -> Option<Arc<MemEntry>> {
        self.cache.get(hash)
    }

    pub fn contains(&self, hash: &HashBinary) -> bool {
        self.cache.contains_key(hash)
    }

    /// Inserts an entry. moka applies evictions in batches, so a burst of inserts (a video
    /// streaming slices) could overshoot the byte bound by far; once a sixteenth of the
    /// capacity was inserted unsettled, this applies the pending evictions first.
    pub fn insert(&self, hash: HashBinary, entry: MemEntry) {
        use std::sync::atomic::Ordering;
        let weight = entry.weight();
        self.cache.insert(hash, Arc::new(entry));
        let unsettled = self.unsettled.fetch_add(weight, Ordering::AcqRel) + weight;
        if unsettled >= self.settle_every {
            self.unsettled.store(0, Ordering::Release);
            self.cache.run_pending_tasks();
        }
    }

    pub fn remove(&self, hash: &HashBinary) -> Option<Arc<MemEntry>> {
        self.cache.remove(hash)
    }

    /// Removes the entry only if it is still generation `gen`.
    pub fn remove_if_gen(&self, hash: &HashBinary, gen: u64) {
        self.cache.entry(*hash).and_compute_with(|cur| match cur {
            Some(e) if e.value().gen == gen => Op::Remove,
            _ => Op::Nop,
        });
    }

    /// Replaces the meta of an existing entry, atomically with respect to a concurrent remove
    /// (so a purge can never be undone by a revalidation that raced it).
    pub fn rewrite_meta(
        &self,
        hash: &HashBinary,
        rewrite: impl FnOnce(&MemEntry) -> Option<(Vec<u8>, Vec<u8>)>,
    ) -> bool {
        let mut updated = false;
        self.cache.entry(*hash).and_compute_with(|cur| {
            let Some(cur) = cur else { return Op::Nop };
            let old = cur.into_value();
            match rewrite(&old) {
                Some((internal, header)) => {
                    updated = true;
                    Op::Put(Arc::new(MemEntry {
                        gen: old.gen,
                        internal,
                        header,
                        body: old.body.clone(),
                        primary: old.primary.clone(),
                        hot: std::sync::OnceLock::new(),
                    }))
                }
                None => Op::Nop,
            }
        });
        updated
    }

    pub fn keys(&self) -> Vec<HashBinary> {
        self.cache.iter().map(|(k, _)| *k).collect()
    }

    /// Entry count without running moka's pending maintenance (may lag).
    pub fn approx_entries(&self) -> u64 {
        self.cache.entry_count()
    }

    /// `(bytes, entries)`, after applying pending moka maintenance so the numbers are current.
    pub fn stats(&self) -> (u64, u64) {
        self.cache.run_pending_tasks();
        (self.cache.weighted_size(), self.cache.entry_count())
    }
}
