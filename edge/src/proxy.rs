//! The Pingora `ProxyHttp` implementation: routing and access in `request_filter`, our cache
//! storage, the origin as upstream with the edge's own credential, downstream headers.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use pingora::cache::lock::CacheKeyLockImpl;
use pingora::cache::{
    CacheKey, CacheMeta, CachePhase, ForcedFreshness, HitHandler, NoCacheReason, RespCacheable,
};
use pingora::http::ResponseHeader;
use pingora::prelude::HttpPeer;
use pingora::proxy::{ProxyHttp, Session};
use pingora::{Error as PError, ErrorType, Result as PResult};

use crate::access::{self, Access, EdgeRevocations, EdgeSeenGrants, EdgeTokenCache};
use crate::cache::TieredStorage;
use crate::cache_key;
use crate::cache_policy::{self, Exchange, HitDecision, RequestDirectives};
use crate::catalog::CatalogHandle;
use crate::config::Config;
use crate::cors::{self, CorsOut};
use crate::metrics::EdgeMetrics;
use crate::purgelog::PurgeLog;
use crate::ring::Upstream;
use crate::routing::Route;
use crate::upstream::Upstreams;
use crate::Error;

mod endpoints;
mod front;
mod gate;
mod generic_mode;
mod hot;
mod https;
mod sliced;

pub use front::{Front, Outcome as FrontOutcome};
use gate::{Gate, Incoming, Routed};

use endpoints::{send, send_error, send_error_cors};

/// Header naming the cache outcome: `HIT`, `MISS`, `STALE`, `REVALIDATED`, `EXPIRED`, `BYPASS`.
pub use outpost_proto::headers::CACHE as CACHE_STATUS_HEADER;
/// The operators' purge endpoint on every edge.
pub const PURGE_PATH: &str = "/.outpost/purge";
/// Header carrying the machine-readable denial reason.
pub use outpost_proto::headers::DENY as DENY_HEADER;

/// The edge proxy.
pub struct Edge {
    /// Config.
    pub cfg: Arc<Config>,
    /// Accounts, domains, keys.
    pub catalog: Arc<CatalogHandle>,
    /// Cache storage.
    pub storage: &'static TieredStorage,
    /// Request collapsing.
    pub lock: &'static CacheKeyLockImpl,
    /// Revoked sessions and users.
    pub revocations: EdgeRevocations,
    /// Redeemed grants.
    pub seen: EdgeSeenGrants,
    /// Recently verified tokens.
    pub tokens: EdgeTokenCache,
    /// Grace for ranges of objects whose earlier range was authorized.
    pub range_grace: access::EdgeRangeGrace,
    /// What was purged recently (fills that started before a purge are not admitted).
    pub purge_log: Arc<PurgeLog>,
    /// Metrics.
    pub metrics: Arc<EdgeMetrics>,
    /// Access logs and billing (set by `server` once started).
    pub logs: Option<Arc<crate::logs::Logs>>,
    /// Slice caching of large objects.
    pub slicer: crate::slice::Slicer,
    /// The origin cluster's ring, when misses read from storage nodes directly.
    pub ring: Option<Arc<crate::ring::RingView>>,
    /// The SigV4 signer of generic-mode upstream requests in force: `cfg.upstream_signer` at
    /// start, replaced by a reload (`crate::reload`).
    pub signer: Arc<arc_swap::ArcSwapOption<crate::sigv4::UpstreamSigner>>,
    /// Automatic certificates (HTTP-01 answers, status), when the edge has `[tls]`.
    pub certs: Option<Arc<crate::acme::CertSync>>,
    /// Routing and the access decision (shared with the front path).
    gate: Gate,
}

