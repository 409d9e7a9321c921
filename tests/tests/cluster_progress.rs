//! Progress of a rebalance's data movement: after a 4th node joins, the old nodes report a
//! handoff backlog at once (before any pass); a replication pass that runs while the new node
//! is paused shows its partitions done / to do and its rate in the status JSON, on
//! `/metrics` and in `outpost cluster status`; once passes converge, the backlog is 0 and the
//! status shows the last pass's totals. Piped, the CLI writes no escape codes.

use std::process::Command;
use std::time::{Duration, Instant};

use outpost_tests::cluster::SECRET;
use outpost_tests::outpost_bin;
use outpost_tests::ring_cluster::RingCluster;

/// Runs `outpost cluster status` with stdout and stderr piped; returns (success, stdout),
/// after checking that neither stream holds an escape code.
fn cluster_status(c: &RingCluster) -> (bool, String) {
    let out = Command::new(outpost_bin())
        .args([
            "cluster",
            "status",
            "--ring",
            c.ring.to_str().expect("utf-8"),
            "--secret",
            SECRET,
        ])
        .output()
        .expect("spawn outpost cluster status");
    let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
    let stderr = String::from_utf8(out.stderr).expect("utf-8 stderr");
    assert!(
        !stdout.contains('\x1b') && !stderr.contains('\x1b'),
        "escape codes in piped output:\n{stdout}\n{stderr}"
    );
    assert!(!stdout.contains('\r'), "carriage returns in piped output");
    (out.status.success(), stdout)
}

/// The backlog column of node `port`'s line in the replication section.
fn backlog_of(out: &str, port: u16) -> u64 {
    let section = out
        .split("\nnode ")
        .nth(1)
        .unwrap_or_else(|| panic!("no replication section in\n{out}"));
    let line = section
        .lines()
        .find(|l| l.starts_with(&format!("127.0.0.1:{port} ")))
        .unwrap_or_else(|| panic!("no replication line for {port} in\n{out}"));
    line.split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no backlog in {line:?}"))
}

fn must_poll<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn rebalance_shows_pass_progress_and_the_backlog_draining_to_zero() {
    const PP: u32 = 6;
    const N: usize = 120;
    let mut c = RingCluster::start(3, PP, 3, "");
    let token = c.must_login(0);
    let http = c.http().clone();
    let r = http
        .put(format!("{}/photos", c.account_url(0)))
        .header("x-auth-token", &token)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    for i in 0..N {
        let r = http
            .put(format!("{}/photos/p-{i}", c.account_url(0)))
            .header("x-auth-token", &token)
            .body(vec![b'x'; 1000 + i])
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (ok, out) = cluster_status(&c);
    assert!(ok, "{out}");
    assert!(out.contains("no pass yet"), "{out}");

    // A 4th node joins: the old nodes hold data they are no longer primaries for.
    let new = c.add_device();
    c.launch_node(new, "");
    outpost_tests::cluster::must_become_healthy(
        &format!("{}/healthz", c.nodes[new].url),
        Duration::from_secs(30),
    );
    c.must_rebalance();
    let version = c.ring_json()["version"].as_u64().unwrap();
    c.must_load_ring(version, Duration::from_secs(20));
    let backlog = |c: &RingCluster| -> Vec<u64> {
        (0..3)
            .map(|i| c.must_status(i)["handoff_partitions"].as_u64().unwrap())
            .collect()
    };
    // Counted when the ring loads, before any pass.
    let before = must_poll(
        "a handoff backlog after the rebalance",
        Duration::from_secs(20),
        || {
            let b = backlog(&c);
            (b.iter().sum::<u64>() > 0).then_some(b)
        },
    );
    let (ok, out) = cluster_status(&c);
    assert!(ok, "{out}");
    for (node, want) in c.nodes.iter().zip(&before).take(3) {
        assert_eq!(backlog_of(&out, node.port), *want, "{out}");
    }
    let moving = (0..3)
        .find(|&i| before[i] > 0)
        .expect("a node with a backlog");

    // A pass on a node with a backlog while the new node does not answer: it runs for as long
    // as its requests to the new node wait, and shows its progress meanwhile.
    c.pause(new);
    let url = c.nodes[moving].url.clone();
    let http2 = http.clone();
    let pass = std::thread::spawn(move || {
        http2
            .post(format!("{url}/internal/cluster/replicate"))
            .header("x-outpost-internal", SECRET)
            .send()
            .map(|r| r.status())
    });
    let running = must_poll("a running pass", Duration::from_secs(30), || {
        let s = c.must_status(moving);
        (s["pass_running"] == true && s["progress"][1].as_u64() > Some(0)).then_some(s)
    });
    let total = running["progress"][1].as_u64().unwrap();
    assert!(
        running["progress"][0].as_u64().unwrap() <= total,
        "{running}"
    );
    for k in ["pass_elapsed_ms", "pass_rows", "pass_pushed", "pass_bytes"] {
        assert!(running[k].is_u64(), "{k} missing: {running}");
    }
    let metrics = http
        .get(format!("{}/metrics", c.nodes[moving].url))
        .header("x-outpost-internal", SECRET)
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("outpost_cluster_replication_pass_running 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!(
            "outpost_cluster_replication_pass_partitions {total}\n"
        )),
        "{metrics}"
    );
    // The paused node makes the CLI fail (it reports it DOWN), but the running pass shows.
    let (ok, out) = cluster_status(&c);
    eprintln!("while a pass runs:\n{out}");
    assert!(!ok && out.contains("DOWN"), "{out}");
    let line = out
        .lines()
        .find(|l| {
            l.starts_with(&format!("127.0.0.1:{} ", c.nodes[moving].port)) && l.contains("pass ")
        })
        .unwrap_or_else(|| panic!("no pass line for node {moving}:\n{out}"));
    assert!(line.contains(&format!("/{total} partitions")), "{line}");
    assert!(line.contains("rows/s") && line.contains("ETA"), "{line}");
    c.resume(new);
    let status = pass.join().unwrap().expect("replicate request");
    assert!(status.is_success(), "{status}");

    // Passes until nothing moves: the backlog drains to 0 and the last pass's totals show.
    c.must_converge(6);
    c.must_hold_exact_copies();
    assert_eq!(backlog(&c), vec![0, 0, 0]);
    let s = c.must_status(moving);
    assert_eq!(s["pass_running"], false, "{s}");
    assert!(s["last_pass_rows"].as_u64().unwrap() > 0, "{s}");
    assert_eq!(s["progress"][0], s["progress"][1], "{s}");
    let pushed_somewhere = (0..4).any(|i| {
        let s = c.must_status(i);
        s["pushed"].as_u64() > Some(0) && s["last_pass_bytes"].is_u64()
    });
    assert!(pushed_somewhere);
    let (ok, out) = cluster_status(&c);
    eprintln!("converged:\n{out}");
    assert!(ok, "{out}");
    for n in &c.nodes {
        assert_eq!(backlog_of(&out, n.port), 0, "{out}");
    }
    assert!(
        out.contains("last pass ") && out.contains(", took "),
        "{out}"
    );
}
