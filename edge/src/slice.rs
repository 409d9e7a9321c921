//! Slice caching of large objects: seeks into a 4 GiB video pull only the slices they touch.
//!
//! # How a request is served
//!
//! An object GET/HEAD takes the slice path when the edge knows the object is larger than the
//! slice size ([`ObjectInfo`], learned from an earlier response), or when it does not know the
//! object yet and no complete copy is cached. Known-small objects and listings go through
//! pingora's cache as before. An unknown object is learned with one ranged fetch of a slice;
//! if that turns out to be the whole (small) object it is cached as pingora's ordinary entry,
//! so later requests are plain pingora hits.
//!
//! 1. **Info**: size, ETag and the headers of the whole object. Unknown → the slice holding the
//!    first requested byte is fetched with an upstream `Range` request and its `206` tells the
//!    rest. One request per object does this at a time (a cache lock on `<key>#info`); the
//!    others wait for it.
//! 2. **Response head**: built from the info: conditionals (`If-None-Match`,
//!    `If-Modified-Since` → 304, `If-Match` → 412), then pingora's range filter (`If-Range`,
//!    single/suffix/open/multi ranges, 416 with `bytes */len`, at most `max_ranges` ranges,
//!    invalid syntax → 200).
//! 3. **Body**: for each requested range, slice by slice. A slice is an ordinary entry of the
//!    tiered cache under `<key>#s<index>@<etag>`: a hit is read from memory or disk; a miss
//!    takes the slice's cache lock, sends `Range` + `If-Match: <etag>` upstream, and hands the
//!    upstream body to a background task that writes it into the cache (a fill). The request —
//!    and every concurrent viewer — reads that fill as it grows, so the first byte goes out as
//!    soon as it arrives and each slice is fetched once however many watch it.
//!
//! # Consistency
//!
//! Slices are keyed by ETag, so bytes of two versions can never be stitched together from the
//! cache. Upstream, every slice request carries `If-Match`: if the object changed, the origin
//! answers 412. Before the response head is sent the edge forgets the info and starts over
//! (once); after it, the response is aborted (the client sees a short body and the connection
//! closes), never completed with the other version's bytes. A purge of the object drops its
//! info (the purge log is checked on every use) and its slices (prefix `<key>#`).
//!
//! # Memory
//!
//! Slice fills go to disk like any fill (a slice that fits `memory_object_max` is kept in the
//! memory tier too, within its byte bound); readers copy 64 KiB chunks to the client. A slow
//! client does not slow a fill, and a fill is not cut short by its client going away.
//!
//! # Limits
//!
//! - Object info lives in memory only: after a restart the first range request of an object
//!   re-fetches the slice it needs once (cached slices of the same ETag are reused).
//! - Generic upstream mode never slices.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use pingora::cache::lock::{CacheKeyLockImpl, LockStatus, Locked};
use pingora::cache::storage::{HitHandler, MissHandler, Storage};
use pingora::cache::trace::{Span, SpanHandle};
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::connectors::http::Connector;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::protocols::http::client::HttpSession;
use pingora::protocols::http::conditional_filter::{not_modified_filter, to_304};
use pingora::proxy::{range_header_filter, RangeType, Session};
use pingora::{Error as PError, ErrorType, Result as PResult};

use crate::cache::{CacheHit, CacheTier, TieredStorage};
use crate::cache_policy::{CachePolicy, Exchange};
use crate::config::Config;
use crate::feed::INTERNAL_HEADER;
use crate::purgelog::PurgeLog;
use crate::ring::Upstream;

/// How long a slice entry is considered fresh: its bytes are those of one ETag, so only
/// capacity eviction and purges remove it.
const SLICE_FRESH: Duration = Duration::from_secs(365 * 86_400);
/// Lookup / lock rounds before a slice is fetched uncached.
const SLICE_ATTEMPTS: usize = 4;

/// What the edge knows about a whole object.
#[derive(Debug)]
pub struct ObjectInfo {
    /// Object size in bytes.
    pub len: u64,
    /// The ETag, quoted, if the origin sent one.
    pub etag: Option<String>,
    /// The `200` header of the whole object (`Content-Length` = `len`).
    header: ResponseHeader,
    /// When this info must be re-learned.
    fresh_until: SystemTime,
    /// Whether slices may be cached (the origin's `Cache-Control` allows it).
    cacheable: bool,
    /// The purge-log epoch taken before the response this came from was requested.
    epoch: u64,
}

