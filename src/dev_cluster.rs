//! `outpost dev --nodes N`: the dev installation on a ring of N origin nodes on 127.0.0.1
//! (N replicas, at most 3, one zone per node), and an edge that reads objects straight from
//! the nodes holding them.
//!
//! Each node is a child process, `outpost origin --config <data>/cluster/node<i>.toml`, tied
//! to this one by its stdin: when `outpost dev` exits (however it exits), its nodes do too.
//! The banner lists every node's address, pid and config, so a node can be killed by hand
//! (`kill -9 <pid>`) and started again (`outpost origin --config <file>`); replication brings
//! it back up to date. The ring, the configs and the nodes' data stay in `<data>/cluster/`: a
//! restart reuses the same ports and data.

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use outpost_origin::dev::{
    DevSecrets, DEMO_ACCOUNT, DEMO_KEY_ID, PRIVATE_CONTAINER, PUBLIC_CONTAINER,
};
use outpost_proto::meta;
use outpost_ring::{DeviceSpec, Ring};

/// Most replicas of the dev ring (more nodes than this only spread the partitions).
const MAX_REPLICAS: u16 = 3;
/// Partition power of the dev ring (256 partitions).
const PART_POWER: u32 = 8;

/// Exits the process when stdin reaches its end (the parent closed it or died).
pub fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        let mut stdin = std::io::stdin();
        while stdin.read(&mut sink).is_ok_and(|n| n > 0) {}
        std::process::exit(0);
    });
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

/// The dev ring: loaded if a previous run made one for as many nodes, else built on free ports.
fn load_or_build_ring(path: &Path, nodes: u16) -> Result<Ring> {
    if path.exists() {
        let ring = Ring::load(path).with_context(|| format!("loading {}", path.display()))?;
        if ring.devices.len() != usize::from(nodes) {
            bail!(
                "{} holds a ring of {} nodes; use --nodes {} or another --data directory",
                path.display(),
                ring.devices.len(),
                ring.devices.len()
            );
        }
        return Ok(ring);
    }
    let mut ring = Ring::new(PART_POWER, u32::from(nodes.min(MAX_REPLICAS)))?;
    for i in 0..nodes {
        ring.add_device(DeviceSpec {
            region: 1,
            zone: u32::from(i) + 1,
            host: "127.0.0.1".into(),
            port: free_port()?,
            device: format!("d{i}"),
            weight: 1.0,
        })?;
    }
    ring.rebalance()?;
    ring.save(path)?;
    Ok(ring)
}

fn node_config(
    dir: &Path,
    i: usize,
    addr: &str,
    ring: &Path,
    secrets: &DevSecrets,
) -> Result<PathBuf> {
    let config = dir.join(format!("node{i}.toml"));
    let text = format!(
        r#"# Written by `outpost dev --nodes`: node {i} of the dev ring.
listen = "{addr}"
log_level = "warn"
data_dir = "{data}"
[credentials]
edge = "{edge}"
peer = "{peer}"
admin = "{admin}"
[[auth.users]]
account = "{DEMO_ACCOUNT}"
user = "{DEMO_ACCOUNT}"
key = "{user_key}"
[cluster]
ring = "{ring}"
node_timeout = "2s"
replication_interval = "10s"
"#,
        data = dir.join(format!("node{i}")).display(),
        edge = secrets.edge_secret,
        peer = secrets.peer_secret,
        admin = secrets.admin_secret,
        user_key = secrets.user_key,
        ring = ring.display(),
    );
    std::fs::write(&config, text).with_context(|| format!("writing {}", config.display()))?;
    Ok(config)
}

fn spawn_node(config: &Path) -> Result<Child> {
    let exe = std::env::current_exe().context("locating the outpost binary")?;
    Command::new(exe)
        .arg("origin")
        .arg("--config")
        .arg(config)
        .arg("--exit-with-stdin")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting the node of {}", config.display()))
}

