//! Buckets (the containers of the caller's account) and their listings.
//!
//! Listings are the store's Swift listings (prefix, delimiter roll-up, marker, limit) under
//! S3's names: `start-after` / `marker` / the continuation token are the Swift marker, common
//! prefixes are Swift's subdirs, and one extra row tells whether the page is truncated.

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use s3s::dto::*;
use s3s::{s3_error, S3Request, S3Response, S3Result};

use super::{error, meta, s3_time, S3Api, SEGMENTS_SUFFIX};
use crate::db::{ContainerRow, Entry, ListParams, ObjectRow};

/// Most keys in one listing page (S3's limit).
pub const MAX_KEYS: usize = 1000;

/// What `encoding-type=url` escapes: everything but unreserved characters and `/` (clients
/// decode with `unquote_plus`, so `+` and spaces must be escaped too).
const KEY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// The container row of `bucket` in `account`.
///
/// # Errors
/// `NoSuchBucket`; storage errors.
pub async fn container(api: &S3Api, account: &str, bucket: &str) -> S3Result<ContainerRow> {
    // A point lookup, on this task (see the store's docs on where work runs).
    api.store()
        .db
        .get_container(account, bucket)
        .map_err(error::bucket)?
        .ok_or_else(|| s3_error!(NoSuchBucket, "The specified bucket does not exist"))
}

/// The hidden container of `bucket`'s multipart parts.
pub fn segments_of(bucket: &str) -> String {
    format!("{bucket}{SEGMENTS_SUFFIX}")
}

pub async fn list_buckets(
    api: &S3Api,
    req: S3Request<ListBucketsInput>,
) -> S3Result<S3Response<ListBucketsOutput>> {
    let caller = api.caller(&req)?;
    let a = caller.account.clone();
    let p = ListParams {
        limit: 10_000,
        ..ListParams::default()
    };
    let rows = api
        .store()
        .blocking(move |s| s.db.list_containers(&a, &p))
        .await
        .map_err(error::bucket)?;
    let buckets = rows
        .into_iter()
        .filter_map(|e| match e {
            Entry::Item(c) if !c.name.ends_with(SEGMENTS_SUFFIX) => Some(Bucket {
                name: Some(c.name),
                creation_date: Some(s3_time(c.ts)),
                bucket_region: None,
            }),
            _ => None,
        })
        .collect();
    Ok(S3Response::new(ListBucketsOutput {
        buckets: Some(buckets),
        owner: Some(owner(&caller.account)),
        ..Default::default()
    }))
}

fn owner(account: &str) -> Owner {
    Owner {
        display_name: Some(account.to_owned()),
        id: Some(account.to_owned()),
    }
}

pub async fn create_bucket(
    api: &S3Api,
    req: S3Request<CreateBucketInput>,
) -> S3Result<S3Response<CreateBucketOutput>> {
    let caller = api.caller(&req)?;
    let bucket = req.input.bucket;
    if !s3s::path::check_bucket_name(&bucket) {
        return Err(s3_error!(
            InvalidBucketName,
            "The specified bucket is not valid."
        ));
    }
    let created = api
        .backend
        .create_container(&caller.account, &bucket)
        .await
        .map_err(error::bucket)?;
    if !created {
        return Err(s3_error!(
            BucketAlreadyOwnedByYou,
            "Your previous request to create the named bucket succeeded and you already own it."
        ));
    }
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %bucket, action = "container-put", api = "s3");
    Ok(S3Response::new(CreateBucketOutput {
        location: Some(format!("/{bucket}")),
    }))
}

