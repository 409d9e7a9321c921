//! Failpoints of the write path, for fault tests only.
//!
//! With the `failpoints` feature (the `outpost-failpoints` binary the tests build; the release
//! `outpost` binary has none), each [`hit`] evaluates the failpoint of that name through the
//! `fail` crate, configured once at start from `FAILPOINTS="name=action;name=action"` (the
//! `fail` crate's action syntax). `return(crash)` (or a bare `return`) aborts the process
//! there, as a power cut or `kill -9` would; `return(error)` fails that step with an I/O
//! error; `sleep(ms)`, `pause`, `panic` and `off` work as in `fail`. Without the feature,
//! [`hit`] does nothing and compiles away, and a set `FAILPOINTS` stops the node at start
//! (a test that meant to inject faults must not pass without them).
//!
//! The points, in the order one object write reaches them on each node that stores it:
//! [`PUT_AFTER_TEMP`], [`PUT_AFTER_RENAME`], [`PUT_AFTER_ROW`], [`PUT_BEFORE_REPLY`].

use crate::Result;

/// The body is in a fsynced temp file; nothing is visible.
pub const PUT_AFTER_TEMP: &str = "put-after-temp";
/// The data file is renamed into place; no row names it yet (a crash leaves an orphan).
pub const PUT_AFTER_RENAME: &str = "put-after-rename";
/// The row is committed; the replaced version's file is not removed yet.
pub const PUT_AFTER_ROW: &str = "put-after-row";
/// Everything is done; the answer is not sent yet.
pub const PUT_BEFORE_REPLY: &str = "put-before-reply";

/// The environment variable failpoints are configured from.
pub const ENV: &str = "FAILPOINTS";

/// Configures the failpoints from [`ENV`].
///
/// # Errors
/// [`crate::Error::Config`] naming [`ENV`] when a point is malformed, or when it is set in a
/// build without failpoints.
pub fn setup() -> Result<()> {
    let Ok(spec) = std::env::var(ENV) else {
        return Ok(());
    };
    configure(&spec)
}

#[cfg(feature = "failpoints")]
fn configure(spec: &str) -> Result<()> {
    for item in spec.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, actions) = item
            .split_once('=')
            .ok_or_else(|| bad("expected name=action"))?;
        fail::cfg(name.trim(), actions.trim()).map_err(bad)?;
        tracing::warn!(failpoint = name, actions, "failpoint armed");
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
fn configure(_spec: &str) -> Result<()> {
    Err(bad(
        "this build has no failpoints (build the outpost-failpoints binary)",
    ))
}

fn bad(reason: impl Into<String>) -> crate::Error {
    crate::Error::Config {
        key: ENV.into(),
        reason: reason.into(),
    }
}

/// Evaluates failpoint `name` (see the module docs for the actions).
///
/// # Errors
/// [`crate::Error::Io`] when the point is armed with `return(error)`.
#[inline]
pub fn hit(name: &'static str) -> Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(arg) = fail::eval(name, |arg| arg) {
        return act(name, arg.as_deref());
    }
    let _ = name;
    Ok(())
}

#[cfg(feature = "failpoints")]
fn act(name: &'static str, arg: Option<&str>) -> Result<()> {
    match arg {
        Some("error") => Err(crate::Error::Io(std::io::Error::other(format!(
            "failpoint {name}"
        )))),
        _ => {
            eprintln!("failpoint {name}: crashing");
            std::process::abort()
        }
    }
}

#[cfg(all(test, feature = "failpoints"))]
mod tests {
    use super::*;

    #[test]
    fn error_action_fails_the_step() {
        configure("unit-test-point=return(error)").unwrap();
        assert!(matches!(hit("unit-test-point"), Err(crate::Error::Io(_))));
        configure("unit-test-point=off").unwrap();
        assert!(hit("unit-test-point").is_ok());
        assert!(configure("no-equals-sign").is_err());
    }
}
