//! CORS with credentials through the real edge, seen by a real browser: a page on one host plays
//! a private HLS stream from the CDN's host the way hls.js loads it (`fetch` for playlists, XHR
//! with `withCredentials` and an `arraybuffer` for segments, two of them with a `Range`), with
//! the session cookie of a pubcookie login; the same page from an origin the container does not
//! list is blocked by the browser.
//!
//! The hosts: the page on `app.example.localhost`, the CDN on `video.example.localhost`, the
//! disallowed page on `other.example.localhost`. Chromium resolves every `*.localhost` name to
//! loopback itself (no DNS, no `/etc/hosts`) and treats it as a secure context, so the
//! `Secure` session cookie works over plain HTTP. The three hosts share the registrable domain
//! `example.localhost` (the public-suffix list's default rule makes `localhost` a suffix): they
//! are *same-site* but *cross-origin*, exactly like `app.example.com` and `cdn.example.com` in
//! production. That matters twice: the `SameSite=Lax` cookie is sent on the page's subresource
//! requests only because the hosts are same-site (`app.localhost` and `video.localhost` would be
//! two sites, and the cookie would never be sent), and the disallowed page is same-site too, so
//! its requests carry the cookie and are served — only CORS stops the script from reading them.
//!
//! How the cookie gets there: the login is a top-level navigation to the CDN's
//! `/.outpost/login`, whose `Set-Cookie` (`HttpOnly; Secure; SameSite=Lax; Path=/; Max-Age=…`)
//! is a persistent cookie of `video.example.localhost`. Chromium writes it to the profile's
//! cookie database when it exits cleanly (as it does after `--dump-dom`), so later runs with the
//! same `--user-data-dir` are the same browser profile coming back: the page's
//! `credentials: 'include'` fetches and `withCredentials` XHRs to the CDN carry it, and the
//! edge's access log shows them authorized by `cookie`.
//!
//! Preflights: Chromium follows the Fetch standard, where a `Range` of one simple
//! `bytes=<first>-<last>` (what hls.js sends for byte-range playlists) is a CORS-safelisted
//! header and needs no preflight; a suffix range (`bytes=-<n>`, how players read the tail of a
//! file) is not. So the second segment is read with a simple range and the third with a suffix
//! range, which the browser preflights at the edge.
//!
//! The page is served by a small HTTP server in this test; nothing is fetched from the internet.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use outpost_auth::token::{self, Claims};
use outpost_auth::{TokenKey, TokenKind};
use outpost_tests::clients::{must_eventually, pseudo_random, run_within, walk, Session};
use outpost_tests::cluster::{EdgeProc, OriginProc, USER_KEY};
use outpost_tests::tokens::{key_k1, now};
use outpost_tests::which;
use reqwest::blocking::Response;

const KEY_SECRET: &str = "cors-browser-token-secret-0123456789";
const CDN_HOST: &str = "video.example.localhost";
const APP_HOST: &str = "app.example.localhost";
const OTHER_HOST: &str = "other.example.localhost";
/// The `Range` the player sends for the second segment: CORS-safelisted, no preflight.
const RANGE: &str = "bytes=100-1099";
/// The `Range` of the third segment: a suffix range, which the browser preflights.
const SUFFIX_RANGE: &str = "bytes=-1000";

fn key() -> TokenKey {
    key_k1(KEY_SECRET)
}

/// A login grant for the whole `videos` container, single-use by its nonce.
fn grant(nonce: &str) -> String {
    let mut g = Claims::new("demo", TokenKind::Grant, "/videos", now() + 60);
    g.nonce = Some(nonce.into());
    token::sign(&g, &key()).expect("sign grant")
}

fn chromium() -> Option<PathBuf> {
    which("chromium").or_else(|| which("chromium-browser"))
}

/// The app's page server: answers `GET /` with `html` for any `Host` (so one port serves
/// `app.` and `other.`), everything else with 404, and remembers `host path` of each request.
/// Stopped (and its thread joined) on drop.
struct PageServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl PageServer {
    fn start(html: String) -> PageServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind page server");
        let addr = listener.local_addr().expect("page server address");
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let html = Arc::new(html);
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (seen, html) = (seen.clone(), html.clone());
                    // One thread per connection: Chromium preconnects sockets it may never use.
                    std::thread::spawn(move || serve_page(conn, &html, &seen));
                }
            })
        };
        PageServer {
            addr,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Asserts the page was requested under `host`.
    fn must_have_served(&self, host: &str) {
        let want = format!("{host}:{} /", self.port());
        let seen = self.seen.lock().expect("page server log").clone();
        assert!(
            seen.contains(&want),
            "the page server never served {want:?}; it saw {seen:?}"
        );
    }
}

