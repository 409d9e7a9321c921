//! The HTTP caching rules of the edge, as a *shared* cache (RFC 9111), in one place.
//!
//! Both cache paths (pingora's whole-object path in `proxy` and the slice path in `slice`)
//! decide storing and freshness here; `proxy` asks here how request directives and unsafe
//! methods act on stored entries. Everything is a pure function of headers and times, so
//! the rules are unit-tested below and conformance-tested end to end in
//! `tests/tests/edge_rfc9111.rs`.
//!
//! ## Decisions inside the RFC
//! - **Storing (§3)**: `GET` only (pingora turns `HEAD` into `GET` upstream); final statuses
//!   other than `206` and `304`; never `5xx` (a transient origin failure must not become an
//!   error cached across the fleet); never `no-store`, unqualified `private`, `Vary: *`, or a
//!   response that still carries `Set-Cookie` after the fields named by `private=`/`no-cache=`
//!   are stripped (one user's cookie must not reach another). A request with `Authorization`
//!   is stored only with `public`, `s-maxage` or `must-revalidate` (§3.5). Statuses that are
//!   not heuristically cacheable (RFC 9110 §15.1) need explicit freshness or `public`.
//! - **Freshness (§4.2)**: `s-maxage` over `max-age` over `Expires − Date`; an invalid value
//!   of any of them means stale (§4.2.1). Then the operator's [`CachePolicy::default_ttl`] if
//!   set; then the heuristic (§4.2.2): a fraction of `Date − Last-Modified`, capped. Otherwise
//!   the response is not fresh: it is stored only if it carries a validator, and every use
//!   revalidates it.
//! - **Age (§4.2.3)**: the corrected initial age (received `Age` plus the response delay, or
//!   the apparent age from `Date`, whichever is larger) is folded into the entry's creation
//!   time, so pingora's `Age = now − created` on a hit is the RFC's `current_age`.
//! - **Serving stale (§4.2.4, RFC 5861)**: `stale-while-revalidate`/`stale-if-error` from the
//!   response, else the configured defaults; zero under `no-cache`, `must-revalidate`,
//!   `proxy-revalidate` and `s-maxage` (which implies `proxy-revalidate` for shared caches).
//! - **Request directives (§5.2.1)**: `max-age`, `min-fresh`, `max-stale` and
//!   `only-if-cached` are honoured. `no-cache`/`no-store` (and `Pragma: no-cache`) in requests
//!   are ignored unless [`CachePolicy::honor_request_no_cache`] is set, as nginx, Varnish and
//!   most CDNs do: any client could otherwise send every request to the origin.
//! - **Invalidation (§4.4)**: a non-error answer to an unsafe method invalidates the target
//!   URI and same-host `Location`/`Content-Location` URIs ([`invalidated_paths`]).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, HeaderValue, Method, StatusCode};
use pingora::cache::cache_control::{CacheControl, DirectiveKey, InterpretCacheControl};
use pingora::cache::{CacheMeta, NoCacheReason, RespCacheable};
use pingora::http::ResponseHeader;

/// Headers that describe one connection, never stored or forwarded (RFC 9110 §7.6.1), besides
/// those named in `Connection`.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Statuses that a cache may store with heuristic freshness (RFC 9110 §15.1).
const HEURISTIC_STATUSES: &[u16] = &[200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501];

/// The operator's caching settings (from `[cache]` and the edge mode).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CachePolicy {
    /// Freshness for responses that carry no explicit freshness. In Outpost-origin mode the
    /// change feed purges every changed object, so a default is safe and set (1 h); generic
    /// mode has none unless the operator configures it.
    pub default_ttl: Option<Duration>,
    /// Fraction of `Date − Last-Modified` used as heuristic freshness. Default 0.1.
    pub heuristic_fraction: f64,
    /// Upper bound of heuristic freshness. Default 1 day.
    pub heuristic_max: Duration,
    /// `stale-while-revalidate` when the response gives none.
    pub stale_while_revalidate: Duration,
    /// `stale-if-error` when the response gives none.
    pub stale_if_error: Duration,
    /// Whether request `no-cache` revalidates and request `no-store` skips storing.
    pub honor_request_no_cache: bool,
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy {
            default_ttl: None,
            heuristic_fraction: 0.1,
            heuristic_max: Duration::from_secs(86_400),
            stale_while_revalidate: Duration::ZERO,
            stale_if_error: Duration::ZERO,
            honor_request_no_cache: false,
        }
    }
}

