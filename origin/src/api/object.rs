//! Object requests: GET/HEAD (ranges, conditionals), PUT (streamed, MD5-checked), POST, DELETE,
//! COPY and `X-Copy-From`, `X-Delete-At`/`X-Delete-After`, tempurl access.

use std::time::{Duration, UNIX_EPOCH};

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, Method, StatusCode};
use outpost_auth::{AccessRequest, KeySet, KeyStore, NoRevocations, TempUrlKeys, VerifyOptions};

use super::body::{self, Piece};
use super::container::ReadAcl;
use super::range::{self, RangeOutcome};
use super::{blocking, deny, meta_updates, put_meta, set, slo, status, Identity, Req, Shared};
use crate::db::{Applied, ContainerRow, Meta, ObjectRow};
use crate::files::Staged;
use crate::hlc::Timestamp;
use crate::{Error, Result};

/// System headers stored with an object besides `X-Object-Meta-*` (Swift's
/// `allowed_headers`): the edge serves `Cache-Control` and `Expires` downstream and caches by
/// them (RFC 9111).
pub(super) const OBJECT_SYS: &[&str] = &[
    "content-disposition",
    "content-encoding",
    "content-language",
    "cache-control",
    "expires",
    "x-robots-tag",
];

/// Per-container default `Cache-Control` (CDN metadata).
pub use outpost_proto::meta::CONTAINER_CACHE_CONTROL as CACHE_CONTROL_META;

/// Everything a tempurl or token check needs from the account and container.
struct OriginKeys {
    tempurl: Vec<String>,
    tokens: Option<KeySet>,
}

impl KeyStore for OriginKeys {
    fn token_keys(&self, _account: &str) -> Option<&KeySet> {
        self.tokens.as_ref()
    }
    fn tempurl_keys(&self, _account: &str, _container: &str) -> TempUrlKeys<'_> {
        let refs: Vec<&[u8]> = self.tempurl.iter().map(|k| k.as_bytes()).collect();
        TempUrlKeys::from_slice(&refs)
    }
}

/// Checks a tempurl or Outpost token for a request by someone who does not own the account.
async fn signed_access(st: &Shared, r: &Req, container: &ContainerRow) -> Result<()> {
    let account = r.path.account().to_owned();
    let row = blocking(st, move |s| s.db.get_account(&account)).await?;
    let Some(acct) = row else {
        return Err(deny(&r.ident));
    };
    let mut tempurl = Vec::new();
    for k in outpost_proto::meta::ACCOUNT_TEMPURL_KEYS {
        tempurl.extend(acct.meta.get(k).cloned());
    }
    for k in outpost_proto::meta::CONTAINER_TEMPURL_KEYS {
        tempurl.extend(container.meta.get(k).cloned());
    }
    let keys = OriginKeys {
        tempurl,
        tokens: KeySet::new(acct.token_keys).ok(),
    };
    let req = AccessRequest {
        method: r.method.as_str(),
        path: &r.path,
        query: r.raw_query.as_deref(),
        path_token: None,
        headers: &r.headers,
        client_ip: r.client_ip,
        now: st.clock.wall_secs(),
    };
    match outpost_auth::verify(&req, &keys, &NoRevocations, &VerifyOptions::default()) {
        Ok(_) => Ok(()),
        Err(outpost_auth::Error::NoCredential) => Err(deny(&r.ident)),
        Err(e) => {
            tracing::info!(reason = e.deny_reason().as_str(), "signed access denied");
            Err(Error::Unauthorized {
                reason: match e.deny_reason() {
                    outpost_auth::DenyReason::Expired => "temporary URL expired",
                    outpost_auth::DenyReason::WrongIp => {
                        "temporary URL not valid from this address"
                    }
                    outpost_auth::DenyReason::WrongScope => {
                        "temporary URL does not cover this request"
                    }
                    _ => "temporary URL invalid",
                },
            })
        }
    }
}

