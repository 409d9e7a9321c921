//! Let's Encrypt's test CA, pebble, on free ports for ACME tests: `pebble-challtestsrv` as its
//! DNS (every name resolves to 127.0.0.1, no AAAA), pebble validating HTTP-01 on a port the
//! test chooses (an edge's HTTP listener), its directory served with a certificate made here
//! (the Debian package ships no test certificates), no validation sleeps.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::cluster::{free_port, must_become};
use crate::which;

/// A running pebble and its DNS server; both killed on drop.
pub struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    /// The ACME directory URL.
    pub directory: String,
    /// The management API (`/roots/0`, `/intermediates/0`).
    pub management: String,
    /// PEM of the root that signs the directory's TLS certificate (the edge's `ca_root`).
    pub tls_root: PathBuf,
    /// pebble's log (stdout and stderr).
    pub log: PathBuf,
    config: PathBuf,
    dns_addr: String,
    dir: PathBuf,
}

/// True when pebble and pebble-challtestsrv are installed (`apt-get install pebble`).
pub fn available() -> bool {
    ["pebble", "pebble-challtestsrv", "openssl", "curl"]
        .iter()
        .all(|p| which(p).is_some())
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a command");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pebble {
    /// Starts pebble in `dir`: HTTP-01 validations go to `http_port` on 127.0.0.1; issued
    /// certificates are valid for `validity_secs`.
    pub fn start(dir: &Path, http_port: u16, validity_secs: u64) -> Pebble {
        std::fs::create_dir_all(dir).expect("pebble dir");
        // webpki takes no self-signed leaf as its own root: a CA, then the directory's leaf.
        let ca = dir.join("pebble-tls-ca.pem");
        let ca_key = dir.join("pebble-tls-ca.key");
        let cert = dir.join("pebble-tls.pem");
        let key = dir.join("pebble-tls.key");
        let csr = dir.join("pebble-tls.csr");
        let ext = dir.join("pebble-tls.ext");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        run(Command::new("openssl")
            .args(["req", "-x509"])
            .args(ec)
            .args(["-days", "2", "-subj", "/CN=pebble test directory CA"])
            .arg("-keyout")
            .arg(&ca_key)
            .arg("-out")
            .arg(&ca));
        run(Command::new("openssl")
            .arg("req")
            .args(ec)
            .args(["-subj", "/CN=localhost"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&csr));
        std::fs::write(
            &ext,
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .expect("extensions file");
        run(Command::new("openssl")
            .args(["x509", "-req", "-days", "2", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(&ca)
            .arg("-CAkey")
            .arg(&ca_key)
            .arg("-CAcreateserial")
            .arg("-extfile")
            .arg(&ext)
            .arg("-out")
            .arg(&cert));
        let (acme, mgmt, tls, dns, dns_mgmt) = (
            free_port(),
            free_port(),
            free_port(),
            free_port(),
            free_port(),
        );
        let dns_addr = format!("127.0.0.1:{dns}");
        let dns_child = Command::new("pebble-challtestsrv")
            .args([
                "-dns01",
                &dns_addr,
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
            ])
            .args([
                "-management",
                &format!("127.0.0.1:{dns_mgmt}"),
                "-defaultIPv6",
                "",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start pebble-challtestsrv");
        must_become(
            "pebble-challtestsrv listens",
            Duration::from_secs(20),
            || TcpStream::connect(("127.0.0.1", dns_mgmt)).is_ok(),
        );
        let config = dir.join("pebble.json");
        std::fs::write(
            &config,
            serde_json::json!({"pebble": {
                "listenAddress": format!("127.0.0.1:{acme}"),
                "managementListenAddress": format!("127.0.0.1:{mgmt}"),
                "certificate": cert,
                "privateKey": key,
                "httpPort": http_port,
                "tlsPort": tls,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": validity_secs,
            }})
            .to_string(),
        )
        .expect("write pebble config");
        let mut p = Pebble {
            pebble: None,
            dns: dns_child,
            directory: format!("https://127.0.0.1:{acme}/dir"),
            management: format!("https://127.0.0.1:{mgmt}"),
            tls_root: ca,
            log: dir.join("pebble.log"),
            config,
            dns_addr,
            dir: dir.to_path_buf(),
        };
        p.restart();
        p
    }

    /// Starts pebble again (after [`Pebble::stop`]), same ports, a new CA.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("pebble log");
        let child = Command::new("pebble")
            .arg("-config")
            .arg(&self.config)
            .args(["-dnsserver", &self.dns_addr])
            .current_dir(&self.dir)
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(Stdio::from(log.try_clone().expect("log")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start pebble");
        self.pebble = Some(child);
        must_become(
            "pebble serves its directory",
            Duration::from_secs(20),
            || self.curl(&self.directory).is_some(),
        );
    }

    /// Kills pebble (the CA is down; DNS stays).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.pebble.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// GETs `url` from pebble with curl, trusting the directory's certificate; `None` unless
    /// it answers 2xx.
    pub fn curl(&self, url: &str) -> Option<String> {
        let out = Command::new("curl")
            .args(["-sf", "--max-time", "10", "--cacert"])
            .arg(&self.tls_root)
            .arg(url)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The PEM of the CA's root (issued certificates chain to it), from the management API.
    pub fn root_pem(&self) -> String {
        self.curl(&format!("{}/roots/0", self.management))
            .expect("pebble root")
    }

    /// The CA's intermediate (it signs the leaves), from the management API.
    pub fn intermediate_pem(&self) -> String {
        self.curl(&format!("{}/intermediates/0", self.management))
            .expect("pebble intermediate")
    }

    /// pebble's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}
