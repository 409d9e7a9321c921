//! Deletes made while one node is cut off (SIGSTOP) win when it returns: the tombstones reach
//! it, and the deleted objects never come back on any node, by read, listing or disk.

use std::time::Duration;

use md5::Digest;
use outpost_tests::cluster::SECRET;
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

const PART_POWER: u32 = 4;

#[test]
fn delete_during_partition_never_comes_back() {
    let c = RingCluster::start(3, PART_POWER, 3, "");
    let tokens: Vec<String> = (0..3).map(|i| c.must_login(i)).collect();
    let http = c.http().clone();
    let url = |n: usize, o: &str| format!("{}/docs/{o}", c.account_url(n));
    let r = http
        .put(format!("{}/docs", c.account_url(0)))
        .header("x-auth-token", &tokens[0])
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for i in 0..20 {
        let r = http
            .put(url(i % 3, &format!("obj-{i}")))
            .header("x-auth-token", &tokens[i % 3])
            .body(format!("version one of {i}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    c.pause(2);
    // Deletes and an overwrite while node 2 cannot answer (each waits out node_timeout for it,
    // so they run side by side).
    let jobs: Vec<_> = (0..10)
        .map(|i| {
            let (http, u, t) = (
                http.clone(),
                url(i % 2, &format!("obj-{i}")),
                tokens[i % 2].clone(),
            );
            std::thread::spawn(move || {
                http.delete(u)
                    .header("x-auth-token", t)
                    .send()
                    .unwrap()
                    .status()
            })
        })
        .collect();
    for j in jobs {
        assert_eq!(j.join().unwrap(), 204);
    }
    let r = http
        .put(url(0, "obj-15"))
        .header("x-auth-token", &tokens[0])
        .body("version two")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    c.resume(2);

    // Before any repair, X-Newest through the returned node already sees the tombstones.
    for i in 0..10 {
        let r = http
            .get(url(2, &format!("obj-{i}")))
            .header("x-auth-token", &tokens[2])
            .header("x-newest", "true")
            .timeout(Duration::from_secs(10))
            .send()
            .unwrap();
        assert_eq!(
            r.status(),
            404,
            "obj-{i} with X-Newest via the returned node"
        );
    }

    c.must_converge(4);
    for (n, token) in tokens.iter().enumerate() {
        for i in 0..10 {
            let r = http
                .get(url(n, &format!("obj-{i}")))
                .header("x-auth-token", token)
                .send()
                .unwrap();
            assert_eq!(r.status(), 404, "deleted obj-{i} came back via node {n}");
            let h = path_hash("demo", "docs", &format!("obj-{i}"));
            assert!(
                c.read_data(n, partition(&h, PART_POWER), &h).is_none(),
                "node {n} still holds the data of deleted obj-{i}"
            );
        }
        let r = http
            .get(url(n, "obj-15"))
            .header("x-auth-token", token)
            .send()
            .unwrap();
        assert_eq!(r.text().unwrap(), "version two", "obj-15 via node {n}");
        let listing = http
            .get(format!("{}/docs", c.account_url(n)))
            .header("x-auth-token", token)
            .send()
            .unwrap()
            .text()
            .unwrap();
        let names: Vec<&str> = listing.lines().collect();
        assert_eq!(names.len(), 10, "listing on node {n}: {names:?}");
        assert!(names.iter().all(|n| {
            let i: usize = n.trim_start_matches("obj-").parse().unwrap();
            i >= 10
        }));
    }
    c.must_hold_exact_copies();

    // Each node's change feed carries every change in the cluster, wherever it was made, so an
    // edge following any one node purges everything: the deletes (made via nodes 0 and 1),
    // the overwrite (via node 0) and an explicit purge sent to node 1.
    let r = http
        .post(format!(
            "{}/internal/purge?account=demo&container=docs&object=obj-19",
            c.nodes[1].url
        ))
        .header("x-outpost-internal", SECRET)
        .send()
        .unwrap();
    assert!(r.status().is_success());
    let new_etag = format!("{:x}", md5::Md5::digest(b"version two"));
    for (n, node) in c.nodes.iter().enumerate() {
        let feed: serde_json::Value = serde_json::from_slice(
            &http
                .get(format!("{}/internal/changes?since=0&limit=10000", node.url))
                .header("x-outpost-internal", SECRET)
                .send()
                .unwrap()
                .bytes()
                .unwrap(),
        )
        .unwrap();
        let changes = feed["changes"].as_array().unwrap();
        let has = |kind: &str, obj: &str| {
            changes
                .iter()
                .any(|ch| ch["kind"] == kind && ch["object"] == obj)
        };
        for i in 0..10 {
            assert!(
                has("object-delete", &format!("obj-{i}")),
                "node {n} feed lacks the delete of obj-{i}"
            );
        }
        assert!(
            changes.iter().any(|ch| ch["kind"] == "object-put"
                && ch["object"] == "obj-15"
                && ch["etag"] == new_etag.as_str()),
            "node {n} feed lacks the overwrite of obj-15"
        );
        assert!(
            changes
                .iter()
                .any(|ch| ch["kind"].as_str().unwrap_or("").contains("purge")
                    && ch["object"] == "obj-19"),
            "node {n} feed lacks the purge: {changes:?}"
        );
    }
}
