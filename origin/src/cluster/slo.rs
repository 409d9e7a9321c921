//! Static large objects in cluster mode. The ring places a manifest and each of its segments
//! like any object, so no node holds them all:
//! - **PUT** `?multipart-manifest=put` HEADs every segment through the ring (8 at a time),
//!   checks them with the store's rules ([`crate::store::slo`]) and writes the stored
//!   manifest to its replicas like a PUT (data holders get the manifest, flagged with
//!   `X-Outpost-Slo`, the others its listing row with the object's total size).
//! - **GET/HEAD** read the manifest from one of its replicas (conditional headers are
//!   evaluated there, against the SLO's ETag), check each segment against this node's row of
//!   it (a segment that is gone or changed is a 409, never a stitched body), then stream each
//!   segment, or the part a range covers, from one of the segment's replicas, in order.
//!   Storage nodes asked directly for an SLO (a ring-aware edge) answer the same way.
//! - **DELETE** `?multipart-manifest=delete` tombstones each segment, then the manifest,
//!   through the ring.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use futures_util::stream::{self, BoxStream};
use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::proxy::{
    fetch, header_ts, read_order, relay, set, store_version, version_headers, NewVersion,
    HOP_HEADERS,
};
use super::write::{small_write, Payload, Small};
use super::{Cluster, Direct, DIRECT_HEADER};
use crate::db::{ContainerRow, ObjectRow};
use crate::range::{self, ByteRange, RangeOutcome};
use crate::request::{self, strip_quotes, Req};
use crate::store::slo::{
    self as manifest, bad, Manifest, PutSegment, SegmentVersion, StoredSegment, MAX_MANIFEST_BYTES,
};
use crate::store::Store;
use crate::{Error, Result};

/// Segment HEADs in flight for one manifest PUT.
const SEGMENT_HEADS: usize = 8;

/// Conditional request headers evaluated by the manifest's replica.
const CONDITIONS: &[&str] = &[
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
];

/// The query reading a manifest's own data.
const MANIFEST_QUERY: &str = "multipart-manifest=get";

fn direct_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    h
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// The current version of a segment, read with a HEAD through the ring (`None`: it does not
/// exist).
async fn head_segment(
    cl: &Cluster,
    account: &str,
    seg: &PutSegment,
    i: usize,
) -> Result<Option<SegmentVersion>> {
    let (c, o) = seg.target(i)?;
    let order = read_order(cl, cl.ring().partition(account, c, o));
    let resp = match fetch(
        cl,
        &Method::HEAD,
        &order,
        direct_headers(),
        None,
        (account, c, o),
    )
    .await
    {
        Ok(resp) if resp.status().is_success() => resp,
        Ok(_) | Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    let h = resp.headers();
    let size = header(h, "content-length")
        .and_then(|v| v.parse().ok())
        .ok_or(Error::Unavailable {
            reason: "a segment's replica sent no length",
        })?;
    Ok(Some(SegmentVersion {
        etag: header(h, "etag").map(strip_quotes).unwrap_or("").to_owned(),
        size,
        content_type: header(h, "content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        ts: header_ts(h, "x-timestamp").ok_or(Error::Unavailable {
            reason: "a segment's replica sent no timestamp",
        })?,
        slo: h.contains_key("x-static-large-object"),
    }))
}

