//! The S3 API on every node of a 3-node, 3-replica cluster: the aws CLI uploads a 20 MB file
//! (multipart) through node 0, it downloads byte-identical through node 1's S3 API and node
//! 2's Swift API, its parts and a plain object have their data on the ring's replicas; boto3
//! puts, gets, copies, lists and deletes through different nodes (`tests/s3/boto3_cluster.py`);
//! with a node killed, S3 GETs and PUTs still work through the others.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outpost_tests::clients::{md5_hex, must_eventually, must_run_within, pseudo_random, Session};
use outpost_tests::cluster::{free_port, USER_KEY};
use outpost_tests::ring_cluster::{partition, path_hash, RingCluster};
use outpost_tests::which;

const KEY: &str = "AKIAOUTPOSTTEST00001";
const SECRET: &str = "s3-test-secret-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(300);
const PART_POWER: u32 = 6;

/// `aws --endpoint-url <node's S3 API> <args>` with the test key and no user config.
fn aws(dir: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut c = Command::new("aws");
    c.arg("--endpoint-url")
        .arg(endpoint)
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.join("no-aws-credentials"),
        )
        .env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

fn must_aws(dir: &Path, endpoint: &str, args: &[&str]) -> String {
    let out = must_run_within(&mut aws(dir, endpoint, args), TIMEOUT);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

fn have_clients() -> bool {
    let boto3 = which("python3").is_some()
        && Command::new("python3")
            .args(["-c", "import boto3"])
            .status()
            .is_ok_and(|s| s.success());
    if which("aws").is_none() || !boto3 {
        eprintln!(
            "SKIPPED: the aws CLI or boto3 is not installed (python3 -m pip install awscli boto3)"
        );
        return false;
    }
    true
}

/// Nodes whose data directory holds `container/object`'s data (newest version).
fn holders(c: &RingCluster, container: &str, object: &str) -> Vec<Vec<u8>> {
    let h = path_hash("demo", container, object);
    let part = partition(&h, PART_POWER);
    (0..c.nodes.len())
        .filter_map(|n| c.read_data(n, part, &h))
        .collect()
}

#[test]
fn s3_api_on_every_node_of_a_cluster() {
    if !have_clients() {
        return;
    }
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let mut c = RingCluster::start_each(3, PART_POWER, 3, |i| {
        format!(
            "[s3]\nlisten = \"127.0.0.1:{}\"\n[[s3.keys]]\naccess_key = \"{KEY}\"\n\
             secret_key = \"{SECRET}\"\naccount = \"demo\"\nuser = \"demo\"\n",
            ports[i]
        )
    });
    let ep: Vec<String> = ports
        .iter()
        .map(|p| format!("http://127.0.0.1:{p}"))
        .collect();
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();

    // A 20 MB upload through node 0 is a multipart upload (the CLI's threshold is 8 MB).
    must_aws(dir, &ep[0], &["s3", "mb", "s3://big"]);
    let data = pseudo_random(20, 20 * 1024 * 1024);
    std::fs::write(dir.join("big.bin"), &data).expect("write");
    must_aws(
        dir,
        &ep[0],
        &["s3", "cp", s(&dir.join("big.bin")), "s3://big/big.bin"],
    );
    // Down through node 1's S3 API.
    must_aws(
        dir,
        &ep[1],
        &["s3", "cp", "s3://big/big.bin", s(&dir.join("via-s3.bin"))],
    );
    let got = std::fs::read(dir.join("via-s3.bin")).expect("read");
    assert_eq!(md5_hex(&got), md5_hex(&data), "S3 download through node 1");
    // And through node 2's Swift API (the cluster's SLO read).
    let swift = Session::must_login(&c.nodes[2].url, "demo:demo", USER_KEY);
    let (status, body) = swift.must_get("/big/big.bin", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        md5_hex(&body),
        md5_hex(&data),
        "Swift download through node 2"
    );
    let head = must_aws(
        dir,
        &ep[2],
        &[
            "s3api",
            "head-object",
            "--bucket",
            "big",
            "--key",
            "big.bin",
        ],
    );
    assert!(
        head.contains("-3\\\""),
        "a 3-part S3 ETag through node 2: {head}"
    );

    // The manifest and every part are ring-placed objects: their data is on the replicas
    // (at least a quorum at once, all three once the background copies finish).
    let parts = swift.must_list_all("big+segments");
    assert_eq!(parts.len(), 3, "{parts:?}");
    for (name, ..) in &parts {
        must_eventually("three copies of a part", TIMEOUT, || {
            holders(&c, "big+segments", name).len() == 3
        });
    }
    must_eventually("three copies of the manifest", TIMEOUT, || {
        holders(&c, "big", "big.bin").len() == 3
    });

    // boto3 through different nodes.
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("s3/boto3_cluster.py");
    let out = must_run_within(
        Command::new("python3")
            .arg(&script)
            .env("S3_ENDPOINTS", ep.join(","))
            .env("S3_KEY", KEY)
            .env("S3_SECRET", SECRET)
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            ),
        TIMEOUT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");

    // A node dies: the others still serve the multipart object and take writes at quorum.
    c.kill(2);
    for (n, e) in ep.iter().enumerate().take(2) {
        let to = dir.join(format!("after-kill-{n}.bin"));
        must_aws(dir, e, &["s3", "cp", "s3://big/big.bin", s(&to)]);
        let got = std::fs::read(&to).expect("read");
        assert_eq!(
            md5_hex(&got),
            md5_hex(&data),
            "after the kill, via node {n}"
        );
    }
    let small = pseudo_random(7, 4096);
    std::fs::write(dir.join("small.bin"), &small).expect("write");
    must_aws(
        dir,
        &ep[0],
        &["s3", "cp", s(&dir.join("small.bin")), "s3://big/small.bin"],
    );
    let out = must_run_within(
        &mut aws(dir, &ep[1], &["s3", "cp", "s3://big/small.bin", "-"]),
        TIMEOUT,
    );
    assert_eq!(out.stdout, small, "a PUT at quorum with a node down");
    assert_eq!(holders(&c, "big", "small.bin").len(), 2);
}
