//! The origin's S3 API with real clients: the aws CLI (mb, cp up and down of a 100 MB file
//! through multipart, ls with prefixes, sync both ways, rm --recursive, presign + curl),
//! boto3 (every operation and each error case, `tests/s3/boto3_ops.py`), rclone's s3 backend
//! (1,000 files up and back, `check`), and the same objects through Swift and through an edge
//! that purges on an S3 overwrite.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use outpost_tests::clients::Session;
use outpost_tests::clients::{md5_hex, must_eventually, must_run_within, pseudo_random, walk};
use outpost_tests::cluster::{free_port, EdgeProc, OriginProc, USER_KEY};
use outpost_tests::which;

const KEY: &str = "AKIAOUTPOSTTEST00001";
const SECRET: &str = "s3-test-secret-0123456789abcdef";
const TIMEOUT: Duration = Duration::from_secs(300);

/// An origin with the S3 API on a port of its own and the demo user's key.
struct S3Origin {
    origin: OriginProc,
    endpoint: String,
    dir: PathBuf,
}

impl S3Origin {
    fn start(dir: &Path) -> S3Origin {
        let port = free_port();
        let extra = format!(
            "[s3]\nlisten = \"127.0.0.1:{port}\"\n[[s3.keys]]\naccess_key = \"{KEY}\"\n\
             secret_key = \"{SECRET}\"\naccount = \"demo\"\nuser = \"demo\"\n"
        );
        let origin = OriginProc::start_with(dir, &extra, None);
        S3Origin {
            origin,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir: dir.to_path_buf(),
        }
    }

    /// `aws --endpoint-url <s3> <args>` with the test key and no user config.
    fn aws(&self, args: &[&str]) -> Command {
        let mut c = Command::new("aws");
        c.arg("--endpoint-url")
            .arg(&self.endpoint)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", KEY)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_CONFIG_FILE", self.dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                self.dir.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        c
    }

    fn must_aws(&self, args: &[&str]) -> String {
        let out = must_run_within(&mut self.aws(args), TIMEOUT);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn swift(&self) -> Session {
        Session::must_login(&self.origin.url, "demo:demo", USER_KEY)
    }
}

fn have(program: &str) -> bool {
    if which(program).is_some() {
        return true;
    }
    eprintln!("SKIPPED: {program} is not installed (python3 -m pip install awscli boto3; apt-get install rclone)");
    false
}

fn write(path: &Path, data: &[u8]) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, data).expect("write");
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn aws_cli_mb_cp_ls_sync_presign_rm() {
    if !have("aws") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = S3Origin::start(dir.path());
    node.must_aws(&["s3", "mb", "s3://cli"]);
    assert!(node.must_aws(&["s3", "ls"]).contains(" cli"));

    // 100 MB: the CLI uploads it in 8 MiB parts; it comes back byte for byte, through S3
    // and through Swift (one object, the SLO the upload became).
    let big = pseudo_random(1, 100 * 1000 * 1000);
    let up = dir.path().join("up");
    write(&up.join("big.bin"), &big);
    node.must_aws(&["s3", "cp", s(&up.join("big.bin")), "s3://cli/big.bin"]);
    let down = dir.path().join("down");
    std::fs::create_dir_all(&down).expect("mkdir");
    node.must_aws(&["s3", "cp", "s3://cli/big.bin", s(&down.join("big.bin"))]);
    let got = std::fs::read(down.join("big.bin")).expect("downloaded file");
    assert!(got == big, "the 100 MB download differs");
    let head = node.must_aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "cli",
        "--key",
        "big.bin",
    ]);
    assert!(
        head.contains("-12\\\"") || head.contains("-12\""),
        "a 12-part ETag: {head}"
    );
    let (status, via_swift) = node.swift().must_get("/cli/big.bin", &[]);
    assert_eq!(status, 200);
    assert!(
        md5_hex(&via_swift) == md5_hex(&big),
        "Swift reads the same bytes"
    );
    drop(via_swift);

    // A small tree: sync up, ls with prefixes, sync back.
    let tree = dir.path().join("tree");
    for (i, name) in ["a.txt", "sub/b.txt", "sub/deep/c.bin", "sub/deep/d e+f.txt"]
        .iter()
        .enumerate()
    {
        write(
            &tree.join(name),
            &pseudo_random(10 + i as u64, 1000 + i * 100),
        );
    }
    node.must_aws(&["s3", "sync", s(&tree), "s3://cli/tree"]);
    let top = node.must_aws(&["s3", "ls", "s3://cli/tree/"]);
    assert!(top.contains("PRE sub/") && top.contains(" a.txt"), "{top}");
    assert!(!top.contains("b.txt"), "{top}");
    let sub = node.must_aws(&["s3", "ls", "s3://cli/tree/sub/"]);
    assert!(sub.contains("PRE deep/") && sub.contains(" b.txt"), "{sub}");
    let all = node.must_aws(&["s3", "ls", "--recursive", "s3://cli/tree/"]);
    assert_eq!(all.lines().count(), 4, "{all}");
    assert!(all.contains("tree/sub/deep/d e+f.txt"), "{all}");
    let back = dir.path().join("back");
    node.must_aws(&["s3", "sync", "s3://cli/tree", s(&back)]);
    assert_eq!(walk(&tree), walk(&back));
    for f in walk(&tree) {
        assert_eq!(
            std::fs::read(tree.join(&f)).expect("read"),
            std::fs::read(back.join(&f)).expect("read"),
            "{f}"
        );
    }
    // A second sync uploads nothing.
    let again = node.must_aws(&["s3", "sync", s(&tree), "s3://cli/tree"]);
    assert!(again.trim().is_empty(), "{again}");

    // Presign, then curl.
    let url = node.must_aws(&[
        "s3",
        "presign",
        "s3://cli/tree/a.txt",
        "--expires-in",
        "300",
    ]);
    let out = must_run_within(
        Command::new("curl").args(["-sS", "--fail", url.trim()]),
        TIMEOUT,
    );
    assert_eq!(out.stdout, std::fs::read(tree.join("a.txt")).expect("read"));

    // rm --recursive, then the bucket goes (with its hidden parts container).
    let rm = node.must_aws(&["s3", "rm", "--recursive", "s3://cli/tree"]);
    assert_eq!(rm.lines().count(), 4, "{rm}");
    // `ls` of an empty prefix prints nothing and exits 1, as against S3.
    let out =
        outpost_tests::clients::run_within(&mut node.aws(&["s3", "ls", "s3://cli/tree/"]), TIMEOUT);
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    node.must_aws(&["s3", "rm", "s3://cli/big.bin"]);
    node.must_aws(&["s3", "rb", "s3://cli"]);
    let swift = node.swift();
    assert_eq!(swift.send("HEAD", "/cli", &[]).status(), 404);
    assert_eq!(swift.send("HEAD", "/cli+segments", &[]).status(), 404);
}

