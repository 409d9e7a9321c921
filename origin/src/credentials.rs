//! Service credentials: who a request carrying `X-Outpost-Internal` comes from, and the one
//! place that says what each of them may do.
//!
//! Three roles, each with its own secrets in `[credentials]`:
//! - [`Role::Edge`]: edges. Read objects and listings of any account (also straight from a
//!   storage node, `X-Outpost-Direct: data` on GET/HEAD), follow the change feed and the
//!   snapshot (which carries token keys), ship billing records and access logs, read and
//!   write the certificate store of custom domains (ACME; not objects). Never write,
//!   never choose a timestamp, never replicate.
//! - [`Role::Peer`]: the other origin nodes of this DC. Everything: direct storage writes with
//!   their `X-Timestamp`, replication endpoints, broadcasts, purges, and the key that signs
//!   cluster-wide auth tokens.
//! - [`Role::Admin`]: operators and their tools (`outpost cluster status`, `outpost billing
//!   report`, explicit purges, the certificate store). Full control of every account through
//!   the Swift API, but no
//!   direct storage and no timestamps.
//!
//! Peer DCs are not here: they authenticate with their realm key (`[[sync.peers]]`).
//!
//! Each role takes one or two secrets: during a rotation both the new and the old one are
//! valid (`deploy/README.md`). The legacy `internal_secret` key is one secret for every role.

use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::Error;

/// A service identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// An edge.
    Edge,
    /// Another origin node of this DC.
    Peer,
    /// An operator's tool.
    Admin,
}

/// Something a service request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// GET/HEAD objects, containers and accounts of any account.
    Read,
    /// PUT/POST/DELETE/COPY in any account, at a timestamp the node chooses.
    Write,
    /// Direct storage writes, explicit `X-Timestamp`s, replication and broadcast endpoints.
    Storage,
    /// The change feed and the snapshot.
    Feed,
    /// Shipping billing records and access logs.
    Usage,
    /// Explicit purges.
    Purge,
    /// Cluster and cross-DC status, on-demand replication and audit passes, billing reports.
    Operate,
    /// The certificate store of custom domains (`/internal/certs`, keys included), the
    /// ordering lease and HTTP-01 challenge answers (`/internal/acme-challenges`).
    Certs,
}

impl Role {
    /// The capability table.
    pub fn can(self, c: Capability) -> bool {
        use Capability::*;
        match self {
            Role::Peer => true,
            Role::Edge => matches!(c, Read | Feed | Usage | Certs),
            Role::Admin => matches!(c, Read | Write | Purge | Operate | Certs),
        }
    }

    /// The name in config keys and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Edge => "edge",
            Role::Peer => "peer",
            Role::Admin => "admin",
        }
    }
}

impl Capability {
    /// What a service request through the Swift API (`/v1/...`) needs: reads need
    /// [`Capability::Read`] (a direct read of a node's own copy too), writes
    /// [`Capability::Write`], and a direct write or a write carrying its own `X-Timestamp`
    /// [`Capability::Storage`].
    pub fn of_swift_request(read: bool, direct: bool, timestamped: bool) -> Capability {
        match (read, direct || timestamped) {
            (true, _) => Capability::Read,
            (false, true) => Capability::Storage,
            (false, false) => Capability::Write,
        }
    }

    /// Why a role without this capability is refused (403).
    pub fn denial(self) -> &'static str {
        match self {
            Capability::Read => "this credential may not read",
            Capability::Write => {
                "the edge credential is read-only: writes need a user token or the admin credential"
            }
            Capability::Storage => "direct storage writes and X-Timestamp need the peer credential",
            Capability::Feed => "the change feed and the snapshot need the edge or peer credential",
            Capability::Usage => "billing and log delivery need the edge or peer credential",
            Capability::Purge => "purges need the admin or peer credential",
            Capability::Operate => "cluster operations need the admin or peer credential",
            Capability::Certs => "the certificate store needs the edge, admin or peer credential",
        }
    }
}

/// The validated secrets of every role.
#[derive(Clone, Default)]
pub struct Credentials {
    edge: Vec<String>,
    peer: Vec<String>,
    admin: Vec<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret.
        f.debug_struct("Credentials")
            .field("edge", &self.edge.len())
            .field("peer", &self.peer.len())
            .field("admin", &self.admin.len())
            .finish()
    }
}

impl Credentials {
    /// Every role with the same secret (the legacy `internal_secret`).
    pub fn shared(secret: &str) -> Credentials {
        let s = vec![secret.to_owned()];
        Credentials {
            edge: s.clone(),
            peer: s.clone(),
            admin: s,
        }
    }

