//! Typed entry points of the proxy role for front-ends that are not Swift requests (the S3
//! API, [`crate::s3`]): the same write path, read order and timestamps as
//! [`super::proxy`], called with store values instead of a [`crate::request::Req`].
//!
//! - [`put_version`]: a staged body to its replicas at quorum, listing rows elsewhere
//!   ([`super::proxy`]'s `store_version`, so handoffs and the feeds of every node are the
//!   same as a Swift PUT's).
//! - [`delete`]: a tombstone through the ring (`small_write`, as a Swift DELETE).
//! - [`head`] and [`read`]: the current version from the first replica that has it
//!   (primaries first, this node first among them, then handoffs); [`row_of`] turns a
//!   replica's answer into the row a front-end evaluates conditions against.
//!
//! Metadata travels as headers: user metadata, the stored system headers and
//! `x-object-sysmeta-*` (which storage nodes keep on direct writes only, see
//! [`crate::request::sysmeta_items`]).

use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use super::proxy::{fetch, header_ts, read_order, store_version, NewVersion};
use super::write::{small_write, Payload, Small};
use super::{Cluster, Direct, DIRECT_HEADER};
use crate::db::{Meta, ObjectRow};
use crate::request::{strip_quotes, OBJECT_SYS};
use crate::store::Store;
use crate::{Error, Result};

/// Prefix of system metadata a front-end keeps with a version (the S3 multipart ETag).
pub const SYSMETA_PREFIX: &str = "x-object-sysmeta-";

/// Whether a stored metadata name travels with a version (and is read back from a replica).
fn version_meta_name(n: &str) -> bool {
    n.starts_with("x-object-meta-") || n.starts_with(SYSMETA_PREFIX) || OBJECT_SYS.contains(&n)
}

/// A version's stored metadata as the headers a replica stores it from.
pub(super) fn meta_headers(meta: &Meta) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in meta {
        if !version_meta_name(k) {
            continue;
        }
        if let (Ok(name), Ok(val)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            h.insert(name, val);
        }
    }
    h
}

/// What a write's non-201 answer means, as the crate's error.
pub(super) fn refused(s: StatusCode) -> Error {
    match s.as_u16() {
        412 => Error::PreconditionFailed {
            reason: "a replica refused the write's precondition",
        },
        422 => Error::EtagMismatch,
        507 => Error::InsufficientStorage,
        _ => Error::Unavailable {
            reason: "too few replicas acknowledged the write",
        },
    }
}

/// Stores a new version (its body staged on this node) on its replicas at quorum, with the
/// version's own timestamp; every other node gets its listing row.
///
/// # Errors
/// [`Error::Unavailable`] without a quorum; [`refused`] for a replica's refusal.
///
/// # Cancel safety
/// The replication runs on its own task; dropping the future does not abandon it.
pub async fn put_version(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    staged: crate::files::Staged,
    v: crate::store::NewVersion,
) -> Result<()> {
    let nv = NewVersion {
        ts: v.ts,
        meta: meta_headers(&v.meta),
        path: (v.account, v.container, v.name),
        content_type: v.content_type,
        delete_at: v.delete_at,
        etag: v.etag,
        size: v.size,
        slo_size: None,
        if_none_match: None,
        // The S3 front-end chose the timestamp on this node: a newer version on a replica
        // makes the write go again past it, as a Swift PUT through the proxy does.
        own_ts: true,
    };
    let payload = if staged.path().is_some() {
        Payload::File(Arc::new(staged))
    } else {
        // An empty body is staged without a file.
        Payload::Memory(bytes::Bytes::new())
    };
    let resp = store_version(st, cl, nv, payload).await?;
    match resp.status() {
        StatusCode::CREATED => Ok(()),
        s => Err(refused(s)),
    }
}