#[test]
fn boto3_every_operation_and_error_code() {
    if !have("python3")
        || !Command::new("python3")
            .args(["-c", "import boto3"])
            .status()
            .is_ok_and(|s| s.success())
    {
        eprintln!("SKIPPED: boto3 is not installed (python3 -m pip install boto3)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = S3Origin::start(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("s3/boto3_ops.py");
    let out = must_run_within(
        Command::new("python3")
            .arg(&script)
            .env("S3_ENDPOINT", &node.endpoint)
            .env("S3_KEY", KEY)
            .env("S3_SECRET", SECRET)
            .env("AWS_CONFIG_FILE", dir.path().join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("no-aws-credentials"),
            ),
        TIMEOUT,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "OK");
    // Nothing partial was left behind by the failed writes and uploads.
    let swift = node.swift();
    assert_eq!(swift.send("HEAD", "/boto-ops", &[]).status(), 404);
    assert_eq!(swift.send("HEAD", "/boto-ops+segments", &[]).status(), 404);
}

#[test]
fn s3_and_swift_share_objects_and_the_edge_purges_on_s3_overwrite() {
    if !have("aws") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = S3Origin::start(dir.path());
    let swift = node.swift();
    node.must_aws(&["s3", "mb", "s3://shared"]);

    // S3 → Swift: same bytes, ETag (the MD5), content type, user metadata.
    let data = pseudo_random(3, 4000);
    write(&dir.path().join("s3.bin"), &data);
    node.must_aws(&[
        "s3",
        "cp",
        s(&dir.path().join("s3.bin")),
        "s3://shared/dir/from-s3.bin",
        "--content-type",
        "application/x-test",
        "--metadata",
        "color=red",
    ]);
    let r = swift.send("GET", "/shared/dir/from-s3.bin", &[]);
    assert_eq!(r.status(), 200);
    let h = r.headers().clone();
    assert_eq!(h["content-type"], "application/x-test");
    assert_eq!(h["x-object-meta-color"], "red");
    assert_eq!(
        h["etag"].to_str().expect("etag").trim_matches('"'),
        md5_hex(&data)
    );
    assert_eq!(r.bytes().expect("body").to_vec(), data);
    let listed = swift.must_list_all("shared");
    assert_eq!(
        listed,
        [(
            "dir/from-s3.bin".to_owned(),
            data.len() as u64,
            md5_hex(&data)
        )]
    );

    // Swift → S3.
    let data2 = pseudo_random(4, 3000);
    swift.must_put(
        "/shared/from-swift.txt",
        data2.clone(),
        &[
            ("x-object-meta-origin", "swift"),
            ("content-type", "text/plain"),
        ],
        201,
    );
    let head = node.must_aws(&[
        "s3api",
        "head-object",
        "--bucket",
        "shared",
        "--key",
        "from-swift.txt",
    ]);
    assert!(head.contains("\"origin\": \"swift\""), "{head}");
    assert!(head.contains(&md5_hex(&data2)), "{head}");
    let out = must_run_within(
        &mut node.aws(&["s3", "cp", "s3://shared/from-swift.txt", "-"]),
        TIMEOUT,
    );
    assert_eq!(out.stdout, data2);
    let ls = node.must_aws(&["s3", "ls", "--recursive", "s3://shared"]);
    assert!(
        ls.contains("dir/from-s3.bin") && ls.contains("from-swift.txt"),
        "{ls}"
    );

    // An edge in front serves the S3-uploaded object from the public container, and the new
    // bytes once S3 overwrites it (the overwrite reaches the edge through the change feed).
    swift.must(
        "POST",
        "/shared",
        &[("x-container-read", ".r:*,.rlistings")],
        Vec::new(),
    );
    let edge = EdgeProc::start(dir.path(), "e1", node.origin.addr, "");
    node.origin.must_see_subscribers(1);
    let host = "shared.demo.cdn.test";
    let c = edge.client(&[host]);
    let url = format!("http://{host}:{}/dir/from-s3.bin", edge.addr.port());
    let get = |c: &reqwest::blocking::Client| {
        let r = c.get(&url).send().expect("edge GET");
        let cache = r
            .headers()
            .get("x-outpost-cache")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (
            r.status().as_u16(),
            cache,
            r.bytes().expect("body").to_vec(),
        )
    };
    let (status, _, body) = get(&c);
    assert_eq!(status, 200);
    assert_eq!(body, data);
    let (_, cache, body) = get(&c);
    assert_eq!(cache, "HIT");
    assert_eq!(body, data);
    let newer = pseudo_random(5, 5000);
    write(&dir.path().join("s3.bin"), &newer);
    node.must_aws(&[
        "s3",
        "cp",
        s(&dir.path().join("s3.bin")),
        "s3://shared/dir/from-s3.bin",
    ]);
    must_eventually(
        "the edge serves the S3 overwrite",
        Duration::from_secs(20),
        || get(&c).2 == newer,
    );

    // A multipart upload (the CLI splits above 8 MiB) is one object for Swift and the edge:
    // the SLO's bytes, in full and by range (the edge fetches it by slices).
    let mp = pseudo_random(8, 9 << 20);
    write(&dir.path().join("mp.bin"), &mp);
    node.must_aws(&[
        "s3",
        "cp",
        s(&dir.path().join("mp.bin")),
        "s3://shared/mp.bin",
    ]);
    let (status, via_swift) = swift.must_get("/shared/mp.bin", &[]);
    assert_eq!(status, 200);
    assert!(via_swift == mp, "Swift reads the multipart object whole");
    let mp_url = format!("http://{host}:{}/mp.bin", edge.addr.port());
    let r = c.get(&mp_url).send().expect("edge GET");
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().expect("body").as_ref() == mp.as_slice(),
        "the edge serves it whole"
    );
    let r = c
        .get(&mp_url)
        .header("range", "bytes=8388600-8388615")
        .send()
        .expect("edge range GET");
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().expect("body").as_ref(), &mp[8388600..8388616]);
}