impl Edge {
    /// Builds the proxy.
    pub fn new(
        cfg: Arc<Config>,
        catalog: Arc<CatalogHandle>,
        storage: &'static TieredStorage,
        lock: &'static CacheKeyLockImpl,
        metrics: Arc<EdgeMetrics>,
        revocations: EdgeRevocations,
        purge_log: Arc<PurgeLog>,
    ) -> Edge {
        let tokens = EdgeTokenCache::default();
        Edge {
            gate: Gate {
                cfg: Arc::clone(&cfg),
                catalog: Arc::clone(&catalog),
                revocations: revocations.clone(),
                tokens: tokens.clone(),
            },
            signer: Arc::new(arc_swap::ArcSwapOption::from(
                cfg.upstream_signer.clone().map(Arc::new),
            )),
            slicer: crate::slice::Slicer::new(&cfg),
            range_grace: access::EdgeRangeGrace::new(cfg.range_grace),
            cfg,
            catalog,
            storage,
            lock,
            revocations,
            purge_log,
            seen: EdgeSeenGrants::default(),
            tokens,
            metrics,
            logs: None,
            ring: None,
            certs: None,
        }
    }
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    route: Option<Route>,
    access: Option<Access>,
    cache_primary: String,
    upstream_uri: String,
    set_cookie: Option<String>,
    purge_epoch: u64,
    cacheable: bool,
    started: Instant,
    outcome: &'static str,
    /// Where a miss may read from, in order, and which one is being tried.
    /// The upstreams of a miss, chosen at the first `upstream_peer` (failover moves along it).
    upstreams: Option<Upstreams>,
    /// `X-Outpost-Deny` reason of a denied request, for the access log.
    deny: Option<&'static str>,
    /// The request's cache directives (RFC 9111 §5.2.1).
    directives: RequestDirectives,
    /// The request carried `Authorization` (RFC 9111 §3.5).
    authorization: bool,
    /// When the request went upstream (for the response's age).
    sent_upstream: Option<SystemTime>,
    /// A `304` that revalidated the stored response, whose fields update it (§4.3.4).
    not_modified: Option<Box<ResponseHeader>>,
    /// Generic mode: the client-facing scheme and host, for invalidation (§4.4).
    generic_site: Option<(&'static str, String)>,
    /// CORS rules in force and this request's CORS headers (computed per request, never
    /// stored).
    cors: Option<CorsOut>,
    /// A static-website request (see `Route::web`): fetched from the origin with
    /// `X-Web-Mode: true`, its redirects made relative to the client's path.
    web: bool,
    /// `Strict-Transport-Security` max-age of an HTTPS answer on a domain that opted in.
    hsts: Option<u64>,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn header_str<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .req_header()
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
}

fn host_of(session: &Session) -> String {
    header_str(session, "host")
        .map(str::to_owned)
        .or_else(|| session.req_header().uri.host().map(str::to_owned))
        .unwrap_or_default()
}

fn client_ip(session: &Session) -> std::net::IpAddr {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// The cache key and upstream URI of a route: objects ignore the query; listings keep only
/// listing parameters, sorted.
fn content_length(resp: &ResponseHeader) -> Option<u64> {
    resp.headers
        .get(http::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// The headers every response for a routed request gets on its way out: the cache status,
/// `Cache-Control: private` for content that needed a credential, a re-issued session cookie,
/// and no origin-internal headers.
fn downstream_headers(
    resp: &mut ResponseHeader,
    status: &str,
    private: bool,
    set_cookie: Option<String>,
    cors: Option<&CorsOut>,
) -> PResult<()> {
    resp.insert_header(CACHE_STATUS_HEADER, status)?;
    strip_internal(resp);
    per_request_headers(resp, private, set_cookie, cors)
}

/// Origin-internal headers no client sees.
fn strip_internal(resp: &mut ResponseHeader) {
    for h in ["x-trans-id", "x-openstack-request-id", "x-timestamp"] {
        resp.remove_header(h);
    }
}

/// The part of [`downstream_headers`] that depends on the request, not on the stored response:
/// CORS, `Cache-Control: private` for content that needed a credential, a re-issued cookie.
fn per_request_headers(
    resp: &mut ResponseHeader,
    private: bool,
    set_cookie: Option<String>,
    cors: Option<&CorsOut>,
) -> PResult<()> {
    if let Some(c) = cors {
        c.apply(resp)?;
    }
    if private {
        resp.insert_header(http::header::CACHE_CONTROL, "private")?;
        resp.remove_header(&http::header::EXPIRES);
    }
    if let Some(c) = set_cookie {
        resp.append_header(http::header::SET_COOKIE, c)?;
    }
    Ok(())
}

#[async_trait]
impl ProxyHttp for Edge {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            route: None,
            access: None,
            cache_primary: String::new(),
            upstream_uri: String::new(),
            set_cookie: None,
            purge_epoch: 0,
            cacheable: false,
            started: Instant::now(),
            upstreams: None,
            outcome: "",
            deny: None,
            directives: RequestDirectives::default(),
            authorization: false,
            sent_upstream: None,
            not_modified: None,
            generic_site: None,
            cors: None,
            web: false,
            hsts: None,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> PResult<bool> {
        let path = session.req_header().uri.path().to_owned();
        match path.as_str() {
            "/healthz" => return send(session, 200, &[], "ok\n").await,
            "/metrics" => return self.metrics_endpoint(session).await,
            outpost_auth::pubcookie::LOGIN_PATH => {
                ctx.outcome = "login";
                return self.login(session).await;
            }
            PURGE_PATH => {
                ctx.outcome = "purge";
                return self.purge(session).await;
            }
            p if https::is_https_endpoint(p) => {
                if let Some(done) = self.https_endpoint(session, p).await {
                    ctx.outcome = "acme";
                    return done;
                }
            }
            _ => {}
        }
        let method = session.req_header().method.clone();
        ctx.directives = RequestDirectives::parse(&session.req_header().headers);
        if self.cfg.generic.is_some() {
            // Any method: safe ones may be cached, the rest go upstream untouched.
            return self.generic_request(session, ctx, &path).await;
        }
        let preflight = cors::is_preflight(&method, &session.req_header().headers);
        if method != http::Method::GET && method != http::Method::HEAD && !preflight {
            ctx.outcome = "method";
            return send_error(session, &Error::MethodNotAllowed).await;
        }
        let host = host_of(session);
        if let Some(done) = self.https_redirect(session, &host).await {
            ctx.outcome = "https-redirect";
            return done;
        }
        let query = session.req_header().uri.query().map(str::to_owned);
        let now = now_secs();
        let req = Incoming {
            method: &method,
            path: &path,
            query: query.as_deref(),
            host: &host,
            headers: &session.req_header().headers,
            client_ip: client_ip(session),
        };
        let Routed { mut route, rules } = match self.gate.route(&req) {
            Ok(r) => r,
            Err(e) => {
                ctx.outcome = "route";
                return send_error(session, &e).await;
            }
        };
        ctx.hsts = route.https.hsts_max_age.filter(|_| https::is_tls(session));
        if preflight {
            // Preflights carry no credentials: answered from the container's rules alone.
            ctx.outcome = "preflight";
            ctx.route = Some(route);
            return self.preflight(session, rules.as_deref()).await;
        }
        ctx.cors = Gate::cors(&req, rules);
        let decision = self.gate.access(&req, &route, now);
        // Ranges of an object may go on for a while past the expiry of the credential that
        // authorized an earlier range of it (see `EdgeRangeGrace`).
        let grace_fp = (self.range_grace.enabled()
            && route.path.object().is_some()
            && req.headers.contains_key(http::header::RANGE))
        .then(|| {
            self.range_grace
                .fingerprint(&route, query.as_deref(), req.headers)
        });
        let decision = match (decision, grace_fp) {
            (Ok(Access::Granted(g)), Some(fp)) => {
                self.range_grace.remember(fp, &g);
                Ok(Access::Granted(g))
            }
            (
                Err(Error::Denied {
                    reason: outpost_auth::DenyReason::Expired,
                }),
                Some(fp),
            ) => match self.range_grace.allow(fp, now, &self.revocations) {
                Some(g) => Ok(Access::Granted(g)),
                None => Err(Error::Denied {
                    reason: outpost_auth::DenyReason::Expired,
                }),
            },
            (d, _) => d,
        };
        let access = match decision {
            Ok(a) => a,
            Err(e) => {
                if let Error::Denied { reason } = &e {
                    self.metrics.denied(reason.as_str());
                    ctx.deny = Some(reason.as_str());
                }
                ctx.outcome = "denied";
                // Kept for the access log: denials are logged under their account.
                ctx.route = Some(route);
                return send_error_cors(session, &e, ctx.cors.as_ref()).await;
            }
        };
        ctx.set_cookie = self.gate.reissued_cookie(&access, now);
        // As in Swift, staticweb answers anonymous requests; a credential gets plain answers.
        route.web &= !access.is_private();
        ctx.web = route.web;
        if ctx.web {
            // Web answers come from the origin's staticweb, never from a storage replica.
            ctx.upstreams = Some(Upstreams::new(Vec::new(), self.cfg.origin));
        }
        let (key, uri) = cache_key::for_route(&route, query.as_deref());
        ctx.cache_primary = key;
        ctx.upstream_uri = uri;
        ctx.purge_epoch = self.purge_log.current();
        ctx.route = Some(route);
        ctx.access = Some(access);
        ctx.cacheable = true;
        if self.serve_hot(session, ctx).await? {
            return Ok(true);
        }
        if !ctx.web && self.wants_slices(ctx).await {
            return self.serve_sliced(session, ctx).await;
        }
        Ok(false)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut Ctx) -> PResult<()> {
        if ctx.cacheable {
            session
                .cache
                .enable(self.storage, None, None, Some(self.lock), None);
            // Larger bodies stream through uncached instead of failing the response.
            let max = usize::try_from(self.storage.max_object_bytes()).unwrap_or(usize::MAX);
            session.cache.set_max_file_size_bytes(max);
        }
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut Ctx) -> PResult<CacheKey> {
        Ok(cache_key::key(&ctx.cache_primary))
    }

    /// `Vary`: one cache entry per combination of the named request headers (`Vary: *` is not
    /// cacheable and never reaches here).
    fn cache_vary_filter(
        &self,
        meta: &pingora::cache::CacheMeta,
        _ctx: &mut Ctx,
        req: &pingora::http::RequestHeader,
    ) -> Option<pingora::cache::key::HashBinary> {
        let mut names: Vec<String> = Vec::new();
        for v in meta.headers().get_all("vary") {
            for n in v.to_str().unwrap_or("").split(',') {
                let n = n.trim().to_ascii_lowercase();
                if !n.is_empty() && !names.contains(&n) {
                    names.push(n);
                }
            }
        }
        if names.is_empty() {
            return None;
        }
        let mut b = pingora::cache::VarianceBuilder::new();
        for n in names {
            let value = req
                .headers
                .get(n.as_str())
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            b.add_owned_name_value(n, value);
        }
        b.finalize()
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut Ctx,
    ) -> PResult<RespCacheable> {
        if self
            .purge_log
            .purged_since(&ctx.cache_primary, ctx.purge_epoch)
        {
            // Fetched before a purge of this key: serve it to this client, never cache it.
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                "purged during fetch",
            )));
        }
        if ctx.directives.no_store && self.cfg.policy.honor_request_no_cache {
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom(
                "request no-store",
            )));
        }
        if self.cfg.generic.is_none()
            && resp.status == http::StatusCode::OK
            && ctx
                .route
                .as_ref()
                .is_some_and(|r| r.path.object().is_some())
            && content_length(resp).is_some_and(|n| n > self.slicer.slice_size)
        {
            // Large objects are cached in slices (see `crate::slice`); this full response
            // streams through and taught the edge the object's size.
            return Ok(RespCacheable::Uncacheable(NoCacheReason::Custom("sliced")));
        }
        let now = SystemTime::now();
        let exchange = Exchange {
            authorization: ctx.authorization,
            request_time: ctx.sent_upstream.unwrap_or(now),
            response_time: now,
        };
        match ctx.not_modified.take() {
            // A revalidation: pingora merged a few of the 304's fields; RFC 9111 §4.3.4
            // wants all of them.
            Some(not_modified) => {
                let mut merged = resp.clone();
                cache_policy::merge_304(&mut merged, &not_modified);
                Ok(self.cfg.policy.admit(&merged, &exchange))
            }
            None => Ok(self.cfg.policy.admit(resp, &exchange)),
        }
    }

    async fn cache_hit_filter(
        &self,
        _session: &mut Session,
        meta: &CacheMeta,
        _hit: &mut HitHandler,
        _is_fresh: bool,
        ctx: &mut Ctx,
    ) -> PResult<Option<ForcedFreshness>> {
        Ok(
            match ctx
                .directives
                .decide(&self.cfg.policy, meta, SystemTime::now())
            {
                HitDecision::AsIs => None,
                HitDecision::ServeStale => Some(ForcedFreshness::ForceFresh),
                HitDecision::Revalidate => Some(ForcedFreshness::ForceExpired),
            },
        )
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> PResult<Box<HttpPeer>> {
        if ctx.directives.only_if_cached && ctx.cacheable {
            // RFC 9111 §5.2.1.7: a stored response or 504, never the origin.
            ctx.outcome = "only-if-cached";
            return Err(PError::explain(
                ErrorType::HTTPStatus(504),
                "only-if-cached and no usable stored response",
            ));
        }
        let upstreams = match ctx.upstreams.take() {
            Some(u) => u,
            None => self.upstreams_of(ctx),
        };
        let peer = upstreams.peer(&self.cfg);
        ctx.upstreams = Some(upstreams);
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        _session: &mut Session,
        upstream: &mut pingora::http::RequestHeader,
        ctx: &mut Ctx,
    ) -> PResult<()> {
        let uri: http::Uri = ctx
            .upstream_uri
            .parse()
            .map_err(|_| PError::explain(ErrorType::InternalError, "bad upstream uri"))?;
        upstream.set_uri(uri);
        ctx.sent_upstream = Some(SystemTime::now());
        cache_policy::strip_hop_by_hop_req(upstream);
        if let Some(host) = &self.cfg.generic {
            // A plain HTTP origin: the request goes as the client sent it.
            if let Some(h) = host {
                upstream.insert_header("host", h.as_str())?;
            }
            upstream.remove_header(outpost_auth::TOKEN_HEADER);
            // Last: the signature covers the request exactly as it is sent.
            if let Some(signer) = &*self.signer.load() {
                signer.sign(upstream).map_err(|e| {
                    PError::because(ErrorType::InternalError, "sigv4 upstream signing", e)
                })?;
            }
            return Ok(());
        }
        for h in [
            "cookie",
            "authorization",
            outpost_auth::TOKEN_HEADER,
            "x-auth-token",
            "x-storage-token",
        ] {
            upstream.remove_header(h);
        }
        if ctx.web {
            upstream.insert_header(outpost_proto::headers::WEB_MODE, "true")?;
        }
        let to = ctx
            .upstreams
            .as_ref()
            .map_or(Upstream::Origin(self.cfg.origin), Upstreams::current);
        crate::upstream::address(upstream, to, &self.cfg)
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> PResult<()> {
        if ctx
            .upstreams
            .as_mut()
            .is_some_and(|u| u.skip_answer(upstream.status))
        {
            // This replica lacks the object (or failed): read it from the next one.
            let mut e = PError::explain(
                ErrorType::HTTPStatus(upstream.status.as_u16()),
                "replica could not serve the object",
            );
            e.set_retry(true);
            return Err(e);
        }
        if upstream.status.is_server_error()
            && session.cache.enabled()
            && session.cache.can_serve_stale_error()
        {
            // Stale-if-error: fail the upstream response so pingora answers from the stored
            // one through its error path (serving stale from an upstream 5xx that has a body
            // writes that body after the stored one on HTTP/1).
            return Err(PError::create(
                ErrorType::HTTPStatus(upstream.status.as_u16()),
                pingora::ErrorSource::Upstream,
                Some("origin error: serving the stored response".into()),
                None,
            ));
        }
        if upstream.status == http::StatusCode::NOT_MODIFIED {
            ctx.not_modified = Some(Box::new(upstream.clone()));
        }
        if upstream.status != http::StatusCode::SWITCHING_PROTOCOLS {
            cache_policy::strip_hop_by_hop_resp(upstream);
        }
        if self.cfg.generic.is_some() {
            return Ok(());
        }
        if ctx.web && upstream.status == http::StatusCode::MOVED_PERMANENTLY {
            // staticweb's only redirect adds the trailing slash; the origin's Location is its
            // own storage path, the client's is the path it asked for.
            let location = format!("{}/", session.req_header().uri.path());
            upstream.insert_header(http::header::LOCATION, location)?;
        }
        // Swift sends bare MD5 ETags; browsers and `If-Range`/`If-None-Match` expect the quoted
        // form of RFC 9110. Quote them before the response is cached
        // or noted by the slicer (whose answers reuse this header).
        let bare = upstream
            .headers
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.starts_with('"') && !v.starts_with("W/"))
            .map(|v| format!("\"{v}\""));
        if let Some(quoted) = bare {
            upstream.insert_header(http::header::ETAG, quoted)?;
        }
        if !ctx.web
            && ctx
                .route
                .as_ref()
                .is_some_and(|r| r.path.object().is_some())
        {
            self.slicer.note_full_response(
                &ctx.cache_primary,
                upstream,
                ctx.purge_epoch,
                &self.cfg.policy,
            );
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> PResult<()> {
        let status = match session.cache.phase() {
            CachePhase::Hit => "HIT",
            CachePhase::Miss => "MISS",
            CachePhase::Stale | CachePhase::StaleUpdating => "STALE",
            CachePhase::Revalidated | CachePhase::RevalidatedNoCache(_) => "REVALIDATED",
            CachePhase::Expired => "EXPIRED",
            _ => "BYPASS",
        };
        ctx.outcome = status;
        if status == "MISS"
            && session
                .req_header()
                .headers
                .contains_key(http::header::RANGE)
        {
            // Pingora cuts a range out of the full upstream body it is caching and keeps reading
            // after the range ends, which leaves this connection unusable for a next request:
            // say so instead of letting the client reuse it. (Slice fetching removes this.)
            session.set_keepalive(None);
            resp.insert_header(http::header::CONNECTION, "close")?;
        }
        if let Some((scheme, host)) = &ctx.generic_site {
            let method = &session.req_header().method;
            if !cache_policy::is_safe(method) {
                let purger = crate::feed::Purger {
                    storage: self.storage,
                    log: &self.purge_log,
                };
                let n = crate::generic::invalidate(purger, scheme, host, &ctx.upstream_uri, resp);
                self.metrics.purged("invalidation", n);
            }
        }
        let private = ctx.access.as_ref().is_some_and(Access::is_private);
        downstream_headers(
            resp,
            status,
            private,
            ctx.set_cookie.take(),
            ctx.cors.as_ref(),
        )?;
        https::add_hsts(resp, ctx.hsts)
    }

    fn range_header_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        _ctx: &mut Ctx,
    ) -> pingora::proxy::RangeType {
        pingora::proxy::range_header_filter(
            session.req_header(),
            resp,
            Some(self.slicer.max_ranges),
        )
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        peer: &HttpPeer,
        ctx: &mut Ctx,
        mut e: Box<PError>,
    ) -> Box<PError> {
        if ctx.upstreams.as_mut().is_some_and(Upstreams::skip_failure) {
            // A replica is down: the next one (the origin proxy last) is tried.
            tracing::debug!(peer = %peer, "edge: upstream unreachable, trying the next");
            e.set_retry(true);
        }
        e
    }

    fn should_serve_stale(
        &self,
        session: &mut Session,
        _ctx: &mut Ctx,
        error: Option<&PError>,
    ) -> bool {
        // Stale-while-revalidate (None) and stale-if-error for any upstream failure, within the
        // windows stored in the entry's meta.
        let Some(e) = error else { return true };
        if e.esource() != &pingora::ErrorSource::Upstream {
            return false;
        }
        // pingora's stale-if-error answer can leave the HTTP/1 connection in a bad state
        // (it reports "sent data after end of body" once the stored body is out): the client
        // gets the whole stored response, then a fresh connection for its next request.
        session.set_keepalive(None);
        true
    }

    async fn logging(&self, session: &mut Session, e: Option<&PError>, ctx: &mut Ctx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        let dur = ctx.started.elapsed();
        self.metrics.request(status, ctx.outcome, dur);
        if let Some(logs) = &self.logs {
            let route = ctx.route.as_ref();
            let facts = crate::logs::RequestFacts {
                account: route.map(|r| r.path.account()),
                container: route.and_then(|r| r.path.container()),
                object: route.and_then(|r| r.path.object()),
                auth: ctx.access.as_ref().map(|a| match a {
                    Access::Public => "public",
                    Access::Granted(g) => g.mechanism().as_str(),
                }),
                deny: ctx.deny,
                started: ctx.started,
                error: e,
            };
            logs.finish(session, &facts);
        }
    }
}
