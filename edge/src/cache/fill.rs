//! Fills in progress: the miss handler writes the body to a temp file and announces every
//! write on a watch channel, so readers (partial hits) can stream the body while it arrives.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::key::HashBinary;
use pingora::cache::storage::{HandleMiss, MissFinishType};
use tokio::sync::watch;

use super::{blocking, to_pingora, CacheError, Inner};

/// What readers of a fill may read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FillState {
    /// This many bytes are in the temp file; more may follow.
    Writing(u64),
    /// The body is complete at this many bytes.
    Done(u64),
    /// The writer gave up; the body will never be complete.
    Aborted,
}

/// One fill, shared by its miss handler, the fill registry and (through `file` and a watch
/// receiver) its readers.
pub(crate) struct Fill {
    /// Unique; the streaming write tag, and the generation of the entry it commits.
    pub id: u64,
    pub hash: HashBinary,
    pub primary: Arc<str>,
    /// The two halves of `CacheMeta::serialize()`.
    pub internal: Vec<u8>,
    pub header: Vec<u8>,
    /// The temp file, written with positional writes and read with positional reads, so the
    /// writer and any number of readers share one descriptor without sharing an offset. Readers
    /// hold it open, so they can finish even after the file is renamed or unlinked.
    pub file: Arc<File>,
    pub path: PathBuf,
    pub state: watch::Sender<FillState>,
    /// Set by a purge: the fill keeps feeding its current readers but never commits, and
    /// plain lookups no longer see it.
    pub cancelled: AtomicBool,
}

impl Fill {
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }

    /// Marks the fill cancelled; true if this call did it.
    pub fn cancel(&self) -> bool {
        !self.cancelled.swap(true, Ordering::AcqRel)
    }
}

pub(crate) struct TieredMissHandler {
    inner: Arc<Inner>,
    fill: Arc<Fill>,
    tag: [u8; 8],
    written: u64,
    eof: bool,
    /// A write was cancelled mid-way: the file's content past `written` is unknown, so the
    /// fill can only be abandoned.
    interrupted: bool,
    /// The body while it still fits the memory tier, so finish() can fill that tier without
    /// reading the file back.
    mem_copy: Option<BytesMut>,
    /// finish() handed the temp file and the registry entry to `Inner::commit_fill`.
    settled: bool,
}

impl TieredMissHandler {
    pub fn new(inner: Arc<Inner>, fill: Arc<Fill>) -> TieredMissHandler {
        let tag = fill.id.to_be_bytes();
        let mem_copy = inner.memory.admits(0).then(BytesMut::new);
        TieredMissHandler {
            inner,
            fill,
            tag,
            written: 0,
            eof: false,
            interrupted: false,
            mem_copy,
            settled: false,
        }
    }

    async fn write(&mut self, data: Bytes, eof: bool) -> Result<(), CacheError> {
        if self.interrupted {
            return Err(CacheError::FillInterrupted);
        }
        if self.eof && !data.is_empty() {
            return Err(CacheError::WriteAfterEof);
        }
        let len = self.written.saturating_add(data.len() as u64);
        // Refuse early what could never be stored, rather than fill the disk with a temp file
        // that finish() would throw away. (pingora's max_file_size should be set below this
        // so such responses are never admitted in the first place.)
        let limit = self.inner.max_object_bytes();
        if len > limit {
            return Err(CacheError::TooLarge { size: len, limit });
        }
        if !data.is_empty() {
            self.interrupted = true;
            let file = self.fill.file.clone();
            let path = self.fill.path.clone();
            let at = self.written;
            let chunk = data.clone();
            blocking(move || {
                file.write_all_at(&chunk, at)
                    .map_err(|source| CacheError::Io {
                        action: "write",
                        path,
                        source,
                    })
            })
            .await?;
            self.interrupted = false;
            if self.inner.memory.admits(len) {
                if let Some(buf) = &mut self.mem_copy {
                    buf.extend_from_slice(&data);
                }
            } else {
                self.mem_copy = None;
            }
        }
        self.written = len;
        self.eof |= eof;
        // Readers may finish as soon as the last byte is in the file; committing the entry is
        // finish()'s business and does not change the bytes they read.
        self.fill.state.send_replace(if self.eof {
            FillState::Done(len)
        } else {
            FillState::Writing(len)
        });
        Ok(())
    }

    async fn commit(&mut self) -> Result<usize, CacheError> {
        if self.interrupted {
            return Err(CacheError::FillInterrupted);
        }
        let len = self.written;
        self.eof = true;
        self.fill.state.send_replace(FillState::Done(len));
        // The copy grew by doubling: its buffer may be up to twice the body, and the memory
        // tier weighs entries by their length. Keep an exact-size copy so the tier's bound is
        // what it holds.
        let mem_body = self.mem_copy.take().map(|buf| {
            if buf.capacity() > buf.len() + buf.len() / 16 {
                Bytes::copy_from_slice(&buf)
            } else {
                buf.freeze()
            }
        });
        let inner = self.inner.clone();
        let fill = self.fill.clone();
        // From here commit_fill owns the temp file and the registry entry, even if this future
        // is dropped while it runs: Drop must not race it (it could unregister the hash from
        // the primary index just before the entry is stored).
        self.settled = true;
        blocking(move || inner.commit_fill(&fill, len, mem_body)).await
    }
}

#[async_trait]
impl HandleMiss for TieredMissHandler {
    async fn write_body(&mut self, data: Bytes, eof: bool) -> pingora::Result<()> {
        self.write(data, eof).await.map_err(to_pingora)
    }

    async fn finish(mut self: Box<Self>) -> pingora::Result<MissFinishType> {
        let weight = self.commit().await.map_err(to_pingora)?;
        Ok(MissFinishType::Created(weight))
    }

    fn streaming_write_tag(&self) -> Option<&[u8]> {
        Some(&self.tag)
    }
}

impl Drop for TieredMissHandler {
    /// An unfinished fill is a failed one: readers that have not seen the complete body get
    /// an error, the temp file is removed and nothing becomes visible.
    fn drop(&mut self) {
        self.fill.state.send_if_modified(|s| {
            if matches!(s, FillState::Done(_)) {
                // Every byte is in the file already; let readers finish it.
                false
            } else {
                *s = FillState::Aborted;
                true
            }
        });
        if self.settled {
            return;
        }
        self.inner.unregister_fill(&self.fill);
        let path = self.fill.path.clone();
        // Unlinking a large aborted body can take a while: keep it off the async worker.
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn_blocking(move || super::disk::remove_quietly(&path));
            }
            Err(_) => super::disk::remove_quietly(&path),
        }
    }
}
