//! Where the S3 API's objects and buckets live: this node's store, or a cluster's replicas.
//!
//! The handlers of this module read rows and listings from the local store in both modes
//! (in cluster mode every node holds every account, container and object row) and go
//! through [`Backend`] for everything that touches data or other nodes:
//! - **Local**: the store's own writes (`put_version`, `tombstone`, `put_manifest`,
//!   `put_container`, `delete_container`) and its data files.
//! - **Cluster**: the proxy role's typed entry points ([`crate::cluster::objects`],
//!   [`crate::cluster::slo`], [`crate::cluster::broadcast`]), so an S3 write is stored exactly
//!   as a Swift write through this node: one timestamp chosen here, the ring's primaries (a
//!   handoff replacing one that fails) at quorum, listing rows and feed entries on every
//!   node. Reads use this node's copy when it holds the data, else the first replica that
//!   has it; a multipart object's segments stream from their own replicas.

use std::ops::Range as Span;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use http::{HeaderValue, Method, StatusCode};
use s3s::dto::{Range, StreamingBlob};
use s3s::{s3_error, S3Result};

use super::error;
use crate::cluster::{self, Cluster};
use crate::db::ObjectRow;
use crate::files::Staged;
use crate::store::pieces::{self, Piece, PieceStream};
use crate::store::slo::{NewManifest, StoredSegment};
use crate::store::{NewVersion, Store};
use crate::Result;

/// The S3 API's storage: one node's store, or a cluster through this node.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Single-node mode.
    Local(Arc<Store>),
    /// Cluster mode: this node's store (rows, listings, staging) and the cluster.
    Cluster(Arc<Store>, Arc<Cluster>),
}

/// An object opened for reading: its row, its whole length, the part a range selected and
/// the body of that part. Nothing is read before the body is polled, so a failed condition
/// costs no data transfer on this node.
pub struct Opened {
    /// The version (in cluster mode, as the replica that answered describes it).
    pub row: ObjectRow,
    /// Bytes of the whole object.
    pub len: u64,
    /// The selected bytes, when a range was asked for.
    pub range: Option<Span<u64>>,
    /// The selected bytes (all of them without a range).
    pub body: StreamingBlob,
}

/// A `Send` byte stream made `Sync` (what [`StreamingBlob`] asks for): the stream is only
/// ever polled through `&mut`, so the mutex is never contended.
struct SyncStream(std::sync::Mutex<BoxStream<'static, std::io::Result<Bytes>>>);

impl Stream for SyncStream {
    type Item = std::io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let inner = self
            .get_mut()
            .0
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.as_mut().poll_next(cx)
    }
}

fn blob(s: BoxStream<'static, std::io::Result<Bytes>>) -> StreamingBlob {
    StreamingBlob::wrap(SyncStream(std::sync::Mutex::new(s)))
}

/// An S3 range as the `Range` header a replica reads.
fn range_header(r: &Range) -> Option<HeaderValue> {
    let v = match *r {
        Range::Int {
            first,
            last: Some(l),
        } => format!("bytes={first}-{l}"),
        Range::Int { first, last: None } => format!("bytes={first}-"),
        Range::Suffix { length } => format!("bytes=-{length}"),
    };
    HeaderValue::from_str(&v).ok()
}

/// `bytes <a>-<b>/<len>` of a 206: the selected span and the whole length.
fn content_range(v: &str) -> Option<(Span<u64>, u64)> {
    let (span, len) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    let (a, b): (u64, u64) = (a.parse().ok()?, b.parse().ok()?);
    Some((a..b.checked_add(1)?, len.parse().ok()?))
}

/// The pieces of `range` of a local object's pieces.
fn select(
    pieces: Vec<Piece>,
    len: u64,
    range: Option<&Range>,
) -> S3Result<(Vec<Piece>, Option<Span<u64>>)> {
    match range {
        None => Ok((pieces, None)),
        Some(r) => {
            let rg = r.check(len)?;
            Ok((pieces::slice(&pieces, rg.start, rg.end), Some(rg)))
        }
    }
}

impl Backend {
    /// This node's store (rows, listings, validation, staging).
    pub fn store(&self) -> &Arc<Store> {
        match self {
            Backend::Local(st) | Backend::Cluster(st, _) => st,
        }
    }

    /// Stores a staged body as a new version.
    ///
    /// # Errors
    /// Storage errors; in cluster mode [`crate::Error::Unavailable`] without a quorum.
    pub async fn put_version(&self, staged: Staged, v: NewVersion) -> Result<()> {
        match self {
            Backend::Local(st) => st.put_version(staged, v).await.map(|_| ()),
            Backend::Cluster(st, cl) => cluster::objects::put_version(st, cl, staged, v).await,
        }
    }

