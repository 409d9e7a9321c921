//! The proxy role: a Swift request accepted by any node, forwarded by the ring.
//!
//! Writes carry one timestamp chosen here (or the authenticated peer's `X-Timestamp`, which is
//! how cross-datacenter sync replays a write) to every replica, so all copies of a version are
//! byte- and name-identical. An object PUT is staged locally first (MD5 checked once), then
//! sent to the primaries concurrently; a primary that cannot be reached or does not answer
//! within `node_timeout` is replaced by the next handoff. Every other node gets the listing
//! row. The PUT is answered once a quorum of data holders acknowledged durably and this node
//! applied its own copy; the other replicas finish in the background (a handoff replaces one
//! that fails).

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use futures_util::future::join_all;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use outpost_ring::Device;

use super::write::{collect, replicate_write, small_write, Ack, Payload, Small};
use super::{
    object_url, slo, Cluster, Direct, BACKEND_STATE_HEADER, BACKEND_TS_HEADER, DIRECT_HEADER,
    SIZE_HEADER, SLO_HEADER,
};
use crate::db::{ContainerRow, ObjectRow};
use crate::hlc::Timestamp;
use crate::request::{self, status, Req, OBJECT_SYS};
use crate::store::validate::resolve_expiry;
use crate::store::Store;
use crate::{Error, Result};

/// Request headers a read forwards to the replica.
pub(super) const READ_HEADERS: &[&str] = &[
    "range",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "if-range",
];

/// Response headers not copied from a replica's answer.
pub(super) const HOP_HEADERS: &[&str] = &[
    "connection",
    "keep-alive",
    "transfer-encoding",
    "x-trans-id",
    "x-openstack-request-id",
    BACKEND_TS_HEADER,
    BACKEND_STATE_HEADER,
];

/// Bodies up to this size are held in memory and cloned per replica; larger ones are re-read
/// from the staged file for each.
const MEMORY_BODY: u64 = 4 << 20;

/// The quorum for `replicas` copies.
pub fn quorum(replicas: usize) -> usize {
    replicas / 2 + 1
}

pub(super) fn header_ts(h: &HeaderMap, name: &str) -> Option<Timestamp> {
    h.get(name)?.to_str().ok()?.parse().ok()
}

/// Handles an object request in cluster mode (after access was decided).
///
/// # Errors
/// [`Error::Unavailable`] without a quorum; the replicas' 4xx answers otherwise.
pub async fn object(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    r: Req,
    crow: ContainerRow,
    object: String,
) -> Result<Response> {
    let multipart = r.query.get("multipart-manifest").map(String::as_str);
    match r.method {
        Method::GET | Method::HEAD => {
            if multipart != Some("get") {
                if let Some(row) = slo_row(st, &r, &crow.name, &object).await {
                    return slo::read(st, cl, &r, &row).await;
                }
            }
            read(cl, &r, &crow.name, &object).await
        }
        Method::PUT => {
            if let Some(src) = r.header("x-copy-from").map(str::to_owned) {
                let (sc, so) = request::split_copy_path(&src)?;
                let sa = request::copy_source_account(&r)?;
                let dest = (r.path.account().to_owned(), &crow, object);
                return copy(st, cl, &r, dest, (sa, sc, so)).await;
            }
            if multipart == Some("put") {
                return slo::put(st, cl, r, &crow, object).await;
            }
            put(st, cl, r, &crow, object).await
        }
        Method::DELETE => {
            if multipart == Some("delete") {
                if let Some(row) = slo_row(st, &r, &crow.name, &object).await {
                    return slo::delete(st, cl, &r, &row).await;
                }
            }
            fan_out_small(st, cl, &r, &crow.name, &object, StatusCode::NO_CONTENT).await
        }
        Method::POST => fan_out_small(st, cl, &r, &crow.name, &object, StatusCode::ACCEPTED).await,
        ref m if m.as_str() == "COPY" => {
            let (dc, dobj) = request::copy_destination(&r)?;
            let da = request::copy_destination_account(&r)?;
            let (a, c2) = (da.clone(), dc.clone());
            let dest_row = st
                .blocking(move |s| s.db.get_container(&a, &c2))
                .await?
                .ok_or(Error::NotFound { what: "container" })?;
            let src = (r.path.account().to_owned(), crow.name.clone(), object);
            copy(st, cl, &r, (da, &dest_row, dobj), src).await
        }
        _ => Err(Error::MethodNotAllowed),
    }
}

