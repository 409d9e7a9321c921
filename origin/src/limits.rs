//! Request limits (`[limits]`): request head size and time, connections per process.
//!
//! The defaults follow nginx: 8 KiB per line and 32 KiB per head
//! (`large_client_header_buffers 4 8k`), `client_header_timeout 60s`. Where each is enforced:
//! - `max_header_total` and `header_timeout` by hyper's HTTP/1 parser
//!   (`http1::Builder::max_header_size`, `header_read_timeout`), while the head is read, so a
//!   large or trickled head never takes more than this much memory or time. hyper answers an
//!   oversized head with its own bodiless `431` and closes; a head not complete in time is
//!   closed without an answer. hyper starts the header timer when it waits for a head, so on a
//!   keep-alive connection it also bounds the idle time between requests.
//! - `max_request_line` and `max_header_line` by [`Limits::check_head`] on the parsed head
//!   (whose size hyper already bounded): `414` / `431` with the reason in the body.
//! - `max_connections` by the accept loop in [`crate::server`], with [`RefusalLog`].
//!
//! A request body's pauses are bounded by `client_timeout` (a top-level key, Swift's name).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::Error;

/// `[limits]` as written. Every key is optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    /// Longest request line (`GET /path HTTP/1.1`); longer ones get `414 URI Too Long`.
    /// Default `8 KiB`; between `256 B` and `max_header_total`.
    #[serde(default)]
    pub max_request_line: Option<ByteSize>,
    /// Longest header line (`name: value`); longer ones get `431 Request Header Fields Too
    /// Large`. Default `8 KiB`; between `256 B` and `max_header_total`.
    #[serde(default)]
    pub max_header_line: Option<ByteSize>,
    /// Largest request head (request line and header lines); larger ones get `431`.
    /// Default `32 KiB`; between `1 KiB` and `1 MiB`.
    #[serde(default)]
    pub max_header_total: Option<ByteSize>,
    /// Longest time to receive a whole request head, counted from when the node starts
    /// waiting for it: the connection's start, or the end of the previous response on a
    /// keep-alive connection (so it is also the keep-alive idle timeout). The connection is
    /// closed after it. Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    /// Most open client connections in this process. Past it, a new connection gets `503` and
    /// is closed, and a warning is logged (at most every 10 s, with the number refused).
    /// Default 10000; between 1 and 1000000.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// The validated `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, line ending excluded.
    pub max_request_line: usize,
    /// Longest header line (`name: value`) in bytes, line ending excluded.
    pub max_header_line: usize,
    /// Largest head in bytes.
    pub max_header_total: usize,
    /// Deadline for a whole head, idle keep-alive wait included.
    pub header_timeout: Duration,
    /// Most open connections.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_line: 8 << 10,
            max_header_line: 8 << 10,
            max_header_total: 32 << 10,
            header_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
    }
}

/// Which part of a request head went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPart {
    /// The request line (`limits.max_request_line`).
    RequestLine,
    /// One header line (`limits.max_header_line`).
    HeaderLine,
}

impl HeadPart {
    /// The `[limits]` key that bounds it.
    pub fn key(self) -> &'static str {
        match self {
            HeadPart::RequestLine => "max_request_line",
            HeadPart::HeaderLine => "max_header_line",
        }
    }
}

impl std::fmt::Display for HeadPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadPart::RequestLine => "request line",
            HeadPart::HeaderLine => "header line",
        })
    }
}

fn err(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: format!("limits.{key}"),
        reason: reason.into(),
    }
}

fn size(
    key: &str,
    v: Option<ByteSize>,
    default: usize,
    lo: usize,
    hi: usize,
) -> Result<usize, Error> {
    let Some(v) = v else { return Ok(default) };
    match usize::try_from(v.as_u64()) {
        Ok(n) if (lo..=hi).contains(&n) => Ok(n),
        _ => Err(err(
            key,
            format!(
                "must be between {} and {}",
                ByteSize(lo as u64),
                ByteSize(hi as u64)
            ),
        )),
    }
}

impl RawLimits {
    /// Checks every key and resolves the defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad key (`limits.<key>`).
    pub fn validate(&self) -> Result<Limits, Error> {
        let d = Limits::default();
        let total = size(
            "max_header_total",
            self.max_header_total,
            d.max_header_total,
            1 << 10,
            1 << 20,
        )?;
        let line = |key, v, default| {
            size(key, v, default, 256, total).map_err(|_| {
                err(
                    key,
                    format!(
                        "must be between 256 B and limits.max_header_total ({})",
                        ByteSize(total as u64)
                    ),
                )
            })
        };
        let header_timeout = match self.header_timeout {
            Some(t) if t.is_zero() => return Err(err("header_timeout", "must be positive")),
            Some(t) => t,
            None => d.header_timeout,
        };
        let max_connections = self.max_connections.unwrap_or(d.max_connections);
        if !(1..=1_000_000).contains(&max_connections) {
            return Err(err("max_connections", "must be between 1 and 1000000"));
        }
        Ok(Limits {
            max_request_line: line(
                "max_request_line",
                self.max_request_line,
                d.max_request_line,
            )?,
            max_header_line: line("max_header_line", self.max_header_line, d.max_header_line)?,
            max_header_total: total,
            header_timeout,
            max_connections,
        })
    }
}

