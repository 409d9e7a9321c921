//! Multipart uploads, stored so that Swift and the edge read a completed upload as one object.
//!
//! ## Layout
//! Everything of bucket `b` lives in its hidden container `b+segments` (created with the
//! first upload; S3 bucket names cannot contain `+`, and ListBuckets hides it):
//! - `<upload-id>`: the upload record (JSON, [`UploadRecord`], format 1): key, content type,
//!   metadata, when it started.
//! - `<upload-id>/<part number, 5 digits>`: each part, an ordinary object written through the
//!   store (quotas, feed, replication as any write).
//!
//! CompleteMultipartUpload checks the listed parts (order, ETags, S3's 5 MiB minimum for all
//! but the last), then writes a Static Large Object manifest over them at the key with
//! [`crate::store::Store::put_manifest`] (in a cluster [`crate::cluster::slo::put_rows`]: the
//! parts are ring-placed objects on their own replicas), keeping S3's ETag (`<md5 of the part MD5s>-<N>`)
//! as system metadata; parts not listed and the record are removed. Nothing is visible at
//! the key before the manifest commits. Overwriting or deleting a completed upload through
//! S3 removes its parts; through Swift they stay (as Swift's SLO segments do).

use futures_util::TryStreamExt;
use md5::{Digest, Md5};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};

use super::meta::{self, Standard};
use super::{bucket, checksum, error, object, s3_time, S3Api};
use crate::db::{Entry, ListParams, Meta, ObjectRow};
use crate::store::slo::{split_segment_path, NewManifest};

/// S3's smallest part, except the last.
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// S3's largest part number.
pub const MAX_PART_NUMBER: i32 = 10_000;

/// An upload in progress, as stored at `<bucket>+segments/<upload-id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UploadRecord {
    /// Format version (1).
    pub format: u32,
    /// The object key the upload completes into.
    pub key: String,
    /// Content type of the completed object.
    pub content_type: String,
    /// Metadata of the completed object (store names).
    pub meta: Meta,
    /// When the upload started (hybrid-clock ticks).
    pub initiated: u64,
}

const FORMAT: u32 = 1;

/// Largest upload record read back (metadata is limited to a few KiB; the record is JSON).
const MAX_RECORD: u64 = 1 << 20;

fn no_upload() -> s3s::S3Error {
    s3_error!(
        NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )
}

/// Upload ids are 32 lower-case hex digits (they become object names).
fn check_id(id: &str) -> S3Result<()> {
    if id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(no_upload())
    }
}

fn part_name(id: &str, n: i32) -> String {
    format!("{id}/{n:05}")
}

async fn read_record(api: &S3Api, account: &str, bucket: &str, id: &str) -> S3Result<UploadRecord> {
    check_id(id)?;
    let seg = bucket::segments_of(bucket);
    let o = api
        .backend
        .open(account, &seg, id, None)
        .await
        .map_err(|_| no_upload())?;
    if o.len > MAX_RECORD {
        return Err(no_upload());
    }
    let raw: Vec<u8> = o
        .body
        .try_fold(Vec::new(), |mut acc, b| async move {
            acc.extend_from_slice(&b);
            Ok(acc)
        })
        .await
        .map_err(|_| no_upload())?;
    let r: UploadRecord = serde_json::from_slice(&raw).map_err(|_| no_upload())?;
    if r.format != FORMAT {
        return Err(no_upload());
    }
    Ok(r)
}

/// The record of upload `id`, which must be for `key`.
async fn record_for(
    api: &S3Api,
    account: &str,
    bucket: &str,
    key: &str,
    id: &str,
) -> S3Result<UploadRecord> {
    let r = read_record(api, account, bucket, id).await?;
    if r.key != key {
        return Err(no_upload());
    }
    Ok(r)
}

/// Up to `limit` live rows of the segments container, from `marker` on, under `prefix`.
async fn list_rows(
    api: &S3Api,
    account: &str,
    seg: &str,
    prefix: &str,
    marker: Option<String>,
    delimiter: Option<&str>,
    limit: usize,
) -> S3Result<Vec<Entry<ObjectRow>>> {
    let p = ListParams {
        prefix: prefix.to_owned(),
        marker,
        delimiter: delimiter.map(str::to_owned),
        limit,
        ..ListParams::default()
    };
    let (a, c) = (account.to_owned(), seg.to_owned());
    api.store()
        .blocking(move |s| s.db.list_objects(&a, &c, &p))
        .await
        .map_err(error::bucket)
}

