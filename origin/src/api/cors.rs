//! CORS at the origin, as Swift's proxy (`cors_validation` and `Controller.OPTIONS`), from
//! the container metadata the edge reads too (`X-Container-Meta-Access-Control-Allow-Origin`,
//! `-Max-Age`, `-Expose-Headers`).
//!
//! - `OPTIONS` on a container or object (no authorization, as tempauth): without `Origin`,
//!   `200` with `Allow`; a preflight from an allowed origin asking for an allowed method gets
//!   `Access-Control-Allow-Origin` (the origin, with `Vary: Origin`, or `*`), `-Allow-Methods`,
//!   `-Allow-Headers` (what it asked for), `-Max-Age`; otherwise `401`. On an account,
//!   `200` with `Allow` whatever it asks.
//! - An actual request from an allowed origin: `Access-Control-Allow-Origin` and
//!   `Access-Control-Expose-Headers` (the simple response headers, Swift's own, the
//!   response's `X-Container-Meta-*`/`X-Object-Meta-*`, the container's list), on every
//!   status. `strict_cors_mode` is Swift's default (on): an origin not allowed gets nothing.
//! - Origins match exactly as written, separated by spaces (Swift's rule; the edge also
//!   accepts commas and normalises case).
//! - Requests from edges get no CORS headers: the edge computes them per client from the
//!   same metadata and keeps one cache entry for every origin (`edge/src/cors.rs`), which a
//!   `Vary: Origin` from here would split.

use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use super::{set, status, Identity, Req, Shared};
use crate::db::Meta;
use crate::{Error, Result};

const ALLOW_ORIGIN: &str = "x-container-meta-access-control-allow-origin";
const MAX_AGE: &str = "x-container-meta-access-control-max-age";
const EXPOSE: &str = "x-container-meta-access-control-expose-headers";

/// The methods of container (and account) requests, in the order Swift lists them.
const CONTAINER_METHODS: &[&str] = &["HEAD", "OPTIONS", "PUT", "GET", "DELETE", "POST"];

/// Response headers every allowed CORS response exposes (Swift's list).
const EXPOSED: &[&str] = &[
    "cache-control",
    "content-language",
    "content-type",
    "expires",
    "last-modified",
    "pragma",
    "etag",
    "x-timestamp",
    "x-trans-id",
    "x-openstack-request-id",
];

/// A container's CORS settings.
struct Cors {
    allow_origin: Option<String>,
    max_age: Option<String>,
    expose: Option<String>,
}

impl Cors {
    fn of(meta: Option<&Meta>) -> Cors {
        let get = |k: &str| meta.and_then(|m| m.get(k)).cloned();
        Cors {
            allow_origin: get(ALLOW_ORIGIN),
            max_age: get(MAX_AGE),
            expose: get(EXPOSE),
        }
    }

    /// Swift's `is_origin_allowed`: the origin exactly, or `*`, among the space-separated
    /// list.
    fn allows(&self, origin: &str) -> bool {
        self.allow_origin
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .map(str::trim)
            .any(|a| !a.is_empty() && (a == origin || a == "*"))
    }

    fn any(&self) -> bool {
        self.allow_origin.as_deref().map(str::trim) == Some("*")
    }
}

/// The container of a request, if it names one, and its metadata.
async fn container_meta(st: &Shared, account: &str, container: &str) -> Result<Option<Meta>> {
    Ok(st
        .store
        .db
        .get_container(account, container)?
        .map(|r| r.meta))
}