/// This node's row of the object if it is a live SLO manifest (every node holds every row).
async fn slo_row(st: &Arc<Store>, r: &Req, container: &str, object: &str) -> Option<ObjectRow> {
    let (a, c, o) = (
        r.path.account().to_owned(),
        container.to_owned(),
        object.to_owned(),
    );
    st.blocking(move |s| s.db.get_object(&a, &c, &o))
        .await
        .ok()
        .flatten()
        .filter(|row| row.slo && !row.deleted)
}

fn url_with_query(base: String, r: &Req) -> String {
    match &r.raw_query {
        Some(q) if !q.is_empty() => format!("{base}?{q}"),
        _ => base,
    }
}

/// Turns a replica's answer into ours, streaming the body.
pub(super) fn relay(resp: reqwest::Response, head: bool) -> Response {
    let mut out = Response::new(Body::empty());
    *out.status_mut() = resp.status();
    for (k, v) in resp.headers() {
        if !HOP_HEADERS.contains(&k.as_str()) {
            out.headers_mut().append(k.clone(), v.clone());
        }
    }
    if !head {
        *out.body_mut() = Body::from_stream(resp.bytes_stream());
    }
    out
}

/// The order reads try devices in: primaries (this node first if it is one), then as many
/// handoffs as there are replicas.
pub(super) fn read_order(cl: &Cluster, part: u32) -> Vec<Device> {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let mut prim: Vec<Device> = ring.primaries(part).into_iter().cloned().collect();
    if let Some(i) = prim.iter().position(|d| Some(d.id) == me) {
        prim.swap(0, i);
    }
    let n = ring.replicas as usize;
    prim.extend(ring.handoffs(part).take(n).cloned());
    prim
}

async fn read(cl: &Cluster, r: &Req, container: &str, object: &str) -> Result<Response> {
    let account = r.path.account();
    let ring = cl.ring();
    let part = ring.partition(account, container, object);
    let head = r.method == Method::HEAD;
    let mut headers = HeaderMap::new();
    for h in READ_HEADERS {
        if let Some(v) = r.headers.get(*h) {
            headers.insert(*h, v.clone());
        }
    }
    headers.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    let newest = r
        .header("x-newest")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let order = read_order(cl, part);
    if newest {
        return read_newest(cl, r, &order, headers, account, container, object).await;
    }
    let query = r.raw_query.as_deref();
    let resp = fetch(
        cl,
        &r.method,
        &order,
        headers,
        query,
        (account, container, object),
    )
    .await?;
    Ok(relay(resp, head))
}

/// Reads from the first replica in `order` that has the object (see the module docs).
pub(super) async fn fetch(
    cl: &Cluster,
    method: &Method,
    order: &[Device],
    headers: HeaderMap,
    query: Option<&str>,
    (account, container, object): (&str, &str, &str),
) -> Result<reqwest::Response> {
    let mut tombstone: Option<Timestamp> = None;
    let mut answered = false;
    for dev in order {
        let mut url = object_url(&dev.url(), account, container, object);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url = format!("{url}?{q}");
        }
        let Ok(resp) = cl.send(method.clone(), url, headers.clone(), None).await else {
            continue;
        };
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            answered = true;
            let listing = resp
                .headers()
                .get(BACKEND_STATE_HEADER)
                .is_some_and(|v| v == "listing");
            if !listing {
                if let Some(t) = header_ts(resp.headers(), BACKEND_TS_HEADER) {
                    tombstone = tombstone.max(Some(t));
                }
            }
            continue;
        }
        if status.is_server_error() {
            continue;
        }
        // A newer tombstone seen on another replica beats this older data.
        if let (Some(t), Some(x)) = (tombstone, header_ts(resp.headers(), "x-timestamp")) {
            if x < t {
                continue;
            }
        }
        return Ok(resp);
    }
    if answered {
        Err(Error::NotFound { what: "object" })
    } else {
        Err(Error::Unavailable {
            reason: "no replica of the object answered",
        })
    }
}

/// Reads the current version of an object with its data from the first replica that holds
/// it (primaries first, this node first among them, then handoffs), as a read through the
/// proxy does. Cross-DC sync uses it for versions whose data lives on other nodes.
///
/// # Errors
/// [`Error::NotFound`] when no replica has it; [`Error::Unavailable`] when none answered.
///
/// # Cancel safety
/// Dropping the future abandons the request.
pub async fn read_data(
    cl: &Cluster,
    (account, container, object): (&str, &str, &str),
    query: Option<&str>,
) -> Result<reqwest::Response> {
    let part = cl.ring().partition(account, container, object);
    let order = read_order(cl, part);
    let mut h = HeaderMap::new();
    h.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    fetch(
        cl,
        &Method::GET,
        &order,
        h,
        query,
        (account, container, object),
    )
    .await
}