/// Counters of the slice path.
#[derive(Debug, Default)]
pub struct SliceStats {
    /// Slice fetches sent upstream.
    pub fetches: AtomicU64,
    /// Body bytes received from upstream for slices.
    pub upstream_bytes: AtomicU64,
    /// Responses aborted because the object changed mid-stream.
    pub changed: AtomicU64,
}

/// Slice-path state of the edge.
pub struct Slicer {
    /// Slice size in bytes.
    pub slice_size: u64,
    /// Most ranges served in one request.
    pub max_ranges: usize,
    infos: moka::sync::Cache<String, Arc<ObjectInfo>>,
    connector: Arc<Connector>,
    /// Counters.
    pub stats: Arc<SliceStats>,
}

impl std::fmt::Debug for Slicer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slicer")
            .field("slice_size", &self.slice_size)
            .field("max_ranges", &self.max_ranges)
            .finish_non_exhaustive()
    }
}

/// Why a slice could not be served.
#[derive(Debug)]
enum SliceError {
    /// The object's ETag is no longer the one the response started with.
    Changed,
    /// Anything else (upstream, cache); already a pingora error.
    Other(Box<PError>),
}

impl From<Box<PError>> for SliceError {
    fn from(e: Box<PError>) -> Self {
        SliceError::Other(e)
    }
}

impl SliceError {
    fn into_pingora(self) -> Box<PError> {
        match self {
            SliceError::Changed => PError::explain(
                ErrorType::Custom("object changed"),
                "the object changed while it was being sent",
            ),
            SliceError::Other(e) => e,
        }
    }
}

fn upstream_error(why: impl Into<String>) -> Box<PError> {
    PError::explain(ErrorType::Custom("slice upstream"), why.into()).into_up()
}

/// Where the bytes of one slice come from.
enum Source {
    /// The tiered cache: a committed entry or a fill in progress.
    Hit(HitHandler),
    /// Straight from upstream (uncacheable objects): a body that starts at slice offset
    /// `start`.
    Upstream {
        session: Box<HttpSession>,
        start: u64,
    },
}

impl Source {
    fn is_cached(&self) -> bool {
        match self {
            Source::Hit(h) => h
                .as_any()
                .downcast_ref::<CacheHit>()
                .is_none_or(|c| c.tier() != CacheTier::Fill),
            Source::Upstream { .. } => false,
        }
    }
}

/// What a request needs from the proxy for the slice path.
pub(crate) struct SliceRequest<'a> {
    /// Primary cache key of the object.
    pub primary: &'a str,
    /// Upstream path (encoded).
    pub uri: &'a str,
}

/// The parts of the proxy the slice path uses.
pub(crate) struct SliceEnv<'a> {
    pub cfg: &'a Config,
    pub storage: &'static TieredStorage,
    pub lock: &'static CacheKeyLockImpl,
    pub purge_log: &'a PurgeLog,
    pub policy: &'a CachePolicy,
    /// Where the object may be read from, in order (see [`crate::ring`]).
    pub upstreams: &'a [crate::ring::Upstream],
}

/// How the slice path answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Served {
    /// From cached slices only (for the first slice sent).
    Hit,
    /// At least the first slice came from upstream.
    Miss,
    /// The origin's non-success answer was passed through.
    Passthrough,
    /// Nothing was sent: the object turned out small and is (being) cached whole, so the
    /// request should take pingora's path.
    Defer,
}

fn span() -> SpanHandle {
    Span::inactive().handle()
}

fn slice_key(primary: &str, index: u64, etag: Option<&str>) -> CacheKey {
    let etag = etag.unwrap_or("").trim_matches('"');
    CacheKey::new(format!("{primary}#s{index}@{etag}"), "")
}

/// Parses `Content-Range: bytes a-b/len` (or `bytes */len`): `(Some((a, b)), len)`.
fn content_range(resp: &ResponseHeader) -> Option<(Option<(u64, u64)>, u64)> {
    let v = resp
        .headers
        .get(http::header::CONTENT_RANGE)?
        .to_str()
        .ok()?;
    let rest = v.strip_prefix("bytes ")?;
    let (span, len) = rest.split_once('/')?;
    let len = len.trim().parse().ok()?;
    if span == "*" {
        return Some((None, len));
    }
    let (a, b) = span.split_once('-')?;
    Some((Some((a.parse().ok()?, b.parse().ok()?)), len))
}

