//! The shipping worker of one peer: feed → have-check → ship → store the position.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use tokio::io::AsyncReadExt;

use super::{
    HaveRequest, HaveResponse, ObjectRef, Peer, PeerStats, Xdc, FORMAT, FROM_HEADER, KEY_HEADER,
    SYNC_TO_META,
};
use crate::cluster::Cluster;
use crate::db::{Change, ObjectRow};
use crate::hlc::Timestamp;
use crate::store::Store;
use crate::{Error, Result};

/// Why a batch (or one object of it) did not get through.
enum Fail {
    /// Worth retrying later (network, 5xx, timeout).
    Retry(String),
}

type Step<T> = std::result::Result<T, Fail>;

fn retry(what: impl std::fmt::Display) -> Fail {
    Fail::Retry(what.to_string())
}

/// What one object ships as.
enum Outcome {
    Shipped(u64),
    /// The peer refused it for good (4xx): counted, not retried.
    Rejected,
    /// The local version changed while shipping: a later feed entry ships the newer one.
    Moved,
}

struct Ctx {
    st: Arc<Store>,
    x: Arc<Xdc>,
    /// Cluster mode: versions whose data this node does not hold are read from replicas.
    cluster: Option<Arc<Cluster>>,
    peer: Peer,
    idx: usize,
    client: reqwest::Client,
    from: HeaderValue,
    key: HeaderValue,
    /// The peer URL that answered last (tried first).
    url: std::sync::atomic::AtomicUsize,
}

impl Ctx {
    fn stats(&self) -> &PeerStats {
        &self.x.stats[self.idx]
    }

    fn base(&self) -> &str {
        let i = self.url.load(Ordering::Relaxed) % self.peer.urls.len();
        &self.peer.urls[i]
    }

    fn next_url(&self) {
        self.url.fetch_add(1, Ordering::Relaxed);
    }

    fn auth(&self, h: &mut HeaderMap) {
        h.insert(FROM_HEADER, self.from.clone());
        h.insert(KEY_HEADER, self.key.clone());
    }
}

