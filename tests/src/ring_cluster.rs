//! The ring cluster harness: N real `outpost origin` processes on a ring built with the real
//! `outpost ring` commands, on free ports with temp dirs. Nodes can be killed (SIGKILL),
//! paused (SIGSTOP), resumed and restarted on the same port and data. Replication and audit
//! passes are triggered through the nodes' internal endpoints instead of waited for.
//!
//! Storage is inspected directly on disk ([`RingCluster::data_files`]), so tests check what
//! each node really holds, not what its API says.
//!
//! [`Options`] picks the binary (the failpoints build for fault injection), and can put a
//! TCP forwarder ([`crate::forwarder`]) in front of every node: the ring then names the
//! forwarders, nodes reach each other only through them, and [`RingCluster::links`] cuts and
//! heals the link between any two nodes. Clients use [`Node::url`], the node itself.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use crate::cluster::{free_port, must_become_healthy, ADMIN_SECRET, EDGE_SECRET, SECRET, USER_KEY};
use crate::forwarder::{self, Forwarder, Links};
use crate::{must_run_outpost, outpost_bin, outpost_failpoints_bin};

/// How a [`RingCluster`] is started.
#[derive(Debug, Default, Clone)]
pub struct Options {
    /// Run the binary built with failpoints ([`crate::outpost_failpoints_bin`]).
    pub failpoints: bool,
    /// Put a forwarder in front of every node (see the module docs).
    pub forwarders: bool,
}

/// One origin node of the ring.
pub struct Node {
    /// Port the ring names it by (its forwarder's, with forwarders).
    pub port: u16,
    /// Port the node itself listens on (= `port` without forwarders).
    pub listen_port: u16,
    /// `http://127.0.0.1:listen_port`: the node itself.
    pub url: String,
    /// Data directory.
    pub data: PathBuf,
    config: PathBuf,
    child: Option<Child>,
    /// Extra environment of its process (e.g. `FAILPOINTS`), used from the next start on.
    env: Vec<(String, String)>,
    forwarder: Option<Forwarder>,
}

impl Node {
    /// True while the process runs (even when paused).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// The process id (panics when it is not running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node is running").id()
    }
}

/// A running ring cluster.
pub struct RingCluster {
    /// Temp dir holding the ring, configs and data.
    pub dir: tempfile::TempDir,
    /// The ring file.
    pub ring: PathBuf,
    /// Nodes, in the order they were added (node `i` is ring device `i`).
    pub nodes: Vec<Node>,
    http: reqwest::blocking::Client,
    bin: PathBuf,
    links: Option<Arc<Links>>,
}

// The children are killed and waited for in `Node::kill`, called from Drop.
#[allow(clippy::zombie_processes)]
fn spawn(bin: &Path, config: &Path, env: &[(String, String)]) -> Child {
    let mut child = Command::new(bin)
        .args(["origin", "--config", config.to_str().expect("utf-8 path")])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env(
            "OUTPOST_LOG",
            std::env::var("OUTPOST_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn outpost origin");
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

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} {pid} failed");
}

impl RingCluster {
    /// Starts `n` nodes (each its own zone) on a ring of `2^part_power` partitions and
    /// `replicas` replicas. `extra` is appended to every node's `[cluster]` section.
    pub fn start(n: usize, part_power: u32, replicas: u32, extra: &str) -> RingCluster {
        RingCluster::start_each(n, part_power, replicas, |_| extra.to_owned())
    }

    /// As [`RingCluster::start`], with `extra(i)` appended to node `i`'s config (a section of
    /// its own per node, such as an `[s3]` listen address).
    pub fn start_each(
        n: usize,
        part_power: u32,
        replicas: u32,
        extra: impl Fn(usize) -> String,
    ) -> RingCluster {
        RingCluster::start_each_with(n, part_power, replicas, extra, &Options::default())
    }

    /// [`RingCluster::start`] with [`Options`].
    pub fn start_with(
        n: usize,
        part_power: u32,
        replicas: u32,
        extra: &str,
        opts: &Options,
    ) -> RingCluster {
        RingCluster::start_each_with(n, part_power, replicas, |_| extra.to_owned(), opts)
    }

