//! Differential tests: the origin answers as OpenStack Swift 2.38 does, wherever a Swift client
//! can tell.
//!
//! Each fixture in `tests/fixtures/swift/` holds requests and the answers a real Swift
//! all-in-one gave them (recorded by `tests/swift_reference/record.py` against
//! `tests/swift_reference/run.sh`, so CI needs no Swift). Every case's setup and request are
//! replayed here against a real origin, over raw sockets so paths and headers reach it exactly
//! as written, and the answer is compared with Swift's on what the case's `compare` names:
//!
//! - the status, always;
//! - `headers`: `exact` (same value, and the name spelled as Swift spells it on the wire),
//!   `value` (same value, the name in any case), `csv-set` (the same comma-separated items
//!   in any order, the name in any case), `present`, `absent`, `http-date` (a valid HTTP
//!   date, or absent like Swift's), `url-path` (the same path, whatever the scheme and host
//!   of an absolute URL);
//! - `body`: `exact`, `json` / `xml` (equal but for `ignore_fields`, whose values only need the
//!   same type, and `drop_fields`, which Swift has and we do not), `html` (equal but for the
//!   text of the `<td class="…">` cells named in `ignore_fields`), `info` (every key we
//!   advertise in `/info` is one Swift has, constraints with Swift's values).
//!
//! Swift's account `AUTH_test` is our `AUTH_demo` (its admin `test:tester` our `demo:demo`,
//! its plain user `test:tester3` our `demo:tester3`), `AUTH_test2` our `AUTH_demo2` (admin
//! `demo2:tester2`); tempauth's reseller admin `admin:admin` is ours too. A request's `as`
//! names the user it is sent as (`tester3`, `tester2`, `reseller`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_tests::cluster::OriginProc;
use serde_json::Value;

/// An answer read off the wire, header names as sent.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<(&str, &str)> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// The users of the differential cases: (`as` name, `account:user`, key).
const USERS: [(&str, &str, &str); 3] = [
    ("tester3", "demo:tester3", "testing3"),
    ("tester2", "demo2:tester2", "testing2"),
    ("reseller", "admin:admin", "admin"),
];

/// Their `[[auth.users]]` entries (`demo:demo` is the harness's own admin).
const USERS_CONFIG: &str = r#"
[[auth.users]]
account = "demo"
user = "tester3"
key = "testing3"
admin = false

[[auth.users]]
account = "demo2"
user = "tester2"
key = "testing2"

[[auth.users]]
account = "admin"
user = "admin"
key = "admin"
reseller_admin = true
"#;

/// Tokens by `as` name (`tester` is the admin).
type Tokens = std::collections::HashMap<&'static str, String>;

fn fill(s: &str, now: u64) -> String {
    s.replace("{acct2}", "AUTH_demo2")
        .replace("{acct}", "AUTH_demo")
        .replace("{a2}", "demo2")
        .replace("{a}", "demo")
        .replace("{past}", &(now - 3600).to_string())
        .replace("{future}", &(now + 3600).to_string())
        .replace("{far_future}", &(now + 100 * 365 * 86400).to_string())
}

fn send(addr: SocketAddr, req: &Value, tokens: &Tokens, now: u64) -> Answer {
    let token = &tokens[req["as"].as_str().unwrap_or("tester")];
    let method = req["method"].as_str().unwrap_or("GET");
    let path = fill(req["path"].as_str().expect("path"), now);
    let body = fill(req["body"].as_str().unwrap_or(""), now).into_bytes();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
    if !req["anon"].as_bool().unwrap_or(false) {
        head.push_str(&format!("X-Auth-Token: {token}\r\n"));
    }
    let mut chunked = false;
    for h in req["headers"].as_array().into_iter().flatten() {
        let (k, v) = (h[0].as_str().expect("name"), h[1].as_str().expect("value"));
        chunked |= k.eq_ignore_ascii_case("transfer-encoding");
        head.push_str(&format!("{k}: {}\r\n", fill(v, now)));
    }
    let no_length = req["no_length"].as_bool().unwrap_or(false);
    if !chunked && !no_length && (!body.is_empty() || method == "PUT" || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(head.as_bytes()).expect("send head");
    let _ = s.write_all(&body);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse(&buf, method == "HEAD")
}

fn parse(buf: &[u8], head_only: bool) -> Answer {
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no answer: {:?}", String::from_utf8_lossy(buf)));
    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect();
    let mut rest = &buf[end + 4..];
    let is_chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked")
    });
    let mut body = Vec::new();
    if head_only {
        // A HEAD answer has no body, whatever its Content-Length says.
    } else if is_chunked {
        while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
            let size = String::from_utf8_lossy(&rest[..eol]);
            let n = usize::from_str_radix(size.split(';').next().unwrap_or("0").trim(), 16)
                .expect("chunk size");
            if n == 0 {
                break;
            }
            body.extend_from_slice(&rest[eol + 2..eol + 2 + n]);
            rest = &rest[eol + 4 + n..];
        }
    } else {
        body = rest.to_vec();
    }
    Answer {
        status,
        headers,
        body,
    }
}

