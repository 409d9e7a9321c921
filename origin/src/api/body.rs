//! Response bodies of the Swift API: whole objects, ranges and SLO segments as
//! [`crate::store::pieces`] streams, and `multipart/byteranges` around them.

use axum::body::Body;
use bytes::Bytes;
use futures_util::{stream, StreamExt};

pub use crate::store::pieces::Piece;
use crate::store::pieces::PieceStream;

use super::range::{self, ByteRange};

/// The pieces covering `r` of the concatenation of `pieces`.
pub fn slice(pieces: &[Piece], r: ByteRange) -> Vec<Piece> {
    crate::store::pieces::slice(pieces, r.start, r.end)
}

/// A body streaming the pieces in order.
pub fn whole(pieces: Vec<Piece>) -> Body {
    Body::from_stream(PieceStream::new(pieces))
}

type ByteStream = futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>;

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
        parts.push(PieceStream::new(slice(pieces, *r)).boxed());
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