/// `PUT ?multipart-manifest=put` through any node.
///
/// # Errors
/// [`Error::BadManifest`] for a bad manifest or segment; [`Error::Unavailable`] when a
/// segment or a quorum of the manifest's replicas cannot be reached.
pub async fn put(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    mut r: Req,
    crow: &ContainerRow,
    object: String,
) -> Result<Response> {
    let idle = st.cfg.client_timeout;
    let raw = tokio::time::timeout(
        idle,
        axum::body::to_bytes(r.take_body(), MAX_MANIFEST_BYTES),
    )
    .await
    .map_err(|_| Error::RequestTimeout {
        secs: idle.as_secs(),
    })?
    .map_err(|_| {
        bad(format!(
            "manifest larger than {MAX_MANIFEST_BYTES} bytes or body aborted"
        ))
    })?;
    let segs = manifest::parse_put(&raw)?;
    let account = r.path.account().to_owned();
    let versions: Vec<Result<Option<SegmentVersion>>> =
        stream::iter(segs.iter().cloned().enumerate())
            .map(|(i, s)| {
                let account = account.clone();
                async move { head_segment(cl, &account, &s, i).await }
            })
            .buffered(SEGMENT_HEADS)
            .collect()
            .await;
    let mut segments = Vec::with_capacity(segs.len());
    for ((i, s), v) in segs.iter().enumerate().zip(versions) {
        segments.push(s.check(i, v?.as_ref())?);
    }
    let m = Manifest { segments };
    // The replicas check the metadata again; a bad header is one 400 here, not three.
    request::object_meta_updates(&r.headers)?;
    let mut meta = HeaderMap::new();
    version_headers(&r.headers, &mut meta);
    let json = Bytes::from(m.to_json()?);
    let v = NewVersion {
        ts: r.write_ts(st)?,
        content_type: manifest::manifest_content_type(r.header("content-type"), &object),
        path: (account, crow.name.clone(), object),
        meta,
        delete_at: None,
        etag: m.etag(),
        size: json.len() as u64,
        slo_size: Some(m.size()),
        if_none_match: None,
        own_ts: super::proxy::own_ts(&r),
    };
    store_version(st, cl, v, Payload::Memory(json)).await
}

/// Writes a manifest over `m.segments` (live, non-SLO rows the caller checked, as
/// [`Store::put_manifest`] takes them) to the manifest's replicas at quorum, like a
/// `multipart-manifest=put` through this node: the S3 API's CompleteMultipartUpload.
///
/// # Errors
/// [`Error::BadManifest`] for no segments or a nested SLO; [`Error::Unavailable`] without a
/// quorum; a replica's refusal as [`super::objects::refused`].
///
/// # Cancel safety
/// The replication runs on its own task; dropping the future does not abandon it.
pub async fn put_rows(st: &Arc<Store>, cl: &Arc<Cluster>, m: manifest::NewManifest) -> Result<()> {
    if m.segments.is_empty() {
        return Err(bad("manifest has no segments"));
    }
    if m.segments.iter().any(|s| s.slo) {
        return Err(bad("nested large objects are not supported"));
    }
    let segments = m
        .segments
        .iter()
        .map(|s| StoredSegment {
            name: format!("/{}/{}", s.container, s.name),
            hash: s.etag.clone(),
            bytes: s.size,
            content_type: s.content_type.clone(),
            last_modified: s.ts.iso(),
        })
        .collect();
    let man = Manifest { segments };
    let json = Bytes::from(man.to_json()?);
    let v = NewVersion {
        ts: m.ts,
        path: (m.account, m.container, m.name),
        meta: super::objects::meta_headers(&m.meta),
        content_type: m.content_type,
        delete_at: None,
        etag: man.etag(),
        size: json.len() as u64,
        slo_size: Some(man.size()),
        if_none_match: None,
        // Chosen on this node (the S3 front-end's CompleteMultipartUpload).
        own_ts: true,
    };
    let resp = store_version(st, cl, v, Payload::Memory(json)).await?;
    match resp.status() {
        StatusCode::CREATED => Ok(()),
        s => Err(super::objects::refused(s)),
    }
}

/// The segments of `row`'s manifest (read from one of its replicas), each checked against
/// this node's row of it, if it has one yet.
///
/// # Errors
/// [`Error::NotFound`] when no replica holds a manifest there; [`Error::Conflict`] for a
/// segment gone or changed; [`Error::Unavailable`] when no replica answers.
pub async fn segments_of(
    st: &Arc<Store>,
    cl: &Cluster,
    row: &ObjectRow,
) -> Result<Vec<StoredSegment>> {
    let path = (
        row.account.as_str(),
        row.container.as_str(),
        row.name.as_str(),
    );
    let order = read_order(cl, cl.ring().partition(path.0, path.1, path.2));
    let resp = fetch(
        cl,
        &Method::GET,
        &order,
        direct_headers(),
        Some(MANIFEST_QUERY),
        path,
    )
    .await?;
    if !resp.status().is_success() || !resp.headers().contains_key("x-static-large-object") {
        return Err(Error::NotFound { what: "object" });
    }
    let raw = resp.bytes().await.map_err(|_| Error::Unavailable {
        reason: "a manifest's replica failed mid-answer",
    })?;
    let m = Manifest::parse(&raw)?;
    // A segment this node has no row of yet (a part uploaded through another node a moment
    // ago) is checked by its replica's answer while it streams; one deleted or changed here
    // fails now.
    for s in &m.segments {
        let (c, o) = s.target()?;
        match st.db.get_object(&row.account, c, o)? {
            None => {}
            Some(seg) if !seg.deleted && seg.etag == s.hash => {}
            Some(_) => {
                return Err(Error::Conflict {
                    reason: "a segment of this large object is missing or changed",
                })
            }
        }
    }
    Ok(m.segments)
}

