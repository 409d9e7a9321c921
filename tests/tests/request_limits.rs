//! `[limits]` at the edge and the origin, over real sockets: oversized heads and request lines
//! are refused with a reason, a client that trickles its head or idles on a keep-alive
//! connection is closed at the configured timeout while other connections are served, and
//! the connection past `max_connections` gets 503 and a log line (issue 18).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use outpost_tests::cluster::{EdgeProc, OriginProc};

/// A parsed answer: status, the head as text, the body.
struct Answer {
    status: u16,
    head: String,
    body: String,
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s
}

/// Reads one answer: the head, then `Content-Length` bytes (or up to EOF without it).
fn read_answer(s: &mut TcpStream) -> Option<Answer> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => buf.push(byte[0]),
            _ => return None,
        }
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let mut body = Vec::new();
    match len {
        Some(n) => {
            body.resize(n, 0);
            s.read_exact(&mut body).ok()?;
        }
        None => {
            let _ = s.read_to_end(&mut body);
        }
    }
    Some(Answer {
        status,
        head,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

/// Sends `request` on a new connection and reads the answer.
fn ask(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = connect(addr);
    // The server may stop reading once it has seen enough; the answer still comes.
    let _ = s.write_all(request);
    read_answer(&mut s).unwrap_or_else(|| panic!("no answer from {addr}"))
}

fn healthz() -> &'static [u8] {
    b"GET /healthz HTTP/1.1\r\nHost: cdn.test\r\n\r\n"
}

/// Waits until the server closes `s` (read returns 0 or an error), dropping what it sends;
/// returns how long that took from `since`.
fn must_close(s: &mut TcpStream, since: Instant) -> Duration {
    let mut sink = [0u8; 1024];
    loop {
        match s.read(&mut sink) {
            Ok(0) => return since.elapsed(),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                panic!("not closed after {:?}", since.elapsed())
            }
            Err(_) => return since.elapsed(),
        }
    }
}

