//! The front path: plain cached hits answered from the HTTP/1 connection loop
//! (`crate::head::LimitedApp`), before pingora builds a session for the request.
//!
//! pingora's per-request work around even a `request_filter` answer (its session and cache
//! state, the header map with case, ten filter hooks, the response head serialized per
//! response) costs about as much as the rest of a hit (RESULTS.md). Here the head the limits
//! reader already buffered is parsed once with `httparse`, routed and checked by the same
//! [`Gate`] as `request_filter`, the key looked up in the memory tier like the hit fast path
//! (`super::hot`), and the response written as the stored version's head, serialized once per
//! version, plus the per-response `Age`, `Date` and `Connection` lines, and the body.
//!
//! It answers only what the hit fast path would answer as a plain full `HIT`, with the same
//! header fields: an HTTP/1.1 `GET`/`HEAD` without a body, cache directives, `Range`,
//! conditionals or `Connection` options, for a fresh, non-varying, complete `200` entry with a
//! length. Everything else is left to pingora untouched: nothing is written and nothing is
//! decided that the proxy would decide differently (a denial is decided again there, which
//! counts and answers it).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::{BufMut, Bytes, BytesMut};
use pingora::http::ResponseHeader;
use pingora::protocols::http::date::get_cached_date;
use pingora::protocols::Stream;
use tokio::io::AsyncWriteExt;

use super::gate::{Gate, Incoming, Routed};
use super::hot::prepare_hit;
use super::{now_secs, per_request_headers, Edge, PURGE_PATH};
use crate::access::Access;
use crate::cache::TieredStorage;
use crate::cache_policy::RequestDirectives;
use crate::logs::record::Sent;
use crate::logs::{Logs, RequestFacts, Seen};
use crate::metrics::EdgeMetrics;

/// Most request header fields the front path parses; heads with more go to pingora.
const MAX_FIELDS: usize = 32;

/// Bodies up to this size are copied behind the head and sent with it in one write; larger
/// ones are written from the stored `Bytes` as they are.
const COPY_BODY: usize = 16 * 1024;

/// Request fields that make a request the proxy's: bodies, connection options, ranges and
/// conditionals (the hit fast path in `request_filter` still serves most of those).
const PASS_FIELDS: &[http::HeaderName] = &[
    http::header::CONTENT_LENGTH,
    http::header::TRANSFER_ENCODING,
    http::header::UPGRADE,
    http::header::EXPECT,
    http::header::RANGE,
    http::header::IF_RANGE,
    http::header::IF_NONE_MATCH,
    http::header::IF_MODIFIED_SINCE,
    http::header::IF_MATCH,
    http::header::IF_UNMODIFIED_SINCE,
];

/// What the front path did with a request head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a plain fresh hit: nothing written, the head is pingora's.
    Pass,
    /// Answered; the connection may carry the next request.
    Served,
    /// Writing the answer failed: the connection is done.
    Closed,
}

/// The front path's handles, shared with the proxy it stands in front of.
pub struct Front {
    gate: Gate,
    storage: &'static TieredStorage,
    metrics: Arc<EdgeMetrics>,
    logs: Option<Arc<Logs>>,
}

impl Edge {
    /// The front path for this proxy's connections, when it has one: origin mode with the hit
    /// fast path on (generic mode keys and answers requests differently).
    pub fn front(&self) -> Option<Front> {
        (self.cfg.hot_path && self.cfg.generic.is_none()).then(|| Front {
            gate: self.gate.clone(),
            storage: self.storage,
            metrics: Arc::clone(&self.metrics),
            logs: self.logs.clone(),
        })
    }
}

/// The head of a plain full hit, `Age`, `Date` and `Connection` left out (written per
/// response), or `None` when the stored version is not one the front path writes.
fn wire_head(stored: &ResponseHeader, private: bool, body_len: usize) -> Option<Bytes> {
    let length = stored
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if stored.status != http::StatusCode::OK
        || length != Some(body_len)
        || stored.headers.contains_key(http::header::TRANSFER_ENCODING)
    {
        return None;
    }
    let mut h = stored.clone();
    per_request_headers(&mut h, private, None, None).ok()?;
    Some(serialize(&mut h))
}

/// `h` in HTTP/1.1 form without its final blank line, minus the per-response fields.
fn serialize(h: &mut ResponseHeader) -> Bytes {
    for name in [
        http::header::AGE,
        http::header::DATE,
        http::header::CONNECTION,
    ] {
        h.remove_header(&name);
    }
    let mut buf = BytesMut::with_capacity(512);
    buf.put_slice(b"HTTP/1.1 ");
    buf.put_slice(h.status.as_str().as_bytes());
    buf.put_u8(b' ');
    if let Some(reason) = h.get_reason_phrase() {
        buf.put_slice(reason.as_bytes());
    }
    buf.put_slice(b"\r\n");
    h.header_to_h1_wire(&mut buf);
    buf.freeze()
}

