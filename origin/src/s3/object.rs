//! Objects: PutObject (streamed, `Content-MD5` checked before anything is stored), GetObject
//! and HeadObject (ranges, conditionals, multipart objects read through their manifest),
//! DeleteObject(s), CopyObject (metadata directive `COPY` or `REPLACE`).

use futures_util::TryStreamExt;
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::meta::{self, Standard};
use super::{bucket, checksum, error, multipart, s3_time, S3Api};
use crate::db::{ContainerRow, Meta, ObjectRow};
use crate::hlc::Timestamp as Ts;
use crate::store::{NewVersion, ObjectHeaders};

/// Checks an object key the way the Swift API checks object names.
pub fn check_key(key: &str) -> S3Result<()> {
    if key.len() > crate::names::MAX_OBJECT {
        return Err(s3_error!(KeyTooLongError, "Your key is too long"));
    }
    crate::names::check_object(key).map_err(|e| s3_error!(InvalidArgument, "{e}"))
}

/// A stored write: the new version's MD5 and size, and its timestamp.
pub struct Written {
    /// MD5 hex of the data.
    pub md5: String,
    /// Bytes.
    pub size: u64,
    /// Version timestamp.
    pub ts: Ts,
}

/// A request body and the `x-amz-checksum-*` values it must match.
pub struct Incoming {
    /// The body (`None`: empty).
    pub data: Option<StreamingBlob>,
    /// Checksums the client sent.
    pub sums: checksum::Expected,
}

/// Validates, stages and commits a body as the current version of `container/name`: quotas,
/// size and metadata limits first; then the body; a `Content-MD5` or `x-amz-checksum-*`
/// mismatch or a short body removes the staged file (nothing stored).
///
/// # Errors
/// S3 errors of [`error::key`]; `BadDigest`.
pub async fn write(
    api: &S3Api,
    account: &str,
    crow: &ContainerRow,
    name: &str,
    h: ObjectHeaders,
    body: Incoming,
    extra: Meta,
) -> S3Result<Written> {
    let st = api.store();
    let new = st
        .validate_put(account, crow, name, h, true)
        .await
        .map_err(error::key)?;
    let max = st.cfg.max_object_size;
    let mut hasher = body.sums.hasher();
    let staged = match body.data {
        Some(b) => {
            let b = b.inspect_ok(|chunk| hasher.update(chunk));
            st.files
                .stage(b, max, new.expected, st.cfg.client_timeout)
                .await
                .map_err(error::key)?
        }
        None if new.expected.unwrap_or(0) == 0 => st
            .files
            .stage_bytes(bytes::Bytes::new())
            .await
            .map_err(error::key)?,
        None => return Err(s3_error!(IncompleteBody)),
    };
    if new.etag.as_ref().is_some_and(|e| *e != staged.md5) {
        return Err(s3_error!(
            BadDigest,
            "The Content-MD5 you specified did not match what we received."
        ));
    }
    body.sums.verify(hasher)?;
    if new.expected.is_none() {
        st.check_quota(account, crow, staged.size)
            .await
            .map_err(error::key)?;
    }
    let ts = st.clock.now();
    let (md5, size) = (staged.md5.clone(), staged.size);
    let mut meta = new.meta;
    meta.extend(extra);
    api.backend
        .put_version(
            staged,
            NewVersion {
                account: account.to_owned(),
                container: crow.name.clone(),
                name: name.to_owned(),
                ts,
                etag: md5.clone(),
                size,
                content_type: new.content_type,
                meta,
                delete_at: new.delete_at,
                slo: false,
            },
        )
        .await
        .map_err(error::key)?;
    Ok(Written { md5, size, ts })
}

/// The live row of `bucket/key`, if any.
async fn current(api: &S3Api, account: &str, bucket: &str, key: &str) -> Option<ObjectRow> {
    api.backend.row(account, bucket, key).await.ok()
}

fn cond_matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value() == etag,
    }
}

fn secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

/// S3's (RFC 9110's) order: If-Match, else If-Unmodified-Since; then If-None-Match, else
/// If-Modified-Since. `NotModified` is 304, `PreconditionFailed` 412.
fn preconditions(
    row: &ObjectRow,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
    if_modified_since: Option<&Timestamp>,
    if_unmodified_since: Option<&Timestamp>,
) -> S3Result<()> {
    let etag = meta::etag_value(row);
    let modified = i64::try_from(row.ts.ceil_secs()).unwrap_or(i64::MAX);
    if let Some(c) = if_match {
        if !cond_matches(c, etag) {
            return Err(s3_error!(PreconditionFailed, "If-Match did not match"));
        }
    } else if let Some(t) = if_unmodified_since {
        if modified > secs(t) {
            return Err(s3_error!(
                PreconditionFailed,
                "modified since If-Unmodified-Since"
            ));
        }
    }
    if let Some(c) = if_none_match {
        if cond_matches(c, etag) {
            return Err(s3_error!(NotModified));
        }
    } else if let Some(t) = if_modified_since {
        if modified <= secs(t) {
            return Err(s3_error!(NotModified));
        }
    }
    Ok(())
}

