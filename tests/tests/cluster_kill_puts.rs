//! A 3-node, 3-replica cluster keeps every acknowledged write through the loss of a node:
//! 8 clients PUT 10,000 objects through all nodes while one node is killed with SIGKILL; every
//! PUT that got 201 reads back with identical bytes through every node, and after a restart and
//! replication every partition has three identical copies on disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};

const OBJECTS: usize = 10_000;
const CLIENTS: usize = 8;
const PART_POWER: u32 = 6;

fn body_of(i: usize) -> Vec<u8> {
    // Distinct content per object, 100-400 bytes.
    let len = 100 + (i * 7919) % 300;
    (0..len).map(|k| ((i * 31 + k * 17) % 251) as u8).collect()
}

#[test]
fn acknowledged_puts_survive_a_killed_node() {
    // A write killed between its rename and its row commit on the killed node, that no
    // other node got, leaves an orphan file there: reclaimed after the grace.
    let mut c = RingCluster::start(3, PART_POWER, 3, "orphan_grace = \"2s\"\n");
    let tokens: Vec<String> = (0..3).map(|i| c.must_login(i)).collect();
    let r = c
        .http()
        .put(format!("{}/photos", c.account_url(0)))
        .header("x-auth-token", &tokens[0])
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);

    let urls: Vec<String> = (0..3).map(|i| c.account_url(i)).collect();
    let done = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<HashMap<usize, Vec<u8>>>> = Arc::new(Mutex::new(HashMap::new()));
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let (urls, tokens, done, acked) =
                (urls.clone(), tokens.clone(), done.clone(), acked.clone());
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::builder()
                    .timeout(Duration::from_secs(30))
                    .build()
                    .unwrap();
                let mut failed = 0;
                for i in (t..OBJECTS).step_by(CLIENTS) {
                    let n = i % 3;
                    let body = body_of(i);
                    let r = http
                        .put(format!("{}/photos/obj-{i}", urls[n]))
                        .header("x-auth-token", &tokens[n])
                        .body(body.clone())
                        .send();
                    match r {
                        Ok(r) if r.status() == 201 => {
                            acked.lock().unwrap().insert(i, body);
                        }
                        _ => failed += 1,
                    }
                    done.fetch_add(1, Ordering::SeqCst);
                }
                failed
            })
        })
        .collect();
    // Kill node 2 once a third of the PUTs are done.
    let deadline = Instant::now() + Duration::from_secs(300);
    while done.load(Ordering::SeqCst) < OBJECTS / 3 {
        assert!(Instant::now() < deadline, "PUTs are not progressing");
        std::thread::sleep(Duration::from_millis(5));
    }
    c.kill(2);
    let failed: usize = clients.into_iter().map(|h| h.join().unwrap()).sum();
    let acked = Arc::try_unwrap(acked).unwrap().into_inner().unwrap();
    eprintln!(
        "{} PUTs acknowledged, {failed} failed (sent to the dead node) in {:?}",
        acked.len(),
        started.elapsed()
    );
    assert_eq!(acked.len() + failed, OBJECTS);
    // Only requests sent to the killed node may fail.
    assert!(failed <= OBJECTS / 3 + CLIENTS, "{failed} PUTs failed");
    assert!(acked.len() >= OBJECTS / 2);

    // Every acknowledged PUT reads back through both surviving nodes.
    let http = c.http().clone();
    for (k, (i, body)) in acked.iter().enumerate() {
        let n = k % 2;
        let r = http
            .get(format!("{}/photos/obj-{i}", urls[n]))
            .header("x-auth-token", &tokens[n])
            .send()
            .unwrap();
        assert_eq!(r.status(), 200, "obj-{i} via node {n}");
        assert_eq!(&r.bytes().unwrap()[..], &body[..], "obj-{i} via node {n}");
    }

    // Restart the dead node and replicate: three identical copies of everything.
    c.restart(2);
    let rounds = c.must_converge(4);
    eprintln!("replication converged in {rounds} round(s)");
    c.must_settle_copies(Duration::from_secs(60));
    let token2 = c.must_login(2);
    for (i, body) in &acked {
        let h = path_hash("demo", "photos", &format!("obj-{i}"));
        let part = partition(&h, PART_POWER);
        let want = hex(&Md5::digest(body));
        for n in 0..3 {
            let got = c
                .read_data(n, part, &h)
                .unwrap_or_else(|| panic!("obj-{i} missing on node {n}"));
            assert_eq!(hex(&Md5::digest(&got)), want, "obj-{i} on node {n}");
        }
    }
    // And the restarted node serves them itself (a sample, through its proxy role).
    for (i, body) in acked.iter().take(300) {
        let r = http
            .get(format!("{}/photos/obj-{i}", urls[2]))
            .header("x-auth-token", &token2)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(&r.bytes().unwrap()[..], &body[..]);
    }
    // Listings agree on every node. A PUT that failed (its proxy died, or too few replicas
    // answered in time) may still have been stored by some replicas: it may exist, and after
    // replication it exists everywhere.
    let mut counts = Vec::new();
    for (n, url) in urls.iter().enumerate() {
        let token = c.must_login(n);
        let r = http
            .head(format!("{url}/photos"))
            .header("x-auth-token", &token)
            .send()
            .unwrap();
        let count: usize = r.headers()["x-container-object-count"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(
            count >= acked.len() && count <= acked.len() + failed,
            "object count {count} on node {n}, {} acknowledged",
            acked.len()
        );
        counts.push(count);
    }
    assert!(counts.iter().all(|&n| n == counts[0]), "{counts:?}");
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
