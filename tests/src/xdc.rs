//! The cross-datacenter harness: two DCs, each a ring cluster of real `outpost origin`
//! processes (or a single node without a ring) plus one edge, replicating to each other
//! through [`Link`]s, TCP forwarders the test can cut and restore like a WAN link.
//!
//! Node 0 of each DC ships (`[sync] ship = true`); every node receives. Writes, listings and
//! feeds go through the real HTTP APIs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::cluster::{free_port, must_become_healthy, EdgeProc, SECRET, USER_KEY};
use crate::{must_run_outpost, outpost_bin};

/// The realm key both harness DCs share.
pub const REALM_KEY: &str = "harness-realm-key-0123456789";

/// A TCP forwarder standing for the WAN link to a peer DC.
pub struct Link {
    /// Where the shipping DC connects.
    pub addr: SocketAddr,
    state: Arc<LinkState>,
}

struct LinkState {
    cut: AtomicBool,
    stop: AtomicBool,
    conns: Mutex<Vec<TcpStream>>,
}

impl Link {
    /// Forwards connections on a free port to `target`.
    pub fn start(target: SocketAddr) -> Link {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind link");
        let addr = listener.local_addr().expect("link address");
        let state = Arc::new(LinkState {
            cut: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for down in listener.incoming() {
                if st.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = down else { continue };
                if st.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the peer looks unreachable
                }
                let Ok(up) = TcpStream::connect(target) else {
                    continue;
                };
                let _ = up.set_nodelay(true);
                let _ = down.set_nodelay(true);
                let (Ok(d2), Ok(u2), Ok(d3), Ok(u3)) = (
                    down.try_clone(),
                    up.try_clone(),
                    down.try_clone(),
                    up.try_clone(),
                ) else {
                    continue;
                };
                st.conns.lock().expect("link lock").extend([d3, u3]);
                std::thread::spawn(move || pipe(down, up));
                std::thread::spawn(move || pipe(u2, d2));
            }
        });
        Link { addr, state }
    }

    /// Cuts the link: open connections are reset, new ones dropped.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        for c in self.state.conns.lock().expect("link lock").drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }

    /// Restores the link.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Link {
    fn drop(&mut self) {
        self.state.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(self.addr);
    }
}

/// One origin process of a DC.
pub struct DcNode {
    /// Port.
    pub port: u16,
    /// `http://127.0.0.1:port`.
    pub url: String,
    config: PathBuf,
    env: Vec<(String, String)>,
    child: Option<Child>,
}

// Children are killed and waited for in `DcNode::kill`, called from Drop.
#[allow(clippy::zombie_processes)]
fn spawn_origin(config: &Path, env: &[(String, String)]) -> Child {
    let mut cmd = Command::new(outpost_bin());
    cmd.args(["origin", "--config", config.to_str().expect("utf-8 path")])
        .env(
            "OUTPOST_LOG",
            std::env::var("OUTPOST_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn outpost origin");
    let stdout = child.stdout.take().expect("stdout");
    let mut reader = BufReader::new(stdout);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            let status = child.wait();
            panic!("outpost origin exited ({status:?}) before listening");
        }
        if line.starts_with("outpost origin listening on") {
            break;
        }
    }
    std::thread::spawn(move || {
        let mut sink = String::new();
        while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
            sink.clear();
        }
    });
    child
}

impl DcNode {
    /// Kills the process (SIGKILL) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the process again with the same config and data.
    pub fn restart(&mut self) {
        self.kill();
        self.child = Some(spawn_origin(&self.config, &self.env));
        must_become_healthy(&format!("{}/healthz", self.url), Duration::from_secs(30));
    }
}

impl Drop for DcNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How a DC is built.
#[derive(Debug, Clone)]
pub struct DcSpec {
    /// Nodes; 0 runs one node without a ring (single-node mode).
    pub nodes: usize,
    /// Replicate the whole `demo` account (`[[sync.accounts]]`); otherwise only containers
    /// whose metadata names the peer.
    pub account_policy: bool,
    /// `OUTPOST_CLOCK_SKEW_SECS` for every node of the DC.
    pub skew_secs: i64,
    /// Appended to every node's config (e.g. a `[feed]` section).
    pub extra: String,
    /// Every node ships (one at a time, elected in ring order); otherwise node 0 only.
    pub ship_all: bool,
}

