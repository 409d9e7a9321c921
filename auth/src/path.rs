//! Canonical request paths and Swift storage paths.
//!
//! Every decision about access is taken on a [`CanonicalPath`]: the percent-decoded path with
//! every ambiguity rejected, so that two spellings of one path can never get two answers.
//!
//! The path is decoded exactly once and the result is the name, as in Swift: `%2520` is the
//! three characters `%20` of a name, never a space. Whatever holds a decoded path and sends it
//! on re-encodes it ([`CanonicalPath::to_encoded`] escapes `%`), so no later decoder sees
//! another path. Scope patterns are literal decoded text: `%` in a pattern is a `%`.

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::Error;

/// Longest raw path accepted, in bytes.
pub const MAX_PATH_BYTES: usize = 8192;

/// Characters percent-encoded when a canonical path is written back into a URL: everything but
/// RFC 3986 unreserved characters, `/` and a few sub-delimiters that are safe in paths.
const PATH_ENCODE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A percent-decoded, validated absolute path.
///
/// Invariants (enforced by the constructors): starts with `/`; valid UTF-8; no NUL, control
/// bytes or DEL; no `.` or `..` segment; was not spelled with `%2F` inside a segment. Empty
/// segments (`a//b`) are kept: Swift object names may contain them. The decoded text may hold
/// `%` followed by hex digits (a name such as `a%2Fb`, sent as `a%252Fb`): it is literal.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CanonicalPath(String);

impl CanonicalPath {
    /// Parses the path of a request target (anything from `?` or `#` on is ignored) and
    /// percent-decodes it.
    ///
    /// # Errors
    /// One typed `Path*` error per rule broken; see [`Error`].
    pub fn parse(target: &str) -> Result<Self, Error> {
        let raw = target.split(['?', '#']).next().unwrap_or("");
        if raw.len() > MAX_PATH_BYTES {
            return Err(Error::PathTooLong {
                len: raw.len(),
                max: MAX_PATH_BYTES,
            });
        }
        let bytes = raw.as_bytes();
        if bytes.first() != Some(&b'/') {
            return Err(Error::PathNotAbsolute);
        }
        let mut out = Vec::with_capacity(bytes.len());
        let mut seg_start = 0usize;
        let mut i = 0usize;
        while i < bytes.len() {
            let b = bytes[i];
            let decoded = if b == b'%' {
                let hi = bytes.get(i + 1).copied().and_then(hex_val);
                let lo = bytes.get(i + 2).copied().and_then(hex_val);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Error::PathBadEscape { at: i });
                };
                let v = hi << 4 | lo;
                if v == b'/' {
                    return Err(Error::PathEncodedSlash);
                }
                i += 3;
                v
            } else {
                i += 1;
                if b == b'/' {
                    check_segment(&out[seg_start..])?;
                    out.push(b'/');
                    seg_start = out.len();
                    continue;
                }
                b
            };
            if decoded < 0x20 || decoded == 0x7f {
                return Err(Error::PathControlByte { byte: decoded });
            }
            out.push(decoded);
        }
        check_segment(&out[seg_start..])?;
        let s = String::from_utf8(out).map_err(|_| Error::PathInvalidUtf8)?;
        Ok(CanonicalPath(s))
    }

    /// Validates a path that is already decoded (such as a signed path from a client library).
    ///
    /// # Errors
    /// As [`CanonicalPath::parse`]; `%` is taken literally.
    pub fn from_decoded(path: &str) -> Result<Self, Error> {
        if path.len() > MAX_PATH_BYTES {
            return Err(Error::PathTooLong {
                len: path.len(),
                max: MAX_PATH_BYTES,
            });
        }
        if !path.starts_with('/') {
            return Err(Error::PathNotAbsolute);
        }
        if let Some(&b) = path.as_bytes().iter().find(|&&b| b < 0x20 || b == 0x7f) {
            return Err(Error::PathControlByte { byte: b });
        }
        for seg in path.split('/') {
            check_segment(seg.as_bytes())?;
        }
        Ok(CanonicalPath(path.to_owned()))
    }

    /// The decoded path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path's segments after the leading `/` (a trailing `/` yields a final empty one).
    pub fn segments(&self) -> std::str::Split<'_, char> {
        self.0[1..].split('/')
    }

    /// The path percent-encoded for use in a URL.
    pub fn to_encoded(&self) -> String {
        utf8_percent_encode(&self.0, PATH_ENCODE).to_string()
    }
}