/// `X-Newest: true`: HEAD every candidate, then read from the one with the newest version.
async fn read_newest(
    cl: &Cluster,
    r: &Req,
    order: &[Device],
    headers: HeaderMap,
    account: &str,
    container: &str,
    object: &str,
) -> Result<Response> {
    let mut head_headers = HeaderMap::new();
    head_headers.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    let heads = join_all(order.iter().map(|d| {
        let url = object_url(&d.url(), account, container, object);
        cl.send(Method::HEAD, url, head_headers.clone(), None)
    }))
    .await;
    let mut best: Option<(Timestamp, Option<usize>)> = None;
    let mut answered = false;
    for (i, h) in heads.into_iter().enumerate() {
        let Ok(resp) = h else { continue };
        let found = resp.status().is_success();
        let ts = if found {
            header_ts(resp.headers(), "x-timestamp")
        } else if resp.status() == StatusCode::NOT_FOUND {
            answered = true;
            let listing = resp
                .headers()
                .get(BACKEND_STATE_HEADER)
                .is_some_and(|v| v == "listing");
            if listing {
                None
            } else {
                header_ts(resp.headers(), BACKEND_TS_HEADER)
            }
        } else {
            None
        };
        answered |= found;
        if let Some(ts) = ts {
            if best.is_none_or(|(b, _)| ts > b) {
                best = Some((ts, found.then_some(i)));
            }
        }
    }
    match best {
        Some((_, Some(i))) => {
            let d = &order[i];
            let url = url_with_query(object_url(&d.url(), account, container, object), r);
            let resp = cl.send(r.method.clone(), url, headers, None).await?;
            Ok(relay(resp, r.method == Method::HEAD))
        }
        Some((_, None)) => Err(Error::NotFound { what: "object" }),
        None if answered => Err(Error::NotFound { what: "object" }),
        None => Err(Error::Unavailable {
            reason: "no replica of the object answered",
        }),
    }
}

/// Copies the headers a new version stores (metadata and system headers).
pub(super) fn version_headers(src: &HeaderMap, out: &mut HeaderMap) {
    for (k, v) in src {
        let n = k.as_str();
        if n.starts_with("x-object-meta-") || n.starts_with("x-remove-") || OBJECT_SYS.contains(&n)
        {
            out.append(k.clone(), v.clone());
        }
    }
}

pub(super) fn set(h: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        h.insert(HeaderName::from_static(name), v);
    }
}

async fn put(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    mut r: Req,
    crow: &ContainerRow,
    object: String,
) -> Result<Response> {
    let account = r.path.account().to_owned();
    // The same validation as a single node's PUT, so a bad header is one 400, not three.
    let new = st
        .validate_put(&account, crow, &object, r.object_headers()?, true)
        .await?;
    let (expected, max) = (new.expected, st.cfg.max_object_size);
    let body = r.take_body();
    // Small bodies stay in memory; larger ones are staged to a temp file (not a data file:
    // it is removed when the PUT ends).
    let (payload, etag, size) = match expected {
        Some(n) if n <= MEMORY_BODY => {
            let (bytes, md5) = collect(body.into_data_stream(), n, st.cfg.client_timeout).await?;
            let size = bytes.len() as u64;
            (Payload::Memory(bytes), md5, size)
        }
        _ => {
            let staged = st
                .files
                .stage(
                    body.into_data_stream(),
                    max,
                    expected,
                    st.cfg.client_timeout,
                )
                .await?;
            let (md5, size) = (staged.md5.clone(), staged.size);
            (Payload::File(Arc::new(staged)), md5, size)
        }
    };
    if new.etag.is_some_and(|e| e != etag) {
        return Err(Error::EtagMismatch);
    }
    let mut meta = HeaderMap::new();
    version_headers(&r.headers, &mut meta);
    let v = NewVersion {
        ts: r.write_ts(st)?,
        path: (account, crow.name.clone(), object),
        meta,
        content_type: new.content_type,
        delete_at: new.delete_at,
        etag,
        size,
        slo_size: None,
        if_none_match: r.headers.get("if-none-match").cloned(),
        own_ts: own_ts(&r),
    };
    store_version(st, cl, v, payload).await
}

