//! A corrupted replica is found by the auditor, quarantined, and restored by the replicator
//! from a good copy. `outpost cluster status` reports it.

use outpost_tests::cluster::SECRET;
use outpost_tests::must_run_outpost;
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

const PART_POWER: u32 = 4;

#[test]
fn corrupt_replica_is_quarantined_and_restored() {
    let c = RingCluster::start(3, PART_POWER, 3, "");
    let token = c.must_login(0);
    let http = c.http().clone();
    // The token from node 0 works on node 2, and the account created by that first login
    // already exists there.
    let r = http
        .head(c.account_url(2))
        .header("x-auth-token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204, "account HEAD via another node");
    let r = http
        .put(format!("{}/media", c.account_url(0)))
        .header("x-auth-token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for i in 0..20 {
        let r = http
            .put(format!("{}/media/clip-{i}", c.account_url(0)))
            .header("x-auth-token", &token)
            .body(vec![i as u8; 4096])
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // Server-side copies read the source through the replicas and write three new copies.
    let r = http
        .put(format!("{}/media/copy-a", c.account_url(1)))
        .header("x-auth-token", &token)
        .header("x-copy-from", "/media/clip-3")
        .header("x-object-meta-kind", "copy")
        .header("content-length", "0")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .request(
            reqwest::Method::from_bytes(b"COPY").unwrap(),
            format!("{}/media/clip-4", c.account_url(2)),
        )
        .header("x-auth-token", &token)
        .header("destination", "media/copy-b")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for (name, src) in [("copy-a", 3u8), ("copy-b", 4)] {
        let r = http
            .get(format!("{}/media/{name}", c.account_url(0)))
            .header("x-auth-token", &token)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "{name}");
        if name == "copy-a" {
            assert_eq!(r.headers()["x-object-meta-kind"], "copy");
        }
        assert_eq!(r.bytes().unwrap().to_vec(), vec![src; 4096], "{name}");
        let h = path_hash("demo", "media", name);
        for n in 0..3 {
            assert!(
                c.read_data(n, partition(&h, PART_POWER), &h).is_some(),
                "{name} on node {n}"
            );
        }
    }

    // Flip bytes of clip-7's file on node 1, keeping its length.
    let h = path_hash("demo", "media", "clip-7");
    let part = partition(&h, PART_POWER);
    let dir = c.nodes[1]
        .data
        .join("objects")
        .join(part.to_string())
        .join(&h[..3])
        .join(&h);
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "data"))
        .expect("clip-7 has a data file on node 1");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[100] ^= 0xff;
    bytes[2000] ^= 0x55;
    std::fs::write(&file, &bytes).unwrap();

    let rep = c.must_audit(1);
    assert_eq!(rep["quarantined"], 1, "{rep}");
    assert!(rep["checked"].as_u64().unwrap() >= 20, "{rep}");
    assert!(
        c.read_data(1, part, &h).is_none(),
        "the corrupt copy is still in place"
    );
    let quarantined = std::fs::read_dir(c.nodes[1].data.join("quarantine"))
        .unwrap()
        .count();
    assert_eq!(quarantined, 1);
    // The good copies are untouched.
    for n in [0, 2] {
        assert_eq!(c.must_audit(n)["quarantined"], 0);
    }

    c.must_converge(4);
    assert_eq!(c.read_data(1, part, &h).unwrap(), vec![7u8; 4096]);
    assert_eq!(c.must_audit(1)["quarantined"], 0);
    c.must_hold_exact_copies();
    assert_eq!(c.must_status(1)["quarantined"], 1);

    // The operator view lists every node with its counters.
    let out = must_run_outpost(&[
        "cluster",
        "status",
        "--ring",
        c.ring.to_str().unwrap(),
        "--secret",
        SECRET,
    ]);
    for n in &c.nodes {
        assert!(out.contains(&format!("127.0.0.1:{}", n.port)), "{out}");
    }
    assert!(!out.contains("DOWN"), "{out}");
}