/// The request side of an exchange, as far as storing depends on it.
#[derive(Debug, Clone, Copy)]
pub struct Exchange {
    /// The request carried `Authorization`.
    pub authorization: bool,
    /// When the request was sent upstream.
    pub request_time: SystemTime,
    /// When the response header arrived.
    pub response_time: SystemTime,
}

impl Exchange {
    /// An exchange whose request and response times are both `now` (tests, synthetic fills).
    pub fn at(now: SystemTime) -> Exchange {
        Exchange {
            authorization: false,
            request_time: now,
            response_time: now,
        }
    }
}

/// Freshness of a response, computed at admission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Freshness lifetime (zero: stale at once, revalidated on every use).
    pub lifetime: Duration,
    /// Corrected initial age.
    pub initial_age: Duration,
    /// Seconds stale content may be served while revalidating.
    pub stale_while_revalidate: u32,
    /// Seconds stale content may be served when the origin fails.
    pub stale_if_error: u32,
}

fn single_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a HeaderValue> {
    let mut all = headers.get_all(name).iter();
    let first = all.next()?;
    // Several values of a singleton field are invalid (RFC 9111 §4.2.1, §5.3).
    all.next().is_none().then_some(first)
}

fn http_date(headers: &HeaderMap, name: &str) -> Option<SystemTime> {
    let v = single_value(headers, name)?.to_str().ok()?;
    httpdate::parse_http_date(v.trim()).ok()
}

/// A delta-seconds value; values past `u32` saturate (RFC 9111 §1.2.2).
fn delta_seconds(v: &str) -> Option<u64> {
    let v = v.trim();
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(
        v.parse::<u64>()
            .unwrap_or(u64::MAX)
            .min(u64::from(u32::MAX)),
    )
}

/// The received `Age`, `None` if absent or invalid (an invalid `Age` is ignored).
pub fn age_header(headers: &HeaderMap) -> Option<Duration> {
    let v = single_value(headers, "age")?.to_str().ok()?;
    delta_seconds(v).map(Duration::from_secs)
}

/// The `Cache-Control` of a header map (all lines joined), if any.
pub fn cache_control(headers: &HeaderMap) -> Option<CacheControl> {
    CacheControl::from_headers_named("cache-control", headers)
}

/// A directive that must carry a valid delta-seconds: `Ok(None)` when absent, `Err(())` when
/// present but invalid.
fn seconds_directive(cc: &CacheControl, key: &DirectiveKey) -> Result<Option<u64>, ()> {
    if !cc.has_directive(key) {
        return Ok(None);
    }
    let value = match key {
        DirectiveKey::SMaxAge => cc.s_maxage(),
        DirectiveKey::MaxAge => cc.max_age(),
        _ => return Ok(None),
    };
    match value {
        Ok(Some(s)) => Ok(Some(u64::from(s))),
        _ => Err(()),
    }
}

/// Whether the stored response forbids serving it stale (§4.2.4, §5.2.2).
pub fn forbids_stale(cc: Option<&CacheControl>) -> bool {
    cc.is_some_and(|cc| {
        cc.no_cache()
            || cc.must_revalidate()
            || cc.proxy_revalidate()
            || cc.has_directive(&DirectiveKey::SMaxAge)
    })
}

impl CachePolicy {
    /// Whether `resp` (to a `GET`) may be stored, and if so its meta: freshness, age and the
    /// header to store (hop-by-hop and private fields removed).
    pub fn admit(&self, resp: &ResponseHeader, ex: &Exchange) -> RespCacheable {
        match self.storable(resp, ex) {
            Ok(fresh) => {
                let mut header = resp.clone();
                strip_for_storage(&mut header);
                let created = ex
                    .response_time
                    .checked_sub(fresh.initial_age)
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let fresh_until = if fresh.lifetime.is_zero() {
                    // pingora counts `fresh_until == now` as fresh.
                    created
                        .checked_sub(Duration::from_secs(1))
                        .unwrap_or(created)
                } else {
                    created + fresh.lifetime
                };
                RespCacheable::Cacheable(CacheMeta::new(
                    fresh_until,
                    created,
                    fresh.stale_while_revalidate,
                    fresh.stale_if_error,
                    header,
                ))
            }
            Err(reason) => RespCacheable::Uncacheable(NoCacheReason::Custom(reason)),
        }
    }

