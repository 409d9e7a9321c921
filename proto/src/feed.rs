//! The change feed (`GET /internal/changes`): every write, purge and revocation at the
//! origin, in order, for edges to apply.
//!
//! A [`Change`] is one account's change; its [`ChangeKind`] says what happened, with exactly
//! the fields that kind has (no field means one thing for one kind and another for the next).
//! On the wire the kind is a `kind` tag beside the change's other fields:
//!
//! ```json
//! {"seq":7,"ts":"1700000000.00000","account":"demo","kind":"object-put",
//!  "container":"photos","object":"a.jpg","etag":"5d41402abc4b2a76b9719d911017c592"}
//! ```

use serde::{Deserialize, Serialize};

use crate::version::{Format, Wire};

/// Format version of [`FeedPage`].
pub const FEED_FORMAT: u32 = 1;

/// One page of the feed, as `GET /internal/changes` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedPage {
    /// [`FEED_FORMAT`].
    pub format: Format<FEED_FORMAT>,
    /// Oldest retained sequence number (0: the feed is empty).
    pub first: u64,
    /// Newest sequence number.
    pub last: u64,
    /// True when changes after the subscriber's position were already trimmed: it must
    /// resync from a [`crate::snapshot::Snapshot`].
    pub truncated: bool,
    /// Changes after the asked position, in order.
    pub changes: Vec<Change>,
}

impl Wire for FeedPage {
    const WHAT: &'static str = "feed page";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[FEED_FORMAT];
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Position in the feed (strictly increasing).
    pub seq: u64,
    /// Commit timestamp, Swift's `X-Timestamp` text form.
    pub ts: String,
    /// The account the change is in (every change is in exactly one).
    pub account: String,
    /// What happened.
    #[serde(flatten)]
    pub kind: ChangeKind,
}

/// What a [`Change`] did. Serialized as the `kind` tag (`object-put`, `purge-prefix`,
/// `revoke-user`, ...) and the variant's fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ChangeKind {
    /// An object version was written (PUT, COPY, a replicated version).
    ObjectPut {
        /// Container.
        container: String,
        /// Object.
        object: String,
        /// ETag of the new version.
        etag: String,
    },
    /// An object's metadata was replaced (POST).
    ObjectPost {
        /// Container.
        container: String,
        /// Object.
        object: String,
        /// ETag of the version (unchanged data).
        etag: String,
    },
    /// An object was deleted (a tombstone).
    ObjectDelete {
        /// Container.
        container: String,
        /// Object.
        object: String,
    },
    /// A container was created.
    ContainerPut {
        /// Container.
        container: String,
    },
    /// A container's metadata changed (ACLs, domains, CDN settings).
    ContainerPost {
        /// Container.
        container: String,
    },
    /// A container was deleted.
    ContainerDelete {
        /// Container.
        container: String,
    },
    /// An account was created.
    AccountPut,
    /// An account's metadata or token keys changed.
    AccountPost,
    /// An account was deleted.
    AccountDelete,
    /// Explicit purge of one object (and everything derived from it).
    PurgeObject {
        /// Container.
        container: String,
        /// Object.
        object: String,
    },
    /// Explicit purge of every object whose name starts with `prefix`.
    PurgePrefix {
        /// Container.
        container: String,
        /// Name prefix.
        prefix: String,
    },
    /// Explicit purge of a whole container.
    PurgeContainer {
        /// Container.
        container: String,
    },
    /// Explicit purge of a whole account.
    PurgeAccount,
    /// One session was revoked.
    RevokeSession {
        /// The session id.
        id: String,
        /// When (epoch seconds).
        at: u64,
    },
    /// Every session a user started up to `at` was revoked.
    RevokeUser {
        /// The user id.
        id: String,
        /// Sessions started up to then are dead (epoch seconds).
        at: u64,
    },
    /// A domain's certificate was stored (issued or renewed): every edge fetches it from
    /// `/internal/certs/<domain>` ([`crate::certs::CertRecord`]). The change names the domain
    /// only, never the key; its `account` is empty (certificates belong to no account).
    CertPut {
        /// The domain.
        domain: String,
    },
}

