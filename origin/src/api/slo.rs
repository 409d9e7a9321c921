//! Static Large Objects: manifests (`?multipart-manifest=put|get|delete`) whose GET streams the
//! segments in order, with ranges across segments.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::body::Piece;
use super::{set, status, Req, Shared};
use crate::db::{Applied, ContainerRow, ObjectRow};
use crate::store::NewVersion;
use crate::{Error, Result};

/// Most segments in one manifest (Swift's default).
pub const MAX_SEGMENTS: usize = 1000;
/// Largest manifest body accepted.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// One segment as a client sends it in `multipart-manifest=put`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PutSegment {
    path: String,
    #[serde(default)]
    etag: Option<String>,
    #[serde(default)]
    size_bytes: Option<u64>,
}

/// One segment as stored (Swift's stored manifest format, returned by `multipart-manifest=get`).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSegment {
    name: String,
    hash: String,
    bytes: u64,
    content_type: String,
    last_modified: String,
}

fn bad(reason: impl Into<String>) -> Error {
    Error::BadManifest {
        reason: reason.into(),
    }
}

fn split_segment_path(p: &str) -> Option<(&str, &str)> {
    let t = p.strip_prefix('/').unwrap_or(p);
    let (c, o) = t.split_once('/')?;
    (!c.is_empty() && !o.is_empty()).then_some((c, o))
}

/// `PUT ?multipart-manifest=put`: validates every segment and stores the manifest.
pub(super) async fn put(
    st: &Shared,
    mut r: Req,
    crow: ContainerRow,
    object: String,
) -> Result<Response> {
    let body = r.take_body();
    let idle = st.store.cfg.client_timeout;
    let raw = tokio::time::timeout(idle, axum::body::to_bytes(body, MAX_MANIFEST_BYTES))
        .await
        .map_err(|_| Error::RequestTimeout {
            secs: idle.as_secs(),
        })?
        .map_err(|_| {
            bad(format!(
                "manifest larger than {MAX_MANIFEST_BYTES} bytes or body aborted"
            ))
        })?;
    let segs: Vec<PutSegment> = serde_json::from_slice(&raw)
        .map_err(|e| bad(format!("not a JSON list of segments: {e}")))?;
    if segs.is_empty() {
        return Err(bad("manifest has no segments"));
    }
    if segs.len() > MAX_SEGMENTS {
        return Err(bad(format!("more than {MAX_SEGMENTS} segments")));
    }
    let account = r.path.account().to_owned();
    let mut stored = Vec::with_capacity(segs.len());
    let mut etags = Md5::new();
    let mut total = 0u64;
    for (i, s) in segs.iter().enumerate() {
        let (c, o) = split_segment_path(&s.path)
            .ok_or_else(|| bad(format!("segment {i}: path must be /<container>/<object>")))?;
        let row = st
            .store
            .live_row(&account, c, o)
            .await
            .map_err(|_| bad(format!("segment {i}: {} does not exist", s.path)))?;
        if row.slo {
            return Err(bad(format!(
                "segment {i}: nested large objects are not supported"
            )));
        }
        if let Some(e) = &s.etag {
            if e.trim_matches('"') != row.etag {
                return Err(bad(format!("segment {i}: ETag mismatch for {}", s.path)));
            }
        }
        if let Some(n) = s.size_bytes {
            if n != row.size {
                return Err(bad(format!("segment {i}: size mismatch for {}", s.path)));
            }
        }
        etags.update(row.etag.as_bytes());
        total += row.size;
        stored.push(StoredSegment {
            name: format!("/{c}/{o}"),
            hash: row.etag.clone(),
            bytes: row.size,
            content_type: row.content_type.clone(),
            last_modified: row.ts.iso(),
        });
    }
    let slo_etag = hex::encode(etags.finalize());
    let json = serde_json::to_vec(&stored).map_err(|_| Error::Task)?;
    let staged = st.store.files.stage_bytes(Bytes::from(json)).await?;
    let ts = r.write_ts(&st.store)?;
    let ct = r
        .header("content-type")
        .filter(|c| !c.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            mime_guess::from_path(&object)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_owned()
        });
    let meta =
        crate::store::validate::version_meta(crate::request::object_meta_updates(&r.headers)?);
    let applied = st
        .store
        .put_version(
            staged,
            NewVersion {
                account,
                container: crow.name,
                name: object,
                ts,
                etag: slo_etag.clone(),
                size: total,
                content_type: ct,
                meta,
                delete_at: None,
                slo: true,
            },
        )
        .await?;
    if applied == Applied::Stale {
        return Ok(status(StatusCode::ACCEPTED));
    }
    let mut resp = status(StatusCode::CREATED);
    set(resp.headers_mut(), "etag", format!("\"{slo_etag}\""));
    set(resp.headers_mut(), "last-modified", ts.http_date());
    set(resp.headers_mut(), "content-length", 0);
    Ok(resp)
}

async fn read_manifest(st: &Shared, row: &ObjectRow) -> Result<Vec<StoredSegment>> {
    let raw = tokio::fs::read(st.store.data_path(row)).await?;
    serde_json::from_slice(&raw).map_err(|_| Error::Task)
}

/// The data pieces of an SLO, checked against the manifest (a segment that is gone or changed
/// makes the whole object unavailable: 409, never a stitched body).
pub(super) async fn pieces(st: &Shared, row: &ObjectRow) -> Result<Vec<Piece>> {
    let segs = read_manifest(st, row).await?;
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        let (c, o) = split_segment_path(&s.name).ok_or(Error::Task)?;
        let seg = st
            .store
            .live_row(&row.account, c, o)
            .await
            .map_err(|_| Error::Conflict {
                reason: "a segment of this large object is missing",
            })?;
        if seg.etag != s.hash {
            return Err(Error::Conflict {
                reason: "a segment of this large object changed",
            });
        }
        out.push(Piece {
            path: st.store.data_path(&seg),
            file: None,
            offset: 0,
            len: s.bytes,
        });
    }
    Ok(out)
}

/// `DELETE ?multipart-manifest=delete`: removes the segments, then the manifest.
pub(super) async fn delete(st: &Shared, r: &Req, row: ObjectRow) -> Result<Response> {
    let segs = read_manifest(st, &row).await?;
    let (mut deleted, mut not_found) = (0u64, 0u64);
    for s in &segs {
        let Some((c, o)) = split_segment_path(&s.name) else {
            not_found += 1;
            continue;
        };
        match st.store.live_row(&row.account, c, o).await {
            Ok(seg) => {
                let ts = st.store.clock.now();
                st.store.tombstone(&seg, ts).await?;
                deleted += 1;
            }
            Err(_) => not_found += 1,
        }
    }
    let ts = r.write_ts(&st.store)?;
    st.store.tombstone(&row, ts).await?;
    deleted += 1;
    let json = super::wants(r) == super::listing::Format::Json
        || r.header("accept").is_some_and(|a| a.contains("json"));
    let body = if json {
        serde_json::json!({
            "Number Deleted": deleted,
            "Number Not Found": not_found,
            "Response Status": "200 OK",
            "Response Body": "",
            "Errors": [],
        })
        .to_string()
    } else {
        format!("Number Deleted: {deleted}\nNumber Not Found: {not_found}\nResponse Body: \nResponse Status: 200 OK\nErrors: \n")
    };
    let mut resp = Response::new(Body::from(body));
    set(
        resp.headers_mut(),
        "content-type",
        if json {
            "application/json; charset=utf-8"
        } else {
            "text/plain; charset=utf-8"
        },
    );
    Ok(resp)
}