impl Drop for PageServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the loop sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_page(mut conn: TcpStream, html: &str, seen: &Mutex<Vec<String>>) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(10)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let head = String::from_utf8_lossy(&buf);
    let path = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .unwrap_or("")
        .to_owned();
    let host = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| v.trim().to_owned())
        .unwrap_or_default();
    seen.lock()
        .expect("page server log")
        .push(format!("{host} {path}"));
    let (status, body) = if path == "/" {
        ("200 OK", html)
    } else {
        ("404 Not Found", "not found\n")
    };
    let ctype = if path == "/" {
        "text/html; charset=utf-8"
    } else {
        "text/plain"
    };
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(resp.as_bytes());
}

/// The app's page: an hls.js-style loader. Playlists with `fetch(…, {credentials: 'include'})`,
/// URIs resolved against the playlist that names them, segments with XHR (`withCredentials`,
/// `arraybuffer`), the second and third with a `Range`. What it read, or the error it got, goes
/// into `<pre id="result">` as JSON.
fn player_page(master: &str, first_segment: &str) -> String {
    r#"<!doctype html><html><head><title>player</title></head><body>
<pre id="result">pending</pre>
<script>
const MASTER = "@MASTER@";
const FIRST_SEGMENT = "@SEGMENT@";
const RANGES = [null, "@RANGE@", "@SUFFIX@"];
function uris(text, base) {
  return text.split('\n').map(l => l.trim()).filter(l => l && !l.startsWith('#'))
    .map(l => new URL(l, base).href);
}
async function playlist(url) {
  const r = await fetch(url, {credentials: 'include'});
  if (!r.ok) throw new Error('HTTP ' + r.status + ' for ' + url);
  const text = await r.text();
  return {url, status: r.status, bytes: text.length, text};
}
function segment(url, range) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('GET', url);
    x.withCredentials = true;
    x.responseType = 'arraybuffer';
    if (range) x.setRequestHeader('Range', range);
    x.onload = () => resolve({url, status: x.status,
      bytes: x.response ? x.response.byteLength : -1,
      contentRange: x.getResponseHeader('content-range'),
      cache: x.getResponseHeader('x-outpost-cache')});
    x.onerror = () => reject(new TypeError('XHR network error for ' + url));
    x.send();
  });
}
const describe = e => e.name + ': ' + e.message;
async function play() {
  const out = {origin: location.origin, playlists: [], segments: []};
  try {
    const master = await playlist(MASTER);
    const media = await playlist(uris(master.text, MASTER)[0]);
    for (const p of [master, media]) {
      out.playlists.push({url: p.url, status: p.status, bytes: p.bytes});
    }
    const segs = uris(media.text, media.url);
    for (let i = 0; i < segs.length; i++) {
      out.segments.push(await segment(segs[i], RANGES[i] || null));
    }
  } catch (e) {
    out.fetchError = describe(e);
    // A player that cannot read its playlist may still try a segment it knows: XHR too.
    try {
      out.xhr = await segment(FIRST_SEGMENT, null);
    } catch (e2) {
      out.xhrError = describe(e2);
    }
  }
  return out;
}
const show = v => { document.getElementById('result').textContent = JSON.stringify(v); };
play().then(show, e => show({error: describe(e)}));
</script></body></html>
"#
    .replace("@MASTER@", master)
    .replace("@SEGMENT@", first_segment)
    .replace("@RANGE@", RANGE)
    .replace("@SUFFIX@", SUFFIX_RANGE)
}

