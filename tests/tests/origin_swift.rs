//! The real `outpost origin` driven by python-swiftclient's `swift` CLI (as a new user would),
//! and by raw HTTP for what well-behaved clients never send: ranges, conditionals, bad paths,
//! bad manifests, aborted uploads.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use outpost_tests::clients::{
    md5_hex, must_eventually, must_run_within, pseudo_random, raw_http, run_within, Session,
};
use outpost_tests::cluster::{OriginProc, USER_KEY};
use outpost_tests::which;

const CLI_TIMEOUT: Duration = Duration::from_secs(120);
const MIB: usize = 1024 * 1024;

/// The `swift` CLI logged in as `demo:demo`, working in `cwd`.
struct SwiftCli {
    bin: PathBuf,
    auth: String,
    cwd: PathBuf,
}

impl SwiftCli {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        c.args(args)
            .current_dir(&self.cwd)
            .env("ST_AUTH", &self.auth)
            .env("ST_USER", "demo:demo")
            .env("ST_KEY", USER_KEY)
            .env_remove("OS_AUTH_URL")
            .env_remove("OS_STORAGE_URL")
            .env_remove("OS_AUTH_TOKEN");
        c
    }

    /// Runs `swift <args>`, asserts success, returns stdout.
    fn must(&self, args: &[&str]) -> String {
        let out = must_run_within(&mut self.cmd(args), CLI_TIMEOUT);
        String::from_utf8(out.stdout).expect("utf-8 output")
    }
}

fn write_file(dir: &Path, rel: &str, data: &[u8]) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, data).expect("write");
}

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

