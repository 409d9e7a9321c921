//! Tiered pingora-cache storage: a memory tier over a disk tier.
//!
//! pingora-cache ships no production [`Storage`](pingora::cache::storage::Storage) (its `MemCache` is for tests), so this is ours.
//! [`TieredStorage`] is handed to `HttpCache::enable` as `&'static` (via `Box::leak`).
//!
//! # Design
//!
//! - **Disk tier** (`disk.rs`, format in `format.rs`): every committed entry is a pair of files,
//!   `<xx>/<combined-hash>.meta` (versioned record: magic, version, the two `CacheMeta`
//!   serialize parts, the primary key string, a checksum) and `<combined-hash>.body` (raw).
//!   An in-memory index (hash → size, generation, primary key; LRU order) bounds the tier by
//!   `disk_bytes`; eviction deletes the files. On [`TieredStorage::open`] the index is rebuilt
//!   from the `.meta` files, so the cache survives a restart; corrupt, truncated or orphaned
//!   files and leftover temp files are removed.
//! - **Memory tier** (`memory.rs`): a moka cache bounded by bytes (weight = body + meta,
//!   TinyLFU), holding complete entries whose body is at most `memory_object_max` as `Bytes`,
//!   so a hit is a zero-copy slice. It is filled when a small fill commits and when a small
//!   disk hit is read (promotion).
//! - **Fills** (`fill.rs`): a miss handler writes the body to a temp file with positional
//!   writes and publishes the byte count on a watch channel. While it runs, `lookup` returns a
//!   partial hit that reads the temp file as it grows (and `lookup_streaming_write` finds the
//!   same fill by its tag), which is what lets pingora's cache lock release waiters at header
//!   time. `finish()` syncs the body, writes the `.meta` and renames both into place; a miss
//!   handler dropped before that removes its temp file, and readers that had not received the
//!   whole body get an error rather than a body that looks complete.
//! - **Lookup order**: fill in progress, then memory, then disk.
//! - **Request collapsing** (`fill_lock.rs`): pingora releases its cache lock as soon as a
//!   fill is registered, so a request whose lookup just missed the fill could become a second
//!   writer; [`FillAwareLock`] re-checks the storage before electing a writer. Use it as the
//!   cache lock with this storage.
//! - **Purge by primary key / prefix** (`index.rs`): an index from the primary key string to
//!   the combined hashes (variances) stored under it. Fills register there before they can
//!   commit, so a purge never misses an entry; hashes whose entries were evicted are pruned
//!   on disk eviction and by a periodic sweep.
//!
//! Races are settled by one rule: an entry is removed disk tier first, memory tier second, and
//! every write that could resurrect it (fill commit, promotion, meta rewrite) either runs under
//! the fill registry lock that purges also take, is a compare-and-set on the entry's
//! generation, or re-checks the disk tier after writing the memory tier.
//!
//! # Limits
//!
//! - Unix only (positional reads and writes on shared descriptors).
//! - Temp files of fills in progress are not counted against `disk_bytes`; a single body is
//!   refused once it exceeds what either tier could hold (set pingora's
//!   `max_file_size` below [`TieredStorage::max_object_bytes`] so such responses are not
//!   admitted at all: with streaming partial writes pingora fails a request whose cache write
//!   fails).
//! - A range served from a fill in progress trusts the stored header's `Content-Length` (as
//!   pingora's range filter does): if the fill ends short, the range ends short.
//! - The memory tier may briefly exceed `memory_bytes` (moka applies evictions in batches), and
//!   it keeps small entries the disk tier evicted; the disk tier may exceed `disk_bytes` by the
//!   few bytes a rewritten meta grew.
//! - Open reads every `.meta` file: start-up time grows with the number of entries. Two
//!   processes must not share a `disk_dir` (there is no lock file).
//! - Entries carry no [`pingora::cache::eviction::CacheEntryId`]; eviction is done by the
//!   tiers themselves, so no pingora eviction manager is needed.

