//! The `pingora::cache::storage::Storage` implementation of [`TieredStorage`].

use std::any::Any;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::eviction::CacheEntryKey;
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use tokio::sync::watch;

use super::fill::{Fill, FillState, TieredMissHandler};
use super::hit::{CacheHit, CacheTier};
use super::memory::MemEntry;
use super::{blocking, format, to_pingora, CacheError, EntryGen, Inner, TieredStorage};

type Found = Option<(CacheMeta, HitHandler)>;

fn with_gen(mut meta: CacheMeta, gen: u64) -> CacheMeta {
    meta.extensions_mut().insert(EntryGen(gen));
    meta
}

fn fill_hit(fill: &Fill) -> pingora::Result<Found> {
    // The fill commits as generation `fill.id`.
    let meta = with_gen(
        CacheMeta::deserialize(&fill.internal, &fill.header)?,
        fill.id,
    );
    let hit = CacheHit::fill(fill.file.clone(), fill.path.clone(), fill.state.subscribe());
    Ok(Some((meta, Box::new(hit))))
}

/// Storage ignores entry identity (it assigns no `CacheEntryId`), so an exact target naming
/// one can never be ours.
fn target_hash(target: PurgeTarget<'_>) -> Option<HashBinary> {
    if let PurgeTarget::Exact(CacheEntryKey::Identified { .. }) = target {
        return None;
    }
    Some(target.key().combined_bin())
}

impl Inner {
    fn lookup_memory(&self, hash: &HashBinary) -> Option<(CacheMeta, CacheHit)> {
        let entry = self.memory.get(hash)?;
        match CacheMeta::deserialize(&entry.internal, &entry.header) {
            Ok(meta) => {
                let hit = CacheHit::memory(entry.body.clone(), entry.weight(), CacheTier::Memory);
                Some((with_gen(meta, entry.gen), hit))
            }
            Err(e) => {
                tracing::warn!(error = %e, "cache: dropping undecodable memory entry");
                self.memory.remove_if_gen(hash, entry.gen);
                None
            }
        }
    }

    /// Runs on the blocking pool.
    fn lookup_disk(&self, hash: &HashBinary) -> Result<Option<(CacheMeta, CacheHit)>, CacheError> {
        let Some(opened) = self.disk.open_entry(hash)? else {
            return Ok(None);
        };
        let record = opened.record;
        let meta = match CacheMeta::deserialize(&record.internal, &record.header) {
            Ok(meta) => with_gen(meta, opened.gen),
            Err(e) => {
                tracing::warn!(error = %e, "cache: dropping undecodable disk entry");
                self.disk.remove_if_gen(hash, opened.gen);
                return Ok(None);
            }
        };
        let body_path = format::body_path(self.disk.root(), hash);
        if !self.memory.admits(record.body_len) {
            let weight = record.body_len + opened.meta_len;
            let hit = CacheHit::disk(opened.body, body_path, record.body_len, weight);
            return Ok(Some((meta, hit)));
        }
        // Small: read it whole and promote it to the memory tier.
        let mut buf = vec![0u8; usize::try_from(record.body_len).unwrap_or(0)];
        opened
            .body
            .read_exact_at(&mut buf, 0)
            .map_err(|source| CacheError::Io {
                action: "read",
                path: body_path,
                source,
            })?;
        let body = Bytes::from(buf);
        let entry = MemEntry {
            gen: opened.gen,
            internal: record.internal,
            header: record.header,
            body: body.clone(),
            primary: record.primary.into(),
            hot: std::sync::OnceLock::new(),
        };
        let weight = entry.weight();
        self.memory.insert(*hash, entry);
        // A purge between open_entry and the insert above removed the disk entry (it removes
        // disk first, memory second) and would miss this copy: undo it.
        if self.disk.gen_of(hash) != Some(opened.gen) {
            self.memory.remove_if_gen(hash, opened.gen);
        }
        Ok(Some((
            meta,
            CacheHit::memory(body, weight, CacheTier::Disk),
        )))
    }