/// Every part row of upload `id`.
async fn all_parts(api: &S3Api, account: &str, seg: &str, id: &str) -> S3Result<Vec<ObjectRow>> {
    let mut out = Vec::new();
    let mut marker = None;
    loop {
        let rows = list_rows(api, account, seg, &format!("{id}/"), marker, None, 10_000).await?;
        let n = rows.len();
        for e in rows {
            if let Entry::Item(r) = e {
                out.push(r);
            }
        }
        if n < 10_000 {
            return Ok(out);
        }
        marker = out.last().map(|r| r.name.clone());
    }
}

async fn tombstone_all(api: &S3Api, rows: &[ObjectRow]) -> S3Result<()> {
    for r in rows {
        api.backend.delete(r).await.map_err(error::key)?;
    }
    Ok(())
}

/// The parts a completed S3 upload's manifest names (read before the version is replaced,
/// which unlinks the manifest): the segments in its bucket's `+segments` container.
pub async fn parts_of(api: &S3Api, old: Option<&ObjectRow>) -> Vec<(String, String)> {
    let Some(old) = old.filter(|o| o.slo && o.meta.contains_key(meta::S3_ETAG)) else {
        return Vec::new();
    };
    let seg = bucket::segments_of(&old.container);
    match api.backend.manifest(old).await {
        Ok(segs) => segs
            .iter()
            .filter_map(|s| split_segment_path(&s.name))
            .filter(|(c, _)| *c == seg)
            .map(|(c, o)| (c.to_owned(), o.to_owned()))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, object = %old.name, "cannot read a replaced upload's manifest; its parts stay");
            Vec::new()
        }
    }
}

/// Removes parts found by [`parts_of`] once the version naming them is replaced. Best
/// effort: the write already succeeded; a failure leaves unreferenced parts (logged).
pub async fn drop_parts(api: &S3Api, account: &str, parts: Vec<(String, String)>) {
    for (c, o) in parts {
        if let Ok(row) = api.store().live_row(account, &c, &o).await {
            if let Err(e) = api.backend.delete(&row).await {
                tracing::warn!(error = %e, container = %c, object = %o, "cannot remove a replaced upload's part");
            }
        }
    }
}

/// Removes `bucket`'s hidden container with everything in it (the bucket is being deleted).
///
/// # Errors
/// Storage errors.
pub async fn drop_segments_container(api: &S3Api, account: &str, bucket: &str) -> S3Result<()> {
    let seg = bucket::segments_of(bucket);
    let (a, c) = (account.to_owned(), seg.clone());
    let exists = api
        .store()
        .blocking(move |s| s.db.get_container(&a, &c))
        .await
        .map_err(error::bucket)?
        .is_some();
    if !exists {
        return Ok(());
    }
    loop {
        let rows = list_rows(api, account, &seg, "", None, None, 10_000).await?;
        if rows.is_empty() {
            break;
        }
        let items: Vec<ObjectRow> = rows
            .into_iter()
            .filter_map(|e| match e {
                Entry::Item(r) => Some(r),
                Entry::Subdir(_) => None,
            })
            .collect();
        tombstone_all(api, &items).await?;
    }
    match api.backend.delete_container(account, &seg).await {
        Ok(()) | Err(crate::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(error::bucket(e)),
    }
}

fn random_id() -> S3Result<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| s3_error!(InternalError))?;
    Ok(hex::encode(b))
}

