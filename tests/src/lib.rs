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
pub mod faults;
pub mod forwarder;
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

/// Path of an `outpost` binary built with the origin's failpoints (`--features failpoints`,
/// armed by `FAILPOINTS` at start), or `$OUTPOST_FAILPOINTS_BIN` when set.
///
/// The first call builds it and copies it to `target/<profile>/outpost-failpoints`, then builds
/// the plain binary again, so [`outpost_bin`] keeps naming a binary without failpoints (both
/// builds stay cached: switching costs a link, not a compile).
///
/// # Panics
/// When a build fails.
pub fn outpost_failpoints_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(p) = std::env::var_os("OUTPOST_FAILPOINTS_BIN") {
            return PathBuf::from(p);
        }
        let dir = profile_dir();
        let bin = dir.join(format!("outpost{}", std::env::consts::EXE_SUFFIX));
        let copy = dir.join(format!(
            "outpost-failpoints{}",
            std::env::consts::EXE_SUFFIX
        ));
        cargo_build_outpost(&dir, &["--features", "failpoints"]);
        std::fs::copy(&bin, &copy).expect("copy the failpoints binary");
        cargo_build_outpost(&dir, &[]);
        copy
    })
    .clone()
}

/// `target/<profile>` of the running test executable.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current test executable");
    // target/<profile>/deps/<test> or target/<profile>/<bench binary> → target/<profile>
    let parent = exe.parent().expect("executable has a directory");
    if parent.file_name().is_some_and(|n| n == "deps") {
        parent.parent().expect("deps has a parent").to_owned()
    } else {
        parent.to_owned()
    }
}

fn cargo_build_outpost(dir: &std::path::Path, extra: &[&str]) {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "outpost", "--bin", "outpost"]);
    build.args(extra);
    if dir.file_name().is_some_and(|p| p == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("spawn cargo build");
    assert!(
        status.success(),
        "cargo build --bin outpost {extra:?} failed"
    );
}

fn find_or_build_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("OUTPOST_BIN") {
        return PathBuf::from(p);
    }
    let dir = profile_dir();
    let bin = dir.join(format!("outpost{}", std::env::consts::EXE_SUFFIX));
    cargo_build_outpost(&dir, &[]);
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