    /// The storing rules (§3): `Ok` with the response's freshness, or why it is not stored.
    pub fn storable(
        &self,
        resp: &ResponseHeader,
        ex: &Exchange,
    ) -> Result<Freshness, &'static str> {
        let status = resp.status;
        if status.is_informational()
            || status == StatusCode::PARTIAL_CONTENT
            || status == StatusCode::NOT_MODIFIED
        {
            return Err("status not storable");
        }
        if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED {
            return Err("server error");
        }
        let headers = &resp.headers;
        let cc = cache_control(headers);
        let cc = cc.as_ref();
        if cc.is_some_and(|c| c.no_store()) {
            return Err("no-store");
        }
        if cc.is_some_and(|c| c.private()) {
            return Err("private");
        }
        if ex.authorization && !cc.is_some_and(|c| c.allow_caching_authorized_req()) {
            return Err("authorization");
        }
        if vary_star(headers) {
            return Err("vary *");
        }
        if headers.contains_key(http::header::SET_COOKIE) && !strips_set_cookie(cc) {
            return Err("set-cookie");
        }
        let explicit = self.explicit_lifetime(resp, cc, ex);
        let heuristic_ok =
            HEURISTIC_STATUSES.contains(&status.as_u16()) || cc.is_some_and(|c| c.public());
        let lifetime = match explicit {
            Some(l) => l,
            None if !heuristic_ok => return Err("no explicit freshness"),
            None => match self.default_ttl {
                Some(ttl) => ttl,
                None => self.heuristic(headers, ex).unwrap_or(Duration::ZERO),
            },
        };
        if lifetime.is_zero() && !has_validator(headers) {
            // Stale on arrival and nothing to revalidate with: storing it saves nothing.
            return Err("not fresh");
        }
        let (swr, sie) = if forbids_stale(cc) {
            (0, 0)
        } else {
            let swr = cc
                .and_then(|c| c.stale_while_revalidate().ok().flatten())
                .unwrap_or_else(|| secs_u32(self.stale_while_revalidate));
            let sie = cc
                .and_then(|c| c.stale_if_error().ok().flatten())
                .unwrap_or_else(|| secs_u32(self.stale_if_error));
            (swr, sie)
        };
        Ok(Freshness {
            lifetime,
            initial_age: initial_age(headers, ex),
            stale_while_revalidate: swr,
            stale_if_error: sie,
        })
    }

    /// `s-maxage` > `max-age` > `Expires − Date` (§4.2.1); `no-cache` means zero. `None` when
    /// the response says nothing about freshness.
    fn explicit_lifetime(
        &self,
        resp: &ResponseHeader,
        cc: Option<&CacheControl>,
        ex: &Exchange,
    ) -> Option<Duration> {
        if let Some(cc) = cc {
            if cc.no_cache() {
                return Some(Duration::ZERO);
            }
            for key in [DirectiveKey::SMaxAge, DirectiveKey::MaxAge] {
                match seconds_directive(cc, &key) {
                    Ok(Some(s)) => return Some(Duration::from_secs(s)),
                    Ok(None) => {}
                    Err(()) => return Some(Duration::ZERO),
                }
            }
        }
        let headers = &resp.headers;
        if !headers.contains_key(http::header::EXPIRES) {
            return None;
        }
        // An invalid (or repeated) Expires means "already expired" (§5.3).
        let Some(expires) = http_date(headers, "expires") else {
            return Some(Duration::ZERO);
        };
        let date = http_date(headers, "date").unwrap_or(ex.response_time);
        Some(expires.duration_since(date).unwrap_or(Duration::ZERO))
    }

    /// Heuristic freshness from `Last-Modified` (§4.2.2).
    fn heuristic(&self, headers: &HeaderMap, ex: &Exchange) -> Option<Duration> {
        let last_modified = http_date(headers, "last-modified")?;
        let date = http_date(headers, "date").unwrap_or(ex.response_time);
        let age = date.duration_since(last_modified).ok()?;
        let secs = (age.as_secs_f64() * self.heuristic_fraction.clamp(0.0, 1.0)).floor();
        Some(Duration::from_secs_f64(secs).min(self.heuristic_max))
    }
}

fn secs_u32(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// `Vary: *`: the response varies on things outside the request; never reused (§4.1).
pub fn vary_star(headers: &HeaderMap) -> bool {
    headers.get_all(http::header::VARY).iter().any(|v| {
        v.to_str()
            .map_or(true, |s| s.split(',').any(|n| n.trim() == "*"))
    })
}

fn strips_set_cookie(cc: Option<&CacheControl>) -> bool {
    let Some(cc) = cc else { return false };
    let named = |it: Option<pingora::cache::cache_control::ListValueIter<'_>>| {
        it.is_some_and(|mut names| names.any(|n| n.eq_ignore_ascii_case(b"set-cookie")))
    };
    named(cc.private_field_names()) || named(cc.no_cache_field_names())
}

