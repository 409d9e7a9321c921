//! CORS (the Fetch standard's cross-origin protocol) at the edge.
//!
//! Rules come from container metadata the way Swift keeps them
//! (`X-Container-Meta-Access-Control-Allow-Origin`, `-Max-Age`, `-Expose-Headers`, plus
//! `-Allow-Credentials: true` for players that send session cookies) or, in generic mode, from
//! `[[generic.cors]]` in the edge config. Preflights (`OPTIONS` with `Origin` and
//! `Access-Control-Request-Method`) are answered at the edge and never reach the origin; the
//! headers of actual responses are computed per request and never stored, so one cache entry
//! serves every origin.
//!
//! Decisions: an allowed origin is echoed exactly (with `Vary: Origin`); `*` is sent only when
//! the rules allow any origin and credentials are off — `*` never combines with credentials,
//! so a credentialed response is readable only by origins listed by name. A malformed or
//! unlisted `Origin` gets no CORS headers (the browser then blocks the read); a failed
//! preflight is a `401` as in Swift.

use outpost_proto::snapshot::Meta;
use std::time::Duration;

use http::HeaderMap;

/// Container metadata: allowed origins (space or comma separated; `*` for any).
pub const META_ALLOW_ORIGIN: &str = "x-container-meta-access-control-allow-origin";
/// Container metadata: preflight cache lifetime in seconds.
pub const META_MAX_AGE: &str = "x-container-meta-access-control-max-age";
/// Container metadata: response headers scripts may read.
pub const META_EXPOSE_HEADERS: &str = "x-container-meta-access-control-expose-headers";
/// Container metadata (Outpost): `true` lets listed origins send credentials (cookies).
pub const META_ALLOW_CREDENTIALS: &str = "x-container-meta-access-control-allow-credentials";

/// Headers every CORS response exposes besides the simple ones, so players can read sizes
/// and cache state.
const ALWAYS_EXPOSED: &str =
    "content-length, content-range, accept-ranges, etag, x-outpost-cache, x-outpost-deny";

/// One set of CORS rules (a container's, or a generic-mode domain's).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsRules {
    /// Allowed origins, normalised (`scheme://host[:port]`, lower case).
    pub origins: Vec<String>,
    /// Any origin (`*`).
    pub any: bool,
    /// Credentials allowed (only for listed origins).
    pub credentials: bool,
    /// `Access-Control-Max-Age` of preflights.
    pub max_age: Option<Duration>,
    /// Extra exposed headers.
    pub expose: Vec<String>,
    /// Allowed methods for preflights.
    pub methods: Vec<String>,
    /// Allowed request headers (empty: whatever the preflight asks for).
    pub headers: Vec<String>,
}

/// Why a preflight is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The origin is not allowed (or malformed).
    Origin,
    /// The method is not allowed.
    Method,
}

/// Normalises a serialized origin (`scheme "://" host [":" port]`); `None` if malformed.
pub fn normalize_origin(origin: &str) -> Option<String> {
    let o = origin.trim();
    let (scheme, rest) = o.split_once("://")?;
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") || rest.is_empty() {
        return None;
    }
    let ok = rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok || rest.starts_with(':') {
        return None;
    }
    Some(format!(
        "{}://{}",
        scheme.to_ascii_lowercase(),
        rest.to_ascii_lowercase()
    ))
}

fn list(v: &str) -> impl Iterator<Item = &str> {
    v.split([',', ' ']).map(str::trim).filter(|s| !s.is_empty())
}

impl CorsRules {
    /// Rules from container metadata (`None` when the container allows no origin).
    pub fn from_container_meta(meta: &Meta) -> Option<CorsRules> {
        let allow = meta.get(META_ALLOW_ORIGIN)?;
        let mut rules = CorsRules {
            methods: vec!["GET".into(), "HEAD".into(), "OPTIONS".into()],
            ..CorsRules::default()
        };
        for o in list(allow) {
            if o == "*" {
                rules.any = true;
            } else if let Some(n) = normalize_origin(o) {
                rules.origins.push(n);
            }
        }
        rules.credentials = meta
            .get(META_ALLOW_CREDENTIALS)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        rules.max_age = meta
            .get(META_MAX_AGE)
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        rules.expose = meta
            .get(META_EXPOSE_HEADERS)
            .map(|v| list(v).map(str::to_ascii_lowercase).collect())
            .unwrap_or_default();
        (rules.any || !rules.origins.is_empty()).then_some(rules)
    }

    /// Whether `origin` (normalised) may read responses, and how: `Some(true)` exact echo
    /// with credentials, `Some(false)` without.
    fn allows(&self, origin: &str) -> Option<AllowAs> {
        if self.origins.iter().any(|o| o == origin) {
            return Some(AllowAs::Exact {
                credentials: self.credentials,
            });
        }
        self.any.then_some(AllowAs::Any)
    }

    /// The headers of an actual (non-preflight) response to a request from `origin`; empty
    /// when the origin is not allowed. `Vary: Origin` is returned separately by
    /// [`CorsRules::varies`].
    pub fn actual(&self, origin: Option<&str>) -> Vec<(&'static str, String)> {
        let Some(origin) = origin.and_then(normalize_origin) else {
            return Vec::new();
        };
        let Some(how) = self.allows(&origin) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(3);
        how.push_headers(origin, &mut out);
        let mut expose = ALWAYS_EXPOSED.to_owned();
        for h in &self.expose {
            expose.push_str(", ");
            expose.push_str(h);
        }
        out.push(("access-control-expose-headers", expose));
        out
    }

    /// Whether answers depend on the request's `Origin` (so `Vary: Origin` is due).
    pub fn varies(&self) -> bool {
        !self.origins.is_empty()
    }