impl fmt::Display for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CanonicalPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalPath({:?})", self.0)
    }
}

impl AsRef<str> for CanonicalPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

fn check_segment(seg: &[u8]) -> Result<(), Error> {
    if seg == b"." || seg == b".." {
        return Err(Error::PathDotSegment);
    }
    Ok(())
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Longest account name, in bytes (after `AUTH_`).
pub const MAX_ACCOUNT_BYTES: usize = 256;
/// Longest container name, in bytes (Swift's limit).
pub const MAX_CONTAINER_BYTES: usize = 256;
/// Longest object name, in bytes (Swift's limit).
pub const MAX_OBJECT_BYTES: usize = 1024;

/// The reseller prefix of account segments: `/v1/AUTH_<account>`.
pub const RESELLER_PREFIX: &str = "AUTH_";

/// A Swift storage path `/v1/AUTH_<account>[/<container>[/<object>]]`, decoded and validated.
///
/// Holds one string; the parts are slices of it, so splitting costs no allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct StoragePath {
    path: CanonicalPath,
    account: (usize, usize),
    container: Option<(usize, usize)>,
    object: Option<(usize, usize)>,
}

impl StoragePath {
    /// Splits a canonical path into account, container and object.
    ///
    /// A trailing `/` after the container (`/v1/AUTH_a/c/`) means "the container".
    ///
    /// # Errors
    /// [`Error::NotStoragePath`] when the version, reseller prefix or a name is wrong or empty
    /// or too long.
    pub fn from_canonical(path: CanonicalPath) -> Result<Self, Error> {
        let s = path.as_str();
        let rest = s.strip_prefix("/v1/").ok_or(Error::NotStoragePath {
            reason: "must start with /v1/",
        })?;
        let base = s.len() - rest.len();
        let (acct_seg, after) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let name = acct_seg
            .strip_prefix(RESELLER_PREFIX)
            .ok_or(Error::NotStoragePath {
                reason: "account must start with AUTH_",
            })?;
        if name.is_empty() || name.len() > MAX_ACCOUNT_BYTES {
            return Err(Error::NotStoragePath {
                reason: "account name is empty or too long",
            });
        }
        let acct_start = base + RESELLER_PREFIX.len();
        let account = (acct_start, acct_start + name.len());
        let mut container = None;
        let mut object = None;
        if let Some(after) = after {
            let c_start = account.1 + 1;
            let (c, o) = match after.find('/') {
                Some(i) => (&after[..i], Some(&after[i + 1..])),
                None => (after, None),
            };
            if c.is_empty() {
                if o.is_some() || !after.is_empty() {
                    return Err(Error::NotStoragePath {
                        reason: "container name is empty",
                    });
                }
            } else {
                if c.len() > MAX_CONTAINER_BYTES {
                    return Err(Error::NotStoragePath {
                        reason: "container name is too long",
                    });
                }
                container = Some((c_start, c_start + c.len()));
                if let Some(o) = o.filter(|o| !o.is_empty()) {
                    if o.len() > MAX_OBJECT_BYTES {
                        return Err(Error::NotStoragePath {
                            reason: "object name is too long",
                        });
                    }
                    let o_start = c_start + c.len() + 1;
                    object = Some((o_start, o_start + o.len()));
                }
            }
        }
        Ok(StoragePath {
            path,
            account,
            container,
            object,
        })
    }

    /// Parses a raw request target into a storage path.
    ///
    /// # Errors
    /// Any error of [`CanonicalPath::parse`] or [`StoragePath::from_canonical`].
    pub fn parse(target: &str) -> Result<Self, Error> {
        Self::from_canonical(CanonicalPath::parse(target)?)
    }

