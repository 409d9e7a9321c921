//! Routing and the access decision of a storage request, read from whichever parse of the
//! request head produced it: pingora's session (`request_filter`) or the front path's own
//! (`super::front`). One definition, so the front path is exactly as strict as the proxy.

use std::net::IpAddr;
use std::sync::Arc;

use crate::access::{self, Access, EdgeRevocations, EdgeTokenCache};
use crate::catalog::CatalogHandle;
use crate::config::Config;
use crate::cors::{CorsOut, CorsRules};
use crate::routing::{self, Route};
use crate::Error;

/// What routing and the access decision read from a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming<'a> {
    pub(crate) method: &'a http::Method,
    /// The request target's path, still percent-encoded.
    pub(crate) path: &'a str,
    pub(crate) query: Option<&'a str>,
    /// `Host` (or the target's authority), as sent.
    pub(crate) host: &'a str,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) client_ip: IpAddr,
}

/// A request routed to a storage path, with the CORS rules of its container.
#[derive(Debug)]
pub(crate) struct Routed {
    pub(crate) route: Route,
    pub(crate) rules: Option<Arc<CorsRules>>,
}

/// The handles the decision reads; cheap to clone (shared caches).
#[derive(Debug, Clone)]
pub(crate) struct Gate {
    pub(crate) cfg: Arc<Config>,
    pub(crate) catalog: Arc<CatalogHandle>,
    pub(crate) revocations: EdgeRevocations,
    pub(crate) tokens: EdgeTokenCache,
}

impl Gate {
    /// Routes the request by host and path.
    pub(crate) fn route(&self, req: &Incoming<'_>) -> Result<Routed, Error> {
        let catalog = self.catalog.get();
        let route = routing::route(&catalog, &self.cfg.base_domain, req.host, req.path)?;
        let rules = route
            .path
            .container()
            .and_then(|c| catalog.container(route.path.account(), c))
            .and_then(|c| c.cors.clone());
        Ok(Routed { route, rules })
    }

    /// The request's CORS headers under its container's rules.
    pub(crate) fn cors(req: &Incoming<'_>, rules: Option<Arc<CorsRules>>) -> Option<CorsOut> {
        let origin = req
            .headers
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok());
        rules.map(|r| CorsOut::new(r, origin))
    }

    /// The access decision (no side effect but the verified-token cache).
    pub(crate) fn access(
        &self,
        req: &Incoming<'_>,
        route: &Route,
        now: u64,
    ) -> Result<Access, Error> {
        access::check(
            &self.catalog.get(),
            route,
            req.method.as_str(),
            req.query,
            req.headers,
            req.client_ip,
            now,
            &self.cfg.verify,
            &self.revocations,
            &self.tokens,
        )
    }

    /// The re-issued session cookie of a request granted by one, when a signing key exists.
    pub(crate) fn reissued_cookie(&self, access: &Access, now: u64) -> Option<String> {
        let Access::Granted(g) = access else {
            return None;
        };
        if g.mechanism() != outpost_auth::Mechanism::SessionCookie {
            return None;
        }
        let catalog = self.catalog.get();
        let key = catalog
            .account(g.account())
            .and_then(|a| a.keys.signing_key(now))?;
        match outpost_auth::pubcookie::reissue(g, key, now) {
            Ok(Some(s)) => Some(s.cookie(&self.cfg.verify.cookie_name, "/", now).to_string()),
            _ => None,
        }
    }
}