impl ChangeKind {
    /// The wire tag (`object-put`, ...), for logs and metrics.
    pub fn as_str(&self) -> &'static str {
        match self {
            ChangeKind::ObjectPut { .. } => "object-put",
            ChangeKind::ObjectPost { .. } => "object-post",
            ChangeKind::ObjectDelete { .. } => "object-delete",
            ChangeKind::ContainerPut { .. } => "container-put",
            ChangeKind::ContainerPost { .. } => "container-post",
            ChangeKind::ContainerDelete { .. } => "container-delete",
            ChangeKind::AccountPut => "account-put",
            ChangeKind::AccountPost => "account-post",
            ChangeKind::AccountDelete => "account-delete",
            ChangeKind::PurgeObject { .. } => "purge-object",
            ChangeKind::PurgePrefix { .. } => "purge-prefix",
            ChangeKind::PurgeContainer { .. } => "purge-container",
            ChangeKind::PurgeAccount => "purge-account",
            ChangeKind::RevokeSession { .. } => "revoke-session",
            ChangeKind::RevokeUser { .. } => "revoke-user",
            ChangeKind::CertPut { .. } => "cert-put",
        }
    }

    /// The container the change is in or of, if any.
    pub fn container(&self) -> Option<&str> {
        match self {
            ChangeKind::ObjectPut { container, .. }
            | ChangeKind::ObjectPost { container, .. }
            | ChangeKind::ObjectDelete { container, .. }
            | ChangeKind::ContainerPut { container }
            | ChangeKind::ContainerPost { container }
            | ChangeKind::ContainerDelete { container }
            | ChangeKind::PurgeObject { container, .. }
            | ChangeKind::PurgePrefix { container, .. }
            | ChangeKind::PurgeContainer { container } => Some(container),
            ChangeKind::AccountPut
            | ChangeKind::AccountPost
            | ChangeKind::AccountDelete
            | ChangeKind::PurgeAccount
            | ChangeKind::RevokeSession { .. }
            | ChangeKind::RevokeUser { .. }
            | ChangeKind::CertPut { .. } => None,
        }
    }

    /// The `(container, object)` an object write (put, post, delete) changed; `None` for
    /// every other kind (explicit purges write nothing).
    pub fn written_object(&self) -> Option<(&str, &str)> {
        match self {
            ChangeKind::ObjectPut {
                container, object, ..
            }
            | ChangeKind::ObjectPost {
                container, object, ..
            }
            | ChangeKind::ObjectDelete { container, object } => Some((container, object)),
            _ => None,
        }
    }

    /// True when the account's or a container's metadata may have changed (domains, ACLs,
    /// keys, cache defaults): an edge reloads the account's snapshot.
    pub fn changes_metadata(&self) -> bool {
        matches!(
            self,
            ChangeKind::ContainerPut { .. }
                | ChangeKind::ContainerPost { .. }
                | ChangeKind::ContainerDelete { .. }
                | ChangeKind::AccountPut
                | ChangeKind::AccountPost
                | ChangeKind::AccountDelete
        )
    }

    /// The revocation this change carries, if it is one.
    pub fn revocation(&self) -> Option<Revocation> {
        match self {
            ChangeKind::RevokeSession { id, at } => Some(Revocation {
                kind: RevocationKind::Session,
                id: id.clone(),
                at: *at,
            }),
            ChangeKind::RevokeUser { id, at } => Some(Revocation {
                kind: RevocationKind::User,
                id: id.clone(),
                at: *at,
            }),
            _ => None,
        }
    }
}

/// What an explicit purge targets, within one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeTarget {
    /// One object (and everything derived from it).
    Object {
        /// Container.
        container: String,
        /// Object.
        object: String,
    },
    /// Every object whose name starts with `prefix` in a container.
    Prefix {
        /// Container.
        container: String,
        /// Name prefix.
        prefix: String,
    },
    /// A whole container.
    Container {
        /// Container.
        container: String,
    },
    /// The whole account.
    Account,
}

impl From<PurgeTarget> for ChangeKind {
    fn from(t: PurgeTarget) -> ChangeKind {
        match t {
            PurgeTarget::Object { container, object } => {
                ChangeKind::PurgeObject { container, object }
            }
            PurgeTarget::Prefix { container, prefix } => {
                ChangeKind::PurgePrefix { container, prefix }
            }
            PurgeTarget::Container { container } => ChangeKind::PurgeContainer { container },
            PurgeTarget::Account => ChangeKind::PurgeAccount,
        }
    }
}

/// Which sessions a revocation kills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RevocationKind {
    /// One session, by session id.
    Session,
    /// Every session a user started up to the revocation time, by user id.
    User,
}

impl RevocationKind {
    /// The wire name (`session`, `user`).
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationKind::Session => "session",
            RevocationKind::User => "user",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<RevocationKind> {
        match s {
            "session" => Some(RevocationKind::Session),
            "user" => Some(RevocationKind::User),
            _ => None,
        }
    }
}

/// A revocation, as a [`crate::snapshot::Snapshot`] lists it (and as the feed's
/// `revoke-*` changes carry it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Revocation {
    /// Session or user.
    pub kind: RevocationKind,
    /// Session id or user id.
    pub id: String,
    /// When it was revoked (epoch seconds): sessions started up to then are dead.
    pub at: u64,
}

impl From<Revocation> for ChangeKind {
    fn from(r: Revocation) -> ChangeKind {
        match r.kind {
            RevocationKind::Session => ChangeKind::RevokeSession { id: r.id, at: r.at },
            RevocationKind::User => ChangeKind::RevokeUser { id: r.id, at: r.at },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::from_json;

    #[test]
    fn kind_tag_matches_serde() {
        let kinds = [
            ChangeKind::AccountPut,
            ChangeKind::PurgeAccount,
            ChangeKind::RevokeUser {
                id: "u".into(),
                at: 5,
            },
            ChangeKind::PurgePrefix {
                container: "c".into(),
                prefix: "p/".into(),
            },
        ];
        for k in kinds {
            let v = serde_json::to_value(&k).unwrap();
            assert_eq!(v["kind"], k.as_str());
        }
    }

    #[test]
    fn unknown_kind_is_refused() {
        let page = br#"{"format":1,"first":1,"last":1,"truncated":false,
            "changes":[{"seq":1,"ts":"1.00000","account":"a","kind":"object-teleport"}]}"#;
        assert!(matches!(
            from_json::<FeedPage>(page),
            Err(crate::Error::Json { .. })
        ));
    }

    #[test]
    fn newer_format_is_refused_by_number() {
        let page = br#"{"format":2,"first":0,"last":0,"truncated":false,"changes":[]}"#;
        let e = from_json::<FeedPage>(page).unwrap_err();
        assert!(
            matches!(e, crate::Error::UnknownFormat { found: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("unknown format version 2"), "{e}");
    }

    #[test]
    fn revocation_round_trips_through_a_change() {
        let r = Revocation {
            kind: RevocationKind::User,
            id: "alice".into(),
            at: 1_700_000_000,
        };
        assert_eq!(ChangeKind::from(r.clone()).revocation(), Some(r));
    }
}
