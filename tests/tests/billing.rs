//! Billing through two real edges in front of a real origin: the origin's report for the
//! account equals the bytes the clients received (header + body, counted on the socket),
//! denials and errors are not billed, and an edge killed with SIGKILL mid-minute and restarted
//! bills no minute twice. Also: the admin API's authentication and bad input.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use outpost_tests::clients::{must_eventually, pseudo_random, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, SECRET, USER_KEY};
use outpost_tests::must_run_outpost;

/// Short intervals so a test sees shipping and delivery within seconds.
const FAST: &str = r#"[log]
delivery_interval = "1s"
flush_interval = "50ms"
[billing]
save_interval = "100ms"
ship_interval = "100ms"
"#;

const PUB: &str = "pub.demo.cdn.test";
const PRIV: &str = "priv.demo.cdn.test";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// One response as the client saw it.
#[derive(Debug)]
struct Got {
    status: u16,
    /// Every byte read from the socket: status line, headers, blank line, body.
    bytes: u64,
    headers: Vec<(String, String)>,
}

impl Got {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`), reading until the edge closes.
fn fetch(addr: SocketAddr, method: &str, host: &str, target: &str, extra: &[(&str, &str)]) -> Got {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).expect("send");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete header");
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Got {
        status,
        bytes: buf.len() as u64,
        headers,
    }
}

fn billable(status: u16) -> bool {
    (200..300).contains(&status) || status == 304
}

/// Known traffic: misses, hits, ranges (warm and cold), HEAD, a 304, denials and a 404.
/// Returns every response.
fn traffic(edge: &EdgeProc) -> Vec<Got> {
    let a = edge.addr;
    let mut out = Vec::new();
    out.push(fetch(a, "GET", PUB, "/small.txt", &[]));
    for _ in 0..3 {
        out.push(fetch(a, "GET", PUB, "/small.txt", &[]));
    }
    out.push(fetch(a, "GET", PUB, "/medium.bin", &[]));
    out.push(fetch(a, "GET", PUB, "/medium.bin", &[]));
    for r in ["bytes=0-99", "bytes=1000-1999", "bytes=-500"] {
        out.push(fetch(a, "GET", PUB, "/medium.bin", &[("Range", r)]));
    }
    out.push(fetch(
        a,
        "GET",
        PUB,
        "/cold.bin",
        &[("Range", "bytes=10-19")],
    ));
    out.push(fetch(a, "HEAD", PUB, "/small.txt", &[]));
    let etag = out[1].header("etag").expect("etag").to_owned();
    out.push(fetch(
        a,
        "GET",
        PUB,
        "/small.txt",
        &[("If-None-Match", etag.as_str())],
    ));
    for _ in 0..3 {
        out.push(fetch(a, "GET", PRIV, "/secret.bin", &[]));
    }
    out.push(fetch(
        a,
        "GET",
        PRIV,
        "/secret.bin?op_token=op1.k1.bm90.c2ln",
        &[],
    ));
    out.push(fetch(a, "GET", PUB, "/missing.txt", &[]));
    out
}

fn check_statuses(got: &[Got]) {
    let statuses: Vec<u16> = got.iter().map(|g| g.status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 206).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 304).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 403).count(),
        4,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 404).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        7,
        "{statuses:?}"
    );
    let caches: Vec<&str> = got
        .iter()
        .filter_map(|g| g.header("x-outpost-cache"))
        .collect();
    assert!(
        caches.contains(&"HIT") && caches.contains(&"MISS"),
        "{caches:?}"
    );
}

/// (bytes, requests) that should be billed for `got`.
fn expected(got: &[Got]) -> (u64, u64) {
    got.iter()
        .filter(|g| billable(g.status))
        .fold((0, 0), |(b, n), g| (b + g.bytes, n + 1))
}

fn metric(url: &str, name: &str) -> Option<i64> {
    let text = reqwest::blocking::get(format!("{url}/metrics"))
        .and_then(|r| r.text())
        .ok()?;
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as i64)
}

/// Waits until an edge has saved every billed request and shipped every closed minute.
fn must_settle(edge: &EdgeProc) {
    must_eventually("edge billing saved", Duration::from_secs(30), || {
        metric(&edge.url, "outpost_edge_billing_unsaved_requests") == Some(0)
            && metric(&edge.url, "outpost_edge_billing_pending_records") == Some(0)
    });
}

fn report(origin: &OriginProc, from: u64, to: u64) -> serde_json::Value {
    let r = reqwest::blocking::Client::new()
        .get(format!("{}/admin/billing", origin.url))
        .query(&[
            ("account", "demo"),
            ("from", &from.to_string()),
            ("to", &to.to_string()),
        ])
        .header("x-outpost-internal", SECRET)
        .send()
        .expect("report");
    assert_eq!(r.status(), 200);
    serde_json::from_slice(&r.bytes().expect("body")).expect("report JSON")
}

fn setup(origin: &OriginProc) -> Session {
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/pub", vec![], &[("x-container-read", ".r:*")], 201);
    api.must_put("/priv", vec![], &[], 201);
    api.must_put("/pub/small.txt", pseudo_random(1, 1000), &[], 201);
    api.must_put("/pub/medium.bin", pseudo_random(2, 50_000), &[], 201);
    api.must_put("/pub/cold.bin", pseudo_random(3, 30_000), &[], 201);
    api.must_put("/priv/secret.bin", pseudo_random(4, 2000), &[], 201);
    api
}

/// Gunzipped `billing/` objects of `.outpost_logs`, as (edge, minute) → bytes (a record
/// delivered twice carries the same values).
fn delivered_billing(api: &Session) -> std::collections::BTreeMap<(String, String), u64> {
    let mut out = std::collections::BTreeMap::new();
    let r = api
        .req("GET", "/.outpost_logs")
        .query(&[("format", "json"), ("prefix", "billing/")])
        .send()
        .expect("listing");
    if r.status() == 404 {
        return out;
    }
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&r.bytes().expect("body")).expect("listing JSON");
    for o in list {
        let name = o["name"].as_str().expect("name");
        let (status, gz) = api.must_get(&format!("/.outpost_logs/{name}"), &[]);
        assert_eq!(status, 200);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gzip");
        for line in text.lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            assert_eq!(v["kind"], "billing");
            assert_eq!(v["account"], "demo");
            out.insert(
                (
                    v["edge"].as_str().expect("edge").to_owned(),
                    v["minute"].as_str().expect("minute").to_owned(),
                ),
                v["bytes"].as_u64().expect("bytes"),
            );
        }
    }
    out
}

#[test]
fn report_equals_client_bytes_across_two_edges_and_a_kill_mid_minute() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = setup(&origin);
    // Start early in a minute so the kill and the restart fall inside the same minute.
    while now() % 60 > 30 {
        std::thread::sleep(Duration::from_millis(200));
    }
    let started = now();
    let e1 = EdgeProc::start(dir.path(), "e1", origin.addr, FAST);
    let mut e2 = EdgeProc::start(dir.path(), "e2", origin.addr, FAST);

    let got1 = traffic(&e1);
    check_statuses(&got1);
    let mut got2 = traffic(&e2);
    check_statuses(&got2);
    // Everything counted so far is on disk; the minute is still open.
    must_eventually("e2 saved its counters", Duration::from_secs(30), || {
        metric(&e2.url, "outpost_edge_billing_unsaved_requests") == Some(0)
    });
    let killed_in = now() / 60;
    e2.kill();
    e2.restart();
    got2.extend(traffic(&e2));
    let restarted_in = now() / 60;
    assert_eq!(
        killed_in, restarted_in,
        "the kill and restart should fall in one minute (slow machine?)"
    );

    let (b1, n1) = expected(&got1);
    let (b2, n2) = expected(&got2);
    let (want_bytes, want_requests) = (b1 + b2, n1 + n2);
    assert_eq!(want_requests, 3 * 12);
    let (from, to) = (started - 60, now() + 600);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let r = report(&origin, from, to);
        if r["bytes"] == want_bytes && r["requests"] == want_requests {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "report {r} never reached {want_bytes} bytes / {want_requests} requests"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Once every edge has shipped everything (and re-shipped whatever it saved before the
    // kill), the sums are still exact: nothing was billed twice.
    must_settle(&e1);
    must_settle(&e2);
    let r = report(&origin, from, to);
    assert_eq!(r["bytes"], want_bytes, "{r}");
    assert_eq!(r["requests"], want_requests, "{r}");
    let minutes = r["minutes"].as_array().expect("minutes");
    println!(
        "billed {want_requests} requests, {want_bytes} bytes (e1 {b1}, e2 {b2} across its \
         restart) over {} minute(s); client-side counts match the report",
        minutes.len()
    );
    let per_minute: u64 = minutes
        .iter()
        .map(|m| m["bytes"].as_u64().expect("bytes"))
        .sum();
    assert_eq!(per_minute, want_bytes);

    // The CLI prints the same report.
    let cfg = dir.path().join("origin.toml");
    let out = must_run_outpost(&[
        "billing",
        "report",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--origin",
        &origin.url,
        "--account",
        "demo",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--json",
    ]);
    let cli: serde_json::Value = serde_json::from_str(&out).expect("CLI JSON");
    assert_eq!(cli["bytes"], want_bytes);
    let table = must_run_outpost(&[
        "billing",
        "report",
        "--config",
        cfg.to_str().expect("utf-8"),
        "--origin",
        &origin.url,
        "--account",
        "demo",
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
    ]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("total") && l.contains(&want_bytes.to_string())),
        "{table}"
    );

    // Per-account egress in /metrics: the edge that never restarted counts exactly its own
    // traffic; the origin counts what edges billed, without counting re-shipments twice.
    assert_eq!(
        metric(
            &e1.url,
            "outpost_edge_account_egress_bytes_total{account=\"demo\"}"
        ),
        Some(i64::try_from(b1).expect("fits"))
    );
    assert_eq!(
        metric(
            &origin.url,
            "outpost_origin_account_billed_bytes_total{account=\"demo\"}"
        ),
        Some(i64::try_from(want_bytes).expect("fits"))
    );

    // The customer gets the same records in .outpost_logs/billing/.
    must_eventually("billing records delivered", Duration::from_secs(60), || {
        delivered_billing(&api).values().sum::<u64>() == want_bytes
    });
}

#[test]
fn billing_api_needs_admin_and_rejects_bad_input() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/c", vec![], &[], 201);
    let http = reqwest::blocking::Client::new();
    let url = format!("{}/admin/billing?account=demo&from=0&to=60", origin.url);
    assert_eq!(http.get(&url).send().expect("anon").status(), 401);
    let r = http
        .get(&url)
        .header("x-auth-token", &api.token)
        .send()
        .expect("user");
    assert_eq!(
        r.status(),
        403,
        "a plain account user is not a reseller admin"
    );
    let ok = |q: &str| {
        http.get(format!("{}/admin/billing?{q}", origin.url))
            .header("x-outpost-internal", SECRET)
            .send()
            .expect("request")
    };
    assert_eq!(ok("account=demo&from=0&to=60").status(), 200);
    assert_eq!(
        ok("account=demo&from=2026-01-01T00:00:00Z&to=2026-01-01T01:00:00Z").status(),
        200
    );
    for q in [
        "account=demo&from=yesterday&to=60",
        "account=demo&from=60&to=60",
        "from=0&to=60",
        "account=demo&to=60",
        "account=&from=0&to=60",
    ] {
        let r = ok(q);
        assert_eq!(r.status(), 400, "{q}: {}", r.text().unwrap_or_default());
    }

    let post = |body: &str, secret: Option<&str>| {
        let mut rb = http
            .post(format!("{}/internal/billing", origin.url))
            .body(body.to_owned());
        if let Some(s) = secret {
            rb = rb.header("x-outpost-internal", s);
        }
        rb.send().expect("post").status().as_u16()
    };
    let good = r#"{"version":1,"records":[{"edge":"x","account":"demo","minute":1,"bytes":5,"requests":1}]}"#;
    assert_eq!(post(good, None), 401);
    assert_eq!(post(good, Some("wrong-secret-wrong-secret")), 401);
    assert_eq!(post(good, Some(SECRET)), 200);
    assert_eq!(
        post(good, Some(SECRET)),
        200,
        "a repeated batch is accepted"
    );
    let r: serde_json::Value =
        serde_json::from_slice(&ok("account=demo&from=0&to=120").bytes().expect("body"))
            .expect("json");
    assert_eq!(
        r["bytes"], 5,
        "a repeated record replaces, it does not add: {r}"
    );
    for bad in [
        "not json",
        r#"{"version":2,"records":[]}"#,
        r#"{"version":1,"records":[{"edge":"","account":"demo","minute":1,"bytes":5,"requests":1}]}"#,
        r#"{"version":1,"records":[{"edge":"x","account":"demo","minute":1,"bytes":-5,"requests":1}]}"#,
        r#"{"version":1,"records":[{"edge":"x","account":"demo","minute":1,"bytes":5,"requests":1,"extra":1}]}"#,
    ] {
        assert_eq!(post(bad, Some(SECRET)), 400, "{bad}");
    }

    let put = |q: &str, secret: Option<&str>| {
        let mut rb = http
            .put(format!("{}/internal/logs?{q}", origin.url))
            .body(vec![1u8, 2, 3]);
        if let Some(s) = secret {
            rb = rb.header("x-outpost-internal", s);
        }
        rb.send().expect("put").status().as_u16()
    };
    assert_eq!(put("account=demo&object=access/x.gz", None), 401);
    assert_eq!(put("account=demo&object=elsewhere/x.gz", Some(SECRET)), 400);
    assert_eq!(put("account=demo", Some(SECRET)), 400);
    assert_eq!(put("account=nobody&object=access/x.gz", Some(SECRET)), 404);
    assert_eq!(put("account=demo&object=access/x.gz", Some(SECRET)), 201);
    let (status, body) = api.must_get("/.outpost_logs/access/x.gz", &[]);
    assert_eq!((status, body), (200, vec![1u8, 2, 3]));
}
