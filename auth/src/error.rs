//! The crate's one error type, and the stable denial reasons it maps to.

use std::fmt;
use std::net::IpAddr;

use crate::Mechanism;

/// Everything that can go wrong while parsing a path or verifying a credential.
///
/// Path errors are the client's fault and should become `400 Bad Request`; every other variant
/// is a denial and becomes `403 Forbidden` with the [`DenyReason`] from [`Error::deny_reason`]
/// in a machine-readable header. No variant ever carries a signature or a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The path does not start with `/`.
    #[error("path must start with '/'")]
    PathNotAbsolute,
    /// The path is longer than [`crate::path::MAX_PATH_BYTES`].
    #[error("path is {len} bytes, over the limit of {max}")]
    PathTooLong {
        /// Length of the raw path in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A `.` or `..` segment (also when percent-encoded).
    #[error("path contains a '.' or '..' segment")]
    PathDotSegment,
    /// `%2F` inside a segment: it would change the segment structure after decoding.
    #[error("path contains an encoded slash (%2F) inside a segment")]
    PathEncodedSlash,
    /// `%` not followed by two hex digits.
    #[error("path contains a malformed percent escape at byte {at}")]
    PathBadEscape {
        /// Byte offset of the `%` in the raw path.
        at: usize,
    },
    /// Invalid UTF-8 after decoding, including overlong encodings and surrogates.
    #[error("path is not valid UTF-8 after percent-decoding")]
    PathInvalidUtf8,
    /// NUL, another C0 control byte, or DEL, raw or encoded.
    #[error("path contains control byte 0x{byte:02x}")]
    PathControlByte {
        /// The offending byte.
        byte: u8,
    },
    /// The path is not `/v1/AUTH_<account>[/<container>[/<object>]]`.
    #[error("not a storage path: {reason}")]
    NotStoragePath {
        /// Which part is wrong.
        reason: &'static str,
    },
    /// A path pattern (scope glob) that cannot be used.
    #[error("invalid path pattern: {reason}")]
    BadPattern {
        /// Which rule it breaks.
        reason: &'static str,
    },

    /// A key that cannot be used (bad id, short secret, duplicate id).
    #[error("invalid key: {reason}")]
    BadKey {
        /// What is wrong.
        reason: &'static str,
    },

    /// No credential of any kind was presented for private content.
    #[error("no credential presented")]
    NoCredential,
    /// The credential could not be parsed.
    #[error("malformed {mechanism} credential: {what}")]
    Malformed {
        /// Where the credential came from.
        mechanism: Mechanism,
        /// What is wrong with it.
        what: &'static str,
    },
    /// The token names a key id that is unknown (or outside its validity window).
    #[error("unknown or retired key id {key_id:?}")]
    UnknownKey {
        /// The key id from the token.
        key_id: String,
    },
    /// The signature does not match any candidate key.
    #[error("{mechanism} signature does not match")]
    BadSignature {
        /// Where the credential came from.
        mechanism: Mechanism,
    },
    /// The tempurl signature uses a digest that is not enabled (sha1 by default).
    #[error("digest {digest} is not allowed")]
    DigestNotAllowed {
        /// The digest's name.
        digest: &'static str,
    },
    /// The token is of another kind than this use needs (e.g. a grant used as a URL token).
    #[error("token of kind {found} cannot be used here (need {expected})")]
    WrongKind {
        /// What this use needs.
        expected: crate::TokenKind,
        /// What the token is.
        found: crate::TokenKind,
    },
    /// A login `next` target that would leave the site.
    #[error("redirect target must be a same-site path")]
    BadRedirect,
    /// A single-use grant was presented a second time.
    #[error("grant was already used")]
    GrantReplayed,
    /// The credential expired (beyond the clock leeway).
    #[error("expired at {expired_at} (now {now})")]
    Expired {
        /// Expiry, seconds since the epoch.
        expired_at: u64,
        /// The time of the check.
        now: u64,
    },
    /// The credential is not valid yet (beyond the clock leeway).
    #[error("not valid before {not_before} (now {now})")]
    NotYetValid {
        /// Start of validity, seconds since the epoch.
        not_before: u64,
        /// The time of the check.
        now: u64,
    },
    /// The credential is valid but does not cover this account, path or method.
    #[error("credential does not cover this {what}")]
    WrongScope {
        /// `account`, `path` or `method`.
        what: &'static str,
    },
    /// The client address is outside the credential's address ranges.
    #[error("client address {ip} is outside the allowed ranges")]
    WrongIp {
        /// The client's address.
        ip: IpAddr,
    },
    /// The session or its user was revoked.
    #[error("session or user revoked")]
    Revoked,

    /// A container ACL item with a referrer in `X-Container-Write` (Swift's sentence).
    #[error("Referrers not allowed in write ACL: {}", crate::acl::py_repr(item))]
    AclReferrerInWriteAcl {
        /// The item as written.
        item: String,
    },
    /// `.r:` or `.r:-` without a host or domain.
    #[error(
        "No host/domain value after referrer designation in ACL: {}",
        crate::acl::py_repr(item)
    )]
    AclNoReferrerHost {
        /// The item as written.
        item: String,
    },
    /// An item `.<designator>:...` other than a referrer.
    #[error(
        "Unknown designator {} in ACL: {}",
        crate::acl::py_repr(designator),
        crate::acl::py_repr(item)
    )]
    AclUnknownDesignator {
        /// The designator (`.foo`).
        designator: String,
        /// The item as written.
        item: String,
    },
    /// `X-Account-Access-Control` is not a JSON object.
    #[error("Syntax error in input ({})", crate::acl::py_repr(input))]
    AccountAclSyntax {
        /// The header value.
        input: String,
    },
    /// `X-Account-Access-Control` has a key other than `admin`, `read-write`, `read-only`.
    #[error("Key {} not recognized", crate::acl::json_ascii(key))]
    AccountAclUnknownKey {
        /// The key.
        key: String,
    },
    /// An account ACL level whose value is not a list.
    #[error("Value for key {} must be a list", crate::acl::json_ascii(key))]
    AccountAclNotList {
        /// The level.
        key: &'static str,
    },
    /// An account ACL list with an element that is not a string.
    #[error("Elements of {} list must be strings", crate::acl::json_ascii(key))]
    AccountAclNotString {
        /// The level.
        key: &'static str,
    },
}