fn has_validator(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::ETAG) || headers.contains_key(http::header::LAST_MODIFIED)
}

/// The corrected initial age of a response (§4.2.3).
fn initial_age(headers: &HeaderMap, ex: &Exchange) -> Duration {
    let apparent = http_date(headers, "date")
        .and_then(|d| ex.response_time.duration_since(d).ok())
        .unwrap_or_default();
    let delay = ex
        .response_time
        .duration_since(ex.request_time)
        .unwrap_or_default();
    let corrected = age_header(headers).unwrap_or_default() + delay;
    apparent.max(corrected)
}

/// Removes what a cache must not store or replay: hop-by-hop fields and those `Connection`
/// names (§3.1), fields named by `private=`/`no-cache=` (§5.2.2.4, §5.2.2.7), and the
/// received `Age` (a hit sends its own).
pub fn strip_for_storage(header: &mut ResponseHeader) {
    strip_hop_by_hop_resp(header);
    if let Some(cc) = cache_control(&header.headers) {
        cc.strip_private_headers(header);
    }
    header.remove_header("age");
}

/// Names listed in `Connection` (lower case).
fn connection_listed(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty() && n != "close" && n != "keep-alive")
        .collect()
}

/// Strips hop-by-hop fields of a response header (RFC 9110 §7.6.1).
pub fn strip_hop_by_hop_resp(header: &mut ResponseHeader) {
    for name in connection_listed(&header.headers) {
        header.remove_header(&name);
    }
    for name in HOP_BY_HOP {
        // pingora frames the body itself; its own Transfer-Encoding is added on the way out.
        if *name != "transfer-encoding" {
            header.remove_header(*name);
        }
    }
}

/// Strips hop-by-hop fields of a request going upstream (RFC 9110 §7.6.1). The framing
/// headers are pingora's business; a protocol upgrade (WebSocket) keeps its `Upgrade`.
pub fn strip_hop_by_hop_req(header: &mut pingora::http::RequestHeader) {
    let listed = connection_listed(&header.headers);
    let upgrade = listed.iter().any(|n| n == "upgrade");
    for name in &listed {
        if !(upgrade && name == "upgrade") {
            header.remove_header(name.as_str());
        }
    }
    for name in HOP_BY_HOP {
        let keep =
            *name == "transfer-encoding" || (upgrade && matches!(*name, "upgrade" | "connection"));
        if !keep {
            header.remove_header(*name);
        }
    }
}

/// Folds a `304`'s fields into the stored header (§4.3.4): every field of the `304` replaces
/// the stored one, except framing and hop-by-hop fields.
pub fn merge_304(stored: &mut ResponseHeader, not_modified: &ResponseHeader) {
    let skip = |name: &str| {
        HOP_BY_HOP.contains(&name)
            || matches!(name, "content-length" | "content-range" | "age")
            || connection_listed(&not_modified.headers)
                .iter()
                .any(|n| n == name)
    };
    let mut names: Vec<&http::HeaderName> = not_modified.headers.keys().collect();
    names.dedup();
    for name in names {
        if skip(name.as_str()) {
            continue;
        }
        let mut first = true;
        for value in not_modified.headers.get_all(name) {
            if first {
                let _ = stored.insert_header(name.clone(), value.clone());
            } else {
                let _ = stored.append_header(name.clone(), value.clone());
            }
            first = false;
        }
    }
}

/// Request directives that act on the cache (§5.2.1), parsed once per request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestDirectives {
    /// `max-age=N`: the client accepts no response older than N seconds.
    pub max_age: Option<u64>,
    /// `min-fresh=N`: the response must stay fresh for N more seconds.
    pub min_fresh: Option<u64>,
    /// `max-stale[=N]`: stale responses are acceptable (up to N seconds stale).
    pub max_stale: Option<Option<u64>>,
    /// `only-if-cached`: answer from cache or 504.
    pub only_if_cached: bool,
    /// `no-cache` (or `Pragma: no-cache` without `Cache-Control`).
    pub no_cache: bool,
    /// `no-store`.
    pub no_store: bool,
}