/// A new version, ready to be sent to the replicas.
pub(super) struct NewVersion {
    pub(super) ts: Timestamp,
    pub(super) path: (String, String, String),
    pub(super) meta: HeaderMap,
    pub(super) content_type: String,
    pub(super) delete_at: Option<u64>,
    pub(super) etag: String,
    /// Bytes of the body sent to the data holders.
    pub(super) size: u64,
    /// `Some(total)` for an SLO manifest: the object's size (the segments'), which listings
    /// show; the body is the manifest.
    pub(super) slo_size: Option<u64>,
    pub(super) if_none_match: Option<HeaderValue>,
    /// `ts` was chosen by this node (not a peer's): when a replica holds a newer version
    /// (another node's clock is ahead, or this one behind), the write is sent again with a
    /// timestamp past it, so a write acknowledged after another always wins over it.
    pub(super) own_ts: bool,
}

/// Whether the request's write timestamp is this node's choice (not a peer's `X-Timestamp`).
pub(super) fn own_ts(r: &Req) -> bool {
    r.ts.is_none()
        && !(r.ident.can(crate::request::Capability::Storage)
            && r.headers.contains_key("x-timestamp"))
}

/// Times a write is sent again past a newer version a replica holds.
pub(super) const REISSUES: usize = 3;

/// The newest version a replica said it holds instead of `ts`, if newer than `ts`.
fn superseded_by(acks: &[Ack], ts: Timestamp) -> Option<Timestamp> {
    acks.iter()
        .filter_map(|a| match a {
            Ack::Superseded(t) if *t >= ts => Some(*t),
            _ => None,
        })
        .max()
}

/// Sends a version to its replicas; 201 on a quorum.
pub(super) async fn store_version(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    v: NewVersion,
    payload: Payload,
) -> Result<Response> {
    let NewVersion {
        mut ts,
        path,
        meta: mut common,
        content_type: ct,
        delete_at,
        etag,
        size,
        slo_size,
        if_none_match,
        own_ts,
    } = v;
    set(&mut common, "content-type", &ct);
    if slo_size.is_some() {
        set(&mut common, SLO_HEADER, "1");
    }
    set(&mut common, "etag", &etag);
    if let Some(d) = delete_at {
        set(&mut common, "x-delete-at", d);
    }
    common.remove("x-delete-after");
    let mut data_headers = common.clone();
    set(&mut data_headers, "content-length", size);
    set(&mut data_headers, DIRECT_HEADER, Direct::Data.as_str());
    if let Some(v) = if_none_match {
        data_headers.insert("if-none-match", v);
    }
    let mut row_headers = common;
    set(&mut row_headers, "content-length", 0);
    set(&mut row_headers, SIZE_HEADER, slo_size.unwrap_or(size));
    set(&mut row_headers, DIRECT_HEADER, Direct::Row.as_str());
    let mut attempt = 0;
    let acks = loop {
        attempt += 1;
        set(&mut data_headers, "x-timestamp", ts);
        set(&mut row_headers, "x-timestamp", ts);
        let acks = replicate_write(
            cl,
            Method::PUT,
            path.clone(),
            data_headers.clone(),
            row_headers.clone(),
            payload.clone(),
        )
        .await;
        match superseded_by(&acks, ts) {
            Some(newer) if own_ts && attempt <= REISSUES => {
                st.clock.observe(newer);
                ts = st.clock.now();
            }
            _ => break acks,
        }
    };
    let replicas = cl.ring().replicas as usize;
    let done = acks
        .iter()
        .filter(|a| matches!(a, Ack::Done(s) if s.is_success()))
        .count();
    if done >= quorum(replicas) {
        let mut resp = status(StatusCode::CREATED);
        let h = resp.headers_mut();
        set(h, "etag", format!("\"{etag}\""));
        set(h, "last-modified", ts.http_date());
        set(h, "x-timestamp", ts);
        set(h, "content-length", 0);
        return Ok(resp);
    }
    refused_or_unavailable(&acks)
}