/// What Swift answered, from the fixture.
fn swift_answer(v: &Value) -> Answer {
    Answer {
        status: u16::try_from(v["status"].as_u64().expect("status")).expect("u16"),
        headers: v["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| {
                (
                    h[0].as_str().expect("name").to_owned(),
                    ours_for_swift(h[1].as_str().unwrap_or("")),
                )
            })
            .collect(),
        body: ours_for_swift(v["body"].as_str().expect("body")).into_bytes(),
    }
}

/// Swift's account ids and user names in an answer, as ours.
fn ours_for_swift(s: &str) -> String {
    s.replace("AUTH_test", "AUTH_demo")
        .replace("test:tester3", "demo:tester3")
        .replace("test2:tester2", "demo2:tester2")
        .replace("[\"test\"]", "[\"demo\"]")
}

fn fields(case: &Value, key: &str) -> Vec<String> {
    case["compare"][key]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|f| f.as_str().map(str::to_owned))
        .collect()
}

/// Differences between our answer and Swift's on what the case compares.
fn compare(case: &Value, ours: &Answer, swift: &Answer) -> Vec<String> {
    let mut diffs = Vec::new();
    if ours.status != swift.status {
        diffs.push(format!("status {} (Swift {})", ours.status, swift.status));
    }
    let spec = &case["compare"];
    for (name, mode) in spec["headers"].as_object().into_iter().flatten() {
        let (o, s) = (ours.header(name), swift.header(name));
        let mode = mode.as_str().unwrap_or("exact");
        let ok = match (mode, o, s) {
            (_, None, None) => true,
            ("present", Some(_), Some(_)) => true,
            ("http-date", Some((on, ov)), Some((sn, _))) => {
                on == sn && httpdate::parse_http_date(ov).is_ok()
            }
            ("exact", Some(o), Some(s)) => o == s,
            ("value", Some((_, ov)), Some((_, sv))) => ov == sv,
            ("csv-set", Some((_, ov)), Some((_, sv))) => csv_set(ov) == csv_set(sv),
            ("url-path", Some((on, ov)), Some((sn, sv))) => {
                on == sn && url_path(ov) == url_path(sv)
            }
            _ => false,
        };
        if !ok {
            diffs.push(format!("header {name} ({mode}): ours {o:?}, Swift {s:?}"));
        }
    }
    let ignore = fields(case, "ignore_fields");
    let drop = fields(case, "drop_fields");
    let ob = String::from_utf8_lossy(&ours.body).into_owned();
    let sb = String::from_utf8_lossy(&swift.body).into_owned();
    let same = match spec["body"].as_str() {
        None => true,
        Some("exact") => ob == sb,
        Some("json") => match (serde_json::from_str(&ob), serde_json::from_str(&sb)) {
            (Ok(o), Ok(s)) => json_same(o, prune(s, &drop), &ignore),
            _ => false,
        },
        Some("xml") => mask_xml(&ob, &ignore, &[]) == mask_xml(&sb, &ignore, &drop),
        Some("html") => mask_cells(&ob, &ignore) == mask_cells(&sb, &ignore),
        Some("info") => match (serde_json::from_str(&ob), serde_json::from_str(&sb)) {
            (Ok(o), Ok(s)) => info_diffs(&o, &s, &mut diffs),
            _ => false,
        },
        Some(other) => panic!("unknown body mode {other}"),
    };
    if !same {
        diffs.push(format!("body: ours {ob:?}\n      Swift {sb:?}"));
    }
    diffs
}