pub(super) async fn handle(st: &Shared, r: Req, container: &str, object: &str) -> Result<Response> {
    if let Some(kind) = r.direct {
        return direct(st, r, kind, container, object).await;
    }
    let account = r.path.account().to_owned();
    let owner = r.ident.owns(&account);
    let (a, c) = (account.clone(), container.to_owned());
    let crow = blocking(st, move |s| s.db.get_container(&a, &c)).await?;
    let Some(crow) = crow else {
        // Only the owner learns whether a container exists.
        return Err(if owner {
            Error::NotFound { what: "container" }
        } else {
            deny(&r.ident)
        });
    };
    let readable = matches!(r.method, Method::GET | Method::HEAD) && ReadAcl::of(&crow).public;
    let mut via_tempurl = false;
    if !owner && !readable {
        if r.method.as_str() == "COPY" {
            return Err(deny(&r.ident));
        }
        signed_access(st, &r, &crow).await?;
        via_tempurl = true;
    }
    let o = object.to_owned();
    if st.cluster.is_some() {
        return crate::cluster::proxy::object(st, r, crow, o).await;
    }
    match r.method {
        Method::GET | Method::HEAD => get(st, r, crow, o, via_tempurl).await,
        Method::PUT => put(st, r, crow, o).await,
        Method::POST => post(st, r, crow, o).await,
        Method::DELETE => delete(st, r, crow.name, o).await,
        ref m if m.as_str() == "COPY" => copy_method(st, r, crow, o).await,
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The live, unexpired row of an object.
pub(super) async fn live_row(
    st: &Shared,
    account: &str,
    container: &str,
    object: &str,
) -> Result<ObjectRow> {
    let (a, c, o) = (account.to_owned(), container.to_owned(), object.to_owned());
    let row = blocking(st, move |s| s.db.get_object(&a, &c, &o)).await?;
    let now = st.clock.wall_secs();
    match row {
        Some(r) if !r.deleted && r.delete_at.is_none_or(|d| d > now) => Ok(r),
        _ => Err(Error::NotFound { what: "object" }),
    }
}

/// The live row of an object and its data file, opened: the body then streams that version
/// even if a newer one replaces it meanwhile. Retries when the version it read was replaced
/// before its file could be opened.
pub(super) async fn open_live(
    st: &Shared,
    account: &str,
    container: &str,
    object: &str,
) -> Result<(ObjectRow, Piece)> {
    for _ in 0..5 {
        let row = live_row(st, account, container, object).await?;
        let path = data_path(st, &row);
        let p = path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            let f = std::fs::File::open(&p)?;
            let len = f.metadata()?.len();
            Ok::<_, std::io::Error>((f, len))
        })
        .await
        .map_err(|_| Error::Task)?;
        match opened {
            Ok((f, len)) => {
                let piece = Piece {
                    path,
                    file: Some(std::sync::Arc::new(f)),
                    offset: 0,
                    len,
                };
                return Ok((row, piece));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(Error::Conflict {
        reason: "the object kept changing while being opened; retry",
    })
}

/// Where a row's data lives.
pub(super) fn data_path(st: &Shared, row: &ObjectRow) -> std::path::PathBuf {
    let hash = outpost_ring::object_hash_hex(&row.account, &row.container, &row.name);
    st.files.data_path(row.part, &hash, row.ts)
}

fn strip_quotes(s: &str) -> &str {
    s.trim().trim_start_matches("W/").trim_matches('"')
}

fn etag_matches(list: &str, etag: &str) -> bool {
    list.split(',').any(|t| {
        let t = t.trim();
        t == "*" || strip_quotes(t) == etag
    })
}

fn http_time(h: &HeaderMap, name: &str) -> Option<u64> {
    let v = h.get(name)?.to_str().ok()?;
    let t = httpdate::parse_http_date(v).ok()?;
    t.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

/// RFC 9110 §13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.
/// Returns `Some(304)` for a not-modified answer.
fn preconditions(
    h: &HeaderMap,
    method: &Method,
    etag: &str,
    modified: u64,
) -> Result<Option<StatusCode>> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    if let Some(im) = get("if-match") {
        if !etag_matches(im, etag) {
            return Err(Error::PreconditionFailed {
                reason: "If-Match did not match",
            });
        }
    } else if let Some(t) = http_time(h, "if-unmodified-since") {
        if modified > t {
            return Err(Error::PreconditionFailed {
                reason: "modified since If-Unmodified-Since",
            });
        }
    }
    let safe = matches!(*method, Method::GET | Method::HEAD);
    if let Some(inm) = get("if-none-match") {
        if etag_matches(inm, etag) {
            return if safe {
                Ok(Some(StatusCode::NOT_MODIFIED))
            } else {
                Err(Error::PreconditionFailed {
                    reason: "If-None-Match matched",
                })
            };
        }
    } else if let Some(t) = http_time(h, "if-modified-since") {
        if safe && modified <= t {
            return Ok(Some(StatusCode::NOT_MODIFIED));
        }
    }
    Ok(None)
}

fn object_headers(h: &mut HeaderMap, row: &ObjectRow, crow: &ContainerRow, etag_header: &str) {
    set(h, "content-type", &row.content_type);
    set(h, "etag", etag_header);
    set(h, "last-modified", row.ts.http_date());
    set(h, "x-timestamp", row.ts);
    set(h, "accept-ranges", "bytes");
    put_meta(h, &row.meta);
    if !row.meta.contains_key("cache-control") {
        if let Some(cc) = crow.meta.get(CACHE_CONTROL_META) {
            set(h, "cache-control", cc);
        }
    }
    if let Some(d) = row.delete_at {
        set(h, "x-delete-at", d);
    }
    if row.slo {
        set(h, "x-static-large-object", "True");
    }
}

async fn get(
    st: &Shared,
    r: Req,
    crow: ContainerRow,
    object: String,
    via_tempurl: bool,
) -> Result<Response> {
    let (row, data) = open_live(st, r.path.account(), &crow.name, &object).await?;
    let manifest_get = r
        .query
        .get("multipart-manifest")
        .is_some_and(|v| v == "get");
    let (pieces, len, etag_header, cond_etag) = if row.slo && !manifest_get {
        let pieces = slo::pieces(st, &row).await?;
        (
            pieces,
            row.size,
            format!("\"{}\"", row.etag),
            row.etag.clone(),
        )
    } else {
        let len = data.len;
        (
            vec![data],
            len,
            format!("\"{}\"", row.etag),
            row.etag.clone(),
        )
    };
    let mut resp = Response::new(Body::empty());
    object_headers(resp.headers_mut(), &row, &crow, &etag_header);
    if manifest_get {
        set(
            resp.headers_mut(),
            "content-type",
            "application/json; charset=utf-8",
        );
    }
    if via_tempurl {
        if let Some(f) = r.query.get("filename") {
            let kind = if r.query.contains_key("inline") {
                "inline"
            } else {
                "attachment"
            };
            let safe: String = f.chars().filter(|c| !c.is_control() && *c != '"').collect();
            set(
                resp.headers_mut(),
                "content-disposition",
                format!("{kind}; filename=\"{safe}\""),
            );
        } else if r.query.contains_key("inline") {
            set(resp.headers_mut(), "content-disposition", "inline");
        }
    }
    if let Some(code) = preconditions(&r.headers, &r.method, &cond_etag, row.ts.ceil_secs())? {
        *resp.status_mut() = code;
        resp.headers_mut().remove("content-type");
        return Ok(resp);
    }
    let head = r.method == Method::HEAD;
    let ranges = if if_range_ok(&r.headers, &cond_etag, row.ts.ceil_secs()) {
        range::parse(r.header("range"), len)
    } else {
        RangeOutcome::Full
    };
    match ranges {
        RangeOutcome::Full => {
            set(resp.headers_mut(), "content-length", len);
            if !head {
                *resp.body_mut() = body::whole(pieces);
            }
        }
        RangeOutcome::Unsatisfiable => return Err(Error::RangeNotSatisfiable { len }),
        RangeOutcome::Partial(rs) if rs.len() == 1 => {
            let rg = rs[0];
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            set(resp.headers_mut(), "content-range", rg.content_range(len));
            set(resp.headers_mut(), "content-length", rg.len());
            if !head {
                *resp.body_mut() = body::whole(body::slice(&pieces, rg));
            }
        }
        RangeOutcome::Partial(rs) => {
            let b = range::boundary();
            let ct = row.content_type.clone();
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
                *resp.body_mut() = body::multipart(&pieces, &rs, &b, &ct, len);
            }
        }
    }
    Ok(resp)
}

/// `If-Range`: ranges apply only if the validator still matches (strong ETag or exact date).
fn if_range_ok(h: &HeaderMap, etag: &str, modified: u64) -> bool {
    let Some(v) = h.get("if-range").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if let Ok(t) = httpdate::parse_http_date(v) {
        return t.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).ok() == Some(modified);
    }
    !v.starts_with("W/") && strip_quotes(v) == etag
}

/// Reads `X-Delete-At` / `X-Delete-After`.
pub(super) fn delete_at(h: &HeaderMap, now: u64) -> Result<Option<u64>> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::trim);
    if let Some(v) = get("x-delete-at") {
        let t: u64 = v.parse().map_err(|_| Error::BadHeader {
            name: "x-delete-at",
            reason: "must be epoch seconds",
        })?;
        if t <= now {
            return Err(Error::BadHeader {
                name: "x-delete-at",
                reason: "is in the past",
            });
        }
        return Ok(Some(t));
    }
    if let Some(v) = get("x-delete-after") {
        let d: u64 = v.parse().map_err(|_| Error::BadHeader {
            name: "x-delete-after",
            reason: "must be a number of seconds",
        })?;
        if d == 0 {
            return Err(Error::BadHeader {
                name: "x-delete-after",
                reason: "must be positive",
            });
        }
        return Ok(Some(now + d));
    }
    Ok(None)
}