    /// Answers a preflight: the headers of the `200`, or why it is refused.
    pub fn preflight(&self, req: &HeaderMap) -> Result<Vec<(&'static str, String)>, Refusal> {
        let origin = req
            .get(http::header::ORIGIN)
            .and_then(|v| v.to_str().ok())
            .and_then(normalize_origin)
            .ok_or(Refusal::Origin)?;
        let how = self.allows(&origin).ok_or(Refusal::Origin)?;
        let method = req
            .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or("");
        if !self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)) {
            return Err(Refusal::Method);
        }
        let mut out = Vec::with_capacity(6);
        how.push_headers(origin, &mut out);
        out.push(("access-control-allow-methods", self.methods.join(", ")));
        let asked = req
            .get(http::header::ACCESS_CONTROL_REQUEST_HEADERS)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                list(v)
                    .map(str::to_ascii_lowercase)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let allowed = if self.headers.is_empty() {
            asked
        } else {
            self.headers.join(", ")
        };
        if !allowed.is_empty() {
            out.push(("access-control-allow-headers", allowed));
        }
        if let Some(m) = self.max_age {
            out.push(("access-control-max-age", m.as_secs().to_string()));
        }
        Ok(out)
    }
}

/// The CORS part of one response, decided once per request.
#[derive(Debug, Clone)]
pub struct CorsOut {
    rules: std::sync::Arc<CorsRules>,
    headers: Vec<(&'static str, String)>,
}

impl CorsOut {
    /// The rules in force for a request with this `Origin` header.
    pub fn new(rules: std::sync::Arc<CorsRules>, origin: Option<&str>) -> CorsOut {
        let headers = rules.actual(origin);
        CorsOut { rules, headers }
    }

    /// This request's CORS headers (empty when its origin is not allowed).
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// Replaces whatever CORS headers the response carries with this request's, and adds
    /// `Vary: Origin` where the answer depends on it.
    pub fn apply(&self, resp: &mut pingora::http::ResponseHeader) -> pingora::Result<()> {
        let theirs: Vec<http::HeaderName> = resp
            .headers
            .keys()
            .filter(|k| k.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for k in theirs {
            resp.remove_header(&k);
        }
        for (k, v) in &self.headers {
            resp.insert_header(*k, v.as_str())?;
        }
        if self.rules.varies() {
            let has = resp
                .headers
                .get_all(http::header::VARY)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .any(|n| n.trim().eq_ignore_ascii_case("origin") || n.trim() == "*");
            if !has {
                resp.append_header(http::header::VARY, "Origin")?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy)]
enum AllowAs {
    Any,
    Exact { credentials: bool },
}

impl AllowAs {
    /// `Access-Control-Allow-Origin` (and `-Credentials`) for `origin`.
    fn push_headers(self, origin: String, out: &mut Vec<(&'static str, String)>) {
        match self {
            AllowAs::Any => out.push(("access-control-allow-origin", "*".to_owned())),
            AllowAs::Exact { credentials } => {
                out.push(("access-control-allow-origin", origin));
                if credentials {
                    out.push(("access-control-allow-credentials", "true".to_owned()));
                }
            }
        }
    }
}

/// Whether a request is a CORS preflight.
pub fn is_preflight(method: &http::Method, req: &HeaderMap) -> bool {
    method == http::Method::OPTIONS
        && req.contains_key(http::header::ORIGIN)
        && req.contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(allow: &str, creds: bool) -> CorsRules {
        let mut m = Meta::new();
        m.insert(META_ALLOW_ORIGIN.to_owned(), allow.to_owned());
        if creds {
            m.insert(META_ALLOW_CREDENTIALS.to_owned(), "true".to_owned());
        }
        m.insert(META_MAX_AGE.to_owned(), "600".to_owned());
        CorsRules::from_container_meta(&m).unwrap()
    }

    fn get<'a>(h: &'a [(&'static str, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(k, _)| *k == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn exact_origin_with_credentials_never_star() {
        let r = rules("https://App.example.com http://localhost:3000", true);
        let h = r.actual(Some("https://app.example.com"));
        assert_eq!(
            get(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&h, "access-control-allow-credentials"), Some("true"));
        assert!(r.actual(Some("https://evil.example.com")).is_empty());
        assert!(r.varies());
        let any = rules("*", true);
        let h = any.actual(Some("https://evil.example.com"));
        assert_eq!(get(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(get(&h, "access-control-allow-credentials"), None);
        assert!(!any.varies());
    }

    #[test]
    fn preflight_checks_origin_and_method() {
        let r = rules("https://app.example.com", true);
        let mut req = HeaderMap::new();
        req.insert("origin", "https://app.example.com".parse().unwrap());
        req.insert("access-control-request-method", "GET".parse().unwrap());
        req.insert(
            "access-control-request-headers",
            "Range, X-Foo".parse().unwrap(),
        );
        let h = r.preflight(&req).unwrap();
        assert_eq!(
            get(&h, "access-control-allow-headers"),
            Some("range, x-foo")
        );
        assert_eq!(get(&h, "access-control-max-age"), Some("600"));
        req.insert("access-control-request-method", "DELETE".parse().unwrap());
        assert_eq!(r.preflight(&req), Err(Refusal::Method));
        req.insert("origin", "https://other.example.com".parse().unwrap());
        assert_eq!(r.preflight(&req), Err(Refusal::Origin));
    }

    #[test]
    fn malformed_origins_get_nothing() {
        let r = rules("https://app.example.com", false);
        for bad in [
            "",
            "null",
            "app.example.com",
            "https://",
            "ftp://x",
            "https://a b",
            "https://x/y",
        ] {
            assert!(r.actual(Some(bad)).is_empty(), "{bad:?}");
        }
        assert!(CorsRules::from_container_meta(&Meta::new()).is_none());
    }
}