    /// Stores a small body from memory (an upload record) as a new version.
    ///
    /// # Errors
    /// As [`Backend::put_version`].
    pub async fn put_bytes(
        &self,
        (account, container, name): (&str, &str, &str),
        content_type: &str,
        data: Bytes,
    ) -> Result<()> {
        let st = self.store();
        let staged = st.files.stage_bytes(data).await?;
        let v = NewVersion {
            account: account.to_owned(),
            container: container.to_owned(),
            name: name.to_owned(),
            ts: st.clock.now(),
            etag: staged.md5.clone(),
            size: staged.size,
            content_type: content_type.to_owned(),
            meta: crate::db::Meta::new(),
            delete_at: None,
            slo: false,
        };
        self.put_version(staged, v).await
    }

    /// Tombstones the object of `row` now.
    ///
    /// # Errors
    /// Storage errors; in cluster mode [`crate::Error::Unavailable`] without a quorum.
    pub async fn delete(&self, row: &ObjectRow) -> Result<()> {
        match self {
            Backend::Local(st) => st.tombstone(row, st.clock.now()).await.map(|_| ()),
            Backend::Cluster(st, cl) => {
                let path = (
                    row.account.as_str(),
                    row.container.as_str(),
                    row.name.as_str(),
                );
                cluster::objects::delete(st, cl, path).await.map(|_| ())
            }
        }
    }

    /// The live row of an object. In cluster mode a row this node has not heard of yet (a
    /// write through another node still on its way here) is asked of the replicas.
    ///
    /// # Errors
    /// [`crate::Error::NotFound`]; in cluster mode [`crate::Error::Unavailable`].
    pub async fn row(&self, account: &str, container: &str, name: &str) -> Result<ObjectRow> {
        let st = self.store();
        let local = st.live_row(account, container, name).await;
        match (self, local) {
            (Backend::Cluster(st, cl), Err(crate::Error::NotFound { .. })) => {
                cluster::objects::head(st, cl, (account, container, name)).await
            }
            (_, r) => r,
        }
    }

    /// Opens the live version of an object (the part `range` selects) for reading.
    ///
    /// # Errors
    /// `NoSuchKey`, `InvalidRange`; storage and cluster errors as [`error::key`].
    pub async fn open(
        &self,
        account: &str,
        container: &str,
        name: &str,
        range: Option<&Range>,
    ) -> S3Result<Opened> {
        let (st, cl) = match self {
            Backend::Local(st) => return open_local(st, account, container, name, range).await,
            Backend::Cluster(st, cl) => (st, cl),
        };
        match st.live_row(account, container, name).await {
            Ok(row) if row.slo => open_segments(st, cl, row, range).await,
            Ok(row) if !row.listing_only => {
                match open_local(st, account, container, name, range).await {
                    // Replaced meanwhile by a version whose data lives elsewhere, or by an
                    // SLO: the replicas know.
                    Ok(o) if !o.row.slo && !o.row.listing_only => Ok(o),
                    Ok(_) => open_remote(st, cl, (account, container, name), range).await,
                    Err(e) if *e.code() == s3s::S3ErrorCode::NoSuchKey => {
                        open_remote(st, cl, (account, container, name), range).await
                    }
                    Err(e) => Err(e),
                }
            }
            _ => open_remote(st, cl, (account, container, name), range).await,
        }
    }

    /// The stored segment list of a manifest row (in cluster mode read from a replica and
    /// checked against this node's rows).
    ///
    /// # Errors
    /// Storage errors; in cluster mode [`crate::Error::Conflict`] for a changed segment.
    pub async fn manifest(&self, row: &ObjectRow) -> Result<Vec<StoredSegment>> {
        match self {
            Backend::Local(st) => st.read_manifest(row).await,
            Backend::Cluster(st, cl) => cluster::slo::segments_of(st, cl, row).await,
        }
    }

    /// Writes a Static Large Object manifest over live segment rows.
    ///
    /// # Errors
    /// [`crate::Error::BadManifest`]; storage and quorum errors.
    pub async fn put_manifest(&self, m: NewManifest) -> Result<()> {
        match self {
            Backend::Local(st) => st.put_manifest(m).await.map(|_| ()),
            Backend::Cluster(st, cl) => cluster::slo::put_rows(st, cl, m).await,
        }
    }

    /// Creates a container (no metadata); false when it already existed. In cluster mode the
    /// create goes on to every other node with the same timestamp, as a Swift container PUT.
    ///
    /// # Errors
    /// Storage errors.
    pub async fn create_container(&self, account: &str, container: &str) -> Result<bool> {
        let st = self.store();
        let ts = st.clock.now();
        let created = st.put_container(account, container, ts, Vec::new()).await?;
        if let (Backend::Cluster(_, cl), true) = (self, created) {
            cluster::broadcast::container(cl, Method::PUT, account, container, ts).await;
        }
        Ok(created)
    }