pub(super) fn content_type(h: &HeaderMap, name: &str) -> String {
    let given = h
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .map(str::trim);
    let detect = h
        .get("x-detect-content-type")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
    match given {
        Some(ct) if !ct.is_empty() && !detect => ct.to_owned(),
        _ => mime_guess::from_path(name)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .to_owned(),
    }
}

/// Quota metadata (Swift's `container_quotas` and `account_quotas` middleware).
const CONTAINER_QUOTA_BYTES: &str = "x-container-meta-quota-bytes";
const CONTAINER_QUOTA_COUNT: &str = "x-container-meta-quota-count";
/// Set only by a reseller admin.
pub(super) const ACCOUNT_QUOTA_BYTES: &str = "x-account-meta-quota-bytes";

fn quota(meta: &Meta, key: &str) -> Option<u64> {
    meta.get(key).and_then(|v| v.trim().parse().ok())
}

/// Refuses a write of `size` bytes that would take the container or the account past its
/// quota. Like Swift, an overwrite is counted as an addition (quotas are approximate).
pub(super) async fn check_quota(
    st: &Shared,
    account: &str,
    crow: &ContainerRow,
    size: u64,
) -> Result<()> {
    if quota(&crow.meta, CONTAINER_QUOTA_BYTES).is_some_and(|q| crow.bytes_used + size > q) {
        return Err(Error::QuotaExceeded {
            what: "container bytes",
        });
    }
    if quota(&crow.meta, CONTAINER_QUOTA_COUNT).is_some_and(|q| crow.object_count + 1 > q) {
        return Err(Error::QuotaExceeded {
            what: "container object count",
        });
    }
    let a = account.to_owned();
    let acct = blocking(st, move |s| s.db.get_account(&a)).await?;
    if let Some(acct) = acct {
        if quota(&acct.meta, ACCOUNT_QUOTA_BYTES).is_some_and(|q| acct.bytes_used + size > q) {
            return Err(Error::QuotaExceeded {
                what: "account bytes",
            });
        }
    }
    Ok(())
}