impl Front {
    /// Answers the request whose complete head (and nothing more) is `head` if it is a plain
    /// fresh hit.
    pub async fn serve(
        &self,
        head: &[u8],
        stream: &mut Stream,
        client_ip: Option<IpAddr>,
    ) -> Outcome {
        let started = Instant::now();
        let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
        let mut parsed = httparse::Request::new(&mut fields);
        match parsed.parse(head) {
            Ok(httparse::Status::Complete(n)) if n == head.len() => {}
            _ => return Outcome::Pass,
        }
        let method = match parsed.method {
            Some("GET") => http::Method::GET,
            Some("HEAD") => http::Method::HEAD,
            _ => return Outcome::Pass,
        };
        let (Some(1), Some(target)) = (parsed.version, parsed.path) else {
            return Outcome::Pass;
        };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        if !path.starts_with('/')
            || super::https::is_https_endpoint(path)
            || matches!(
                path,
                "/healthz" | "/metrics" | outpost_auth::pubcookie::LOGIN_PATH | PURGE_PATH
            )
        {
            return Outcome::Pass;
        }
        let Some(headers) = header_map(parsed.headers) else {
            return Outcome::Pass;
        };
        let mut hosts = headers.get_all(http::header::HOST).iter();
        let (Some(host), None) = (hosts.next().and_then(|h| h.to_str().ok()), hosts.next()) else {
            return Outcome::Pass;
        };
        if !RequestDirectives::parse(&headers).is_plain() {
            return Outcome::Pass;
        }
        let req = Incoming {
            method: &method,
            path,
            query,
            host,
            headers: &headers,
            client_ip: client_ip.unwrap_or(IpAddr::from([0, 0, 0, 0])),
        };
        let Ok(Routed { route, rules }) = self.gate.route(&req) else {
            return Outcome::Pass;
        };
        if route.https != crate::catalog::HttpsPolicy::default() {
            // A redirect or HSTS is the proxy's to add.
            return Outcome::Pass;
        }
        let (key, _) = crate::cache_key::for_route(&route, query);
        let Some(hot) = self.storage.hot(&crate::cache_key::key(&key), prepare_hit) else {
            return Outcome::Pass;
        };
        let now = SystemTime::now();
        if !hot.is_fresh(now) {
            return Outcome::Pass;
        }
        let unix = now_secs();
        let Ok(access) = self.gate.access(&req, &route, unix) else {
            return Outcome::Pass;
        };
        let private = access.is_private();
        let cors = Gate::cors(&req, rules);
        let cookie = self.gate.reissued_cookie(&access, unix);
        let built;
        let base = if cors.is_none() && cookie.is_none() {
            match hot.wire(private, |h, p| wire_head(h, p, hot.body.len())) {
                Some(b) => b,
                None => return Outcome::Pass,
            }
        } else {
            // Eligibility, from the (cached) public variant: no serialization per request.
            if hot
                .wire(false, |h, p| wire_head(h, p, hot.body.len()))
                .is_none()
            {
                return Outcome::Pass;
            }
            let mut h = hot.header.clone();
            if per_request_headers(&mut h, private, cookie, cors.as_ref()).is_err() {
                return Outcome::Pass;
            }
            built = serialize(&mut h);
            &built
        };
        let head_only = method == http::Method::HEAD;
        let body = (!head_only).then_some(&hot.body);
        let inline = body.filter(|b| b.len() <= COPY_BODY);
        let age = now.duration_since(hot.epoch).unwrap_or_default().as_secs();
        let mut out = BytesMut::with_capacity(base.len() + 96 + inline.map_or(0, |b| b.len()));
        out.put_slice(base);
        out.put_slice(b"Age: ");
        out.put_slice(itoa::Buffer::new().format(age).as_bytes());
        out.put_slice(b"\r\nDate: ");
        out.put_slice(get_cached_date().as_bytes());
        out.put_slice(b"\r\nConnection: keep-alive\r\n\r\n");
        let head_len = out.len();
        if let Some(b) = inline {
            out.put_slice(b);
        }
        let mut written = stream.write_all(&out).await;
        if let (Ok(()), Some(b), None) = (&written, body, inline) {
            written = stream.write_all(b).await;
        }
        if written.is_ok() {
            written = stream.flush().await;
        }
        let sent = Sent {
            status: Some(200),
            header: head_len as u64,
            body: if written.is_ok() {
                body.map_or(0, |b| b.len() as u64)
            } else {
                0
            },
        };
        self.finish(&req, &route, &access, sent, started);
        if written.is_err() {
            return Outcome::Closed;
        }
        Outcome::Served
    }

    /// Metrics, billing and the access line, as pingora's `logging` hook does them.
    fn finish(
        &self,
        req: &Incoming<'_>,
        route: &crate::routing::Route,
        access: &Access,
        sent: Sent,
        started: Instant,
    ) {
        self.metrics.request(200, "HIT", started.elapsed());
        self.metrics.hot_hit();
        self.metrics.front_hit();
        let Some(logs) = &self.logs else { return };
        let header = |name| req.headers.get(name).and_then(|v| v.to_str().ok());
        let seen = Seen {
            method: req.method.as_str(),
            host: req.host,
            range: None,
            user_agent: header(http::header::USER_AGENT),
            client_ip: Some(req.client_ip),
            cache: Some("HIT"),
            sent,
        };
        let facts = RequestFacts {
            account: Some(route.path.account()),
            container: route.path.container(),
            object: route.path.object(),
            auth: Some(match access {
                Access::Public => "public",
                Access::Granted(g) => g.mechanism().as_str(),
            }),
            deny: None,
            started,
            error: None,
        };
        logs.finish_seen(&seen, &facts);
    }
}

/// The parsed fields as a header map, or `None` when one is not a valid name or value, or one
/// makes the request the proxy's.
fn header_map(fields: &[httparse::Header<'_>]) -> Option<http::HeaderMap> {
    let mut map = http::HeaderMap::with_capacity(fields.len());
    for f in fields {
        let name = http::HeaderName::from_bytes(f.name.as_bytes()).ok()?;
        if PASS_FIELDS.contains(&name) {
            return None;
        }
        if name == http::header::CONNECTION && !f.value.eq_ignore_ascii_case(b"keep-alive") {
            return None;
        }
        let value = http::HeaderValue::from_bytes(f.value).ok()?;
        map.append(name, value);
    }
    Some(map)
}
