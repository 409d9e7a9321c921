//! Static Large Object manifests as the store keeps them: the segment list a client sends
//! (`multipart-manifest=put`), the stored form (Swift's, returned by
//! `multipart-manifest=get`), and the check of each segment against its current version.
//!
//! The store writes and resolves manifests too ([`Store::put_manifest`],
//! [`Store::segment_rows`]): the S3 front-end's multipart uploads are SLOs written that way, so
//! a Swift client and the edge read a completed upload as one object.
//!
//! Both Swift front-ends use it: a single node looks segments up in its own database
//! (`api/slo.rs`), the cluster proxy HEADs them through the ring (`cluster/slo.rs`). How a
//! segment's version was found is the caller's business; what it must match is decided here.
//!
//! Invariant: a stored manifest's ETag is the MD5 of its segments' ETags concatenated in order
//! and its size the sum of their sizes ([`Manifest::etag`], [`Manifest::size`]), so any node
//! holding the manifest's data derives both from the data alone (a replica receiving a
//! manifest checks the ETag it was sent against it).

use std::sync::Arc;

use bytes::Bytes;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::{NewVersion, Store};
use crate::db::{Applied, Meta, ObjectRow};
use crate::hlc::Timestamp;
use crate::{Error, Result};

/// Most segments in one manifest (Swift's default).
pub const MAX_SEGMENTS: usize = 1000;
/// Largest manifest body accepted.
pub const MAX_MANIFEST_BYTES: usize = 8 * 1024 * 1024;

/// One segment as a client sends it in `multipart-manifest=put`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutSegment {
    /// `/<container>/<object>`.
    pub path: String,
    /// The ETag the segment must have, if given.
    #[serde(default)]
    pub etag: Option<String>,
    /// The size the segment must have, if given.
    #[serde(default)]
    pub size_bytes: Option<u64>,
}

/// One segment as stored (Swift's stored manifest format).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSegment {
    /// `/<container>/<object>`.
    pub name: String,
    /// The segment's ETag when the manifest was written.
    pub hash: String,
    /// Its size.
    pub bytes: u64,
    /// Its content type.
    pub content_type: String,
    /// Its timestamp, ISO 8601.
    pub last_modified: String,
}

impl StoredSegment {
    /// The segment's container and object.
    ///
    /// # Errors
    /// [`Error::Task`] for a stored name that is not `/<container>/<object>` (we never write
    /// one).
    pub fn target(&self) -> Result<(&str, &str)> {
        split_segment_path(&self.name).ok_or(Error::Task)
    }
}

/// The current version of a segment, however the caller looked it up.
#[derive(Debug, Clone)]
pub struct SegmentVersion {
    /// ETag (unquoted).
    pub etag: String,
    /// Size in bytes.
    pub size: u64,
    /// Content type.
    pub content_type: String,
    /// Timestamp.
    pub ts: Timestamp,
    /// True if the segment is itself a manifest.
    pub slo: bool,
}

/// A manifest error (400 `bad-manifest`).
pub fn bad(reason: impl Into<String>) -> Error {
    Error::BadManifest {
        reason: reason.into(),
    }
}

/// Splits `/<container>/<object>` (the leading `/` is optional).
pub fn split_segment_path(p: &str) -> Option<(&str, &str)> {
    let t = p.strip_prefix('/').unwrap_or(p);
    let (c, o) = t.split_once('/')?;
    (!c.is_empty() && !o.is_empty()).then_some((c, o))
}

/// Parses a `multipart-manifest=put` body.
///
/// # Errors
/// [`Error::BadManifest`]: not JSON, no segments, more than [`MAX_SEGMENTS`], a path that is
/// not `/<container>/<object>`.
pub fn parse_put(raw: &[u8]) -> Result<Vec<PutSegment>> {
    let segs: Vec<PutSegment> = serde_json::from_slice(raw)
        .map_err(|e| bad(format!("not a JSON list of segments: {e}")))?;
    if segs.is_empty() {
        return Err(bad("manifest has no segments"));
    }
    if segs.len() > MAX_SEGMENTS {
        return Err(bad(format!("more than {MAX_SEGMENTS} segments")));
    }
    for (i, s) in segs.iter().enumerate() {
        s.target(i)?;
    }
    Ok(segs)
}

impl PutSegment {
    /// The segment's container and object.
    ///
    /// # Errors
    /// [`Error::BadManifest`] naming segment `i`.
    pub fn target(&self, i: usize) -> Result<(&str, &str)> {
        split_segment_path(&self.path)
            .ok_or_else(|| bad(format!("segment {i}: path must be /<container>/<object>")))
    }

    /// Checks segment `i` against its current version (`None`: it does not exist) and returns
    /// its stored form.
    ///
    /// # Errors
    /// [`Error::BadManifest`]: missing, nested manifest, ETag or size mismatch.
    pub fn check(&self, i: usize, v: Option<&SegmentVersion>) -> Result<StoredSegment> {
        let (c, o) = self.target(i)?;
        let v = v.ok_or_else(|| bad(format!("segment {i}: {} does not exist", self.path)))?;
        if v.slo {
            return Err(bad(format!(
                "segment {i}: nested large objects are not supported"
            )));
        }
        if let Some(e) = &self.etag {
            if e.trim_matches('"') != v.etag {
                return Err(bad(format!("segment {i}: ETag mismatch for {}", self.path)));
            }
        }
        if self.size_bytes.is_some_and(|n| n != v.size) {
            return Err(bad(format!("segment {i}: size mismatch for {}", self.path)));
        }
        Ok(StoredSegment {
            name: format!("/{c}/{o}"),
            hash: v.etag.clone(),
            bytes: v.size,
            content_type: v.content_type.clone(),
            last_modified: v.ts.iso(),
        })
    }
}

