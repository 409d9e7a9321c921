//! Object data files: streamed to a temp file, fsynced, renamed into place.
//!
//! Layout: `<data_dir>/objects/<partition>/<hash[0..3]>/<hash>/<timestamp>.data`, where `hash`
//! is the ring's placement hash (`outpost_ring::object_hash_hex`, the MD5 of
//! `/<account>/<container>/<object>`) and the partition its top `part_power` bits
//! (`outpost_ring::partition_of_hex`). A file only becomes visible through the metadata row
//! that names its timestamp, written after the rename; so a crash at any point leaves either
//! the old version or the new one, never a partial object.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

use crate::hlc::Timestamp;
use crate::{Error, Result};

/// Partition power of the single-device ring used until the cluster ring exists.
pub const DEFAULT_PART_POWER: u32 = 10;

/// The data directory's object files.
#[derive(Debug, Clone)]
pub struct Files {
    objects: PathBuf,
    tmp: PathBuf,
}

/// A fully written, fsynced temp file not yet visible anywhere. Dropped uncommitted, it is
/// removed.
#[derive(Debug)]
pub struct Staged {
    path: Option<PathBuf>,
    /// Bytes written.
    pub size: u64,
    /// MD5 hex of the bytes.
    pub md5: String,
}

impl Staged {
    /// The temp file, until committed.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Files {
    /// Creates the directories; removes temp files left by a crash.
    ///
    /// # Errors
    /// [`Error::Io`].
    pub fn open(data_dir: &Path) -> Result<Files> {
        let objects = data_dir.join("objects");
        let tmp = data_dir.join("tmp");
        std::fs::create_dir_all(&objects)?;
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp)?;
        }
        std::fs::create_dir_all(&tmp)?;
        Ok(Files { objects, tmp })
    }

    /// `<data_dir>/objects`, the root of every partition's directory.
    pub fn objects_dir(&self) -> &Path {
        &self.objects
    }

    /// Where the data of a version lives.
    pub fn data_path(&self, part: u32, hash: &str, ts: Timestamp) -> PathBuf {
        self.objects
            .join(part.to_string())
            .join(&hash[..3])
            .join(hash)
            .join(format!("{ts}.data"))
    }

    fn tmp_path(&self) -> Result<PathBuf> {
        let mut r = [0u8; 12];
        getrandom::fill(&mut r).map_err(|_| Error::Task)?;
        Ok(self.tmp.join(hex::encode(r)))
    }

    /// Streams a body into a temp file, computing its MD5, and fsyncs it.
    ///
    /// # Errors
    /// [`Error::TooLarge`] past `max` bytes, [`Error::ClientDisconnect`] when the stream fails
    /// or ends short of `expected`, [`Error::RequestTimeout`] when no bytes arrive for `idle`,
    /// [`Error::InsufficientStorage`] on a full disk. The temp file is removed on every error.
    ///
    /// # Cancel safety
    /// Dropping the future removes the temp file; nothing becomes visible.
    pub async fn stage<S, E>(
        &self,
        mut body: S,
        max: u64,
        expected: Option<u64>,
        idle: Duration,
    ) -> Result<Staged>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
    {
        let path = self.tmp_path()?;
        let file = tokio::fs::File::create(&path).await?;
        let mut staged = Staged {
            path: Some(path),
            size: 0,
            md5: String::new(),
        };
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        let mut h = Md5::new();
        loop {
            let next = tokio::time::timeout(idle, body.next()).await.map_err(|_| {
                Error::RequestTimeout {
                    secs: idle.as_secs(),
                }
            })?;
            let Some(chunk) = next else {
                break;
            };
            let chunk = chunk.map_err(|_| Error::ClientDisconnect)?;
            staged.size += chunk.len() as u64;
            if staged.size > max || expected.is_some_and(|e| staged.size > e) {
                return Err(Error::TooLarge { max });
            }
            h.update(&chunk);
            if let Err(e) = out.write_all(&chunk).await {
                return Err(drain_then(body, idle, e.into()).await);
            }
        }
        if expected.is_some_and(|e| staged.size != e) {
            return Err(Error::ClientDisconnect);
        }
        if let Err(e) = out.flush().await {
            return Err(drain_then(body, idle, e.into()).await);
        }
        out.get_ref().sync_all().await?;
        staged.md5 = hex::encode(h.finalize());
        Ok(staged)
    }

    /// Stages bytes already in memory (manifests).
    ///
    /// # Errors
    /// As [`Files::stage`].
    pub async fn stage_bytes(&self, data: Bytes) -> Result<Staged> {
        let len = data.len() as u64;
        let s = futures_util::stream::iter([Ok::<_, std::convert::Infallible>(data)]);
        self.stage(s, u64::MAX, Some(len), Duration::from_secs(60))
            .await
    }

    /// Makes a staged file the data of a version: rename into place, fsync the directory.
    ///
    /// # Errors
    /// [`Error::Io`], [`Error::InsufficientStorage`].
    pub async fn commit(&self, mut staged: Staged, dest: &Path) -> Result<()> {
        let Some(src) = staged.path.take() else {
            return Err(Error::Task);
        };
        let dest = dest.to_owned();
        tokio::task::spawn_blocking(move || -> Result<()> {
            let dir = dest.parent().ok_or(Error::Task)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                if let Err(e) = create_dir_durable(dir) {
                    let _ = std::fs::remove_file(&src);
                    return Err(e.into());
                }
                match std::fs::rename(&src, &dest) {
                    Ok(()) => break,
                    // [`Files::remove`] of another version dropped the (then empty) hash
                    // directory between our mkdir and rename: make it again.
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 5 => {}
                    Err(e) => {
                        let _ = std::fs::remove_file(&src);
                        return Err(e.into());
                    }
                }
            }
            std::fs::File::open(dir)?.sync_all()?;
            Ok(())
        })
        .await
        .map_err(|_| Error::Task)?
    }

    /// Removes a version's data (best effort; a leftover file is invisible).
    pub async fn remove(&self, path: PathBuf) {
        let _ = tokio::task::spawn_blocking(move || {
            if std::fs::remove_file(&path).is_ok() {
                // Drop empty hash directories so the tree does not grow forever.
                if let Some(dir) = path.parent() {
                    let _ = std::fs::remove_dir(dir);
                }
            }
        })
        .await;
    }
}