/// Runs forever: ships this node's feed to peer `idx`.
pub async fn run(st: Arc<Store>, x: Arc<Xdc>, cluster: Option<Arc<Cluster>>, idx: usize) {
    let cfg = x.cfg.clone();
    let peer = cfg.peers[idx].clone();
    let client = match reqwest::Client::builder()
        .pool_max_idle_per_host(cfg.concurrency * 2)
        .tcp_nodelay(true)
        .connect_timeout(cfg.timeout.min(Duration::from_secs(5)))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(peer = %peer.name, error = %e, "cannot build the sync client");
            return;
        }
    };
    let (Ok(from), Ok(key)) = (
        HeaderValue::from_str(&cfg.name),
        HeaderValue::from_str(&peer.realm_key),
    ) else {
        tracing::error!(peer = %peer.name, "sync headers are not valid header values");
        return;
    };
    let pos_file = super::position::path(&st.cfg.data_dir, &peer.name);
    let mut pos = match super::position::load(&pos_file) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!(peer = %peer.name, error = %e, "cannot read the sync position; not shipping to this peer");
            return;
        }
    };
    let ctx = Ctx {
        st: Arc::clone(&st),
        x: Arc::clone(&x),
        cluster,
        peer,
        idx,
        client,
        from,
        key,
        url: std::sync::atomic::AtomicUsize::new(0),
    };
    ctx.stats().moved_to(pos);
    ctx.stats().catchup_from.store(pos, Ordering::Relaxed);
    let mut delay = cfg.retry_min;
    let mut rx = st.db.feed_watch();
    let mut election = super::elect::Election::default();
    loop {
        if let Some(cl) = &ctx.cluster {
            let role = election.role(cl, &ctx.peer.name, st.db.last_seq()).await;
            ctx.stats()
                .active
                .store(role == super::elect::Role::Ship, Ordering::Relaxed);
            if let super::elect::Role::Standby(settled) = role {
                // The shipper covers this peer; trail it (see `elect`).
                if let Some(seq) = settled.filter(|&s| s > pos) {
                    pos = seq;
                    if let Err(e) = super::position::store(&pos_file, pos) {
                        tracing::warn!(error = %e, "cannot store the sync position");
                    }
                    ctx.stats().moved_to(pos);
                    ctx.stats().catchup_from.store(pos, Ordering::Relaxed);
                }
                tokio::time::sleep(cfg.interval.max(super::elect::RECHECK)).await;
                continue;
            }
        } else {
            ctx.stats().active.store(true, Ordering::Relaxed);
        }
        let limit = cfg.batch;
        let since = pos;
        let page = st
            .blocking(move |s| Ok((s.db.first_seq()?, s.db.changes_since(since, limit)?)))
            .await;
        let (first, batch) = match page {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "reading the change feed failed");
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        if batch.is_empty() {
            // Caught up: a later catch-up counts from here.
            ctx.stats().catchup_from.store(pos, Ordering::Relaxed);
            let _ = tokio::time::timeout(cfg.interval, rx.wait_for(|s| *s > pos)).await;
            continue;
        }
        if first > pos + 1 {
            // Changes were trimmed before they were shipped (or sync was turned on after the
            // feed had been trimmed): compare every replicated object with the peer instead.
            ctx.stats().truncated.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %ctx.peer.name, from = pos, first, "sync position is older than the change feed; comparing every replicated object with the peer");
            let upto = st.db.last_seq();
            let compared = resync(&ctx).await;
            ctx.stats().resync_total.store(0, Ordering::Relaxed);
            ctx.stats().resync_done.store(0, Ordering::Relaxed);
            match compared {
                Ok(()) => {
                    pos = upto;
                    if let Err(e) = super::position::store(&pos_file, pos) {
                        tracing::warn!(error = %e, "cannot store the sync position");
                    }
                    ctx.stats().moved_to(pos);
                    delay = cfg.retry_min;
                }
                Err(Fail::Retry(why)) => {
                    failed(&ctx, why);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(cfg.retry_max);
                }
            }
            continue;
        }
        let last = batch.last().map_or(pos, |c| c.seq);
        match ship_batch(&ctx, &batch).await {
            Ok(()) => {
                pos = last;
                if let Err(e) = super::position::store(&pos_file, pos) {
                    tracing::warn!(error = %e, "cannot store the sync position");
                }
                ctx.stats().moved_to(pos);
                ctx.stats().failing.store(0, Ordering::Relaxed);
                delay = cfg.retry_min;
            }
            Err(Fail::Retry(why)) => {
                failed(&ctx, why);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(cfg.retry_max);
            }
        }
    }
}

fn failed(ctx: &Ctx, why: String) {
    let s = ctx.stats();
    s.errors.fetch_add(1, Ordering::Relaxed);
    s.failing.fetch_add(1, Ordering::Relaxed);
    tracing::info!(peer = %ctx.peer.name, error = %why, "sync batch failed; retrying");
    *s.last_error
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = why;
    ctx.next_url();
}

/// Compares every replicated object (live or tombstone) with the peer, a partition at a
/// time, and ships what it lacks.
async fn resync(ctx: &Ctx) -> Step<()> {
    let parts = ctx
        .st
        .blocking(|s| s.db.partitions())
        .await
        .map_err(retry)?;
    let batch = ctx.x.cfg.batch;
    let s = ctx.stats();
    s.resync_done.store(0, Ordering::Relaxed);
    s.resync_total.store(parts.len() as u64, Ordering::Relaxed);
    for part in parts {
        let peer = ctx.peer.name.clone();
        let x = Arc::clone(&ctx.x);
        let rows = ctx
            .st
            .blocking(move |s| {
                let mut synced: HashMap<(String, String), bool> = HashMap::new();
                let mut out = Vec::new();
                for row in s.db.rows_in_partition(part)? {
                    let ck = (row.account.clone(), row.container.clone());
                    let on = match synced.get(&ck) {
                        Some(v) => *v,
                        None => {
                            let v = s
                                .db
                                .get_container(&row.account, &row.container)?
                                .is_some_and(|c| x.targets(&row.account, &c.meta).contains(&peer));
                            synced.insert(ck, v);
                            v
                        }
                    };
                    if on {
                        out.push(row);
                    }
                }
                Ok(out)
            })
            .await
            .map_err(retry)?;
        for chunk in rows.chunks(batch) {
            ship_rows(ctx, chunk.to_vec()).await?;
        }
        s.resync_done.fetch_add(1, Ordering::Relaxed);
    }
    Ok(())
}

