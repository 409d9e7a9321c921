//! The CDN snapshot (`GET /internal/snapshot[?account=A]`): what an edge needs of every
//! account (metadata with domains, ACLs, tempurl keys and cache defaults; token keys;
//! containers; revocations). Replaying the feed from [`Snapshot::seq`] keeps it current.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::feed::Revocation;
use crate::version::{Format, Wire};

/// Format version of [`Snapshot`].
pub const SNAPSHOT_FORMAT: u32 = 1;

/// Stored metadata: lower-case header name → value.
pub type Meta = BTreeMap<String, String>;

/// The snapshot an edge starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    /// [`SNAPSHOT_FORMAT`].
    pub format: Format<SNAPSHOT_FORMAT>,
    /// Feed position the snapshot is at least as new as.
    pub seq: u64,
    /// Accounts (one, or none, when a single account was asked for).
    pub accounts: Vec<AccountSnapshot>,
}

impl Wire for Snapshot {
    const WHAT: &'static str = "snapshot";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[SNAPSHOT_FORMAT];
}

/// One account of a [`Snapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountSnapshot {
    /// Name (without `AUTH_`).
    pub name: String,
    /// Account metadata (see [`crate::meta`]).
    pub meta: Meta,
    /// Outpost token keys (secret: only ever sent with the internal secret).
    pub token_keys: Vec<TokenKey>,
    /// Containers.
    pub containers: Vec<ContainerSnapshot>,
    /// Revoked sessions and users.
    pub revocations: Vec<Revocation>,
}

/// One container of an [`AccountSnapshot`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContainerSnapshot {
    /// Name.
    pub name: String,
    /// All container metadata (ACLs, `outpost-*` CDN settings, tempurl keys).
    pub meta: Meta,
}

/// A token signing key as the snapshot carries it (the same fields as
/// `outpost_auth::TokenKeySpec`, which this crate does not depend on).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenKey {
    /// Key id.
    pub id: String,
    /// The secret.
    pub secret: String,
    /// Tokens verify from this time on (epoch seconds), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<u64>,
    /// Tokens stop verifying after this time (epoch seconds), if set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<u64>,
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("TokenKey")
            .field("id", &self.id)
            .field("secret", &format_args!("<{} bytes>", self.secret.len()))
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_secret() {
        let k = TokenKey {
            id: "k1".into(),
            secret: "0123456789abcdef-secret".into(),
            not_before: None,
            not_after: None,
        };
        let d = format!("{k:?}");
        assert!(!d.contains("secret\""), "{d}");
        assert!(!d.contains("0123456789abcdef"), "{d}");
    }
}