/// Tombstones `account/container/object` on every node at `ts`. Returns whether a replica
/// had it.
///
/// # Errors
/// [`Error::Unavailable`] without a quorum; [`refused`] for a replica's refusal.
///
/// # Cancel safety
/// As [`put_version`].
pub async fn delete(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    (account, container, object): (&str, &str, &str),
) -> Result<bool> {
    let path = (account.to_owned(), container.to_owned(), object.to_owned());
    // A replica holding a newer version than this node's timestamp makes the delete go again
    // past it (as the proxy's DELETE does).
    let mut ts = st.clock.now();
    let mut attempt = 0;
    let small = loop {
        attempt += 1;
        let mut h = HeaderMap::new();
        super::proxy::set(&mut h, "x-timestamp", ts);
        let (small, newer) = small_write(cl, Method::DELETE, path.clone(), h).await?;
        match newer.filter(|t| *t >= ts) {
            Some(t) if attempt <= super::proxy::REISSUES => {
                st.clock.observe(t);
                ts = st.clock.now();
            }
            _ => break small,
        }
    };
    match small {
        Small::Applied => Ok(true),
        Small::NotFound => Ok(false),
        Small::Refused(s) => Err(refused(s)),
    }
}

/// `GET` (or `HEAD`) of the current version from the first replica that has it; `range` is
/// sent as the `Range` header (the replica answers 206, or 416).
///
/// # Errors
/// [`Error::NotFound`] when no replica has it; [`Error::Unavailable`] when none answered.
///
/// # Cancel safety
/// Dropping the future abandons the request.
pub async fn read(
    cl: &Cluster,
    method: Method,
    (account, container, object): (&str, &str, &str),
    range: Option<HeaderValue>,
) -> Result<reqwest::Response> {
    let order = read_order(cl, cl.ring().partition(account, container, object));
    let mut h = HeaderMap::new();
    h.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    if let Some(r) = range {
        h.insert(http::header::RANGE, r);
    }
    fetch(cl, &method, &order, h, None, (account, container, object)).await
}

/// The row of the current version, from a replica (see [`read`]).
///
/// # Errors
/// As [`read`]; [`Error::Unavailable`] for an answer without a timestamp.
pub async fn head(
    st: &Store,
    cl: &Cluster,
    (account, container, object): (&str, &str, &str),
) -> Result<ObjectRow> {
    let resp = read(cl, Method::HEAD, (account, container, object), None).await?;
    if !resp.status().is_success() {
        return Err(Error::NotFound { what: "object" });
    }
    let len = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse().ok());
    row_of(st, (account, container, object), resp.headers(), len)
}

/// The row a replica's answer describes: `len` is the whole object's length (the replica's
/// `Content-Length` of a full answer, the total of a 206's `Content-Range`).
///
/// # Errors
/// [`Error::Unavailable`] for an answer without a timestamp or a length.
pub fn row_of(
    st: &Store,
    (account, container, object): (&str, &str, &str),
    h: &HeaderMap,
    len: Option<u64>,
) -> Result<ObjectRow> {
    let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    let ts = header_ts(h, "x-timestamp").ok_or(Error::Unavailable {
        reason: "a replica sent no timestamp",
    })?;
    let size = len.ok_or(Error::Unavailable {
        reason: "a replica sent no length",
    })?;
    let mut meta = Meta::new();
    for (k, v) in h {
        if version_meta_name(k.as_str()) {
            if let Ok(v) = std::str::from_utf8(v.as_bytes()) {
                meta.insert(k.as_str().to_owned(), v.to_owned());
            }
        }
    }
    Ok(ObjectRow {
        ts,
        size,
        etag: text("etag").map(strip_quotes).unwrap_or("").to_owned(),
        content_type: text("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        meta,
        delete_at: text("x-delete-at").and_then(|v| v.trim().parse().ok()),
        slo: h.contains_key("x-static-large-object"),
        ..st.blank_row(account, container, object)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_metadata_travels_as_headers() {
        let mut m = Meta::new();
        m.insert("x-object-meta-color".into(), "blue".into());
        m.insert("x-object-sysmeta-s3api-etag".into(), "abc-2".into());
        m.insert("cache-control".into(), "max-age=60".into());
        m.insert("x-container-read".into(), ".r:*".into());
        let h = meta_headers(&m);
        assert_eq!(h.len(), 3);
        assert_eq!(h["x-object-sysmeta-s3api-etag"], "abc-2");
        assert!(!h.contains_key("x-container-read"));
        assert!(matches!(
            refused(StatusCode::PRECONDITION_FAILED),
            Error::PreconditionFailed { .. }
        ));
        assert!(matches!(
            refused(StatusCode::BAD_REQUEST),
            Error::Unavailable { .. }
        ));
    }
}