#[test]
fn rclone_s3_sync_of_1000_files_up_and_back() {
    if !have("rclone") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = S3Origin::start(dir.path());
    std::fs::write(dir.path().join("rclone.conf"), "").expect("empty rclone config");
    let rclone = |args: &[&str]| {
        let mut c = Command::new("rclone");
        c.args(args)
            .args([
                "--retries",
                "1",
                "--low-level-retries",
                "1",
                "--transfers",
                "16",
                "--checkers",
                "16",
            ])
            // The AWS SDK in rclone refuses a CA bundle with its own transport; plain HTTP here.
            .env_remove("AWS_CA_BUNDLE")
            .env("RCLONE_CONFIG", dir.path().join("rclone.conf"))
            .env("RCLONE_CONFIG_X_TYPE", "s3")
            .env("RCLONE_CONFIG_X_PROVIDER", "Other")
            .env("RCLONE_CONFIG_X_ENDPOINT", &node.endpoint)
            .env("RCLONE_CONFIG_X_ACCESS_KEY_ID", KEY)
            .env("RCLONE_CONFIG_X_SECRET_ACCESS_KEY", SECRET)
            .env("RCLONE_CONFIG_X_REGION", "us-east-1")
            .env("RCLONE_CONFIG_X_FORCE_PATH_STYLE", "true");
        c
    };
    let up = dir.path().join("up");
    for n in 0..1000u64 {
        let p = up.join(format!("d{}/s{}/f{}.txt", n / 100, (n / 10) % 10, n % 10));
        write(&p, &pseudo_random(n, 1 + ((n * 37) % 3000) as usize));
    }
    let must_check = |a: &str, b: &str| {
        let out = must_run_within(&mut rclone(&["check", a, b]), TIMEOUT);
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(log.contains(": 0 differences found"), "{log}");
        assert!(log.contains(": 1000 matching files"), "{log}");
    };
    must_run_within(&mut rclone(&["mkdir", "x:tree"]), TIMEOUT);
    must_run_within(&mut rclone(&["sync", s(&up), "x:tree"]), TIMEOUT);
    must_check(s(&up), "x:tree");
    let head = node.swift().send("HEAD", "/tree", &[]);
    assert_eq!(head.headers()["x-container-object-count"], "1000");
    let down = dir.path().join("down");
    must_run_within(&mut rclone(&["sync", "x:tree", s(&down)]), TIMEOUT);
    must_check(s(&up), s(&down));
    assert_eq!(walk(&up), walk(&down));
}

