//! Object bodies read from data files: runs of files (a whole object, a range, the segments of
//! a large object) streamed with `pread`, for the Swift and the S3 front-ends alike.
//!
//! A piece whose rest is at most [`INLINE_READ`] bytes is read on the polling task (see the
//! store's docs on where work runs); longer ones chunk by chunk on the blocking pool, with at
//! most one read in flight. s3s wants a `Send + Sync` stream, so this is a small hand-written
//! stream, not a boxed `unfold`.

use std::collections::VecDeque;
use std::future::Future as _;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::Stream;
use tokio::task::JoinHandle;

/// Bytes read per chunk.
const CHUNK: u64 = 64 * 1024;

/// The rest of a piece is read on the polling task when it is at most this long.
pub const INLINE_READ: u64 = 64 * 1024;

/// A run of bytes in one data file.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Data file.
    pub path: PathBuf,
    /// The file when it was opened before answering (keeps its data if a newer version
    /// unlinks it while the body streams); otherwise opened on first read.
    pub file: Option<Arc<std::fs::File>>,
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// The pieces covering `[start, end)` of the concatenation of `pieces`.
pub fn slice(pieces: &[Piece], start: u64, end: u64) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for p in pieces {
        let (a, b) = (pos, pos + p.len);
        pos = b;
        if b <= start || a >= end {
            continue;
        }
        let s = start.max(a);
        let e = end.min(b);
        out.push(Piece {
            offset: p.offset + (s - a),
            len: e - s,
            ..p.clone()
        });
    }
    out
}

type Read = std::io::Result<(Arc<std::fs::File>, Bytes)>;

/// The body stream over pieces, in order.
#[derive(Debug)]
pub struct PieceStream {
    pieces: VecDeque<Piece>,
    reading: Option<JoinHandle<Read>>,
}

impl PieceStream {
    /// A stream of `pieces`.
    pub fn new(pieces: Vec<Piece>) -> PieceStream {
        PieceStream {
            pieces: pieces.into_iter().filter(|p| p.len > 0).collect(),
            reading: None,
        }
    }
}

impl Stream for PieceStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if let Some(h) = self.reading.as_mut() {
            let done = match Pin::new(h).poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => r,
            };
            self.reading = None;
            let read = done.unwrap_or_else(|e| Err(std::io::Error::other(e)));
            return Poll::Ready(Some(self.advance(read)));
        }
        let Some(p) = self.pieces.front() else {
            return Poll::Ready(None);
        };
        let (path, file, off, n) = (p.path.clone(), p.file.clone(), p.offset, p.len.min(CHUNK));
        if p.len <= INLINE_READ {
            let read = read_chunk(path, file, off, n);
            return Poll::Ready(Some(self.advance(read)));
        }
        self.reading = Some(tokio::task::spawn_blocking(move || {
            read_chunk(path, file, off, n)
        }));
        // Poll the new read at once so its waker is registered.
        self.poll_next(cx)
    }
}

impl PieceStream {
    /// Moves past a finished read of the front piece.
    fn advance(&mut self, read: Read) -> std::io::Result<Bytes> {
        let (file, buf) = read?;
        let n = buf.len() as u64;
        if let Some(p) = self.pieces.front_mut() {
            p.file = Some(file);
            p.offset += n;
            p.len -= n;
            if p.len == 0 {
                self.pieces.pop_front();
            }
        }
        Ok(buf)
    }
}

/// Reads `n` bytes at `off` of a piece's file (opened first if it is not yet).
fn read_chunk(path: PathBuf, file: Option<Arc<std::fs::File>>, off: u64, n: u64) -> Read {
    let f = match file {
        Some(f) => f,
        None => Arc::new(std::fs::File::open(path)?),
    };
    let mut b = vec![0u8; usize::try_from(n).unwrap_or(0)];
    f.read_exact_at(&mut b, off)?;
    Ok((f, Bytes::from(b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    use futures_util::StreamExt;

    #[tokio::test]
    async fn streams_slices_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let mut pieces = Vec::new();
        for (i, data) in [&b"0123456789"[..], b"abcdefghij"].iter().enumerate() {
            let p = dir.path().join(format!("{i}"));
            std::fs::write(&p, data).unwrap();
            pieces.push(Piece {
                path: p,
                file: None,
                offset: 0,
                len: 10,
            });
        }
        let mut got = Vec::new();
        let mut s = PieceStream::new(slice(&pieces, 5, 15));
        while let Some(b) = s.next().await {
            got.extend_from_slice(&b.unwrap());
        }
        assert_eq!(got, b"56789abcde");
    }
}