pub async fn create(
    api: &S3Api,
    req: S3Request<CreateMultipartUploadInput>,
) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    object::check_key(&i.key)?;
    bucket::container(api, &caller.account, &i.bucket).await?;
    let std = Standard {
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_encoding: i.content_encoding,
        content_language: i.content_language,
        expires: i.expires,
    };
    // The completed object's metadata is checked now, not at the end of a long upload.
    let items = meta::updates(i.metadata.as_ref(), &std)?;
    let stored = crate::store::validate::check_meta(items).map_err(error::key)?;
    let record = UploadRecord {
        format: FORMAT,
        content_type: crate::store::validate::content_type(
            i.content_type.as_deref(),
            false,
            &i.key,
        ),
        key: i.key.clone(),
        meta: crate::store::validate::version_meta(stored),
        initiated: api.store().clock.now().0,
    };
    let seg = bucket::segments_of(&i.bucket);
    let (a, c) = (caller.account.clone(), seg.clone());
    let exists = api
        .store()
        .blocking(move |s| s.db.get_container(&a, &c))
        .await
        .map_err(error::bucket)?
        .is_some();
    if !exists {
        api.backend
            .create_container(&caller.account, &seg)
            .await
            .map_err(error::bucket)?;
    }
    let id = random_id()?;
    let json = serde_json::to_vec(&record).map_err(|_| s3_error!(InternalError))?;
    api.backend
        .put_bytes(
            (&caller.account, &seg, &id),
            "application/json",
            json.into(),
        )
        .await
        .map_err(error::key)?;
    Ok(S3Response::new(CreateMultipartUploadOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(id),
        ..Default::default()
    }))
}

pub async fn upload_part(
    api: &S3Api,
    req: S3Request<UploadPartInput>,
) -> S3Result<S3Response<UploadPartOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    if !(1..=MAX_PART_NUMBER).contains(&i.part_number) {
        return Err(s3_error!(
            InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive"
        ));
    }
    bucket::container(api, &caller.account, &i.bucket).await?;
    record_for(api, &caller.account, &i.bucket, &i.key, &i.upload_id).await?;
    let seg = bucket::segments_of(&i.bucket);
    let scrow = bucket::container(api, &caller.account, &seg).await?;
    let h = meta::object_headers(
        i.content_length,
        Some("application/octet-stream".into()),
        i.content_md5.as_deref(),
        Vec::new(),
    )?;
    let name = part_name(&i.upload_id, i.part_number);
    let body = object::Incoming {
        data: i.body,
        sums: checksum::expected_of!(i, req),
    };
    let w = object::write(api, &caller.account, &scrow, &name, h, body, Meta::new()).await?;
    Ok(S3Response::new(UploadPartOutput {
        e_tag: Some(ETag::Strong(w.md5)),
        ..Default::default()
    }))
}

/// S3's multipart ETag: MD5 of the concatenated binary part MD5s, `-<number of parts>`.
pub fn multipart_etag(part_md5s: &[String]) -> S3Result<String> {
    let mut h = Md5::new();
    for e in part_md5s {
        let raw = hex::decode(e).map_err(|_| s3_error!(InternalError))?;
        h.update(raw);
    }
    Ok(format!("{}-{}", hex::encode(h.finalize()), part_md5s.len()))
}

