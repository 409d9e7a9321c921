//! A static website in a container, behind its own domain at the edge, browsed in headless
//! Chromium: the index page, a sub-directory's index (after the redirect to its slash form),
//! the site's custom 404 page, and an HTML listing styled by the site's stylesheet. Then the
//! edge's cached web answers follow changes of the container.

use std::process::Command;
use std::time::Duration;

use outpost_tests::cluster::{must_become, EdgeProc, OriginProc};
use outpost_tests::which;

/// `*.localhost` resolves to the loopback address in Chromium.
const HOST: &str = "site.localhost";

#[test]
fn browser_reads_a_static_website_on_a_custom_domain() {
    let Some(browser) = which("chromium").or_else(|| which("chromium-browser")) else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, auth) = origin.must_login();
    let http = reqwest::blocking::Client::new();
    let must = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let mut rb = http
            .request(method.parse().expect("method"), format!("{storage}{path}"))
            .header("x-auth-token", &auth)
            .body(body.to_owned());
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("origin");
        assert!(r.status().is_success(), "{method} {path}: {}", r.status());
    };
    must(
        "PUT",
        "/site",
        &[
            ("x-container-read", ".r:*,.rlistings"),
            ("x-container-meta-web-index", "index.html"),
            ("x-container-meta-web-error", "error.html"),
            ("x-container-meta-web-listings", "true"),
            ("x-container-meta-web-listings-css", "listing.css"),
            ("x-container-meta-outpost-domains", HOST),
            ("x-container-meta-outpost-cache-control", "max-age=300"),
        ],
        "",
    );
    let html = [("content-type", "text/html")];
    must(
        "PUT",
        "/site/index.html",
        &html,
        r#"<!doctype html><html><body><h1 id="t">home page</h1><a href="/docs">docs</a></body></html>"#,
    );
    must(
        "PUT",
        "/site/docs/index.html",
        &html,
        r#"<!doctype html><html><body><h1>docs index</h1></body></html>"#,
    );
    must(
        "PUT",
        "/site/404error.html",
        &html,
        r#"<!doctype html><html><body><p>custom not found page</p></body></html>"#,
    );
    must(
        "PUT",
        "/site/files/a.txt",
        &[("content-type", "text/plain")],
        "a\n",
    );
    must(
        "PUT",
        "/site/files/b.txt",
        &[("content-type", "text/plain")],
        "b\n",
    );
    // The listing's stylesheet fetches a beacon: its fetch through the edge proves the browser
    // loaded and applied the stylesheet the listing links to.
    must(
        "PUT",
        "/site/listing.css",
        &[("content-type", "text/css")],
        "body { background-image: url(\"beacon.png\"); }\n",
    );
    must(
        "PUT",
        "/site/beacon.png",
        &[("content-type", "image/png")],
        "png",
    );

    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let port = edge.addr.port();
    let c = edge.client(&[HOST]);
    let get = |path: &str| {
        let r = c
            .get(format!("http://{HOST}:{port}{path}"))
            .send()
            .expect("edge");
        let cache = r
            .headers()
            .get("x-outpost-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (r.status().as_u16(), cache, r.text().unwrap_or_default())
    };
    must_become(
        "the edge knows the site's domain",
        Duration::from_secs(15),
        || get("/").0 == 200,
    );

    let profile = dir.path().join("chromium-profile");
    let dom = |path: &str| {
        let out = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--virtual-time-budget=5000",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("--dump-dom")
            .arg(format!("http://{HOST}:{port}{path}"))
            .output()
            .expect("run chromium");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let home = dom("/");
    assert!(home.contains("home page"), "index page: {home}");
    let docs = dom("/docs");
    assert!(
        docs.contains("docs index"),
        "sub-directory index after the redirect: {docs}"
    );
    let missing = dom("/no/such/page.html");
    assert!(
        missing.contains("custom not found page"),
        "custom 404: {missing}"
    );
    let listing = dom("/files/");
    assert!(
        listing.contains("Listing of")
            && listing.contains(">a.txt<")
            && listing.contains(">b.txt<"),
        "listing: {listing}"
    );
    assert!(
        listing.contains(r#"href="../listing.css""#),
        "listing links the stylesheet: {listing}"
    );
    let (status, cache, _) = get("/beacon.png");
    assert_eq!(
        (status, cache.as_str()),
        (200, "HIT"),
        "the browser applied the listing's stylesheet (it fetched its beacon)"
    );

    // Through the edge, as a client sees it: statuses, the relative redirect, caching.
    let no_follow = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(HOST, edge.addr)
        .build()
        .expect("client");
    let r = no_follow
        .get(format!("http://{HOST}:{port}/docs"))
        .send()
        .expect("edge");
    assert_eq!(r.status().as_u16(), 301);
    assert_eq!(
        r.headers().get("location").and_then(|v| v.to_str().ok()),
        Some("/docs/"),
        "the redirect names the client's path, not the origin's"
    );
    let (status, _, body) = get("/nothing.html");
    assert_eq!(status, 404);
    assert!(body.contains("custom not found page"), "{body}");
    let (status, cache, body) = get("/");
    assert_eq!((status, cache.as_str()), (200, "HIT"), "{body}");

    // A change of the index purges the cached web answer of its directory.
    must(
        "PUT",
        "/site/index.html",
        &html,
        "<!doctype html><html><body><h1>new home page</h1></body></html>",
    );
    must_become(
        "the edge serves the new index",
        Duration::from_secs(15),
        || get("/").2.contains("new home page"),
    );
    // A new file shows in the cached listing.
    must(
        "PUT",
        "/site/files/c.txt",
        &[("content-type", "text/plain")],
        "c\n",
    );
    must_become(
        "the listing shows the new file",
        Duration::from_secs(15),
        || get("/files/").2.contains(">c.txt<"),
    );
    // Dropping the web settings makes the container a plain one again.
    must(
        "POST",
        "/site",
        &[
            ("x-remove-container-meta-web-index", "x"),
            ("x-remove-container-meta-web-listings", "x"),
        ],
        "",
    );
    must_become(
        "the edge stops serving the site",
        Duration::from_secs(15),
        || get("/docs/").0 == 404,
    );
}