/// The timestamp of a write: now, or the original one when a peer replicates it.
pub(super) fn write_ts(st: &super::AppState, r: &Req) -> Result<Timestamp> {
    if r.ident == Identity::Internal {
        if let Some(v) = r.header("x-timestamp") {
            let ts: Timestamp = v.parse()?;
            st.clock.observe(ts);
            return Ok(ts);
        }
    }
    Ok(st.clock.now())
}

/// What a new version consists of, besides its data.
pub(super) struct NewVersion {
    pub account: String,
    pub container: String,
    pub name: String,
    pub ts: Timestamp,
    pub etag: String,
    pub size: u64,
    pub content_type: String,
    pub meta: Meta,
    pub delete_at: Option<u64>,
    pub slo: bool,
}

/// Makes a staged file the current version: rename into place, then the metadata row (newest
/// wins), then drop the replaced version's file.
pub(super) async fn store(st: &Shared, staged: Staged, v: NewVersion) -> Result<Applied<()>> {
    let hash = outpost_ring::object_hash_hex(&v.account, &v.container, &v.name);
    let part = outpost_ring::partition_of_hex(st.part_power(), &hash);
    let dest = st.files.data_path(part, &hash, v.ts);
    st.files.commit(staged, &dest).await?;
    let row = ObjectRow {
        account: v.account,
        container: v.container,
        name: v.name,
        ts: v.ts,
        deleted: false,
        size: v.size,
        etag: v.etag,
        content_type: v.content_type,
        meta: v.meta,
        delete_at: v.delete_at,
        slo: v.slo,
        part,
        listing_only: false,
    };
    // From the commit on, run to the end even if the client goes away: a dropped request
    // must not leave the replaced version's file (or an unused new one) behind.
    let st = std::sync::Arc::clone(st);
    detached(async move {
        let row2 = row.clone();
        match blocking(&st, move |s| s.db.put_object(&row2)).await {
            Ok(Applied::Yes(old)) => {
                // A listing row completed with its data (same version) has no file of its
                // own: its path is the one just written.
                if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                    st.files.remove(data_path(&st, &old)).await;
                }
                tracing::info!(target: "audit", account = %row.account, container = %row.container, object = %row.name, ts = %row.ts, action = "object-put");
                Ok(Applied::Yes(()))
            }
            Ok(Applied::Stale) => {
                // The same version already stored (a retried or replicated copy) lives at
                // this very path: keep it.
                let (a, c, o) = (row.account.clone(), row.container.clone(), row.name.clone());
                let cur = blocking(&st, move |s| s.db.get_object(&a, &c, &o)).await?;
                let same = cur.is_some_and(|c| c.ts == row.ts && !c.deleted && !c.listing_only);
                if !same {
                    st.files.remove(dest).await;
                }
                Ok(Applied::Stale)
            }
            Err(e) => {
                st.files.remove(dest).await;
                Err(e)
            }
        }
    })
    .await
}

/// Runs a future to completion on its own task, so dropping the caller (a client that
/// disconnects) cannot stop it between a metadata commit and the file clean-up that follows.
async fn detached<T: Send + 'static>(
    fut: impl std::future::Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(fut).await.map_err(|_| Error::Task)?
}

fn created(etag: &str, ts: Timestamp) -> Response {
    let mut resp = status(StatusCode::CREATED);
    let h = resp.headers_mut();
    // Quoted, as HTTP requires and Swift sends (clients strip the quotes).
    set(h, "etag", format!("\"{etag}\""));
    set(h, "last-modified", ts.http_date());
    set(h, "x-timestamp", ts);
    set(h, "content-length", 0);
    resp
}