pub async fn complete(
    api: &S3Api,
    req: S3Request<CompleteMultipartUploadInput>,
) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    let record = record_for(api, &caller.account, &i.bucket, &i.key, &i.upload_id).await?;
    let listed = i
        .multipart_upload
        .and_then(|m| m.parts)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| {
            s3_error!(
                MalformedXML,
                "The XML you provided was not well-formed or did not validate against our published schema"
            )
        })?;
    let seg = bucket::segments_of(&i.bucket);
    let mut rows = Vec::with_capacity(listed.len());
    let mut prev = 0;
    for p in &listed {
        let n = p
            .part_number
            .ok_or_else(|| s3_error!(InvalidPart, "a part has no PartNumber"))?;
        if n <= prev {
            return Err(s3_error!(
                InvalidPartOrder,
                "The list of parts was not in ascending order."
            ));
        }
        prev = n;
        let row = api
            .backend
            .row(&caller.account, &seg, &part_name(&i.upload_id, n))
            .await
            .map_err(|_| s3_error!(InvalidPart, "part {n} was not uploaded"))?;
        if p.e_tag.as_ref().is_some_and(|e| e.value() != row.etag) {
            return Err(s3_error!(
                InvalidPart,
                "the ETag of part {n} does not match"
            ));
        }
        rows.push(row);
    }
    let last = rows.len() - 1;
    if let Some((n, r)) = rows
        .iter()
        .enumerate()
        .find(|(k, r)| *k < last && r.size < MIN_PART)
    {
        return Err(s3_error!(
            EntityTooSmall,
            "Your proposed upload is smaller than the minimum allowed object size (part {}: {} bytes; 5 MiB except the last part)",
            n + 1,
            r.size
        ));
    }
    let md5s: Vec<String> = rows.iter().map(|r| r.etag.clone()).collect();
    let s3_etag = multipart_etag(&md5s)?;
    let mut m = record.meta.clone();
    m.insert(meta::S3_ETAG.to_owned(), s3_etag.clone());
    let old = api
        .backend
        .row(&caller.account, &i.bucket, &i.key)
        .await
        .ok();
    let replaced = parts_of(api, old.as_ref()).await;
    let used: std::collections::HashSet<String> = rows.iter().map(|r| r.name.clone()).collect();
    api.backend
        .put_manifest(NewManifest {
            account: caller.account.clone(),
            container: i.bucket.clone(),
            name: i.key.clone(),
            segments: rows,
            content_type: record.content_type,
            meta: m,
            ts: api.store().clock.now(),
        })
        .await
        .map_err(error::key)?;
    drop_parts(api, &caller.account, replaced).await;
    // The record and the parts the manifest does not use go.
    let unused: Vec<ObjectRow> = all_parts(api, &caller.account, &seg, &i.upload_id)
        .await?
        .into_iter()
        .filter(|r| !used.contains(&r.name))
        .collect();
    tombstone_all(api, &unused).await?;
    if let Ok(r) = api.backend.row(&caller.account, &seg, &i.upload_id).await {
        tombstone_all(api, &[r]).await?;
    }
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %i.bucket, object = %i.key, action = "object-put", api = "s3-multipart");
    Ok(S3Response::new(CompleteMultipartUploadOutput {
        location: Some(format!("/{}/{}", i.bucket, i.key)),
        bucket: Some(i.bucket),
        key: Some(i.key),
        e_tag: Some(ETag::Strong(s3_etag)),
        ..Default::default()
    }))
}

pub async fn abort(
    api: &S3Api,
    req: S3Request<AbortMultipartUploadInput>,
) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    record_for(api, &caller.account, &i.bucket, &i.key, &i.upload_id).await?;
    let seg = bucket::segments_of(&i.bucket);
    let parts = all_parts(api, &caller.account, &seg, &i.upload_id).await?;
    tombstone_all(api, &parts).await?;
    if let Ok(r) = api.backend.row(&caller.account, &seg, &i.upload_id).await {
        tombstone_all(api, &[r]).await?;
    }
    Ok(S3Response::new(AbortMultipartUploadOutput::default()))
}

pub async fn list_parts(
    api: &S3Api,
    req: S3Request<ListPartsInput>,
) -> S3Result<S3Response<ListPartsOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    record_for(api, &caller.account, &i.bucket, &i.key, &i.upload_id).await?;
    let seg = bucket::segments_of(&i.bucket);
    let max = usize::try_from(i.max_parts.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
    let marker = i.part_number_marker;
    let rows = list_rows(
        api,
        &caller.account,
        &seg,
        &format!("{}/", i.upload_id),
        marker.map(|m| part_name(&i.upload_id, m)),
        None,
        max + 1,
    )
    .await?;
    let truncated = rows.len() > max;
    let parts: Vec<Part> = rows
        .into_iter()
        .take(max)
        .filter_map(|e| match e {
            Entry::Item(r) => Some(r),
            Entry::Subdir(_) => None,
        })
        .filter_map(|r| {
            let n: i32 = r.name.rsplit('/').next()?.parse().ok()?;
            Some(Part {
                part_number: Some(n),
                e_tag: Some(ETag::Strong(r.etag.clone())),
                size: Some(i64::try_from(r.size).unwrap_or(i64::MAX)),
                last_modified: Some(s3_time(r.ts)),
                ..Default::default()
            })
        })
        .collect();
    let next = parts.last().and_then(|p| p.part_number);
    Ok(S3Response::new(ListPartsOutput {
        bucket: Some(i.bucket),
        key: Some(i.key),
        upload_id: Some(i.upload_id),
        max_parts: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        part_number_marker: i.part_number_marker,
        next_part_number_marker: truncated.then_some(next).flatten(),
        parts: Some(parts),
        storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
        ..Default::default()
    }))
}