fn prune(v: Value, drop: &[String]) -> Value {
    match v {
        Value::Array(a) => Value::Array(a.into_iter().map(|x| prune(x, drop)).collect()),
        Value::Object(mut m) => {
            m.retain(|k, _| !drop.contains(k));
            Value::Object(m)
        }
        other => other,
    }
}

fn json_same(o: Value, s: Value, ignore: &[String]) -> bool {
    match (o, s) {
        (Value::Array(o), Value::Array(s)) => {
            o.len() == s.len() && o.into_iter().zip(s).all(|(o, s)| json_same(o, s, ignore))
        }
        (Value::Object(o), Value::Object(s)) => {
            o.len() == s.len()
                && o.into_iter().all(|(k, ov)| match s.get(&k) {
                    Some(sv) if ignore.contains(&k) => {
                        std::mem::discriminant(&ov) == std::mem::discriminant(sv)
                    }
                    Some(sv) => json_same(ov, sv.clone(), ignore),
                    None => false,
                })
        }
        (o, s) => o == s,
    }
}

/// A comma-separated list as a set (Swift builds `Allow` and the CORS lists from Python
/// sets, in no fixed order).
fn csv_set(v: &str) -> std::collections::BTreeSet<&str> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// The path of a URL (`http://host:port/p` → `/p`), or the value itself if it is a path.
fn url_path(v: &str) -> &str {
    match v.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
        None => v,
    }
}