/// What a request's directives do to a stored entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitDecision {
    /// Use the entry as pingora decided (fresh → hit; stale → revalidate or serve stale).
    AsIs,
    /// The client accepts this stale entry (`max-stale`).
    ServeStale,
    /// The entry must be validated with the origin first, never served stale.
    Revalidate,
}

impl RequestDirectives {
    /// Parses the request's `Cache-Control` (and `Pragma`). Invalid values are ignored.
    pub fn parse(headers: &HeaderMap) -> RequestDirectives {
        let Some(cc) = cache_control(headers) else {
            let pragma = headers
                .get_all(http::header::PRAGMA)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| {
                    v.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
                });
            return RequestDirectives {
                no_cache: pragma,
                ..RequestDirectives::default()
            };
        };
        let secs = |name: &str| {
            cc.has_key(name)
                .then(|| {
                    let key = DirectiveKey::from_lowercase(name);
                    cc.directives
                        .get(&key)
                        .and_then(|v| v.as_ref())
                        .and_then(|v| std::str::from_utf8(v.parse_as_bytes()).ok())
                        .map(|s| s.trim_matches('"').to_owned())
                })
                .map(|v| v.and_then(|s| delta_seconds(&s)))
        };
        RequestDirectives {
            max_age: secs("max-age").flatten(),
            min_fresh: secs("min-fresh").flatten(),
            max_stale: secs("max-stale"),
            only_if_cached: cc.only_if_cached(),
            no_cache: cc.has_key("no-cache"),
            no_store: cc.no_store(),
        }
    }

    /// Whether the request has any directive at all (the fast path takes only plain ones).
    pub fn is_plain(&self) -> bool {
        *self == RequestDirectives::default()
    }

    /// Decides how a stored entry may serve this request.
    pub fn decide(&self, policy: &CachePolicy, meta: &CacheMeta, now: SystemTime) -> HitDecision {
        if self.no_cache && policy.honor_request_no_cache {
            return HitDecision::Revalidate;
        }
        let age = now
            .duration_since(meta.epoch())
            .unwrap_or_default()
            .as_secs();
        if self.max_age.is_some_and(|m| age > m) {
            return HitDecision::Revalidate;
        }
        let fresh_until = meta.fresh_until();
        if let Some(min) = self.min_fresh {
            let left = fresh_until.duration_since(now).map_or(0, |d| d.as_secs());
            if left < min {
                return HitDecision::Revalidate;
            }
        }
        if !meta.is_fresh(now) {
            if let Some(limit) = self.max_stale {
                let stale_for = now.duration_since(fresh_until).map_or(0, |d| d.as_secs());
                let stored_cc = cache_control(meta.headers());
                if !forbids_stale(stored_cc.as_ref()) && limit.is_none_or(|l| stale_for <= l) {
                    return HitDecision::ServeStale;
                }
            }
        }
        HitDecision::AsIs
    }
}

/// Whether a method is safe (RFC 9110 §9.2.1): unsafe methods invalidate (§4.4).
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The paths (with query) an answer to an unsafe request invalidates (§4.4): the target, and
/// the `Location` and `Content-Location` of the response when they name the same host.
/// Nothing for error answers.
pub fn invalidated_paths(
    target: &str,
    host: &str,
    status: StatusCode,
    resp: &HeaderMap,
) -> Vec<String> {
    if !(status.is_success() || status.is_redirection()) {
        return Vec::new();
    }
    let mut out = vec![target.to_owned()];
    for name in [http::header::LOCATION, http::header::CONTENT_LOCATION] {
        let Some(v) = resp.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        if let Some(p) = same_host_path(v, target, host) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// Resolves a `Location`-style reference against `target`; `None` for another host.
fn same_host_path(reference: &str, target: &str, host: &str) -> Option<String> {
    let reference = reference.trim();
    if let Some(rest) = reference
        .strip_prefix("http://")
        .or_else(|| reference.strip_prefix("https://"))
    {
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if !authority.eq_ignore_ascii_case(host) {
            return None;
        }
        return Some(if path.is_empty() {
            "/".into()
        } else {
            path.into()
        });
    }
    if reference.starts_with("//") {
        return None;
    }
    if reference.starts_with('/') {
        return Some(reference.to_owned());
    }
    // A relative reference: resolved against the target's directory.
    let path = target.split('?').next().unwrap_or("/");
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Some(format!(
        "{}{reference}",
        if dir.is_empty() { "/" } else { dir }
    ))
}

#[cfg(test)]
mod tests;