/// Opens a connection and sends a head one byte every 100 ms until the server closes it;
/// returns when it was closed, measured from the connection's start.
fn must_be_closed_while_trickling(addr: SocketAddr) -> Duration {
    let mut s = connect(addr);
    let start = Instant::now();
    let mut writer = s.try_clone().expect("clone");
    let trickle = std::thread::spawn(move || {
        let head = b"GET /healthz HTTP/1.1\r\nHost: cdn.test\r\nX-Slow: ";
        for b in head.iter().chain(std::iter::repeat(&b'a')).take(400) {
            if writer.write_all(&[*b]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let took = must_close(&mut s, start);
    drop(s);
    trickle.join().expect("trickle thread");
    took
}

/// After one answered request, waits for the server to close the idle keep-alive connection.
fn must_close_idle_keepalive(addr: SocketAddr) -> Duration {
    let mut s = connect(addr);
    s.write_all(healthz()).expect("write");
    let a = read_answer(&mut s).expect("answer");
    assert_eq!(a.status, 200, "{}", a.head);
    must_close(&mut s, Instant::now())
}

fn big_header(n: usize) -> Vec<u8> {
    format!(
        "GET /healthz HTTP/1.1\r\nHost: cdn.test\r\nX-Big: {}\r\n\r\n",
        "a".repeat(n)
    )
    .into_bytes()
}

fn long_request_line(n: usize) -> Vec<u8> {
    format!(
        "GET /healthz?{} HTTP/1.1\r\nHost: cdn.test\r\n\r\n",
        "a".repeat(n)
    )
    .into_bytes()
}

const SHORT_TIMEOUTS: &str = "[limits]\nheader_timeout = \"1s\"\n";

#[test]
fn oversized_heads_are_refused_with_a_reason_and_slow_clients_are_closed_in_time() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start_with(dir.path(), SHORT_TIMEOUTS, None);
    let edge = EdgeProc::start(
        dir.path(),
        "edge",
        origin.addr,
        "[limits]\nheader_timeout = \"1s\"\nkeepalive_timeout = \"1s\"\n",
    );

    // A 64 KiB header: the edge sees it go over 8 KiB per line before the line ends.
    let a = ask(edge.addr, &big_header(64 << 10));
    assert!(a.status == 431, "{}", a.head);
    assert!(a.body.contains("limits.max_header_line"), "{}", a.body);
    assert!(
        a.head.to_ascii_lowercase().contains("connection: close"),
        "{}",
        a.head
    );
    // At the origin hyper's parser refuses it past limits.max_header_total, with its own
    // (bodiless) 431; a header line under the total but over its own limit gets the reason.
    assert_eq!(ask(origin.addr, &big_header(64 << 10)).status, 431);
    let a = ask(origin.addr, &big_header(16 << 10));
    assert_eq!(a.status, 431, "{}", a.head);
    assert!(a.body.contains("limits.max_header_line"), "{}", a.body);
    // Many header lines, each short, over 32 KiB together.
    let many = format!(
        "GET /healthz HTTP/1.1\r\nHost: cdn.test\r\n{}\r\n",
        "X-Many: 0123456789012345678901234567890123456789\r\n".repeat(800)
    );
    let a = ask(edge.addr, many.as_bytes());
    assert_eq!(a.status, 431, "{}", a.head);
    assert!(a.body.contains("limits.max_header_total"), "{}", a.body);
    assert_eq!(ask(origin.addr, many.as_bytes()).status, 431);
    // A request line over 8 KiB: 414 with the reason at both.
    for addr in [edge.addr, origin.addr] {
        let a = ask(addr, &long_request_line(16 << 10));
        assert_eq!(a.status, 414, "{addr}: {}", a.head);
        assert!(
            a.body.contains("limits.max_request_line"),
            "{addr}: {}",
            a.body
        );
        // Under the limits, the same request is served.
        assert_eq!(ask(addr, &long_request_line(1 << 10)).status, 200, "{addr}");
        assert_eq!(ask(addr, &big_header(4 << 10)).status, 200, "{addr}");
    }

    // Trickling clients and idle keep-alive connections at both, all at once, while normal
    // requests on other connections are answered.
    let slow: Vec<_> = [edge.addr, origin.addr]
        .into_iter()
        .flat_map(|addr| {
            [
                std::thread::spawn(move || ("trickle", addr, must_be_closed_while_trickling(addr))),
                std::thread::spawn(move || ("idle", addr, must_close_idle_keepalive(addr))),
            ]
        })
        .collect();
    let start = Instant::now();
    let mut served = 0;
    while !slow.iter().all(|t| t.is_finished()) {
        for addr in [edge.addr, origin.addr] {
            assert_eq!(ask(addr, healthz()).status, 200, "{addr}");
            served += 1;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "slow clients still open"
        );
    }
    assert!(served >= 2);
    for t in slow {
        let (what, addr, took) = t.join().expect("slow client thread");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_secs(5),
            "{what} at {addr}: closed after {took:?}, configured 1s"
        );
    }
}

/// Polls `path` until it holds `needle` (the log is written asynchronously).
fn must_log(path: &Path, needle: &str) {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{} never logged {needle:?}:\n{text}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Opens a keep-alive connection that got a 200 (retrying while connections the harness
/// opened are still closing, which the server learns asynchronously).
fn must_hold_connection(addr: SocketAddr) -> TcpStream {
    let start = Instant::now();
    loop {
        let mut s = connect(addr);
        s.write_all(healthz()).expect("write");
        let a = read_answer(&mut s).expect("answer");
        if a.status == 200 {
            return s;
        }
        assert_eq!(a.status, 503, "{}", a.head);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "connections never freed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn the_connection_past_max_connections_gets_503_and_a_log_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let limited = "[limits]\nmax_connections = 3\n";
    let origin_log = dir.path().join("origin.log");
    let origin = OriginProc::start_with(dir.path(), limited, Some(&origin_log));
    // The edge follows a separate origin: its own feed connections must not count here.
    let feed_dir = tempfile::tempdir().expect("tempdir");
    let upstream = OriginProc::start(feed_dir.path());
    let edge_log = dir.path().join("edge.log");
    let edge = EdgeProc::start_logged(dir.path(), "edge", upstream.addr, limited, Some(&edge_log));

    for (addr, log) in [(edge.addr, &edge_log), (origin.addr, &origin_log)] {
        let mut held: Vec<TcpStream> = (0..3).map(|_| must_hold_connection(addr)).collect();
        let a = ask(addr, healthz());
        assert_eq!(a.status, 503, "{addr}: {}", a.head);
        assert!(
            a.body.contains("limits.max_connections"),
            "{addr}: {}",
            a.body
        );
        must_log(log, "connection limit reached");
        // The held connections are still served, and a freed place is taken again.
        held[0].write_all(healthz()).expect("write");
        assert_eq!(read_answer(&mut held[0]).expect("answer").status, 200);
        held.pop();
        held.push(must_hold_connection(addr));
    }
}