/// `stat`, `post` (metadata and ACLs), `upload` (with a 20 MB SLO), `list --prefix
/// --delimiter`, `download`, `tempurl` + HTTP, `delete` (SLO segments included).
#[test]
fn swift_cli_round_trip() {
    let Some(bin) = which("swift") else {
        eprintln!("SKIPPED: the `swift` CLI (pip install python-swiftclient) is not installed");
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let swift = SwiftCli {
        bin,
        auth: format!("{}/auth/v1.0", origin.url),
        cwd: work.clone(),
    };
    let anon = reqwest::blocking::Client::new();
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);

    // stat and post: account and container metadata, public ACL.
    let out = swift.must(&["stat"]);
    assert!(out.contains("Account: AUTH_demo"), "{out}");
    assert!(out.contains("Containers: 0"), "{out}");
    swift.must(&["post", "-m", "Color:blue"]);
    let out = swift.must(&["stat"]);
    assert!(out.contains("Meta Color: blue"), "{out}");
    swift.must(&["post", "-r", ".r:*,.rlistings", "pub"]);
    swift.must(&["post", "-m", "Owner:photos-team", "pub"]);
    // Metadata is UTF-8, sent raw by the client (regression: refused as non-ASCII).
    swift.must(&["post", "-m", "Title:Фото дня", "pub"]);
    let out = swift.must(&["stat", "pub"]);
    assert!(out.contains("Read ACL: .r:*,.rlistings"), "{out}");
    assert!(out.contains("Meta Owner: photos-team"), "{out}");
    assert!(out.contains("Meta Title: Фото дня"), "{out}");

    // upload: a tree of small files and a 20 MB file in 5 MiB segments.
    let big = pseudo_random(20, 20_000_000);
    write_file(&work, "big.bin", &big);
    write_file(&work, "dir/a.txt", b"alpha\n");
    write_file(&work, "dir/sub/b.txt", b"beta\n");
    write_file(&work, "dir/sub/c.txt", b"gamma\n");
    write_file(&work, "top.txt", b"top\n");
    swift.must(&["upload", "--segment-size", "5M", "pub", "big.bin"]);
    swift.must(&["upload", "pub", "dir", "top.txt"]);
    let head = api.send("HEAD", "/pub/big.bin", &[]);
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["x-static-large-object"], "True");
    assert_eq!(head.headers()["content-length"], "20000000");
    let out = swift.must(&["stat", "pub", "big.bin"]);
    assert!(out.contains("Content Length: 20000000"), "{out}");
    let segments = swift.must(&["list", "pub_segments"]);
    assert_eq!(lines(&segments).len(), 4, "{segments}");
    let out = swift.must(&["list", "--lh"]);
    assert!(
        out.lines()
            .any(|l| l.contains(" default ") && l.ends_with(" pub")),
        "{out}"
    );

    // list: full, and one level of a pseudo-directory (regression: this looped forever).
    let out = swift.must(&["list", "pub"]);
    assert_eq!(
        lines(&out),
        [
            "big.bin",
            "dir/a.txt",
            "dir/sub/b.txt",
            "dir/sub/c.txt",
            "top.txt"
        ]
    );
    let out = swift.must(&["list", "pub", "--prefix", "dir/", "--delimiter", "/"]);
    assert_eq!(lines(&out), ["dir/a.txt", "dir/sub/"]);
    let out = swift.must(&["list", "pub", "--delimiter", "/"]);
    assert_eq!(lines(&out), ["big.bin", "dir/", "top.txt"]);

    // download: identical bytes, for the SLO and a pseudo-directory.
    swift.must(&["download", "pub", "big.bin", "-o", "big-down.bin"]);
    let got = std::fs::read(work.join("big-down.bin")).expect("downloaded");
    assert_eq!(got.len(), big.len());
    assert_eq!(md5_hex(&got), md5_hex(&big));
    swift.must(&["download", "pub", "--prefix", "dir/", "-D", "down2"]);
    assert_eq!(
        std::fs::read(work.join("down2/dir/sub/c.txt")).expect("file"),
        b"gamma\n"
    );

    // Overwriting the SLO: swiftclient reads the old manifest and removes its segments.
    let mut big2 = big.clone();
    big2[7 * MIB] ^= 0xff;
    write_file(&work, "big.bin", &big2);
    let f = std::fs::File::options()
        .write(true)
        .open(work.join("big.bin"))
        .expect("open");
    f.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000))
        .expect("mtime");
    drop(f);
    swift.must(&["upload", "--segment-size", "5M", "pub", "big.bin"]);
    let segments = swift.must(&["list", "pub_segments"]);
    assert_eq!(lines(&segments).len(), 4, "old segments left: {segments}");
    let (status, body) = api.must_get("/pub/big.bin", &[]);
    assert_eq!(status, 200);
    assert_eq!(md5_hex(&body), md5_hex(&big2));

    // Public read and listing through the ACL, without credentials.
    let r = anon
        .get(format!("{}/pub/top.txt", api.storage))
        .send()
        .expect("anonymous GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), "top\n");
    let r = anon
        .get(format!("{}/pub?prefix=dir/sub/", api.storage))
        .send()
        .expect("anonymous listing");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), "dir/sub/b.txt\ndir/sub/c.txt\n");

    // tempurl: a private object through a signed URL, refused when tampered with.
    swift.must(&["post", "priv"]);
    write_file(&work, "secret.txt", b"private bytes\n");
    swift.must(&["upload", "priv", "secret.txt"]);
    let r = anon
        .get(format!("{}/priv/secret.txt", api.storage))
        .send()
        .expect("GET");
    assert_eq!(r.status(), 401, "private objects need a credential");
    swift.must(&["post", "-m", "Temp-URL-Key:tempurl-key-0123456789"]);
    let signed = swift.must(&[
        "tempurl",
        "GET",
        "600",
        "/v1/AUTH_demo/priv/secret.txt",
        "tempurl-key-0123456789",
    ]);
    let url = format!("{}{}", origin.url, signed.trim());
    let r = anon.get(&url).send().expect("tempurl GET");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().expect("body"), "private bytes\n");
    let (prefix, last) = url.split_at(url.find("&temp_url_expires").expect("expires") - 1);
    let flipped = if last.starts_with('0') { "1" } else { "0" };
    let tampered = format!("{prefix}{flipped}{}", &last[1..]);
    assert_ne!(tampered, url);
    let r = anon.get(&tampered).send().expect("tampered GET");
    assert_eq!(r.status(), 401, "tampered signature must be refused");
    // A container key works for its container only.
    swift.must(&["post", "-m", "Temp-URL-Key:container-key-0123", "priv"]);
    let signed = swift.must(&[
        "tempurl",
        "GET",
        "600",
        "/v1/AUTH_demo/priv/secret.txt",
        "container-key-0123",
    ]);
    let r = anon
        .get(format!("{}{}", origin.url, signed.trim()))
        .send()
        .expect("GET");
    assert_eq!(r.status(), 200, "container tempurl key");
    let signed = swift.must(&[
        "tempurl",
        "GET",
        "600",
        "/v1/AUTH_demo/pub/big.bin",
        "container-key-0123",
    ]);
    let r = anon
        .get(format!("{}{}", origin.url, signed.trim()))
        .header("range", "bytes=0-0")
        .send()
        .expect("GET");
    assert_eq!(r.status(), 206, "pub is public anyway");
    swift.must(&["post", "-r", "", "pub"]);
    let r = anon
        .get(format!("{}{}", origin.url, signed.trim()))
        .send()
        .expect("GET");
    assert_eq!(r.status(), 401, "priv's key does not open pub");
    swift.must(&["post", "-r", ".r:*,.rlistings", "pub"]);
    // A tempurl for the SLO serves a range across a segment boundary.
    let signed = swift.must(&[
        "tempurl",
        "GET",
        "600",
        "/v1/AUTH_demo/pub/big.bin",
        "tempurl-key-0123456789",
    ]);
    let start = 5 * MIB - 10;
    let r = anon
        .get(format!("{}{}", origin.url, signed.trim()))
        .header("range", format!("bytes={start}-{}", start + 19))
        .send()
        .expect("ranged tempurl GET");
    assert_eq!(r.status(), 206);
    assert_eq!(
        r.headers()["content-range"],
        format!("bytes {start}-{}/20000000", start + 19).as_str()
    );
    assert_eq!(&r.bytes().expect("body")[..], &big2[start..start + 20]);

    // delete: the SLO with its segments, then containers; the account is empty again.
    swift.must(&["delete", "pub", "big.bin"]);
    assert_eq!(swift.must(&["list", "pub_segments"]), "");
    assert_eq!(api.send("HEAD", "/pub/big.bin", &[]).status(), 404);
    swift.must(&["delete", "pub"]);
    swift.must(&["delete", "priv"]);
    swift.must(&["delete", "pub_segments"]);
    assert_eq!(swift.must(&["list"]), "");
    let out = swift.must(&["stat"]);
    assert!(out.contains("Containers: 0"), "{out}");
    assert!(out.contains("Objects: 0"), "{out}");
    assert!(out.contains("Bytes: 0"), "{out}");
    // A bad key is refused.
    let out = run_within(
        swift.cmd(&["stat"]).env("ST_KEY", "not-the-key"),
        CLI_TIMEOUT,
    );
    assert!(!out.status.success());
}