mod disk;
mod fill;
mod fill_lock;
mod format;
mod hit;
mod hot;
mod index;
mod memory;
mod storage;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::{Error, ErrorType};

pub use fill_lock::FillAwareLock;
pub use hit::{CacheHit, CacheTier};
pub use hot::HotEntry;

use disk::{Commit, DiskTier, Removed};
use fill::Fill;
use index::PrimaryIndex;
use memory::{MemEntry, MemoryTier};

/// Sizes and location of the two tiers.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Memory tier capacity in bytes (body + serialized meta of each entry).
    pub memory_bytes: u64,
    /// Largest body kept in the memory tier; larger bodies live on disk only.
    pub memory_object_max: u64,
    /// Directory of the disk tier; created if missing. Nothing else should write there.
    pub disk_dir: PathBuf,
    /// Disk tier capacity in bytes (body + meta files of committed entries).
    pub disk_bytes: u64,
}

/// A snapshot of the tiers' sizes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Bytes held by the memory tier.
    pub memory_bytes: u64,
    /// Entries in the memory tier.
    pub memory_entries: u64,
    /// Bytes of committed entries on disk.
    pub disk_bytes: u64,
    /// Committed entries on disk.
    pub disk_entries: u64,
    /// Miss handlers currently writing a body.
    pub fills_in_progress: u64,
}

/// Errors of the cache storage. Inside pingora they travel as the cause of a
/// `pingora::Error` (downcast it to inspect).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file system operation failed.
    #[error("cache cannot {action} {path}: {source}")]
    Io {
        /// What was being done (`"write"`, `"rename"`, …).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A body is larger than any tier can hold.
    #[error("cache object of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Bytes written (or to be committed) so far.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The fill being read was abandoned before its body was complete.
    #[error("cache fill aborted before the body was complete")]
    FillAborted,
    /// An earlier write of this fill was cancelled mid-way, so the fill cannot continue.
    #[error("cache fill interrupted by a cancelled write")]
    FillInterrupted,
    /// Body data was written after the end of the body.
    #[error("cache body written after its end")]
    WriteAfterEof,
    /// A seek started at or past the end of the body.
    #[error("cache seek to {start} is past the body's {len} bytes")]
    SeekOutOfRange {
        /// Requested start offset.
        start: u64,
        /// Body length.
        len: u64,
    },
    /// The tokio runtime is shutting down and refused blocking file work.
    #[error("cache file work refused: runtime shutting down")]
    RuntimeShutdown,
}

pub(crate) fn to_pingora(e: CacheError) -> Box<Error> {
    let etype = match &e {
        CacheError::Io { action, .. } if action.starts_with("read") => ErrorType::FileReadError,
        CacheError::Io { action, .. } if action.starts_with("open") => ErrorType::FileOpenError,
        CacheError::Io { action, .. } if action.starts_with("create") => ErrorType::FileCreateError,
        CacheError::Io { .. } => ErrorType::FileWriteError,
        _ => ErrorType::InternalError,
    };
    Error::because(etype, "tiered cache storage", e)
}

/// Locks a mutex, recovering from poisoning: every critical section here leaves its data
/// consistent at each step, and a CDN node should keep serving rather than cascade a panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Runs blocking file work on tokio's blocking pool.
pub(crate) async fn blocking<T, F>(f: F) -> Result<T, CacheError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, CacheError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(CacheError::RuntimeShutdown),
    }
}

/// Generation of the stored entry a `CacheMeta` was read from, carried in the meta's
/// extensions (pingora keeps them through revalidation) so `update_meta` never writes an old
/// entry's headers onto a newer body.
#[derive(Debug, Clone, Copy)]
struct EntryGen(u64);

/// State shared by the storage, its miss handlers and its blocking tasks.
pub(crate) struct Inner {
    memory: MemoryTier,
    disk: DiskTier,
    /// Fills in progress by hash (usually one; more if pingora runs concurrent misses).
    /// Lock order: `index`, then `fills`, then the disk tier's index.
    fills: Mutex<HashMap<HashBinary, Vec<Arc<Fill>>>>,
    index: Mutex<PrimaryIndex>,
    /// The largest body either tier could hold.
    max_object: u64,
}

