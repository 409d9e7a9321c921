//! The cluster harness: real `outpost origin` and `outpost edge` processes on free ports with
//! temp dirs, killed by PID when dropped. Readiness is polled (`/healthz`), never slept for.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::outpost_bin;

/// The internal secret every harness origin and edge share (the legacy single secret); in a
/// [`crate::ring_cluster::RingCluster`], the nodes' `[credentials] peer` secret.
pub const SECRET: &str = "harness-internal-secret-0123456789";
/// `[credentials] edge` of ring clusters: what their edges hold.
pub const EDGE_SECRET: &str = "harness-edge-secret-0123456789";
/// `[credentials] admin` of ring clusters.
pub const ADMIN_SECRET: &str = "harness-admin-secret-0123456789";
/// The demo user of harness origins: `demo:demo` with this key.
pub const USER_KEY: &str = "demo-key";

/// A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at
/// once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

// The child is returned to OriginProc/EdgeProc, whose Drop kills and waits for it.
#[allow(clippy::zombie_processes)]
fn spawn_and_wait(
    args: &[&str],
    banner: &str,
    log: Option<&Path>,
    log_env: LogEnv,
) -> (Child, String) {
    let stderr = match log {
        Some(p) => Stdio::from(std::fs::File::create(p).expect("create the log file")),
        None => Stdio::inherit(),
    };
    let mut cmd = Command::new(outpost_bin());
    match log_env {
        LogEnv::Harness => cmd.env(
            "OUTPOST_LOG",
            std::env::var("OUTPOST_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        ),
        LogEnv::Unset => cmd.env_remove("OUTPOST_LOG"),
    };
    let mut child = cmd
        .args(args)
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn outpost");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        let n = reader.read_line(&mut line).unwrap_or(0);
        if n == 0 {
            let status = child.wait();
            panic!("outpost {args:?} exited ({status:?}) before printing {banner:?}");
        }
        if let Some(url) = line.trim().strip_prefix(banner) {
            let url = url.trim().to_owned();
            // Keep draining stdout so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                    sink.clear();
                }
            });
            return (child, url);
        }
    }
}

/// How a harness process gets its log filter.
#[derive(Debug, Clone, Copy)]
enum LogEnv {
    /// `OUTPOST_LOG` = `$OUTPOST_TEST_LOG` or `warn`.
    Harness,
    /// No `OUTPOST_LOG`: the config's `log_level` decides (and a reload can change it).
    Unset,
}

/// Starts `outpost <role> --config <config>`, waits for its banner and `/healthz`. Its
/// stderr (the JSON log) goes to `log` if given, else to the test's.
fn launch(role: &str, config: &Path, log: Option<&Path>) -> (Child, String, SocketAddr) {
    launch_with(role, config, log, LogEnv::Harness)
}