/// The machine-readable reason of a denial, sent in the edge's `X-Outpost-Deny` header.
///
/// These strings are an external contract: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// Malformed, unsigned, wrongly signed, unknown key, or no credential at all.
    Invalid,
    /// Past its expiry.
    Expired,
    /// Before its not-before time.
    NotYetValid,
    /// Does not cover the account, path or method.
    WrongScope,
    /// Client address not allowed.
    WrongIp,
    /// Session or user revoked.
    Revoked,
}

impl DenyReason {
    /// The header value: `invalid`, `expired`, `not-yet-valid`, `wrong-scope`, `wrong-ip`,
    /// `revoked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DenyReason::Invalid => "invalid",
            DenyReason::Expired => "expired",
            DenyReason::NotYetValid => "not-yet-valid",
            DenyReason::WrongScope => "wrong-scope",
            DenyReason::WrongIp => "wrong-ip",
            DenyReason::Revoked => "revoked",
        }
    }
}

impl fmt::Display for DenyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Error {
    /// The denial reason this error maps to.
    pub fn deny_reason(&self) -> DenyReason {
        match self {
            Error::Expired { .. } => DenyReason::Expired,
            Error::NotYetValid { .. } => DenyReason::NotYetValid,
            Error::WrongScope { .. } => DenyReason::WrongScope,
            Error::WrongIp { .. } => DenyReason::WrongIp,
            Error::Revoked => DenyReason::Revoked,
            _ => DenyReason::Invalid,
        }
    }

    /// True for errors in the request's path itself (answer `400`, not `403`).
    pub fn is_bad_path(&self) -> bool {
        matches!(
            self,
            Error::PathNotAbsolute
                | Error::PathTooLong { .. }
                | Error::PathDotSegment
                | Error::PathEncodedSlash
                | Error::PathBadEscape { .. }
                | Error::PathInvalidUtf8
                | Error::PathControlByte { .. }
                | Error::NotStoragePath { .. }
        )
    }
}
