//! Access logs through two real edges: each request becomes one JSON line that lands,
//! gzip-compressed, in the account's `.outpost_logs` container (read back through the origin's
//! Swift API); a line flushed before a SIGKILL is still delivered after the restart; and
//! tokens, signatures and cookies never appear in a line.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
use outpost_tests::clients::{must_eventually, pseudo_random, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, USER_KEY};

const FAST: &str = r#"[log]
delivery_interval = "1s"
flush_interval = "50ms"
[billing]
save_interval = "100ms"
ship_interval = "100ms"
"#;

const PUB: &str = "pub.demo.cdn.test";
const PRIV: &str = "priv.demo.cdn.test";
const KEY_SECRET: &str = "edge-logs-token-secret-0123456789";

/// Status and bytes read for one request sent on its own connection.
fn fetch(
    addr: SocketAddr,
    method: &str,
    host: &str,
    target: &str,
    extra: &[(&str, &str)],
) -> (u16, u64) {
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
    s.read_to_end(&mut buf).expect("read");
    let status = String::from_utf8_lossy(&buf[..buf.len().min(20)])
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status");
    (status, buf.len() as u64)
}

fn setup(origin: &OriginProc) -> Session {
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/pub", vec![], &[("x-container-read", ".r:*")], 201);
    api.must_put("/priv", vec![], &[], 201);
    api.must_put("/pub/a.txt", pseudo_random(1, 3000), &[], 201);
    api.must_put("/pub/b.bin", pseudo_random(2, 40_000), &[], 201);
    api.must_put("/priv/secret.bin", pseudo_random(3, 1000), &[], 201);
    let r = api.send("POST", "", &[("x-account-outpost-key-k1", KEY_SECRET)]);
    assert!(r.status().is_success());
    api
}

/// Every delivered access line, gunzipped, with the name of the object it came from.
fn delivered_lines(api: &Session) -> Vec<(String, serde_json::Value)> {
    let r = api
        .req("GET", "/.outpost_logs")
        .query(&[("format", "json"), ("prefix", "access/")])
        .send()
        .expect("listing");
    if r.status() == 404 {
        return Vec::new();
    }
    assert!(r.status().is_success(), "listing: {}", r.status());
    let list: Vec<serde_json::Value> =
        serde_json::from_slice(&r.bytes().expect("body")).expect("listing JSON");
    let mut out = Vec::new();
    for o in list {
        let name = o["name"].as_str().expect("name").to_owned();
        let (status, gz) = api.must_get(&format!("/.outpost_logs/{name}"), &[]);
        assert_eq!(status, 200);
        let mut text = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .expect("gzip");
        for line in text.lines() {
            out.push((name.clone(), serde_json::from_str(line).expect("JSON line")));
        }
    }
    out
}

