//! `outpost dev --nodes 3` as a user tries a cluster: a 20 MB file uploaded with
//! `swift upload --segment-size 5M` through one node comes back byte-identical through another
//! node and through the edge; with one node killed (SIGKILL) the downloads still work and new
//! uploads still succeed; restarted, the node gets its copies back from replication.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use outpost_tests::clients::{must_run_within, pseudo_random};
use outpost_tests::cluster::{must_become, must_become_healthy};
use outpost_tests::{must_run_outpost, outpost_bin};

/// One node as the banner lists it.
struct DevNode {
    url: String,
    pid: u32,
    config: PathBuf,
}

/// The running `outpost dev --nodes 3` and what its banner said.
struct Dev {
    child: Child,
    edge: String,
    nodes: Vec<DevNode>,
    status_cmd: Vec<String>,
}

impl Drop for Dev {
    fn drop(&mut self) {
        // Its nodes exit with it (their stdin closes).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dev(data: &Path) -> Dev {
    let mut child = Command::new(outpost_bin())
        .args(["dev", "--nodes", "3", "--edge-port", "0", "--data"])
        .arg(data)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn outpost dev --nodes 3");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let (mut edge, mut nodes, mut status_cmd) = (None, Vec::new(), Vec::new());
    let mut lines = out.lines();
    for line in lines.by_ref() {
        let line = line.expect("banner line");
        let words: Vec<&str> = line.split_whitespace().collect();
        if line.starts_with("Edge:") {
            edge = Some(words[1].to_owned());
        } else if line.starts_with("Node ") {
            // Node 0:   http://127.0.0.1:P   (pid N, restart: outpost origin --config F)
            let pid = words[4].trim_end_matches(',').parse().expect("pid");
            let config = PathBuf::from(words[9].trim_end_matches(')'));
            nodes.push(DevNode {
                url: words[2].to_owned(),
                pid,
                config,
            });
        } else if let Some(cmd) = line.strip_prefix("Cluster status:") {
            status_cmd = cmd.split_whitespace().skip(1).map(str::to_owned).collect();
        } else if line == "Stop with Ctrl-C." {
            break;
        }
    }
    std::thread::spawn(move || for _ in lines {});
    assert_eq!(nodes.len(), 3, "three nodes in the banner");
    Dev {
        child,
        edge: edge.expect("edge URL in the banner"),
        nodes,
        status_cmd,
    }
}

fn secret(data: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(data.join("dev-secrets.toml")).expect("dev secrets");
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == name).then(|| v.trim().trim_matches('"').to_owned())
        })
        .unwrap_or_else(|| panic!("{name} in dev-secrets.toml"))
}

fn swift(node: &str, key: &str, dir: &Path, args: &[&str]) {
    must_run_within(
        Command::new("swift")
            .current_dir(dir)
            .args([
                "-A",
                &format!("{node}/auth/v1.0"),
                "-U",
                "demo:demo",
                "-K",
                key,
            ])
            .args(args),
        Duration::from_secs(120),
    );
}

fn must_download(node: &str, key: &str, dir: &Path, object: &str) -> Vec<u8> {
    let out = dir.join(format!("{object}.down"));
    let _ = std::fs::remove_file(&out);
    let o = out.to_str().expect("utf-8");
    swift(node, key, dir, &["download", "public", object, "-o", o]);
    std::fs::read(&out).expect("downloaded file")
}

fn must_get(url: &str, range: Option<&str>) -> Vec<u8> {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut req = http.get(url);
    if let Some(r) = range {
        req = req.header("range", r);
    }
    let resp = req.send().expect("GET");
    assert!(resp.status().is_success(), "GET {url}: {}", resp.status());
    resp.bytes().expect("body").to_vec()
}

/// Object names under `public_segments/<object>/` (where `swift upload` puts segments).
fn segments_of(node: &str, token: &str, object: &str) -> Vec<String> {
    let r = reqwest::blocking::Client::new()
        .get(format!(
            "{node}/v1/AUTH_demo/public_segments?prefix={object}/"
        ))
        .header("x-auth-token", token)
        .send()
        .expect("segment listing");
    assert_eq!(r.status(), 200);
    let names: Vec<String> = r
        .text()
        .expect("listing")
        .lines()
        .map(|l| format!("public_segments/{l}"))
        .collect();
    assert!(names.len() >= 2, "segments of {object}: {names:?}");
    names
}