/// Server-side copy (`X-Copy-From`, `COPY`), within an account or across two (both
/// authorized by the caller): reads the source (account, container, object) through the
/// replicas, then writes it to the destination (account, container row, object) as a new
/// version like a PUT. Metadata comes from the source unless `X-Fresh-Metadata: true`,
/// overridden by the request's.
async fn copy(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    r: &Req,
    (account, dest, object): (String, &ContainerRow, String),
    (sa, sc, so): (String, String, String),
) -> Result<Response> {
    let part = cl.ring().partition(&sa, &sc, &so);
    let order = read_order(cl, part);
    let mut h = HeaderMap::new();
    h.insert(
        DIRECT_HEADER,
        HeaderValue::from_static(Direct::Data.as_str()),
    );
    let src = fetch(cl, &Method::GET, &order, h, None, (&sa, &sc, &so)).await?;
    if !src.status().is_success() {
        return Ok(relay(src, false));
    }
    if src.headers().contains_key("x-static-large-object") {
        return Err(Error::NotInCluster {
            what: "copying a static large object",
        });
    }
    let max = st.cfg.max_object_size;
    let size: u64 = src
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse().ok())
        .ok_or(Error::Unavailable {
            reason: "the source replica sent no length",
        })?;
    if size > max {
        return Err(Error::TooLarge { max });
    }
    st.check_quotas(&account, dest, size, r.quotas()).await?;
    request::object_meta_updates(&r.headers)?;
    let fresh = r
        .header("x-fresh-metadata")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut meta = HeaderMap::new();
    if !fresh {
        version_headers(src.headers(), &mut meta);
    }
    let mut ours = HeaderMap::new();
    version_headers(&r.headers, &mut ours);
    for (k, v) in &ours {
        meta.insert(k.clone(), v.clone());
    }
    let ct = match r.header("content-type") {
        Some(ct) if !ct.trim().is_empty() => ct.trim().to_owned(),
        _ => src
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned(),
    };
    let src_modified = src.headers().get("last-modified").cloned();
    let delete_at = resolve_expiry(request::expiry(&r.headers)?, st.clock.wall_secs())?;
    let stream = src.bytes_stream();
    let (payload, etag) = if size <= MEMORY_BODY {
        let (bytes, md5) = collect(stream, size, st.cfg.client_timeout).await?;
        (Payload::Memory(bytes), md5)
    } else {
        let staged = st
            .files
            .stage(stream, max, Some(size), st.cfg.client_timeout)
            .await?;
        let md5 = staged.md5.clone();
        (Payload::File(Arc::new(staged)), md5)
    };
    let v = NewVersion {
        ts: r.write_ts(st)?,
        path: (account, dest.name.clone(), object),
        meta,
        content_type: ct,
        delete_at,
        etag,
        size,
        slo_size: None,
        if_none_match: None,
        own_ts: own_ts(r),
    };
    let mut resp = store_version(st, cl, v, payload).await?;
    if resp.status() == StatusCode::CREATED {
        set(resp.headers_mut(), "x-copied-from", format!("{sc}/{so}"));
        set(
            resp.headers_mut(),
            "x-copied-from-account",
            format!("AUTH_{sa}"),
        );
        if let Some(m) = src_modified {
            resp.headers_mut().insert("x-copied-from-last-modified", m);
        }
    }
    Ok(resp)
}

fn refused_or_unavailable(acks: &[Ack]) -> Result<Response> {
    if let Some(Ack::Refused(s)) = acks.iter().find(|a| matches!(a, Ack::Refused(_))) {
        return Ok(status(*s));
    }
    Err(Error::Unavailable {
        reason: "too few replicas acknowledged the write",
    })
}

/// DELETE and POST: small requests every node applies (primaries and handoffs hold data, the
/// others update their listing row). Success on a quorum of primary answers; 404 only if no
/// replica had the object.
async fn fan_out_small(
    st: &Arc<Store>,
    cl: &Arc<Cluster>,
    r: &Req,
    container: &str,
    object: &str,
    ok: StatusCode,
) -> Result<Response> {
    let ts = r.write_ts(st)?;
    let mut common = HeaderMap::new();
    if r.method == Method::POST {
        request::object_meta_updates(&r.headers)?;
        version_headers(&r.headers, &mut common);
        if let Some(v) = r.headers.get("content-type") {
            common.insert("content-type", v.clone());
        }
        let now = st.clock.wall_secs();
        if let Some(d) = resolve_expiry(request::expiry(&r.headers)?, now)? {
            set(&mut common, "x-delete-at", d);
        }
        common.remove("x-delete-after");
    }
    let path = (
        r.path.account().to_owned(),
        container.to_owned(),
        object.to_owned(),
    );
    // A DELETE some replica answers with a newer version than its timestamp is sent again
    // past it (as a PUT is, see [`NewVersion::own_ts`]).
    let reissue = r.method == Method::DELETE && own_ts(r);
    let mut ts = ts;
    let mut attempt = 0;
    let small = loop {
        attempt += 1;
        set(&mut common, "x-timestamp", ts);
        let (small, newer) =
            small_write(cl, r.method.clone(), path.clone(), common.clone()).await?;
        match newer.filter(|t| *t >= ts) {
            Some(t) if reissue && attempt <= REISSUES => {
                st.clock.observe(t);
                ts = st.clock.now();
            }
            _ => break small,
        }
    };
    match small {
        Small::Applied => Ok(status(ok)),
        Small::NotFound => Err(Error::NotFound { what: "object" }),
        Small::Refused(s) => Ok(status(s)),
    }
}