async fn put(st: &Shared, mut r: Req, crow: ContainerRow, object: String) -> Result<Response> {
    if r.headers.contains_key("x-object-manifest") {
        return Err(Error::BadHeader {
            name: "x-object-manifest",
            reason: "dynamic large objects are not supported; use static large objects",
        });
    }
    // Swift's create-only PUT: `If-None-Match: *` fails if the object exists.
    if let Some(v) = r.header("if-none-match") {
        if v.trim() != "*" {
            return Err(Error::BadHeader {
                name: "if-none-match",
                reason: "only '*' is supported on PUT",
            });
        }
        if live_row(st, r.path.account(), &crow.name, &object)
            .await
            .is_ok()
        {
            return Err(Error::PreconditionFailed {
                reason: "If-None-Match: * and the object exists",
            });
        }
    }
    if r.query
        .get("multipart-manifest")
        .is_some_and(|v| v == "put")
    {
        return slo::put(st, r, crow, object).await;
    }
    if let Some(src) = r.header("x-copy-from").map(str::to_owned) {
        return copy(st, r, crow, object, &src).await;
    }
    let expected = match r.header("content-length") {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| Error::BadHeader {
            name: "content-length",
            reason: "must be a number",
        })?),
        None => None,
    };
    let chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if expected.is_none() && !chunked {
        return Err(Error::LengthRequired);
    }
    let max = st.cfg.max_object_size;
    if expected.is_some_and(|e| e > max) {
        return Err(Error::TooLarge { max });
    }
    if r.direct.is_none() {
        check_quota(st, r.path.account(), &crow, expected.unwrap_or(0)).await?;
    }
    let now = st.clock.wall_secs();
    let meta = new_meta(&r.headers)?;
    let delete_at = delete_at(&r.headers, now)?;
    let ct = content_type(&r.headers, &object);
    let client_etag = r
        .header("etag")
        .map(|e| strip_quotes(e).to_ascii_lowercase());
    let body = r.take_body();
    let staged = st
        .files
        .stage(
            body.into_data_stream(),
            max,
            expected,
            st.cfg.client_timeout,
        )
        .await?;
    if client_etag.is_some_and(|e| e != staged.md5) {
        return Err(Error::EtagMismatch);
    }
    if expected.is_none() && r.direct.is_none() {
        // Chunked: the size is known only now.
        check_quota(st, r.path.account(), &crow, staged.size).await?;
    }
    let ts = write_ts(st, &r)?;
    let etag = staged.md5.clone();
    let size = staged.size;
    let slo = r.direct.is_some() && r.header(crate::cluster::SLO_HEADER) == Some("1");
    let applied = store(
        st,
        staged,
        NewVersion {
            account: r.path.account().to_owned(),
            container: crow.name,
            name: object,
            ts,
            etag: etag.clone(),
            size,
            content_type: ct,
            meta,
            delete_at,
            slo,
        },
    )
    .await?;
    Ok(match applied {
        Applied::Yes(()) => created(&etag, ts),
        Applied::Stale => status(StatusCode::ACCEPTED),
    })
}

/// Cluster storage role: applies a peer's request to this node's own store (see
/// [`crate::cluster`]). The container row is created as a placeholder if this node has not
/// heard of it yet; the replicator brings the real one.
async fn direct(
    st: &Shared,
    r: Req,
    kind: crate::cluster::Direct,
    container: &str,
    object: &str,
) -> Result<Response> {
    let account = r.path.account().to_owned();
    let (a, c) = (account.clone(), container.to_owned());
    let writes = matches!(r.method, Method::PUT | Method::POST | Method::DELETE);
    let crow = blocking(st, move |s| {
        if writes && s.db.get_container(&a, &c)?.is_none() {
            s.db.ensure_container_placeholder(&a, &c)?;
        }
        s.db.get_container(&a, &c)
    })
    .await?
    .ok_or(Error::NotFound { what: "container" })?;
    let (a, c, o) = (account.clone(), container.to_owned(), object.to_owned());
    let row = blocking(st, move |s| s.db.get_object(&a, &c, &o)).await?;
    let o = object.to_owned();
    match r.method {
        Method::GET | Method::HEAD => match &row {
            Some(x) if !x.deleted && !x.listing_only => get(st, r, crow, o, false).await,
            Some(x) => {
                let mut resp = status(StatusCode::NOT_FOUND);
                set(resp.headers_mut(), crate::cluster::BACKEND_TS_HEADER, x.ts);
                let state = if x.deleted { "deleted" } else { "listing" };
                set(
                    resp.headers_mut(),
                    crate::cluster::BACKEND_STATE_HEADER,
                    state,
                );
                Ok(resp)
            }
            None => Err(Error::NotFound { what: "object" }),
        },
        Method::PUT => match kind {
            crate::cluster::Direct::Data => put(st, r, crow, o).await,
            crate::cluster::Direct::Row => put_row(st, &r, crow, o).await,
        },
        Method::DELETE => {
            let ts = write_ts(st, &r)?;
            let existed = row.as_ref().is_some_and(|x| !x.deleted);
            let base = row.unwrap_or_else(|| {
                let hash = outpost_ring::object_hash_hex(&account, &crow.name, &o);
                ObjectRow {
                    account: account.clone(),
                    container: crow.name.clone(),
                    name: o.clone(),
                    part: outpost_ring::partition_of_hex(st.part_power(), &hash),
                    ..ObjectRow::default()
                }
            });
            tombstone(st, &base, ts).await?;
            Ok(status(if existed {
                StatusCode::NO_CONTENT
            } else {
                StatusCode::NOT_FOUND
            }))
        }
        Method::POST => match row {
            Some(x) if !x.deleted && x.listing_only => post_row(st, &r, x).await,
            Some(x) if !x.deleted => post(st, r, crow, o).await,
            _ => Err(Error::NotFound { what: "object" }),
        },
        _ => Err(Error::MethodNotAllowed),
    }
}