    /// Rewrites the stored meta of `hash` in both tiers with `rewrite` (given the stored
    /// parts, returning the new ones or `None` to leave it). `expect_gen` guards against an
    /// entry replaced since the caller read it. Runs on the blocking pool.
    fn rewrite_meta(
        &self,
        hash: &HashBinary,
        expect_gen: Option<u64>,
        rewrite: impl Fn(&[u8], &[u8]) -> Option<(Vec<u8>, Vec<u8>)>,
    ) -> Result<bool, CacheError> {
        let gen_ok = |gen: u64| expect_gen.is_none_or(|g| g == gen);
        let in_memory = self.memory.rewrite_meta(hash, |e| {
            gen_ok(e.gen)
                .then(|| rewrite(&e.internal, &e.header))
                .flatten()
        });
        let Some(opened) = self.disk.open_entry(hash)? else {
            return Ok(in_memory);
        };
        if !gen_ok(opened.gen) {
            return Ok(in_memory);
        }
        let Some((internal, header)) = rewrite(&opened.record.internal, &opened.record.header)
        else {
            return Ok(in_memory);
        };
        let on_disk = self.disk.rewrite_meta(hash, opened.gen, internal, header)?;
        Ok(in_memory || on_disk)
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(&'static self, key: &CacheKey, _trace: &SpanHandle) -> pingora::Result<Found> {
        let hash = key.combined_bin();
        // A fill first: while an entry is being replaced, readers get the new body.
        if let Some(fill) = self.inner.latest_fill(&hash) {
            return fill_hit(&fill);
        }
        if let Some((meta, hit)) = self.inner.lookup_memory(&hash) {
            return Ok(Some((meta, Box::new(hit))));
        }
        let inner = self.inner.clone();
        let found = blocking(move || inner.lookup_disk(&hash))
            .await
            .map_err(to_pingora)?;
        Ok(found.map(|(meta, hit)| (meta, Box::new(hit) as HitHandler)))
    }

    async fn lookup_streaming_write(
        &'static self,
        key: &CacheKey,
        streaming_write_tag: Option<&[u8]>,
        trace: &SpanHandle,
    ) -> pingora::Result<Found> {
        let Some(tag) = streaming_write_tag else {
            return self.lookup(key, trace).await;
        };
        let Ok(id) = <[u8; 8]>::try_from(tag).map(u64::from_be_bytes) else {
            return Ok(None);
        };
        // By id, even if a purge cancelled it: the writer's own downstream still reads it.
        match self.inner.fill_by_id(&key.combined_bin(), id) {
            Some(fill) => fill_hit(&fill),
            None => Ok(None),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> pingora::Result<MissHandler> {
        let hash = key.combined_bin();
        let primary: Arc<str> = String::from_utf8_lossy(key.primary_key()).into();
        let (internal, header) = meta.serialize()?;
        let id = self.inner.disk.next_id();
        let path = format::temp_body_path(self.inner.disk.root(), &hash, id);
        let open_path = path.clone();
        let file = blocking(move || {
            OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&open_path)
                .map_err(|source| CacheError::Io {
                    action: "create",
                    path: open_path,
                    source,
                })
        })
        .await
        .map_err(to_pingora)?;
        let (state, _) = watch::channel(FillState::Writing(0));
        let fill = Arc::new(Fill {
            id,
            hash,
            primary,
            internal,
            header,
            file: Arc::new(file),
            path,
            state,
            cancelled: AtomicBool::new(false),
        });
        self.inner.register_fill(fill.clone());
        Ok(Box::new(TieredMissHandler::new(self.inner.clone(), fill)))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> pingora::Result<PurgeOutcome> {
        let Some(hash) = target_hash(target) else {
            return Ok(PurgeOutcome::NotFound);
        };
        let inner = self.inner.clone();
        let purged = blocking(move || {
            let primary = inner.purge_hash(&hash);
            if let Some(p) = &primary {
                inner.prune_index([(&**p, &hash)]);
            }
            Ok(primary.is_some())
        })
        .await
        .map_err(to_pingora)?;
        Ok(if purged {
            PurgeOutcome::Purged(None)
        } else {
            PurgeOutcome::NotFound
        })
    }

    /// Marks the stored entry stale in both tiers (the body stays for revalidation). A fill in
    /// flight is left alone: it is about to store a fresh response.
    async fn expire(
        &'static self,
        target: PurgeTarget<'_>,
        _trace: &SpanHandle,
    ) -> pingora::Result<PurgeOutcome> {
        let Some(hash) = target_hash(target) else {
            return Ok(PurgeOutcome::NotFound);
        };
        let now = SystemTime::now();
        let inner = self.inner.clone();
        let expired = blocking(move || {
            inner.rewrite_meta(&hash, None, |internal, header| {
                let mut meta = CacheMeta::deserialize(internal, header).ok()?;
                meta.expire_at(now);
                meta.serialize().ok()
            })
        })
        .await
        .map_err(to_pingora)?;
        Ok(if expired {
            PurgeOutcome::Expired
        } else {
            PurgeOutcome::NotFound
        })
    }

    /// Replaces the stored meta (a 304 revalidation). Returns `false` when the entry is gone,
    /// or was replaced by a newer fill since `meta` was looked up.
    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> pingora::Result<bool> {
        let hash = key.combined_bin();
        let parts = meta.serialize()?;
        let expect_gen = meta.extensions().get::<EntryGen>().map(|g| g.0);
        let inner = self.inner.clone();
        blocking(move || inner.rewrite_meta(&hash, expect_gen, |_, _| Some(parts.clone())))
            .await
            .map_err(to_pingora)
    }

    fn support_streaming_partial_write(&self) -> bool {
        true
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