/// `create_dir_all` whose result survives a power cut: the entry of every directory it
/// creates is fsynced into its parent (a rename into a directory whose own entry is lost
/// would lose the file with it).
fn create_dir_durable(dir: &Path) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut cur = dir;
    while !cur.is_dir() {
        missing.push(cur.to_owned());
        match cur.parent() {
            Some(p) => cur = p,
            None => break,
        }
    }
    std::fs::create_dir_all(dir)?;
    for d in missing.iter().rev() {
        if let Some(parent) = d.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Most body bytes read and discarded after a write failed, so the client gets the error
/// response (e.g. 507) instead of a connection reset in the middle of its upload.
const DRAIN_LIMIT: u64 = 64 << 20;

/// Reads and discards the rest of a body (bounded by [`DRAIN_LIMIT`] and the idle timeout),
/// then returns `err`.
async fn drain_then<S, E>(mut body: S, idle: Duration, err: Error) -> Error
where
    S: Stream<Item = std::result::Result<Bytes, E>> + Unpin,
{
    let mut drained = 0u64;
    while drained < DRAIN_LIMIT {
        match tokio::time::timeout(idle, body.next()).await {
            Ok(Some(Ok(chunk))) => drained += chunk.len() as u64,
            _ => break,
        }
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn stage_checks_length_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::open(dir.path()).unwrap();
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
        let s = f.stage(body, 100, Some(5), T).await.unwrap();
        assert_eq!(s.md5, "5d41402abc4b2a76b9719d911017c592");
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hel"))]);
        assert!(matches!(
            f.stage(body, 100, Some(5), T).await,
            Err(Error::ClientDisconnect)
        ));
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hello"))]);
        assert!(matches!(
            f.stage(body, 4, None, T).await,
            Err(Error::TooLarge { .. })
        ));
        drop(s);
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    /// A client that stops sending mid-body gets 408 and leaves no temp file behind.
    #[tokio::test]
    async fn stalled_body_times_out_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let f = Files::open(dir.path()).unwrap();
        let body =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"hel"))])
                .chain(futures_util::stream::pending());
        let r = f
            .stage(Box::pin(body), 100, Some(5), Duration::from_millis(50))
            .await;
        assert!(matches!(r, Err(Error::RequestTimeout { .. })), "{r:?}");
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
            0
        );
    }

    #[test]
    fn durable_dirs_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/c");
        create_dir_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_durable(&deep).unwrap();
    }
}