/// Stores only the listing row of a version whose data lives on other nodes.
async fn put_row(st: &Shared, r: &Req, crow: ContainerRow, object: String) -> Result<Response> {
    let ts = write_ts(st, r)?;
    let size = r
        .header(crate::cluster::SIZE_HEADER)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .ok_or(Error::BadHeader {
            name: outpost_proto::headers::SIZE,
            reason: "a listing row needs the object's size",
        })?;
    let etag = r
        .header("etag")
        .map(|e| strip_quotes(e).to_ascii_lowercase())
        .unwrap_or_default();
    let delete_at = match r.header("x-delete-at") {
        Some(v) => Some(v.trim().parse::<u64>().map_err(|_| Error::BadHeader {
            name: "x-delete-at",
            reason: "must be epoch seconds",
        })?),
        None => None,
    };
    let account = r.path.account().to_owned();
    let hash = outpost_ring::object_hash_hex(&account, &crow.name, &object);
    let row = ObjectRow {
        part: outpost_ring::partition_of_hex(st.part_power(), &hash),
        account,
        container: crow.name,
        name: object,
        ts,
        deleted: false,
        size,
        etag,
        content_type: r
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        meta: new_meta(&r.headers)?,
        delete_at,
        slo: r.header(crate::cluster::SLO_HEADER) == Some("1"),
        listing_only: true,
    };
    let row2 = row.clone();
    match blocking(st, move |s| s.db.put_object(&row2)).await? {
        Applied::Yes(old) => {
            if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                st.files.remove(data_path(st, &old)).await;
            }
            Ok(status(StatusCode::CREATED))
        }
        Applied::Stale => Ok(status(StatusCode::ACCEPTED)),
    }
}

/// POST on a listing row: new metadata, same (absent) data.
async fn post_row(st: &Shared, r: &Req, row: ObjectRow) -> Result<Response> {
    let ts = write_ts(st, r)?;
    let mut new_row = row.clone();
    new_row.ts = ts;
    new_row.meta = new_meta(&r.headers)?;
    if r.headers.contains_key("x-remove-delete-at") {
        new_row.delete_at = None;
    } else if let Some(v) = r.header("x-delete-at") {
        new_row.delete_at = v.trim().parse().ok();
    }
    if let Some(ct) = r.header("content-type").filter(|c| !c.trim().is_empty()) {
        new_row.content_type = ct.trim().to_owned();
    }
    let base = row.ts;
    blocking(st, move |s| {
        s.db.put_object_if(&new_row, base)
    })
    .await?;
    Ok(status(StatusCode::ACCEPTED))
}

/// User metadata and stored system headers of a new version.
fn new_meta(h: &HeaderMap) -> Result<Meta> {
    let mut meta = Meta::new();
    for (k, v) in meta_updates(h, "x-object-meta-", OBJECT_SYS)? {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            meta.insert(k, v);
        }
    }
    Ok(meta)
}