fn len_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub async fn put_object(
    api: &S3Api,
    req: S3Request<PutObjectInput>,
) -> S3Result<S3Response<PutObjectOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    check_key(&i.key)?;
    let crow = bucket::container(api, &caller.account, &i.bucket).await?;
    let old = current(api, &caller.account, &i.bucket, &i.key).await;
    if i.if_none_match.as_ref().is_some_and(ETagCondition::is_any) && old.is_some() {
        return Err(s3_error!(PreconditionFailed, "the object already exists"));
    }
    if let Some(c) = &i.if_match {
        match &old {
            Some(o) if cond_matches(c, meta::etag_value(o)) => {}
            _ => return Err(s3_error!(PreconditionFailed, "If-Match did not match")),
        }
    }
    let std = Standard {
        cache_control: i.cache_control,
        content_disposition: i.content_disposition,
        content_encoding: i.content_encoding,
        content_language: i.content_language,
        expires: i.expires,
    };
    let items = meta::updates(i.metadata.as_ref(), &std)?;
    let h = meta::object_headers(
        i.content_length,
        i.content_type,
        i.content_md5.as_deref(),
        items,
    )?;
    let parts = multipart::parts_of(api, old.as_ref()).await;
    let body = Incoming {
        data: i.body,
        sums: checksum::expected_of!(i, req),
    };
    let w = write(api, &caller.account, &crow, &i.key, h, body, Meta::new()).await?;
    multipart::drop_parts(api, &caller.account, parts).await;
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %i.bucket, object = %i.key, ts = %w.ts, action = "object-put", api = "s3");
    Ok(S3Response::new(PutObjectOutput {
        e_tag: Some(ETag::Strong(w.md5)),
        size: Some(len_i64(w.size)),
        ..Default::default()
    }))
}

pub async fn get_object(
    api: &S3Api,
    req: S3Request<GetObjectInput>,
) -> S3Result<S3Response<GetObjectOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    let o = api
        .backend
        .open(&caller.account, &i.bucket, &i.key, i.range.as_ref())
        .await?;
    let row = o.row;
    preconditions(
        &row,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let len = o.len;
    let (content_length, content_range) = match o.range {
        None => (len, None),
        Some(rg) => (
            rg.end - rg.start,
            Some(format!(
                "bytes {}-{}/{len}",
                rg.start,
                rg.end.saturating_sub(1)
            )),
        ),
    };
    let std = Standard::of(&row.meta);
    Ok(S3Response::new(GetObjectOutput {
        body: Some(o.body),
        content_length: Some(len_i64(content_length)),
        content_range,
        accept_ranges: Some("bytes".into()),
        content_type: Some(row.content_type.clone()),
        e_tag: Some(meta::etag(&row)),
        last_modified: Some(s3_time(row.ts)),
        metadata: meta::user_metadata(&row.meta),
        cache_control: std.cache_control,
        content_disposition: std.content_disposition,
        content_encoding: std.content_encoding,
        content_language: std.content_language,
        expires: std.expires,
        ..Default::default()
    }))
}

pub async fn head_object(
    api: &S3Api,
    req: S3Request<HeadObjectInput>,
) -> S3Result<S3Response<HeadObjectOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    let row = api
        .backend
        .row(&caller.account, &i.bucket, &i.key)
        .await
        .map_err(error::key)?;
    preconditions(
        &row,
        i.if_match.as_ref(),
        i.if_none_match.as_ref(),
        i.if_modified_since.as_ref(),
        i.if_unmodified_since.as_ref(),
    )?;
    let (content_length, content_range) = match &i.range {
        None => (row.size, None),
        Some(r) => {
            let rg = r.check(row.size)?;
            let cr = format!("bytes {}-{}/{}", rg.start, rg.end - 1, row.size);
            (rg.end - rg.start, Some(cr))
        }
    };
    let std = Standard::of(&row.meta);
    Ok(S3Response::new(HeadObjectOutput {
        content_length: Some(len_i64(content_length)),
        content_range,
        accept_ranges: Some("bytes".into()),
        content_type: Some(row.content_type.clone()),
        e_tag: Some(meta::etag(&row)),
        last_modified: Some(s3_time(row.ts)),
        metadata: meta::user_metadata(&row.meta),
        cache_control: std.cache_control,
        content_disposition: std.content_disposition,
        content_encoding: std.content_encoding,
        content_language: std.content_language,
        expires: std.expires,
        ..Default::default()
    }))
}