    /// Separate secrets per role (validated by the config).
    pub fn new(edge: Vec<String>, peer: Vec<String>, admin: Vec<String>) -> Credentials {
        Credentials { edge, peer, admin }
    }

    /// The role a presented secret belongs to; with one secret for several roles (legacy),
    /// the most capable. Every configured secret is compared in constant time.
    pub fn role_of(&self, presented: &[u8]) -> Option<Role> {
        let matches = |list: &[String]| {
            list.iter().fold(false, |any, s| {
                any | bool::from(s.as_bytes().ct_eq(presented))
            })
        };
        let (peer, admin, edge) = (
            matches(&self.peer),
            matches(&self.admin),
            matches(&self.edge),
        );
        if peer {
            Some(Role::Peer)
        } else if admin {
            Some(Role::Admin)
        } else if edge {
            Some(Role::Edge)
        } else {
            None
        }
    }

    /// The secret this node sends to its peers (the first `peer` secret), if it has one.
    pub fn peer_secret(&self) -> Option<&str> {
        self.peer.first().map(String::as_str)
    }

    /// Every valid peer secret: cluster auth tokens are signed with the first and verify with
    /// any (so a rotation does not log users out).
    pub fn peer_secrets(&self) -> &[String] {
        &self.peer
    }

    /// The secret an operator's tool run with this node's config sends: `admin`, else `peer`.
    pub fn operator_secret(&self) -> Option<&str> {
        self.admin
            .first()
            .or_else(|| self.peer.first())
            .map(String::as_str)
    }
}

/// One role's secrets as written: a string, or a list of one or two (during a rotation).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawSecrets {
    /// One secret.
    One(String),
    /// One or two secrets, all valid.
    Many(Vec<String>),
}

/// `[credentials]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCredentials {
    /// The edges' secret(s). Required.
    #[serde(default)]
    pub edge: Option<RawSecrets>,
    /// The secret(s) origin nodes of this DC use with each other. Required with `[cluster]`.
    #[serde(default)]
    pub peer: Option<RawSecrets>,
    /// The operators' secret(s) (`outpost cluster status`, billing reports, purges). Optional.
    #[serde(default)]
    pub admin: Option<RawSecrets>,
}

/// Shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

