//! Automatic HTTPS for custom domains against a real ACME CA (pebble, Let's Encrypt's test
//! server) with a real origin and two edges: a newly mapped domain gets a pebble-issued
//! certificate on both edges, an unmapped Host never causes an order, renewal (forced by a
//! short validity) replaces the certificate on both edges while a slow download goes on, and
//! with the CA down the status shows the error, retries back off and the old certificate keeps
//! serving. The private key appears in no log, listing, metric or response.
//!
//! pebble validates HTTP-01 at the *second* edge's HTTP port, whichever edge ordered: the
//! answer must travel through the origin.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use outpost_tests::cluster::{free_port, must_become, EdgeProc, OriginProc, SECRET, USER_KEY};
use outpost_tests::pebble::{self, Pebble};

const DOMAIN: &str = "img.acme.test";
const UNMAPPED: &str = "unmapped.acme.test";
/// Issued certificates live this long: renewal (at 2/3) comes 20 s after issuance.
const VALIDITY_SECS: u64 = 30;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

struct Site {
    dir: tempfile::TempDir,
    origin: OriginProc,
    storage: String,
    auth: String,
    edges: Vec<(EdgeProc, u16, PathBuf)>,
    pebble: Pebble,
}

fn origin(dir: &Path) -> OriginProc {
    let config = dir.join("origin.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = \"{}\"\nlog_level = \"info\"\ninternal_secret = \"{SECRET}\"\n[[auth.users]]\naccount = \"demo\"\nuser = \"demo\"\nkey = \"{USER_KEY}\"\n",
            dir.join("origin").display()
        ),
    )
    .expect("origin config");
    OriginProc::start_file(&dir.join("origin"), &config, &dir.join("origin.log"))
}

fn edge(
    site_dir: &Path,
    name: &str,
    port: u16,
    origin: &OriginProc,
    p: &Pebble,
) -> (EdgeProc, u16, PathBuf) {
    let tls = free_port();
    let config = site_dir.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
edge_id = "{name}"
base_domain = "cdn.test"
log_level = "info"
[origin]
address = "{}"
internal_secret = "{SECRET}"
[cache]
disk_dir = "{}"
[tls]
listen = "127.0.0.1:{tls}"
[acme]
directory = "{}"
contact = "ops@acme.test"
ca_root = "{}"
check_interval = "200ms"
retry_min = "1s"
retry_max = "4s"
lease_ttl = "30s"
order_timeout = "20s"
"#,
            origin.addr,
            site_dir.join(format!("{name}-cache")).display(),
            p.directory,
            p.tls_root.display(),
        ),
    )
    .expect("edge config");
    let log = site_dir.join(format!("{name}.log"));
    (EdgeProc::start_file(&config, &log), tls, log)
}

