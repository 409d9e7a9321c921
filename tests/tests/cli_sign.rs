//! `outpost sign ...` against the reference implementations and against our own verifier.

use std::net::IpAddr;
use std::process::Command;

use outpost_auth::{
    verify, AccessRequest, KeySet, KeyStore, NoRevocations, Secret, StoragePath, TempUrlKeys,
    TokenKeySpec, VerifyOptions,
};
use outpost_tests::{must_fail_outpost, must_run_outpost, which};

/// `outpost sign swift-tempurl` prints exactly what python-swiftclient's `swift tempurl` prints.
#[test]
fn swift_tempurl_matches_python_swiftclient() {
    let Some(swift) = which("swift") else {
        eprintln!("SKIPPED: the `swift` CLI (pip install python-swiftclient) is not installed");
        return;
    };
    let cases: &[(&[&str], &[&str])] = &[
        (&[], &[]),
        (&["--digest", "sha512"], &["--digest", "sha512"]),
        (&["--digest", "sha1"], &["--digest", "sha1"]),
        (&["--iso8601"], &["--iso8601"]),
        (&["--ip-range", "10.0.0.0/8"], &["--ip-range", "10.0.0.0/8"]),
        (
            &["--ip-range", "2001:db8::/32"],
            &["--ip-range", "2001:db8::/32"],
        ),
    ];
    let paths = [
        "/v1/AUTH_test/photos/party/banya.jpg",
        "/v1/AUTH_test/videos/movie one.mp4",
        "/v1/AUTH_test/c/пример.txt",
    ];
    let mut compared = 0;
    for method in ["GET", "PUT", "HEAD"] {
        for path in paths {
            for (ours, theirs) in cases {
                let mut args = vec![
                    "sign",
                    "swift-tempurl",
                    "--method",
                    method,
                    "--path",
                    path,
                    "--key",
                    "mykey-0123456789",
                    "--expires-at",
                    "1999999999",
                ];
                args.extend_from_slice(ours);
                let mine = must_run_outpost(&args);
                let out = Command::new(&swift)
                    .arg("tempurl")
                    .args(*theirs)
                    .args(["--absolute", method, "1999999999", path, "mykey-0123456789"])
                    .output()
                    .expect("run swift tempurl");
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    mine,
                    String::from_utf8_lossy(&out.stdout),
                    "{method} {path} {ours:?}"
                );
                compared += 1;
            }
        }
    }
    // Prefix-based URLs.
    let mine = must_run_outpost(&[
        "sign",
        "swift-tempurl",
        "--path",
        "/v1/AUTH_test/videos/season1/",
        "--key",
        "k",
        "--expires-at",
        "1999999999",
        "--prefix",
    ]);
    let out = Command::new(&swift)
        .args([
            "tempurl",
            "--prefix-based",
            "--absolute",
            "GET",
            "1999999999",
        ])
        .args(["/v1/AUTH_test/videos/season1/", "k"])
        .output()
        .expect("run swift tempurl");
    assert_eq!(mine, String::from_utf8_lossy(&out.stdout));
    assert_eq!(compared, 54);
}

struct Keys(KeySet);
impl KeyStore for Keys {
    fn token_keys(&self, account: &str) -> Option<&KeySet> {
        (account == "demo").then_some(&self.0)
    }
    fn tempurl_keys(&self, _: &str, _: &str) -> TempUrlKeys<'_> {
        TempUrlKeys::default()
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A URL printed by `outpost sign url` verifies with the same key, for the signed path only.
#[test]
fn signed_url_verifies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let secret = dir.path().join("k1.secret");
    std::fs::write(&secret, "0123456789abcdef-demo-secret\n").expect("write secret");
    let secret_arg = secret.to_str().expect("utf-8 path");
    let url = must_run_outpost(&[
        "sign",
        "url",
        "--account",
        "demo",
        "--key-id",
        "k1",
        "--secret-file",
        secret_arg,
        "--path",
        "/videos/movie one.mp4",
        "--expires-in",
        "15s",
    ]);
    let url = url.trim();
    let (path, query) = url.split_once('?').expect("query");
    assert_eq!(path, "/videos/movie%20one.mp4");
    let keys = Keys(
        KeySet::new([TokenKeySpec {
            id: "k1".into(),
            secret: Secret::new("0123456789abcdef-demo-secret"),
            not_before: None,
            not_after: None,
        }])
        .expect("keys"),
    );
    let headers = http::HeaderMap::new();
    let check = |storage: &str, at: u64| {
        let p = StoragePath::parse(storage).expect("path");
        let req = AccessRequest {
            method: "GET",
            path: &p,
            query: Some(query),
            path_token: None,
            headers: &headers,
            client_ip: IpAddr::from([127, 0, 0, 1]),
            now: at,
        };
        verify(&req, &keys, &NoRevocations, &VerifyOptions::default())
    };
    let t = now();
    check("/v1/AUTH_demo/videos/movie%20one.mp4", t).expect("signed path verifies");
    let e = check("/v1/AUTH_demo/videos/other.mp4", t).expect_err("other path");
    assert_eq!(e.deny_reason().as_str(), "wrong-scope");
    let e = check("/v1/AUTH_demo/videos/movie%20one.mp4", t + 21).expect_err("late");
    assert_eq!(e.deny_reason().as_str(), "expired");

    let err = must_fail_outpost(&[
        "sign",
        "url",
        "--account",
        "demo",
        "--key-id",
        "k1",
        "--secret-file",
        "/nonexistent",
        "--path",
        "/a",
        "--expires-in",
        "15s",
    ]);
    assert!(err.contains("--secret-file"), "{err}");
}
