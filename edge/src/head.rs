//! Reading HTTP/1 request heads under `[limits]`, before pingora parses them.
//!
//! pingora 0.9 has no knob for its request head: it buffers up to a hard-coded 1 MiB
//! (`MAX_HEADER_SIZE`), and its downstream read timeout (60 s) applies to each read, so a
//! client that sends one byte every few seconds is never timed out; between keep-alive
//! requests it waits forever (an HTTP/1.1 session sets an infinite keep-alive). A check in a
//! `ProxyHttp` phase would run after all of that. So [`LimitedApp`] wraps pingora's HTTP app
//! and runs the HTTP/1 connection loop itself (as pingora's `ServerApp` impl for
//! `HttpServerApp` does): for each request it reads the head into a buffer with
//! [`read_head`], which enforces the line and size limits as bytes arrive and one deadline
//! for the whole head, then hands the buffer to pingora as the session's pipelined prefix
//! (`ServerSession::set_pipelined_prefix`), so pingora parses it without reading the socket
//! again. Bytes past the head (a request body) stay in the prefix for pingora.
//!
//! Cost per request: one scan of the head for newlines, in the buffer pingora would have read
//! into anyway, and one tokio timer around the read that waits for it.
//!
//! HTTP/2 (TLS with ALPN `h2`) frames its header blocks itself; such connections go to
//! pingora's own loop and count against `max_connections` like the others.

use std::future::pending;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::{HttpPersistentSettings, HttpServerApp, ServerApp};
use pingora::protocols::http::ServerSession;
use pingora::protocols::{Stream, ALPN};
use pingora::server::ShutdownWatch;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::limits::{ConnectionGate, Limits};
use crate::proxy::{Front, FrontOutcome};
use crate::Error;

/// Which part of a request head went over its limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPart {
    /// The request line (`limits.max_request_line`).
    RequestLine,
    /// One header line (`limits.max_header_line`).
    HeaderLine,
    /// The head as a whole (`limits.max_header_total`).
    Head,
}

impl HeadPart {
    /// The `[limits]` key that bounds it.
    pub fn key(self) -> &'static str {
        match self {
            HeadPart::RequestLine => "max_request_line",
            HeadPart::HeaderLine => "max_header_line",
            HeadPart::Head => "max_header_total",
        }
    }
}

impl std::fmt::Display for HeadPart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HeadPart::RequestLine => "request line",
            HeadPart::HeaderLine => "header line",
            HeadPart::Head => "request head",
        })
    }
}

/// Why no head was read.
#[derive(Debug)]
pub enum HeadEnd {
    /// The client closed, the keep-alive wait ended or the server is shutting down: close
    /// without a word.
    Quiet,
    /// Answer this error, then close.
    Refuse(Error),
}

/// Where the head's deadline starts.
#[derive(Debug, Clone, Copy)]
pub enum HeadWait {
    /// The connection's first request: the deadline runs from its start.
    First {
        /// When the connection was accepted (handed to the app).
        since: Instant,
    },
    /// A later request on a keep-alive connection: up to `keepalive_timeout` for the first
    /// byte, then `header_timeout` from it.
    Next,
}

/// Incremental line checks over a growing buffer.
#[derive(Debug, Default)]
struct Scan {
    /// Bytes already looked at.
    pos: usize,
    /// Start of the current line.
    line_start: usize,
    /// Whether the request line is behind us.
    seen_request_line: bool,
}

