//! Growing the cluster: a 4th node joins and the ring is rebalanced while clients read; no
//! read fails, partitions move to the new node and leave the old ones. And a write whose
//! primary is down lands on a handoff node, then moves home when the primary returns.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use outpost_tests::cluster::must_become;
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

#[test]
fn add_a_fourth_node_under_read_load() {
    const PP: u32 = 6;
    let mut c = RingCluster::start(3, PP, 3, "");
    let tokens: Vec<String> = (0..3).map(|i| c.must_login(i)).collect();
    let http = c.http().clone();
    let r = http
        .put(format!("{}/site", c.account_url(0)))
        .header("x-auth-token", &tokens[0])
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    const N: usize = 300;
    for i in 0..N {
        let r = http
            .put(format!("{}/site/page-{i}", c.account_url(i % 3)))
            .header("x-auth-token", &tokens[i % 3])
            .body(format!("page {i}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let before = c.data_files(0);

    let stop = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicUsize::new(0));
    let readers: Vec<_> = (0..3)
        .map(|t| {
            let (stop, reads, http) = (stop.clone(), reads.clone(), http.clone());
            let urls: Vec<String> = (0..3).map(|n| c.account_url(n)).collect();
            let tokens = tokens.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                let mut k = t;
                while !stop.load(Ordering::SeqCst) {
                    let (i, n) = ((k * 37) % N, k % 3);
                    let r = http
                        .get(format!("{}/site/page-{i}", urls[n]))
                        .header("x-auth-token", &tokens[n])
                        .send();
                    match r {
                        Ok(r) if r.status() == 200 => {
                            let body = r.text().unwrap_or_default();
                            if body != format!("page {i}") {
                                failures.push(format!("page-{i} via {n}: {body:?}"));
                            }
                        }
                        Ok(r) => failures.push(format!("page-{i} via {n}: {}", r.status())),
                        Err(e) => failures.push(format!("page-{i} via {n}: {e}")),
                    }
                    reads.fetch_add(1, Ordering::SeqCst);
                    k += 3;
                }
                failures
            })
        })
        .collect();

    let new = c.add_device();
    c.launch_node(new, "");
    outpost_tests::cluster::must_become_healthy(
        &format!("{}/healthz", c.nodes[new].url),
        Duration::from_secs(30),
    );
    let out = c.must_rebalance();
    let moved: u64 = out
        .split("moved ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no move count in {out:?}"));
    assert!(moved > 0, "{out}");
    let version = c.ring_json()["version"].as_u64().unwrap();
    c.must_load_ring(version, Duration::from_secs(20));
    let rounds = c.must_converge(6);
    eprintln!("rebalance moved {moved} partition replicas; converged in {rounds} round(s)");
    let reads_during = reads.load(Ordering::SeqCst);
    stop.store(true, Ordering::SeqCst);
    let failures: Vec<String> = readers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(
        failures.is_empty(),
        "{} reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(10)]
    );
    assert!(reads_during > 0);

    c.must_hold_exact_copies();
    let on_new = c.data_files(new);
    assert!(!on_new.is_empty(), "no partition moved to the new node");
    let after = c.data_files(0);
    let lost: BTreeSet<&u32> = before.keys().filter(|p| !after.contains_key(p)).collect();
    assert!(!lost.is_empty(), "node 0 kept every partition");
    let t = c.must_login(new);
    for i in 0..N {
        let r = http
            .get(format!("{}/site/page-{i}", c.account_url(new)))
            .header("x-auth-token", &t)
            .send()
            .unwrap();
        assert_eq!(r.text().unwrap(), format!("page {i}"));
    }
}

#[test]
fn handoff_takes_writes_for_a_dead_primary_and_hands_them_home() {
    const PP: u32 = 4;
    let mut c = RingCluster::start(4, PP, 3, "");
    let token = c.must_login(0);
    let http = c.http().clone();
    let r = http
        .put(format!("{}/inbox", c.account_url(0)))
        .header("x-auth-token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    // Objects whose primaries include node 3 but not node 0.
    let names: Vec<String> = (0..500)
        .map(|i| format!("msg-{i}"))
        .filter(|o| {
            let p = c.primaries(partition(&path_hash("demo", "inbox", o), PP));
            p.contains(&3) && !p.contains(&0)
        })
        .take(10)
        .collect();
    assert_eq!(names.len(), 10);
    c.kill(3);
    for o in &names {
        let r = http
            .put(format!("{}/inbox/{o}", c.account_url(0)))
            .header("x-auth-token", &token)
            .body(format!("body of {o}"))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201, "{o}");
        // Node 0 is the only non-primary alive: it takes the handoff copy (after the answer:
        // the proxy answers at quorum and finishes the third copy in the background).
        let h = path_hash("demo", "inbox", o);
        must_become(
            &format!("{o} on the handoff"),
            Duration::from_secs(30),
            || c.read_data(0, partition(&h, PP), &h).is_some(),
        );
    }
    assert!(c.must_status(0)["handoff_writes"].as_u64().unwrap() >= 10);
    c.restart(3);
    c.must_converge(4);
    c.must_hold_exact_copies();
    for o in &names {
        let h = path_hash("demo", "inbox", o);
        assert!(
            c.read_data(3, partition(&h, PP), &h).is_some(),
            "{o} did not move home"
        );
        assert!(
            c.read_data(0, partition(&h, PP), &h).is_none(),
            "{o} still on the handoff"
        );
    }
    assert_eq!(c.must_status(0)["handoff_partitions"], 0);
}