/// Splits a `multipart/byteranges` body into (Content-Range, bytes) parts.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("--{boundary}");
    let text = body;
    let mut out = Vec::new();
    let mut pos = 0;
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .map(|i| i + from)
    };
    while let Some(i) = find(text, delim.as_bytes(), pos) {
        let after = i + delim.len();
        if text[after..].starts_with(b"--") {
            break;
        }
        let head_end = find(text, b"\r\n\r\n", after).expect("part headers");
        let head = String::from_utf8_lossy(&text[after..head_end]).to_string();
        let range = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Range: "))
            .expect("part Content-Range")
            .to_owned();
        let next = find(text, format!("\r\n{delim}").as_bytes(), head_end).expect("next");
        out.push((range, text[head_end + 4..next].to_vec()));
        pos = next + 2;
    }
    out
}

/// Ranges (single, suffix, multi, unsatisfiable, across SLO segments) and conditional
/// requests, exactly as Swift answers them.
#[test]
fn ranges_and_conditional_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/c", vec![], &[], 201);
    let data = pseudo_random(7, 3000);
    let etag = md5_hex(&data);
    api.must_put("/c/o.bin", data.clone(), &[("etag", &etag)], 201);

    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=0-9")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 0-9/3000");
    assert_eq!(&r.bytes().expect("body")[..], &data[..10]);
    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=-5")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 2995-2999/3000");
    assert_eq!(&r.bytes().expect("body")[..], &data[2995..]);
    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=2990-")]);
    assert_eq!(r.status(), 206);
    assert_eq!(&r.bytes().expect("body")[..], &data[2990..]);

    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=0-2,10-12,-4")]);
    assert_eq!(r.status(), 206);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let boundary = ct
        .strip_prefix("multipart/byteranges;boundary=")
        .unwrap_or_else(|| panic!("content-type {ct}"))
        .to_owned();
    let len: usize = r.headers()["content-length"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    let body = r.bytes().expect("body");
    assert_eq!(body.len(), len, "Content-Length matches the multipart body");
    let parts = multipart_parts(&body, &boundary);
    assert_eq!(
        parts,
        [
            ("bytes 0-2/3000".to_owned(), data[0..3].to_vec()),
            ("bytes 10-12/3000".to_owned(), data[10..13].to_vec()),
            ("bytes 2996-2999/3000".to_owned(), data[2996..].to_vec()),
        ]
    );

    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=3000-")]);
    assert_eq!(r.status(), 416);
    assert_eq!(r.headers()["content-range"], "bytes */3000");
    // Syntactically bad ranges are ignored: the whole object.
    let r = api.send("GET", "/c/o.bin", &[("range", "bytes=9-1")]);
    assert_eq!(r.status(), 200);
    assert_eq!(r.bytes().expect("body").len(), 3000);

    // Conditionals. Swift sends the MD5 unquoted and accepts it quoted or not.
    let quoted = format!("\"{etag}\"");
    let head = api.send("HEAD", "/c/o.bin", &[]);
    assert_eq!(head.headers()["etag"].to_str().expect("ascii"), etag);
    let last_modified = head.headers()["last-modified"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let status = |h: &[(&str, &str)]| api.send("GET", "/c/o.bin", h).status().as_u16();
    assert_eq!(status(&[("if-none-match", &quoted)]), 304);
    assert_eq!(status(&[("if-none-match", &etag)]), 304);
    assert_eq!(status(&[("if-none-match", "\"other\"")]), 200);
    assert_eq!(status(&[("if-match", &etag)]), 200);
    assert_eq!(status(&[("if-match", &quoted)]), 200);
    assert_eq!(status(&[("if-match", "\"other\"")]), 412);
    assert_eq!(status(&[("if-modified-since", &last_modified)]), 304);
    assert_eq!(
        status(&[("if-modified-since", "Thu, 01 Jan 2015 00:00:00 GMT")]),
        200
    );
    assert_eq!(
        status(&[("if-unmodified-since", "Thu, 01 Jan 2015 00:00:00 GMT")]),
        412
    );
    assert_eq!(status(&[("if-unmodified-since", &last_modified)]), 200);
    // If-Match wins over If-Modified-Since; If-None-Match over If-Modified-Since.
    assert_eq!(
        status(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &last_modified)
        ]),
        200
    );
    // If-Range with a stale validator: the whole object, not the range.
    let r = api.send(
        "GET",
        "/c/o.bin",
        &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
    );
    assert_eq!(r.status(), 200);
    let r = api.send(
        "GET",
        "/c/o.bin",
        &[("range", "bytes=0-9"), ("if-range", &quoted)],
    );
    assert_eq!(r.status(), 206);
    // Create-only PUT.
    api.must_put("/c/o.bin", b"x".to_vec(), &[("if-none-match", "*")], 412);
    api.must_put("/c/new.bin", b"x".to_vec(), &[("if-none-match", "*")], 201);
    // A body that does not match its ETag is refused and not stored.
    api.must_put(
        "/c/bad-etag",
        b"abc".to_vec(),
        &[("etag", "00000000000000000000000000000000")],
        422,
    );
    assert_eq!(api.send("HEAD", "/c/bad-etag", &[]).status(), 404);

    // An SLO assembled by hand: ranges across segment boundaries, manifest GET.
    for (i, seg) in data.chunks(1000).enumerate() {
        api.must_put(&format!("/c/seg/{i}"), seg.to_vec(), &[], 201);
    }
    let manifest = serde_json::json!([
        {"path": "/c/seg/0", "etag": md5_hex(&data[..1000]), "size_bytes": 1000},
        {"path": "/c/seg/1"},
        {"path": "c/seg/2", "size_bytes": 1000},
    ]);
    let r = api
        .req("PUT", "/c/slo?multipart-manifest=put")
        .body(manifest.to_string())
        .send()
        .expect("manifest PUT");
    assert_eq!(r.status(), 201, "{:?}", r.text());
    let r = api.send("GET", "/c/slo", &[("range", "bytes=990-2009")]);
    assert_eq!(r.status(), 206);
    assert_eq!(r.headers()["content-range"], "bytes 990-2009/3000");
    assert_eq!(&r.bytes().expect("body")[..], &data[990..2010]);
    let r = api.send("GET", "/c/slo", &[("range", "bytes=0-0,-1")]);
    assert_eq!(r.status(), 206);
    let (status, whole) = api.must_get("/c/slo", &[]);
    assert_eq!(status, 200);
    assert_eq!(whole, data);
    let (status, m) = api.must_get("/c/slo?multipart-manifest=get", &[]);
    assert_eq!(status, 200);
    let m: serde_json::Value = serde_json::from_slice(&m).expect("stored manifest is JSON");
    assert_eq!(m[2]["name"], "/c/seg/2");
    assert_eq!(m[2]["bytes"], 1000);
    // A segment that changes makes the SLO unavailable, never a stitched body.
    api.must_put("/c/seg/1", b"changed".to_vec(), &[], 201);
    assert_eq!(api.send("GET", "/c/slo", &[]).status(), 409);
}