/// Replaces the text of each `<td class="C">…</td>` cell, for each class `C` in `classes`,
/// with `*` (an HTML listing's dates).
fn mask_cells(x: &str, classes: &[String]) -> String {
    let mut out = x.to_owned();
    for class in classes {
        let open = format!("<td class=\"{class}\">");
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&open) {
            let start = i + open.len();
            let Some(j) = rest[start..].find("</td>") else {
                break;
            };
            res.push_str(&rest[..start]);
            res.push('*');
            rest = &rest[start + j..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

/// Replaces the text of each `ignore` element with `*` and removes each `drop` element.
fn mask_xml(x: &str, ignore: &[String], drop: &[String]) -> String {
    let mut out = x.to_owned();
    for (tag, remove) in ignore
        .iter()
        .map(|t| (t, false))
        .chain(drop.iter().map(|t| (t, true)))
    {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut res = String::new();
        let mut rest = out.as_str();
        while let Some(i) = rest.find(&open) {
            let Some(j) = rest[i..].find(&close) else {
                break;
            };
            res.push_str(&rest[..i]);
            if !remove {
                res.push_str(&format!("{open}*{close}"));
            }
            rest = &rest[i + j + close.len()..];
        }
        res.push_str(rest);
        out = res;
    }
    out
}

/// `/info`: every section we advertise exists in Swift's (but `outpost`, ours alone), every
/// key of those sections too; Swift's constraints have Swift's values.
fn info_diffs(ours: &Value, swift: &Value, diffs: &mut Vec<String>) -> bool {
    let n = diffs.len();
    for (section, keys) in ours.as_object().expect("info object") {
        if section == "outpost" {
            continue;
        }
        let Some(theirs) = swift.get(section) else {
            diffs.push(format!("/info section {section} is not Swift's"));
            continue;
        };
        for (k, v) in keys.as_object().into_iter().flatten() {
            match theirs.get(k) {
                None => diffs.push(format!("/info {section}.{k} is not Swift's")),
                Some(sv) if std::mem::discriminant(sv) != std::mem::discriminant(v) => {
                    diffs.push(format!("/info {section}.{k}: {v} vs Swift's {sv}"));
                }
                _ => {}
            }
        }
    }
    for k in [
        "max_meta_name_length",
        "max_meta_value_length",
        "max_meta_count",
        "max_meta_overall_size",
        "max_object_name_length",
        "container_listing_limit",
        "account_listing_limit",
        "max_account_name_length",
        "max_container_name_length",
    ] {
        if ours["swift"][k] != swift["swift"][k] {
            diffs.push(format!(
                "/info swift.{k}: {} vs Swift's {}",
                ours["swift"][k], swift["swift"][k]
            ));
        }
    }
    diffs.len() == n
}

/// Replays one fixture against a fresh origin; panics with every difference found.
fn must_match_swift(fixture: &str) {
    let path = format!(
        "{}/fixtures/swift/{fixture}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let spec: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start_with(dir.path(), USERS_CONFIG, None);
    let mut tokens = Tokens::new();
    tokens.insert("tester", origin.must_login().1);
    for (name, user, key) in USERS {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/auth/v1.0", origin.url))
            .header("x-auth-user", user)
            .header("x-auth-key", key)
            .send()
            .expect("auth request");
        assert_eq!(r.status(), 200, "auth of {user}");
        tokens.insert(
            name,
            r.headers()["x-auth-token"]
                .to_str()
                .expect("ascii")
                .to_owned(),
        );
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut failures = Vec::new();
    for case in spec["cases"].as_array().expect("cases") {
        let name = case["name"].as_str().expect("name");
        for step in case["setup"].as_array().into_iter().flatten() {
            let got = send(origin.addr, step, &tokens, now);
            if got.status >= 300 {
                failures.push(format!(
                    "{name}: setup {} {} got {}: {}",
                    step["method"],
                    step["path"],
                    got.status,
                    String::from_utf8_lossy(&got.body)
                ));
            }
        }
        let ours = send(origin.addr, &case["request"], &tokens, now);
        let swift = swift_answer(&case["response"]);
        for d in compare(case, &ours, &swift) {
            failures.push(format!("{name}: {d}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{fixture}: {} differences from Swift:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn etags_as_swift() {
    must_match_swift("etag");
}

#[test]
fn container_and_account_answers_as_swift() {
    must_match_swift("listing");
}

#[test]
fn names_as_swift() {
    must_match_swift("names");
}

#[test]
fn error_answers_as_swift() {
    must_match_swift("errors");
}

#[test]
fn metadata_as_swift() {
    must_match_swift("metadata");
}

#[test]
fn object_headers_as_swift() {
    must_match_swift("object_headers");
}

#[test]
fn static_websites_as_swift() {
    must_match_swift("staticweb");
}

#[test]
fn static_websites_with_account_acls_as_swift() {
    must_match_swift("staticweb_acl");
}

#[test]
fn container_acls_as_swift() {
    must_match_swift("acl");
}

#[test]
fn account_acls_as_swift() {
    must_match_swift("account_acl");
}

#[test]
fn copies_across_accounts_as_swift() {
    must_match_swift("copy");
}

#[test]
fn dynamic_large_objects_as_swift() {
    must_match_swift("dlo");
}

#[test]
fn cors_as_swift() {
    must_match_swift("cors");
}

#[test]
fn quotas_as_swift() {
    must_match_swift("quota");
}

#[test]
fn info_as_swift() {
    must_match_swift("info");
}

/// A name holding a literal `%2F` (sent as `%252F`) is one segment: an Outpost token scope
/// `/private/a%2Fb` covers exactly it, `/private/a` covers the object `a/b` and never it; a
/// Swift tempurl signs the decoded name (docs/tokens.md, "Names with literal escapes").
#[test]
fn literal_percent_names_through_scopes_and_tempurls() {
    use outpost_auth::tempurl::{self, Digest, TempUrlSpec};
    use outpost_auth::token::{self, Claims};
    use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
    use outpost_tests::cluster::EdgeProc;

    const KEY: &str = "fidelity-token-secret-0123456789";
    const HOST: &str = "private.demo.cdn.test";
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, auth) = origin.must_login();
    let http = reqwest::blocking::Client::new();
    let must = |method: &str, path: &str, headers: &[(&str, &str)], body: &'static [u8]| {
        let mut rb = http
            .request(method.parse().expect("method"), format!("{storage}{path}"))
            .header("x-auth-token", &auth)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("origin");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    };
    must("PUT", "/private", &[], b"");
    must(
        "POST",
        "",
        &[
            ("x-account-outpost-key-k1", KEY),
            ("x-account-meta-temp-url-key", "tempurl-key"),
        ],
        b"",
    );
    must("PUT", "/private/a%252Fb", &[], b"literal");
    must("PUT", "/private/a/b", &[], b"nested");

    let key = TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY),
        not_before: None,
        not_after: None,
    })
    .expect("key");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let url_token = |scope: &str| {
        token::sign(&Claims::new("demo", TokenKind::Url, scope, now + 60), &key).expect("sign")
    };
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let c = edge.client(&[HOST]);
    let get = |path: &str, t: &str| {
        let r = c
            .get(format!(
                "http://{HOST}:{}{path}?op_token={t}",
                edge.addr.port()
            ))
            .send()
            .expect("edge");
        let code = r.status().as_u16();
        (code, r.text().unwrap_or_default())
    };
    let literal = url_token("/private/a%2Fb");
    assert_eq!(get("/a%252Fb", &literal), (200, "literal".to_owned()));
    assert_eq!(get("/a/b", &literal).0, 403, "a literal %2F is not a slash");
    let dir_scope = url_token("/private/a");
    assert_eq!(get("/a/b", &dir_scope), (200, "nested".to_owned()));
    assert_eq!(
        get("/a%252Fb", &dir_scope).0,
        403,
        "/private/a covers what is below a/, not the name a%2Fb"
    );
    let glob = url_token("/private/*");
    assert_eq!(get("/a%252Fb", &glob).0, 200, "one segment for *");
    assert_eq!(get("/a/b", &glob).0, 403, "a/b is two segments");

    // A Swift tempurl signs the decoded path; the URL carries it encoded once more.
    let signed = tempurl::sign(
        &TempUrlSpec {
            method: "GET",
            path: "/v1/AUTH_demo/private/a%2Fb",
            expires: now + 60,
            prefix: false,
            ip_range: None,
            iso8601: false,
            digest: Digest::Sha256,
        },
        b"tempurl-key",
    )
    .expect("tempurl");
    let query = signed.split_once('?').expect("query").1;
    let anon = |path: &str| {
        let r = reqwest::blocking::get(format!("{}{path}?{query}", origin.url)).expect("get");
        (r.status().as_u16(), r.text().unwrap_or_default())
    };
    assert_eq!(
        anon("/v1/AUTH_demo/private/a%252Fb"),
        (200, "literal".to_owned())
    );
    assert_eq!(anon("/v1/AUTH_demo/private/a/b").0, 401);
}

/// The staticweb redirect is absolute on `public_url`'s scheme and host (Swift's
/// `url_base`), its path dropped; without it, on plain HTTP and the request's `Host`, the
/// default port left out (swob's `host_url`). `X-Forwarded-Proto` changes nothing, as in
/// Swift.
#[test]
fn staticweb_redirect_follows_public_url_scheme() {
    use outpost_tests::cluster::{SECRET, USER_KEY};
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("origin");
    let config = dir.path().join("origin.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\npublic_url = \"https://www.example.com/ignored\"\ninternal_secret = \"{SECRET}\"\n[[auth.users]]\naccount = \"demo\"\nuser = \"demo\"\nkey = \"{USER_KEY}\"\n",
            data.display()
        ),
    )
    .expect("config");
    let origin = OriginProc::start_file(&data, &config, &dir.path().join("origin.log"));
    let (_, token) = origin.must_login();
    let storage = format!("{}/v1/AUTH_demo", origin.url);
    let http = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let r = http
        .put(format!("{storage}/site"))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*,.rlistings")
        .header("x-container-meta-web-index", "index.html")
        .send()
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    let r = http
        .get(format!("{}/v1/AUTH_demo/site", origin.url))
        .header("x-forwarded-proto", "http")
        .send()
        .expect("get");
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        "https://www.example.com/v1/AUTH_demo/site/"
    );
}
