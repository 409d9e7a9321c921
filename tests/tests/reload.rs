//! `SIGHUP` reloads of the real `outpost edge` and `outpost origin`: certificates swapped under
//! the same paths reach new handshakes while a download started before keeps going, bad files
//! are refused (the old config stays), and a log level change shows.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use md5::{Digest, Md5};
use outpost_tests::cluster::{
    free_port, must_become, must_send_sighup, EdgeProc, OriginProc, SECRET, USER_KEY,
};
use outpost_tests::which;

const DOMAIN: &str = "img.example.test";
const WAIT: Duration = Duration::from_secs(20);

/// A self-signed certificate for [`DOMAIN`] whose subject CN is `cn`, written to
/// `<dir>/<cn>.crt` and `<dir>/<cn>.key`.
fn self_signed(dir: &Path, cn: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{cn}.crt"));
    let key = dir.join(format!("{cn}.key"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .arg("-subj")
        .arg(format!("/CN={cn}"))
        .arg("-addext")
        .arg(format!("subjectAltName=DNS:{DOMAIN},DNS:*.demo.cdn.test"))
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
    (cert, key)
}

/// Puts `cn`'s certificate and key at the paths the edge is configured with, each by an
/// atomic rename (how certificate renewal tools replace files).
fn install(dir: &Path, cn: &str) {
    for ext in ["crt", "key"] {
        let tmp = dir.join(format!("site.{ext}.tmp"));
        std::fs::copy(dir.join(format!("{cn}.{ext}")), &tmp).expect("copy");
        std::fs::rename(&tmp, dir.join(format!("site.{ext}"))).expect("rename");
    }
}

/// The subject a new TLS handshake with SNI `sni` is shown.
fn served_subject(port: u16, sni: &str) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", sni])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.lines()
        .find_map(|l| l.strip_prefix("subject=").map(str::to_owned))
        .unwrap_or_default()
}

/// The value of one series in a `/metrics` text, 0 when absent.
fn metric(base: &str, series: &str) -> f64 {
    let text = reqwest::blocking::get(format!("{base}/metrics"))
        .and_then(|r| r.text())
        .expect("metrics");
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn edge_reloads(edge: &EdgeProc, result: &str) -> f64 {
    metric(
        &edge.url,
        &format!("outpost_edge_config_reloads_total{{result=\"{result}\"}}"),
    )
}

fn log_text(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An edge config with `[tls]` on `tls_port` serving `<dir>/site.crt` and `site.key`.
fn edge_config(dir: &Path, port: u16, tls_port: u16, origin: &str, top: &str) -> String {
    format!(
        r#"listen = "127.0.0.1:{port}"
edge_id = "reload"
base_domain = "cdn.test"
{top}
[origin]
address = "{origin}"
internal_secret = "{SECRET}"
[cache]
disk_dir = "{cache}"
[tls]
listen = "127.0.0.1:{tls_port}"
[[tls.certs]]
domains = ["{DOMAIN}", "*.demo.cdn.test"]
cert = "{cert}"
key = "{key}"
"#,
        cache = dir.join("edge-cache").display(),
        cert = dir.join("site.crt").display(),
        key = dir.join("site.key").display(),
    )
}

/// An origin with a public container `public` holding `objects`.
fn origin_with(dir: &Path, objects: &[(&str, &[u8])]) -> OriginProc {
    let origin = OriginProc::start(dir);
    let (storage, auth) = origin.must_login();
    let http = reqwest::blocking::Client::new();
    let put = http
        .put(format!("{storage}/public"))
        .header("x-auth-token", &auth)
        .header("x-container-read", ".r:*");
    assert!(put.send().expect("put container").status().is_success());
    for (name, body) in objects {
        let put = http
            .put(format!("{storage}/public/{name}"))
            .header("x-auth-token", &auth)
            .body(body.to_vec());
        assert!(put.send().expect("put object").status().is_success());
    }
    origin
}

fn tools_missing() -> bool {
    if which("openssl").is_none() || which("curl").is_none() || which("kill").is_none() {
        eprintln!("SKIPPED: openssl, curl and kill are needed");
        return true;
    }
    false
}

#[test]
fn a_renewed_certificate_reaches_new_handshakes_and_a_download_in_flight_completes() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    // 16 MiB read at 2 MiB/s: the download spans the reload by seconds.
    let big: Vec<u8> = (0..16u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let origin = origin_with(d, &[("big.bin", &big)]);
    self_signed(d, "cert-a");
    self_signed(d, "cert-b");
    install(d, "cert-a");
    let tls_port = free_port();
    let config = d.join("edge.toml");
    let text = edge_config(d, free_port(), tls_port, &origin.addr.to_string(), "");
    std::fs::write(&config, &text).expect("write config");
    let log = d.join("edge.log");
    let edge = EdgeProc::start_file(&config, &log);
    assert!(served_subject(tls_port, DOMAIN).contains("cert-a"));

    let host = "public.demo.cdn.test";
    let out = d.join("big.out");
    let mut curl = Command::new("curl")
        .args(["-sSk", "--http1.1", "--limit-rate", "2M", "-o"])
        .arg(&out)
        .arg("--resolve")
        .arg(format!("{host}:{tls_port}:127.0.0.1"))
        .arg(format!("https://{host}:{tls_port}/big.bin"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("run curl");
    must_become("the download has started", WAIT, || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 0)
    });

    install(d, "cert-b");
    must_send_sighup(edge.pid());
    must_become("a new handshake presents cert B", WAIT, || {
        served_subject(tls_port, DOMAIN).contains("cert-b")
    });
    assert!(
        served_subject(tls_port, "public.demo.cdn.test").contains("cert-b"),
        "the wildcard name too"
    );
    assert!(
        curl.try_wait().expect("curl status").is_none(),
        "the download must still be running after the reload, or this test proves nothing"
    );
    assert_eq!(edge_reloads(&edge, "ok"), 1.0);
    assert!(
        metric(
            &edge.url,
            "outpost_edge_config_last_reload_success_timestamp_seconds"
        ) > 0.0
    );

    let status = curl.wait().expect("curl");
    let mut err = String::new();
    if let Some(mut e) = curl.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "curl: {status} {err}");
    let got = std::fs::read(&out).expect("read download");
    assert_eq!(got.len(), big.len(), "the download completed");
    assert_eq!(Md5::digest(&got), Md5::digest(&big), "intact");
}

#[test]
fn a_bad_reload_is_refused_and_the_old_certificate_stays() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin_with(d, &[("hello.txt", b"hello")]);
    self_signed(d, "cert-a");
    self_signed(d, "cert-b");
    install(d, "cert-a");
    let tls_port = free_port();
    let config = d.join("edge.toml");
    let good = edge_config(d, free_port(), tls_port, &origin.addr.to_string(), "");
    std::fs::write(&config, &good).expect("write config");
    let log = d.join("edge.log");
    let edge = EdgeProc::start_file(&config, &log);
    let site = d.join("site.crt").display().to_string();
    let missing = d.join("missing.crt").display().to_string();
    let site_key = d.join("site.key").display().to_string();
    let other_key = d.join("cert-b.key").display().to_string();

    let bad = [
        // A syntax error.
        (good.replace("[tls]", "[tls"), "refused"),
        // A certificate that does not exist.
        (good.replace(&site, &missing), "tls.certs[0].cert"),
        // A key that does not match the certificate.
        (good.replace(&site_key, &other_key), "tls.certs[0].key"),
    ];
    for (n, (text, named)) in bad.iter().enumerate() {
        std::fs::write(&config, text).expect("write config");
        must_send_sighup(edge.pid());
        let want = (n + 1) as f64;
        must_become("the error counter rises", WAIT, || {
            edge_reloads(&edge, "error") >= want
        });
        let logged = log_text(&log);
        let line = logged
            .lines()
            .filter(|l| l.contains("refused"))
            .nth(n)
            .unwrap_or_else(|| panic!("no refusal line for reload {n}: {logged}"));
        assert!(line.contains(named), "{named} not in {line}");
    }
    let missing_line = log_text(&log);
    assert!(missing_line.contains(&missing), "the missing file is named");
    assert_eq!(edge_reloads(&edge, "ok"), 0.0);
    assert!(served_subject(tls_port, DOMAIN).contains("cert-a"));
    let r = edge
        .client(&["public.demo.cdn.test"])
        .get(format!(
            "http://public.demo.cdn.test:{}/hello.txt",
            edge.addr.port()
        ))
        .send()
        .expect("get");
    assert_eq!(r.status(), 200);

    // A key that needs a restart: applied reload, one warning naming it, old value kept.
    let moved = good.replace(&format!("127.0.0.1:{tls_port}"), "127.0.0.1:1");
    std::fs::write(&config, moved).expect("write config");
    install(d, "cert-b");
    must_send_sighup(edge.pid());
    must_become("the reload is applied", WAIT, || {
        edge_reloads(&edge, "ok") >= 1.0
    });
    let logged = log_text(&log);
    assert!(
        logged.contains(&format!(
            "tls.listen changed; needs a restart, keeping \\\"127.0.0.1:{tls_port}\\\""
        )),
        "{logged}"
    );
    assert!(served_subject(tls_port, DOMAIN).contains("cert-b"));
}

#[test]
fn a_log_level_reload_shows_info_lines() {
    if tools_missing() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let origin = origin_with(d, &[]);
    self_signed(d, "cert-a");
    install(d, "cert-a");
    let (port, tls_port) = (free_port(), free_port());
    let config = d.join("edge.toml");
    let origin_addr = origin.addr.to_string();
    let quiet = edge_config(d, port, tls_port, &origin_addr, "log_level = \"warn\"");
    std::fs::write(&config, &quiet).expect("write config");
    let log = d.join("edge.log");
    let edge = EdgeProc::start_file(&config, &log);

    must_send_sighup(edge.pid());
    must_become("the first reload is applied", WAIT, || {
        edge_reloads(&edge, "ok") >= 1.0
    });
    assert!(
        !log_text(&log).contains("reloaded config"),
        "at warn the info line is not written"
    );
    let loud = edge_config(d, port, tls_port, &origin_addr, "log_level = \"info\"");
    std::fs::write(&config, loud).expect("write config");
    must_send_sighup(edge.pid());
    must_become("the info line appears", WAIT, || {
        log_text(&log).contains("reloaded config from")
    });
    assert!(log_text(&log).contains("log level warn -> info"));
}

#[test]
fn origin_reload_refuses_a_bad_config_and_applies_a_good_one() {
    if which("kill").is_none() {
        eprintln!("SKIPPED: kill is needed");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let data = d.join("origin");
    let config = d.join("origin.toml");
    let text = |level: &str, secret: &str| {
        format!(
            "listen = \"127.0.0.1:0\"\nlog_level = \"{level}\"\ndata_dir = \"{}\"\n\
             internal_secret = \"{secret}\"\n[[auth.users]]\naccount = \"demo\"\n\
             user = \"demo\"\nkey = \"{USER_KEY}\"\n",
            data.display()
        )
    };
    std::fs::write(&config, text("warn", SECRET)).expect("write config");
    let log = d.join("origin.log");
    let origin = OriginProc::start_file(&data, &config, &log);
    let reloads = |result: &str| {
        metric(
            &origin.url,
            &format!("outpost_origin_config_reloads_total{{result=\"{result}\"}}"),
        )
    };

    std::fs::write(&config, text("info", "short")).expect("write config");
    must_send_sighup(origin.pid());
    must_become("the refusal is counted", WAIT, || reloads("error") >= 1.0);
    let logged = log_text(&log);
    assert!(
        logged.contains("refused") && logged.contains("internal_secret"),
        "{logged}"
    );
    let (_, _) = origin.must_login();

    std::fs::write(&config, text("info", SECRET)).expect("write config");
    must_send_sighup(origin.pid());
    must_become("the reload is applied", WAIT, || reloads("ok") >= 1.0);
    must_become("the success line is logged", WAIT, || {
        log_text(&log).contains("reloaded config from")
    });
    assert!(log_text(&log).contains("log level warn -> info"));
    assert!(
        metric(
            &origin.url,
            "outpost_origin_config_last_reload_success_timestamp_seconds"
        ) > 0.0
    );
    let (_, _) = origin.must_login();
}
