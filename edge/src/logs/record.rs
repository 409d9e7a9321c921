//! One access-log line, and the byte count that logs and billing share.
//!
//! **Bytes sent** (the billing definition, see `docs/logs-and-billing.md`): the response
//! header as HTTP/1.1 puts it on the wire (status line, every header line, the blank line)
//! plus the body bytes written, after range cutting, without chunked-encoding framing or TLS.
//! Over HTTP/2 the same HTTP/1.1 header size is counted, not HPACK's.

use std::fmt::{self, Write as _};
use std::net::IpAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use serde::{Deserialize, Serialize};

/// How much of the client address is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IpMode {
    /// The whole address.
    None,
    /// IPv4 to its /24, IPv6 to its /48.
    Truncate,
    /// No address at all.
    Drop,
}

/// Applies `mode` to an address.
pub fn anonymize(ip: IpAddr, mode: IpMode) -> Option<IpAddr> {
    match (mode, ip) {
        (IpMode::None, ip) => Some(ip),
        (IpMode::Drop, _) => None,
        (IpMode::Truncate, IpAddr::V4(v4)) => {
            let [a, b, c, _] = v4.octets();
            Some(IpAddr::from([a, b, c, 0]))
        }
        (IpMode::Truncate, IpAddr::V6(v6)) => {
            let s = v6.segments();
            Some(IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0]))
        }
    }
}

/// What the proxy knows about a request beyond the session.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    /// Routed account.
    pub account: Option<&'a str>,
    /// Routed container.
    pub container: Option<&'a str>,
    /// Routed object.
    pub object: Option<&'a str>,
    /// How access was granted: `public`, `tempurl`, `token-path`, ...
    pub auth: Option<&'static str>,
    /// Why access was denied (`X-Outpost-Deny`).
    pub deny: Option<&'static str>,
    /// When the request started.
    pub started: Instant,
    /// The proxy error that ended the request, if any.
    pub error: Option<&'a pingora::Error>,
}

/// Status and bytes of a finished response.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sent {
    /// Status, if a header was written.
    pub status: Option<u16>,
    /// Header bytes (HTTP/1.1 form).
    pub header: u64,
    /// Body bytes.
    pub body: u64,
}

impl Sent {
    /// Header plus body.
    pub fn total(&self) -> u64 {
        self.header + self.body
    }
}

/// Successful responses are billed: 2xx (206 included) and 304.
pub fn billable(status: u16) -> bool {
    (200..300).contains(&status) || status == 304
}

/// Size of `resp` as HTTP/1.1 writes it: `HTTP/1.1 200 OK\r\n`, `Name: value\r\n` per header,
/// `\r\n`. Header names keep their length whatever their case, so no formatting is needed.
pub fn header_bytes(resp: &ResponseHeader) -> u64 {
    let reason = resp.get_reason_phrase().map_or(0, str::len);
    let status_line = "HTTP/1.1 200 ".len() + reason + 2;
    let fields: usize = resp
        .headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum();
    (status_line + fields + 2) as u64
}

/// What was sent downstream.
pub fn bytes_sent(session: &Session) -> Sent {
    match session.response_written() {
        Some(resp) => Sent {
            status: Some(resp.status.as_u16()),
            header: header_bytes(resp),
            body: session.body_bytes_sent() as u64,
        },
        None => Sent::default(),
    }
}

/// RFC 3339 UTC with milliseconds, written without allocating.
struct Rfc3339(SystemTime);

impl fmt::Display for Rfc3339 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = d.as_secs();
        let (y, m, day) = civil_from_days(secs / 86_400);
        let rem = secs % 86_400;
        write!(
            f,
            "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
            rem / 3600,
            rem / 60 % 60,
            rem % 60,
            d.subsec_millis()
        )
    }
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
pub fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// `unix seconds` → `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339_secs(secs: u64) -> String {
    let (y, m, d) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// The cache status in lower case (`hit`, `miss`, `stale`, ...), from `X-Outpost-Cache`.
struct Lower<'a>(&'a str);

impl fmt::Display for Lower<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            f.write_char(c.to_ascii_lowercase())?;
        }
        Ok(())
    }
}

/// The host without port, lower case.
struct Domain<'a>(&'a str);