    /// Builds the path of an object (or of a container when `object` is `None`).
    ///
    /// # Errors
    /// As [`StoragePath::from_canonical`], or a `Path*` error if a name holds a control byte
    /// or is `.`/`..`.
    pub fn build(
        account: &str,
        container: Option<&str>,
        object: Option<&str>,
    ) -> Result<Self, Error> {
        let mut s = String::with_capacity(
            8 + account.len() + container.map_or(0, str::len) + object.map_or(0, str::len),
        );
        s.push_str("/v1/");
        s.push_str(RESELLER_PREFIX);
        s.push_str(account);
        if let Some(c) = container {
            if c.contains('/') {
                return Err(Error::NotStoragePath {
                    reason: "container name contains '/'",
                });
            }
            s.push('/');
            s.push_str(c);
            if let Some(o) = object {
                s.push('/');
                s.push_str(o);
            }
        }
        Self::from_canonical(CanonicalPath::from_decoded(&s)?)
    }

    /// The whole decoded path, `/v1/AUTH_a/c/o` (what Swift tempurls sign).
    pub fn as_str(&self) -> &str {
        self.path.as_str()
    }

    /// The canonical path.
    pub fn canonical(&self) -> &CanonicalPath {
        &self.path
    }

    /// The account name, without `AUTH_`.
    pub fn account(&self) -> &str {
        &self.path.0[self.account.0..self.account.1]
    }

    /// The container name, if the path names one.
    pub fn container(&self) -> Option<&str> {
        self.container.map(|(a, b)| &self.path.0[a..b])
    }

    /// The object name, if the path names one.
    pub fn object(&self) -> Option<&str> {
        self.object.map(|(a, b)| &self.path.0[a..b])
    }

    /// The account-relative path `/<container>[/<object>]` that Outpost token scopes match,
    /// or `/` for the account itself.
    pub fn account_relative(&self) -> &str {
        match self.container {
            Some((a, _)) => &self.path.0[a - 1..],
            None => "/",
        }
    }
}

