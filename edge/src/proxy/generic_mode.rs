//! Generic upstream mode's request phase (keys and invalidation live in [`crate::generic`]).

use pingora::proxy::Session;
use pingora::Result as PResult;

use super::{header_str, host_of, send_error, Ctx, Edge};
use crate::cors::{self, CorsOut};
use crate::routing;
use crate::Error;

impl Edge {
    /// Generic upstream mode: any host and method, the path as sent (validated). `GET` and
    /// `HEAD` may be cached by the RFC 9111 rules under a key of scheme, host, path and
    /// query; requests with `Authorization` use keys of their own, so they never share an
    /// entry with anonymous requests (and store only what the origin marked shareable).
    pub(super) async fn generic_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        path: &str,
    ) -> PResult<bool> {
        if let Err(e) = outpost_auth::CanonicalPath::parse(path) {
            ctx.outcome = "route";
            return send_error(session, &Error::BadPath(e)).await;
        }
        let host = routing::normalize_host(&host_of(session));
        if let Some(rules) = self.cfg.generic_cors.get(&host).cloned() {
            if cors::is_preflight(&session.req_header().method, &session.req_header().headers) {
                ctx.outcome = "preflight";
                return self.preflight(session, Some(&rules)).await;
            }
            ctx.cors = Some(CorsOut::new(rules, header_str(session, "origin")));
        }
        let tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let scheme = if tls { "https" } else { "http" };
        let req = session.req_header();
        let pq = req
            .uri
            .path_and_query()
            .map_or_else(|| path.to_owned(), |p| p.as_str().to_owned());
        ctx.authorization = req.headers.contains_key(http::header::AUTHORIZATION);
        if matches!(req.method, http::Method::GET | http::Method::HEAD) {
            ctx.cache_primary = crate::cache_key::generic(scheme, &host, &pq, ctx.authorization);
            ctx.purge_epoch = self.purge_log.current();
            ctx.cacheable = true;
        }
        ctx.upstream_uri = pq;
        ctx.generic_site = Some((scheme, host));
        self.serve_hot(session, ctx).await
    }
}