fn content_length(resp: &ResponseHeader) -> Option<u64> {
    resp.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

fn etag_of(resp: &ResponseHeader) -> Option<String> {
    let v = resp.headers.get(http::header::ETAG)?.to_str().ok()?;
    Some(if v.starts_with('"') || v.starts_with("W/") {
        v.to_owned()
    } else {
        format!("\"{v}\"")
    })
}

/// How an unknown object is learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Learn {
    /// Fetch (and cache) the slice holding this byte: a GET without `Range` (byte 0) or
    /// with one that starts `bytes=a-`.
    SliceAt(u64),
    /// Ask for one byte, only to learn size and validators: a HEAD, or a `Range` whose first
    /// byte depends on the size (suffix) or that will be ignored (invalid syntax).
    Probe,
}

fn learn_plan(req: &RequestHeader) -> Learn {
    if req.method == http::Method::HEAD {
        return Learn::Probe;
    }
    let Some(v) = req.headers.get(http::header::RANGE) else {
        return Learn::SliceAt(0);
    };
    let first = v
        .to_str()
        .ok()
        .and_then(|v| v.trim().strip_prefix("bytes="))
        .and_then(|spec| spec.split(',').next())
        .and_then(|first| first.trim().split_once('-'))
        .and_then(|(a, _)| a.trim().parse().ok());
    first.map_or(Learn::Probe, Learn::SliceAt)
}

