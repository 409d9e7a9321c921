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
use crate::purgelog::PurgeLog;
use crate::ring::Upstream;

mod fetch;
mod learn;
mod serve;

use learn::Learned;

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
    pub upstreams: &'a crate::upstream::Upstreams,
}

/// Adds the proxy's downstream headers (cache status, privacy, cookies, CORS) to a head the
/// slice path is about to send.
pub(crate) type Finish<'a> = dyn Fn(&mut ResponseHeader, Served) -> PResult<()> + Sync + 'a;

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