impl Inner {
    pub(crate) fn max_object_bytes(&self) -> u64 {
        self.max_object
    }

    /// Makes a new fill visible to lookups and purges, atomically for both (a purge that
    /// takes the index after this finds the fill; one before it never sees the hash).
    fn register_fill(&self, fill: Arc<Fill>) {
        let mut index = lock(&self.index);
        let (primary, hash) = (fill.primary.clone(), fill.hash);
        lock(&self.fills).entry(hash).or_default().push(fill);
        index.add(&primary, hash);
        self.maybe_sweep(&mut index);
    }

    /// Removes a fill that will not commit from the registry (and its hash from the primary
    /// index if nothing else stores it).
    pub(crate) fn unregister_fill(&self, fill: &Fill) {
        if unregister(&mut lock(&self.fills), fill) {
            self.prune_index([(&*fill.primary, &fill.hash)]);
        }
    }

    /// The newest fill of `hash` that is neither cancelled by a purge nor aborted (an
    /// aborted one is about to leave the registry; a reader would only get an error).
    fn latest_fill(&self, hash: &HashBinary) -> Option<Arc<Fill>> {
        lock(&self.fills).get(hash).and_then(|list| {
            list.iter()
                .rev()
                .find(|f| !f.is_cancelled() && *f.state.borrow() != fill::FillState::Aborted)
                .cloned()
        })
    }

    /// Whether a lookup of `hash` would find something right now: a fill readers may follow
    /// or a committed entry. In-memory state only, no file I/O ([`FillAwareLock`] asks this
    /// while electing a writer). The fill registry is checked first: a fill leaves it in the
    /// critical section that stores it in the tiers, so an entry committing meanwhile is seen
    /// either as a fill or in a tier.
    fn shows(&self, hash: &HashBinary) -> bool {
        self.latest_fill(hash).is_some() || self.memory.contains(hash) || self.disk.contains(hash)
    }

    fn fill_by_id(&self, hash: &HashBinary, id: u64) -> Option<Arc<Fill>> {
        lock(&self.fills)
            .get(hash)
            .and_then(|list| list.iter().find(|f| f.id == id).cloned())
    }