    /// [`RingCluster::start_each`] with [`Options`].
    pub fn start_each_with(
        n: usize,
        part_power: u32,
        replicas: u32,
        extra: impl Fn(usize) -> String,
        opts: &Options,
    ) -> RingCluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let ring = dir.path().join("ring.json");
        let rs = ring.to_str().expect("utf-8").to_owned();
        must_run_outpost(&[
            "ring",
            "create",
            &rs,
            "--part-power",
            &part_power.to_string(),
            "--replicas",
            &replicas.to_string(),
        ]);
        let mut c = RingCluster {
            dir,
            ring,
            nodes: Vec::new(),
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .pool_max_idle_per_host(16)
                .build()
                .expect("client"),
            bin: if opts.failpoints {
                outpost_failpoints_bin()
            } else {
                outpost_bin()
            },
            links: opts.forwarders.then(|| Arc::new(Links::default())),
        };
        for _ in 0..n {
            c.add_device();
        }
        must_run_outpost(&["ring", "rebalance", &rs]);
        for i in 0..n {
            c.launch_node(i, &extra(i));
        }
        for i in 0..n {
            must_become_healthy(
                &format!("{}/healthz", c.nodes[i].url),
                Duration::from_secs(30),
            );
        }
        c
    }

    /// Adds a device for a new node (zone = its index + 1) to the ring file, without
    /// rebalancing; returns its index. The node is not started.
    pub fn add_device(&mut self) -> usize {
        let i = self.nodes.len();
        let listen_port = free_port();
        let forwarder = self.links.as_ref().map(|links| {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("forwarder port");
            Forwarder::start(l, listen_port, i, Arc::clone(links))
        });
        let port = forwarder.as_ref().map_or(listen_port, |f| f.port);
        let rs = self.ring.to_str().expect("utf-8").to_owned();
        must_run_outpost(&[
            "ring",
            "add",
            &rs,
            "--zone",
            &(i + 1).to_string(),
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--device",
            &format!("d{i}"),
        ]);
        let data = self.dir.path().join(format!("node{i}"));
        self.nodes.push(Node {
            port,
            listen_port,
            url: format!("http://127.0.0.1:{listen_port}"),
            config: self.dir.path().join(format!("node{i}.toml")),
            data,
            child: None,
            env: Vec::new(),
            forwarder,
        });
        i
    }

    /// Writes node `i`'s config and starts it.
    pub fn launch_node(&mut self, i: usize, extra: &str) {
        let n = &mut self.nodes[i];
        // Behind a forwarder the node names itself by the forwarder's address and connects
        // to its peers from its own source address, so the forwarders know who calls.
        let routing = if n.forwarder.is_some() {
            format!(
                "node = \"127.0.0.1:{}\"\nsource_address = \"{}\"\n",
                n.port,
                forwarder::source_address(i)
            )
        } else {
            String::new()
        };
        std::fs::write(
            &n.config,
            format!(
                r#"listen = "127.0.0.1:{port}"
data_dir = "{data}"
[credentials]
edge = "{EDGE_SECRET}"
peer = "{SECRET}"
admin = "{ADMIN_SECRET}"
[[auth.users]]
account = "demo"
user = "demo"
key = "{USER_KEY}"
[cluster]
ring = "{ring}"
node_timeout = "3s"
ring_poll = "100ms"
replication_interval = "1h"
audit_interval = "1h"
{routing}{extra}
"#,
                port = n.listen_port,
                data = n.data.display(),
                ring = self.ring.display(),
            ),
        )
        .expect("write node config");
        n.child = Some(spawn(&self.bin, &n.config, &n.env));
    }

    /// `outpost ring rebalance`; returns its output.
    pub fn must_rebalance(&self) -> String {
        must_run_outpost(&["ring", "rebalance", self.ring.to_str().expect("utf-8")])
    }

    /// The ring file as JSON.
    pub fn ring_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(&self.ring).expect("read ring")).expect("ring json")
    }

    /// Node indexes (= device ids) holding partition `part` as primaries.
    pub fn primaries(&self, part: u32) -> BTreeSet<usize> {
        let ring = self.ring_json();
        ring["assignments"]
            .as_array()
            .expect("assignments")
            .iter()
            .filter_map(|row| row[part as usize].as_u64())
            .filter(|&d| d != u64::from(u32::MAX))
            .map(|d| d as usize)
            .collect()
    }

    /// Kills node `i` (SIGKILL).
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Pauses node `i` (SIGSTOP): its sockets accept but nothing answers.
    pub fn pause(&self, i: usize) {
        signal(self.nodes[i].pid(), "-STOP");
    }

    /// Resumes a paused node (SIGCONT).
    pub fn resume(&self, i: usize) {
        signal(self.nodes[i].pid(), "-CONT");
    }

    /// Sets the extra environment of node `i`'s process from its next start on.
    pub fn set_env(&mut self, i: usize, env: &[(&str, &str)]) {
        self.nodes[i].env = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
    }

    /// The links between nodes (with [`Options::forwarders`]).
    pub fn links(&self) -> &Links {
        self.links.as_deref().expect("started with forwarders")
    }

    /// Waits until node `i`'s process ended by itself (a failpoint crashed it); forgets it.
    pub fn must_exit(&mut self, i: usize, timeout: Duration) {
        let start = Instant::now();
        let child = self.nodes[i].child.as_mut().expect("node is running");
        loop {
            if child.try_wait().expect("wait for node").is_some() {
                self.nodes[i].child = None;
                return;
            }
            assert!(start.elapsed() < timeout, "node {i} did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts node `i` again after it was killed or exited (same port, data and config).
    pub fn start_again(&mut self, i: usize) {
        assert!(!self.nodes[i].is_running(), "node {i} is running");
        let n = &self.nodes[i];
        let child = spawn(&self.bin, &n.config, &n.env);
        self.nodes[i].child = Some(child);
        must_become_healthy(
            &format!("{}/healthz", self.nodes[i].url),
            Duration::from_secs(30),
        );
    }

    /// Restarts node `i` on the same port and data.
    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        let n = &self.nodes[i];
        let child = spawn(&self.bin, &n.config, &n.env);
        self.nodes[i].child = Some(child);
        must_become_healthy(
            &format!("{}/healthz", self.nodes[i].url),
            Duration::from_secs(30),
        );
    }

    /// The shared blocking HTTP client.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// A token for the demo user from node `i` (tokens are per node).
    pub fn must_login(&self, i: usize) -> String {
        let r = self
            .http
            .get(format!("{}/auth/v1.0", self.nodes[i].url))
            .header("x-auth-user", "demo:demo")
            .header("x-auth-key", USER_KEY)
            .send()
            .expect("auth request");
        assert_eq!(r.status(), 200, "auth on node {i} failed");
        r.headers()["x-auth-token"]
            .to_str()
            .expect("ascii")
            .to_owned()
    }

    /// `http://127.0.0.1:port/v1/AUTH_demo` of node `i`.
    pub fn account_url(&self, i: usize) -> String {
        format!("{}/v1/AUTH_demo", self.nodes[i].url)
    }

    fn must_post_internal(&self, i: usize, path: &str) -> serde_json::Value {
        let r = self
            .http
            .post(format!("{}{path}", self.nodes[i].url))
            .header("x-outpost-internal", SECRET)
            .send()
            .unwrap_or_else(|e| panic!("{path} on node {i}: {e}"));
        assert!(
            r.status().is_success(),
            "{path} on node {i}: {}",
            r.status()
        );
        serde_json::from_slice(&r.bytes().expect("report body")).expect("json report")
    }

    /// Runs one replication pass on node `i`; returns its report.
    pub fn must_replicate(&self, i: usize) -> serde_json::Value {
        self.must_post_internal(i, "/internal/cluster/replicate")
    }

    /// Runs replication passes on every running node until a whole round pushes nothing and
    /// hands nothing home (at most `rounds` rounds). Returns the number of rounds.
    pub fn must_converge(&self, rounds: usize) -> usize {
        for round in 1..=rounds {
            let mut busy = 0;
            for i in 0..self.nodes.len() {
                if self.nodes[i].is_running() {
                    let t = Instant::now();
                    let r = self.must_replicate(i);
                    eprintln!("replication pass on node {i}: {r} in {:?}", t.elapsed());
                    busy += r["pushed"].as_u64().unwrap_or(0)
                        + r["reverted"].as_u64().unwrap_or(0)
                        + r["errors"].as_u64().unwrap_or(0);
                }
            }
            if busy == 0 {
                return round;
            }
        }
        panic!("replication did not converge in {rounds} rounds");
    }

    /// Runs one unthrottled audit pass on node `i`; returns its report.
    pub fn must_audit(&self, i: usize) -> serde_json::Value {
        self.must_post_internal(i, "/internal/cluster/audit")
    }

    /// Node `i`'s `/internal/cluster/status`.
    pub fn must_status(&self, i: usize) -> serde_json::Value {
        let r = self
            .http
            .get(format!("{}/internal/cluster/status", self.nodes[i].url))
            .header("x-outpost-internal", SECRET)
            .send()
            .expect("status request");
        assert!(
            r.status().is_success(),
            "status of node {i}: {}",
            r.status()
        );
        serde_json::from_slice(&r.bytes().expect("status body")).expect("status json")
    }

    /// Polls until every running node has loaded ring `version`.
    pub fn must_load_ring(&self, version: u64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let behind: Vec<usize> = (0..self.nodes.len())
                .filter(|&i| self.nodes[i].is_running())
                .filter(|&i| self.must_status(i)["ring_version"].as_u64() < Some(version))
                .collect();
            if behind.is_empty() {
                return;
            }
            assert!(
                start.elapsed() < timeout,
                "nodes {behind:?} did not load ring version {version}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data files node `i` holds, read from its disk: partition → `{hash}/{ts}.data`.
    pub fn data_files(&self, i: usize) -> BTreeMap<u32, BTreeSet<String>> {
        let mut out: BTreeMap<u32, BTreeSet<String>> = BTreeMap::new();
        let root = self.nodes[i].data.join("objects");
        let Ok(parts) = std::fs::read_dir(&root) else {
            return out;
        };
        for p in parts.flatten() {
            let Some(part) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            for sfx in std::fs::read_dir(p.path()).into_iter().flatten().flatten() {
                for h in std::fs::read_dir(sfx.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    for f in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
                        let name = f.file_name().to_string_lossy().into_owned();
                        if name.ends_with(".data") {
                            out.entry(part)
                                .or_default()
                                .insert(format!("{}/{name}", h.file_name().to_string_lossy()));
                        }
                    }
                }
            }
        }
        out
    }

    /// The bytes of `hash`'s data file on node `i` (newest version), if it has one.
    pub fn read_data(&self, i: usize, part: u32, hash: &str) -> Option<Vec<u8>> {
        let dir = self.nodes[i]
            .data
            .join("objects")
            .join(part.to_string())
            .join(&hash[..3])
            .join(hash);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "data"))
            .collect();
        files.sort();
        std::fs::read(files.last()?).ok()
    }

    /// Checks that every partition's data lives exactly on its primaries, identically, and
    /// nowhere else.
    pub fn must_hold_exact_copies(&self) {
        if let Some(why) = self.copies_differ() {
            panic!("{why}");
        }
    }

    /// What breaks "every partition's data lives exactly on its primaries, identically, and
    /// nowhere else", if anything.
    pub fn copies_differ(&self) -> Option<String> {
        let held: Vec<BTreeMap<u32, BTreeSet<String>>> =
            (0..self.nodes.len()).map(|i| self.data_files(i)).collect();
        let parts: BTreeSet<u32> = held.iter().flat_map(|m| m.keys().copied()).collect();
        for part in parts {
            let prim = self.primaries(part);
            let expected = held
                .iter()
                .enumerate()
                .find(|(i, _)| prim.contains(i))
                .and_then(|(_, m)| m.get(&part))
                .cloned()
                .unwrap_or_default();
            for (i, m) in held.iter().enumerate() {
                let here = m.get(&part).cloned().unwrap_or_default();
                if prim.contains(&i) {
                    if here != expected {
                        return Some(format!(
                            "partition {part}: primary node {i} differs from the other primaries: {:?} vs {:?}",
                            here.symmetric_difference(&expected).collect::<Vec<_>>(),
                            prim
                        ));
                    }
                } else if !here.is_empty() {
                    return Some(format!(
                        "partition {part}: node {i} is not a primary but holds {} files",
                        here.len()
                    ));
                }
            }
        }
        None
    }

    /// Replicates until [`RingCluster::copies_differ`] finds nothing (orphan files of crashed
    /// writes go once older than `cluster.orphan_grace`, so this waits for that too).
    pub fn must_settle_copies(&self, timeout: Duration) {
        let start = Instant::now();
        loop {
            self.must_converge(6);
            let Some(why) = self.copies_differ() else {
                return;
            };
            assert!(start.elapsed() < timeout, "copies did not settle: {why}");
            std::thread::sleep(Duration::from_millis(300));
        }
    }
}

/// MD5 hex of `/account/container/object`, as nodes name data directories (the ring's
/// placement hash: one definition, in `outpost-ring`).
pub fn path_hash(account: &str, container: &str, object: &str) -> String {
    outpost_ring::object_hash_hex(account, container, object)
}

/// The partition of a path hash for `part_power`.
pub fn partition(hash: &str, part_power: u32) -> u32 {
    outpost_ring::partition_of_hex(part_power, hash)
}

impl Drop for RingCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}