impl Scan {
    /// Looks at the new bytes of `buf`: `Ok(Some(len))` once the head (blank line included)
    /// is complete, `Ok(None)` when more is needed.
    fn feed(&mut self, buf: &[u8], l: &Limits) -> Result<Option<usize>, HeadPart> {
        while let Some(i) = buf[self.pos..].iter().position(|&b| b == b'\n') {
            let nl = self.pos + i;
            let mut end = nl;
            if end > self.line_start && buf[end - 1] == b'\r' {
                end -= 1;
            }
            let len = end - self.line_start;
            self.pos = nl + 1;
            self.line_start = self.pos;
            if self.pos > l.max_header_total {
                return Err(HeadPart::Head);
            }
            if len == 0 {
                if self.seen_request_line {
                    return Ok(Some(self.pos));
                }
                // Blank lines before the request line are ignored (RFC 9112 §2.2).
            } else if !self.seen_request_line {
                if len > l.max_request_line {
                    return Err(HeadPart::RequestLine);
                }
                self.seen_request_line = true;
            } else if len > l.max_header_line {
                return Err(HeadPart::HeaderLine);
            }
        }
        self.pos = buf.len();
        // The unfinished line may already be too long; +1 for a '\r' not yet followed by '\n'.
        let partial = buf.len() - self.line_start;
        let (limit, part) = if self.seen_request_line {
            (l.max_header_line, HeadPart::HeaderLine)
        } else {
            (l.max_request_line, HeadPart::RequestLine)
        };
        if partial > limit + 1 {
            return Err(part);
        }
        if buf.len() > l.max_header_total {
            return Err(HeadPart::Head);
        }
        Ok(None)
    }
}

/// Resolves when the server starts shutting down; never if the watch is gone.
async fn shutting_down(shutdown: &ShutdownWatch) {
    let mut w = shutdown.clone();
    loop {
        if *w.borrow_and_update() {
            return;
        }
        if w.changed().await.is_err() {
            pending::<()>().await;
        }
    }
}

/// Reads one request head into `buf` (which may already hold bytes of it), checking
/// `limits` as bytes arrive. Returns the head's length; `buf` may hold more (body bytes).
///
/// # Errors
/// [`HeadEnd::Quiet`] when the client closes, the keep-alive wait ends or `shutdown` turns
/// true while waiting for a next request; [`HeadEnd::Refuse`] with
/// [`Error::HeadTooLarge`] or [`Error::HeadTimeout`].
///
/// # Cancel safety
/// Not cancel safe: bytes read before cancellation stay in `buf`.
pub async fn read_head<S: AsyncRead + Unpin>(
    stream: &mut S,
    buf: &mut BytesMut,
    limits: &Limits,
    wait: HeadWait,
    shutdown: &ShutdownWatch,
) -> Result<usize, HeadEnd> {
    let mut scan = Scan::default();
    let deadline = match wait {
        HeadWait::First { since } => since + limits.header_timeout,
        HeadWait::Next if !buf.is_empty() => Instant::now() + limits.header_timeout,
        HeadWait::Next => {
            reserve(buf);
            let read = tokio::time::timeout(limits.keepalive_timeout, stream.read_buf(buf));
            tokio::select! {
                biased;
                r = read => match r {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return Err(HeadEnd::Quiet),
                },
                () = shutting_down(shutdown) => return Err(HeadEnd::Quiet),
            }
            Instant::now() + limits.header_timeout
        }
    };
    loop {
        match scan.feed(buf, limits) {
            Ok(Some(len)) => return Ok(len),
            Ok(None) => {}
            Err(part) => {
                let limit = match part {
                    HeadPart::RequestLine => limits.max_request_line,
                    HeadPart::HeaderLine => limits.max_header_line,
                    HeadPart::Head => limits.max_header_total,
                };
                return Err(HeadEnd::Refuse(Error::HeadTooLarge { part, limit }));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        reserve(buf);
        match tokio::time::timeout(left, stream.read_buf(buf)).await {
            Ok(Ok(n)) if n > 0 => {}
            Ok(_) => return Err(HeadEnd::Quiet),
            Err(_) if buf.is_empty() => return Err(HeadEnd::Quiet),
            Err(_) => {
                return Err(HeadEnd::Refuse(Error::HeadTimeout {
                    timeout: limits.header_timeout,
                }))
            }
        }
    }
}

/// Keeps room for a read without growing by tiny steps.
fn reserve(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < 1024 {
        buf.reserve(4096);
    }
}

/// Writes a short `Connection: close` answer for `e` and closes the connection politely:
/// our write side first, then what the client still sends is read and dropped for a moment,
/// so the kernel does not reset the connection (and the answer) over unread bytes.
pub async fn refuse<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S, e: &Error) {
    let status = e.status();
    let body = format!("{e}\n");
    let answer = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
         Connection: close\r\nX-Outpost-Error: {}\r\n\r\n{body}",
        status.as_str(),
        status.canonical_reason().unwrap_or(""),
        body.len(),
        e.code(),
    );
    let write = async {
        stream.write_all(answer.as_bytes()).await?;
        stream.flush().await?;
        AsyncWriteExt::shutdown(stream).await
    };
    if !matches!(
        tokio::time::timeout(Duration::from_secs(2), write).await,
        Ok(Ok(()))
    ) {
        return;
    }
    let drain = async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 1 << 20;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
}