/// The objects of a batch that replicate to this peer, each once, in feed order of their
/// last change, with their current local rows.
async fn select(ctx: &Ctx, batch: &[Change]) -> Result<Vec<ObjectRow>> {
    let st = Arc::clone(&ctx.st);
    let x = Arc::clone(&ctx.x);
    let peer = ctx.peer.name.clone();
    let changes: Vec<Change> = batch
        .iter()
        .filter(|c| c.kind.written_object().is_some())
        .cloned()
        .collect();
    st.blocking(move |s| {
        let mut synced: HashMap<(String, String), bool> = HashMap::new();
        let mut last: HashMap<ObjectRef, usize> = HashMap::new();
        let mut order: Vec<ObjectRef> = Vec::new();
        for c in changes {
            let Some((container, object)) = c
                .kind
                .written_object()
                .map(|(c, o)| (c.to_owned(), o.to_owned()))
            else {
                continue;
            };
            let ck = (c.account.clone(), container.clone());
            let on = match synced.get(&ck) {
                Some(v) => *v,
                None => {
                    let v =
                        s.db.get_container(&c.account, &container)?
                            .is_some_and(|row| x.targets(&c.account, &row.meta).contains(&peer));
                    synced.insert(ck, v);
                    v
                }
            };
            if !on {
                continue;
            }
            let r = ObjectRef {
                account: c.account,
                container,
                object,
            };
            last.insert(r.clone(), order.len());
            order.push(r);
        }
        let mut rows = Vec::new();
        for (i, r) in order.iter().enumerate() {
            if last.get(r) != Some(&i) {
                continue;
            }
            if let Some(row) = s.db.get_object(&r.account, &r.container, &r.object)? {
                rows.push(row);
            }
        }
        Ok(rows)
    })
    .await
}

fn object_ref(row: &ObjectRow) -> ObjectRef {
    ObjectRef {
        account: row.account.clone(),
        container: row.container.clone(),
        object: row.name.clone(),
    }
}

/// Asks the peer which timestamps it holds.
async fn have(ctx: &Ctx, objects: Vec<ObjectRef>) -> Step<Vec<Option<Timestamp>>> {
    let n = objects.len();
    let body = serde_json::to_vec(&HaveRequest {
        format: FORMAT,
        objects,
    })
    .map_err(retry)?;
    let mut h = HeaderMap::new();
    ctx.auth(&mut h);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let resp = send(
        ctx,
        Method::POST,
        format!("{}{}", ctx.base(), outpost_proto::paths::XDC_HAVE),
        h,
        Some(body.into()),
    )
    .await?;
    if !resp.status().is_success() {
        return Err(retry(format!("have-check answered {}", resp.status())));
    }
    let bytes = resp.bytes().await.map_err(retry)?;
    let ans: HaveResponse = serde_json::from_slice(&bytes).map_err(retry)?;
    if ans.ts.len() != n {
        return Err(retry(
            "have-check answered for a different number of objects",
        ));
    }
    Ok(ans
        .ts
        .into_iter()
        .map(|t| t.and_then(|t| t.parse().ok()))
        .collect())
}

async fn send(
    ctx: &Ctx,
    method: Method,
    url: String,
    headers: HeaderMap,
    body: Option<reqwest::Body>,
) -> Step<reqwest::Response> {
    let timeout = ctx.x.cfg.timeout;
    let mut req = ctx.client.request(method, &url).headers(headers);
    if let Some(b) = body {
        req = req.body(b);
    }
    match tokio::time::timeout(timeout, req.send()).await {
        Ok(Ok(r)) if r.status().is_server_error() => {
            Err(retry(format!("{url} answered {}", r.status())))
        }
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(retry(format!("{url}: {e}"))),
        Err(_) => Err(retry(format!("{url}: no answer in {timeout:?}"))),
    }
}