async fn post(st: &Shared, r: Req, crow: ContainerRow, object: String) -> Result<Response> {
    let now = st.clock.wall_secs();
    let meta = new_meta(&r.headers)?;
    let ts = write_ts(st, &r)?;
    // A POST makes a new version from the current one. If a PUT replaces the current one
    // meanwhile, start over from the PUT's version (never resurrect the data it replaced).
    for _ in 0..5 {
        let row = live_row(st, r.path.account(), &crow.name, &object).await?;
        if row.ts >= ts {
            // A newer write already won.
            return Ok(status(StatusCode::ACCEPTED));
        }
        let delete_at = if r.headers.contains_key("x-remove-delete-at") {
            None
        } else {
            delete_at(&r.headers, now)?.or(row.delete_at)
        };
        let ct = match r.header("content-type") {
            Some(ct) if !ct.trim().is_empty() => ct.trim().to_owned(),
            _ => row.content_type.clone(),
        };
        // The data file is named by the version's timestamp: link it under the new one, and
        // make the link durable before the metadata names it.
        let old_path = data_path(st, &row);
        let mut new_row = row.clone();
        new_row.ts = ts;
        new_row.meta = meta.clone();
        new_row.delete_at = delete_at;
        new_row.content_type = ct;
        let new_path = data_path(st, &new_row);
        let (o, n) = (old_path.clone(), new_path.clone());
        let linked = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::hard_link(&o, &n)?;
            if let Some(dir) = n.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Task)?;
        match linked {
            Ok(()) => {}
            // Replaced between reading the row and linking: start over.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                st.files.remove(new_path).await;
                return Err(e.into());
            }
        }
        let nr = new_row.clone();
        let base = row.ts;
        match blocking(st, move |s| s.db.put_object_if(&nr, base)).await {
            Ok(Applied::Yes(_)) => {
                st.files.remove(old_path).await;
                tracing::info!(target: "audit", user = r.ident.label(), account = %row.account, container = %row.container, object = %row.name, ts = %ts, action = "object-post");
                return Ok(status(StatusCode::ACCEPTED));
            }
            Ok(Applied::Stale) => {
                st.files.remove(new_path).await;
            }
            Err(e) => {
                st.files.remove(new_path).await;
                return Err(e);
            }
        }
    }
    Err(Error::Conflict {
        reason: "the object kept changing during the POST; retry",
    })
}

/// Tombstones an object (and removes its data).
pub(super) async fn tombstone(st: &Shared, row: &ObjectRow, ts: Timestamp) -> Result<bool> {
    let mut t = row.clone();
    t.ts = ts;
    t.deleted = true;
    t.size = 0;
    t.etag = String::new();
    t.meta = Meta::new();
    t.slo = false;
    t.delete_at = None;
    let tt = t.clone();
    let st = std::sync::Arc::clone(st);
    let row = row.clone();
    detached(async move {
        match blocking(&st, move |s| s.db.put_object(&tt)).await? {
            Applied::Yes(old) => {
                if let Some(old) = old.filter(|o| !o.deleted && !o.listing_only) {
                    st.files.remove(data_path(&st, &old)).await;
                }
                tracing::info!(target: "audit", account = %row.account, container = %row.container, object = %row.name, ts = %ts, action = "object-delete");
                Ok(true)
            }
            Applied::Stale => Ok(false),
        }
    })
    .await
}

async fn delete(st: &Shared, r: Req, container: String, object: String) -> Result<Response> {
    let row = match live_row(st, r.path.account(), &container, &object).await {
        Ok(row) => row,
        // A replicated delete (internal, with its timestamp) leaves a tombstone even where the
        // object is unknown, so an older version arriving later from a third DC stays deleted.
        Err(Error::NotFound { .. })
            if r.ident == Identity::Internal && r.headers.contains_key("x-timestamp") =>
        {
            let ts = write_ts(st, &r)?;
            let hash = outpost_ring::object_hash_hex(r.path.account(), &container, &object);
            let base = ObjectRow {
                account: r.path.account().to_owned(),
                part: outpost_ring::partition_of_hex(st.part_power(), &hash),
                container,
                name: object,
                ..ObjectRow::default()
            };
            tombstone(st, &base, ts).await?;
            return Err(Error::NotFound { what: "object" });
        }
        Err(e) => return Err(e),
    };
    if row.slo
        && r.query
            .get("multipart-manifest")
            .is_some_and(|v| v == "delete")
    {
        return slo::delete(st, &r, row).await;
    }
    let ts = write_ts(st, &r)?;
    tombstone(st, &row, ts).await?;
    Ok(status(StatusCode::NO_CONTENT))
}

pub(super) fn split_copy_path(v: &str) -> Result<(String, String)> {
    let decoded = percent_encoding::percent_decode_str(v)
        .decode_utf8()
        .map_err(|_| Error::BadHeader {
            name: "x-copy-from",
            reason: "not valid UTF-8",
        })?;
    let t = decoded.trim_start_matches('/');
    match t.split_once('/') {
        Some((c, o)) if !c.is_empty() && !o.is_empty() => Ok((c.to_owned(), o.to_owned())),
        _ => Err(Error::BadHeader {
            name: "x-copy-from",
            reason: "must be /<container>/<object>",
        }),
    }
}