fn login(node: &str, key: &str) -> String {
    let r = reqwest::blocking::Client::new()
        .get(format!("{node}/auth/v1.0"))
        .header("x-auth-user", "demo:demo")
        .header("x-auth-key", key)
        .send()
        .expect("auth");
    r.headers()["x-auth-token"]
        .to_str()
        .expect("token")
        .to_owned()
}

/// True if `node` holds the data of `path` (`<container>/<object>`) in its own store.
fn holds(node: &str, peer: &str, path: &str) -> bool {
    reqwest::blocking::Client::new()
        .head(format!("{node}/v1/AUTH_demo/{path}"))
        .header("x-outpost-internal", peer)
        .header("x-outpost-direct", "data")
        .send()
        .is_ok_and(|r| r.status() == 200)
}

#[test]
fn dev_cluster_serves_large_objects_through_any_node_and_survives_a_kill() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let data = tmp.path().join("data");
    let dev = start_dev(&data);
    let key = secret(&data, "user_key");
    let (peer, admin) = (secret(&data, "peer_secret"), secret(&data, "admin_secret"));
    let work = tmp.path();

    // `outpost cluster status` works against it and names every node.
    let status_args: Vec<&str> = dev.status_cmd.iter().skip(1).map(String::as_str).collect();
    assert_eq!(dev.status_cmd.first().map(String::as_str), Some("cluster"));
    let mut args = vec!["cluster"];
    args.extend(status_args);
    let table = must_run_outpost(&args);
    for n in &dev.nodes {
        let addr = n.url.trim_start_matches("http://");
        assert!(table.contains(addr), "{addr} in the status table:\n{table}");
    }

    let big = pseudo_random(19, 20_000_000);
    let second = pseudo_random(20, 12_000_000);
    std::fs::write(work.join("big.bin"), &big).expect("write");
    std::fs::write(work.join("second.bin"), &second).expect("write");
    let (n0, n1, n2) = (
        dev.nodes[0].url.clone(),
        dev.nodes[1].url.clone(),
        dev.nodes[2].url.clone(),
    );
    for f in ["big.bin", "second.bin"] {
        swift(
            &n0,
            &key,
            work,
            &["upload", "--segment-size", "5M", "public", f],
        );
    }
    assert!(
        must_download(&n1, &key, work, "big.bin") == big,
        "through node 1"
    );
    let edge_url = |o: &str| format!("{}/v1/AUTH_demo/public/{o}", dev.edge);
    assert!(
        must_get(&edge_url("big.bin"), None) == big,
        "through the edge"
    );
    // A range across segments, through the third node.
    let r = must_get(
        &format!("{n2}/v1/AUTH_demo/public/big.bin"),
        Some("bytes=5000000-15999999"),
    );
    assert!(r == big[5_000_000..16_000_000], "a range across segments");

    // Kill node 2: downloads still work through node 1 and the edge (never fetched before).
    let status = Command::new("kill")
        .args(["-9", &dev.nodes[2].pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert!(
        must_download(&n1, &key, work, "big.bin") == big,
        "node 2 down"
    );
    assert!(
        must_get(&edge_url("second.bin"), None) == second,
        "edge, node 2 down"
    );
    // A write while it is down still reaches a quorum.
    let third = pseudo_random(21, 11_000_000);
    std::fs::write(work.join("third.bin"), &third).expect("write");
    swift(
        &n0,
        &key,
        work,
        &["upload", "--segment-size", "5M", "public", "third.bin"],
    );
    let token = login(&n0, &key);
    let mut paths = segments_of(&n0, &token, "third.bin");
    paths.push("public/third.bin".into());
    assert!(paths.iter().all(|p| !holds(&n2, &peer, p)));

    // Restart it (as the banner says): replication brings its copies back.
    let mut restarted = Command::new(outpost_bin())
        .args(["origin", "--config"])
        .arg(&dev.nodes[2].config)
        .stdout(Stdio::null())
        .spawn()
        .expect("restart node 2");
    must_become_healthy(&format!("{n2}/healthz"), Duration::from_secs(30));
    let http = reqwest::blocking::Client::new();
    must_become(
        "node 2 holds every copy of third.bin again",
        Duration::from_secs(120),
        || {
            for n in [&n0, &n1] {
                let _ = http
                    .post(format!("{n}/internal/cluster/replicate"))
                    .header("x-outpost-internal", &admin)
                    .timeout(Duration::from_secs(60))
                    .send();
            }
            paths.iter().all(|p| holds(&n2, &peer, p))
        },
    );
    assert!(must_download(&n2, &key, work, "third.bin") == third);
    let _ = restarted.kill();
    let _ = restarted.wait();
}
