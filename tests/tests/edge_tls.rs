//! HTTPS at the edge: per-domain certificates picked by SNI, HTTP/2 by ALPN.

use std::path::Path;
use std::process::Command;

use outpost_tests::cluster::{free_port, EdgeProc, OriginProc};
use outpost_tests::which;

fn self_signed(dir: &Path, name: &str) -> (String, String) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .arg("-subj")
        .arg(format!("/CN={name}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        cert.to_str().expect("utf-8").to_owned(),
        key.to_str().expect("utf-8").to_owned(),
    )
}

/// The subject CN the edge presents for an SNI name.
fn served_cn(port: u16, sni: &str) -> String {
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("subject=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no certificate for {sni}: {text}"))
}

#[test]
fn sni_picks_the_domain_certificate_and_h2_is_offered() {
    if which("openssl").is_none() || which("curl").is_none() {
        eprintln!("SKIPPED: openssl and curl are needed to make certificates and speak HTTP/2");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let (storage, auth) = origin.must_login();
    let http = reqwest::blocking::Client::new();
    for (path, headers, body) in [
        ("/public", vec![("x-container-read", ".r:*")], Vec::new()),
        ("/public/hello.txt", vec![], b"hello over tls".to_vec()),
    ] {
        let mut rb = http
            .put(format!("{storage}{path}"))
            .header("x-auth-token", &auth)
            .body(body);
        for (k, v) in headers {
            rb = rb.header(k, v);
        }
        assert!(rb.send().expect("put").status().is_success());
    }
    let (c1, k1) = self_signed(dir.path(), "img.example.test");
    let (c2, k2) = self_signed(dir.path(), "video.example.test");
    let tls_port = free_port();
    let extra = format!(
        r#"[tls]
listen = "127.0.0.1:{tls_port}"
[[tls.certs]]
domains = ["img.example.test"]
cert = "{c1}"
key = "{k1}"
[[tls.certs]]
domains = ["video.example.test", "*.demo.cdn.test"]
cert = "{c2}"
key = "{k2}"
"#
    );
    let _edge = EdgeProc::start(dir.path(), "e1", origin.addr, &extra);

    assert!(served_cn(tls_port, "img.example.test").contains("img.example.test"));
    assert!(served_cn(tls_port, "video.example.test").contains("video.example.test"));
    assert!(
        served_cn(tls_port, "public.demo.cdn.test").contains("video.example.test"),
        "wildcard"
    );
    assert!(
        served_cn(tls_port, "a.b.demo.cdn.test").contains("img.example.test"),
        "wildcards cover one label"
    );

    let host = "public.demo.cdn.test";
    let out = Command::new("curl")
        .args(["-sk", "--http2", "-w", "\n%{http_version} %{http_code}"])
        .arg("--resolve")
        .arg(format!("{host}:{tls_port}:127.0.0.1"))
        .arg(format!("https://{host}:{tls_port}/hello.txt"))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("hello over tls"), "{text}");
    assert!(
        text.trim_end().ends_with("2 200"),
        "expected HTTP/2 200: {text}"
    );
}