/// Bytes `start..end` of the concatenation of `segs`, streamed from the segments' replicas in
/// order (a segment that changed meanwhile ends the body with an error, never wrong bytes).
pub fn segments_body(
    cl: &Arc<Cluster>,
    account: String,
    segs: Arc<Vec<StoredSegment>>,
    start: u64,
    end: u64,
) -> BoxStream<'static, std::io::Result<Bytes>> {
    stream_range(cl, account, segs, ByteRange { start, end })
}

/// The manifest of `row`'s object as one of its replicas holds it, or that replica's answer
/// when it is not a manifest to assemble (a failed precondition, a plain object).
async fn read_manifest(
    cl: &Cluster,
    r: &Req,
    row: &ObjectRow,
) -> Result<std::result::Result<(HeaderMap, Manifest), reqwest::Response>> {
    let path = (
        row.account.as_str(),
        row.container.as_str(),
        row.name.as_str(),
    );
    let order = read_order(cl, cl.ring().partition(path.0, path.1, path.2));
    let mut h = direct_headers();
    for name in CONDITIONS {
        if let Some(v) = r.headers.get(*name) {
            h.insert(*name, v.clone());
        }
    }
    let resp = fetch(cl, &Method::GET, &order, h, Some(MANIFEST_QUERY), path).await?;
    if !resp.status().is_success() || !resp.headers().contains_key("x-static-large-object") {
        return Ok(Err(resp));
    }
    let headers = resp.headers().clone();
    let raw = resp.bytes().await.map_err(|_| Error::Unavailable {
        reason: "a manifest's replica failed mid-answer",
    })?;
    Ok(Ok((headers, Manifest::parse(&raw)?)))
}