pub async fn list_uploads(
    api: &S3Api,
    req: S3Request<ListMultipartUploadsInput>,
) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    let seg = bucket::segments_of(&i.bucket);
    let (a, c) = (caller.account.clone(), seg.clone());
    let exists = api
        .store()
        .blocking(move |s| s.db.get_container(&a, &c))
        .await
        .map_err(error::bucket)?
        .is_some();
    let mut uploads: Vec<(String, String, u64)> = Vec::new();
    if exists {
        // Records are the names without a '/' (parts roll up into `<id>/`).
        let rows = list_rows(api, &caller.account, &seg, "", None, Some("/"), 10_000).await?;
        for e in rows {
            if let Entry::Item(r) = e {
                if let Ok(rec) = read_record(api, &caller.account, &i.bucket, &r.name).await {
                    uploads.push((rec.key, r.name, rec.initiated));
                }
            }
        }
    }
    let prefix = i.prefix.clone().unwrap_or_default();
    uploads.retain(|(k, _, _)| k.starts_with(&prefix));
    uploads.sort();
    if let Some(km) = &i.key_marker {
        let im = i.upload_id_marker.clone().unwrap_or_default();
        uploads.retain(|(k, id, _)| k > km || (k == km && !im.is_empty() && *id > im));
    }
    let max = usize::try_from(i.max_uploads.unwrap_or(1000).clamp(1, 1000)).unwrap_or(1000);
    let truncated = uploads.len() > max;
    uploads.truncate(max);
    let next = uploads.last().cloned();
    let list = uploads
        .into_iter()
        .map(|(key, id, initiated)| MultipartUpload {
            key: Some(key),
            upload_id: Some(id),
            initiated: Some(s3_time(crate::hlc::Timestamp(initiated))),
            storage_class: Some(StorageClass::from_static(StorageClass::STANDARD)),
            ..Default::default()
        })
        .collect();
    Ok(S3Response::new(ListMultipartUploadsOutput {
        bucket: Some(i.bucket),
        prefix: i.prefix,
        key_marker: i.key_marker,
        upload_id_marker: i.upload_id_marker,
        max_uploads: Some(i32::try_from(max).unwrap_or(1000)),
        is_truncated: Some(truncated),
        next_key_marker: truncated.then(|| next.clone().map(|n| n.0)).flatten(),
        next_upload_id_marker: truncated.then(|| next.map(|n| n.1)).flatten(),
        uploads: Some(list),
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Format 1 of the upload record, as stored.
    const RECORD_V1: &str = r#"{"format":1,"key":"a/b.bin","content_type":"application/octet-stream","meta":{"x-object-meta-k":"v"},"initiated":171234567800000}"#;

    #[test]
    fn record_format_1_round_trips() {
        let r: UploadRecord = serde_json::from_str(RECORD_V1).unwrap();
        assert_eq!(r.format, 1);
        assert_eq!(r.key, "a/b.bin");
        assert_eq!(serde_json::to_string(&r).unwrap(), RECORD_V1);
        assert!(serde_json::from_str::<UploadRecord>(
            &RECORD_V1.replace("\"format\"", "\"bogus\":1,\"format\"")
        )
        .is_err());
    }

    #[test]
    fn ids_and_etags() {
        assert!(check_id(&"a".repeat(32)).is_ok());
        assert!(check_id("../x").is_err());
        assert!(check_id(&"A".repeat(32)).is_err());
        assert_eq!(part_name("ab", 7), "ab/00007");
        // Two parts whose MD5s are those of "" and "a".
        let e = multipart_etag(&[
            "d41d8cd98f00b204e9800998ecf8427e".into(),
            "0cc175b9c0f1b6a831c399e269772661".into(),
        ])
        .unwrap();
        let mut h = Md5::new();
        h.update(hex::decode("d41d8cd98f00b204e9800998ecf8427e").unwrap());
        h.update(hex::decode("0cc175b9c0f1b6a831c399e269772661").unwrap());
        assert_eq!(e, format!("{}-2", hex::encode(h.finalize())));
    }
}