async fn ship_batch(ctx: &Ctx, batch: &[Change]) -> Step<()> {
    let metas = super::meta::select(&ctx.st, &ctx.x, &ctx.peer.name, batch)
        .await
        .map_err(retry)?;
    // Containers exist at the peer before their objects; deletes go after them.
    let (deletes, live): (Vec<_>, Vec<_>) = metas.into_iter().partition(|m| m.deleted);
    ship_meta(ctx, live).await?;
    let rows = select(ctx, batch).await.map_err(retry)?;
    ship_rows(ctx, rows).await?;
    ship_meta(ctx, deletes).await
}

/// Ships account and container rows ([`super::meta`]).
async fn ship_meta(ctx: &Ctx, rows: Vec<crate::db::MetaRow>) -> Step<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len() as u64;
    let body = serde_json::to_vec(&super::meta::MetaBatch {
        format: FORMAT,
        rows,
    })
    .map_err(retry)?;
    let mut h = HeaderMap::new();
    ctx.auth(&mut h);
    h.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let url = format!("{}{}", ctx.base(), outpost_proto::paths::XDC_META);
    let resp = send(ctx, Method::POST, url, h, Some(body.into())).await?;
    let s = ctx.stats();
    if resp.status().is_success() {
        s.shipped.fetch_add(n, Ordering::Relaxed);
    } else {
        // Refused for good (a peer without metadata sync answers 404): objects still ship.
        tracing::warn!(peer = %ctx.peer.name, status = %resp.status(), "the peer refused account and container rows");
        s.rejected.fetch_add(n, Ordering::Relaxed);
    }
    let _ = resp.bytes().await;
    Ok(())
}

/// Have-check, then ships what the peer lacks.
async fn ship_rows(ctx: &Ctx, rows: Vec<ObjectRow>) -> Step<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let theirs = have(ctx, rows.iter().map(object_ref).collect()).await?;
    let mut todo = Vec::new();
    for (row, t) in rows.into_iter().zip(theirs) {
        if t.is_some_and(|t| t >= row.ts) {
            ctx.stats().skipped.fetch_add(1, Ordering::Relaxed);
        } else {
            todo.push(row);
        }
    }
    let concurrency = ctx.x.cfg.concurrency;
    // Manifests last: their segments must be at the peer before they become visible.
    let (manifests, plain): (Vec<_>, Vec<_>) = todo.into_iter().partition(|r| r.slo && !r.deleted);
    let results: Vec<Step<()>> = futures_util::stream::iter(plain)
        .map(|row| async move { ship_counted(ctx, &row).await })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    results.into_iter().collect::<Step<Vec<()>>>()?;
    for m in manifests {
        ship_manifest(ctx, &m).await?;
    }
    Ok(())
}

async fn ship_counted(ctx: &Ctx, row: &ObjectRow) -> Step<()> {
    let s = ctx.stats();
    match ship_one(ctx, row).await? {
        Outcome::Shipped(bytes) => {
            s.shipped.fetch_add(1, Ordering::Relaxed);
            s.bytes.fetch_add(bytes, Ordering::Relaxed);
        }
        Outcome::Rejected => {
            s.rejected.fetch_add(1, Ordering::Relaxed);
        }
        Outcome::Moved => {}
    }
    Ok(())
}

fn peer_url(ctx: &Ctx, row: &ObjectRow, query: &str) -> String {
    let u = crate::cluster::object_url(
        &format!("{}{}", ctx.base(), outpost_proto::paths::XDC),
        &row.account,
        &row.container,
        &row.name,
    );
    format!("{u}{query}")
}

fn set(h: &mut HeaderMap, name: &'static str, v: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&v.to_string()) {
        h.insert(name, v);
    }
}

/// Headers describing a version: timestamp, content type, metadata, expiry.
fn version_headers(ctx: &Ctx, row: &ObjectRow) -> HeaderMap {
    let mut h = HeaderMap::new();
    ctx.auth(&mut h);
    set(&mut h, "x-timestamp", row.ts);
    set(&mut h, "content-type", &row.content_type);
    if let Some(d) = row.delete_at {
        set(&mut h, "x-delete-at", d);
    }
    for (k, v) in &row.meta {
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.insert(n, v);
        }
    }
    h
}

