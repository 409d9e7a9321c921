//! The disk tier: committed entries as `.meta` + `.body` file pairs, an in-memory LRU index
//! bounded by bytes, and the rebuild of that index from the directory on open.
//!
//! Every function here does blocking file I/O; async callers run them on the blocking pool.
//!
//! Invariant (enforced by taking the index lock around every rename and unlink of committed
//! files): while an entry is in the index, its `.meta` and `.body` files are the pair that was
//! committed together. Readers open both files under the same lock, so a concurrent commit,
//! eviction or purge can never hand them a new body with an old meta. An open file handle keeps
//! reading the old inode after a replace or unlink, so readers are never cut short.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;

use super::format::{self, FileKind, MetaDefect, MetaRecord};
use super::{lock, CacheError};

struct DiskEntry {
    /// Unique per commit, so a delayed reader or rewrite can tell a replaced entry apart.
    gen: u64,
    body_len: u64,
    meta_len: u64,
    primary: Arc<str>,
    /// Position in the LRU order (larger = more recently used).
    tick: u64,
}

impl DiskEntry {
    fn weight(&self) -> u64 {
        self.body_len.saturating_add(self.meta_len)
    }
}

#[derive(Default)]
struct DiskIndex {
    entries: HashMap<HashBinary, DiskEntry>,
    lru: BTreeMap<u64, HashBinary>,
    bytes: u64,
    next_tick: u64,
}

impl DiskIndex {
    fn insert(&mut self, hash: HashBinary, mut entry: DiskEntry) {
        self.remove(&hash);
        entry.tick = self.next_tick;
        self.next_tick += 1;
        self.lru.insert(entry.tick, hash);
        self.bytes = self.bytes.saturating_add(entry.weight());
        self.entries.insert(hash, entry);
    }

    fn remove(&mut self, hash: &HashBinary) -> Option<DiskEntry> {
        let entry = self.entries.remove(hash)?;
        self.lru.remove(&entry.tick);
        self.bytes = self.bytes.saturating_sub(entry.weight());
        Some(entry)
    }

    fn touch(&mut self, hash: &HashBinary) {
        if let Some(entry) = self.entries.get_mut(hash) {
            self.lru.remove(&entry.tick);
            entry.tick = self.next_tick;
            self.next_tick += 1;
            self.lru.insert(entry.tick, *hash);
        }
    }

    fn pop_lru(&mut self) -> Option<(HashBinary, DiskEntry)> {
        let (_, hash) = self.lru.pop_first()?;
        let entry = self.remove(&hash)?;
        Some((hash, entry))
    }
}

/// A loaded entry's primary key and hash, for the primary index.
pub(crate) type Indexed = (Arc<str>, HashBinary);

/// An entry that left the disk tier (evicted or purged).
pub(crate) struct Removed {
    pub hash: HashBinary,
    pub primary: Arc<str>,
    /// The body, renamed aside; unlink it with [`Removed::discard`] once no lock is held.
    trash: Option<PathBuf>,
}

impl Removed {
    /// Unlinks the body. Kept out of every lock: freeing a large file's blocks takes a while.
    pub fn discard(&mut self) {
        if let Some(t) = self.trash.take() {
            remove_quietly(&t);
        }
    }
}

/// A committed entry opened for reading.
pub(crate) struct Opened {
    pub gen: u64,
    pub record: MetaRecord,
    pub meta_len: u64,
    pub body: File,
}

/// A finished fill, ready to be renamed into place.
pub(crate) struct Commit<'a> {
    pub hash: HashBinary,
    pub gen: u64,
    pub primary: Arc<str>,
    pub body_tmp: &'a Path,
    pub meta_tmp: &'a Path,
    pub body_len: u64,
    pub meta_len: u64,
}

pub(crate) struct DiskTier {
    root: PathBuf,
    capacity: u64,
    index: Mutex<DiskIndex>,
    /// Source of fill ids and entry generations (also used in temp and trash file names).
    ids: AtomicU64,
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CacheError + 'a {
    move |source| CacheError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Removes a file, treating "already gone" as success: every caller only needs it absent.
pub(crate) fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cache: cannot remove file");
        }
    }
}

/// Writes `bytes` to a new file and syncs it, so a rename after this never exposes a torn file.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), CacheError> {
    let mut f = File::create(path).map_err(io_err("create", path))?;
    f.write_all(bytes).map_err(io_err("write", path))?;
    f.sync_all().map_err(io_err("sync", path))
}

