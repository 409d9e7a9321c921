//! Rules for account, container and object names (Swift's limits), and the one place a
//! request path becomes a [`StoragePath`].
//!
//! The path is percent-decoded exactly once and the result is the name, as Swift does: any
//! valid UTF-8 without NUL, a container of at most 256 bytes, an object of at most 1024.
//! `a%252Fb` is the object `a%2Fb`; `a%2Fb` stays refused (a proxy in between may or may not
//! decode it, so two components could split the path differently).

use outpost_auth::{CanonicalPath, StoragePath};

use crate::{Error, Refusal};

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

/// Parses a request path into a storage path, with Swift's answers for what Swift refuses:
/// `412 Invalid UTF8 or contains NULL`, `412 Bad URL` for `/v1` without an account, and
/// `400` naming the length of a container or object name that is too long.
///
/// # Errors
/// [`Error::Refused`] as above; [`Error::BadPath`] for the ambiguities `auth` refuses
/// (`..`, `%2F`, control bytes, malformed escapes).
pub fn storage_path(raw: &str) -> Result<StoragePath, Error> {
    let canonical = CanonicalPath::parse(raw).map_err(|e| match e {
        outpost_auth::Error::PathInvalidUtf8 | outpost_auth::Error::PathControlByte { byte: 0 } => {
            Error::Refused(Refusal::InvalidUtf8OrNul)
        }
        e => Error::BadPath(e),
    })?;
    let s = canonical.as_str();
    if s == "/v1" || s == "/v1/" {
        return Err(Error::Refused(Refusal::BadUrl));
    }
    // `/v1/<account>/<container>[/<object>]`: Swift's limits, with Swift's words.
    let mut parts = s.splitn(5, '/').skip(3);
    if let Some(c) = parts.next().filter(|_| s.starts_with("/v1/")) {
        if c.len() > MAX_CONTAINER {
            return Err(Error::Refused(Refusal::ContainerNameTooLong {
                len: c.len(),
            }));
        }
        if let Some(o) = parts.next().filter(|o| o.len() > MAX_OBJECT) {
            return Err(Error::Refused(Refusal::ObjectNameTooLong { len: o.len() }));
        }
    }
    Ok(StoragePath::from_canonical(canonical)?)
}

/// Title-cases a header name as webob (and so Swift) writes it: `x-object-meta-big-name` →
/// `X-Object-Meta-Big-Name`.
pub fn title_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut up = true;
    for c in name.chars() {
        out.extend(if up {
            c.to_uppercase().collect::<Vec<_>>()
        } else {
            c.to_lowercase().collect::<Vec<_>>()
        });
        up = c == '-';
    }
    out
}

fn check(what: &'static str, name: &str, max: usize) -> Result<(), Error> {
    let bad = |reason| Err(Error::BadName { what, reason });
    if name.is_empty() {
        return bad("empty");
    }
    if name.len() > max {
        return Err(match what {
            "container" => Error::Refused(Refusal::ContainerNameTooLong { len: name.len() }),
            "object" => Error::Refused(Refusal::ObjectNameTooLong { len: name.len() }),
            _ => Error::BadName {
                what,
                reason: "too long",
            },
        });
    }
    if name.bytes().any(|b| b == 0) {
        return Err(Error::Refused(Refusal::InvalidUtf8OrNul));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(raw: &str) -> Option<String> {
        storage_path(raw).ok()?.object().map(str::to_owned)
    }

    #[test]
    fn decodes_exactly_once() {
        assert_eq!(name("/v1/AUTH_a/c/a%252Fb").as_deref(), Some("a%2Fb"));
        assert_eq!(name("/v1/AUTH_a/c/x%2520y").as_deref(), Some("x%20y"));
        assert_eq!(name("/v1/AUTH_a/c/x%20y").as_deref(), Some("x y"));
        assert_eq!(name("/v1/AUTH_a/c/100%25").as_deref(), Some("100%"));
        assert_eq!(
            name("/v1/AUTH_a/c/%E1%88%B4%2541").as_deref(),
            Some("\u{1234}%41")
        );
        let p = storage_path("/v1/AUTH_a/c%2520d/o").unwrap();
        assert_eq!(p.container(), Some("c%20d"));
    }

    #[test]
    fn swift_refusals() {
        let refused = |raw: &str| match storage_path(raw) {
            Err(Error::Refused(r)) => Some(r),
            _ => None,
        };
        assert_eq!(refused("/v1/AUTH_a/c/%FF"), Some(Refusal::InvalidUtf8OrNul));
        assert_eq!(
            refused("/v1/AUTH_a/c/a%00"),
            Some(Refusal::InvalidUtf8OrNul)
        );
        assert_eq!(
            refused("/v1/AUTH_a/c%C0%AF"),
            Some(Refusal::InvalidUtf8OrNul)
        );
        assert_eq!(refused("/v1"), Some(Refusal::BadUrl));
        assert_eq!(refused("/v1/"), Some(Refusal::BadUrl));
        let long = format!("/v1/AUTH_a/c/{}", "o".repeat(1025));
        assert_eq!(
            refused(&long),
            Some(Refusal::ObjectNameTooLong { len: 1025 })
        );
        assert!(storage_path(&format!("/v1/AUTH_a/c/{}", "o".repeat(1024))).is_ok());
        let long = format!("/v1/AUTH_a/{}", "c".repeat(257));
        assert_eq!(
            refused(&long),
            Some(Refusal::ContainerNameTooLong { len: 257 })
        );
        // Ambiguities stay refused, with 400.
        for bad in [
            "/v1/AUTH_a/c/a%2Fb",
            "/v1/AUTH_a/c/../x",
            "/v1/AUTH_a/c/a%0A",
        ] {
            assert!(matches!(storage_path(bad), Err(Error::BadPath(_))), "{bad}");
        }
    }

    #[test]
    fn title_cases_like_webob() {
        assert_eq!(
            title_case("x-object-meta-big-name"),
            "X-Object-Meta-Big-Name"
        );
        assert_eq!(title_case("etag"), "Etag");
        assert_eq!(title_case("nnn"), "Nnn");
        assert_eq!(title_case("X-MIXED"), "X-Mixed");
    }
}