fn must_be_healthy(http: &reqwest::blocking::Client, url: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if http
            .get(format!("{url}/healthz"))
            .send()
            .is_ok_and(|r| r.status().is_success())
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the node at {url} did not become healthy within 30 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The demo account, containers and objects, written through the Swift API of `url` (so the
/// ring places them like any user's). Idempotent.
fn seed(http: &reqwest::blocking::Client, url: &str, s: &DevSecrets, domain: &str) -> Result<()> {
    let auth = http
        .get(format!("{url}/auth/v1.0"))
        .header("x-auth-user", format!("{DEMO_ACCOUNT}:{DEMO_ACCOUNT}"))
        .header("x-auth-key", &s.user_key)
        .send()?
        .error_for_status()?;
    let token = auth
        .headers()
        .get("x-auth-token")
        .and_then(|v| v.to_str().ok())
        .context("no token from the dev node")?
        .to_owned();
    let account = format!("{url}/v1/AUTH_{DEMO_ACCOUNT}");
    let ok = |r: reqwest::blocking::RequestBuilder, what: &str| -> Result<()> {
        let resp = r.header("x-auth-token", &token).send()?;
        if !resp.status().is_success() {
            bail!("seeding the dev cluster: {what} answered {}", resp.status());
        }
        Ok(())
    };
    ok(
        http.post(&account)
            .header(meta::ACCOUNT_TEMPURL_KEYS[0], &s.tempurl_key)
            .header(meta::ACCOUNT_DOMAINS, domain)
            .header(meta::ACCOUNT_DEFAULT_CONTAINER, PUBLIC_CONTAINER)
            .header(
                format!("x-account-outpost-key-{DEMO_KEY_ID}"),
                &s.token_secret,
            ),
        "the account POST",
    )?;
    ok(
        http.put(format!("{account}/{PUBLIC_CONTAINER}"))
            .header("x-container-read", ".r:*,.rlistings"),
        "the public container PUT",
    )?;
    ok(
        http.put(format!("{account}/{PRIVATE_CONTAINER}")),
        "the private container PUT",
    )?;
    ok(
        http.put(format!("{account}/{PUBLIC_CONTAINER}/hello.txt"))
            .header("content-type", "text/plain")
            .body("Hello from Outpost: this file is public.\n"),
        "hello.txt",
    )?;
    ok(
        http.put(format!("{account}/{PRIVATE_CONTAINER}/secret.txt"))
            .header("content-type", "text/plain")
            .body("This file is private: you reached it with a signed URL or a session.\n"),
        "secret.txt",
    )
}

/// Starts the nodes and the edge, prints the banner, runs until SIGTERM / Ctrl-C.
pub fn run(data: &Path, nodes: u16, edge_port: u16) -> Result<()> {
    let secrets = DevSecrets::load_or_create(data).context("dev data directory")?;
    let dir = data.join("cluster");
    std::fs::create_dir_all(&dir)?;
    let ring_path = dir.join("ring.json");
    let ring = load_or_build_ring(&ring_path, nodes)?;
    let secret_file = dir.join("admin.secret");
    std::fs::write(&secret_file, &secrets.admin_secret)?;
    let mut devices = ring.devices.clone();
    devices.sort_by_key(|d| d.id);
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let mut children = Vec::new();
    let mut lines = String::new();
    for (i, d) in devices.iter().enumerate() {
        let addr = format!("{}:{}", d.host, d.port);
        let config = node_config(&dir, i, &addr, &ring_path, &secrets)?;
        let child = spawn_node(&config)?;
        let _ = writeln!(
            lines,
            "Node {i}:               http://{addr}   (pid {}, restart: outpost origin --config {})",
            child.id(),
            config.display()
        );
        children.push(child);
    }
    for d in &devices {
        must_be_healthy(&http, &d.url())?;
    }
    let first = devices.first().context("the dev ring has no node")?;
    seed(&http, &first.url(), &secrets, super::dev::DEMO_DOMAIN)?;
    let _ = writeln!(
        lines,
        "Cluster status:       outpost cluster status --ring {} --secret-file {}",
        ring_path.display(),
        secret_file.display()
    );
    let origin: SocketAddr = format!("{}:{}", first.host, first.port).parse()?;
    let edge_port = if edge_port == 0 {
        free_port()?
    } else {
        edge_port
    };
    let edge_cfg = super::dev::edge_config(data, edge_port, origin, Some(&ring_path), &secrets)?;
    let banner = super::dev::banner(data, edge_port, &secrets, &first.url(), None, &lines)?;
    // The nodes' stdin stays open as long as this process lives; a node that exits (killed
    // by hand) is reaped and reported.
    std::thread::spawn(move || {
        let mut stdins: Vec<_> = children.iter_mut().map(|c| c.stdin.take()).collect();
        for (i, c) in children.iter_mut().enumerate() {
            if let Ok(status) = c.wait() {
                eprintln!("outpost dev: node {i} (pid {}) exited: {status}", c.id());
            }
        }
        stdins.clear();
        std::thread::park();
    });
    super::dev::serve_edge(edge_cfg, banner, edge_port)
}