impl DiskTier {
    /// Opens `root`, rebuilding the index from the `.meta` files found there.
    ///
    /// Leftover temp and trash files are removed; a `.meta` that does not decode, does not
    /// match its name, or whose body is missing or of the wrong size is removed with its body
    /// (a cache can always refetch); bodies without a valid meta are removed. Entries are
    /// ordered for LRU by the meta file's mtime, and the oldest are evicted if the directory
    /// holds more than `capacity` bytes (e.g. after the capacity was lowered).
    ///
    /// Returns the tier and the (primary, hash) pairs of the loaded entries.
    pub fn open(root: PathBuf, capacity: u64) -> Result<(DiskTier, Vec<Indexed>), CacheError> {
        fs::create_dir_all(&root).map_err(io_err("create directory", &root))?;
        let mut metas = Vec::new();
        let mut bodies = HashSet::new();
        for shard in format::shard_names() {
            let dir = root.join(shard);
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
            for dirent in fs::read_dir(&dir).map_err(io_err("read directory", &dir))? {
                let dirent = dirent.map_err(io_err("read directory", &dir))?;
                let path = dirent.path();
                let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                match format::classify(name) {
                    FileKind::Meta(hash) => metas.push((hash, path)),
                    FileKind::Body(hash) => {
                        bodies.insert(hash);
                    }
                    FileKind::Leftover => remove_quietly(&path),
                    FileKind::Foreign => {
                        tracing::debug!(path = %path.display(), "cache: ignoring foreign file");
                    }
                }
            }
        }

        let mut loaded = Vec::with_capacity(metas.len());
        for (hash, path) in metas {
            match load(&root, hash, &path) {
                Ok(found) => loaded.push(found),
                Err(why) => {
                    tracing::warn!(path = %path.display(), %why, "cache: dropping bad entry");
                    remove_quietly(&path);
                    remove_quietly(&format::body_path(&root, &hash));
                }
            }
        }
        let valid: HashSet<HashBinary> = loaded.iter().map(|l| l.record.hash).collect();
        for orphan in bodies.difference(&valid) {
            remove_quietly(&format::body_path(&root, orphan));
        }

        loaded.sort_by_key(|l| l.mtime);
        let mut index = DiskIndex::default();
        let mut primaries = Vec::with_capacity(loaded.len());
        let mut gen = 0;
        for l in loaded {
            gen += 1;
            let primary: Arc<str> = l.record.primary.into();
            primaries.push((primary.clone(), l.record.hash));
            let entry = DiskEntry {
                gen,
                body_len: l.record.body_len,
                meta_len: l.meta_len,
                primary,
                tick: 0,
            };
            index.insert(l.record.hash, entry);
        }
        let tier = DiskTier {
            root,
            capacity,
            index: Mutex::new(index),
            ids: AtomicU64::new(gen + 1),
        };
        let mut evicted = tier.evict_over_capacity(None);
        evicted.iter_mut().for_each(Removed::discard);
        let evicted: HashSet<HashBinary> = evicted.into_iter().map(|r| r.hash).collect();
        primaries.retain(|(_, h)| !evicted.contains(h));
        Ok((tier, primaries))
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Renames a finished fill into place, replacing any older entry for the hash, and evicts
    /// least recently used entries until the tier fits its capacity again.
    ///
    /// On error the temp files are removed and the hash has no disk entry. The caller must
    /// [`Removed::discard`] what is returned (after releasing its own locks).
    pub fn commit(&self, c: Commit<'_>) -> Result<Vec<Removed>, CacheError> {
        let weight = c.body_len.saturating_add(c.meta_len);
        if weight > self.capacity {
            remove_quietly(c.body_tmp);
            remove_quietly(c.meta_tmp);
            return Err(CacheError::TooLarge {
                size: weight,
                limit: self.capacity,
            });
        }
        let meta_path = format::meta_path(&self.root, &c.hash);
        let body_path = format::body_path(&self.root, &c.hash);
        let mut replaced = Vec::new();
        {
            let mut index = lock(&self.index);
            // The old meta goes first: a crash between the renames below then leaves a body
            // without a meta (removed on open), never an old meta describing the new body.
            // The old body is moved aside rather than renamed over, so freeing its blocks
            // happens in `discard`, outside the lock.
            if let Some(old) = index.remove(&c.hash) {
                replaced.push(Removed {
                    hash: c.hash,
                    primary: old.primary,
                    trash: self.unlink_locked(&c.hash, old.gen),
                });
            }
            let renamed = fs::rename(c.body_tmp, &body_path)
                .map_err(io_err("rename", c.body_tmp))
                .and_then(|()| {
                    fs::rename(c.meta_tmp, &meta_path).map_err(io_err("rename", c.meta_tmp))
                });
            if let Err(e) = renamed {
                remove_quietly(&body_path);
                remove_quietly(c.body_tmp);
                remove_quietly(c.meta_tmp);
                drop(index);
                replaced.iter_mut().for_each(Removed::discard);
                return Err(e);
            }
            let entry = DiskEntry {
                gen: c.gen,
                body_len: c.body_len,
                meta_len: c.meta_len,
                primary: c.primary,
                tick: 0,
            };
            index.insert(c.hash, entry);
        }
        // The replaced entry is returned only so its body gets discarded; pruning the primary
        // index for it is a no-op because the new entry keeps the hash live.
        let mut out = self.evict_over_capacity(Some(c.hash));
        out.extend(replaced);
        Ok(out)
    }

    fn evict_over_capacity(&self, keep: Option<HashBinary>) -> Vec<Removed> {
        let mut removed = Vec::new();
        {
            let mut index = lock(&self.index);
            while index.bytes > self.capacity {
                let Some((hash, entry)) = index.pop_lru() else {
                    break;
                };
                if Some(hash) == keep {
                    // Only possible if the new entry alone exceeds capacity, which commit
                    // already refused; put it back rather than evict what was just written.
                    index.insert(hash, entry);
                    break;
                }
                let trash = self.unlink_locked(&hash, entry.gen);
                removed.push(Removed {
                    hash,
                    primary: entry.primary,
                    trash,
                });
            }
        }
        removed
    }

    /// Removes the files of an entry already taken out of the index. Must run under the index
    /// lock. The body is only renamed (cheap); the returned trash path is unlinked by the
    /// caller after the lock is released.
    fn unlink_locked(&self, hash: &HashBinary, gen: u64) -> Option<PathBuf> {
        remove_quietly(&format::meta_path(&self.root, hash));
        let body = format::body_path(&self.root, hash);
        let trash = format::trash_path(&self.root, hash, gen);
        match fs::rename(&body, &trash) {
            Ok(()) => Some(trash),
            Err(_) => {
                remove_quietly(&body);
                None
            }
        }
    }

    /// Removes the entry for `hash`, if any; returns its primary key.
    pub fn remove(&self, hash: &HashBinary) -> Option<Arc<str>> {
        self.remove_matching(hash, None)
    }

    fn remove_matching(&self, hash: &HashBinary, gen: Option<u64>) -> Option<Arc<str>> {
        let (primary, trash) = {
            let mut index = lock(&self.index);
            if gen.is_some() && index.entries.get(hash).map(|e| e.gen) != gen {
                return None;
            }
            let entry = index.remove(hash)?;
            (entry.primary, self.unlink_locked(hash, entry.gen))
        };
        if let Some(t) = trash {
            remove_quietly(&t);
        }
        Some(primary)
    }

    pub fn keys(&self) -> Vec<HashBinary> {
        lock(&self.index).entries.keys().copied().collect()
    }

    pub fn contains(&self, hash: &HashBinary) -> bool {
        lock(&self.index).entries.contains_key(hash)
    }

    pub fn gen_of(&self, hash: &HashBinary) -> Option<u64> {
        lock(&self.index).entries.get(hash).map(|e| e.gen)
    }

    /// `(bytes, entries)` of committed entries.
    pub fn stats(&self) -> (u64, u64) {
        let index = lock(&self.index);
        (index.bytes, index.entries.len() as u64)
    }

    /// Opens the entry for reading and marks it recently used. An entry whose files turn out
    /// missing or corrupt is dropped and reported as absent, so a bad file costs one refetch.
    ///
    /// # Errors
    /// [`CacheError::Io`] when reading the meta fails for another reason.
    pub fn open_entry(&self, hash: &HashBinary) -> Result<Option<Opened>, CacheError> {
        let meta_path = format::meta_path(&self.root, hash);
        let body_path = format::body_path(&self.root, hash);
        let (gen, mut meta_file, body) = {
            let mut index = lock(&self.index);
            let Some(gen) = index.entries.get(hash).map(|e| e.gen) else {
                return Ok(None);
            };
            match (File::open(&meta_path), File::open(&body_path)) {
                (Ok(m), Ok(b)) => {
                    index.touch(hash);
                    (gen, m, b)
                }
                _ => {
                    drop(index);
                    tracing::warn!(path = %meta_path.display(), "cache: entry files vanished");
                    self.remove_matching(hash, Some(gen));
                    return Ok(None);
                }
            }
        };
        let mut bytes = Vec::new();
        meta_file
            .read_to_end(&mut bytes)
            .map_err(io_err("read", &meta_path))?;
        let actual = body.metadata().map_err(io_err("stat", &body_path))?.len();
        let checked = MetaRecord::decode(&bytes).and_then(|record| {
            if record.hash != *hash {
                Err(MetaDefect::HashMismatch)
            } else if record.body_len != actual {
                Err(MetaDefect::BodySize {
                    expected: record.body_len,
                    actual,
                })
            } else {
                Ok(record)
            }
        });
        match checked {
            Ok(record) => Ok(Some(Opened {
                gen,
                record,
                meta_len: bytes.len() as u64,
                body,
            })),
            Err(defect) => {
                tracing::warn!(path = %meta_path.display(), %defect, "cache: dropping bad entry");
                self.remove_matching(hash, Some(gen));
                Ok(None)
            }
        }
    }

    /// Drops the entry if it is still generation `gen` (a corrupt entry found by a reader).
    pub fn remove_if_gen(&self, hash: &HashBinary, gen: u64) -> Option<Arc<str>> {
        self.remove_matching(hash, Some(gen))
    }

    /// Replaces the stored `CacheMeta` parts of entry generation `gen`, keeping its body.
    ///
    /// Returns `false` if that generation is no longer stored (replaced or removed meanwhile:
    /// a newer entry's meta came with its own body and must not be overwritten).
    pub fn rewrite_meta(
        &self,
        hash: &HashBinary,
        gen: u64,
        internal: Vec<u8>,
        header: Vec<u8>,
    ) -> Result<bool, CacheError> {
        let Some((body_len, primary)) = lock(&self.index)
            .entries
            .get(hash)
            .filter(|e| e.gen == gen)
            .map(|e| (e.body_len, e.primary.clone()))
        else {
            return Ok(false);
        };
        let bytes = MetaRecord {
            hash: *hash,
            body_len,
            internal,
            header,
            primary: primary.to_string(),
        }
        .encode();
        let tmp = format::temp_meta_path(&self.root, hash, self.next_id());
        if let Err(e) = write_synced(&tmp, &bytes) {
            remove_quietly(&tmp);
            return Err(e);
        }
        let mut index = lock(&self.index);
        let Some(entry) = index.entries.get_mut(hash).filter(|e| e.gen == gen) else {
            drop(index);
            remove_quietly(&tmp);
            return Ok(false);
        };
        let meta_path = format::meta_path(&self.root, hash);
        if let Err(e) = fs::rename(&tmp, &meta_path) {
            drop(index);
            remove_quietly(&tmp);
            return Err(CacheError::Io {
                action: "rename",
                path: tmp,
                source: e,
            });
        }
        let old = entry.meta_len;
        entry.meta_len = bytes.len() as u64;
        // A meta grows or shrinks by a few bytes; the next commit's eviction absorbs it.
        index.bytes = index
            .bytes
            .saturating_sub(old)
            .saturating_add(bytes.len() as u64);
        Ok(true)
    }
}

struct Loaded {
    record: MetaRecord,
    meta_len: u64,
    mtime: SystemTime,
}

#[derive(Debug, thiserror::Error)]
enum Reject {
    #[error("{0}")]
    Defect(#[from] MetaDefect),
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn load(root: &Path, hash: HashBinary, path: &Path) -> Result<Loaded, Reject> {
    let bytes = fs::read(path)?;
    let mtime = fs::metadata(path)?.modified()?;
    let record = MetaRecord::decode(&bytes)?;
    if record.hash != hash {
        return Err(MetaDefect::HashMismatch.into());
    }
    if CacheMeta::deserialize(&record.internal, &record.header).is_err() {
        return Err(MetaDefect::CacheMeta.into());
    }
    let actual = match fs::metadata(format::body_path(root, &hash)) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(MetaDefect::MissingBody.into()),
        Err(e) => return Err(e.into()),
    };
    if actual != record.body_len {
        return Err(MetaDefect::BodySize {
            expected: record.body_len,
            actual,
        }
        .into());
    }
    Ok(Loaded {
        meta_len: bytes.len() as u64,
        record,
        mtime,
    })
}