/// A stored manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The segments, in order.
    pub segments: Vec<StoredSegment>,
}

impl Manifest {
    /// Parses a stored manifest (the data of an SLO version).
    ///
    /// # Errors
    /// [`Error::Task`] for data that is not a stored manifest.
    pub fn parse(raw: &[u8]) -> Result<Manifest> {
        let segments: Vec<StoredSegment> = serde_json::from_slice(raw).map_err(|_| Error::Task)?;
        Ok(Manifest { segments })
    }

    /// The stored form.
    ///
    /// # Errors
    /// [`Error::Task`] (serializing our own types does not fail).
    pub fn to_json(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(&self.segments).map_err(|_| Error::Task)
    }

    /// The SLO's ETag: MD5 of the segments' ETags, concatenated (Swift's rule).
    pub fn etag(&self) -> String {
        let mut h = Md5::new();
        for s in &self.segments {
            h.update(s.hash.as_bytes());
        }
        hex::encode(h.finalize())
    }

    /// The SLO's size: the sum of its segments'.
    pub fn size(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

/// The ETag and size of the SLO whose stored manifest is the file at `path` (a replica
/// receiving a manifest derives them from the data, see the module's invariant).
///
/// # Errors
/// [`Error::BadManifest`] when the file is not a stored manifest; I/O errors.
pub async fn summary_of(path: &std::path::Path) -> Result<(String, u64)> {
    let raw = tokio::fs::read(path).await?;
    let m = Manifest::parse(&raw).map_err(|_| bad("the data is not a stored manifest"))?;
    Ok((m.etag(), m.size()))
}

/// The content type of a new manifest: the client's, else guessed from the object name.
pub fn manifest_content_type(given: Option<&str>, object: &str) -> String {
    given
        .filter(|c| !c.trim().is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| {
            mime_guess::from_path(object)
                .first_raw()
                .unwrap_or("application/octet-stream")
                .to_owned()
        })
}

/// The body Swift answers to `DELETE ?multipart-manifest=delete` (JSON when asked for, else
/// its plain-text form) and its content type.
pub fn delete_report(deleted: u64, not_found: u64, json: bool) -> (String, &'static str) {
    if json {
        let body = serde_json::json!({
            "Number Deleted": deleted,
            "Number Not Found": not_found,
            "Response Status": "200 OK",
            "Response Body": "",
            "Errors": [],
        });
        (body.to_string(), "application/json; charset=utf-8")
    } else {
        (
            format!("Number Deleted: {deleted}\nNumber Not Found: {not_found}\nResponse Body: \nResponse Status: 200 OK\nErrors: \n"),
            "text/plain; charset=utf-8",
        )
    }
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
        let manifest = Manifest { segments: stored };
        let (etag, total) = (manifest.etag(), manifest.size());
        let json = manifest.to_json()?;
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
        Ok(Manifest::parse(&raw)?.segments)
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
            let (c, o) = split_segment_path(&s.name).ok_or(Error::Task)?;
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

    fn version(etag: &str, size: u64) -> SegmentVersion {
        SegmentVersion {
            etag: etag.into(),
            size,
            content_type: "video/mp4".into(),
            ts: "1700000000.00000".parse().unwrap(),
            slo: false,
        }
    }

    #[test]
    fn put_manifest_checks_each_segment() {
        let segs = parse_put(br#"[{"path":"/s/1","etag":"\"aa\"","size_bytes":3},{"path":"s/2"}]"#)
            .unwrap();
        let a = segs[0].check(0, Some(&version("aa", 3))).unwrap();
        let b = segs[1].check(1, Some(&version("bb", 5))).unwrap();
        assert_eq!((a.name.as_str(), b.name.as_str()), ("/s/1", "/s/2"));
        assert!(segs[0].check(0, Some(&version("ab", 3))).is_err());
        assert!(segs[0].check(0, Some(&version("aa", 4))).is_err());
        assert!(segs[0].check(0, None).is_err());
        let mut nested = version("aa", 3);
        nested.slo = true;
        assert!(segs[0].check(0, Some(&nested)).is_err());
        let m = Manifest {
            segments: vec![a, b],
        };
        assert_eq!(m.size(), 8);
        assert_eq!(m.etag(), hex::encode(Md5::digest(b"aabb")));
        assert_eq!(Manifest::parse(&m.to_json().unwrap()).unwrap(), m);
    }

    #[test]
    fn bad_put_manifests() {
        assert!(parse_put(b"[]").is_err());
        assert!(parse_put(b"{}").is_err());
        assert!(parse_put(br#"[{"path":"/only"}]"#).is_err());
        assert!(parse_put(br#"[{"path":"/c/o","extra":1}]"#).is_err());
        let many = format!(
            "[{}]",
            vec![r#"{"path":"/c/o"}"#; MAX_SEGMENTS + 1].join(",")
        );
        assert!(parse_put(many.as_bytes()).is_err());
    }
}