/// The raw (gunzipped) text of every delivered access object.
fn delivered_text(api: &Session) -> String {
    delivered_lines(api)
        .into_iter()
        .map(|(_, v)| v.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn by_agent(lines: &[(String, serde_json::Value)]) -> BTreeMap<String, serde_json::Value> {
    lines
        .iter()
        .filter_map(|(_, v)| Some((v["user_agent"].as_str()?.to_owned(), v.clone())))
        .collect()
}

fn unflushed(edge: &EdgeProc) -> Option<i64> {
    let text = reqwest::blocking::get(format!("{}/metrics", edge.url))
        .and_then(|r| r.text())
        .ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("outpost_edge_access_log_unflushed_lines "))
        .and_then(|v| v.parse().ok())
}

#[test]
fn access_lines_land_in_outpost_logs_and_match_the_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = setup(&origin);
    let e1 = EdgeProc::start(dir.path(), "e1", origin.addr, FAST);
    let mut e2 = EdgeProc::start(dir.path(), "e2", origin.addr, FAST);

    // (user agent, edge, method, host, target, range) → what the client saw.
    struct Case {
        ua: String,
        edge: &'static str,
        method: &'static str,
        object: &'static str,
        container: &'static str,
        range: Option<&'static str>,
        status: u16,
        bytes: u64,
    }
    let mut cases = Vec::new();
    let plan: [(&str, &str, &str, &str, Option<&str>); 7] = [
        ("GET", PUB, "/a.txt", "a.txt", None),
        ("GET", PUB, "/a.txt", "a.txt", None),
        ("GET", PUB, "/b.bin", "b.bin", None),
        ("GET", PUB, "/b.bin", "b.bin", Some("bytes=5-9")),
        ("HEAD", PUB, "/a.txt", "a.txt", None),
        ("GET", PRIV, "/secret.bin", "secret.bin", None),
        ("GET", PUB, "/missing", "missing", None),
    ];
    for (edge_name, edge) in [("e1", &e1), ("e2", &e2)] {
        for (i, (method, host, target, object, range)) in plan.iter().enumerate() {
            let ua = format!("case-{edge_name}-{i}");
            let mut h = vec![("User-Agent", ua.as_str())];
            if let Some(r) = range {
                h.push(("Range", r));
            }
            let (status, bytes) = fetch(edge.addr, method, host, target, &h);
            cases.push(Case {
                ua,
                edge: edge_name,
                method,
                object,
                container: if *host == PRIV { "priv" } else { "pub" },
                range: *range,
                status,
                bytes,
            });
        }
    }
    must_eventually("every line delivered", Duration::from_secs(60), || {
        let got = by_agent(&delivered_lines(&api));
        cases.iter().all(|c| got.contains_key(&c.ua))
    });
    let lines = delivered_lines(&api);
    let got = by_agent(&lines);
    for c in &cases {
        let l = &got[&c.ua];
        assert_eq!(l["kind"], "access", "{l}");
        assert_eq!(l["edge"], c.edge, "{l}");
        assert_eq!(l["account"], "demo", "{l}");
        assert_eq!(l["container"], c.container, "{l}");
        assert_eq!(l["object"], c.object, "{l}");
        assert_eq!(l["method"], c.method, "{l}");
        assert_eq!(l["status"], c.status, "{l}");
        assert_eq!(
            l["bytes"], c.bytes,
            "bytes in the log are the bytes the client read: {l}"
        );
        assert_eq!(l["range"].as_str(), c.range, "{l}");
        assert_eq!(
            l["client_ip"], "127.0.0.0",
            "truncated to /24 by default: {l}"
        );
        assert_eq!(
            l["domain"],
            if c.container == "priv" { PRIV } else { PUB },
            "{l}"
        );
        assert!(l["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{l}");
        assert!(l["duration_ms"].as_f64().is_some(), "{l}");
        match c.status {
            403 => {
                assert_eq!(l["deny"], "invalid", "{l}");
                assert!(l["cache"].is_null(), "{l}");
            }
            200 | 206 => {
                assert_eq!(l["auth"], "public", "{l}");
                assert!(l["deny"].is_null(), "{l}");
                let cache = l["cache"].as_str().unwrap_or("");
                assert!(["hit", "miss"].contains(&cache), "{l}");
            }
            _ => {}
        }
    }
    // First GET of a.txt on each edge missed, the second hit.
    assert_eq!(got["case-e1-0"]["cache"], "miss");
    assert_eq!(got["case-e1-1"]["cache"], "hit");
    assert_eq!(got["case-e1-5"]["status"], 403);
    assert_eq!(got["case-e1-3"]["status"], 206);
    // Objects are named by kind, hour and edge.
    for (name, _) in &lines {
        let parts: Vec<&str> = name.split('/').collect();
        assert_eq!(parts.len(), 6, "{name}");
        assert_eq!(parts[0], "access");
        assert!(
            parts[5].starts_with("e1-") || parts[5].starts_with("e2-"),
            "{name}"
        );
        assert!(parts[5].ends_with(".jsonl.gz"), "{name}");
    }

    // A line flushed to the spool survives a SIGKILL: the restarted edge delivers it.
    let (status, _) = fetch(
        e2.addr,
        "GET",
        PUB,
        "/a.txt",
        &[("User-Agent", "before-kill")],
    );
    assert_eq!(status, 200);
    must_eventually("line flushed", Duration::from_secs(10), || {
        unflushed(&e2) == Some(0)
    });
    e2.kill();
    let spool = dir.path().join("e2-cache/logs");
    let left: usize = ["open", "closed"]
        .iter()
        .map(|d| std::fs::read_dir(spool.join(d)).map_or(0, Iterator::count))
        .sum();
    e2.restart();
    must_eventually(
        "line of the killed edge delivered",
        Duration::from_secs(60),
        || by_agent(&delivered_lines(&api)).contains_key("before-kill"),
    );
    assert!(
        left <= 2,
        "spool holds at most an open and a closed segment: {left}"
    );
    let _ = &e1;
}

fn key() -> TokenKey {
    TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key")
}

/// (user agent, target, extra headers, expected status).
type Case<'a> = (&'a str, String, Vec<(&'a str, &'a str)>, u16);