fn err(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

fn secrets(key: &str, raw: Option<RawSecrets>) -> Result<Vec<String>, Error> {
    let list = match raw {
        None => return Ok(Vec::new()),
        Some(RawSecrets::One(s)) => vec![s],
        Some(RawSecrets::Many(l)) => l,
    };
    if list.is_empty() || list.len() > 2 {
        return Err(err(
            key,
            "give one secret, or two while rotating (new first)",
        ));
    }
    for s in &list {
        if s.len() < MIN_SECRET_LEN {
            return Err(err(
                key,
                format!("each secret must be at least {MIN_SECRET_LEN} bytes"),
            ));
        }
        if http::HeaderValue::from_str(s).is_err() {
            return Err(err(
                key,
                "a secret must be printable ASCII (it travels in a header)",
            ));
        }
    }
    Ok(list)
}

impl RawCredentials {
    /// Validates `[credentials]` (or the legacy `internal_secret`, exactly one of them).
    ///
    /// # Errors
    /// [`Error::Config`] naming the key: a missing role, a short or repeated secret, more
    /// than two secrets for a role, both or neither of `[credentials]` and `internal_secret`.
    pub fn validate(
        raw: Option<RawCredentials>,
        legacy: Option<String>,
        clustered: bool,
    ) -> Result<Credentials, Error> {
        let raw =
            match (raw, legacy) {
                (Some(_), Some(_)) => return Err(err(
                    "internal_secret",
                    "set [credentials] (edge, peer, admin) or the legacy internal_secret, not both",
                )),
                (None, Some(s)) => {
                    if s.len() < MIN_SECRET_LEN {
                        return Err(err("internal_secret", "must be at least 16 bytes"));
                    }
                    return Ok(Credentials::shared(&s));
                }
                (None, None) => {
                    return Err(err(
                        "credentials",
                        "is required: [credentials] edge = \"...\" (and peer with [cluster])",
                    ))
                }
                (Some(r), None) => r,
            };
        let edge = secrets("credentials.edge", raw.edge)?;
        if edge.is_empty() {
            return Err(err("credentials.edge", "is required (the edges' secret)"));
        }
        let peer = secrets("credentials.peer", raw.peer)?;
        if clustered && peer.is_empty() {
            return Err(err(
                "credentials.peer",
                "is required with [cluster] (the nodes' secret for each other)",
            ));
        }
        let admin = secrets("credentials.admin", raw.admin)?;
        let roles = [("edge", &edge), ("peer", &peer), ("admin", &admin)];
        for (i, (a, la)) in roles.iter().enumerate() {
            for (b, lb) in &roles[i + 1..] {
                if la.iter().any(|s| lb.contains(s)) {
                    return Err(err(
                        &format!("credentials.{b}"),
                        format!("repeats a credentials.{a} secret: every role needs its own"),
                    ));
                }
            }
        }
        Ok(Credentials::new(edge, peer, admin))
    }

    /// True when the legacy single secret is in use (the server warns once).
    pub fn is_legacy(raw: &Option<RawCredentials>, legacy: &Option<String>) -> bool {
        raw.is_none() && legacy.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_by_secret_with_rotation() {
        let c = Credentials::new(
            vec!["edge-new-0123456789".into(), "edge-old-0123456789".into()],
            vec!["peer-0123456789abcdef".into()],
            vec!["admin-0123456789abcdef".into()],
        );
        assert_eq!(c.role_of(b"edge-new-0123456789"), Some(Role::Edge));
        assert_eq!(c.role_of(b"edge-old-0123456789"), Some(Role::Edge));
        assert_eq!(c.role_of(b"peer-0123456789abcdef"), Some(Role::Peer));
        assert_eq!(c.role_of(b"admin-0123456789abcdef"), Some(Role::Admin));
        assert_eq!(c.role_of(b"edge-new-012345678"), None);
        assert_eq!(c.role_of(b""), None);
        assert_eq!(c.operator_secret(), Some("admin-0123456789abcdef"));
    }

    #[test]
    fn an_edge_reads_and_ships_but_never_writes() {
        use Capability::*;
        for c in [Read, Feed, Usage, Certs] {
            assert!(Role::Edge.can(c), "{c:?}");
        }
        for c in [Write, Storage, Purge, Operate] {
            assert!(!Role::Edge.can(c), "{c:?}");
        }
        assert!(!Role::Admin.can(Storage));
        assert!(Role::Admin.can(Write));
        assert!(Role::Admin.can(Certs));
    }

    fn validate(text: &str, clustered: bool) -> Result<Credentials, Error> {
        #[derive(Deserialize)]
        struct Doc {
            credentials: Option<RawCredentials>,
            internal_secret: Option<String>,
        }
        let d: Doc = toml::from_str(text).unwrap();
        RawCredentials::validate(d.credentials, d.internal_secret, clustered)
    }

    #[test]
    fn config_errors_name_the_key() {
        let ok = "[credentials]\nedge = \"edge-0123456789abcdef\"\n";
        assert!(validate(ok, false).is_ok());
        let cases = [
            ("", false, "credentials"),
            (ok, true, "credentials.peer"),
            ("[credentials]\npeer = \"peer-0123456789abcdef\"\n", false, "credentials.edge"),
            ("[credentials]\nedge = \"short\"\n", false, "credentials.edge"),
            ("[credentials]\nedge = [\"a-0123456789abcdef\", \"b-0123456789abcdef\", \"c-0123456789abcdef\"]\n", false, "credentials.edge"),
            ("[credentials]\nedge = \"same-0123456789abcdef\"\nadmin = \"same-0123456789abcdef\"\n", false, "credentials.admin"),
            ("internal_secret = \"legacy-0123456789abcdef\"\n[credentials]\nedge = \"edge-0123456789abcdef\"\n", false, "internal_secret"),
            ("internal_secret = \"short\"\n", false, "internal_secret"),
        ];
        for (text, clustered, key) in cases {
            let e = validate(text, clustered).unwrap_err();
            assert!(
                matches!(&e, Error::Config { key: k, .. } if k == key),
                "{text:?}: {e}"
            );
        }
    }

    #[test]
    fn swift_requests_map_to_capabilities() {
        use Capability::*;
        assert_eq!(Capability::of_swift_request(true, true, false), Read);
        assert_eq!(Capability::of_swift_request(true, false, true), Read);
        assert_eq!(Capability::of_swift_request(false, false, false), Write);
        assert_eq!(Capability::of_swift_request(false, true, false), Storage);
        assert_eq!(Capability::of_swift_request(false, false, true), Storage);
    }

    #[test]
    fn the_legacy_shared_secret_is_every_role() {
        let c = Credentials::shared("one-secret-for-all-0123");
        assert_eq!(c.role_of(b"one-secret-for-all-0123"), Some(Role::Peer));
        assert_eq!(c.peer_secret(), Some("one-secret-for-all-0123"));
        assert!(!format!("{c:?}").contains("one-secret"));
    }
}