/// Deletes `bucket/key` if it exists (and the parts of a multipart object). Deleting a
/// missing key succeeds, as in S3.
async fn delete_one(api: &S3Api, account: &str, bucket: &str, key: &str) -> S3Result<()> {
    let Some(row) = current(api, account, bucket, key).await else {
        return Ok(());
    };
    let parts = multipart::parts_of(api, Some(&row)).await;
    api.backend.delete(&row).await.map_err(error::key)?;
    multipart::drop_parts(api, account, parts).await;
    Ok(())
}

pub async fn delete_object(
    api: &S3Api,
    req: S3Request<DeleteObjectInput>,
) -> S3Result<S3Response<DeleteObjectOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    delete_one(api, &caller.account, &i.bucket, &i.key).await?;
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %i.bucket, object = %i.key, action = "object-delete", api = "s3");
    Ok(S3Response::new(DeleteObjectOutput::default()))
}

pub async fn delete_objects(
    api: &S3Api,
    req: S3Request<DeleteObjectsInput>,
) -> S3Result<S3Response<DeleteObjectsOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    bucket::container(api, &caller.account, &i.bucket).await?;
    if i.delete.objects.len() > 1000 {
        return Err(s3_error!(
            MalformedXML,
            "at most 1000 keys may be deleted in one request"
        ));
    }
    let quiet = i.delete.quiet.unwrap_or(false);
    let (mut deleted, mut errors) = (Vec::new(), Vec::new());
    for o in i.delete.objects {
        match delete_one(api, &caller.account, &i.bucket, &o.key).await {
            Ok(()) => {
                if !quiet {
                    deleted.push(DeletedObject {
                        key: Some(o.key),
                        ..Default::default()
                    });
                }
            }
            Err(e) => errors.push(Error {
                code: Some(e.code().as_str().to_owned()),
                key: Some(o.key),
                message: e.message().map(str::to_owned),
                version_id: None,
            }),
        }
    }
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %i.bucket, action = "objects-delete", api = "s3");
    Ok(S3Response::new(DeleteObjectsOutput {
        deleted: Some(deleted),
        errors: (!errors.is_empty()).then_some(errors),
        ..Default::default()
    }))
}

pub async fn copy_object(
    api: &S3Api,
    req: S3Request<CopyObjectInput>,
) -> S3Result<S3Response<CopyObjectOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    check_key(&i.key)?;
    let CopySource::Bucket {
        bucket: sb,
        key: sk,
        ..
    } = &i.copy_source
    else {
        return Err(s3_error!(NotImplemented, "copy sources must be bucket/key"));
    };
    let (sb, sk) = (sb.to_string(), sk.to_string());
    bucket::container(api, &caller.account, &sb).await?;
    let crow = bucket::container(api, &caller.account, &i.bucket).await?;
    let opened = api.backend.open(&caller.account, &sb, &sk, None).await?;
    let (src, len) = (opened.row, opened.len);
    preconditions(
        &src,
        i.copy_source_if_match.as_ref(),
        i.copy_source_if_none_match.as_ref(),
        i.copy_source_if_modified_since.as_ref(),
        i.copy_source_if_unmodified_since.as_ref(),
    )
    .map_err(|e| {
        // A copy's unmet source condition is a 412 whichever header it was.
        if *e.code() == s3s::S3ErrorCode::NotModified {
            s3_error!(PreconditionFailed, "copy source condition not met")
        } else {
            e
        }
    })?;
    let replace = i
        .metadata_directive
        .as_ref()
        .is_some_and(|d| d.as_str() == MetadataDirective::REPLACE);
    if !replace && sb == i.bucket && sk == i.key {
        return Err(s3_error!(
            InvalidRequest,
            "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
        ));
    }
    let (content_type, items) = if replace {
        let std = Standard {
            cache_control: i.cache_control,
            content_disposition: i.content_disposition,
            content_encoding: i.content_encoding,
            content_language: i.content_language,
            expires: i.expires,
        };
        (i.content_type, meta::updates(i.metadata.as_ref(), &std)?)
    } else {
        (Some(src.content_type.clone()), Vec::new())
    };
    // COPY keeps the source's metadata (the S3 ETag of a multipart source does not apply to
    // the flat copy).
    let mut extra = Meta::new();
    if !replace {
        extra = src.meta.clone();
        extra.remove(meta::S3_ETAG);
    }
    let h = ObjectHeaders {
        content_length: Some(len),
        content_type,
        meta: items,
        ..ObjectHeaders::default()
    };
    let old = current(api, &caller.account, &i.bucket, &i.key).await;
    let stream = opened.body;
    let parts = multipart::parts_of(api, old.as_ref()).await;
    let body = Incoming {
        data: Some(stream),
        sums: checksum::Expected::none(),
    };
    let w = write(api, &caller.account, &crow, &i.key, h, body, extra).await?;
    multipart::drop_parts(api, &caller.account, parts).await;
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %i.bucket, object = %i.key, ts = %w.ts, action = "object-copy", api = "s3");
    Ok(S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(w.md5)),
            last_modified: Some(s3_time(w.ts)),
            ..Default::default()
        }),
        ..Default::default()
    }))
}