/// The data of a version to ship.
enum Local {
    /// This node's own data file, open.
    File(std::fs::File),
    /// Read from a replica (cluster mode, this node holds only the listing row).
    Replica(reqwest::Response),
}

impl Local {
    fn into_body(self) -> reqwest::Body {
        match self {
            Local::File(f) => reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(
                tokio::fs::File::from_std(f),
            )),
            Local::Replica(resp) => {
                reqwest::Body::wrap_stream(resp.bytes_stream().map_err(std::io::Error::other))
            }
        }
    }

    async fn bytes(self) -> Step<Vec<u8>> {
        match self {
            Local::File(f) => {
                let mut buf = Vec::new();
                tokio::fs::File::from_std(f)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(retry)?;
                Ok(buf)
            }
            Local::Replica(resp) => Ok(resp.bytes().await.map_err(retry)?.to_vec()),
        }
    }
}

/// Opens the version `row` names through the store (in a cluster, a version whose data this
/// node does not hold is read from its replicas, with `query`). `None` when it is no longer
/// current.
async fn read_local(ctx: &Ctx, row: &ObjectRow, query: Option<&str>) -> Step<Option<Local>> {
    let (a, c, o) = (
        row.account.as_str(),
        row.container.as_str(),
        row.name.as_str(),
    );
    let live = match ctx.st.live_row(a, c, o).await {
        Ok(r) => r,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(retry(format!("local read: {e}"))),
    };
    if live.ts != row.ts {
        return Ok(None);
    }
    if live.listing_only {
        let Some(cl) = ctx.cluster.as_ref() else {
            return Err(retry("a listing row without data outside cluster mode"));
        };
        let resp = match crate::cluster::proxy::read_data(cl, (a, c, o), query).await {
            Ok(r) => r,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(retry(format!("replica read: {e}"))),
        };
        if !resp.status().is_success() {
            return Err(retry(format!("replica read answered {}", resp.status())));
        }
        let ts: Option<Timestamp> = resp
            .headers()
            .get("x-timestamp")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        return Ok((ts == Some(row.ts)).then_some(Local::Replica(resp)));
    }
    let v = match ctx.st.open_live(a, c, o).await {
        Ok(v) => v,
        Err(Error::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(retry(format!("local read: {e}"))),
    };
    if v.row.ts != row.ts {
        return Ok(None);
    }
    let f = v.file.try_clone().map_err(retry)?;
    Ok(Some(Local::File(f)))
}

async fn ship_one(ctx: &Ctx, row: &ObjectRow) -> Step<Outcome> {
    if row.deleted {
        let mut h = HeaderMap::new();
        ctx.auth(&mut h);
        set(&mut h, "x-timestamp", row.ts);
        let resp = send(ctx, Method::DELETE, peer_url(ctx, row, ""), h, None).await?;
        return Ok(match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Outcome::Shipped(0),
            s => rejected(row, s),
        });
    }
    for attempt in 0..2 {
        let Some(local) = read_local(ctx, row, None).await? else {
            return Ok(Outcome::Moved);
        };
        let mut h = version_headers(ctx, row);
        set(&mut h, "etag", &row.etag);
        set(&mut h, "content-length", row.size);
        let body = local.into_body();
        let resp = send(ctx, Method::PUT, peer_url(ctx, row, ""), h, Some(body)).await?;
        match resp.status() {
            s if s.is_success() => return Ok(Outcome::Shipped(row.size)),
            StatusCode::NOT_FOUND if attempt == 0 => ensure_container(ctx, row).await?,
            s => return Ok(rejected(row, s)),
        }
    }
    Ok(rejected(row, StatusCode::NOT_FOUND))
}

fn rejected(row: &ObjectRow, s: StatusCode) -> Outcome {
    tracing::warn!(account = %row.account, container = %row.container, object = %row.name, status = %s, "the peer refused a replicated change");
    Outcome::Rejected
}