async fn copy_method(st: &Shared, r: Req, crow: ContainerRow, object: String) -> Result<Response> {
    let dest = r.header("destination").ok_or(Error::BadHeader {
        name: "destination",
        reason: "COPY needs a Destination header: <container>/<object>",
    })?;
    let (dc, dobj) = split_copy_path(dest).map_err(|_| Error::BadHeader {
        name: "destination",
        reason: "must be <container>/<object>",
    })?;
    crate::names::check_container(&dc)?;
    crate::names::check_object(&dobj)?;
    let source = format!("/{}/{object}", crow.name);
    let (a, c2) = (r.path.account().to_owned(), dc.clone());
    let dest_row = blocking(st, move |s| s.db.get_container(&a, &c2))
        .await?
        .ok_or(Error::NotFound { what: "container" })?;
    let source = percent_encoding::utf8_percent_encode(&source, percent_encoding::NON_ALPHANUMERIC)
        .to_string();
    copy(st, r, dest_row, dobj, &source).await
}

async fn copy(
    st: &Shared,
    r: Req,
    dest: ContainerRow,
    object: String,
    source: &str,
) -> Result<Response> {
    let (sc, so) = split_copy_path(source)?;
    let account = r.path.account().to_owned();
    let (src, data) = open_live(st, &account, &sc, &so).await?;
    let manifest_get = r
        .query
        .get("multipart-manifest")
        .is_some_and(|v| v == "get");
    let pieces = if src.slo && !manifest_get {
        slo::pieces(st, &src).await?
    } else {
        vec![data]
    };
    let total: u64 = pieces.iter().map(|p| p.len).sum();
    let max = st.cfg.max_object_size;
    if total > max {
        return Err(Error::TooLarge { max });
    }
    check_quota(st, &account, &dest, total).await?;
    let stream = body::whole(pieces).into_data_stream();
    let staged = st
        .files
        .stage(stream, max, Some(total), st.cfg.client_timeout)
        .await?;
    let fresh = r
        .header("x-fresh-metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut meta = if fresh { Meta::new() } else { src.meta.clone() };
    meta.extend(new_meta(&r.headers)?);
    let ct = match r.header("content-type") {
        Some(ct) if !ct.trim().is_empty() => ct.trim().to_owned(),
        _ => src.content_type.clone(),
    };
    let now = st.clock.wall_secs();
    let ts = write_ts(st, &r)?;
    let etag = staged.md5.clone();
    let size = staged.size;
    store(
        st,
        staged,
        NewVersion {
            account,
            container: dest.name,
            name: object,
            ts,
            etag: etag.clone(),
            size,
            content_type: ct,
            meta,
            delete_at: delete_at(&r.headers, now)?,
            slo: false,
        },
    )
    .await?;
    let mut resp = created(&etag, ts);
    set(resp.headers_mut(), "x-copied-from", format!("{sc}/{so}"));
    set(
        resp.headers_mut(),
        "x-copied-from-last-modified",
        src.ts.http_date(),
    );
    Ok(resp)
}

/// Removes objects whose `X-Delete-At` passed. Runs until the process ends.
pub async fn expirer(st: Shared, every: Duration) {
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let now = st.clock.wall_secs();
        let rows = match blocking(&st, move |s| s.db.expired_objects(now, 1000)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "expirer: listing expired objects failed");
                continue;
            }
        };
        for row in rows {
            let ts = st.clock.now();
            if let Err(e) = tombstone(&st, &row, ts).await {
                tracing::warn!(error = %e, object = %row.name, "expirer: delete failed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditional_order() {
        let mut h = HeaderMap::new();
        let etag = "abc";
        assert_eq!(preconditions(&h, &Method::GET, etag, 100).unwrap(), None);
        h.insert("if-none-match", "\"abc\"".parse().unwrap());
        assert_eq!(
            preconditions(&h, &Method::GET, etag, 100).unwrap(),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert!(preconditions(&h, &Method::PUT, etag, 100).is_err());
        let mut h = HeaderMap::new();
        h.insert("if-match", "\"zzz\"".parse().unwrap());
        assert!(preconditions(&h, &Method::GET, etag, 100).is_err());
        h.insert("if-match", "*".parse().unwrap());
        assert_eq!(preconditions(&h, &Method::GET, etag, 100).unwrap(), None);
        let mut h = HeaderMap::new();
        h.insert(
            "if-modified-since",
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(100))
                .parse()
                .unwrap(),
        );
        assert_eq!(
            preconditions(&h, &Method::GET, etag, 100).unwrap(),
            Some(StatusCode::NOT_MODIFIED)
        );
        assert_eq!(preconditions(&h, &Method::GET, etag, 101).unwrap(), None);
        let mut h = HeaderMap::new();
        h.insert(
            "if-unmodified-since",
            httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(100))
                .parse()
                .unwrap(),
        );
        assert!(preconditions(&h, &Method::GET, etag, 101).is_err());
    }

    #[test]
    fn copy_paths() {
        assert_eq!(
            split_copy_path("/c/a%20b/c").unwrap(),
            ("c".into(), "a b/c".into())
        );
        assert_eq!(split_copy_path("c/o").unwrap(), ("c".into(), "o".into()));
        assert!(split_copy_path("/c").is_err());
        assert!(split_copy_path("/c/").is_err());
    }
}