    /// Deletes an empty container, on every node in cluster mode (as a Swift container
    /// DELETE).
    ///
    /// # Errors
    /// [`crate::Error::Conflict`] when it is not empty; [`crate::Error::NotFound`].
    pub async fn delete_container(&self, account: &str, container: &str) -> Result<()> {
        let st = self.store();
        let ts = st.clock.now();
        st.delete_container(account, container, ts).await?;
        if let Backend::Cluster(_, cl) = self {
            cluster::broadcast::container(cl, Method::DELETE, account, container, ts).await;
        }
        Ok(())
    }
}

/// This node's copy: its data file, or a local SLO's segments (single-node mode).
async fn open_local(
    st: &Arc<Store>,
    account: &str,
    container: &str,
    name: &str,
    range: Option<&Range>,
) -> S3Result<Opened> {
    let v = st
        .open_live(account, container, name)
        .await
        .map_err(error::key)?;
    let pieces = if v.row.slo {
        let segs = st.segment_rows(&v.row).await.map_err(error::key)?;
        segs.iter()
            .map(|s| Piece {
                path: st.data_path(s),
                file: None,
                offset: 0,
                len: s.size,
            })
            .collect::<Vec<_>>()
    } else {
        vec![Piece {
            path: v.path,
            file: Some(v.file),
            offset: 0,
            len: v.len,
        }]
    };
    let len = pieces.iter().map(|p| p.len).sum();
    let (pieces, range) = select(pieces, len, range)?;
    Ok(Opened {
        row: v.row,
        len,
        range,
        body: StreamingBlob::wrap(PieceStream::new(pieces)),
    })
}

/// A multipart object in cluster mode: its manifest from a replica, its segments streamed
/// from theirs.
async fn open_segments(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    row: ObjectRow,
    range: Option<&Range>,
) -> S3Result<Opened> {
    let segs = cluster::slo::segments_of(st, cl, &row)
        .await
        .map_err(error::key)?;
    let len: u64 = segs.iter().map(|s| s.bytes).sum();
    let rg = range.map(|r| r.check(len)).transpose()?;
    let (a, b) = rg.as_ref().map_or((0, len), |r| (r.start, r.end));
    let body = cluster::slo::segments_body(cl, row.account.clone(), Arc::new(segs), a, b);
    Ok(Opened {
        row,
        len,
        range: rg,
        body: blob(body),
    })
}

/// The first replica that has the object (this node's copy is missing or elsewhere).
async fn open_remote(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    path: (&str, &str, &str),
    range: Option<&Range>,
) -> S3Result<Opened> {
    let resp = cluster::objects::read(cl, Method::GET, path, range.and_then(range_header))
        .await
        .map_err(error::key)?;
    let h = resp.headers();
    let (len, rg) = match resp.status() {
        StatusCode::OK => {
            let len = h
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok());
            (len, None)
        }
        StatusCode::PARTIAL_CONTENT => {
            match h
                .get(http::header::CONTENT_RANGE)
                .and_then(|v| content_range(v.to_str().ok()?))
            {
                Some((span, len)) => (Some(len), Some(span)),
                None => return Err(s3_error!(InternalError, "a replica sent a bad range")),
            }
        }
        StatusCode::RANGE_NOT_SATISFIABLE => {
            return Err(s3_error!(
                InvalidRange,
                "The requested range is not satisfiable"
            ))
        }
        StatusCode::NOT_FOUND => return Err(s3_error!(NoSuchKey)),
        s => {
            tracing::warn!(status = %s, "a replica failed an S3 read");
            return Err(s3_error!(
                ServiceUnavailable,
                "no replica could serve the object"
            ));
        }
    };
    let row = cluster::objects::row_of(st, path, h, len).map_err(error::key)?;
    let body = resp.bytes_stream().map_err(std::io::Error::other).boxed();
    Ok(Opened {
        len: row.size,
        row,
        range: rg,
        body: blob(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_to_and_from_replicas() {
        let h = |r| range_header(&r).unwrap();
        assert_eq!(
            h(Range::Int {
                first: 2,
                last: Some(5)
            }),
            "bytes=2-5"
        );
        assert_eq!(
            h(Range::Int {
                first: 2,
                last: None
            }),
            "bytes=2-"
        );
        assert_eq!(h(Range::Suffix { length: 3 }), "bytes=-3");
        assert_eq!(content_range("bytes 2-5/10"), Some((2..6, 10)));
        assert_eq!(content_range("bytes */10"), None);
        assert_eq!(content_range("items 2-5/10"), None);
    }
}
