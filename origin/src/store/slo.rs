//! Static Large Object manifests as the store keeps them: the stored segment list (Swift's
//! format, what `?multipart-manifest=get` returns), writing a manifest over existing segment
//! objects, and resolving a manifest back to its live segment rows.
//!
//! The S3 front-end's multipart uploads are SLOs written through [`Store::put_manifest`], so a
//! Swift client and the edge read a completed upload as one object.

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::{NewVersion, Store};
use crate::db::{Applied, Meta, ObjectRow};
use crate::hlc::Timestamp;
use crate::{Error, Result};

/// One segment as stored in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSegment {
    /// `/<container>/<object>` of the segment, in the manifest's account.
    pub name: String,
    /// The segment's MD5 (hex) when the manifest was written.
    pub hash: String,
    /// The segment's length.
    pub bytes: u64,
    /// The segment's content type.
    pub content_type: String,
    /// The segment's version, ISO form.
    pub last_modified: String,
}

/// A manifest to write: its segments (live rows, in order) and the new object's attributes.
#[derive(Debug, Clone)]
pub struct NewManifest {
    /// Account.
    pub account: String,
    /// Container of the manifest.
    pub container: String,
    /// Object name of the manifest.
    pub name: String,
    /// The segments, in order.
    pub segments: Vec<ObjectRow>,
    /// Content type of the whole object.
    pub content_type: String,
    /// Metadata of the whole object.
    pub meta: Meta,
    /// The version's timestamp.
    pub ts: Timestamp,
}

/// Splits a stored segment name `/<container>/<object>`.
pub fn split_segment_name(p: &str) -> Option<(&str, &str)> {
    let t = p.strip_prefix('/').unwrap_or(p);
    let (c, o) = t.split_once('/')?;
    (!c.is_empty() && !o.is_empty()).then_some((c, o))
}

/// Swift's SLO ETag: MD5 of the concatenated segment MD5s (hex text).
pub fn slo_etag<'a>(etags: impl IntoIterator<Item = &'a str>) -> String {
    let mut h = Md5::new();
    for e in etags {
        h.update(e.as_bytes());
    }
    hex::encode(h.finalize())
}

impl Store {
    /// Writes a manifest over `m.segments` (which must be live, non-SLO rows) as the current
    /// version of `m.name`. Returns the manifest's (Swift) ETag and the whole object's size.
    ///
    /// # Errors
    /// [`Error::BadManifest`] for no segments or a nested SLO; [`Error::Conflict`] when a
    /// newer version won; storage errors.
    ///
    /// # Cancel safety
    /// As [`Store::put_version`]: from the commit on, the work runs to its end.
    pub async fn put_manifest(self: &Arc<Self>, m: NewManifest) -> Result<(String, u64)> {
        if m.segments.is_empty() {
            return Err(Error::BadManifest {
                reason: "manifest has no segments".into(),
            });
        }
        if m.segments.iter().any(|s| s.slo) {
            return Err(Error::BadManifest {
                reason: "nested large objects are not supported".into(),
            });
        }
        let stored: Vec<StoredSegment> = m
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
        let etag = slo_etag(stored.iter().map(|s| s.hash.as_str()));
        let total = stored.iter().map(|s| s.bytes).sum();
        let json = serde_json::to_vec(&stored).map_err(|_| Error::Task)?;
        let staged = self.files.stage_bytes(Bytes::from(json)).await?;
        let applied = self
            .put_version(
                staged,
                NewVersion {
                    account: m.account,
                    container: m.container,
                    name: m.name,
                    ts: m.ts,
                    etag: etag.clone(),
                    size: total,
                    content_type: m.content_type,
                    meta: m.meta,
                    delete_at: None,
                    slo: true,
                },
            )
            .await?;
        match applied {
            Applied::Yes(()) => Ok((etag, total)),
            Applied::Stale => Err(Error::Conflict {
                reason: "a newer version of the object was written meanwhile",
            }),
        }
    }

    /// The stored segment list of a manifest row.
    ///
    /// # Errors
    /// I/O errors; [`Error::Task`] for a manifest that does not parse.
    pub async fn read_manifest(self: &Arc<Self>, row: &ObjectRow) -> Result<Vec<StoredSegment>> {
        let raw = tokio::fs::read(self.data_path(row)).await?;
        serde_json::from_slice(&raw).map_err(|_| Error::Task)
    }

    /// The live rows of a manifest's segments, checked against the manifest: a segment gone
    /// or changed makes the whole object unavailable (409), never a stitched body.
    ///
    /// # Errors
    /// [`Error::Conflict`] for a missing or changed segment; as [`Store::read_manifest`].
    pub async fn segment_rows(self: &Arc<Self>, row: &ObjectRow) -> Result<Vec<ObjectRow>> {
        let segs = self.read_manifest(row).await?;
        let mut out = Vec::with_capacity(segs.len());
        for s in segs {
            let (c, o) = split_segment_name(&s.name).ok_or(Error::Task)?;
            let seg = self
                .live_row(&row.account, c, o)
                .await
                .map_err(|_| Error::Conflict {
                    reason: "a segment of this large object is missing",
                })?;
            if seg.etag != s.hash || seg.size != s.bytes {
                return Err(Error::Conflict {
                    reason: "a segment of this large object changed",
                });
            }
            out.push(seg);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The stored form, as Swift writes it and `multipart-manifest=get` returns it.
    const FIXTURE: &str = r#"[{"name":"/b+segments/0123/00001","hash":"d41d8cd98f00b204e9800998ecf8427e","bytes":0,"content_type":"application/octet-stream","last_modified":"2024-01-31T12:34:56.123450"}]"#;

    #[test]
    fn stored_form_round_trips() {
        let segs: Vec<StoredSegment> = serde_json::from_str(FIXTURE).unwrap();
        assert_eq!(
            split_segment_name(&segs[0].name),
            Some(("b+segments", "0123/00001"))
        );
        assert_eq!(serde_json::to_string(&segs).unwrap(), FIXTURE);
        assert_eq!(split_segment_name("/c"), None);
    }

    #[test]
    fn etag_is_md5_of_hex_etags() {
        let e = slo_etag(["a", "b"]);
        assert_eq!(e, hex::encode(Md5::digest(b"ab")));
    }
}
