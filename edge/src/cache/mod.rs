//! Tiered pingora-cache storage: a memory tier over a disk tier.
//!
//! (Skeleton: the public API is fixed here so the proxy can be written against it; the tiers
//! arrive in the following commits.)

use std::any::Any;
use std::path::PathBuf;

use async_trait::async_trait;
use pingora::cache::storage::{
    HitHandler, MissHandler, PurgeOutcome, PurgeTarget, PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::{Error, ErrorType, Result};

/// Sizes and location of the two tiers.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// Memory tier capacity in bytes (body + serialized meta of each entry).
    pub memory_bytes: u64,
    /// Largest body kept in the memory tier; larger bodies live on disk only.
    pub memory_object_max: u64,
    /// Directory of the disk tier; created if missing.
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

/// Errors of the cache storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// A file system operation failed.
    #[error("cache {action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// The tiered storage. Hand it to pingora as `&'static` (e.g. via `Box::leak`).
pub struct TieredStorage {
    _cfg: CacheConfig,
}

impl TieredStorage {
    /// Opens the disk tier (creating `disk_dir`), rebuilds the index from the files there (so the
    /// cache survives restart), removes leftover temp files.
    ///
    /// # Errors
    /// [`CacheError::Io`] when the directory cannot be created or read.
    pub fn open(cfg: CacheConfig) -> Result<TieredStorage, CacheError> {
        std::fs::create_dir_all(&cfg.disk_dir).map_err(|source| CacheError::Io {
            action: "create directory",
            path: cfg.disk_dir.clone(),
            source,
        })?;
        Ok(TieredStorage { _cfg: cfg })
    }

    /// Drops every entry whose primary key string equals `primary`; returns how many.
    pub fn purge_primary(&self, _primary: &str) -> usize {
        0
    }

    /// Drops every entry whose primary key string starts with `prefix`; returns how many.
    pub fn purge_prefix(&self, _prefix: &str) -> usize {
        0
    }

    /// Drops everything; returns how many entries were dropped.
    pub fn purge_all(&self) -> usize {
        0
    }

    /// Current sizes of the tiers.
    pub fn stats(&self) -> CacheStats {
        CacheStats::default()
    }
}

#[async_trait]
impl Storage for TieredStorage {
    async fn lookup(
        &'static self,
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        Ok(None)
    }

    async fn get_miss_handler(
        &'static self,
        _key: &CacheKey,
        _meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Error::e_explain(ErrorType::InternalError, "cache storage not implemented yet")
    }

    async fn purge(
        &'static self,
        _target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        Ok(PurgeOutcome::NotFound)
    }

    async fn update_meta(
        &'static self,
        _key: &CacheKey,
        _meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        Ok(false)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}
