//! Rules for account, container and object names (Swift's limits).

use crate::Error;

/// Longest account name (after `AUTH_`).
pub const MAX_ACCOUNT: usize = 256;
/// Longest container name.
pub const MAX_CONTAINER: usize = 256;
/// Longest object name.
pub const MAX_OBJECT: usize = 1024;
/// Most metadata headers per resource.
pub const MAX_META_COUNT: usize = 90;
/// Longest metadata name.
pub const MAX_META_NAME: usize = 128;
/// Longest metadata value.
pub const MAX_META_VALUE: usize = 256;
/// Most bytes of metadata (names + values) per resource.
pub const MAX_META_OVERALL: usize = 4096;

fn check(what: &'static str, name: &str, max: usize) -> Result<(), Error> {
    let bad = |reason| Err(Error::BadName { what, reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > max {
        return bad("too long");
    }
    if name.bytes().any(|b| b == 0) {
        return bad("contains NUL");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are reserved");
    }
    Ok(())
}

/// Checks an account name.
///
/// # Errors
/// [`Error::BadName`].
pub fn check_account(name: &str) -> Result<(), Error> {
    check("account", name, MAX_ACCOUNT)?;
    if name.contains('/') {
        return Err(Error::BadName {
            what: "account",
            reason: "contains '/'",
        });
    }
    Ok(())
}

/// Checks a container name.
///
/// # Errors
/// [`Error::BadName`].
pub fn check_container(name: &str) -> Result<(), Error> {
    check("container", name, MAX_CONTAINER)
}

/// Checks an object name.
///
/// # Errors
/// [`Error::BadName`].
pub fn check_object(name: &str) -> Result<(), Error> {
    check("object", name, MAX_OBJECT)
}
