//! The hit handler: one type for the three places a body can come from.

use std::any::Any;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use pingora::cache::storage::{HandleHit, Storage};
use pingora::cache::trace::SpanHandle;
use pingora::cache::CacheKey;
use pingora::{Error, ErrorType};
use tokio::sync::watch;

use super::fill::FillState;
use super::{blocking, to_pingora, CacheError};

/// Bodies are read from files in chunks of this size, so memory per reader stays bounded
/// whatever the object size.
pub(crate) const CHUNK: u64 = 64 * 1024;

/// Where a [`CacheHit`] reads its body from (for metrics and the cache status header).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheTier {
    /// A complete entry in the memory tier.
    Memory,
    /// A complete entry on disk.
    Disk,
    /// A fill still in progress: the body is read as the upstream writes it.
    Fill,
}

/// The hit handler returned by [`super::TieredStorage`]; reach it through
/// `HandleHit::as_any` to ask which tier served the hit.
pub struct CacheHit {
    body: Body,
    tier: CacheTier,
    weight: usize,
}

enum Body {
    Memory {
        body: Bytes,
        start: usize,
        end: usize,
        done: bool,
    },
    Disk {
        file: Arc<File>,
        path: PathBuf,
        len: u64,
        pos: u64,
        end: u64,
    },
    Fill {
        file: Arc<File>,
        path: PathBuf,
        state: watch::Receiver<FillState>,
        pos: u64,
        /// Where a seek asked reading to stop (the body's end otherwise).
        end: Option<u64>,
        writer_gone: bool,
    },
}

impl CacheHit {
    /// A body held in memory; `tier` is `Disk` when it was just promoted from disk.
    pub(crate) fn memory(body: Bytes, weight: u64, tier: CacheTier) -> CacheHit {
        let end = body.len();
        CacheHit {
            tier,
            body: Body::Memory {
                body,
                start: 0,
                end,
                done: false,
            },
            weight: usize::try_from(weight).unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn disk(file: File, path: PathBuf, len: u64, weight: u64) -> CacheHit {
        CacheHit {
            tier: CacheTier::Disk,
            body: Body::Disk {
                file: Arc::new(file),
                path,
                len,
                pos: 0,
                end: len,
            },
            weight: usize::try_from(weight).unwrap_or(usize::MAX),
        }
    }

    pub(crate) fn fill(
        file: Arc<File>,
        path: PathBuf,
        state: watch::Receiver<FillState>,
    ) -> CacheHit {
        CacheHit {
            tier: CacheTier::Fill,
            body: Body::Fill {
                file,
                path,
                state,
                pos: 0,
                end: None,
                writer_gone: false,
            },
            // Unknown until the fill ends.
            weight: 0,
        }
    }

    /// The tier that served this hit.
    pub fn tier(&self) -> CacheTier {
        self.tier
    }

    async fn read(&mut self) -> Result<Option<Bytes>, CacheError> {
        match &mut self.body {
            Body::Memory {
                body,
                start,
                end,
                done,
            } => {
                if *done || start >= end {
                    *done = true;
                    return Ok(None);
                }
                *done = true;
                Ok(Some(body.slice(*start..*end)))
            }
            Body::Disk {
                file,
                path,
                pos,
                end,
                ..
            } => {
                if *pos >= *end {
                    return Ok(None);
                }
                let n = CHUNK.min(*end - *pos);
                let chunk = read_at(file, path, *pos, n).await?;
                // Advanced only after the read completed: a cancelled read_body is retried
                // from the same offset.
                *pos += n;
                Ok(Some(chunk))
            }
            Body::Fill {
                file,
                path,
                state,
                pos,
                end,
                writer_gone,
            } => loop {
                if end.is_some_and(|e| *pos >= e) {
                    return Ok(None);
                }
                let now = *state.borrow_and_update();
                let written = match now {
                    FillState::Aborted => return Err(CacheError::FillAborted),
                    FillState::Writing(n) | FillState::Done(n) => n,
                };
                if written > *pos {
                    let n = CHUNK
                        .min(written - *pos)
                        .min(end.map_or(u64::MAX, |e| e - *pos));
                    let chunk = read_at(file, path, *pos, n).await?;
                    *pos += n;
                    return Ok(Some(chunk));
                }
                if matches!(now, FillState::Done(_)) {
                    return Ok(None);
                }
                // The writer vanished without saying done or aborted (it always says one of
                // them on drop, so this is a bug guard): never end a body early as if complete.
                if *writer_gone {
                    return Err(CacheError::FillAborted);
                }
                if state.changed().await.is_err() {
                    *writer_gone = true;
                }
            },
        }
    }

    fn seek_to(&mut self, start: usize, end: Option<usize>) -> Result<(), CacheError> {
        match &mut self.body {
            Body::Memory {
                body,
                start: s,
                end: e,
                done,
            } => {
                let len = body.len();
                if start >= len {
                    return Err(CacheError::SeekOutOfRange {
                        start: start as u64,
                        len: len as u64,
                    });
                }
                *s = start;
                *e = end.map_or(len, |end| end.min(len));
                // Seeking resets reading: multipart ranges seek once per part.
                *done = false;
                Ok(())
            }
            Body::Disk {
                len, pos, end: e, ..
            } => {
                let start = start as u64;
                if start >= *len {
                    return Err(CacheError::SeekOutOfRange { start, len: *len });
                }
                *pos = start;
                *e = end.map_or(*len, |end| (end as u64).min(*len));
                Ok(())
            }
            // The length is the one the stored header declares (pingora checked the range
            // against it); reading waits for the bytes to arrive, and a fill that ends short
            // ends the body short.
            Body::Fill { pos, end: e, .. } => {
                *pos = start as u64;
                *e = end.map(|end| end as u64);
                Ok(())
            }
        }
    }
}

async fn read_at(file: &Arc<File>, path: &Path, pos: u64, n: u64) -> Result<Bytes, CacheError> {
    let file = file.clone();
    let path = path.to_path_buf();
    blocking(move || {
        // `n` is at most CHUNK.
        let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
        file.read_exact_at(&mut buf, pos)
            .map_err(|source| CacheError::Io {
                action: "read",
                path,
                source,
            })?;
        Ok(Bytes::from(buf))
    })
    .await
}

#[async_trait]
impl HandleHit for CacheHit {
    async fn read_body(&mut self) -> pingora::Result<Option<Bytes>> {
        self.read().await.map_err(to_pingora)
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> pingora::Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> pingora::Result<()> {
        self.seek_to(start, end)
            .map_err(|e| Error::because(ErrorType::InternalError, "cache seek", e))
    }

    fn should_count_access(&self) -> bool {
        !matches!(self.body, Body::Fill { .. })
    }

    fn get_eviction_weight(&self) -> usize {
        self.weight
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}
