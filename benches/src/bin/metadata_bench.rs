//! Metadata ceiling bench: every node of a ring keeps every object row. For N rows in one
//! container of a 3-node, 3-replica ring it measures the rows and database size per node,
//! listing pages through the Swift API, a replication pass with nothing to do (the steady cost
//! of comparing every row), and the catch-up of a fourth node added to the ring (every row
//! must reach it).
//!
//! Run: `benches/metadata_bench.sh [--rows N] [--release]` (default 1,000,000). The rows are
//! inserted straight into each node's database (`Db::put_objects`, 10,000 per transaction;
//! every node is a primary of every partition, so each holds each version's data: an empty
//! file, so the figures are the metadata's) while the nodes are stopped; everything after goes
//! through the real processes.

use std::time::{Duration, Instant};

use outpost_origin::db::{Db, Meta, ObjectRow};
use outpost_origin::files::Files;
use outpost_origin::hlc::Clock;
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

const PART_POWER: u32 = 8;

/// `--rows N` (default 1,000,000) and `--no-data` (rows only, as listing rows: no data
/// files, for row counts whose million directories would not fit the disk; every suffix then
/// differs towards primaries, so the idle pass is the worst case of a pass).
/// `--no-catchup` skips the new node.
fn args() -> (usize, bool, bool) {
    let mut it = std::env::args().skip(1);
    let (mut rows, mut data, mut catchup) = (1_000_000, true, true);
    while let Some(k) = it.next() {
        match k.as_str() {
            "--rows" => rows = it.next().and_then(|v| v.parse().ok()).expect("--rows N"),
            "--no-data" => data = false,
            "--no-catchup" => catchup = false,
            other => panic!("unknown argument {other}"),
        }
    }
    (rows, data, catchup)
}

/// One replication pass on `url`, waited for however long it takes (the harness client
/// gives up after a minute).
fn replicate(url: &str) -> serde_json::Value {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(3600))
        .build()
        .expect("client");
    let r = http
        .post(format!("{url}/internal/cluster/replicate"))
        .header("x-outpost-internal", outpost_tests::cluster::SECRET)
        .send()
        .expect("replicate");
    assert!(r.status().is_success(), "replicate: {}", r.status());
    serde_json::from_slice(&r.bytes().expect("report")).expect("report json")
}

fn name(i: usize) -> String {
    format!("photos/{:04}/{:07}.jpg", i / 1000, i)
}

fn db_bytes(dir: &std::path::Path) -> u64 {
    ["meta.sqlite3", "meta.sqlite3-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

fn main() {
    let (n, with_data, catchup) = args();
    let mut c = RingCluster::start(3, PART_POWER, 3, "");
    let token = c.must_login(0);
    let r = c
        .http()
        .put(format!("{}/big", c.account_url(0)))
        .header("x-auth-token", &token)
        .send()
        .expect("container PUT");
    assert_eq!(r.status(), 201);
    c.must_converge(3);
    for i in 0..3 {
        c.kill(i);
    }

    // The same rows on every node, as a fully replicated container would leave them.
    let clock = Clock::new();
    let rows: Vec<ObjectRow> = (0..n)
        .map(|j| {
            let object = name(j);
            let h = path_hash("demo", "big", &object);
            ObjectRow {
                account: "demo".into(),
                container: "big".into(),
                name: object,
                ts: clock.now(),
                deleted: false,
                size: 0,
                etag: "d41d8cd98f00b204e9800998ecf8427e".into(),
                content_type: "image/jpeg".into(),
                meta: Meta::new(),
                delete_at: None,
                slo: false,
                part: partition(&h, PART_POWER),
                listing_only: !with_data,
            }
        })
        .collect();
    let start = Instant::now();
    std::thread::scope(|s| {
        for node in &c.nodes {
            let rows = &rows;
            s.spawn(move || {
                let db = Db::open(&node.data).expect("open db");
                for chunk in rows.chunks(10_000) {
                    db.put_objects(chunk).expect("bulk insert");
                }
                let files = Files::open(&node.data).expect("files");
                for r in rows.iter().filter(|_| with_data) {
                    let h = path_hash(&r.account, &r.container, &r.name);
                    let p = files.data_path(r.part, &h, r.ts);
                    std::fs::create_dir_all(p.parent().expect("dir")).expect("mkdir");
                    std::fs::write(&p, b"").expect("data file");
                }
            });
        }
    });
    println!(
        "rows: {n} per node ({}), inserted into 3 databases in {:.1} s",
        if with_data {
            "each with an empty data file"
        } else {
            "listing rows, no data files"
        },
        start.elapsed().as_secs_f64()
    );
    for i in 0..3 {
        c.restart(i);
    }
    for i in 0..3 {
        println!(
            "node {i}: database {:.1} MiB ({:.0} bytes/row)",
            mib(db_bytes(&c.nodes[i].data)),
            db_bytes(&c.nodes[i].data) as f64 / n as f64
        );
    }

    // Listings through the Swift API.
    let token = c.must_login(1);
    for (what, marker) in [
        ("first page", String::new()),
        ("from the middle", name(n / 2)),
    ] {
        let start = Instant::now();
        let r = c
            .http()
            .get(format!("{}/big", c.account_url(1)))
            .query(&[
                ("format", "json"),
                ("limit", "10000"),
                ("marker", marker.as_str()),
            ])
            .header("x-auth-token", &token)
            .send()
            .expect("listing");
        assert_eq!(r.status(), 200);
        let body = r.bytes().expect("body");
        println!(
            "listing page of 10,000 of {n} ({what}): {:.1} ms ({} KiB)",
            start.elapsed().as_secs_f64() * 1e3,
            body.len() / 1024
        );
    }

    // A pass with nothing to push: what every node pays every replication_interval.
    let start = Instant::now();
    let r = replicate(&c.nodes[0].url);
    println!(
        "idle replication pass on node 0: {:.1} s ({} rows examined, {} pushed)",
        start.elapsed().as_secs_f64(),
        r["rows"],
        r["pushed"]
    );

    if !catchup {
        return;
    }
    // A fourth node joins: every row must reach it.
    let i = c.add_device();
    let out = c.must_rebalance();
    println!("rebalance for node 3: {}", out.lines().last().unwrap_or(""));
    c.launch_node(i, "");
    outpost_tests::cluster::must_become_healthy(
        &format!("{}/healthz", c.nodes[i].url),
        Duration::from_secs(30),
    );
    let version = c.ring_json()["version"].as_u64().expect("ring version");
    c.must_load_ring(version, Duration::from_secs(30));
    let start = Instant::now();
    let mut rounds = 0;
    loop {
        rounds += 1;
        let mut busy = 0;
        for node in &c.nodes {
            let r = replicate(&node.url);
            busy += r["pushed"].as_u64().unwrap_or(0) + r["errors"].as_u64().unwrap_or(0);
        }
        if busy == 0 || rounds == 6 {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let status = c.must_status(i);
    println!(
        "catch-up of a new node: {:.1} s in {rounds} rounds ({:.0} rows/s), its database {:.1} MiB",
        secs,
        n as f64 / secs,
        mib(db_bytes(&c.nodes[i].data))
    );
    println!("new node status: {status}");
}