pub async fn delete_bucket(
    api: &S3Api,
    req: S3Request<DeleteBucketInput>,
) -> S3Result<S3Response<DeleteBucketOutput>> {
    let caller = api.caller(&req)?;
    let bucket = req.input.bucket;
    let crow = container(api, &caller.account, &bucket).await?;
    let not_empty = || {
        s3_error!(
            BucketNotEmpty,
            "The bucket you tried to delete is not empty"
        )
    };
    if crow.object_count > 0 {
        return Err(not_empty());
    }
    match api.backend.delete_container(&caller.account, &bucket).await {
        Ok(()) => {}
        Err(crate::Error::Conflict { .. }) => return Err(not_empty()),
        Err(e) => return Err(error::bucket(e)),
    }
    // In-progress uploads and parts nothing refers to any more go with the bucket.
    super::multipart::drop_segments_container(api, &caller.account, &bucket).await?;
    tracing::info!(target: "audit", user = caller.ident.label(), account = %caller.account, container = %bucket, action = "container-delete", api = "s3");
    Ok(S3Response::new(DeleteBucketOutput {}))
}

pub async fn head_bucket(
    api: &S3Api,
    req: S3Request<HeadBucketInput>,
) -> S3Result<S3Response<HeadBucketOutput>> {
    let caller = api.caller(&req)?;
    container(api, &caller.account, &req.input.bucket).await?;
    Ok(S3Response::new(HeadBucketOutput {
        bucket_region: Some(api.region.clone()),
        ..Default::default()
    }))
}

pub async fn get_bucket_location(
    api: &S3Api,
    req: S3Request<GetBucketLocationInput>,
) -> S3Result<S3Response<GetBucketLocationOutput>> {
    let caller = api.caller(&req)?;
    container(api, &caller.account, &req.input.bucket).await?;
    // us-east-1 is reported as an empty constraint, as S3 does.
    let location_constraint =
        (api.region != "us-east-1").then(|| BucketLocationConstraint::from(api.region.clone()));
    Ok(S3Response::new(GetBucketLocationOutput {
        location_constraint,
    }))
}

/// One page of a bucket listing.
struct Page {
    contents: Vec<Object>,
    prefixes: Vec<CommonPrefix>,
    truncated: bool,
    /// The last key or common prefix of the page (where the next page starts after).
    last: Option<String>,
}

fn encode(s: &str, url: bool) -> String {
    if url {
        utf8_percent_encode(s, KEY_SET).to_string()
    } else {
        s.to_owned()
    }
}

fn listed_object(r: &ObjectRow, url: bool) -> Object {
    Object {
        key: Some(encode(&r.name, url)),
        last_modified: Some(s3_time(r.ts)),
        e_tag: Some(meta::etag(r)),
        size: Some(i64::try_from(r.size).unwrap_or(i64::MAX)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        ..Default::default()
    }
}

#[allow(clippy::too_many_arguments)]
async fn page(
    api: &S3Api,
    account: &str,
    bucket: &str,
    prefix: Option<&str>,
    delimiter: Option<&str>,
    marker: Option<String>,
    max_keys: Option<i32>,
    url: bool,
) -> S3Result<Page> {
    container(api, account, bucket).await?;
    let max = match max_keys {
        Some(n) if n < 0 => return Err(s3_error!(InvalidArgument, "max-keys must be >= 0")),
        Some(n) => usize::try_from(n).unwrap_or(MAX_KEYS).min(MAX_KEYS),
        None => MAX_KEYS,
    };
    if max == 0 {
        return Ok(Page {
            contents: Vec::new(),
            prefixes: Vec::new(),
            truncated: false,
            last: None,
        });
    }
    let p = ListParams {
        prefix: prefix.unwrap_or("").to_owned(),
        delimiter: delimiter.filter(|d| !d.is_empty()).map(str::to_owned),
        marker: marker.filter(|m| !m.is_empty()),
        limit: max + 1,
        live_at: Some(api.store().clock.wall_secs()),
        ..ListParams::default()
    };
    let (a, c) = (account.to_owned(), bucket.to_owned());
    let mut rows = api
        .store()
        .blocking(move |s| s.db.list_objects(&a, &c, &p))
        .await
        .map_err(error::bucket)?;
    let truncated = rows.len() > max;
    rows.truncate(max);
    let last = rows.last().map(|e| match e {
        Entry::Item(r) => r.name.clone(),
        Entry::Subdir(s) => s.clone(),
    });
    let mut contents = Vec::new();
    let mut prefixes = Vec::new();
    for e in rows {
        match e {
            Entry::Item(r) => contents.push(listed_object(&r, url)),
            Entry::Subdir(s) => prefixes.push(CommonPrefix {
                prefix: Some(encode(&s, url)),
            }),
        }
    }
    Ok(Page {
        contents,
        prefixes,
        truncated,
        last,
    })
}

fn is_url(e: Option<&EncodingType>) -> bool {
    e.is_some_and(|e| e.as_str() == EncodingType::URL)
}

fn token_of(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn marker_of_token(t: &str) -> S3Result<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            s3_error!(
                InvalidArgument,
                "The continuation token provided is incorrect"
            )
        })
}

