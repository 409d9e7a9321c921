//! The edge reads the origin cluster's ring: a miss goes straight to a storage node holding the
//! object (one request in the cluster instead of proxy + replica), fails over to the other
//! replicas when one is down or lacks the object, falls back to the proxy last, and picks up a
//! new ring version without a restart.

use std::time::{Duration, Instant};

use outpost_tests::clients::pseudo_random;
use outpost_tests::cluster::{EdgeProc, EDGE_SECRET};
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

const HOST: &str = "public.demo.cdn.test";
const PART_POWER: u32 = 6;

/// `GET`s answered 200/206 by every running node of the cluster.
fn cluster_gets(c: &RingCluster) -> u64 {
    c.nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| {
            let text = reqwest::blocking::get(format!("{}/metrics", n.url))
                .and_then(|r| r.text())
                .expect("metrics");
            text.lines()
                .filter(|l| {
                    l.starts_with("outpost_origin_requests_total")
                        && l.contains("method=\"GET\"")
                        && (l.contains("status=\"200\"") || l.contains("status=\"206\""))
                })
                .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// The node the edge asks first for `object`: the partition's primaries in replica order,
/// rotated by the partition number (as `edge/src/ring.rs` does).
fn first_replica(c: &RingCluster, object: &str) -> usize {
    let part = partition(&path_hash("demo", "public", object), PART_POWER);
    let ring = c.ring_json();
    let mut order: Vec<usize> = ring["assignments"]
        .as_array()
        .expect("assignments")
        .iter()
        .map(|row| row[part as usize].as_u64().expect("device") as usize)
        .collect();
    let k = part as usize % order.len();
    order.rotate_left(k);
    order[0]
}

fn put(c: &RingCluster, token: &str, name: &str, body: Vec<u8>) {
    let r = c
        .http()
        .put(format!("{}/public/{name}", c.account_url(0)))
        .header("x-auth-token", token)
        .body(body)
        .send()
        .expect("put");
    assert_eq!(r.status(), 201, "PUT {name}");
}

#[test]
fn edge_reads_replicas_directly_and_fails_over() {
    let mut c = RingCluster::start(3, PART_POWER, 3, "");
    let token = c.must_login(0);
    let r = c
        .http()
        .put(format!("{}/public", c.account_url(0)))
        .header("x-auth-token", &token)
        .header("x-container-read", ".r:*")
        .send()
        .expect("container");
    assert!(r.status().is_success());
    let objects: Vec<(String, Vec<u8>)> = (0..12u64)
        .map(|i| (format!("o{i}.bin"), pseudo_random(i + 1, 20_000)))
        .collect();
    for (name, body) in &objects {
        put(&c, &token, name, body.clone());
    }
    let big = pseudo_random(99, 2_500_000);
    put(&c, &token, "big.bin", big.clone());

    let edge = EdgeProc::start_raw(
        c.dir.path(),
        "e1",
        &format!(
            r#"base_domain = "cdn.test"
[origin]
address = "{}"
internal_secret = "{EDGE_SECRET}"
ring = "{}"
[cache]
disk_dir = "{}"
"#,
            c.nodes[0].url.trim_start_matches("http://"),
            c.ring.display(),
            c.dir.path().join("e1-cache").display()
        ),
    );
    let client = edge.client(&[HOST]);
    let get = |name: &str| {
        client
            .get(format!("http://{HOST}:{}/{name}", edge.addr.port()))
            .send()
            .expect("edge get")
    };
    // The edge learns the public container from the feed.
    let start = Instant::now();
    while get("o0.bin").status() != 200 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "edge never served o0.bin"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Misses: one GET in the whole cluster per object (no proxy hop), one per slice.
    for (name, body) in &objects[1..6] {
        let before = cluster_gets(&c);
        let r = get(name);
        assert_eq!(r.status(), 200, "{name}");
        assert_eq!(r.headers()["x-outpost-cache"], "MISS");
        assert!(r.bytes().expect("body")[..] == body[..], "{name} bytes");
        assert_eq!(
            cluster_gets(&c) - before,
            1,
            "{name}: requests in the cluster"
        );
    }
    let before = cluster_gets(&c);
    let r = get("big.bin");
    assert_eq!(r.status(), 200);
    assert!(r.bytes().expect("body")[..] == big[..], "big.bin bytes");
    assert_eq!(
        cluster_gets(&c) - before,
        3,
        "2.4 MiB = 3 slices, one request each"
    );

    // A replica that lacks the object (it was down when it was written, no replication pass
    // since) answers 404: the edge reads it from the next replica.
    let name = (0..200)
        .map(|i| format!("late{i}.bin"))
        .find(|n| first_replica(&c, n) == 2)
        .expect("an object whose first replica is node 2");
    c.kill(2);
    let late = pseudo_random(7, 30_000);
    put(&c, &token, &name, late.clone());
    c.restart(2);
    let r = get(&name);
    assert_eq!(
        r.status(),
        200,
        "{name} after node 2 (first replica) missed it"
    );
    assert!(r.bytes().expect("body")[..] == late[..]);

    // Replicas down: the edge fails over to the one left, then to the proxy.
    c.kill(1);
    c.kill(2);
    for (name, body) in &objects[6..] {
        let r = get(name);
        assert_eq!(r.status(), 200, "{name} with two replicas down");
        assert!(r.bytes().expect("body")[..] == body[..], "{name} bytes");
    }

    // A new ring version is picked up without a restart.
    let mut ring = c.ring_json();
    let v = ring["version"].as_u64().expect("version");
    ring["version"] = serde_json::json!(v + 1);
    let tmp = c.dir.path().join("ring.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&ring).expect("json")).expect("write ring");
    std::fs::rename(&tmp, &c.ring).expect("replace ring");
    let start = Instant::now();
    loop {
        let m = reqwest::blocking::get(format!("{}/metrics", edge.url))
            .and_then(|r| r.text())
            .expect("edge metrics");
        if m.contains(&format!("outpost_edge_ring_version {}", v + 1)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the edge kept ring version {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