fn origin_of(h: &HeaderMap) -> Option<&str> {
    h.get(http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// `Access-Control-Allow-Origin` (and `Vary`) for an allowed origin.
fn allow_origin(h: &mut HeaderMap, cors: &Cors, origin: &str) {
    if cors.any() {
        set(h, "access-control-allow-origin", "*");
        return;
    }
    set(h, "access-control-allow-origin", origin);
    add_vary(h, "Origin");
}

fn add_vary(h: &mut HeaderMap, name: &str) {
    let v = match h.get(http::header::VARY).and_then(|v| v.to_str().ok()) {
        Some(old) => format!("{old}, {name}"),
        None => name.to_owned(),
    };
    set(h, "vary", v);
}

/// `OPTIONS` on an account, container or object.
///
/// # Errors
/// [`Error::Db`] reading the container.
pub(super) async fn options(st: &Shared, r: &Req) -> Result<Response> {
    let object = r.path.object().is_some();
    let mut methods = CONTAINER_METHODS.join(", ");
    if object {
        methods.push_str(", COPY");
    }
    let mut resp = status(StatusCode::OK);
    set(resp.headers_mut(), "allow", &methods);
    let (Some(origin), Some(container)) = (origin_of(&r.headers), r.path.container()) else {
        return Ok(resp);
    };
    let meta = container_meta(st, r.path.account(), container).await?;
    let cors = Cors::of(meta.as_ref());
    let asked = r
        .header("access-control-request-method")
        .unwrap_or_default();
    if !cors.allows(origin) || !CONTAINER_METHODS.contains(&asked) {
        let mut denied = Error::Unauthorized {
            reason: "CORS preflight from an origin or for a method the container does not allow",
        }
        .into_response();
        set(denied.headers_mut(), "allow", CONTAINER_METHODS.join(", "));
        return Ok(denied);
    }
    resp.extensions_mut().insert(crate::error::NoContentType);
    let h = resp.headers_mut();
    allow_origin(h, &cors, origin);
    if let Some(m) = &cors.max_age {
        set(h, "access-control-max-age", m);
    }
    set(h, "access-control-allow-methods", &methods);
    let wanted: Vec<&str> = r
        .header("access-control-request-headers")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if !wanted.is_empty() {
        set(h, "access-control-allow-headers", wanted.join(", "));
        add_vary(h, "Access-Control-Request-Headers");
    }
    Ok(resp)
}

/// What decorating a response with CORS headers needs from its request (taken before the
/// request is handled).
pub(super) struct Pending {
    origin: String,
    account: String,
    container: String,
}

impl Pending {
    /// `Some` for a request with an `Origin` to a container or object, from a client that
    /// is not a service (see the module docs), other than `OPTIONS`.
    pub(super) fn of(r: &Req) -> Option<Pending> {
        if r.method == Method::OPTIONS || matches!(r.ident, Identity::Service(_)) {
            return None;
        }
        Some(Pending {
            origin: origin_of(&r.headers)?.to_owned(),
            account: r.path.account().to_owned(),
            container: r.path.container()?.to_owned(),
        })
    }

    /// Adds the actual-request headers to `resp` if the container allows the origin.
    pub(super) async fn apply(self, st: &Shared, resp: &mut Response) {
        let meta = match container_meta(st, &self.account, &self.container).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "CORS: container metadata unavailable");
                return;
            }
        };
        let cors = Cors::of(meta.as_ref());
        if !cors.allows(&self.origin) {
            return;
        }
        let h = resp.headers_mut();
        if !h.contains_key("access-control-expose-headers") {
            let mut expose: Vec<String> = EXPOSED.iter().map(|s| (*s).to_owned()).collect();
            for name in h.keys() {
                let n = name.as_str();
                if n.starts_with("x-container-meta") || n.starts_with("x-object-meta") {
                    expose.push(n.to_owned());
                }
            }
            for e in cors.expose.as_deref().unwrap_or("").split(' ') {
                let e = e.trim().to_ascii_lowercase();
                if !e.is_empty() {
                    expose.push(e);
                }
            }
            expose.sort();
            expose.dedup();
            if let Ok(v) = HeaderValue::from_str(&expose.join(", ")) {
                h.insert("access-control-expose-headers", v);
            }
        }
        if !h.contains_key("access-control-allow-origin") {
            allow_origin(h, &cors, &self.origin);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_match_exactly_among_spaces() {
        let mut meta = Meta::new();
        meta.insert(ALLOW_ORIGIN.into(), "https://a.test  https://b.test".into());
        let c = Cors::of(Some(&meta));
        assert!(c.allows("https://a.test"));
        assert!(c.allows("https://b.test"));
        assert!(!c.allows("https://A.test"));
        assert!(!c.allows("https://c.test"));
        assert!(!c.any());
        meta.insert(ALLOW_ORIGIN.into(), " * ".into());
        let any = Cors::of(Some(&meta));
        assert!(any.allows("https://whatever.test") && any.any());
        assert!(!Cors::of(None).allows("https://a.test"));
    }
}