/// Bad input gets a precise 4xx and stores nothing.
#[test]
fn bad_input_is_refused_and_nothing_partial_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/c", vec![], &[], 201);
    api.must_put("/c/keep.txt", b"keep".to_vec(), &[], 201);
    let auth = format!("X-Auth-Token: {}", api.token);
    let raw = |head: String| raw_http(origin.addr, &head, b"", false);

    // Paths: dot segments, encoded slashes, NUL, overlong UTF-8, length. NUL and invalid
    // UTF-8 get Swift's 412; a literal `%2F` (sent as `%252F`) is a name like any other.
    for (path, code) in [
        ("/v1/AUTH_demo/c/../c/keep.txt", 400),
        ("/v1/AUTH_demo/c/a/./b", 400),
        ("/v1/AUTH_demo/c/a%2Fb", 400),
        ("/v1/AUTH_demo/c/a%2fb", 400),
        ("/v1/AUTH_demo/c/a%00b", 412),
        ("/v1/AUTH_demo/c/%C0%AE%C0%AE", 412),
        ("/v1/AUTH_demo/c/a%252Fb", 404),
        ("/v1/AUTH_demo/c/%zz", 400),
    ] {
        let r = raw(format!("GET {path} HTTP/1.1\nHost: x\n{auth}"));
        assert_eq!(
            r.status,
            code,
            "{path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        assert!(!r.body.is_empty(), "{path}: the body says why");
    }
    let long = "o".repeat(1025);
    let r = raw(format!(
        "PUT /v1/AUTH_demo/c/{long} HTTP/1.1\nHost: x\n{auth}\nContent-Length: 1"
    ));
    assert_eq!(r.status, 400);
    let ok = "o".repeat(1024);
    api.must_put(&format!("/c/{ok}"), b"x".to_vec(), &[], 201);

    // Listing limits.
    assert_eq!(api.send("GET", "/c?limit=10001", &[]).status(), 412);
    assert_eq!(api.send("GET", "/c?limit=10000", &[]).status(), 200);
    assert_eq!(api.send("GET", "/c?limit=x", &[]).status(), 400);

    // Manifests.
    for (body, what) in [
        ("[{\"path\":", "truncated JSON"),
        ("{\"path\": \"/c/keep.txt\"}", "not a list"),
        ("[]", "no segments"),
        ("[{\"path\": \"/c/missing\"}]", "missing segment"),
        (
            "[{\"path\": \"/c/keep.txt\", \"etag\": \"bad\"}]",
            "etag mismatch",
        ),
        (
            "[{\"path\": \"/c/keep.txt\", \"size_bytes\": 5}]",
            "size mismatch",
        ),
        ("[{\"path\": \"nocontainer\"}]", "bad segment path"),
        ("[{\"path\": \"/c/keep.txt\", \"bogus\": 1}]", "unknown key"),
    ] {
        let r = api
            .req("PUT", "/c/m?multipart-manifest=put")
            .body(body)
            .send()
            .expect("PUT");
        assert_eq!(r.status(), 400, "{what}");
    }
    assert_eq!(api.send("HEAD", "/c/m", &[]).status(), 404);

    // Credentials.
    let anon = reqwest::blocking::Client::new();
    let r = anon
        .get(format!("{}/c/keep.txt", api.storage))
        .send()
        .expect("GET");
    assert_eq!(r.status(), 401);
    let r = anon
        .get(format!("{}/c/keep.txt", api.storage))
        .header("x-auth-token", "AUTH_tknotatoken")
        .send()
        .expect("GET");
    assert_eq!(r.status(), 401);
    let r = anon
        .get(format!("{}/auth/v1.0", origin.url))
        .header("x-auth-user", "demo:demo")
        .header("x-auth-key", "wrong")
        .send()
        .expect("auth");
    assert_eq!(r.status(), 401);
    // Another account: 403, whether or not the container exists there.
    let other = api.storage.replace("AUTH_demo", "AUTH_other");
    for path in ["", "/c", "/c/keep.txt", "/nope/x"] {
        let r = api
            .client
            .get(format!("{other}{path}"))
            .header("x-auth-token", &api.token)
            .send()
            .expect("GET");
        assert_eq!(r.status(), 403, "AUTH_other{path}");
    }

    // State conflicts.
    assert_eq!(api.send("DELETE", "/c", &[]).status(), 409);
    assert_eq!(api.send("DELETE", "/nope", &[]).status(), 404);
    assert_eq!(api.send("DELETE", "/c/nope", &[]).status(), 404);
    api.must_put("/nope/x", b"x".to_vec(), &[], 404);
    let r = raw(format!(
        "PUT /v1/AUTH_demo/c/nolength HTTP/1.1\nHost: x\n{auth}"
    ));
    assert_eq!(r.status, 411);
    // A DLO manifest must name <container>/<prefix> (DLOs themselves: swift_fidelity).
    let r = api.send("PUT", "/c/dlo", &[("x-object-manifest", "no-slash")]);
    assert_eq!(r.status(), 400);
    let r = api.send("POST", "/c/keep.txt", &[("x-delete-at", "12")]);
    assert_eq!(r.status(), 400);

    // Sizes and quotas: 413, nothing stored.
    let r = raw(format!(
        "PUT /v1/AUTH_demo/c/huge HTTP/1.1\nHost: x\n{auth}\nContent-Length: 6000000000"
    ));
    assert_eq!(r.status, 413, "over max_object_size");
    api.must_put(
        "/q",
        vec![],
        &[
            ("x-container-meta-quota-bytes", "10"),
            ("x-container-meta-quota-count", "2"),
        ],
        201,
    );
    api.must_put("/q/a", b"12345".to_vec(), &[], 201);
    api.must_put("/q/b", b"123456".to_vec(), &[], 413);
    api.must_put("/q/b", b"12345".to_vec(), &[], 201);
    api.must_put("/q/c", b"".to_vec(), &[], 413);
    let head = api.send("HEAD", "/q", &[]);
    assert_eq!(head.headers()["x-container-object-count"], "2");
    let r = api.send("POST", "", &[("x-account-meta-quota-bytes", "1")]);
    assert_eq!(r.status(), 403, "only a reseller sets account quotas");

    // Aborted uploads: the client announces more than it sends and goes away.
    for (i, sent) in [0usize, 1, 5000, 99_999].into_iter().enumerate() {
        let r = raw_http(
            origin.addr,
            &format!(
                "PUT /v1/AUTH_demo/c/aborted{i} HTTP/1.1\nHost: x\n{auth}\nContent-Length: 100000"
            ),
            &vec![b'x'; sent],
            true,
        );
        assert!(
            r.status == 499 || r.status == 400 || r.status == 0,
            "aborted upload answered {}",
            r.status
        );
    }
    // An aborted overwrite leaves the old version intact.
    let r = raw_http(
        origin.addr,
        &format!("PUT /v1/AUTH_demo/c/keep.txt HTTP/1.1\nHost: x\n{auth}\nContent-Length: 10"),
        b"part",
        true,
    );
    assert_ne!(r.status, 201);
    let (status, body) = api.must_get("/c/keep.txt", &[]);
    assert_eq!((status, body.as_slice()), (200, &b"keep"[..]));
    let names: Vec<String> = api
        .must_list_all("c")
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(names, ["keep.txt".to_owned(), ok.clone()]);
    let head = api.send("HEAD", "/c", &[]);
    assert_eq!(head.headers()["x-container-object-count"], "2");
    assert_eq!(head.headers()["x-container-bytes-used"], "5");
    // The aborted bodies' temp files are gone.
    let tmp = origin.data.join("tmp");
    must_eventually("temp files removed", Duration::from_secs(10), || {
        std::fs::read_dir(&tmp).map(|d| d.count()).unwrap_or(0) == 0
    });
}