/// GET or HEAD of an SLO: segments streamed from their replicas (see the module docs).
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Conflict`] when a segment is gone or changed;
/// [`Error::RangeNotSatisfiable`]; [`Error::Unavailable`] when no replica answers.
pub async fn read(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    r: &Req,
    row: &ObjectRow,
) -> Result<Response> {
    let head = r.method == Method::HEAD;
    let (src, m) = match read_manifest(cl, r, row).await? {
        Ok(found) => found,
        Err(resp) if resp.status() == StatusCode::NOT_MODIFIED => {
            let mut out = relay(resp, true);
            out.headers_mut().remove("content-type");
            return Ok(out);
        }
        Err(resp) if !resp.status().is_success() => return Ok(relay(resp, true)),
        Err(_) => {
            // The replica holds a plain object there (this node's row is behind): read it.
            let path = (
                row.account.as_str(),
                row.container.as_str(),
                row.name.as_str(),
            );
            let order = read_order(cl, cl.ring().partition(path.0, path.1, path.2));
            let resp = fetch(cl, &r.method, &order, direct_headers(), None, path).await?;
            return Ok(relay(resp, head));
        }
    };
    check_segments(st, &row.account, &m.segments).await?;
    let len = m.size();
    let etag = header(&src, "etag")
        .map(strip_quotes)
        .unwrap_or("")
        .to_owned();
    let modified = header_ts(&src, "x-timestamp").map_or(row.ts.ceil_secs(), |t| t.ceil_secs());
    let mut resp = Response::new(Body::empty());
    for (k, v) in &src {
        let n = k.as_str();
        if !HOP_HEADERS.contains(&n) && n != "content-length" && n != "content-type" {
            resp.headers_mut().append(k.clone(), v.clone());
        }
    }
    // The replica's manifest answer is JSON; the object's type is the row's.
    let ct = row.content_type.clone();
    set(resp.headers_mut(), "content-type", &ct);
    let ranges = if range::if_range_applies(r.header("if-range"), &etag, modified) {
        range::parse(r.header("range"), len)
    } else {
        RangeOutcome::Full
    };
    let segs = Arc::new(m.segments);
    let account = row.account.clone();
    match ranges {
        RangeOutcome::Full => {
            set(resp.headers_mut(), "content-length", len);
            if !head {
                let all = ByteRange { start: 0, end: len };
                *resp.body_mut() = Body::from_stream(stream_range(cl, account, segs, all));
            }
        }
        RangeOutcome::Unsatisfiable => return Err(Error::RangeNotSatisfiable { len }),
        RangeOutcome::Partial(rs) if rs.len() == 1 => {
            let rg = rs[0];
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(resp.headers_mut(), "content-range", rg.content_range(len));
            set(resp.headers_mut(), "content-length", rg.len());
            if !head {
                *resp.body_mut() = Body::from_stream(stream_range(cl, account, segs, rg));
            }
        }
        RangeOutcome::Partial(rs) => {
            let b = range::boundary();
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(
                resp.headers_mut(),
                "content-type",
                format!("multipart/byteranges;boundary={b}"),
            );
            set(
                resp.headers_mut(),
                "content-length",
                range::multipart_len(&b, &ct, &rs, len),
            );
            if !head {
                let mut parts: Vec<ByteStream> = Vec::new();
                for (i, rg) in rs.iter().enumerate() {
                    let head = Bytes::from(range::part_header(&b, i == 0, &ct, rg, len));
                    parts.push(stream::once(async move { Ok(head) }).boxed());
                    parts.push(stream_range(cl, account.clone(), Arc::clone(&segs), *rg));
                }
                let tail = Bytes::from(range::closing(&b));
                parts.push(stream::once(async move { Ok(tail) }).boxed());
                *resp.body_mut() = Body::from_stream(stream::iter(parts).flatten());
            }
        }
    }
    Ok(resp)
}

/// Every segment still has the version the manifest names (this node holds every row).
async fn check_segments(st: &Arc<Store>, account: &str, segs: &[StoredSegment]) -> Result<()> {
    for s in segs {
        let (c, o) = s.target()?;
        let seg = st
            .live_row(account, c, o)
            .await
            .map_err(|_| Error::Conflict {
                reason: "a segment of this large object is missing",
            })?;
        if seg.etag != s.hash {
            return Err(Error::Conflict {
                reason: "a segment of this large object changed",
            });
        }
    }
    Ok(())
}

type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

/// The part of one segment a range covers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SegmentPart {
    index: usize,
    offset: u64,
    len: u64,
}

/// The segment parts covering `r` of the concatenation of `segs`.
fn parts(segs: &[StoredSegment], r: ByteRange) -> Vec<SegmentPart> {
    let mut out = Vec::new();
    let mut pos = 0u64;
    for (index, s) in segs.iter().enumerate() {
        let (a, b) = (pos, pos + s.bytes);
        pos = b;
        if s.bytes == 0 || b <= r.start || a >= r.end {
            continue;
        }
        let start = r.start.max(a);
        out.push(SegmentPart {
            index,
            offset: start - a,
            len: r.end.min(b) - start,
        });
    }
    out
}

/// Streams range `r` of the SLO, one segment request at a time, each from the segment's
/// replicas in read order. A segment whose replica answers another version ends the body
/// with an error (the client sees a short body, never wrong bytes).
fn stream_range(
    cl: &Arc<Cluster>,
    account: String,
    segs: Arc<Vec<StoredSegment>>,
    r: ByteRange,
) -> ByteStream {
    let cl = Arc::clone(cl);
    let todo = parts(&segs, r);
    stream::iter(todo)
        .then(move |p| {
            let (cl, segs, account) = (Arc::clone(&cl), Arc::clone(&segs), account.clone());
            async move { segment_part(&cl, &account, &segs[p.index], &p).await }
        })
        .try_flatten()
        .boxed()
}

async fn segment_part(
    cl: &Cluster,
    account: &str,
    seg: &StoredSegment,
    p: &SegmentPart,
) -> std::io::Result<ByteStream> {
    let (c, o) = seg.target().map_err(std::io::Error::other)?;
    let order = read_order(cl, cl.ring().partition(account, c, o));
    let mut h = direct_headers();
    let last = p.offset + p.len - 1;
    if let Ok(v) = HeaderValue::from_str(&format!("bytes={}-{last}", p.offset)) {
        h.insert("range", v);
    }
    let resp = fetch(cl, &Method::GET, &order, h, None, (account, c, o))
        .await
        .map_err(std::io::Error::other)?;
    let etag = header(resp.headers(), "etag").map(strip_quotes);
    let len: Option<u64> = header(resp.headers(), "content-length").and_then(|v| v.parse().ok());
    let ok = matches!(resp.status(), StatusCode::OK | StatusCode::PARTIAL_CONTENT);
    if !ok || etag != Some(seg.hash.as_str()) || len != Some(p.len) {
        tracing::warn!(segment = %seg.name, status = %resp.status(), "a segment's replica sent another version");
        return Err(std::io::Error::other("a segment changed while it was read"));
    }
    Ok(resp.bytes_stream().map_err(std::io::Error::other).boxed())
}

/// `DELETE ?multipart-manifest=delete` through any node: the segments, then the manifest.
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Unavailable`] without a quorum for the manifest.
pub async fn delete(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    r: &Req,
    row: &ObjectRow,
) -> Result<Response> {
    let m = match read_manifest(cl, r, row).await? {
        Ok((_, m)) => m,
        Err(resp) if resp.status() == StatusCode::NOT_FOUND => {
            return Err(Error::NotFound { what: "object" })
        }
        Err(_) => Manifest {
            segments: Vec::new(),
        },
    };
    let (mut deleted, mut not_found) = (0u64, 0u64);
    for s in &m.segments {
        let (c, o) = s.target()?;
        let mut h = HeaderMap::new();
        set(&mut h, "x-timestamp", st.clock.now());
        let path = (row.account.clone(), c.to_owned(), o.to_owned());
        match small_write(cl, Method::DELETE, path, h).await?.0 {
            Small::Applied => deleted += 1,
            Small::NotFound | Small::Refused(_) => not_found += 1,
        }
    }
    let mut h = HeaderMap::new();
    set(&mut h, "x-timestamp", r.write_ts(st)?);
    let path = (row.account.clone(), row.container.clone(), row.name.clone());
    match small_write(cl, Method::DELETE, path, h).await?.0 {
        Small::Applied => deleted += 1,
        Small::NotFound => return Err(Error::NotFound { what: "object" }),
        Small::Refused(s) => return Ok(request::status(s)),
    }
    let json = r.query.get("format").is_some_and(|f| f == "json")
        || r.header("accept").is_some_and(|a| a.contains("json"));
    let (body, ct) = manifest::delete_report(deleted, not_found, json);
    let mut resp = Response::new(Body::from(body));
    set(resp.headers_mut(), "content-type", ct);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(bytes: u64) -> StoredSegment {
        StoredSegment {
            name: "/s/x".into(),
            hash: "h".into(),
            bytes,
            content_type: "a/b".into(),
            last_modified: String::new(),
        }
    }

    #[test]
    fn ranges_across_segments() {
        let segs = [seg(5), seg(0), seg(5), seg(5)];
        let p = |index, offset, len| SegmentPart { index, offset, len };
        assert_eq!(
            parts(&segs, ByteRange { start: 0, end: 15 }),
            vec![p(0, 0, 5), p(2, 0, 5), p(3, 0, 5)]
        );
        assert_eq!(
            parts(&segs, ByteRange { start: 3, end: 12 }),
            vec![p(0, 3, 2), p(2, 0, 5), p(3, 0, 2)]
        );
        assert_eq!(
            parts(&segs, ByteRange { start: 14, end: 15 }),
            vec![p(3, 4, 1)]
        );
    }
}