impl fmt::Display for Domain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let h = self.0;
        let h = if h.starts_with('[') {
            h.split_inclusive(']').next().unwrap_or(h)
        } else {
            h.rsplit_once(':')
                .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
                .map_or(h, |(h, _)| h)
        };
        Lower(h.trim_end_matches('.')).fmt(f)
    }
}

/// A JSON object written field by field into a buffer, the bytes `serde_json` would write
/// (same escapes), without its per-field machinery: the profile of cached hits had the
/// serde path of this line at 7 % of the edge's CPU.
struct JsonLine {
    buf: Vec<u8>,
    first: bool,
}

/// A `fmt::Write` that escapes into a JSON string.
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// JSON string escapes as `serde_json` writes them.
fn escape_into(buf: &mut Vec<u8>, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short = match b {
            b'"' => b'"',
            b'\\' => b'\\',
            b'\n' => b'n',
            b'\r' => b'r',
            b'\t' => b't',
            0x08 => b'b',
            0x0c => b'f',
            0x00..=0x1f => b'u',
            _ => continue,
        };
        buf.extend_from_slice(&bytes[start..i]);
        buf.push(b'\\');
        buf.push(short);
        if short == b'u' {
            buf.extend_from_slice(b"00");
            buf.push(HEX[usize::from(b >> 4)]);
            buf.push(HEX[usize::from(b & 0xf)]);
        }
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

impl JsonLine {
    fn new() -> JsonLine {
        JsonLine {
            buf: Vec::with_capacity(384),
            first: true,
        }
    }

    fn key(&mut self, k: &str) {
        self.buf.push(if self.first { b'{' } else { b',' });
        self.first = false;
        self.buf.push(b'"');
        self.buf.extend_from_slice(k.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    fn str(&mut self, k: &str, v: Option<&str>) {
        self.key(k);
        match v {
            Some(v) => {
                self.buf.push(b'"');
                escape_into(&mut self.buf, v);
                self.buf.push(b'"');
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn display(&mut self, k: &str, v: Option<&dyn fmt::Display>) {
        self.key(k);
        match v {
            Some(v) => {
                self.buf.push(b'"');
                let _ = write!(Escaping(&mut self.buf), "{v}");
                self.buf.push(b'"');
            }
            None => self.buf.extend_from_slice(b"null"),
        }
    }

    fn uint(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(Escaping(&mut self.buf), "{v}");
    }

    /// A finite float as `serde_json` writes it (`3.0`, not `3`).
    fn float(&mut self, k: &str, v: f64) {
        self.key(k);
        if !v.is_finite() {
            self.buf.extend_from_slice(b"null");
            return;
        }
        let start = self.buf.len();
        let _ = write!(Escaping(&mut self.buf), "{v}");
        if !self.buf[start..]
            .iter()
            .any(|b| matches!(b, b'.' | b'e' | b'E'))
        {
            self.buf.extend_from_slice(b".0");
        }
    }

    fn finish(mut self) -> Vec<u8> {
        if self.first {
            self.buf.push(b'{');
        }
        self.buf.extend_from_slice(b"}\n");
        self.buf
    }
}

/// What the access line reads from the exchange itself, whichever path answered it.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// Request method.
    pub method: &'a str,
    /// `Host` (or the target's authority), as sent.
    pub host: &'a str,
    /// `Range`, as sent.
    pub range: Option<&'a str>,
    /// `User-Agent`, as sent.
    pub user_agent: Option<&'a str>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// The response's `X-Outpost-Cache`.
    pub cache: Option<&'a str>,
    /// Status and bytes written.
    pub sent: Sent,
}

impl<'a> Seen<'a> {
    /// The exchange of a pingora session.
    pub fn of(session: &'a Session) -> Seen<'a> {
        let req = session.req_header();
        let header = |name: http::HeaderName| req.headers.get(name).and_then(|v| v.to_str().ok());
        Seen {
            method: req.method.as_str(),
            host: header(http::header::HOST)
                .or_else(|| req.uri.host())
                .unwrap_or(""),
            range: header(http::header::RANGE),
            user_agent: header(http::header::USER_AGENT),
            client_ip: session
                .client_addr()
                .and_then(|a| a.as_inet())
                .map(|a| a.ip()),
            cache: session
                .response_written()
                .and_then(|r| r.headers.get(crate::proxy::CACHE_STATUS_HEADER))
                .and_then(|v| v.to_str().ok()),
            sent: bytes_sent(session),
        }
    }
}

/// Builds the JSON line (with its newline) for a finished request. Only parsed fields go in:
/// never the query string, cookies, `Authorization`, or a `/.op/<token>/` prefix.
pub fn line(seen: &Seen<'_>, facts: &RequestFacts<'_>, edge: &str, ip_mode: IpMode) -> Vec<u8> {
    let sent = &seen.sent;
    let ip = seen.client_ip.and_then(|ip| anonymize(ip, ip_mode));
    // Field order is the order written (the shipper reads `kind` and `account` by position).
    let mut l = JsonLine::new();
    l.str("kind", Some("access"));
    l.display("time", Some(&Rfc3339(SystemTime::now())));
    l.str("edge", Some(edge));
    l.display("domain", Some(&Domain(seen.host)));
    l.str("account", facts.account);
    l.str("container", facts.container);
    l.str("object", facts.object);
    l.str("method", Some(seen.method));
    l.uint("status", u64::from(sent.status.unwrap_or(0)));
    l.uint("bytes", sent.total());
    l.uint("body_bytes", sent.body);
    l.str("range", seen.range);
    l.display(
        "cache",
        seen.cache
            .map(Lower)
            .as_ref()
            .map(|c| c as &dyn fmt::Display),
    );
    l.str("auth", facts.auth);
    l.str("deny", facts.deny);
    l.display("client_ip", ip.as_ref().map(|i| i as &dyn fmt::Display));
    l.str("user_agent", seen.user_agent);
    l.float(
        "duration_ms",
        (facts.started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0,
    );
    l.str("error", facts.error.map(|e| e.etype().as_str()));
    l.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_match_the_wire() {
        let mut h = ResponseHeader::build(206, None).unwrap();
        h.insert_header("content-length", "10").unwrap();
        h.insert_header(outpost_proto::headers::CACHE, "HIT")
            .unwrap();
        let mut wire = bytes::BytesMut::new();
        wire.extend_from_slice(b"HTTP/1.1 206 Partial Content\r\n");
        h.header_to_h1_wire(&mut wire);
        wire.extend_from_slice(b"\r\n");
        assert_eq!(header_bytes(&h), wire.len() as u64);
    }

    #[test]
    fn lines_escape_like_serde_json() {
        for v in [
            "plain",
            "quo\"te",
            "back\\slash",
            "ctl\u{1}\u{1f}\n\r\t\u{8}\u{c}",
            "ünï\u{7f}",
        ] {
            let mut l = JsonLine::new();
            l.str("k", Some(v));
            l.str("n", None);
            l.uint("u", 42);
            l.float("f", 3.0);
            l.float("g", 0.125);
            let expected = format!(
                "{{\"k\":{},\"n\":null,\"u\":42,\"f\":{},\"g\":{}}}\n",
                serde_json::to_string(v).unwrap(),
                serde_json::to_string(&3.0f64).unwrap(),
                serde_json::to_string(&0.125f64).unwrap(),
            );
            assert_eq!(String::from_utf8_lossy(&l.finish()), expected);
        }
    }

    #[test]
    fn anonymization() {
        let v4: IpAddr = "203.0.113.77".parse().unwrap();
        let v6: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        assert_eq!(anonymize(v4, IpMode::None), Some(v4));
        assert_eq!(anonymize(v4, IpMode::Drop), None);
        assert_eq!(
            anonymize(v4, IpMode::Truncate),
            Some("203.0.113.0".parse().unwrap())
        );
        assert_eq!(
            anonymize(v6, IpMode::Truncate),
            Some("2001:db8:1::".parse().unwrap())
        );
    }

    #[test]
    fn times_and_domains() {
        assert_eq!(rfc3339_secs(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_secs(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_secs(1_795_000_000), "2026-11-18T11:06:40Z");
        let t = Rfc3339(UNIX_EPOCH + std::time::Duration::from_millis(1_500));
        assert_eq!(t.to_string(), "1970-01-01T00:00:01.500Z");
        assert_eq!(
            Domain("Img.Example.COM:8443").to_string(),
            "img.example.com"
        );
        assert_eq!(Domain("[::1]:80").to_string(), "[::1]");
        assert_eq!(Domain("cdn.test.").to_string(), "cdn.test");
    }
}