impl Limits {
    /// Checks the line limits on a parsed head (hyper bounded its total size already).
    ///
    /// # Errors
    /// [`Error::HeadTooLarge`] naming the first line over its limit.
    pub fn check_head<B>(&self, req: &http::Request<B>) -> Result<(), Error> {
        let uri = req.uri();
        let target = uri.path_and_query().map_or(1, |p| p.as_str().len())
            + uri.scheme_str().map_or(0, |s| s.len() + 3)
            + uri.authority().map_or(0, |a| a.as_str().len());
        // "METHOD SP target SP HTTP/1.1"
        let request_line = req.method().as_str().len() + 1 + target + 9;
        if request_line > self.max_request_line {
            return Err(Error::HeadTooLarge {
                part: HeadPart::RequestLine,
                limit: self.max_request_line,
            });
        }
        for (name, value) in req.headers() {
            if name.as_str().len() + 2 + value.len() > self.max_header_line {
                return Err(Error::HeadTooLarge {
                    part: HeadPart::HeaderLine,
                    limit: self.max_header_line,
                });
            }
        }
        Ok(())
    }
}

/// How often the "connection limit reached" warning may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counts refused connections and logs them at most every 10 s.
#[derive(Debug)]
pub struct RefusalLog {
    refused: AtomicU64,
    /// Milliseconds after `epoch` of the last warning, `u64::MAX` before the first.
    warned_at: AtomicU64,
    epoch: Instant,
}

impl Default for RefusalLog {
    fn default() -> Self {
        RefusalLog {
            refused: AtomicU64::new(0),
            warned_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        }
    }
}

impl RefusalLog {
    /// Counts one refusal; logs the warning if none was logged in the last 10 s.
    pub fn refused(&self, max: usize) {
        self.refused.fetch_add(1, Ordering::Relaxed);
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX - 1);
        let last = self.warned_at.load(Ordering::Relaxed);
        let due = last == u64::MAX || now.saturating_sub(last) >= WARN_EVERY.as_millis() as u64;
        if due
            && self
                .warned_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let refused = self.refused.swap(0, Ordering::Relaxed);
            tracing::warn!(
                max_connections = max,
                refused,
                "connection limit reached (limits.max_connections): refusing new connections with 503"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Limits, Error> {
        toml::from_str::<RawLimits>(text)
            .map_err(|e| err("config", e.to_string()))?
            .validate()
    }

    #[test]
    fn defaults_are_nginx_like() {
        assert_eq!(parse("").unwrap(), Limits::default());
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("max_header_total = \"2 MiB\"", "limits.max_header_total"),
            ("max_header_line = \"64 KiB\"", "limits.max_header_line"),
            ("max_request_line = \"10 B\"", "limits.max_request_line"),
            ("header_timeout = \"0s\"", "limits.header_timeout"),
            ("max_connections = 0", "limits.max_connections"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("keepalive_timeout = \"5s\"").unwrap_err().to_string();
        assert!(e.contains("keepalive_timeout"), "{e}");
    }

    #[test]
    fn line_limits_are_checked_on_the_parsed_head() {
        let l = Limits {
            max_request_line: 64,
            max_header_line: 32,
            ..Limits::default()
        };
        let req = |path: &str, value: &str| {
            http::Request::get(path)
                .header("x-a", value)
                .body(())
                .unwrap()
        };
        assert!(l.check_head(&req("/v1/AUTH_a/c/o", "short")).is_ok());
        let e = l
            .check_head(&req(&format!("/{}", "a".repeat(60)), "v"))
            .unwrap_err();
        assert_eq!(e.status(), http::StatusCode::URI_TOO_LONG);
        let e = l.check_head(&req("/", &"v".repeat(30))).unwrap_err();
        assert_eq!(
            e.status(),
            http::StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
        );
        assert!(e.to_string().contains("limits.max_header_line"), "{e}");
        // Exactly at the limit: "x-a: " + 27 bytes = 32.
        assert!(l.check_head(&req("/", &"v".repeat(27))).is_ok());
    }
}