    /// Commits a finished fill: runs on the blocking pool. Returns the entry's weight.
    ///
    /// Whatever happens, before this returns the temp body is renamed into place or removed
    /// and the fill has left the registry, so the miss handler has nothing left to clean up
    /// (which matters when its `finish` future is dropped while this runs).
    pub(crate) fn commit_fill(
        &self,
        fill: &Fill,
        body_len: u64,
        mem_body: Option<Bytes>,
    ) -> Result<usize, CacheError> {
        let root = self.disk.root().to_path_buf();
        let meta_tmp = format::temp_meta_path(&root, &fill.hash, fill.id);
        let prepared = fill
            .file
            .sync_all()
            .map_err(|source| CacheError::Io {
                action: "sync",
                path: fill.path.clone(),
                source,
            })
            .and_then(|()| {
                let bytes = format::MetaRecord {
                    hash: fill.hash,
                    body_len,
                    internal: fill.internal.clone(),
                    header: fill.header.clone(),
                    primary: fill.primary.to_string(),
                }
                .encode();
                disk::write_synced(&meta_tmp, &bytes).map(|()| bytes.len() as u64)
            });
        let meta_len = match prepared {
            Ok(n) => n,
            Err(e) => {
                disk::remove_quietly(&meta_tmp);
                disk::remove_quietly(&fill.path);
                self.unregister_fill(fill);
                return Err(e);
            }
        };
        let mut removed = Vec::new();
        let mut stored = false;
        let mut disk_error = None;
        let cancelled;
        {
            // Held across the disk commit and the memory insert: a purge cancels fills under
            // this lock before it removes from the tiers, so it either stops this commit or
            // comes after it and removes what it stored.
            let mut fills = lock(&self.fills);
            cancelled = fill.is_cancelled();
            if !cancelled {
                let commit = Commit {
                    hash: fill.hash,
                    gen: fill.id,
                    primary: fill.primary.clone(),
                    body_tmp: &fill.path,
                    meta_tmp: &meta_tmp,
                    body_len,
                    meta_len,
                };
                match self.disk.commit(commit) {
                    Ok(r) => {
                        removed = r;
                        stored = true;
                    }
                    Err(e) => disk_error = Some(e),
                }
                match mem_body.filter(|_| self.memory.admits(body_len)) {
                    Some(body) => {
                        self.memory.insert(
                            fill.hash,
                            MemEntry {
                                gen: fill.id,
                                internal: fill.internal.clone(),
                                header: fill.header.clone(),
                                body,
                                primary: fill.primary.clone(),
                                hot: std::sync::OnceLock::new(),
                            },
                        );
                        stored = true;
                    }
                    // A small older version in memory would shadow the new body (memory is
                    // looked up before disk).
                    None => {
                        self.memory.remove(&fill.hash);
                    }
                }
            }
            unregister(&mut fills, fill);
        }
        if cancelled {
            // Unlinked outside the lock: lookups take it, and a large body takes a while.
            disk::remove_quietly(&meta_tmp);
            disk::remove_quietly(&fill.path);
        }
        removed.iter_mut().for_each(Removed::discard);
        let mut gone: Vec<(&str, &HashBinary)> =
            removed.iter().map(|r| (&*r.primary, &r.hash)).collect();
        if !stored {
            gone.push((&*fill.primary, &fill.hash));
        }
        self.prune_index(gone);
        match disk_error {
            Some(e) if !stored => Err(e),
            Some(e) => {
                tracing::warn!(error = %e, "cache: entry kept in memory only");
                Ok(usize::try_from(body_len + meta_len).unwrap_or(usize::MAX))
            }
            None => Ok(usize::try_from(body_len + meta_len).unwrap_or(usize::MAX)),
        }
    }

    fn is_live(&self, hash: &HashBinary) -> bool {
        lock(&self.fills).contains_key(hash)
            || self.memory.contains(hash)
            || self.disk.contains(hash)
    }

    /// Drops index entries for hashes that are no longer stored anywhere, checked under the
    /// index lock. Safe against concurrent writers: a fill registers (index, then fill
    /// registry) before it can store and leaves the registry only after storing, so its hash
    /// is live throughout; promotions and meta rewrites only touch hashes already stored and
    /// undo themselves if the disk entry vanished.
    fn prune_index<'a>(&self, gone: impl IntoIterator<Item = (&'a str, &'a HashBinary)>) {
        let mut gone = gone.into_iter().peekable();
        if gone.peek().is_none() {
            return;
        }
        let mut index = lock(&self.index);
        for (primary, hash) in gone {
            if !self.is_live(hash) {
                index.remove(primary, hash);
            }
        }
    }

    /// Sweeps dead hashes (memory-tier evictions are not reported) once they could outnumber
    /// live ones; amortized O(1) per fill.
    fn maybe_sweep(&self, index: &mut PrimaryIndex) {
        let (_, disk_entries) = self.disk.stats();
        let live = disk_entries + self.memory.approx_entries() + lock(&self.fills).len() as u64;
        if index.len() as u64 > 2 * live + 1024 {
            index.retain(|h| self.is_live(h));
        }
    }

    /// Removes `hash` from every tier (disk first, see the module docs) and cancels its fills.
    /// Returns the primary key if anything was removed.
    fn purge_hash(&self, hash: &HashBinary) -> Option<Arc<str>> {
        let mut primary = None;
        if let Some(list) = lock(&self.fills).get(hash) {
            for f in list {
                if f.cancel() {
                    primary = Some(f.primary.clone());
                }
            }
        }
        if let Some(p) = self.disk.remove(hash) {
            primary = Some(p);
        }
        if let Some(e) = self.memory.remove(hash) {
            primary = Some(e.primary.clone());
        }
        primary
    }

    fn purge_many(&self, hashes: impl IntoIterator<Item = HashBinary>) -> usize {
        hashes
            .into_iter()
            .filter(|h| self.purge_hash(h).is_some())
            .count()
    }
}