/// Origin with a public container `pics` (a small and a 4 MiB object), pebble validating at
/// the second edge, two edges with `[acme]`.
fn site() -> Option<Site> {
    if !pebble::available() {
        eprintln!("SKIPPED: pebble, pebble-challtestsrv, openssl and curl are needed (apt-get install pebble)");
        return None;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = origin(dir.path());
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
    put("/pics", &[("x-container-read", ".r:*")], Vec::new());
    put("/pics/hello.txt", &[], b"hello over acme".to_vec());
    put("/pics/big.bin", &[], vec![7u8; 4 << 20]);
    let second_port = free_port();
    let pebble = Pebble::start(&dir.path().join("pebble"), second_port, VALIDITY_SECS);
    let e1 = edge(dir.path(), "e1", free_port(), &origin, &pebble);
    let e2 = edge(dir.path(), "e2", second_port, &origin, &pebble);
    Some(Site {
        dir,
        origin,
        storage,
        auth,
        edges: vec![e1, e2],
        pebble,
    })
}

/// An edge's `/.outpost/certs` status.
fn status(edge: &EdgeProc) -> serde_json::Value {
    reqwest::blocking::Client::new()
        .get(format!("{}/.outpost/certs", edge.url))
        .header("x-outpost-internal", SECRET)
        .send()
        .and_then(reqwest::blocking::Response::text)
        .map(|t| serde_json::from_str(&t).expect("status json"))
        .expect("status")
}

fn domain_status(edge: &EdgeProc, d: &str) -> serde_json::Value {
    status(edge)["domains"][d].clone()
}

/// `(issuer, serial)` of the certificate an edge's HTTPS port presents for `sni`.
fn served(tls_port: u16, sni: &str) -> Option<(String, String)> {
    let s = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{tls_port}"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    let out = s.wait_with_output().expect("s_client output");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let begin = text.find("-----BEGIN CERTIFICATE-----")?;
    let end = text.find("-----END CERTIFICATE-----")? + "-----END CERTIFICATE-----".len();
    let mut x = Command::new("openssl")
        .args(["x509", "-noout", "-issuer", "-serial"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl x509");
    use std::io::Write as _;
    x.stdin
        .take()
        .expect("stdin")
        .write_all(&text.as_bytes()[begin..end])
        .expect("write pem");
    let info = String::from_utf8_lossy(&x.wait_with_output().expect("x509").stdout).to_string();
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
    };
    Some((field("issuer=")?, field("serial=")?))
}

/// Maps `DOMAIN` to the `pics` container and waits until both edges serve a pebble
/// certificate for it.
fn map_and_wait(site: &Site) {
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/pics", site.storage))
        .header("x-auth-token", &site.auth)
        .header("x-container-meta-outpost-domains", DOMAIN)
        .send()
        .expect("map the domain");
    assert!(r.status().is_success());
    for (e, tls, log) in &site.edges {
        let start = std::time::Instant::now();
        while !(domain_status(e, DOMAIN)["state"] == "valid"
            && served(*tls, DOMAIN).is_some_and(|(issuer, _)| issuer.contains("Pebble")))
        {
            if start.elapsed() > Duration::from_secs(90) {
                panic!(
                    "not within 90s: both edges serve a pebble certificate\nstatus: {}\nedge log: {}\npebble log: {}",
                    status(e),
                    std::fs::read_to_string(log).unwrap_or_default(),
                    site.pebble.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn acme_issues_shares_renews_and_survives_the_ca_going_down() {
    let Some(mut site) = site() else { return };
    let (e1, tls1, _) = &site.edges[0];
    let (e2, tls2, _) = &site.edges[1];

    // An unmapped Host is just an unknown host.
    let r = e1
        .client(&[UNMAPPED])
        .get(format!("http://{UNMAPPED}:{}/hello.txt", e1.addr.port()))
        .send()
        .expect("unmapped");
    assert_eq!(r.status(), 404);

    let mapped_at = std::time::Instant::now();
    map_and_wait(&site);
    eprintln!(
        "both edges serve {DOMAIN} {:?} after mapping",
        mapped_at.elapsed()
    );
    let s1 = domain_status(e1, DOMAIN);
    let s2 = domain_status(e2, DOMAIN);
    assert_eq!(
        s1["not_after"], s2["not_after"],
        "one certificate for both edges"
    );
    assert!(
        s1["issuer"].as_str().is_some_and(|i| i.contains("Pebble")),
        "{s1}"
    );
    let orders = s1["orders"].as_u64().unwrap_or(0) + s2["orders"].as_u64().unwrap_or(0);
    assert_eq!(orders, 1, "one edge ordered: {s1} {s2}");

    // A client trusting pebble's root gets the object over HTTPS from either edge.
    let root = site.dir.path().join("pebble-root.pem");
    std::fs::write(&root, site.pebble.root_pem()).expect("root");
    for tls in [tls1, tls2] {
        let out = Command::new("curl")
            .args(["-sS", "--cacert"])
            .arg(&root)
            .arg("--resolve")
            .arg(format!("{DOMAIN}:{tls}:127.0.0.1"))
            .arg(format!("https://{DOMAIN}:{tls}/hello.txt"))
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "hello over acme",
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // Renewal replaces the certificate on both edges; a slow download started before it
    // goes on to the end.
    let (_, serial_before) = served(*tls1, DOMAIN).expect("served");
    let issued_before = s1["issued_at"].as_u64().expect("issued_at");
    let slow = Command::new("curl")
        .args([
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{size_download}",
            "--limit-rate",
            "160k",
        ])
        .arg("--cacert")
        .arg(&root)
        .arg("--resolve")
        .arg(format!("{DOMAIN}:{tls1}:127.0.0.1"))
        .arg(format!("https://{DOMAIN}:{tls1}/big.bin"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("slow download");
    for (e, tls, _) in &site.edges {
        must_become("renewed on both edges", Duration::from_secs(60), || {
            domain_status(e, DOMAIN)["issued_at"]
                .as_u64()
                .is_some_and(|t| t > issued_before)
                && served(*tls, DOMAIN).is_some_and(|(_, serial)| serial != serial_before)
        });
    }
    let out = slow.wait_with_output().expect("slow download ends");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        (4u64 << 20).to_string()
    );

    // The unmapped Host never reached the CA, and no edge knows of it.
    for (e, _, _) in &site.edges {
        assert!(status(e)["domains"].get(UNMAPPED).is_none());
    }
    assert!(
        !site.pebble.log_text().contains(UNMAPPED),
        "an order for an unmapped host"
    );

    // The CA goes down: the next renewal fails with a clear status, retries back off, the
    // old certificate keeps serving.
    let (_, serial_last) = served(*tls1, DOMAIN).expect("served");
    site.pebble.stop();
    let (e1, tls1, _) = &site.edges[0];
    must_become(
        "a failed renewal with backoff",
        Duration::from_secs(60),
        || {
            site.edges.iter().any(|(e, _, _)| {
                let s = domain_status(e, DOMAIN);
                s["failures"].as_u64().unwrap_or(0) >= 2
                    && s["last_error"].as_str().is_some_and(|m| !m.is_empty())
                    && s["retry_at"].as_u64().is_some_and(|t| t > now())
            })
        },
    );
    let failing: Vec<serde_json::Value> = site
        .edges
        .iter()
        .map(|(e, _, _)| domain_status(e, DOMAIN))
        .collect();
    eprintln!("status with the CA down: {failing:?}");
    assert!(
        served(*tls1, DOMAIN).is_some_and(|(_, s)| s == serial_last),
        "the old certificate is still served"
    );
    let metrics = reqwest::blocking::get(format!("{}/metrics", e1.url))
        .and_then(reqwest::blocking::Response::text)
        .expect("metrics");
    assert!(
        metrics.contains("outpost_edge_certs{state=\"failing\"}"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "outpost_edge_cert_expiry_days{{domain=\"{DOMAIN}\"}}"
    )));

    must_keep_keys_secret(&site);
}

/// The stored key's body appears nowhere but in the origin's record.
fn must_keep_keys_secret(site: &Site) {
    let record: serde_json::Value = reqwest::blocking::Client::new()
        .get(format!("{}/internal/certs/{DOMAIN}", site.origin.url))
        .header("x-outpost-internal", SECRET)
        .send()
        .and_then(reqwest::blocking::Response::text)
        .map(|t| serde_json::from_str(&t).expect("record json"))
        .expect("cert record");
    let key = record["key_pem"].as_str().expect("key_pem").to_owned();
    let body_line = key
        .lines()
        .find(|l| !l.starts_with("-----") && l.len() > 20)
        .expect("a key line")
        .to_owned();
    let anonymous = reqwest::blocking::get(format!("{}/internal/certs/{DOMAIN}", site.origin.url))
        .expect("anonymous");
    assert_eq!(anonymous.status(), 401);
    let mut texts = vec![
        ("pebble log", site.pebble.log_text()),
        (
            "origin log",
            std::fs::read_to_string(site.dir.path().join("origin.log")).unwrap_or_default(),
        ),
    ];
    let listing = reqwest::blocking::Client::new()
        .get(format!("{}?format=json", site.storage))
        .header("x-auth-token", &site.auth)
        .send()
        .and_then(reqwest::blocking::Response::text)
        .expect("account listing");
    texts.push(("account listing", listing));
    for (e, _, log) in &site.edges {
        texts.push(("edge log", std::fs::read_to_string(log).unwrap_or_default()));
        texts.push(("edge status", status(e).to_string()));
        texts.push((
            "edge metrics",
            reqwest::blocking::get(format!("{}/metrics", e.url))
                .and_then(reqwest::blocking::Response::text)
                .unwrap_or_default(),
        ));
        let via_edge = e
            .client(&[DOMAIN])
            .get(format!(
                "http://{DOMAIN}:{}/internal/certs/{DOMAIN}",
                e.addr.port()
            ))
            .send()
            .and_then(reqwest::blocking::Response::text)
            .unwrap_or_default();
        texts.push(("edge response", via_edge));
    }
    let changes = reqwest::blocking::Client::new()
        .get(format!("{}/internal/changes?since=0", site.origin.url))
        .header("x-outpost-internal", SECRET)
        .send()
        .and_then(reqwest::blocking::Response::text)
        .expect("feed");
    assert!(changes.contains("cert-put"), "{changes}");
    texts.push(("feed", changes));
    for (what, text) in texts {
        assert!(
            !text.contains(&body_line),
            "the private key is in the {what}"
        );
        assert!(
            !text.contains("PRIVATE KEY"),
            "a private key is in the {what}"
        );
    }
}

/// base64(SHA-256(SPKI)) of the first certificate in `pem`: what Chromium's
/// `--ignore-certificate-errors-spki-list` takes.
fn spki_hash(dir: &Path, name: &str, pem: &str) -> String {
    let file = dir.join(format!("{name}.pem"));
    std::fs::write(&file, pem).expect("pem file");
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl x509 -in '{}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64",
            file.display()
        ))
        .output()
        .expect("spki hash");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The PEM of the leaf an edge serves for `sni`.
fn served_pem(tls_port: u16, sni: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{tls_port}"),
            "-servername",
            sni,
        ])
        .stdin(Stdio::null())
        .output()
        .expect("s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let begin = text
        .find("-----BEGIN CERTIFICATE-----")
        .expect("a certificate");
    let end = text.find("-----END CERTIFICATE-----").expect("end") + 25;
    text[begin..end].to_owned()
}

#[test]
fn chromium_loads_a_private_image_over_acme_https_after_a_pubcookie_login() {
    use base64::Engine as _;
    use outpost_auth::token::{self, Claims};
    use outpost_auth::{Secret, TokenKey, TokenKeySpec, TokenKind};
    let Some(browser) =
        outpost_tests::which("chromium").or_else(|| outpost_tests::which("chromium-browser"))
    else {
        eprintln!("SKIPPED: chromium is not installed (apt-get install chromium)");
        return;
    };
    let Some(site) = site() else { return };
    const HOST: &str = "photos.acme.test";
    const KEY_SECRET: &str = "acme-browser-token-secret-0123456789";
    const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";
    let http = reqwest::blocking::Client::new();
    let put = |path: &str, ct: &str, body: Vec<u8>| {
        let r = http
            .put(format!("{}{path}", site.storage))
            .header("x-auth-token", &site.auth)
            .header("content-type", ct)
            .body(body)
            .send()
            .expect("put");
        assert!(r.status().is_success(), "PUT {path}");
    };
    put("/private", "text/plain", Vec::new());
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .expect("png");
    put("/private/cat.png", "image/png", png);
    let page = r#"<!doctype html><html><body><p id="p">private page</p>
<img id="cat" src="/private/cat.png" onload="document.body.setAttribute('data-img-width', this.naturalWidth)" onerror="document.body.setAttribute('data-img-error', '1')">
</body></html>"#;
    put("/private/index.html", "text/html", page.as_bytes().to_vec());
    let r = http
        .post(&site.storage)
        .header("x-auth-token", &site.auth)
        .header("x-account-outpost-key-k1", KEY_SECRET)
        .header("x-account-meta-outpost-domains", HOST)
        .send()
        .expect("map the account");
    assert!(r.status().is_success());
    let (_, tls1, _) = &site.edges[0];
    must_become(
        "the edge serves a pebble certificate",
        Duration::from_secs(90),
        || served(*tls1, HOST).is_some_and(|(issuer, _)| issuer.contains("Pebble")),
    );

    // Chromium trusts pebble for this profile only: the SPKI hashes of pebble's root and
    // intermediate and of the served leaf (renewals keep the intermediate).
    let hashes = [
        spki_hash(site.dir.path(), "root", &site.pebble.root_pem()),
        spki_hash(
            site.dir.path(),
            "intermediate",
            &site.pebble.intermediate_pem(),
        ),
        spki_hash(site.dir.path(), "leaf", &served_pem(*tls1, HOST)),
    ]
    .join(",");
    let key = TokenKey::new(TokenKeySpec {
        id: "k1".into(),
        secret: Secret::new(KEY_SECRET),
        not_before: None,
        not_after: None,
    })
    .expect("key");
    let mut grant = Claims::new("demo", TokenKind::Grant, "/private", now() + 60);
    grant.nonce = Some("acme-browser-nonce".into());
    let grant = token::sign(&grant, &key).expect("sign");
    let login =
        format!("https://{HOST}:{tls1}/.outpost/login?grant={grant}&next=/private/index.html");
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
        .arg(format!(
            "--user-data-dir={}",
            site.dir.path().join("chromium").display()
        ))
        .arg(format!("--host-resolver-rules=MAP {HOST} 127.0.0.1"))
        .arg(format!("--ignore-certificate-errors-spki-list={hashes}"))
        .arg("--dump-dom")
        .arg(&login)
        .output()
        .expect("run chromium");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("private page"),
        "the private page did not load over HTTPS after login; DOM: {dom}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        dom.contains("data-img-width=\"1\""),
        "the private image did not render: {dom}"
    );
}

/// `curl -sI` over HTTPS to an edge, trusting `root`; the response head.
fn https_head(root: &Path, tls: u16, host: &str, path: &str) -> String {
    let out = Command::new("curl")
        .args(["-sS", "-D", "-", "-o", "/dev/null", "--cacert"])
        .arg(root)
        .arg("--resolve")
        .arg(format!("{host}:{tls}:127.0.0.1"))
        .arg(format!("https://{host}:{tls}{path}"))
        .output()
        .expect("curl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_ascii_lowercase()
}

#[test]
fn https_redirect_and_hsts_are_opt_in_per_domain() {
    let Some(site) = site() else { return };
    const PLAIN: &str = "plain.acme.test";
    let http = reqwest::blocking::Client::new();
    let r = http
        .put(format!("{}/plain", site.storage))
        .header("x-auth-token", &site.auth)
        .header("x-container-read", ".r:*")
        .header("x-container-meta-outpost-domains", PLAIN)
        .send()
        .expect("plain container");
    assert!(r.status().is_success());
    let r = http
        .put(format!("{}/plain/hello.txt", site.storage))
        .header("x-auth-token", &site.auth)
        .body("plain hello")
        .send()
        .expect("plain object");
    assert!(r.status().is_success());
    let r = http
        .post(format!("{}/pics", site.storage))
        .header("x-auth-token", &site.auth)
        .header("x-container-meta-outpost-https-redirect", "true")
        .header("x-container-meta-outpost-hsts", "600")
        .send()
        .expect("opt in");
    assert!(r.status().is_success());
    map_and_wait(&site);
    let (e1, tls1, _) = &site.edges[0];
    must_become(
        "the plain domain has its certificate",
        Duration::from_secs(90),
        || served(*tls1, PLAIN).is_some_and(|(issuer, _)| issuer.contains("Pebble")),
    );
    let root = site.dir.path().join("pebble-root.pem");
    std::fs::write(&root, site.pebble.root_pem()).expect("root");

    // The opted-in domain: plain HTTP is redirected (ACME challenges excepted), HTTPS answers
    // carry HSTS on a miss and on the hits after it.
    let c = e1.client(&[DOMAIN, PLAIN]);
    let port = e1.addr.port();
    let r = c
        .get(format!("http://{DOMAIN}:{port}/hello.txt?a=1"))
        .send()
        .expect("plain http");
    assert_eq!(r.status(), 301);
    assert_eq!(
        r.headers()["location"],
        format!("https://{DOMAIN}:{tls1}/hello.txt?a=1").as_str()
    );
    let r = c
        .get(format!(
            "http://{DOMAIN}:{port}/.well-known/acme-challenge/unknown-token"
        ))
        .send()
        .expect("challenge path");
    assert_eq!(r.status(), 404, "challenges are answered over plain HTTP");
    for _ in 0..3 {
        let head = https_head(&root, *tls1, DOMAIN, "/hello.txt");
        assert!(head.starts_with("http/"), "{head}");
        assert!(
            head.contains("strict-transport-security: max-age=600"),
            "{head}"
        );
    }

    // The other domain opted into nothing.
    let r = c
        .get(format!("http://{PLAIN}:{port}/hello.txt"))
        .send()
        .expect("plain domain");
    assert_eq!(r.status(), 200);
    let head = https_head(&root, *tls1, PLAIN, "/hello.txt");
    assert!(!head.contains("strict-transport-security"), "{head}");
}