/// Runs headless Chromium on `url` with `profile` and returns the DOM it dumped.
fn must_dump_dom(browser: &Path, profile: &Path, url: &str) -> String {
    let out = run_within(
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=10000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(url),
        Duration::from_secs(120),
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && !dom.is_empty(),
        "chromium {url}: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// Asserts the session cookie is in the profile's cookie database (Chromium writes it there
/// when it exits), so the next run with this profile is the logged-in browser. The value is
/// stored encrypted, the name is not.
fn must_have_persisted_cookie(profile: &Path) {
    let stored = walk(profile)
        .into_iter()
        .filter(|f| f.ends_with("Cookies"))
        .any(|f| {
            std::fs::read(profile.join(f))
                .is_ok_and(|b| b.windows(15).any(|w| w == b"outpost_session"))
        });
    assert!(
        stored,
        "Chromium did not keep the session cookie in {}: {:?}",
        profile.display(),
        walk(profile)
    );
}

/// The JSON the player page wrote into `<pre id="result">`.
fn must_read_result(dom: &str) -> serde_json::Value {
    let text = dom
        .split_once("<pre id=\"result\">")
        .and_then(|(_, rest)| rest.split_once("</pre>"))
        .map(|(t, _)| t)
        .unwrap_or_else(|| panic!("no result in the page: {dom}"));
    let text = text
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("result {text:?} is not JSON: {e}"))
}

/// Access-log lines of the edge (JSON, from its log spool under `dir`).
fn access_log_lines(dir: &Path) -> Vec<serde_json::Value> {
    let mut lines = Vec::new();
    for f in walk(dir) {
        let Ok(text) = std::fs::read_to_string(dir.join(&f)) else {
            continue;
        };
        for l in text.lines() {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(l) {
                if v.get("kind").is_some_and(|k| k == "access") {
                    lines.push(v);
                }
            }
        }
    }
    lines
}

/// The edge's access-log lines of requests Chromium made with `method` for `object`.
fn browser_lines(dir: &Path, method: &str, object: &str) -> Vec<serde_json::Value> {
    access_log_lines(dir)
        .into_iter()
        .filter(|l| {
            l["method"] == method
                && l["object"] == object
                && l["user_agent"]
                    .as_str()
                    .is_some_and(|u| u.contains("HeadlessChrome"))
        })
        .collect()
}

fn header<'a>(r: &'a Response, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

/// All values of `name`, comma-joined.
fn header_all(r: &Response, name: &str) -> String {
    r.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ")
}

#[test]
fn chromium_plays_private_hls_cross_origin_with_a_session_and_other_origins_are_blocked() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    let edge = EdgeProc::start(
        dir.path(),
        "e1",
        origin.addr,
        "[log]\nflush_interval = \"100ms\"\n",
    );
    let edge_log = dir.path().join("e1-cache");
    let cdn = format!("http://{CDN_HOST}:{}", edge.addr.port());
    let page = PageServer::start(player_page(
        &format!("{cdn}/master.m3u8"),
        &format!("{cdn}/720p/seg0.ts"),
    ));
    let app_origin = format!("http://{APP_HOST}:{}", page.port());
    let other_origin = format!("http://{OTHER_HOST}:{}", page.port());

    // A private container (no `.r:*`) on the CDN's domain, readable cross-origin by the app
    // only, with credentials.
    api.must(
        "PUT",
        "/videos",
        &[
            ("x-container-meta-outpost-domains", CDN_HOST),
            ("x-container-meta-access-control-allow-origin", &app_origin),
            ("x-container-meta-access-control-allow-credentials", "true"),
            ("x-container-meta-access-control-max-age", "600"),
        ],
        vec![],
    );
    let mut files: Vec<(&str, Vec<u8>)> = vec![
        (
            "master.m3u8",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\n720p/media.m3u8\n"
                .to_vec(),
        ),
        (
            "720p/media.m3u8",
            b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:0\n\
#EXTINF:4.0,\nseg0.ts\n#EXTINF:4.0,\nseg1.ts\n#EXTINF:4.0,\nseg2.ts\n#EXT-X-ENDLIST\n"
                .to_vec(),
        ),
    ];
    // Whole TS packets of noise: the page never decodes them.
    for (i, name) in ["720p/seg0.ts", "720p/seg1.ts", "720p/seg2.ts"]
        .into_iter()
        .enumerate()
    {
        files.push((name, pseudo_random(70 + i as u64, 188 * 10 * (i + 1))));
    }
    // Never requested by the browser: for the cache check at the end.
    files.push(("720p/probe.ts", pseudo_random(99, 188 * 4)));
    for (name, body) in &files {
        let ct = if name.ends_with(".m3u8") {
            "application/vnd.apple.mpegurl"
        } else {
            "video/mp2t"
        };
        api.must(
            "PUT",
            &format!("/videos/{name}"),
            &[("content-type", ct)],
            body.clone(),
        );
    }
    let size = |name: &str| {
        files
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| b.len())
            .expect("a known file")
    };
    api.must(
        "POST",
        "",
        &[("x-account-outpost-key-k1", KEY_SECRET)],
        vec![],
    );

    // The edge learns the domain, the CORS rules and the key from the change feed.
    let client = edge.client(&[CDN_HOST]);
    let url_token = token::sign(
        &Claims::new("demo", TokenKind::Url, "/videos", now() + 300),
        &key(),
    )
    .expect("sign");
    let start = Instant::now();
    loop {
        let signed = client
            .get(format!("{cdn}/master.m3u8?op_token={url_token}"))
            .send()
            .expect("probe")
            .status();
        let preflight = client
            .request(reqwest::Method::OPTIONS, format!("{cdn}/master.m3u8"))
            .header("origin", &app_origin)
            .header("access-control-request-method", "GET")
            .send()
            .expect("probe preflight")
            .status();
        if signed == 200 && preflight == 200 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the edge never learned the container (signed GET {signed}, preflight {preflight})"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // 1. The pubcookie login: a top-level navigation on the CDN's domain (the app links the
    //    user there), landing on the container's listing, which needs the session.
    let profile = dir.path().join("chromium-profile");
    let login = format!("{cdn}/.outpost/login?grant={}&next=/", grant("browser"));
    let dom = must_dump_dom(&browser, &profile, &login);
    assert!(
        dom.contains("master.m3u8"),
        "after the login the browser could not list the private container: {dom}"
    );
    must_have_persisted_cookie(&profile);

    // 2. The app's page, same profile: plays the stream cross-origin with the cookie.
    let dom = must_dump_dom(&browser, &profile, &format!("{app_origin}/"));
    page.must_have_served(APP_HOST);
    let played = must_read_result(&dom);
    eprintln!("{APP_HOST} read: {played}");
    assert_eq!(played["origin"], app_origin.as_str());
    assert!(
        played.get("fetchError").is_none(),
        "the allowed page could not play: {played}"
    );
    let playlists = played["playlists"].as_array().expect("playlists");
    assert_eq!(playlists.len(), 2, "master and media playlist: {played}");
    for (p, name) in playlists.iter().zip(["master.m3u8", "720p/media.m3u8"]) {
        assert_eq!(p["url"], format!("{cdn}/{name}").as_str(), "{played}");
        assert_eq!(p["status"], 200, "{name}: {played}");
        assert_eq!(p["bytes"], size(name), "{name}: {played}");
    }
    let segments = played["segments"].as_array().expect("segments");
    assert_eq!(segments.len(), 3, "{played}");
    for (i, s) in segments.iter().enumerate() {
        let name = format!("720p/seg{i}.ts");
        let len = size(&name);
        assert_eq!(s["url"], format!("{cdn}/{name}").as_str(), "{played}");
        let (status, bytes, range) = match i {
            0 => (200, len, None),
            1 => (206, 1000, Some(format!("bytes 100-1099/{len}"))),
            _ => (
                206,
                1000,
                Some(format!("bytes {}-{}/{len}", len - 1000, len - 1)),
            ),
        };
        assert_eq!(s["status"], status, "{name}: {played}");
        assert_eq!(s["bytes"], bytes, "{name}: {played}");
        // Content-Range is readable only because the edge exposes it.
        assert_eq!(
            s["contentRange"].as_str(),
            range.as_deref(),
            "{name}: {played}"
        );
    }
    // Every request of the page carried the session cookie, and the suffix range was
    // preflighted at the edge.
    let objects = [
        "master.m3u8",
        "720p/media.m3u8",
        "720p/seg0.ts",
        "720p/seg1.ts",
        "720p/seg2.ts",
    ];
    must_eventually(
        "the page's requests in the edge log",
        Duration::from_secs(10),
        || {
            objects
                .iter()
                .all(|o| !browser_lines(&edge_log, "GET", o).is_empty())
                && !browser_lines(&edge_log, "OPTIONS", "720p/seg2.ts").is_empty()
        },
    );
    for o in objects {
        for l in browser_lines(&edge_log, "GET", o) {
            assert_eq!(l["auth"], "cookie", "{o} not sent with the session: {l}");
        }
    }
    let preflights = browser_lines(&edge_log, "OPTIONS", "720p/seg2.ts");
    assert_eq!(preflights.len(), 1, "{preflights:?}");
    assert_eq!(preflights[0]["status"], 200, "{preflights:?}");
    let simple_range = browser_lines(&edge_log, "OPTIONS", "720p/seg1.ts").len();
    eprintln!("preflights for the simple range: {simple_range}; for the suffix range: 1");
    let masters_before = browser_lines(&edge_log, "GET", "master.m3u8").len();

    // 3. The same page from an origin the container does not list: the browser sends the
    //    cookie (same site), the edge serves, the browser refuses the script the response.
    let dom = must_dump_dom(&browser, &profile, &format!("{other_origin}/"));
    page.must_have_served(OTHER_HOST);
    let blocked = must_read_result(&dom);
    eprintln!("{OTHER_HOST} read: {blocked}");
    assert_eq!(blocked["origin"], other_origin.as_str());
    assert!(
        blocked["playlists"].as_array().is_some_and(Vec::is_empty),
        "{blocked}"
    );
    for (what, key) in [("fetch", "fetchError"), ("XHR", "xhrError")] {
        let e = blocked[key].as_str().unwrap_or_default();
        assert!(
            e.starts_with("TypeError"),
            "{what} from a non-allowed origin was not blocked: {blocked}"
        );
    }
    must_eventually(
        "the blocked page's request in the edge log",
        Duration::from_secs(10),
        || browser_lines(&edge_log, "GET", "master.m3u8").len() > masters_before,
    );
    for l in browser_lines(&edge_log, "GET", "master.m3u8") {
        assert_eq!(l["auth"], "cookie", "{l}");
        // 304 when Chromium revalidates the copy in its HTTP cache.
        assert!(l["status"] == 200 || l["status"] == 304, "{l}");
    }

    // 4. The edge's answers, without a browser, with a session of their own.
    let r = client
        .get(format!(
            "{cdn}/.outpost/login?grant={}&next=/master.m3u8",
            grant("reqwest")
        ))
        .send()
        .expect("login");
    assert_eq!(r.status(), 302);
    let set_cookie = header(&r, "set-cookie")
        .expect("a session cookie")
        .to_owned();
    for attr in ["HttpOnly", "Secure", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attr), "{attr} missing: {set_cookie}");
    }
    let cookie = set_cookie.split(';').next().expect("name=value").to_owned();
    let get = |path: &str, origin: Option<&str>| {
        let mut rb = client
            .get(format!("{cdn}/{path}"))
            .header("cookie", &cookie);
        if let Some(o) = origin {
            rb = rb.header("origin", o);
        }
        rb.send().expect("GET")
    };
    let preflight = |origin: &str| {
        client
            .request(reqwest::Method::OPTIONS, format!("{cdn}/720p/seg2.ts"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "range")
            .send()
            .expect("preflight")
    };
    let r = preflight(&app_origin);
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(app_origin.as_str())
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert!(header_all(&r, "access-control-allow-methods").contains("GET"));
    assert!(header_all(&r, "access-control-allow-headers").contains("range"));
    assert_eq!(header(&r, "access-control-max-age"), Some("600"));
    let r = preflight(&other_origin);
    assert_eq!(r.status(), 401);
    assert_eq!(header(&r, "access-control-allow-origin"), None);

    let r = get("master.m3u8", Some(&other_origin));
    assert_eq!(
        r.status(),
        200,
        "served to a same-site page with the cookie"
    );
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(header(&r, "access-control-allow-credentials"), None);
    let r = get("master.m3u8", Some(&app_origin));
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(app_origin.as_str())
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert!(
        header_all(&r, "vary")
            .to_ascii_lowercase()
            .contains("origin"),
        "no Vary: Origin: {:?}",
        r.headers()
    );

    // One cache entry serves every origin; the CORS headers are each request's own.
    let r = get("720p/probe.ts", Some(&other_origin));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-outpost-cache"), Some("MISS"));
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert!(header_all(&r, "vary")
        .to_ascii_lowercase()
        .contains("origin"));
    let gets = origin.must_count_gets();
    let r = get("720p/probe.ts", Some(&app_origin));
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-outpost-cache"), Some("HIT"));
    assert_eq!(
        header(&r, "access-control-allow-origin"),
        Some(app_origin.as_str())
    );
    assert_eq!(header(&r, "access-control-allow-credentials"), Some("true"));
    assert!(header_all(&r, "vary")
        .to_ascii_lowercase()
        .contains("origin"));
    assert_eq!(
        r.bytes().expect("body").len(),
        size("720p/probe.ts"),
        "the cached copy"
    );
    let r = get("720p/probe.ts", None);
    assert_eq!(header(&r, "x-outpost-cache"), Some("HIT"));
    assert_eq!(header(&r, "access-control-allow-origin"), None);
    assert_eq!(
        origin.must_count_gets(),
        gets,
        "the origin was asked again for an object the edge holds"
    );
}
