//! Response bodies streamed from data files: whole objects, ranges, SLO segments, multipart.

use std::path::PathBuf;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{stream, StreamExt, TryStreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::range::{self, ByteRange};

/// A run of bytes in one data file.
#[derive(Debug, Clone)]
pub struct Piece {
    /// Data file.
    pub path: PathBuf,
    /// Offset in the file.
    pub offset: u64,
    /// Length.
    pub len: u64,
}

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
            offset: p.offset + (s - a),
            len: e - s,
        });
    }
    out
}

type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

fn piece_stream(p: Piece) -> ByteStream {
    stream::once(async move {
        let mut f = tokio::fs::File::open(&p.path).await?;
        f.seek(std::io::SeekFrom::Start(p.offset)).await?;
        Ok::<_, std::io::Error>(ReaderStream::with_capacity(f.take(p.len), 64 * 1024))
    })
    .try_flatten()
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