/// pingora's HTTP app (`HttpProxy`) behind `[limits]`: the connection limit, and HTTP/1 heads
/// read by [`read_head`] before pingora sees them.
pub struct LimitedApp<A> {
    app: Arc<A>,
    limits: Limits,
    gate: Arc<ConnectionGate>,
    /// Plain cached hits answered before pingora sees them (`crate::proxy::Front`).
    front: Option<Front>,
}

impl<A> LimitedApp<A> {
    /// Wraps `app`.
    pub fn new(app: A, limits: Limits) -> Self {
        LimitedApp {
            app: Arc::new(app),
            gate: ConnectionGate::new(limits.max_connections),
            limits,
            front: None,
        }
    }

    /// Answers plain cached hits with `front` before handing requests to the app.
    pub fn with_front(mut self, front: Option<Front>) -> Self {
        self.front = front;
        self
    }
}

#[async_trait]
impl<A> ServerApp for LimitedApp<A>
where
    A: HttpServerApp + Send + Sync + 'static,
{
    async fn process_new(
        self: &Arc<Self>,
        mut stream: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        let since = Instant::now();
        let Some(_permit) = self.gate.try_enter() else {
            if !matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
                let e = Error::TooManyConnections {
                    max: self.limits.max_connections,
                };
                refuse(&mut stream, &e).await;
            }
            return None;
        };
        if matches!(stream.selected_alpn_proto(), Some(ALPN::H2)) {
            // pingora's loop for HTTP/2; it returns once the connection is done.
            let mut next = ServerApp::process_new(&self.app, stream, shutdown).await;
            while let Some(s) = next {
                next = ServerApp::process_new(&self.app, s, shutdown).await;
            }
            return None;
        }
        let mut settings: Option<HttpPersistentSettings> = None;
        let mut wait = HeadWait::First { since };
        let client_ip = stream
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).map(|a| a.ip()));
        loop {
            let mut buf = BytesMut::with_capacity(4096);
            match read_head(&mut stream, &mut buf, &self.limits, wait, shutdown).await {
                Ok(_) => {}
                Err(HeadEnd::Quiet) => return None,
                Err(HeadEnd::Refuse(e)) => {
                    tracing::debug!(error = %e, "request head refused");
                    refuse(&mut stream, &e).await;
                    return None;
                }
            }
            let stopping = *shutdown.borrow();
            if let (Some(front), false) = (&self.front, stopping) {
                match front.serve(&buf, &mut stream, client_ip).await {
                    FrontOutcome::Served => {
                        wait = HeadWait::Next;
                        continue;
                    }
                    FrontOutcome::Closed => return None,
                    FrontOutcome::Pass => {}
                }
            }
            let mut session = ServerSession::new_http1(stream);
            match settings.take() {
                Some(s) => s.apply_to_session(&mut session),
                // As pingora's own loop: keep-alive unless the service is shutting down. The
                // value only matters to pingora's head reads, which the prefix makes moot.
                None => session.set_keepalive((!*shutdown.borrow()).then_some(60)),
            }
            // pingora never enables pipelining here, so no prefix came with the settings.
            session.set_pipelined_prefix(buf);
            session.set_read_timeout(Some(self.limits.body_timeout));
            session.set_write_timeout(Some(self.limits.send_timeout));
            let reused = self.app.process_new_http(session, shutdown).await?;
            let (s, st) = reused.consume();
            stream = s;
            settings = st;
            wait = HeadWait::Next;
        }
    }

    async fn cleanup(&self) {
        self.app.http_cleanup().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Limits {
        Limits {
            max_request_line: 32,
            max_header_line: 16,
            max_header_total: 64,
            ..Limits::default()
        }
    }

    fn scan_all(input: &[u8], l: &Limits) -> Result<Option<usize>, HeadPart> {
        // Byte by byte, as a trickling client sends it: the answer must not depend on reads.
        let mut s = Scan::default();
        for n in 1..=input.len() {
            if let Some(len) = s.feed(&input[..n], l)? {
                return Ok(Some(len));
            }
        }
        Ok(None)
    }

    #[test]
    fn complete_heads_end_after_the_blank_line() {
        let l = small();
        let req = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nbody";
        assert_eq!(scan_all(req, &l), Ok(Some(req.len() - 4)));
        let mut s = Scan::default();
        assert_eq!(s.feed(req, &l), Ok(Some(req.len() - 4)));
        // Bare LF endings and leading blank lines, as httparse accepts them.
        assert_eq!(
            scan_all(b"\r\n\nGET / HTTP/1.1\nA: b\n\n", &l),
            Ok(Some(24))
        );
        assert_eq!(scan_all(b"GET / HTTP/1.1\r\nHost: a\r\n", &l), Ok(None));
    }

    #[test]
    fn each_limit_is_enforced_before_the_line_ends() {
        let l = small();
        let long_target = format!("GET /{} HTTP/1.1", "a".repeat(40));
        assert_eq!(
            scan_all(long_target.as_bytes(), &l),
            Err(HeadPart::RequestLine)
        );
        assert_eq!(
            scan_all(b"GET / HTTP/1.1\r\nX-Long: 0123456789", &l),
            Err(HeadPart::HeaderLine)
        );
        let many = format!("GET / HTTP/1.1\r\n{}", "A: 0123456789\r\n".repeat(5));
        assert_eq!(scan_all(many.as_bytes(), &l), Err(HeadPart::Head));
        // Exactly at the limits passes.
        let exact = format!(
            "GET /{} HTTP/1.1\r\nA: {}\r\n\r\n",
            "a".repeat(18),
            "b".repeat(13)
        );
        assert_eq!(scan_all(exact.as_bytes(), &l), Ok(Some(exact.len())));
        // Endless blank lines count against the total.
        assert_eq!(scan_all(&[b'\n'; 100], &l), Err(HeadPart::Head));
    }

    #[tokio::test]
    async fn a_trickled_head_times_out_at_the_deadline() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let l = Limits {
            header_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let (mut client, mut server) = tokio::io::duplex(1024);
        let t = Instant::now();
        let trickle = tokio::spawn(async move {
            for b in b"GET / HTTP/1.1\r\nHost: a".iter().cycle().take(200) {
                if client.write_all(&[*b]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        let mut buf = BytesMut::new();
        let r = read_head(&mut server, &mut buf, &l, HeadWait::First { since: t }, &rx).await;
        assert!(
            matches!(r, Err(HeadEnd::Refuse(Error::HeadTimeout { .. }))),
            "{r:?}"
        );
        let took = t.elapsed();
        assert!(
            took >= Duration::from_millis(290) && took < Duration::from_secs(2),
            "{took:?}"
        );
        drop(server);
        trickle.await.unwrap();
        drop(tx);
    }

    #[tokio::test]
    async fn an_idle_keepalive_wait_ends_quietly_on_shutdown() {
        let (tx, rx) = tokio::sync::watch::channel(false);
        let (_client, mut server) = tokio::io::duplex(1024);
        let wait = tokio::spawn(async move {
            let mut buf = BytesMut::new();
            read_head(
                &mut server,
                &mut buf,
                &Limits::default(),
                HeadWait::Next,
                &rx,
            )
            .await
        });
        tx.send(true).unwrap();
        let r = wait.await.unwrap();
        assert!(matches!(r, Err(HeadEnd::Quiet)), "{r:?}");
    }
}