/// `If-Match` that no current representation satisfies (RFC 9110 §13.1.1).
fn if_match_fails(req: &RequestHeader, etag: Option<&str>) -> bool {
    let Some(v) = req
        .headers
        .get(http::header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    if v.trim() == "*" {
        return false;
    }
    let Some(etag) = etag.filter(|e| !e.starts_with("W/")) else {
        return true;
    };
    !v.split(',').any(|t| t.trim() == etag)
}

impl Slicer {
    /// A slicer for `cfg`.
    pub fn new(cfg: &Config) -> Slicer {
        Slicer {
            slice_size: cfg.slice_size,
            max_ranges: cfg.max_ranges,
            infos: moka::sync::Cache::builder().max_capacity(100_000).build(),
            connector: Arc::new(Connector::new(None)),
            stats: Arc::default(),
        }
    }

    /// The object's info if known, fresh and not purged since it was learned.
    pub fn info(&self, primary: &str, purge_log: &PurgeLog) -> Option<Arc<ObjectInfo>> {
        let info = self.infos.get(primary)?;
        if info.fresh_until <= SystemTime::now() || purge_log.purged_since(primary, info.epoch) {
            self.infos.invalidate(primary);
            return None;
        }
        Some(info)
    }

    fn forget(&self, primary: &str) {
        self.infos.invalidate(primary);
    }

    /// Whether a large object (above the slice size) is known.
    pub fn is_large(&self, info: &ObjectInfo) -> bool {
        info.len > self.slice_size
    }

    /// Learns an object's info from a complete `200` response that went through pingora's
    /// path (a full GET). `epoch` was taken before the request went upstream.
    pub fn note_full_response(
        &self,
        primary: &str,
        resp: &ResponseHeader,
        epoch: u64,
        policy: &CachePolicy,
    ) {
        if resp.status != http::StatusCode::OK {
            return;
        }
        let Some(len) = content_length(resp) else {
            return;
        };
        let info = build_info(resp.clone(), len, epoch, policy);
        self.infos.insert(primary.to_owned(), Arc::new(info));
    }
}

/// The info of an object from a response header of it (any status), given its size.
fn build_info(
    mut header: ResponseHeader,
    len: u64,
    epoch: u64,
    policy: &CachePolicy,
) -> ObjectInfo {
    let etag = etag_of(&header);
    let _ = header.set_status(http::StatusCode::OK);
    for h in [
        http::header::CONTENT_RANGE,
        http::header::CONNECTION,
        http::header::TRANSFER_ENCODING,
    ] {
        header.remove_header(&h);
    }
    header.remove_header("keep-alive");
    let _ = header.insert_header(http::header::CONTENT_LENGTH, len);
    let _ = header.insert_header(http::header::ACCEPT_RANGES, "bytes");
    if let Some(e) = &etag {
        let _ = header.insert_header(http::header::ETAG, e.as_str());
    }
    let (cacheable, fresh_until) = match policy.admit(&header, &Exchange::at(SystemTime::now())) {
        RespCacheable::Cacheable(meta) => (true, meta.fresh_until()),
        RespCacheable::Uncacheable(_) => (false, SystemTime::now() + Duration::from_secs(5)),
    };
    ObjectInfo {
        len,
        etag,
        header,
        fresh_until,
        cacheable,
        epoch,
    }
}

/// What learning an unknown object produced.
enum Learned {
    /// The info, and the source of slice `index` if it was fetched on the way.
    Info(Arc<ObjectInfo>, Option<(u64, Source)>),
    /// The origin did not answer with the object; its answer went to the client.
    Passthrough,
}

impl SliceEnv<'_> {
    fn peer_at(&self, addr: SocketAddr) -> HttpPeer {
        let mut peer = HttpPeer::new(addr, false, String::new());
        peer.options.connection_timeout = Some(self.cfg.connect_timeout);
        peer.options.read_timeout = Some(self.cfg.read_timeout);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        peer
    }

    /// Sends `GET uri` with `Range: bytes=first-last` (and `If-Match`) to the request's
    /// upstreams in order (replicas from the ring, then the origin; see [`crate::ring`]): a
    /// replica that cannot be reached or answers 404 or 5xx is skipped. Returns the session
    /// with the response header read and the address that answered. A pooled connection that
    /// fails is retried once on a fresh one.
    async fn upstream_range(
        &self,
        slicer: &Slicer,
        uri: &str,
        first: u64,
        last: u64,
        if_match: Option<&str>,
    ) -> PResult<(HttpSession, ResponseHeader, SocketAddr)> {
        let mut last_err = None;
        for (i, up) in self.upstreams.iter().enumerate() {
            let more = i + 1 < self.upstreams.len();
            match self
                .upstream_try(slicer, *up, uri, first, last, if_match)
                .await
            {
                Ok((_, resp))
                    if up.is_replica()
                        && more
                        && (resp.status == http::StatusCode::NOT_FOUND
                            || resp.status.is_server_error()) =>
                {
                    tracing::debug!(replica = %up.addr(), status = %resp.status, "slice: next replica");
                }
                Ok((s, resp)) => return Ok((s, resp, up.addr())),
                Err(e) if more => {
                    tracing::debug!(upstream = %up.addr(), error = %e, "slice: upstream failed; next");
                    last_err = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_err.unwrap_or_else(|| upstream_error("no upstream")))
    }

    async fn upstream_try(
        &self,
        slicer: &Slicer,
        up: Upstream,
        uri: &str,
        first: u64,
        last: u64,
        if_match: Option<&str>,
    ) -> PResult<(HttpSession, ResponseHeader)> {
        let peer = self.peer_at(up.addr());
        let mut tries = 0;
        loop {
            tries += 1;
            let (mut s, reused) = slicer
                .connector
                .get_http_session(&peer)
                .await
                .map_err(PError::into_up)?;
            let mut req = RequestHeader::build(http::Method::GET, uri.as_bytes(), Some(6))?;
            req.insert_header(http::header::HOST, up.addr().to_string())?;
            req.insert_header(INTERNAL_HEADER, self.cfg.internal_secret.as_str())?;
            if up.is_replica() {
                req.insert_header(crate::ring::DIRECT_HEADER, "data")?;
            }
            req.insert_header(http::header::RANGE, format!("bytes={first}-{last}"))?;
            if let Some(e) = if_match {
                req.insert_header(http::header::IF_MATCH, e)?;
            }
            let sent = async {
                s.write_request_header(Box::new(req)).await?;
                s.finish_request_body().await?;
                s.read_response_header().await
            }
            .await;
            match sent {
                Ok(()) => {
                    slicer.stats.fetches.fetch_add(1, Ordering::Relaxed);
                    let resp = s
                        .response_header()
                        .cloned()
                        .ok_or_else(|| upstream_error("no response header"))?;
                    return Ok((s, resp));
                }
                Err(e) if reused && tries < 2 => {
                    tracing::debug!(error = %e, "slice: pooled upstream connection failed; retrying");
                }
                Err(e) => return Err(e.into_up()),
            }
        }
    }

    /// Caches the body of `session` (one whole slice) as `key` in a background task; returns
    /// the fill's streaming tag so the caller can read it.
    async fn spawn_fill(
        &self,
        slicer: &Slicer,
        key: &CacheKey,
        meta: CacheMeta,
        mut session: HttpSession,
        from: SocketAddr,
        expected: u64,
    ) -> PResult<[u8; 8]> {
        let mut miss: MissHandler = self.storage.get_miss_handler(key, &meta, &span()).await?;
        let mut tag = [0u8; 8];
        if let Some(t) = miss.streaming_write_tag() {
            let n = t.len().min(8);
            tag[..n].copy_from_slice(&t[..n]);
        }
        let connector = Arc::clone(&slicer.connector);
        let stats = Arc::clone(&slicer.stats);
        let peer = self.peer_at(from);
        tokio::spawn(async move {
            let mut got = 0u64;
            let filled: PResult<()> = async {
                while let Some(chunk) = session.read_response_body().await? {
                    got += chunk.len() as u64;
                    stats
                        .upstream_bytes
                        .fetch_add(chunk.len() as u64, Ordering::Relaxed);
                    if got > expected {
                        return Err(upstream_error("slice body longer than its range"));
                    }
                    miss.write_body(chunk, got == expected).await?;
                }
                if got != expected {
                    return Err(upstream_error(format!(
                        "slice body ended at {got} of {expected} bytes"
                    )));
                }
                miss.finish().await?;
                Ok(())
            }
            .await;
            match filled {
                Ok(()) => {
                    connector
                        .release_http_session(session, &peer, Some(Duration::from_secs(60)))
                        .await;
                }
                // Dropping the miss handler aborts the fill: its readers get an error.
                Err(e) => tracing::warn!(error = %e, "slice fill failed"),
            }
        });
        Ok(tag)
    }

    /// The meta of a slice entry of `len` bytes.
    fn slice_meta(info: &ObjectInfo, len: u64) -> PResult<CacheMeta> {
        let mut header = info.header.clone();
        header.insert_header(http::header::CONTENT_LENGTH, len)?;
        let now = SystemTime::now();
        Ok(CacheMeta::new(now + SLICE_FRESH, now, 0, 0, header))
    }

    /// Reads the fill tagged `tag` of `key`.
    async fn follow_fill(&self, key: &CacheKey, tag: &[u8; 8]) -> PResult<Option<Source>> {
        Ok(self
            .storage
            .lookup_streaming_write(key, Some(tag), &span())
            .await?
            .map(|(_, hit)| Source::Hit(hit)))
    }

    /// Checks an upstream slice answer against what was asked; returns the body length.
    fn check_slice(
        resp: &ResponseHeader,
        info: &ObjectInfo,
        first: u64,
        last: u64,
    ) -> Result<u64, SliceError> {
        match resp.status.as_u16() {
            206 => {}
            412 | 416 => return Err(SliceError::Changed),
            200 if first == 0 && content_length(resp) == Some(info.len) => {}
            s => return Err(upstream_error(format!("origin answered {s} for a slice")).into()),
        }
        if etag_of(resp) != info.etag {
            return Err(SliceError::Changed);
        }
        if resp.status == http::StatusCode::OK {
            return Ok(info.len);
        }
        match content_range(resp) {
            Some((Some((a, b)), len)) if a == first && b == last && len == info.len => {
                Ok(last - first + 1)
            }
            Some((_, len)) if len != info.len => Err(SliceError::Changed),
            _ => Err(upstream_error("origin answered a different range").into()),
        }
    }

    /// The source of slice `index` of a known object: the cache (hit or fill in progress),
    /// after fetching it if nobody has.
    async fn open_slice(
        &self,
        slicer: &Slicer,
        req: &SliceRequest<'_>,
        info: &ObjectInfo,
        index: u64,
    ) -> Result<Source, SliceError> {
        let first = index * slicer.slice_size;
        let last = (first + slicer.slice_size).min(info.len) - 1;
        if !info.cacheable {
            return self.direct(slicer, req, info, first, last).await;
        }
        let key = slice_key(req.primary, index, info.etag.as_deref());
        for _ in 0..SLICE_ATTEMPTS {
            if let Some((_, hit)) = self.storage.lookup(&key, &span()).await? {
                return Ok(Source::Hit(hit));
            }
            match self.lock.lock(&key, false) {
                Locked::Write(permit) => {
                    let started = async {
                        let (session, resp, from) = self
                            .upstream_range(slicer, req.uri, first, last, info.etag.as_deref())
                            .await?;
                        let expected = Self::check_slice(&resp, info, first, last)?;
                        let meta = Self::slice_meta(info, expected)?;
                        Ok::<_, SliceError>(
                            self.spawn_fill(slicer, &key, meta, session, from, expected)
                                .await?,
                        )
                    }
                    .await;
                    match started {
                        Ok(tag) => {
                            self.lock.release(&key, permit, LockStatus::Done);
                            if let Some(src) = self.follow_fill(&key, &tag).await? {
                                return Ok(src);
                            }
                        }
                        Err(e) => {
                            self.lock.release(&key, permit, LockStatus::TransientError);
                            return Err(e);
                        }
                    }
                }
                Locked::Read(r) => r.wait().await,
            }
        }
        self.direct(slicer, req, info, first, last).await
    }

    /// Slice bytes straight from upstream, not cached.
    async fn direct(
        &self,
        slicer: &Slicer,
        req: &SliceRequest<'_>,
        info: &ObjectInfo,
        first: u64,
        last: u64,
    ) -> Result<Source, SliceError> {
        let (session, resp, _) = self
            .upstream_range(slicer, req.uri, first, last, info.etag.as_deref())
            .await?;
        Self::check_slice(&resp, info, first, last)?;
        Ok(Source::Upstream {
            session: Box::new(session),
            start: 0,
        })
    }

    /// Learns an unknown object by fetching the slice that holds the first requested byte.
    async fn learn(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &(dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync),
    ) -> PResult<Learned> {
        let info_key = CacheKey::new(format!("{}#info", req.primary), "");
        let permit = match self.lock.lock(&info_key, false) {
            Locked::Write(p) => Some(p),
            Locked::Read(r) => {
                r.wait().await;
                if let Some(info) = slicer.info(req.primary, self.purge_log) {
                    return Ok(Learned::Info(info, None));
                }
                None
            }
        };
        let learned = self.learn_locked(slicer, session, req, finish).await;
        if let Some(p) = permit {
            let status = if learned.is_ok() {
                LockStatus::Done
            } else {
                LockStatus::TransientError
            };
            self.lock.release(&info_key, p, status);
        }
        learned
    }

    /// Learns an object's size and validators from a one-byte range, caching nothing.
    async fn probe(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &(dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync),
    ) -> PResult<Learned> {
        let epoch = self.purge_log.current();
        let (mut up, resp, from) = self.upstream_range(slicer, req.uri, 0, 0, None).await?;
        let len = match resp.status.as_u16() {
            206 => match content_range(&resp) {
                Some((Some((0, 0)), len)) => len,
                _ => return Err(upstream_error("origin answered a different range")),
            },
            // An empty object (nothing to range over) or an origin ignoring ranges.
            416 => content_range(&resp).map_or(0, |(_, len)| len),
            200 => content_length(&resp).unwrap_or(0),
            _ => {
                passthrough(session, &mut up, resp, finish).await?;
                return Ok(Learned::Passthrough);
            }
        };
        let info = Arc::new(build_info(resp, len, epoch, self.policy));
        slicer
            .infos
            .insert(req.primary.to_owned(), Arc::clone(&info));
        // The body is at most one byte: finish it so the connection can be reused.
        let drained = async {
            while up.read_response_body().await?.is_some() {}
            Ok::<_, Box<PError>>(())
        }
        .await;
        if drained.is_ok() {
            slicer
                .connector
                .release_http_session(up, &self.peer_at(from), Some(Duration::from_secs(60)))
                .await;
        }
        Ok(Learned::Info(info, None))
    }

    async fn learn_locked(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &(dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync),
    ) -> PResult<Learned> {
        let size = slicer.slice_size;
        let mut index = match learn_plan(session.req_header()) {
            Learn::SliceAt(p) => p / size,
            Learn::Probe => return self.probe(slicer, session, req, finish).await,
        };
        loop {
            let epoch = self.purge_log.current();
            let first = index * size;
            let (mut up, resp, from) = self
                .upstream_range(slicer, req.uri, first, first + size - 1, None)
                .await?;
            let (len, body_len) = match resp.status.as_u16() {
                206 => match content_range(&resp) {
                    Some((Some((a, b)), len)) if a == first && b >= a && b < len => {
                        (len, b - a + 1)
                    }
                    _ => return Err(upstream_error("origin answered a different range")),
                },
                200 => match content_length(&resp) {
                    // The origin sent everything: that is slice 0 when it fits one.
                    Some(len) if len <= size => {
                        index = 0;
                        (len, len)
                    }
                    _ => return Err(upstream_error("origin ignored the slice range")),
                },
                // Asked past the end: the size is in Content-Range; start from slice 0.
                416 if index > 0 => {
                    index = 0;
                    continue;
                }
                _ => {
                    passthrough(session, &mut up, resp, finish).await?;
                    return Ok(Learned::Passthrough);
                }
            };
            let info = Arc::new(build_info(resp.clone(), len, epoch, self.policy));
            // The info is published only once the fill it points to is registered: a request
            // that sees "small" goes to pingora's path and must find the entry there.
            let publish = |info: &Arc<ObjectInfo>| {
                slicer
                    .infos
                    .insert(req.primary.to_owned(), Arc::clone(info));
            };
            if !info.cacheable {
                publish(&info);
                return Ok(Learned::Info(
                    info,
                    Some((
                        index,
                        Source::Upstream {
                            session: Box::new(up),
                            start: 0,
                        },
                    )),
                ));
            }
            if info.len <= size {
                // A small object: this answer is all of it. Cache it as pingora's own entry
                // of the object, so the next requests are ordinary hits.
                let whole = CacheKey::new(req.primary.to_owned(), "");
                let cacheable = self
                    .policy
                    .admit(&info.header, &Exchange::at(SystemTime::now()));
                let meta = match cacheable {
                    RespCacheable::Cacheable(m)
                        if !self.purge_log.purged_since(req.primary, epoch) =>
                    {
                        m
                    }
                    _ => {
                        publish(&info);
                        let src = Source::Upstream {
                            session: Box::new(up),
                            start: 0,
                        };
                        return Ok(Learned::Info(info, Some((0, src))));
                    }
                };
                let tag = self
                    .spawn_fill(slicer, &whole, meta, up, from, body_len)
                    .await?;
                publish(&info);
                let src = self.follow_fill(&whole, &tag).await?;
                return Ok(Learned::Info(info, src.map(|s| (0, s))));
            }
            let key = slice_key(req.primary, index, info.etag.as_deref());
            let meta = Self::slice_meta(&info, body_len)?;
            let tag = self
                .spawn_fill(slicer, &key, meta, up, from, body_len)
                .await?;
            publish(&info);
            let src = self.follow_fill(&key, &tag).await?;
            return Ok(Learned::Info(info, src.map(|s| (index, s))));
        }
    }
}

/// Sends the origin's own (non-success) answer to the client.
async fn passthrough(
    session: &mut Session,
    up: &mut HttpSession,
    mut resp: ResponseHeader,
    finish: &(dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync),
) -> PResult<()> {
    // The proxy's downstream headers (cache status, privacy, CORS) on errors too.
    finish(&mut resp, Served::Passthrough)?;
    for h in [
        "x-trans-id",
        "x-openstack-request-id",
        "x-timestamp",
        "connection",
    ] {
        resp.remove_header(h);
    }
    let head = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head)
        .await
        .map_err(PError::into_down)?;
    if head {
        return Ok(());
    }
    while let Some(chunk) = up.read_response_body().await? {
        session
            .write_response_body(Some(chunk), false)
            .await
            .map_err(PError::into_down)?;
    }
    session
        .write_response_body(None, true)
        .await
        .map_err(PError::into_down)
}

/// Writes the part of `chunk` (which starts at slice offset `pos`) inside `[from, to)`;
/// returns the offset after the chunk.
async fn send_part(
    session: &mut Session,
    chunk: Bytes,
    pos: u64,
    from: u64,
    to: u64,
) -> PResult<u64> {
    let end = pos + chunk.len() as u64;
    if end > from && pos < to {
        let a = usize::try_from(from.saturating_sub(pos)).unwrap_or(0);
        let b = usize::try_from(to.min(end) - pos).unwrap_or(chunk.len());
        session
            .write_response_body(Some(chunk.slice(a..b)), false)
            .await
            .map_err(PError::into_down)?;
    }
    Ok(end)
}

/// Copies bytes `[from, to)` of a slice from `src` to the client.
async fn copy_slice(session: &mut Session, src: Source, from: u64, to: u64) -> PResult<()> {
    let mut pos;
    match src {
        Source::Hit(mut hit) => {
            pos = 0;
            if hit.can_seek() {
                let a = usize::try_from(from).unwrap_or(usize::MAX);
                let b = usize::try_from(to).unwrap_or(usize::MAX);
                hit.seek(a, Some(b))?;
                pos = from;
            }
            while pos < to {
                let Some(chunk) = hit.read_body().await? else {
                    break;
                };
                pos = send_part(session, chunk, pos, from, to).await?;
            }
        }
        Source::Upstream {
            session: mut up,
            start,
        } => {
            pos = start;
            while pos < to {
                let Some(chunk) = up.read_response_body().await? else {
                    break;
                };
                pos = send_part(session, chunk, pos, from, to).await?;
            }
        }
    }
    if pos < to {
        return Err(upstream_error(format!(
            "slice ended at byte {pos}, {to} expected"
        )));
    }
    Ok(())
}

/// The byte ranges a range decision asks for (empty for 416).
fn parts_of(range: &RangeType, len: u64) -> Vec<Range<u64>> {
    match range {
        RangeType::None => std::iter::once(0..len).collect(),
        RangeType::Single(r) => std::iter::once(r.start as u64..r.end as u64).collect(),
        RangeType::Multi(m) => m
            .ranges
            .iter()
            .map(|r| r.start as u64..r.end as u64)
            .collect(),
        RangeType::Invalid => Vec::new(),
    }
}

impl SliceEnv<'_> {
    /// Serves a GET/HEAD of an object from slices (see the module docs). `finish` adds the
    /// proxy's downstream headers (cache status, privacy, cookies) to the response head.
    pub(crate) async fn serve(
        &self,
        slicer: &Slicer,
        session: &mut Session,
        req: &SliceRequest<'_>,
        finish: &(dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync),
    ) -> PResult<Served> {
        let size = slicer.slice_size;
        let mut restarted = false;
        loop {
            let (info, mut fetched) = match slicer.info(req.primary, self.purge_log) {
                Some(i) => (i, None),
                None => match self.learn(slicer, session, req, finish).await? {
                    Learned::Info(i, f) => (i, f),
                    Learned::Passthrough => return Ok(Served::Passthrough),
                },
            };
            if fetched.is_none() && !slicer.is_large(&info) {
                return Ok(Served::Defer);
            }
            let head = session.req_header().method == http::Method::HEAD;
            let mut resp = info.header.clone();
            if if_match_fails(session.req_header(), info.etag.as_deref()) {
                let mut r = ResponseHeader::build(412, Some(4))?;
                r.insert_header(http::header::CONTENT_LENGTH, 0)?;
                if let Some(e) = &info.etag {
                    r.insert_header(http::header::ETAG, e.as_str())?;
                }
                finish(&mut r, Served::Hit)?;
                session
                    .write_response_header(Box::new(r), true)
                    .await
                    .map_err(PError::into_down)?;
                return Ok(Served::Hit);
            }
            if not_modified_filter(session.req_header(), &resp) {
                to_304(&mut resp);
                finish(&mut resp, Served::Hit)?;
                session
                    .write_response_header(Box::new(resp), true)
                    .await
                    .map_err(PError::into_down)?;
                return Ok(Served::Hit);
            }
            let range =
                range_header_filter(session.req_header(), &mut resp, Some(slicer.max_ranges));
            let parts = parts_of(&range, info.len);
            // The first slice is opened before the head goes out: if the object changed, the
            // response can still start over with the new version.
            let mut first: Option<(u64, Source)> = None;
            if let Some(p) = parts.first().filter(|p| !head && p.start < p.end) {
                let index = p.start / size;
                first = match fetched.take() {
                    Some((i, src)) if i == index => Some((i, src)),
                    _ => match self.open_slice(slicer, req, &info, index).await {
                        Ok(src) => Some((index, src)),
                        Err(SliceError::Changed) if !restarted => {
                            slicer.stats.changed.fetch_add(1, Ordering::Relaxed);
                            slicer.forget(req.primary);
                            restarted = true;
                            continue;
                        }
                        Err(e) => return Err(e.into_pingora()),
                    },
                };
            }
            let served = match &first {
                Some((_, src)) if !src.is_cached() => Served::Miss,
                _ => Served::Hit,
            };
            finish(&mut resp, served)?;
            let bodiless = head || parts.is_empty();
            session
                .write_response_header(Box::new(resp), bodiless)
                .await
                .map_err(PError::into_down)?;
            if bodiless {
                return Ok(served);
            }
            let multi = match &range {
                RangeType::Multi(m) => Some(m),
                _ => None,
            };
            for part in &parts {
                if let Some(m) = multi {
                    let ct = m
                        .content_type
                        .as_deref()
                        .map(|ct| format!("Content-Type: {ct}\r\n"))
                        .unwrap_or_default();
                    let h = format!(
                        "\r\n--{}\r\n{ct}Content-Range: bytes {}-{}/{}\r\n\r\n",
                        m.boundary,
                        part.start,
                        part.end - 1,
                        info.len
                    );
                    session
                        .write_response_body(Some(Bytes::from(h)), false)
                        .await
                        .map_err(PError::into_down)?;
                }
                let mut pos = part.start;
                while pos < part.end {
                    let index = pos / size;
                    let src = match first.take() {
                        Some((i, src)) if i == index => src,
                        _ => self
                            .open_slice(slicer, req, &info, index)
                            .await
                            .map_err(|e| {
                                if matches!(e, SliceError::Changed) {
                                    slicer.stats.changed.fetch_add(1, Ordering::Relaxed);
                                    slicer.forget(req.primary);
                                }
                                e.into_pingora()
                            })?,
                    };
                    let base = index * size;
                    let end = part.end.min(base + size);
                    copy_slice(session, src, pos - base, end - base).await?;
                    pos = end;
                }
            }
            if let Some(m) = multi {
                let tail = format!("\r\n--{}--\r\n", m.boundary);
                session
                    .write_response_body(Some(Bytes::from(tail)), false)
                    .await
                    .map_err(PError::into_down)?;
            }
            session
                .write_response_body(None, true)
                .await
                .map_err(PError::into_down)?;
            return Ok(served);
        }
    }
}
