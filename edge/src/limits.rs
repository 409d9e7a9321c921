//! Downstream request limits (`[limits]`): how long and how large a request head may be, how
//! long a connection may idle or stall, and how many connections one process keeps.
//!
//! The defaults follow nginx: 8 KiB per line and 32 KiB per head
//! (`large_client_header_buffers 4 8k`), `client_header_timeout 60s`, `keepalive_timeout 75s`,
//! `client_body_timeout 60s`, `send_timeout 60s`. [`Limits`] is the validated section;
//! [`ConnectionGate`] counts open connections against `max_connections`. The heads themselves
//! are read under these limits in [`crate::head`], before pingora parses them.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
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
    /// Largest request head (request line and every header line); larger ones get `431`.
    /// Default `32 KiB`; between `1 KiB` and `1 MiB` (pingora's own bound).
    #[serde(default)]
    pub max_header_total: Option<ByteSize>,
    /// Longest time to receive a whole request head, from the connection's start (first
    /// request) or from the head's first byte (later requests on a keep-alive connection).
    /// A client that has not sent it by then gets `408` and is closed. Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub header_timeout: Option<Duration>,
    /// Longest wait on a keep-alive connection for the next request's first byte; then the
    /// connection is closed silently. Default `75s`.
    #[serde(default, with = "humantime_serde")]
    pub keepalive_timeout: Option<Duration>,
    /// Longest pause between two reads of a request body (pingora's downstream read timeout).
    /// Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub body_timeout: Option<Duration>,
    /// Longest wait for one write to the client to make progress (pingora's downstream write
    /// timeout); a client that stops reading is closed after it. Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub send_timeout: Option<Duration>,
    /// Most open downstream connections (HTTP and HTTPS together) in this process. Past it, a
    /// new connection gets `503` and is closed, and a warning is logged (at most every 10 s,
    /// with the number refused). Default 10000; between 1 and 1000000.
    #[serde(default)]
    pub max_connections: Option<usize>,
}

/// The validated `[limits]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest request line in bytes, line ending excluded.
    pub max_request_line: usize,
    /// Longest header line in bytes, line ending excluded.
    pub max_header_line: usize,
    /// Largest head in bytes, line endings and the blank line included.
    pub max_header_total: usize,
    /// Deadline for a whole head.
    pub header_timeout: Duration,
    /// Idle wait for the next request on a keep-alive connection.
    pub keepalive_timeout: Duration,
    /// Body read pause.
    pub body_timeout: Duration,
    /// Downstream write stall.
    pub send_timeout: Duration,
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
            keepalive_timeout: Duration::from_secs(75),
            body_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_connections: 10_000,
        }
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

fn positive(key: &str, v: Option<Duration>, default: Duration) -> Result<Duration, Error> {
    match v {
        Some(d) if d.is_zero() => Err(err(key, "must be positive")),
        Some(d) => Ok(d),
        None => Ok(default),
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
            header_timeout: positive("header_timeout", self.header_timeout, d.header_timeout)?,
            keepalive_timeout: positive(
                "keepalive_timeout",
                self.keepalive_timeout,
                d.keepalive_timeout,
            )?,
            body_timeout: positive("body_timeout", self.body_timeout, d.body_timeout)?,
            send_timeout: positive("send_timeout", self.send_timeout, d.send_timeout)?,
            max_connections,
        })
    }
}

/// How often the "connection limit reached" warning may be logged.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Counts this process's open downstream connections against `max_connections`.
#[derive(Debug)]
pub struct ConnectionGate {
    max: usize,
    open: AtomicUsize,
    /// Connections refused since the last warning.
    refused: AtomicU64,
    /// Milliseconds after `epoch` of the last warning, `u64::MAX` before the first.
    warned_at: AtomicU64,
    epoch: Instant,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnectionPermit(Arc<ConnectionGate>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Release);
    }
}

impl ConnectionGate {
    /// A gate admitting at most `max` connections at once.
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(ConnectionGate {
            max,
            open: AtomicUsize::new(0),
            refused: AtomicU64::new(0),
            warned_at: AtomicU64::new(u64::MAX),
            epoch: Instant::now(),
        })
    }

    /// Open connections now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }

    /// Admits one more connection, or counts a refusal (and logs, rate-limited) when
    /// `max_connections` are open.
    pub fn try_enter(self: &Arc<Self>) -> Option<ConnectionPermit> {
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            return Some(ConnectionPermit(Arc::clone(self)));
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        self.maybe_warn();
        None
    }

    fn maybe_warn(&self) {
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
                max_connections = self.max,
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
        let l = parse("").unwrap();
        assert_eq!(l, Limits::default());
        assert_eq!((l.max_header_line, l.max_header_total), (8192, 32768));
        assert_eq!(l.header_timeout, Duration::from_secs(60));
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, key) in [
            ("max_header_total = \"2 MiB\"", "limits.max_header_total"),
            ("max_header_line = \"64 KiB\"", "limits.max_header_line"),
            ("max_request_line = \"10 B\"", "limits.max_request_line"),
            ("header_timeout = \"0s\"", "limits.header_timeout"),
            ("keepalive_timeout = \"0s\"", "limits.keepalive_timeout"),
            ("max_connections = 0", "limits.max_connections"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(key), "{text}: {e}");
        }
        let e = parse("max_conections = 5").unwrap_err().to_string();
        assert!(e.contains("max_conections"), "{e}");
        let l = parse(
            "max_header_total = \"4 KiB\"\nmax_header_line = \"1 KiB\"\nheader_timeout = \"2s\"",
        )
        .unwrap();
        assert_eq!((l.max_header_total, l.max_header_line), (4096, 1024));
        assert_eq!(l.header_timeout, Duration::from_secs(2));
    }

    #[test]
    fn gate_admits_up_to_max_and_frees_on_drop() {
        let g = ConnectionGate::new(2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        assert!(g.try_enter().is_none());
        assert_eq!(g.open(), 2);
        drop(a);
        assert!(g.try_enter().is_some());
    }
}