pub async fn list_objects_v2(
    api: &S3Api,
    req: S3Request<ListObjectsV2Input>,
) -> S3Result<S3Response<ListObjectsV2Output>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    let url = is_url(i.encoding_type.as_ref());
    let marker = match &i.continuation_token {
        Some(t) => Some(marker_of_token(t)?),
        None => i.start_after.clone(),
    };
    let pg = page(
        api,
        &caller.account,
        &i.bucket,
        i.prefix.as_deref(),
        i.delimiter.as_deref(),
        marker,
        i.max_keys,
        url,
    )
    .await?;
    let key_count = i32::try_from(pg.contents.len() + pg.prefixes.len()).unwrap_or(i32::MAX);
    Ok(S3Response::new(ListObjectsV2Output {
        name: Some(i.bucket),
        prefix: Some(encode(i.prefix.as_deref().unwrap_or(""), url)),
        delimiter: i.delimiter.map(|d| encode(&d, url)),
        start_after: i.start_after.map(|s| encode(&s, url)),
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        key_count: Some(key_count),
        is_truncated: Some(pg.truncated),
        continuation_token: i.continuation_token,
        next_continuation_token: pg
            .truncated
            .then(|| pg.last.as_deref().map(token_of))
            .flatten(),
        contents: (!pg.contents.is_empty()).then_some(pg.contents),
        common_prefixes: (!pg.prefixes.is_empty()).then_some(pg.prefixes),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

pub async fn list_objects(
    api: &S3Api,
    req: S3Request<ListObjectsInput>,
) -> S3Result<S3Response<ListObjectsOutput>> {
    let caller = api.caller(&req)?;
    let i = req.input;
    let url = is_url(i.encoding_type.as_ref());
    let pg = page(
        api,
        &caller.account,
        &i.bucket,
        i.prefix.as_deref(),
        i.delimiter.as_deref(),
        i.marker.clone(),
        i.max_keys,
        url,
    )
    .await?;
    Ok(S3Response::new(ListObjectsOutput {
        name: Some(i.bucket),
        prefix: Some(encode(i.prefix.as_deref().unwrap_or(""), url)),
        marker: Some(encode(i.marker.as_deref().unwrap_or(""), url)),
        delimiter: i.delimiter.map(|d| encode(&d, url)),
        max_keys: Some(i.max_keys.unwrap_or(1000)),
        is_truncated: Some(pg.truncated),
        next_marker: pg
            .truncated
            .then(|| pg.last.as_deref().map(|l| encode(l, url)))
            .flatten(),
        contents: (!pg.contents.is_empty()).then_some(pg.contents),
        common_prefixes: (!pg.prefixes.is_empty()).then_some(pg.prefixes),
        encoding_type: i.encoding_type,
        ..Default::default()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoding_and_tokens() {
        assert_eq!(encode("a b+c/d%e", true), "a%20b%2Bc/d%25e");
        assert_eq!(encode("a b", false), "a b");
        assert_eq!(marker_of_token(&token_of("dir/é")).unwrap(), "dir/é");
        assert!(marker_of_token("!!").is_err());
    }
}