/// One datacenter.
pub struct Dc {
    /// `dc1` / `dc2`.
    pub name: String,
    /// Its nodes (node 0 ships).
    pub nodes: Vec<DcNode>,
    /// Its edge, following node 0's change feed.
    pub edge: Option<EdgeProc>,
    /// Working directory.
    pub dir: PathBuf,
    /// The DC's ring file (`None` for a single node).
    pub ring: Option<PathBuf>,
    http: reqwest::blocking::Client,
    token: String,
}

/// Two DCs replicating to each other.
pub struct TwoDcs {
    /// DC 1.
    pub dc1: Dc,
    /// DC 2.
    pub dc2: Dc,
    /// dc1 → dc2.
    pub link12: Link,
    /// dc2 → dc1.
    pub link21: Link,
    _dir: tempfile::TempDir,
}

// One flat list of what differs between node configs reads better than a struct here.
#[allow(clippy::too_many_arguments)]
fn node_config(
    i: usize,
    port: u16,
    data: &Path,
    ring: Option<&Path>,
    me: &str,
    peer: &str,
    link: SocketAddr,
    account_policy: bool,
    ship: bool,
) -> String {
    let mut s = format!(
        r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
internal_secret = "{SECRET}"
[[auth.users]]
account = "demo"
user = "demo"
key = "{USER_KEY}"
"#,
        data = data.display()
    );
    if let Some(r) = ring {
        s.push_str(&format!(
            "[cluster]\nring = \"{}\"\nnode_timeout = \"2s\"\nring_poll = \"100ms\"\nreplication_interval = \"1h\"\naudit_interval = \"1h\"\n",
            r.display()
        ));
    }
    s.push_str(&format!(
        r#"[sync]
name = "{me}"
ship = {ship}
interval = "200ms"
retry_min = "50ms"
retry_max = "500ms"
timeout = "10s"
batch = 256
concurrency = 8
[[sync.peers]]
name = "{peer}"
urls = ["http://{link}"]
realm_key = "{REALM_KEY}"
"#,
        ship = i == 0 || ship
    ));
    if account_policy {
        s.push_str(&format!(
            "[[sync.accounts]]\naccount = \"demo\"\npeers = [\"{peer}\"]\n"
        ));
    }
    s
}

fn build_ring(dir: &Path, ports: &[u16]) -> PathBuf {
    let ring = dir.join("ring.json");
    let rs = ring.to_str().expect("utf-8").to_owned();
    let replicas = ports.len().min(3).to_string();
    must_run_outpost(&[
        "ring",
        "create",
        &rs,
        "--part-power",
        "6",
        "--replicas",
        &replicas,
    ]);
    for (i, p) in ports.iter().enumerate() {
        must_run_outpost(&[
            "ring",
            "add",
            &rs,
            "--zone",
            &(i + 1).to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &p.to_string(),
            "--device",
            &format!("d{i}"),
        ]);
    }
    must_run_outpost(&["ring", "rebalance", &rs]);
    ring
}

impl TwoDcs {
    /// Starts both DCs, their links and one edge each.
    pub fn start(spec1: &DcSpec, spec2: &DcSpec) -> TwoDcs {
        let dir = tempfile::tempdir().expect("temp dir");
        let ports1: Vec<u16> = (0..spec1.nodes.max(1)).map(|_| free_port()).collect();
        let ports2: Vec<u16> = (0..spec2.nodes.max(1)).map(|_| free_port()).collect();
        let addr = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        let link12 = Link::start(addr(ports2[0]));
        let link21 = Link::start(addr(ports1[0]));
        let dc1 = Dc::start(dir.path(), "dc1", "dc2", spec1, &ports1, link12.addr);
        let dc2 = Dc::start(dir.path(), "dc2", "dc1", spec2, &ports2, link21.addr);
        TwoDcs {
            dc1,
            dc2,
            link12,
            link21,
            _dir: dir,
        }
    }

    /// Cuts both directions.
    pub fn cut(&self) {
        self.link12.cut();
        self.link21.cut();
    }

    /// Restores both directions.
    pub fn restore(&self) {
        self.link12.restore();
        self.link21.restore();
    }

