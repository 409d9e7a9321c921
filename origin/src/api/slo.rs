//! Static Large Objects: manifests (`?multipart-manifest=put|get|delete`) whose GET streams the
//! segments in order, with ranges across segments.

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::StatusCode;

use super::body::Piece;
use super::{set, status, Req, Shared};
use crate::db::{Applied, ContainerRow, ObjectRow};
use crate::store::slo::{self as manifest, bad, Manifest, SegmentVersion, StoredSegment};
use crate::store::NewVersion;
use crate::{Error, Result};

pub use manifest::{MAX_MANIFEST_BYTES, MAX_SEGMENTS};

/// A segment's version as this node's database has it.
fn version_of(row: &ObjectRow) -> SegmentVersion {
    SegmentVersion {
        etag: row.etag.clone(),
        size: row.size,
        content_type: row.content_type.clone(),
        ts: row.ts,
        slo: row.slo,
    }
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
    let segs = manifest::parse_put(&raw)?;
    let account = r.path.account().to_owned();
    let mut stored = Vec::with_capacity(segs.len());
    for (i, s) in segs.iter().enumerate() {
        let (c, o) = s.target(i)?;
        let row = st.store.live_row(&account, c, o).await.ok();
        stored.push(s.check(i, row.as_ref().map(version_of).as_ref())?);
    }
    let m = Manifest { segments: stored };
    let (slo_etag, total) = (m.etag(), m.size());
    let json = m.to_json()?;
    let staged = st.store.files.stage_bytes(Bytes::from(json)).await?;
    let ts = r.write_ts(&st.store)?;
    let ct = manifest::manifest_content_type(r.header("content-type"), &object);
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
    Ok(Manifest::parse(&raw)?.segments)
}

/// The data pieces of an SLO, checked against the manifest (a segment that is gone or changed
/// makes the whole object unavailable: 409, never a stitched body).
pub(super) async fn pieces(st: &Shared, row: &ObjectRow) -> Result<Vec<Piece>> {
    let segs = read_manifest(st, row).await?;
    let mut out = Vec::with_capacity(segs.len());
    for s in segs {
        let (c, o) = s.target()?;
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
        let Ok((c, o)) = s.target() else {
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
    let (body, ct) = manifest::delete_report(deleted, not_found, json);
    let mut resp = Response::new(Body::from(body));
    set(resp.headers_mut(), "content-type", ct);
    Ok(resp)
}