/// Removes `fill` from the registry; true if it was there.
fn unregister(fills: &mut HashMap<HashBinary, Vec<Arc<Fill>>>, fill: &Fill) -> bool {
    let Some(list) = fills.get_mut(&fill.hash) else {
        return false;
    };
    let before = list.len();
    list.retain(|f| f.id != fill.id);
    let found = list.len() != before;
    if list.is_empty() {
        fills.remove(&fill.hash);
    }
    found
}

/// The tiered storage. Hand it to pingora as `&'static` (e.g. via `Box::leak`).
pub struct TieredStorage {
    inner: Arc<Inner>,
}

impl TieredStorage {
    /// Opens the disk tier (creating `disk_dir`), rebuilds the index from the files there (so
    /// the cache survives restart), removes leftover temp files. Corrupt or truncated entries
    /// are removed and logged, never fatal.
    ///
    /// Blocking: reads every `.meta` file. Call it before starting the server.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the directory or its shard directories cannot be created or
    /// listed.
    pub fn open(cfg: CacheConfig) -> Result<TieredStorage, CacheError> {
        let (disk, primaries) = DiskTier::open(cfg.disk_dir, cfg.disk_bytes)?;
        let mut index = PrimaryIndex::default();
        for (primary, hash) in &primaries {
            index.add(primary, *hash);
        }
        let in_memory = cfg.memory_object_max.min(cfg.memory_bytes);
        Ok(TieredStorage {
            inner: Arc::new(Inner {
                memory: MemoryTier::new(cfg.memory_bytes, cfg.memory_object_max),
                disk,
                fills: Mutex::new(HashMap::new()),
                index: Mutex::new(index),
                max_object: cfg.disk_bytes.max(in_memory),
            }),
        })
    }

    /// Drops every entry (all tiers, all variances, any in-progress fill) whose `CacheKey`
    /// primary key string equals `primary`; returns how many were dropped (one per variance).
    ///
    /// Primary keys that are not UTF-8 are indexed by their lossy UTF-8 conversion.
    pub fn purge_primary(&self, primary: &str) -> usize {
        let hashes = lock(&self.inner.index).take_exact(primary);
        self.inner.purge_many(hashes)
    }

    /// Same as [`TieredStorage::purge_primary`] for every primary key string starting with
    /// `prefix`.
    pub fn purge_prefix(&self, prefix: &str) -> usize {
        let hashes = lock(&self.inner.index).take_prefix(prefix);
        self.inner.purge_many(hashes)
    }

    /// Drops everything; returns how many entries were dropped.
    pub fn purge_all(&self) -> usize {
        let mut hashes: HashSet<HashBinary> =
            lock(&self.inner.index).take_all().into_iter().collect();
        hashes.extend(self.inner.disk.keys());
        hashes.extend(self.inner.memory.keys());
        hashes.extend(lock(&self.inner.fills).keys().copied());
        self.inner.purge_many(hashes)
    }

    /// Current sizes of the tiers.
    pub fn stats(&self) -> CacheStats {
        let (memory_bytes, memory_entries) = self.inner.memory.stats();
        let (disk_bytes, disk_entries) = self.inner.disk.stats();
        let fills_in_progress = lock(&self.inner.fills)
            .values()
            .map(Vec::len)
            .sum::<usize>();
        CacheStats {
            memory_bytes,
            memory_entries,
            disk_bytes,
            disk_entries,
            fills_in_progress: fills_in_progress as u64,
        }
    }

    /// The largest body this storage accepts; set pingora's `max_file_size` at or below it.
    pub fn max_object_bytes(&self) -> u64 {
        self.inner.max_object_bytes()
    }
}
