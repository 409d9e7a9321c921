//! A real browser (headless Chromium) follows a pubcookie login link on a custom domain and then
//! renders a private page with a private image, all through the edge.

use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use outpost_auth::token::{self, Claims};
use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
use outpost_tests::cluster::{EdgeProc, OriginProc};
use outpost_tests::which;

const KEY_SECRET: &str = "browser-test-token-secret-0123456789";
/// `*.localhost` is a secure context in Chromium, so `Secure` cookies work over plain HTTP.
const HOST: &str = "photos.localhost";
/// A 1×1 PNG.
const PNG_B64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

fn chromium() -> Option<std::path::PathBuf> {
    which("chromium").or_else(|| which("chromium-browser"))
}

#[test]
fn browser_logs_in_and_renders_a_private_image() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, auth) = origin.must_login();
    let http = reqwest::blocking::Client::new();
    let put = |path: &str, headers: &[(&str, &str)], body: Vec<u8>| {
        let mut rb = http
            .put(format!("{storage}{path}"))
            .header("x-auth-token", &auth)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().expect("put");
        assert!(r.status().is_success(), "PUT {path}: {}", r.status());
    };
    put("/private", &[], vec![]);
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .expect("png");
    put("/private/cat.png", &[("content-type", "image/png")], png);
    let page = r#"<!doctype html><html><body><p id="p">private page</p>
<img id="cat" src="/private/cat.png" onload="document.body.setAttribute('data-img-width', this.naturalWidth)" onerror="document.body.setAttribute('data-img-error', '1')">
</body></html>"#;
    put(
        "/private/index.html",
        &[("content-type", "text/html")],
        page.as_bytes().to_vec(),
    );
    let r = http
        .post(&storage)
        .header("x-auth-token", &auth)
        .header("x-account-outpost-key-k1", KEY_SECRET)
        .header("x-account-meta-outpost-domains", HOST)
        .send()
        .expect("post account");
    assert!(r.status().is_success());

    let edge = EdgeProc::start(dir.path(), "e1", origin.addr, "");
    let port = edge.addr.port();
    // Wait until the edge knows the domain (it learns it from the change feed).
    let c = edge.client(&[HOST]);
    let start = std::time::Instant::now();
    loop {
        let s = c
            .get(format!("http://{HOST}:{port}/private/index.html"))
            .send()
            .expect("probe")
            .status();
        if s == 403 {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 15,
            "edge never learned {HOST} (last status {s})"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let key = TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key");
    let mut grant = Claims::new("demo", TokenKind::Grant, "/private", now + 60);
    grant.nonce = Some("browser-nonce".into());
    let grant = token::sign(&grant, &key).expect("sign");
    let login =
        format!("http://{HOST}:{port}/.outpost/login?grant={grant}&next=/private/index.html");

    let profile = dir.path().join("chromium-profile");
    let shot = dir.path().join("page.png");
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
    ];
    let out = Command::new(&browser)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(&login)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("private page"),
        "the private page did not load after login; DOM: {dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-img-width=\"1\""),
        "the private image did not render; DOM: {dom}"
    );

    // A fresh profile (no session cookie) sees the denial instead.
    let out = Command::new(&browser)
        .args(common)
        .arg(format!(
            "--user-data-dir={}",
            dir.path().join("fresh").display()
        ))
        .arg("--dump-dom")
        .arg(format!("http://{HOST}:{port}/private/index.html"))
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        !dom.contains("private page"),
        "served without a session: {dom}"
    );
    assert!(dom.contains("access denied"), "no denial shown: {dom}");

    // Keep a screenshot for people looking at the run.
    let _ = Command::new(&browser)
        .args(common)
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=400,200")
        .arg(format!("http://{HOST}:{port}/private/index.html"))
        .output();
    if let Ok(dest) = std::env::var("OUTPOST_SCREENSHOT") {
        let _ = std::fs::copy(&shot, dest);
    }
}