/// Listings in every format, paged the way clients page them.
#[test]
fn listings_page_like_swift() {
    let dir = tempfile::tempdir().expect("tempdir");
    let origin = OriginProc::start(dir.path());
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    api.must_put("/l", vec![], &[], 201);
    let names = [
        "a",
        "b/1",
        "b/2",
        "b/c/1",
        "b/c/2",
        "b0",
        "c/1",
        "d",
        "photos & <things>",
    ];
    for n in names {
        api.must_put(&format!("/l/{n}"), n.as_bytes().to_vec(), &[], 201);
    }
    let text = |q: &str| {
        let (s, b) = api.must_get(&format!("/l{}", q.replace(' ', "%20")), &[]);
        // Swift answers an empty plain listing with 204.
        assert!(s == 200 || (s == 204 && b.is_empty()), "{q}: {s}");
        String::from_utf8(b).expect("utf-8")
    };
    assert_eq!(text("").lines().collect::<Vec<_>>(), names);
    assert_eq!(
        text("?delimiter=/"),
        "a\nb/\nb0\nc/\nd\nphotos & <things>\n"
    );
    assert_eq!(text("?prefix=b/&delimiter=/"), "b/1\nb/2\nb/c/\n");
    assert_eq!(text("?prefix=b/&delimiter=/&marker=b/c/"), "");
    assert_eq!(text("?marker=b/2&end_marker=c"), "b/c/1\nb/c/2\nb0\n");
    assert_eq!(text("?reverse=true&limit=3"), "photos & <things>\nd\nc/1\n");
    assert_eq!(text("?reverse=true&prefix=b/"), "b/c/2\nb/c/1\nb/2\nb/1\n");
    assert_eq!(text("?reverse=true&delimiter=/&marker=c"), "b0\nb/\na\n");
    // Paging one entry at a time with the last name as marker visits each entry once.
    let mut seen: Vec<String> = Vec::new();
    loop {
        let mut q = vec![("delimiter", "/"), ("limit", "1")];
        if let Some(m) = seen.last() {
            q.push(("marker", m.as_str()));
        }
        let r = api.req("GET", "/l").query(&q).send().expect("listing");
        let page = r.text().expect("body");
        let Some(first) = page.lines().next() else {
            break;
        };
        seen.push(first.to_owned());
        assert!(seen.len() < 20, "paging does not terminate: {seen:?}");
    }
    assert_eq!(seen, ["a", "b/", "b0", "c/", "d", "photos & <things>"]);
    let json: serde_json::Value =
        serde_json::from_str(&text("?format=json&prefix=b/&delimiter=/")).expect("JSON");
    assert_eq!(json[0]["name"], "b/1");
    assert_eq!(json[0]["bytes"], 3);
    assert_eq!(json[0]["hash"], md5_hex(b"b/1"));
    assert_eq!(json[2]["subdir"], "b/c/");
    let xml = text("?format=xml&prefix=photos");
    assert!(
        xml.contains("<name>photos &amp; &lt;things&gt;</name>"),
        "{xml}"
    );
    // Read-your-writes: a delete is gone from the very next listing.
    assert_eq!(api.send("DELETE", "/l/b0", &[]).status(), 204);
    assert!(!text("").lines().any(|l| l == "b0"));
    // The account listing and counters follow.
    let (s, b) = api.must_get("?format=json", &[]);
    assert_eq!(s, 200);
    let acct: serde_json::Value = serde_json::from_slice(&b).expect("JSON");
    assert_eq!(acct[0]["name"], "l");
    assert_eq!(acct[0]["count"], names.len() - 1);
    // Objects past X-Delete-At are 404 and unlisted at once.
    api.must_put("/l/soon", b"x".to_vec(), &[("x-delete-after", "1")], 201);
    must_eventually("expired object hidden", Duration::from_secs(5), || {
        api.send("HEAD", "/l/soon", &[]).status() == 404
    });
    assert!(!text("").lines().any(|l| l == "soon"));
}