impl fmt::Debug for StoragePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoragePath")
            .field("account", &self.account())
            .field("container", &self.container())
            .field("object", &self.object())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<String, Error> {
        CanonicalPath::parse(s).map(|c| c.as_str().to_owned())
    }

    #[test]
    fn decodes_and_keeps_structure() {
        assert_eq!(p("/a/b%20c/d").unwrap(), "/a/b c/d");
        assert_eq!(p("/v1/AUTH_t/c/%D0%BF%D1%80").unwrap(), "/v1/AUTH_t/c/пр");
        assert_eq!(p("/a/b/?x=1").unwrap(), "/a/b/");
        assert_eq!(p("/a//b").unwrap(), "/a//b");
        assert_eq!(p("/").unwrap(), "/");
        assert_eq!(p("/a+b").unwrap(), "/a+b");
        assert_eq!(p("/100%25").unwrap(), "/100%");
    }

    #[test]
    fn rejects_each_ambiguity_with_its_own_error() {
        assert_eq!(p("a/b"), Err(Error::PathNotAbsolute));
        assert_eq!(p(""), Err(Error::PathNotAbsolute));
        assert_eq!(p("/a/../b"), Err(Error::PathDotSegment));
        assert_eq!(p("/a/./b"), Err(Error::PathDotSegment));
        assert_eq!(p("/a/.."), Err(Error::PathDotSegment));
        assert_eq!(p("/a/%2e%2E/b"), Err(Error::PathDotSegment));
        assert_eq!(p("/a/%2E"), Err(Error::PathDotSegment));
        assert_eq!(p("/a%2Fb"), Err(Error::PathEncodedSlash));
        assert_eq!(p("/a%2fb"), Err(Error::PathEncodedSlash));
        assert_eq!(p("/a%zz"), Err(Error::PathBadEscape { at: 2 }));
        assert_eq!(p("/a%4"), Err(Error::PathBadEscape { at: 2 }));
        assert_eq!(p("/a%00b"), Err(Error::PathControlByte { byte: 0 }));
        assert_eq!(p("/a%0Ab"), Err(Error::PathControlByte { byte: 0x0a }));
        assert_eq!(p("/a\u{7f}"), Err(Error::PathControlByte { byte: 0x7f }));
        assert_eq!(p("/a%C0%AF"), Err(Error::PathInvalidUtf8), "overlong '/'");
        assert_eq!(
            p("/a%E0%80%AE"),
            Err(Error::PathInvalidUtf8),
            "overlong '.'"
        );
        assert_eq!(p("/a%ED%A0%80"), Err(Error::PathInvalidUtf8), "surrogate");
        assert_eq!(p("/a%FF"), Err(Error::PathInvalidUtf8));
        let long = format!("/{}", "a".repeat(MAX_PATH_BYTES));
        assert!(matches!(p(&long), Err(Error::PathTooLong { .. })));
    }

    /// Swift decodes once and keeps what results: names with literal escapes are names.
    #[test]
    fn decodes_exactly_once() {
        assert_eq!(p("/c/a%252Fb").unwrap(), "/c/a%2Fb");
        assert_eq!(p("/c/x%2520y").unwrap(), "/c/x%20y");
        assert_eq!(p("/c/a%25%32%46b").unwrap(), "/c/a%2Fb");
        assert_eq!(p("/%25a%41").unwrap(), "/%aA");
        // A literal `%2F` is one segment, never a separator.
        let s = StoragePath::parse("/v1/AUTH_t/c/a%252Fb").unwrap();
        assert_eq!(s.object(), Some("a%2Fb"));
        assert_eq!(s.canonical().segments().count(), 4);
        // Re-encoding escapes the `%`, so the next decoder sees the same name.
        let c = CanonicalPath::parse("/c/a%252Fb").unwrap();
        assert_eq!(c.to_encoded(), "/c/a%252Fb");
        assert_eq!(CanonicalPath::parse(&c.to_encoded()).unwrap(), c);
        assert_eq!(CanonicalPath::from_decoded("/c/a%2Fb").unwrap(), c);
        // Decoded once, `%252e%252e` is the literal name `%2e%2e`, not a dot segment.
        assert_eq!(p("/a/%252e%252e/b").unwrap(), "/a/%2e%2e/b");
    }

    #[test]
    fn dots_inside_names_are_fine() {
        assert_eq!(p("/a/.hidden/..x/x..").unwrap(), "/a/.hidden/..x/x..");
    }

    #[test]
    fn encoded_round_trip() {
        let c = CanonicalPath::parse("/v1/AUTH_t/c/movie%20one%3F.mp4").unwrap();
        assert_eq!(c.as_str(), "/v1/AUTH_t/c/movie one?.mp4");
        assert_eq!(c.to_encoded(), "/v1/AUTH_t/c/movie%20one%3F.mp4");
        assert_eq!(CanonicalPath::parse(&c.to_encoded()).unwrap(), c);
    }

    #[test]
    fn storage_paths_split() {
        let s = StoragePath::parse("/v1/AUTH_test/photos/party/banya.jpg").unwrap();
        assert_eq!(s.account(), "test");
        assert_eq!(s.container(), Some("photos"));
        assert_eq!(s.object(), Some("party/banya.jpg"));
        assert_eq!(s.account_relative(), "/photos/party/banya.jpg");

        let s = StoragePath::parse("/v1/AUTH_test/photos/").unwrap();
        assert_eq!((s.container(), s.object()), (Some("photos"), None));
        assert_eq!(s.account_relative(), "/photos/");
        let s = StoragePath::parse("/v1/AUTH_test").unwrap();
        assert_eq!((s.container(), s.account_relative()), (None, "/"));
        let s = StoragePath::parse("/v1/AUTH_test/").unwrap();
        assert_eq!(s.container(), None);

        for bad in [
            "/v2/AUTH_t/c",
            "/v1/t/c",
            "/v1/AUTH_",
            "/v1/AUTH_t//o",
            "/x",
        ] {
            assert!(
                matches!(StoragePath::parse(bad), Err(Error::NotStoragePath { .. })),
                "{bad}"
            );
        }
        let b = StoragePath::build("t", Some("c"), Some("a/b")).unwrap();
        assert_eq!(b.as_str(), "/v1/AUTH_t/c/a/b");
        assert!(StoragePath::build("t", Some("c/d"), None).is_err());
    }
}
