//! Cluster bench: PUT and GET requests/s and p50/p99 latency of 1 KiB objects on one origin node and on a 3-node,
//! 3-replica ring cluster, side by side; plus GETs sent straight to a replica's storage role
//! (what an edge that reads the ring will do, saving the proxy hop).
//!
//! Run: `cargo run --release -p outpost-benches --bin cluster_bench -- [--clients N]
//! [--objects N]`. It starts the `outpost` binary of the same profile (built on demand) on temp
//! dirs and drives it over HTTP with N keep-alive clients. OpenStack Swift is compared only if
//! `swift-proxy-server` is on PATH (it is not set up by this bench; it says so).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use outpost_tests::cluster::{OriginProc, SECRET, USER_KEY};
use outpost_tests::ring_cluster::RingCluster;

struct Args {
    clients: usize,
    objects: usize,
}

fn args() -> Args {
    let mut a = Args {
        clients: 8,
        objects: 3000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v: usize = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} needs a number"));
        match k.as_str() {
            "--clients" => a.clients = v.max(1),
            "--objects" => a.objects = v.max(1),
            _ => panic!("unknown argument {k}"),
        }
    }
    a
}

/// One target a client thread talks to: account URL and the headers that authenticate.
#[derive(Clone)]
struct Target {
    account_url: String,
    headers: Vec<(&'static str, String)>,
}

/// Throughput and latency of one run.
struct Run {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Runs `total` requests spread over `clients` threads, thread `t` using
/// `targets[t % targets.len()]`; returns requests per second and the p50/p99 latency of one
/// request. Panics on any failure.
fn rate(
    clients: usize,
    total: usize,
    targets: &[Target],
    f: impl Fn(&reqwest::blocking::Client, &Target, usize) -> bool + Sync + Send + 'static,
) -> Run {
    let f = Arc::new(f);
    let next = Arc::new(AtomicUsize::new(0));
    let start = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|t| {
            let target = targets[t % targets.len()].clone();
            let (f, next) = (Arc::clone(&f), Arc::clone(&next));
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .expect("client");
                let mut took = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total {
                        return took;
                    }
                    let t0 = Instant::now();
                    assert!(f(&http, &target, i), "request {i} failed");
                    took.push(t0.elapsed());
                }
            })
        })
        .collect();
    let mut took: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("client thread"))
        .collect();
    let per_sec = total as f64 / start.elapsed().as_secs_f64();
    took.sort_unstable();
    let at = |q: f64| {
        let i = ((took.len() as f64 * q).ceil() as usize).clamp(1, took.len()) - 1;
        took[i].as_secs_f64() * 1000.0
    };
    Run {
        per_sec,
        p50_ms: at(0.50),
        p99_ms: at(0.99),
    }
}

fn put(http: &reqwest::blocking::Client, t: &Target, i: usize) -> bool {
    let mut req = http
        .put(format!("{}/bench/o{i}", t.account_url))
        .body(vec![(i % 251) as u8; 1024]);
    for (k, v) in &t.headers {
        req = req.header(*k, v);
    }
    req.send().is_ok_and(|r| r.status() == 201)
}

fn get(http: &reqwest::blocking::Client, t: &Target, i: usize) -> bool {
    let mut req = http.get(format!("{}/bench/o{i}", t.account_url));
    for (k, v) in &t.headers {
        req = req.header(*k, v);
    }
    req.send()
        .is_ok_and(|r| r.status() == 200 && r.bytes().is_ok_and(|b| b.len() == 1024))
}

fn login(base: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .get(format!("{base}/auth/v1.0"))
        .header("x-auth-user", "demo:demo")
        .header("x-auth-key", USER_KEY)
        .send()
        .expect("auth");
    assert_eq!(r.status(), 200);
    r.headers()["x-auth-token"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

fn create_container(t: &Target) {
    let mut req = reqwest::blocking::Client::new().put(format!("{}/bench", t.account_url));
    for (k, v) in &t.headers {
        req = req.header(*k, v);
    }
    assert!(req.send().expect("container PUT").status().is_success());
}

fn main() {
    let a = args();
    println!(
        "cluster bench: {} clients, {} objects of 1 KiB (profile: {})",
        a.clients,
        a.objects,
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );

    // One node.
    let dir = tempfile::tempdir().expect("temp dir");
    let single = OriginProc::start(dir.path());
    let t = Target {
        account_url: format!("{}/v1/AUTH_demo", single.url),
        headers: vec![("x-auth-token", login(&single.url))],
    };
    create_container(&t);
    let single_put = rate(a.clients, a.objects, std::slice::from_ref(&t), put);
    let single_get = rate(a.clients, a.objects, std::slice::from_ref(&t), get);
    drop(single);

    // Three nodes, three replicas; clients spread over every node's proxy role.
    let c = RingCluster::start(3, 8, 3, "");
    let targets: Vec<Target> = (0..3)
        .map(|i| Target {
            account_url: c.account_url(i),
            headers: vec![("x-auth-token", c.must_login(i))],
        })
        .collect();
    create_container(&targets[0]);
    let cluster_put = rate(a.clients, a.objects, &targets, put);
    let cluster_get = rate(a.clients, a.objects, &targets, get);
    // Straight to a replica's storage role (no proxy hop): what a ring-aware edge does. Every
    // node is a primary of every partition with 3 nodes and 3 replicas.
    let direct: Vec<Target> = (0..3)
        .map(|i| Target {
            account_url: c.account_url(i),
            headers: vec![
                ("x-outpost-internal", SECRET.to_owned()),
                ("x-outpost-direct", "data".to_owned()),
            ],
        })
        .collect();
    let direct_get = rate(a.clients, a.objects, &direct, get);

    println!();
    println!(
        "{:<40} {:>10} {:>8} {:>8} {:>10} {:>8} {:>8}",
        "setup", "PUT req/s", "p50 ms", "p99 ms", "GET req/s", "p50 ms", "p99 ms"
    );
    let row = |name: &str, put: Option<&Run>, get: &Run| {
        let put = put.map_or_else(
            || format!("{:>10} {:>8} {:>8}", "-", "-", "-"),
            |p| format!("{:>10.0} {:>8.2} {:>8.2}", p.per_sec, p.p50_ms, p.p99_ms),
        );
        println!(
            "{name:<40} {put} {:>10.0} {:>8.2} {:>8.2}",
            get.per_sec, get.p50_ms, get.p99_ms
        );
    };
    row("outpost, 1 node", Some(&single_put), &single_get);
    row(
        "outpost, 3 nodes x 3 replicas (proxy)",
        Some(&cluster_put),
        &cluster_get,
    );
    row("outpost, 3 replicas, GET to replica", None, &direct_get);
    if outpost_tests::which("swift-proxy-server").is_some() {
        println!(
            "swift-proxy-server is installed, but this bench does not set up a Swift ring; no Swift figures"
        );
    } else {
        println!(
            "OpenStack Swift: not installed (no swift-proxy-server on PATH); no Swift figures"
        );
    }
}
