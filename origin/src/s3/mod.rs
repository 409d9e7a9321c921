//! The S3 API beside the Swift API: the same accounts, containers and objects under S3's
//! names (a bucket is a container of the key's account, a key is an object name), served on
//! `[s3] listen`.
//!
//! ## Where it sits
//! A second front-end over [`crate::store`], beside `api/` (Swift): every write goes through
//! the store (`validate_put`, then `put_version`, `tombstone`, `put_manifest` on this node or
//! through the cluster, see [`Backend`]), so it lands in the
//! change feed (edges purge), counts against quotas and replicates exactly like a Swift
//! write. It never imports `api/`. s3s does the protocol: routing, SigV4 header and
//! presigned-query verification (with the secrets of [`Keys`]), XML in and out; this module
//! implements [`s3s::S3`] on the store.
//!
//! ## Files
//! - `backend.rs`: [`Backend`], where data lives (this node's store, or a cluster).
//! - `auth.rs`: access keys → the `[[auth.users]]` identity; virtual-hosted-style `Host`s.
//! - `bucket.rs`: ListBuckets, CreateBucket, DeleteBucket, HeadBucket, GetBucketLocation,
//!   ListObjects (v1 and v2).
//! - `object.rs`: PutObject, GetObject, HeadObject, DeleteObject(s), CopyObject.
//! - `multipart.rs`: multipart uploads, stored as segments in `<bucket>+segments` and
//!   completed as a Static Large Object manifest.
//! - `meta.rs`: S3 headers ↔ stored Swift metadata (`x-amz-meta-k` is `X-Object-Meta-K`).
//! - `checksum.rs`: `x-amz-checksum-*` (header or trailer) checked against the body.
//! - `error.rs`: store errors → S3 error codes. GET bodies come from [`crate::store::pieces`].
//!
//! ## Cluster mode
//! Every node of a cluster may serve `[s3]`. The handlers hold a [`Backend`]: rows and
//! listings come from the local store in both modes (every node holds every row), while
//! writes, data reads and bucket creates/deletes go through it, which in a cluster calls the
//! proxy role's typed entry points ([`crate::cluster::objects`], [`crate::cluster::slo`],
//! [`crate::cluster::broadcast`]): an S3 write through a node is stored exactly as a Swift
//! write through it (quorum, handoffs, listing rows and feed entries on every node).
//!
//! ## Limits
//! No anonymous S3 access (public containers are served by Swift URLs and the edge), no versioning, ACL,
//! policy, tagging or lifecycle APIs (s3s answers `NotImplemented`).

mod auth;
mod backend;
mod bucket;
mod checksum;
mod error;
mod meta;
mod multipart;
mod object;

use std::sync::Arc;
use std::time::Instant;

use axum::response::{IntoResponse, Response};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3Request, S3Response, S3Result};

use crate::config::s3::S3Config;
use crate::store::Store;

pub use auth::{Caller, Keys};
pub use backend::Backend;

/// Suffix of the hidden container holding a bucket's multipart parts and upload records.
/// S3 bucket names cannot contain `+`, so it never clashes with a bucket.
pub const SEGMENTS_SUFFIX: &str = "+segments";

/// The S3 service: where objects live, the keys, the region.
#[derive(Debug, Clone)]
pub struct S3Api {
    backend: Backend,
    keys: Keys,
    region: String,
}

/// Which container names S3 requests may address: any Swift container name (so containers
/// made through Swift are reachable as buckets) except the hidden `+segments` ones. New
/// buckets must also pass S3's naming rules (CreateBucket checks them).
struct ContainerNames;

impl s3s::validation::NameValidation for ContainerNames {
    fn validate_bucket_name(&self, name: &str) -> bool {
        crate::names::check_container(name).is_ok() && !name.ends_with(SEGMENTS_SUFFIX)
    }
}

/// The S3 API as an axum router for the origin's accept loop (`server.rs` serves it on
/// `[s3] listen` with the same `[limits]` as the Swift API).
pub fn router(backend: Backend, cfg: &S3Config) -> axum::Router {
    let keys = Keys::new(&cfg.keys);
    let store = Arc::clone(backend.store());
    let api = S3Api {
        backend,
        keys: keys.clone(),
        region: cfg.region.clone(),
    };
    let mut b = S3ServiceBuilder::new(api);
    b.set_auth(keys);
    b.set_validation(ContainerNames);
    if let Some(d) = &cfg.domain {
        b.set_host(auth::Domain::new(d.clone()));
    }
    let svc = b.build();
    axum::Router::new().fallback(move |req: axum::extract::Request| {
        let (svc, store) = (svc.clone(), Arc::clone(&store));
        async move { serve(&svc, &store, req).await }
    })
}

/// One request through s3s, with the origin's request metrics and access log.
async fn serve(svc: &S3Service, store: &Store, req: axum::extract::Request) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let sends_body = has_body(req.headers());
    let mut resp = match svc.call(req.map(s3s::Body::http_body_unsync)).await {
        Ok(r) => r.map(axum::body::Body::new),
        Err(e) => {
            tracing::error!(error = ?e, "S3 service failed");
            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    };
    // An error may be answered before the body is read (a missing upload, a bad signature).
    // With `Expect: 100-continue` the client then never sends it, while the connection would
    // otherwise wait to drain it and read the next request's first bytes as this body (seen
    // with botocore: `OST /...`). Closing the connection is the unambiguous end (RFC 9110
    // 10.1.1).
    if sends_body && resp.status().as_u16() >= 400 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    let status = resp.status().as_u16();
    let bytes = resp
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    let dur = started.elapsed();
    store.metrics.observe(method.as_str(), status, dur, bytes);
    tracing::info!(
        target: "access",
        api = "s3",
        method = %method,
        path = %path,
        status,
        bytes,
        duration_ms = dur.as_secs_f64() * 1000.0,
    );
    resp
}

/// Whether a request announces a body (a non-zero `Content-Length`, or chunked).
fn has_body(h: &http::HeaderMap) -> bool {
    h.contains_key(http::header::TRANSFER_ENCODING)
        || h.get(http::header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// `Timestamp` of a stored version (whole seconds, rounded up as Swift's `Last-Modified`).
fn s3_time(ts: crate::hlc::Timestamp) -> Timestamp {
    let secs = i64::try_from(ts.ceil_secs()).unwrap_or(i64::MAX);
    time::OffsetDateTime::from_unix_timestamp(secs)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .into()
}

impl S3Api {
    /// This node's store.
    fn store(&self) -> &Arc<Store> {
        self.backend.store()
    }

    fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Caller> {
        self.keys.caller(req)
    }
}

#[async_trait::async_trait]
impl s3s::S3 for S3Api {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        bucket::list_buckets(self, req).await
    }

    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        bucket::create_bucket(self, req).await
    }

    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        bucket::delete_bucket(self, req).await
    }

    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        bucket::head_bucket(self, req).await
    }

    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        bucket::get_bucket_location(self, req).await
    }

    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        bucket::list_objects(self, req).await
    }

    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        bucket::list_objects_v2(self, req).await
    }

    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        object::put_object(self, req).await
    }

    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        object::get_object(self, req).await
    }

    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        object::head_object(self, req).await
    }

    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        object::delete_object(self, req).await
    }

    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        object::delete_objects(self, req).await
    }

    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        object::copy_object(self, req).await
    }

    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create(self, req).await
    }

    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }

    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete(self, req).await
    }

    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort(self, req).await
    }

    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }

    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_uploads(self, req).await
    }
}
