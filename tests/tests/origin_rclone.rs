//! rclone (Debian package, swift backend) against the real `outpost origin`: a tree of 1,000
//! small files synced up and back down, `rclone check` finding no differences, then changes
//! (edits, deletes, additions) synced and checked again.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use outpost_tests::clients::{must_run_within, pseudo_random, run_within, walk, Session};
use outpost_tests::cluster::{OriginProc, USER_KEY};
use outpost_tests::which;

const TIMEOUT: Duration = Duration::from_secs(300);

fn rclone(dir: &Path, auth: &str, args: &[&str]) -> Command {
    let mut c = Command::new("rclone");
    c.args(args)
        .args(["--retries", "1", "--low-level-retries", "1"])
        // An empty config file: the remote `o:` comes from the environment only.
        .env("RCLONE_CONFIG", dir.join("rclone.conf"))
        .env("RCLONE_CONFIG_O_TYPE", "swift")
        .env("RCLONE_CONFIG_O_USER", "demo:demo")
        .env("RCLONE_CONFIG_O_KEY", USER_KEY)
        .env("RCLONE_CONFIG_O_AUTH", auth);
    c
}

/// Asserts that `rclone check a b` finds no difference and compares `files` files.
fn must_check(dir: &Path, auth: &str, a: &str, b: &str, files: usize) {
    let out = must_run_within(&mut rclone(dir, auth, &["check", a, b]), TIMEOUT);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains(": 0 differences found"), "{log}");
    assert!(log.contains(&format!(": {files} matching files")), "{log}");
}

#[test]
fn rclone_sync_up_and_back_then_check() {
    if which("rclone").is_none() {
        eprintln!("SKIPPED: rclone is not installed (apt-get install rclone)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("rclone.conf"), "").expect("empty rclone config");
    let origin = OriginProc::start(dir.path());
    let auth = format!("{}/auth/v1.0", origin.url);
    let up = dir.path().join("up");
    let mut n = 0;
    for d in 0..10 {
        for s in 0..10 {
            for f in 0..10 {
                let p = up.join(format!("d{d}/s{s}/f{f}.txt"));
                std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
                let size = 1 + (n * 37) % 3000;
                std::fs::write(&p, pseudo_random(n as u64, size)).expect("write");
                n += 1;
            }
        }
    }
    assert_eq!(n, 1000);
    let up_s = up.to_str().expect("utf-8");

    must_run_within(
        &mut rclone(dir.path(), &auth, &["sync", up_s, "o:tree"]),
        TIMEOUT,
    );
    must_check(dir.path(), &auth, up_s, "o:tree", 1000);
    let api = Session::must_login(&origin.url, "demo:demo", USER_KEY);
    let head = api.send("HEAD", "/tree", &[]);
    assert_eq!(head.headers()["x-container-object-count"], "1000");

    let down = dir.path().join("down");
    let down_s = down.to_str().expect("utf-8");
    must_run_within(
        &mut rclone(dir.path(), &auth, &["sync", "o:tree", down_s]),
        TIMEOUT,
    );
    must_check(dir.path(), &auth, up_s, down_s, 1000);
    let files = walk(&up);
    assert_eq!(files, walk(&down));
    for f in &files {
        assert_eq!(
            std::fs::read(up.join(f)).expect("read"),
            std::fs::read(down.join(f)).expect("read"),
            "{f}"
        );
    }

    // Changes: edit, delete, add; sync up and down again.
    std::fs::write(up.join("d0/s0/f0.txt"), b"edited").expect("edit");
    std::fs::remove_file(up.join("d9/s9/f9.txt")).expect("delete");
    std::fs::write(up.join("d5/new.txt"), b"new").expect("add");
    must_run_within(
        &mut rclone(dir.path(), &auth, &["sync", up_s, "o:tree"]),
        TIMEOUT,
    );
    must_check(dir.path(), &auth, up_s, "o:tree", 1000);
    must_run_within(
        &mut rclone(dir.path(), &auth, &["sync", "o:tree", down_s]),
        TIMEOUT,
    );
    must_check(dir.path(), &auth, up_s, down_s, 1000);
    assert_eq!(
        std::fs::read(down.join("d0/s0/f0.txt")).expect("read"),
        b"edited"
    );
    assert!(!down.join("d9/s9/f9.txt").exists());

    // A difference is detected (the check is not vacuous).
    std::fs::write(down.join("d1/s1/f1.txt"), b"tampered").expect("tamper");
    let out = run_within(
        &mut rclone(dir.path(), &auth, &["check", "o:tree", down_s]),
        TIMEOUT,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 differences found"));
}