/// Creates the container at the peer with its metadata (but not its sync targets: they name
/// peers as this DC knows them).
async fn ensure_container(ctx: &Ctx, row: &ObjectRow) -> Step<()> {
    let (a, c) = (row.account.clone(), row.container.clone());
    let crow = ctx
        .st
        .blocking(move |s| s.db.get_container(&a, &c))
        .await
        .map_err(retry)?;
    let mut h = HeaderMap::new();
    ctx.auth(&mut h);
    // The container's own timestamp, or (if it went meanwhile) the object's.
    set(&mut h, "x-timestamp", row.ts);
    if let Some(crow) = crow {
        set(&mut h, "x-timestamp", crow.ts);
        for (k, v) in crow.meta.iter().filter(|(k, _)| k.as_str() != SYNC_TO_META) {
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(v),
            ) {
                h.insert(n, v);
            }
        }
    }
    let url = format!(
        "{}{}/AUTH_{}/{}",
        ctx.base(),
        outpost_proto::paths::XDC_APPLY,
        percent_encoding::utf8_percent_encode(&row.account, percent_encoding::NON_ALPHANUMERIC),
        percent_encoding::utf8_percent_encode(&row.container, percent_encoding::NON_ALPHANUMERIC)
    );
    set(&mut h, "content-length", 0);
    let resp = send(ctx, Method::PUT, url, h, None).await?;
    if resp.status().is_success() {
        Ok(())
    } else {
        Err(retry(format!(
            "creating the container at the peer answered {}",
            resp.status()
        )))
    }
}

#[derive(serde::Deserialize)]
struct StoredSegment {
    name: String,
    hash: String,
    bytes: u64,
}

#[derive(serde::Serialize)]
struct PutSegment<'a> {
    path: &'a str,
    etag: &'a str,
    size_bytes: u64,
}

/// Ships an SLO manifest: first every segment the peer lacks, then the manifest.
async fn ship_manifest(ctx: &Ctx, row: &ObjectRow) -> Step<()> {
    // The stored data of a manifest is its segment list.
    let Some(local) = read_local(ctx, row, Some("multipart-manifest=get")).await? else {
        return Ok(());
    };
    let raw = local.bytes().await?;
    let Ok(segs) = serde_json::from_slice::<Vec<StoredSegment>>(&raw) else {
        ctx.stats().rejected.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(object = %row.name, "unreadable local SLO manifest; not shipped");
        return Ok(());
    };
    // Segments first (each is a plain object of this account).
    let mut seg_rows = Vec::new();
    for s in &segs {
        let Some((c, o)) = s.name.trim_start_matches('/').split_once('/') else {
            continue;
        };
        let (a, c, o) = (row.account.clone(), c.to_owned(), o.to_owned());
        let r = ctx
            .st
            .blocking(move |st| st.db.get_object(&a, &c, &o))
            .await
            .map_err(retry)?;
        seg_rows.extend(r.filter(|r| !r.deleted && !r.slo));
    }
    if !seg_rows.is_empty() {
        let theirs = have(ctx, seg_rows.iter().map(object_ref).collect()).await?;
        for (r, t) in seg_rows.iter().zip(theirs) {
            if t.is_none_or(|t| t < r.ts) {
                ship_counted(ctx, r).await?;
            }
        }
    }
    let body: Vec<PutSegment<'_>> = segs
        .iter()
        .map(|s| PutSegment {
            path: &s.name,
            etag: &s.hash,
            size_bytes: s.bytes,
        })
        .collect();
    let body = serde_json::to_vec(&body).map_err(retry)?;
    let len = body.len();
    for attempt in 0..2 {
        let mut h = version_headers(ctx, row);
        set(&mut h, "content-length", len);
        let resp = send(
            ctx,
            Method::PUT,
            peer_url(ctx, row, "?multipart-manifest=put"),
            h,
            Some(body.clone().into()),
        )
        .await?;
        match resp.status() {
            s if s.is_success() => {
                let st = ctx.stats();
                st.shipped.fetch_add(1, Ordering::Relaxed);
                st.bytes.fetch_add(len as u64, Ordering::Relaxed);
                return Ok(());
            }
            StatusCode::NOT_FOUND if attempt == 0 => ensure_container(ctx, row).await?,
            s => {
                rejected(row, s);
                ctx.stats().rejected.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
        }
    }
    Ok(())
}
