//! Response bodies streamed from data files: whole objects, ranges, SLO segments, multipart.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

use super::range::{self, ByteRange};

/// A run of bytes in one data file.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Data file.
    pub path: PathBuf,
    /// The file, when it was opened before answering: an open file keeps its data even if a
    /// newer version replaces (unlinks) it while the body streams. Otherwise opened lazily.
    pub file: Option<Arc<std::fs::File>>,
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

/// Bytes read per chunk of a response body.
const CHUNK: u64 = 64 * 1024;

/// The pieces covering `[r.start, r.end)` of the concatenation of `pieces`.
pub fn slice(pieces: &[Piece], r: ByteRange) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for p in pieces {
        let (a, b) = (pos, pos + p.len);
        pos = b;
        if b <= r.start || a >= r.end {
            continue;
        }
        let s = r.start.max(a);
        let e = r.end.min(b);
        out.push(Piece {
            path: p.path.clone(),
            file: p.file.clone(),
            offset: p.offset + (s - a),
            len: e - s,
        });
    }
    out
}

type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

fn piece_stream(p: Piece) -> ByteStream {
    stream::try_unfold(
        (p, None::<Arc<std::fs::File>>),
        |(mut p, mut file)| async move {
            if p.len == 0 {
                return Ok(None);
            }
            if file.is_none() {
                file = match p.file.take() {
                    Some(f) => Some(f),
                    None => {
                        let path = p.path.clone();
                        let f = tokio::task::spawn_blocking(move || std::fs::File::open(path))
                            .await
                            .map_err(std::io::Error::other)??;
                        Some(Arc::new(f))
                    }
                };
            }
            let f = file
                .clone()
                .ok_or_else(|| std::io::Error::other("file not open"))?;
            let (n, off) = (p.len.min(CHUNK), p.offset);
            let buf = tokio::task::spawn_blocking(move || {
                let mut b = vec![0u8; usize::try_from(n).unwrap_or(0)];
                f.read_exact_at(&mut b, off).map(|()| b)
            })
            .await
            .map_err(std::io::Error::other)??;
            p.offset += n;
            p.len -= n;
            Ok(Some((Bytes::from(buf), (p, file))))
        },
    )
    .boxed()
}

fn pieces_stream(pieces: Vec<Piece>) -> ByteStream {
    stream::iter(pieces).flat_map(piece_stream).boxed()
}

/// A body streaming the pieces in order.
pub fn whole(pieces: Vec<Piece>) -> Body {
    Body::from_stream(pieces_stream(pieces))
}

/// A `multipart/byteranges` body for `ranges` of an object made of `pieces`.
pub fn multipart(
    pieces: &[Piece],
    ranges: &[ByteRange],
    boundary: &str,
    content_type: &str,
    len: u64,
) -> Body {
    let mut parts: Vec<ByteStream> = Vec::new();
    for (i, r) in ranges.iter().enumerate() {
        let head = range::part_header(boundary, i == 0, content_type, r, len);
        parts.push(stream::once(async move { Ok(Bytes::from(head)) }).boxed());
        parts.push(pieces_stream(slice(pieces, *r)));
    }
    let tail = range::closing(boundary);
    parts.push(stream::once(async move { Ok(Bytes::from(tail)) }).boxed());
    Body::from_stream(stream::iter(parts).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_across_pieces() {
        let p = |n: &str, len| Piece {
            path: n.into(),
            file: None,
            offset: 0,
            len,
        };
        let pieces = [p("a", 10), p("b", 10), p("c", 10)];
        let s = slice(&pieces, ByteRange { start: 5, end: 25 });
        let got: Vec<(String, u64, u64)> = s
            .iter()
            .map(|x| (x.path.display().to_string(), x.offset, x.len))
            .collect();
        assert_eq!(
            got,
            [("a".into(), 5, 5), ("b".into(), 0, 10), ("c".into(), 0, 5)]
        );
        assert!(slice(&pieces, ByteRange { start: 30, end: 31 }).is_empty());
    }
}