    /// Polls until both DCs list the same objects with the same ETags in `container`;
    /// returns how long it took and the listing.
    pub fn must_converge(
        &self,
        container: &str,
        timeout: Duration,
    ) -> (Duration, BTreeMap<String, String>) {
        let t0 = Instant::now();
        loop {
            let a = self.dc1.listing(container);
            let b = self.dc2.listing(container);
            if a == b {
                return (t0.elapsed(), a);
            }
            assert!(
                t0.elapsed() < timeout,
                "{container}: no convergence after {timeout:?}: dc1 has {} objects, dc2 {}; \
                 dc1 sync {}, dc2 sync {}",
                a.len(),
                b.len(),
                self.dc1.sync_status(),
                self.dc2.sync_status()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Dc {
    fn start(
        root: &Path,
        name: &str,
        peer: &str,
        spec: &DcSpec,
        ports: &[u16],
        link: SocketAddr,
    ) -> Dc {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).expect("dc dir");
        let ring = (spec.nodes > 0).then(|| build_ring(&dir, ports));
        let env = vec![(
            "OUTPOST_CLOCK_SKEW_SECS".to_owned(),
            spec.skew_secs.to_string(),
        )];
        let mut nodes = Vec::new();
        for (i, &port) in ports.iter().enumerate() {
            let config = dir.join(format!("node{i}.toml"));
            std::fs::write(
                &config,
                node_config(
                    i,
                    port,
                    &dir.join(format!("node{i}")),
                    ring.as_deref(),
                    name,
                    peer,
                    link,
                    spec.account_policy,
                    spec.ship_all,
                ) + &spec.extra,
            )
            .expect("write node config");
            let child = spawn_origin(&config, &env);
            nodes.push(DcNode {
                port,
                url: format!("http://127.0.0.1:{port}"),
                config,
                env: env.clone(),
                child: Some(child),
            });
        }
        for n in &nodes {
            must_become_healthy(&format!("{}/healthz", n.url), Duration::from_secs(30));
        }
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(32)
            .build()
            .expect("client");
        let mut dc = Dc {
            name: name.to_owned(),
            nodes,
            edge: None,
            dir: dir.clone(),
            ring,
            http,
            token: String::new(),
        };
        dc.token = dc.must_login();
        let origin = SocketAddr::from(([127, 0, 0, 1], ports[0]));
        dc.edge = Some(EdgeProc::start(&dir, &format!("{name}-edge"), origin, ""));
        dc
    }

    fn must_login(&self) -> String {
        let r = self
            .http
            .get(format!("{}/auth/v1.0", self.nodes[0].url))
            .header("x-auth-user", "demo:demo")
            .header("x-auth-key", USER_KEY)
            .send()
            .expect("auth request");
        assert!(r.status().is_success(), "login: {}", r.status());
        r.headers()["x-auth-token"]
            .to_str()
            .expect("token")
            .to_owned()
    }

    /// Restarts node `i` (same config and data) and logs in again (tokens do not survive a
    /// restart).
    pub fn restart_node(&mut self, i: usize) {
        self.nodes[i].restart();
        self.token = self.must_login();
    }

    /// The HTTP client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// `http://…/v1/AUTH_demo` on node `i`.
    pub fn account_url(&self, i: usize) -> String {
        format!("{}/v1/AUTH_demo", self.nodes[i].url)
    }

    /// A user token for `demo`.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Creates a container with extra headers (e.g. `X-Container-Read`, sync targets).
    pub fn must_create_container(&self, container: &str, headers: &[(&str, &str)]) {
        let mut req = self
            .http
            .put(format!("{}/{container}", self.account_url(0)))
            .header("x-auth-token", &self.token);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let r = req.send().expect("container put");
        assert!(
            r.status().is_success(),
            "create {container}: {}",
            r.status()
        );
    }

    /// PUTs an object through node `i`; returns its ETag.
    pub fn must_put(&self, i: usize, container: &str, name: &str, body: Vec<u8>) -> String {
        let url = format!("{}/{container}/{name}", self.account_url(i));
        for _ in 0..5 {
            match self
                .http
                .put(&url)
                .header("x-auth-token", &self.token)
                .body(body.clone())
                .send()
            {
                Ok(r) if r.status().is_success() => {
                    return r.headers()["etag"]
                        .to_str()
                        .expect("etag")
                        .trim_matches('"')
                        .to_owned()
                }
                Ok(r) if r.status().is_server_error() => {}
                Ok(r) => panic!("PUT {url}: {}", r.status()),
                Err(_) => {}
            }
        }
        panic!("PUT {url} kept failing");
    }

    /// DELETEs an object through node `i` (404 is fine).
    pub fn must_delete(&self, i: usize, container: &str, name: &str) {
        let url = format!("{}/{container}/{name}", self.account_url(i));
        let r = self
            .http
            .delete(&url)
            .header("x-auth-token", &self.token)
            .send()
            .expect("delete");
        assert!(
            r.status().is_success() || r.status() == 404,
            "DELETE {url}: {}",
            r.status()
        );
    }

    /// Every object of `container` (name → ETag), paging through node 0's listing.
    pub fn listing(&self, container: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let mut marker = String::new();
        loop {
            let r = self
                .http
                .get(format!("{}/{container}", self.account_url(0)))
                .query(&[
                    ("format", "json"),
                    ("limit", "10000"),
                    ("marker", marker.as_str()),
                ])
                .header("x-auth-token", &self.token)
                .send()
                .expect("listing");
            if r.status() == 404 {
                return out;
            }
            assert!(r.status().is_success(), "listing: {}", r.status());
            let v: serde_json::Value =
                serde_json::from_slice(&r.bytes().expect("listing body")).expect("listing json");
            let items = v.as_array().expect("array");
            if items.is_empty() {
                return out;
            }
            for it in items {
                let name = it["name"].as_str().expect("name").to_owned();
                out.insert(name.clone(), it["hash"].as_str().unwrap_or("").to_owned());
                marker = name;
            }
        }
    }

    /// Node 0's change feed after `since`: (seq, ts, kind, object, etag).
    pub fn feed(&self, since: u64) -> Vec<(u64, String, String, String, String)> {
        let mut out = Vec::new();
        let mut since = since;
        loop {
            let v: serde_json::Value = self
                .http
                .get(format!("{}/internal/changes", self.nodes[0].url))
                .query(&[("since", since.to_string()), ("limit", "10000".into())])
                .header("x-outpost-internal", SECRET)
                .send()
                .expect("feed")
                .bytes()
                .map(|b| serde_json::from_slice(&b).expect("feed json"))
                .expect("feed body");
            let changes = v["changes"].as_array().expect("changes");
            if changes.is_empty() {
                return out;
            }
            for c in changes {
                since = c["seq"].as_u64().expect("seq");
                out.push((
                    since,
                    c["ts"].as_str().unwrap_or("").to_owned(),
                    c["kind"].as_str().unwrap_or("").to_owned(),
                    c["object"].as_str().unwrap_or("").to_owned(),
                    c["etag"].as_str().unwrap_or("").to_owned(),
                ));
            }
        }
    }

    /// The last sequence number of node 0's feed.
    pub fn last_seq(&self) -> u64 {
        let v: serde_json::Value = self
            .http
            .get(format!("{}/internal/changes", self.nodes[0].url))
            .query(&[("since", "0"), ("limit", "1")])
            .header("x-outpost-internal", SECRET)
            .send()
            .expect("feed")
            .bytes()
            .map(|b| serde_json::from_slice(&b).expect("feed json"))
            .expect("feed body");
        v["last"].as_u64().expect("last")
    }

    /// Node 0's `/internal/xdc/status` (the shipping node's view of its peers).
    pub fn sync_status(&self) -> serde_json::Value {
        self.sync_status_of(0)
    }

    /// Node `i`'s `/internal/xdc/status`.
    pub fn sync_status_of(&self, i: usize) -> serde_json::Value {
        self.http
            .get(format!("{}/internal/xdc/status", self.nodes[i].url))
            .header("x-outpost-internal", SECRET)
            .send()
            .and_then(|r| r.bytes())
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(serde_json::Value::Null)
    }

    /// GET through this DC's edge: (status, body).
    pub fn edge_get(&self, container: &str, name: &str) -> (u16, Vec<u8>) {
        let edge = self.edge.as_ref().expect("edge");
        let host = format!("{container}.demo.cdn.test");
        let client = edge.client(&[host.as_str()]);
        let r = client
            .get(format!("http://{host}:{}/{name}", edge.addr.port()))
            .send()
            .expect("edge get");
        let s = r.status().as_u16();
        (s, r.bytes().expect("edge body").to_vec())
    }
}
