//! Object requests: GET/HEAD (ranges, conditionals), PUT (streamed, MD5-checked), POST, DELETE,
//! COPY and `X-Copy-From`, `X-Delete-At`/`X-Delete-After`, tempurl access.

use std::time::UNIX_EPOCH;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use outpost_auth::{AccessRequest, KeySet, KeyStore, NoRevocations, TempUrlKeys, VerifyOptions};

use super::body::{self, Piece};
use super::range::{self, RangeOutcome};
use super::{
    access, blocking, container_acl, deny, put_meta, set, slo, status, Capability, Req, Shared,
};
use crate::access::Target;
use crate::db::{Applied, ContainerRow, Meta, ObjectRow};
use crate::hlc::Timestamp;
use crate::request::{object_meta_updates, strip_quotes};
use crate::store::validate::{resolve_expiry, version_meta};
use crate::store::{NewVersion, PostUpdate};
use crate::{Error, Result};

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
    let row = st.store.db.get_account(r.path.account())?;
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
        now: st.store.clock.wall_secs(),
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
    let crow = st.store.db.get_container(&account, container)?;
    // COPY reads this object (and writes the destination, checked by the copy).
    let acl_method = if r.method.as_str() == "COPY" {
        Method::GET
    } else {
        r.method.clone()
    };
    let granted = access(
        st,
        &r,
        Target::Object,
        container_acl(crow.as_ref(), &acl_method),
    )
    .await?
    .allowed();
    let Some(crow) = crow else {
        // Only those the account lets in learn whether a container exists.
        return Err(if granted {
            Error::NotFound { what: "container" }
        } else {
            deny(&r.ident)
        });
    };
    let mut via_tempurl = false;
    if !granted {
        if r.method.as_str() == "COPY" {
            return Err(deny(&r.ident));
        }
        signed_access(st, &r, &crow).await?;
        via_tempurl = true;
    }
    let o = object.to_owned();
    if let Some(cl) = &st.cluster {
        // The cluster proxy does not assemble DLOs: refuse to make one rather than serve an
        // empty manifest for it later.
        if r.headers.contains_key(super::dlo::MANIFEST) {
            return Err(Error::NotInCluster {
                what: "dynamic large objects (X-Object-Manifest)",
            });
        }
        super::copy::authorize_in_cluster(st, &r).await?;
        return crate::cluster::proxy::object(&st.store, cl, r, crow, o).await;
    }
    match r.method {
        Method::GET | Method::HEAD => get(st, r, crow, o, via_tempurl).await,
        Method::PUT => put(st, r, crow, o).await,
        Method::POST => post(st, r, crow, o).await,
        Method::DELETE => delete(st, r, crow.name, o).await,
        ref m if m.as_str() == "COPY" => super::copy::copy_method(st, r, crow, o).await,
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The live row of an object and its data file, opened (see [`crate::store::Store::open_live`]).
pub(super) async fn open_live(
    st: &Shared,
    account: &str,
    container: &str,
    object: &str,
) -> Result<(ObjectRow, Piece)> {
    let v = st.store.open_live(account, container, object).await?;
    let piece = Piece {
        path: v.path,
        file: Some(v.file),
        offset: 0,
        len: v.len,
    };
    Ok((v.row, piece))
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
    // Swift sends an object's MD5 unquoted and an SLO's ETag (MD5 of its segments' ETags)
    // quoted; conditionals compare without the quotes.
    let dlo = super::dlo::manifest_of(&row).filter(|_| !manifest_get);
    let (pieces, len, etag_header, cond_etag) = if let Some(manifest) = dlo.clone() {
        let account = r.path.account().to_owned();
        let segs = super::dlo::segments(st, &r, account, manifest, via_tempurl).await?;
        (
            segs.pieces,
            segs.len,
            format!("\"{}\"", segs.etag),
            segs.etag,
        )
    } else if row.slo && !manifest_get {
        let pieces = slo::pieces(st, &row).await?;
        (
            pieces,
            row.size,
            format!("\"{}\"", row.etag),
            row.etag.clone(),
        )
    } else {
        let len = data.len;
        (vec![data], len, row.etag.clone(), row.etag.clone())
    };
    let mut resp = Response::new(Body::empty());
    object_headers(resp.headers_mut(), &row, &crow, &etag_header);
    if manifest_get && row.slo {
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
    let checked = preconditions(&r.headers, &r.method, &cond_etag, row.ts.ceil_secs());
    let not_modified = match checked {
        Ok(code) => code,
        // Swift's 412 has no body and still names the current version.
        Err(e) => {
            let mut failed = e.into_response();
            *failed.body_mut() = Body::empty();
            let h = failed.headers_mut();
            set(h, "content-length", 0);
            set(h, "etag", &etag_header);
            set(h, "last-modified", row.ts.http_date());
            return Ok(failed);
        }
    };
    if let Some(code) = not_modified {
        // Swift's 304 keeps the object's headers, Content-Type included.
        *resp.status_mut() = code;
        return Ok(resp);
    }
    let head = r.method == Method::HEAD;
    let ranges = if if_range_ok(&r.headers, &cond_etag, row.ts.ceil_secs()) {
        range::parse(r.header("range"), len)
    } else {
        RangeOutcome::Full
    };
    // Swift serves a DLO's single range only.
    let ranges = match ranges {
        RangeOutcome::Partial(rs) if rs.len() > 1 && dlo.is_some() => RangeOutcome::Full,
        other => other,
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
    let v = h.get("if-range").and_then(|v| v.to_str().ok());
    range::if_range_applies(v, etag, modified)
}

pub(super) fn created(etag: &str, ts: Timestamp) -> Response {
    let mut resp = status(StatusCode::CREATED);
    let h = resp.headers_mut();
    // Unquoted, as Swift sends it (the edge quotes it for browsers).
    set(h, "etag", etag);
    set(h, "last-modified", ts.http_date());
    set(h, "x-timestamp", ts);
    set(h, "content-length", 0);
    resp
}

async fn put(st: &Shared, mut r: Req, crow: ContainerRow, object: String) -> Result<Response> {
    super::dlo::validate_put(&r.headers)?;
    // Swift's create-only PUT: `If-None-Match: *` fails if the object exists.
    if let Some(v) = r.header("if-none-match") {
        if v.trim() != "*" {
            return Err(Error::BadHeader {
                name: "if-none-match",
                reason: "only '*' is supported on PUT",
            });
        }
        if st
            .store
            .live_row(r.path.account(), &crow.name, &object)
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
        return super::copy::put_copy(st, r, crow, object, &src).await;
    }
    // One validation for this handler and the cluster proxy.
    let quotas = r.quotas();
    let new = st
        .store
        .validate_put_quotas(
            r.path.account(),
            &crow,
            &object,
            r.object_headers()?,
            quotas,
        )
        .await?;
    let max = st.store.cfg.max_object_size;
    let body = r.take_body();
    let staged = st
        .store
        .files
        .stage(
            body.into_data_stream(),
            max,
            new.expected,
            st.store.cfg.client_timeout,
        )
        .await?;
    // A peer's copy of an SLO manifest: its ETag and size are the SLO's, derived from the
    // manifest (crate::store::slo), not the manifest's own MD5 and length.
    let slo = r.direct.is_some() && r.header(crate::cluster::SLO_HEADER) == Some("1");
    let (etag, size) = match staged.path() {
        Some(p) if slo => crate::store::slo::summary_of(p).await?,
        _ => (staged.md5.clone(), staged.size),
    };
    if new.etag.as_ref().is_some_and(|e| *e != etag) {
        return Err(Error::EtagMismatch);
    }
    if new.expected.is_none() {
        // Chunked: the size is known only now.
        st.store
            .check_quotas(r.path.account(), &crow, staged.size, quotas)
            .await?;
    }
    let ts = r.write_ts(&st.store)?;
    let (crow_name, object_name) = (crow.name.clone(), object.clone());
    let applied = st
        .store
        .put_version(
            staged,
            NewVersion {
                account: r.path.account().to_owned(),
                container: crow.name,
                name: object,
                ts,
                etag: etag.clone(),
                size,
                content_type: new.content_type,
                meta: new.meta,
                delete_at: new.delete_at,
                slo,
            },
        )
        .await?;
    Ok(match applied {
        Applied::Yes(()) => created(&etag, ts),
        Applied::Stale => {
            // The version that won, so a proxy that chose `ts` itself can write again after it.
            let mut resp = status(StatusCode::ACCEPTED);
            let (a, c, o) = (r.path.account().to_owned(), crow_name, object_name);
            if let Some(cur) = blocking(st, move |s| s.db.get_object(&a, &c, &o)).await? {
                set(
                    resp.headers_mut(),
                    crate::cluster::BACKEND_TS_HEADER,
                    cur.ts,
                );
            }
            resp
        }
    })
}

/// Cluster storage role: applies a peer's request to this node's own store (see
/// [`crate::cluster`]). The container row is created as a placeholder if this node has not
/// heard of it yet; the replicator brings the real one.
async fn direct(
    st: &Shared,
    r: Req,
    kind: crate::request::Direct,
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
        Method::GET | Method::HEAD => match (&row, &st.cluster) {
            // An SLO's segments live on other nodes: assembled through the ring.
            (Some(x), Some(cl)) if x.slo && !x.deleted && !manifest_get(&r) => {
                crate::cluster::slo::read(&st.store, cl, &r, x).await
            }
            (Some(x), _) if !x.deleted && !x.listing_only => get(st, r, crow, o, false).await,
            (Some(x), _) => {
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
            (None, _) => Err(Error::NotFound { what: "object" }),
        },
        Method::PUT => match kind {
            crate::request::Direct::Data => put(st, r, crow, o).await,
            crate::request::Direct::Row => put_row(st, &r, crow, o).await,
        },
        Method::DELETE => {
            let ts = r.write_ts(&st.store)?;
            let existed = row.as_ref().is_some_and(|x| !x.deleted);
            let base = row.unwrap_or_else(|| st.store.blank_row(&account, &crow.name, &o));
            st.store.tombstone(&base, ts).await?;
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

fn manifest_get(r: &Req) -> bool {
    r.query
        .get("multipart-manifest")
        .is_some_and(|v| v == "get")
}

/// Stores only the listing row of a version whose data lives on other nodes.
async fn put_row(st: &Shared, r: &Req, crow: ContainerRow, object: String) -> Result<Response> {
    let ts = r.write_ts(&st.store)?;
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
    let row = ObjectRow {
        ts,
        deleted: false,
        size,
        etag,
        content_type: r
            .header("content-type")
            .unwrap_or("application/octet-stream")
            .to_owned(),
        meta: version_meta(crate::request::direct_meta_updates(&r.headers)?),
        delete_at,
        slo: r.header(crate::cluster::SLO_HEADER) == Some("1"),
        listing_only: true,
        ..st.store.blank_row(r.path.account(), &crow.name, &object)
    };
    Ok(match st.store.put_listing_row(row).await? {
        Applied::Yes(()) => status(StatusCode::CREATED),
        Applied::Stale => status(StatusCode::ACCEPTED),
    })
}

/// POST on a listing row: new metadata, same (absent) data.
async fn post_row(st: &Shared, r: &Req, row: ObjectRow) -> Result<Response> {
    let ts = r.write_ts(&st.store)?;
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
    st.store.post_listing_row(row, new_row).await?;
    Ok(status(StatusCode::ACCEPTED))
}

/// User metadata and stored system headers of a new version.
pub(super) fn new_meta(h: &HeaderMap) -> Result<Meta> {
    Ok(version_meta(object_meta_updates(h)?))
}

async fn post(st: &Shared, r: Req, crow: ContainerRow, object: String) -> Result<Response> {
    let now = st.store.clock.wall_secs();
    let meta = new_meta(&r.headers)?;
    let ts = r.write_ts(&st.store)?;
    let remove_delete_at = r.headers.contains_key("x-remove-delete-at");
    let delete_at = if remove_delete_at {
        None
    } else {
        resolve_expiry(crate::request::expiry(&r.headers)?, now)?
    };
    let update = PostUpdate {
        meta,
        remove_delete_at,
        delete_at,
        content_type: r
            .header("content-type")
            .filter(|ct| !ct.trim().is_empty())
            .map(|ct| ct.trim().to_owned()),
    };
    let path = (r.path.account(), crow.name.as_str(), object.as_str());
    if let Some(row) = st.store.post_version(path, ts, &update).await? {
        tracing::info!(target: "audit", user = r.ident.label(), account = %row.account, container = %row.container, object = %row.name, ts = %ts, action = "object-post");
    }
    Ok(status(StatusCode::ACCEPTED))
}

async fn delete(st: &Shared, r: Req, container: String, object: String) -> Result<Response> {
    let row = match st
        .store
        .live_row(r.path.account(), &container, &object)
        .await
    {
        Ok(row) => row,
        // A replicated delete (internal, with its timestamp) leaves a tombstone even where the
        // object is unknown, so an older version arriving later from a third DC stays deleted.
        Err(Error::NotFound { .. })
            if r.ident.can(Capability::Storage) && r.headers.contains_key("x-timestamp") =>
        {
            let ts = r.write_ts(&st.store)?;
            let base = st.store.blank_row(r.path.account(), &container, &object);
            st.store.tombstone(&base, ts).await?;
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
    let ts = r.write_ts(&st.store)?;
    if !st.store.tombstone(&row, ts).await? && r.direct.is_some() {
        // A newer version won: say which, so a proxy that chose `ts` can delete after it.
        let mut resp = status(StatusCode::ACCEPTED);
        let (a, c, o) = (r.path.account().to_owned(), container, object);
        if let Some(cur) = blocking(st, move |s| s.db.get_object(&a, &c, &o)).await? {
            set(
                resp.headers_mut(),
                crate::cluster::BACKEND_TS_HEADER,
                cur.ts,
            );
        }
        return Ok(resp);
    }
    Ok(status(StatusCode::NO_CONTENT))
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::time::Duration;

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
}
