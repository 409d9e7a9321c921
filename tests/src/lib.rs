//! # outpost-tests
//!
//! Support for Outpost's cross-crate integration tests (`tests/tests/*.rs`). They run the real
//! `outpost` binary that `cargo test --workspace` builds next to the test executables, and real
//! clients (python-swiftclient, curl, rclone) where users would use them.
//!
//! Helpers that check and fail loudly are named `must_*`.
//!
//! ```no_run
//! let out = outpost_tests::must_run_outpost(&["key", "gen", "--id", "k1"]);
//! assert!(out.contains("[[keys]]"));
//! ```

pub mod clients;
pub mod cluster;
pub mod pebble;
pub mod ring_cluster;
pub mod scripted;
pub mod tokens;
pub mod xdc;

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// Path of the `outpost` binary (`target/<profile>/outpost`), or `$OUTPOST_BIN` when set.
///
/// The first call runs `cargo build --bin outpost` in the same profile, so a test run with
/// `-p outpost-tests` never exercises a stale binary.
///
/// # Panics
/// When the build fails or the binary cannot be found.
pub fn outpost_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(find_or_build_bin).clone()
}

fn find_or_build_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTPOST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> or target/<profile>/<bench binary> → target/<profile>
    let parent = exe.parent().expect("executable has a directory");
    let dir = if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("deps has a parent")
    } else {
        parent
    };
    let bin = dir.join(format!("outpost{}", std::env::consts::EXE_SUFFIX));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "outpost", "--bin", "outpost"]);
    if dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("spawn cargo build");
    assert!(status.success(), "cargo build --bin outpost failed");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build` or `cargo test --workspace` first",
        bin.display()
    );
    bin
}

/// Runs `outpost <args>` and returns its stdout, panicking with its stderr if it fails.
pub fn must_run_outpost(args: &[&str]) -> String {
    let out = Command::new(outpost_bin())
        .args(args)
        .output()
        .expect("spawn outpost");
    assert!(
        out.status.success(),
        "outpost {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs `outpost <args>` expecting failure; returns its stderr.
pub fn must_fail_outpost(args: &[&str]) -> String {
    let out = Command::new(outpost_bin())
        .args(args)
        .output()
        .expect("spawn outpost");
    assert!(
        !out.status.success(),
        "outpost {args:?} unexpectedly succeeded"
    );
    String::from_utf8(out.stderr).expect("utf-8 output")
}

/// Finds a program on `PATH`.
pub fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(program))
            .find(|p| p.is_file())
    })
}