fn launch_with(
    role: &str,
    config: &Path,
    log: Option<&Path>,
    log_env: LogEnv,
) -> (Child, String, SocketAddr) {
    let cfg = config.to_str().expect("utf-8 path");
    let banner = format!("outpost {role} listening on");
    let (child, url) = spawn_and_wait(&[role, "--config", cfg], &banner, log, log_env);
    must_become_healthy(&format!("{url}/healthz"), Duration::from_secs(20));
    let addr = url
        .trim_start_matches("http://")
        .parse()
        .expect("listen address");
    (child, url, addr)
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Polls `url` until it answers 200 or `timeout` passes.
pub fn must_become_healthy(url: &str, timeout: Duration) {
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let start = Instant::now();
    loop {
        if let Ok(r) = client.get(url).send() {
            if r.status().is_success() {
                return;
            }
        }
        assert!(
            start.elapsed() < timeout,
            "{url} not healthy after {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running origin.
pub struct OriginProc {
    child: Child,
    /// Base URL.
    pub url: String,
    /// Address.
    pub addr: SocketAddr,
    /// Data directory.
    pub data: PathBuf,
    config: PathBuf,
    log: Option<PathBuf>,
}

impl OriginProc {
    /// Starts an origin with data in `dir/origin` and a `demo:demo` user.
    pub fn start(dir: &Path) -> OriginProc {
        Self::start_with(dir, "", None)
    }

    /// As [`OriginProc::start`], with `extra` appended to the config (e.g. a `[limits]`
    /// section) and its stderr (the JSON log) written to `log` if given.
    pub fn start_with(dir: &Path, extra: &str, log: Option<&Path>) -> OriginProc {
        Self::start_secured(dir, &format!("internal_secret = \"{SECRET}\""), extra, log)
    }

    /// As [`OriginProc::start_with`], with `secrets` (the legacy `internal_secret = ...` line
    /// or a `[credentials]` table) instead of the harness secret.
    pub fn start_secured(dir: &Path, secrets: &str, extra: &str, log: Option<&Path>) -> OriginProc {
        let data = dir.join("origin");
        let config = dir.join("origin.toml");
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:0"
data_dir = "{}"
{secrets}
[[auth.users]]
account = "demo"
user = "demo"
key = "{USER_KEY}"
{extra}
"#,
                data.display()
            ),
        )
        .expect("write origin config");
        Self::spawn(data, config, log.map(Path::to_path_buf))
    }

    fn spawn(data: PathBuf, config: PathBuf, log: Option<PathBuf>) -> OriginProc {
        let (child, url, addr) = launch("origin", &config, log.as_deref());
        OriginProc {
            child,
            url,
            addr,
            data,
            config,
            log,
        }
    }

    /// Starts an origin from a config file the test wrote (and may rewrite before a reload),
    /// with its data in `data`, its log in `log` and no `OUTPOST_LOG`, so the file's
    /// `log_level` decides what is logged.
    pub fn start_file(data: &Path, config: &Path, log: &Path) -> OriginProc {
        let (child, url, addr) = launch_with("origin", config, Some(log), LogEnv::Unset);
        OriginProc {
            child,
            url,
            addr,
            data: data.to_path_buf(),
            config: config.to_path_buf(),
            log: Some(log.to_path_buf()),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Starts it again on the same data (and a new port unless the config fixed one).
    pub fn restart(&mut self) {
        self.kill();
        let next = Self::spawn(self.data.clone(), self.config.clone(), self.log.clone());
        *self = next;
    }

    /// The config file (a test may rewrite it before a restart).
    pub fn config_path(&self) -> &Path {
        &self.config
    }

    /// Restarts on a fixed address (so edges configured with it reconnect).
    pub fn restart_at(&mut self, addr: SocketAddr) {
        self.kill();
        let text = std::fs::read_to_string(&self.config).expect("read config");
        let text = text.replace("listen = \"127.0.0.1:0\"", &format!("listen = \"{addr}\""));
        std::fs::write(&self.config, text).expect("write config");
        let next = Self::spawn(self.data.clone(), self.config.clone(), self.log.clone());
        *self = next;
    }

    /// An authenticated Swift session as the demo user: (storage URL, token).
    pub fn must_login(&self) -> (String, String) {
        let r = reqwest::blocking::Client::new()
            .get(format!("{}/auth/v1.0", self.url))
            .header("x-auth-user", "demo:demo")
            .header("x-auth-key", USER_KEY)
            .send()
            .expect("auth request");
        assert_eq!(r.status(), 200, "auth failed");
        let h = r.headers();
        (
            h["x-storage-url"].to_str().expect("ascii").to_owned(),
            h["x-auth-token"].to_str().expect("ascii").to_owned(),
        )
    }

    /// Waits until `n` edges follow this origin's change feed (they appear in `/metrics`).
    pub fn must_see_subscribers(&self, n: usize) {
        let start = Instant::now();
        loop {
            let text = reqwest::blocking::get(format!("{}/metrics", self.url))
                .and_then(|r| r.text())
                .expect("metrics");
            let seen = text
                .lines()
                .filter(|l| l.starts_with("outpost_origin_feed_edge_lag{"))
                .count();
            if seen >= n {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "only {seen} of {n} edges subscribed"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `n` edges follow this origin's change feed and each has applied every
    /// change (lag 0): their next feed request is a long poll, so counts of the origin's GETs
    /// taken after this see only what the edges fetch for clients.
    pub fn must_see_edges_caught_up(&self, n: usize) {
        must_become(
            "edges caught up with the feed",
            Duration::from_secs(20),
            || {
                let text = reqwest::blocking::get(format!("{}/metrics", self.url))
                    .and_then(|r| r.text())
                    .expect("metrics");
                let lags: Vec<&str> = text
                    .lines()
                    .filter(|l| l.starts_with("outpost_origin_feed_edge_lag{"))
                    .collect();
                lags.len() >= n && lags.iter().all(|l| l.ends_with(" 0"))
            },
        );
    }

    /// Response body bytes the origin has sent for `GET`s (Content-Length of each answer, from
    /// `/metrics`): what edges pulled from it.
    pub fn must_count_get_bytes(&self) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.url))
            .and_then(|r| r.text())
            .expect("metrics");
        text.lines()
            .filter(|l| {
                l.starts_with("outpost_origin_response_bytes_total") && l.contains("method=\"GET\"")
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The origin's count of `GET` requests answered 200 or 206 (from `/metrics`).
    pub fn must_count_gets(&self) -> u64 {
        self.must_count_gets_answered(&[200, 206])
    }

    /// The origin's count of `GET` requests answered with one of `statuses` (from `/metrics`).
    pub fn must_count_gets_answered(&self, statuses: &[u16]) -> u64 {
        let text = reqwest::blocking::get(format!("{}/metrics", self.url))
            .and_then(|r| r.text())
            .expect("metrics");
        let wanted: Vec<String> = statuses.iter().map(|s| format!("status=\"{s}\"")).collect();
        text.lines()
            .filter(|l| {
                l.starts_with("outpost_origin_requests_total")
                    && l.contains("method=\"GET\"")
                    && wanted.iter().any(|w| l.contains(w.as_str()))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for OriginProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A running edge.
pub struct EdgeProc {
    child: Child,
    /// Base URL (`http://127.0.0.1:port`).
    pub url: String,
    /// Address.
    pub addr: SocketAddr,
    config: PathBuf,
    log: Option<PathBuf>,
}

impl EdgeProc {
    /// Starts an edge in front of `origin` with its cache in `dir/<name>-cache`. `extra` is
    /// appended to the config (e.g. `[cache]` settings).
    pub fn start(dir: &Path, name: &str, origin: SocketAddr, extra: &str) -> EdgeProc {
        Self::start_logged(dir, name, origin, extra, None)
    }

    /// As [`EdgeProc::start`], with its stderr (the JSON log) written to `log` if given.
    pub fn start_logged(
        dir: &Path,
        name: &str,
        origin: SocketAddr,
        extra: &str,
        log: Option<&Path>,
    ) -> EdgeProc {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        let (cache_extra, rest) = split_cache_section(extra);
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:{port}"
edge_id = "{name}"
base_domain = "cdn.test"
{rest}
[origin]
address = "{origin}"
internal_secret = "{SECRET}"
[cache]
disk_dir = "{}"
{cache_extra}
"#,
                dir.join(format!("{name}-cache")).display()
            ),
        )
        .expect("write edge config");
        Self::spawn(config, log.map(Path::to_path_buf))
    }

    /// Starts an edge from a config body of our own (everything but `listen` and `edge_id`).
    pub fn start_raw(dir: &Path, name: &str, body: &str) -> EdgeProc {
        let port = free_port();
        let config = dir.join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!("listen = \"127.0.0.1:{port}\"\nedge_id = \"{name}\"\n{body}"),
        )
        .expect("write edge config");
        Self::spawn(config, None)
    }

    /// Starts an edge from a config file the test wrote (and may rewrite before a reload),
    /// its log in `log` and no `OUTPOST_LOG`, so the file's `log_level` decides what is
    /// logged.
    pub fn start_file(config: &Path, log: &Path) -> EdgeProc {
        let (child, url, addr) = launch_with("edge", config, Some(log), LogEnv::Unset);
        EdgeProc {
            child,
            url,
            addr,
            config: config.to_path_buf(),
            log: Some(log.to_path_buf()),
        }
    }

    /// Peak resident memory of the process (VmHWM), in bytes.
    pub fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .expect("VmHWM")
    }

    fn spawn(config: PathBuf, log: Option<PathBuf>) -> EdgeProc {
        let (child, url, addr) = launch("edge", &config, log.as_deref());
        EdgeProc {
            child,
            url,
            addr,
            config,
            log,
        }
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        kill(&mut self.child);
    }

    /// Restarts with the same config (same port, same cache directory).
    pub fn restart(&mut self) {
        self.kill();
        let next = Self::spawn(self.config.clone(), self.log.clone());
        *self = next;
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// An HTTP client that sends every request for any host to this edge.
    pub fn client(&self, hosts: &[&str]) -> reqwest::blocking::Client {
        let mut b = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60));
        for h in hosts {
            b = b.resolve(h, self.addr);
        }
        b.build().expect("client")
    }
}

impl Drop for EdgeProc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Sends `SIGHUP` (reload the config) to a process the harness started.
pub fn must_send_sighup(pid: u32) {
    let status = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -HUP {pid}: {status}");
}

/// Polls `cond` every 20 ms until it holds; panics with `what` after `timeout`.
pub fn must_become(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "not within {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Splits `extra` config text into the lines meant for `[cache]` (prefixed `cache.`) and the
/// rest.
fn split_cache_section(extra: &str) -> (String, String) {
    let mut cache = String::new();
    let mut rest = String::new();
    for line in extra.lines() {
        match line.trim().strip_prefix("cache.") {
            Some(l) => {
                cache.push_str(l);
                cache.push('\n');
            }
            None => {
                rest.push_str(line);
                rest.push('\n');
            }
        }
    }
    (cache, rest)
}
