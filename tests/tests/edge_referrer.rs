//! Swift's referrer ACLs at the edge (`.r:.example.com`, `.r:-bad.example.com`): the edge
//! decides per request, as the origin does, before serving from its cache, and one cache
//! entry serves every allowed referrer. Requests go with curl, `Referer` exactly as written.

use std::process::Command;
use std::time::Duration;

use outpost_tests::cluster::{must_become, EdgeProc, OriginProc};
use reqwest::blocking::Client;

/// A curl answer: status and the edge's cache outcome.
#[derive(Debug, PartialEq, Eq)]
struct Got {
    status: u16,
    cache: String,
}

/// `GET` through the edge on the base domain, with `Referer: referer` if given.
fn curl(edge: &EdgeProc, path: &str, referer: Option<&str>) -> Got {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "/dev/null", "-D", "-", "-H", "Host: cdn.test"]);
    if let Some(r) = referer {
        cmd.args(["-H", &format!("Referer: {r}")]);
    }
    cmd.arg(format!("http://{}/v1/AUTH_demo{path}", edge.addr));
    let out = cmd.output().expect("run curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let cache = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("x-outpost-cache")
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_default();
    Got { status, cache }
}

fn got(status: u16, cache: &str) -> Got {
    Got {
        status,
        cache: cache.to_owned(),
    }
}

/// Swift calls as the demo user.
fn must(api: &(Client, String, String), method: &str, path: &str, acl: Option<&str>, body: &str) {
    let (http, storage, token) = api;
    let mut rb = http
        .request(method.parse().expect("method"), format!("{storage}{path}"))
        .header("x-auth-token", token)
        .body(body.to_owned());
    if let Some(acl) = acl {
        rb = rb.header("x-container-read", acl);
    }
    let r = rb.send().expect("origin request");
    assert!(r.status().is_success(), "{method} {path}: {}", r.status());
}

#[test]
fn referrer_acls_allow_and_deny_per_request_even_after_a_hit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, token) = origin.must_login();
    let api = (Client::new(), storage, token);
    must(&api, "PUT", "/domain", Some(".r:.example.com"), "");
    must(&api, "PUT", "/domain/a.txt", None, "for example.com pages");
    must(&api, "PUT", "/star", Some(".r:*,.r:-bad.example.com"), "");
    must(
        &api,
        "PUT",
        "/star/b.txt",
        None,
        "for all but bad.example.com",
    );
    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");

    // `.r:.example.com`: hosts under the domain, not the domain itself, nor no `Referer`.
    let ok = Some("http://www.example.com/page.html");
    assert_eq!(curl(&edge, "/domain/a.txt", ok), got(200, "MISS"));
    assert_eq!(curl(&edge, "/domain/a.txt", ok), got(200, "HIT"));
    let other = Some("https://img.example.com:8443/x");
    assert_eq!(curl(&edge, "/domain/a.txt", other), got(200, "HIT"));
    let bare = Some("http://example.com/");
    assert_eq!(curl(&edge, "/domain/a.txt", bare).status, 403);
    assert_eq!(curl(&edge, "/domain/a.txt", None).status, 403);
    assert_eq!(
        curl(&edge, "/domain/a.txt", Some("www.example.com")).status,
        403
    );
    // No `.rlistings`: the listing is not public to anyone.
    assert_eq!(curl(&edge, "/domain", ok).status, 403);
    // Denied requests did not split or drop the entry.
    assert_eq!(curl(&edge, "/domain/a.txt", ok), got(200, "HIT"));

    // `.r:*,.r:-bad.example.com`: everyone, with or without `Referer`, but the denied host.
    assert_eq!(curl(&edge, "/star/b.txt", None), got(200, "MISS"));
    assert_eq!(curl(&edge, "/star/b.txt", None), got(200, "HIT"));
    let bad = Some("http://bad.example.com/hotlink");
    assert_eq!(curl(&edge, "/star/b.txt", bad).status, 403);
    let bad_upper = Some("HTTP://user@BAD.Example.COM:80/");
    assert_eq!(curl(&edge, "/star/b.txt", bad_upper).status, 403);
    assert_eq!(curl(&edge, "/star/b.txt", ok), got(200, "HIT"));

    // A denial added after the hit applies to the cached answer as soon as the edge hears.
    must(
        &api,
        "POST",
        "/star",
        Some(".r:*,.r:-bad.example.com,.r:-www.example.com"),
        "",
    );
    must_become(
        "the edge to deny www.example.com",
        Duration::from_secs(15),
        || curl(&edge, "/star/b.txt", ok).status == 403,
    );
    assert_eq!(curl(&edge, "/star/b.txt", None), got(200, "HIT"));
    assert_eq!(curl(&edge, "/star/b.txt", other), got(200, "HIT"));
}