#[test]
fn tokens_signatures_and_cookies_never_appear_in_log_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = setup(&origin);
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, FAST);
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 600;
    let tok =
        token::sign(&Claims::new("demo", TokenKind::Url, "/priv", exp), &key()).expect("sign");
    let sig = tok.rsplit('.').next().expect("signature").to_owned();
    let fake_sig = "f00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeedf00dfeed";
    let cookie = "SESSIONCOOKIEVALUEthatmustnotleak";
    let path_token = format!("/.op/{tok}/secret.bin");
    let query_token = format!("/secret.bin?op_token={tok}");
    let tempurl = format!("/secret.bin?temp_url_sig={fake_sig}&temp_url_expires={exp}");
    let header_auth = format!("Outpost {tok}");
    let cookie_header = format!("outpost_session={cookie}; other={cookie}");
    let cases: Vec<Case> = vec![
        ("tok-path", path_token, vec![], 200),
        ("tok-query", query_token, vec![], 200),
        (
            "tok-header",
            "/secret.bin".into(),
            vec![("X-Outpost-Token", tok.as_str())],
            200,
        ),
        (
            "tok-authz",
            "/secret.bin".into(),
            vec![("Authorization", header_auth.as_str())],
            200,
        ),
        ("tok-tempurl", tempurl, vec![], 403),
        (
            "tok-cookie",
            "/secret.bin".into(),
            vec![("Cookie", cookie_header.as_str())],
            403,
        ),
    ];
    for (ua, target, headers, want) in &cases {
        let mut h = headers.clone();
        h.push(("User-Agent", ua));
        let (status, _) = fetch(edge.addr, "GET", PRIV, target, &h);
        assert_eq!(status, *want, "{ua}");
    }
    must_eventually("lines delivered", Duration::from_secs(60), || {
        let got = by_agent(&delivered_lines(&api));
        cases.iter().all(|(ua, ..)| got.contains_key(*ua))
    });
    let got = by_agent(&delivered_lines(&api));
    for (ua, ..) in &cases {
        assert_eq!(got[*ua]["object"], "secret.bin", "{}", got[*ua]);
    }
    assert_eq!(got["tok-path"]["auth"], "token-path");
    assert_eq!(got["tok-query"]["auth"], "token-query");
    let text = delivered_text(&api);
    for secret in [
        tok.as_str(),
        sig.as_str(),
        fake_sig,
        cookie,
        "op_token",
        "temp_url_sig",
        "/.op/",
    ] {
        assert!(
            !text.contains(secret),
            "{secret:?} leaked into the access log"
        );
    }
    // The spool on the edge's disk holds none of them either.
    let mut spool = String::new();
    for d in ["open", "closed"] {
        if let Ok(rd) = std::fs::read_dir(dir.path().join("e1-cache/logs").join(d)) {
            for e in rd.flatten() {
                spool.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
            }
        }
    }
    for secret in [tok.as_str(), sig.as_str(), fake_sig, cookie] {
        assert!(!spool.contains(secret), "{secret:?} in the spool");
    }
}