/// The edge's generic mode with SigV4 upstream signing (`[generic.sigv4]`) in front of our
/// own S3 API: the bucket is private to unsigned requests, the signing edge serves and caches
/// it (keys with spaces and `+`, a `response-content-type` query), a wrong secret is refused
/// and the refusal not cached.
#[test]
fn signing_edge_in_generic_mode_fronts_the_s3_api() {
    if !have("aws") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let node = S3Origin::start(dir.path());
    node.must_aws(&["s3", "mb", "s3://private"]);
    let spaced = pseudo_random(6, 64 << 10);
    let plus = pseudo_random(7, 1000);
    write(&dir.path().join("spaced"), &spaced);
    write(&dir.path().join("plus"), &plus);
    node.must_aws(&[
        "s3",
        "cp",
        s(&dir.path().join("spaced")),
        "s3://private/hello world.bin",
    ]);
    node.must_aws(&[
        "s3",
        "cp",
        s(&dir.path().join("plus")),
        "s3://private/a+b.bin",
    ]);
    let addr = node.endpoint.trim_start_matches("http://").to_owned();
    let direct = reqwest::blocking::Client::new()
        .get(format!("{}/private/hello%20world.bin", node.endpoint))
        .send()
        .expect("direct request");
    assert_eq!(direct.status(), 403, "an unsigned S3 request was served");

    let edge = |name: &str, secret: &str| {
        EdgeProc::start_raw(
            dir.path(),
            name,
            &format!(
                "[generic]\naddress = \"{addr}\"\nhost = \"{addr}\"\n[generic.sigv4]\n\
                 access_key_id = \"{KEY}\"\nsecret_access_key = \"{secret}\"\n[cache]\n\
                 disk_dir = \"{}\"\ndefault_ttl = \"1h\"\n",
                dir.path().join(format!("{name}-cache")).display()
            ),
        )
    };
    let get = |e: &EdgeProc, path: &str| {
        let r = e
            .client(&["cdn.test"])
            .get(format!("http://cdn.test:{}{path}", e.addr.port()))
            .send()
            .expect("edge GET");
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (cache, ct) = (h("x-outpost-cache"), h("content-type"));
        (
            r.status().as_u16(),
            cache,
            ct,
            r.bytes().expect("body").to_vec(),
        )
    };
    let signing = edge("signing", SECRET);
    let (status, cache, _, body) = get(&signing, "/private/hello%20world.bin");
    assert_eq!((status, cache.as_str()), (200, "MISS"));
    assert!(body == spaced);
    let (status, cache, _, body) = get(&signing, "/private/hello%20world.bin");
    assert_eq!((status, cache.as_str()), (200, "HIT"));
    assert!(body == spaced);
    let (status, _, _, body) = get(&signing, "/private/a+b.bin");
    assert_eq!(status, 200);
    assert!(body == plus);
    let (status, _, ct, _) = get(
        &signing,
        "/private/hello%20world.bin?response-content-type=text%2Fplain",
    );
    assert_eq!((status, ct.as_str()), (200, "text/plain"));
    let wrong = edge("wrong", "not-the-secret-not-the-secret");
    for round in 0..2 {
        let (status, cache, _, _) = get(&wrong, "/private/hello%20world.bin");
        assert_eq!(
            status, 403,
            "round {round}: a wrongly signed request was served"
        );
        assert_ne!(cache, "HIT", "round {round}: a 403 was cached");
    }
}
