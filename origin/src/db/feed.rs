//! Feed-only records: explicit purges and session/user revocations. Each is a change in the
//! feed (so every subscribed edge applies it in order); revocations are also kept in a table so
//! an edge that starts later learns them from the snapshot.

use std::borrow::Cow;

use outpost_proto::feed::{Change, ChangeKind};
use rusqlite::params;

use super::{record_change, to_i64, to_u64, Db};
use crate::hlc::Timestamp;
use crate::Result;

/// Schema of the tables this module owns (created with the rest at open).
pub(super) const FEED_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS revocations (
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    id TEXT NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (account, kind, id)
) WITHOUT ROWID;
"#;

pub use outpost_proto::feed::{PurgeTarget, Revocation, RevocationKind};

/// A change as the `changes` table stores it. The table keeps its schema-1 columns
/// `(kind, account, container, object, etag)`; this mapping to and from the typed
/// [`ChangeKind`] is the only place that knows how each kind uses them (a purge prefix lives
/// in `object`; a revoked id in `object` and the revocation time in `etag`; a certificate's
/// domain in `object`).
pub(super) struct Columns<'a> {
    pub(super) kind: &'static str,
    pub(super) container: Option<&'a str>,
    pub(super) object: Option<&'a str>,
    pub(super) etag: Option<Cow<'a, str>>,
}

impl<'a> Columns<'a> {
    pub(super) fn of(kind: &'a ChangeKind) -> Columns<'a> {
        let (container, object, etag) = match kind {
            ChangeKind::ObjectPut {
                container,
                object,
                etag,
            }
            | ChangeKind::ObjectPost {
                container,
                object,
                etag,
            } => (
                Some(container),
                Some(object),
                Some(Cow::Borrowed(etag.as_str())),
            ),
            ChangeKind::CertPut { domain } => (None, Some(domain), None),
            ChangeKind::ObjectDelete { container, object }
            | ChangeKind::PurgeObject { container, object }
            | ChangeKind::PurgePrefix {
                container,
                prefix: object,
            } => (Some(container), Some(object), None),
            ChangeKind::ContainerPut { container }
            | ChangeKind::ContainerPost { container }
            | ChangeKind::ContainerDelete { container }
            | ChangeKind::PurgeContainer { container } => (Some(container), None, None),
            ChangeKind::AccountPut
            | ChangeKind::AccountPost
            | ChangeKind::AccountDelete
            | ChangeKind::PurgeAccount => (None, None, None),
            ChangeKind::RevokeSession { id, at } | ChangeKind::RevokeUser { id, at } => {
                (None, Some(id), Some(Cow::Owned(at.to_string())))
            }
        };
        Columns {
            kind: kind.as_str(),
            container: container.map(String::as_str),
            object: object.map(String::as_str),
            etag,
        }
    }
}

/// Reads a `changes` row (`seq, ts, kind, account, container, object, etag`); `None` for a
/// kind this build does not know or a row missing a field its kind needs.
pub(super) fn change_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Option<Change>> {
    let tag: String = r.get(2)?;
    let container: Option<String> = r.get(4)?;
    let object: Option<String> = r.get(5)?;
    let etag: Option<String> = r.get(6)?;
    let c = || container.clone();
    let kind = match (tag.as_str(), container.clone(), object, etag) {
        ("object-put", Some(container), Some(object), Some(etag)) => Some(ChangeKind::ObjectPut {
            container,
            object,
            etag,
        }),
        ("object-post", Some(container), Some(object), Some(etag)) => {
            Some(ChangeKind::ObjectPost {
                container,
                object,
                etag,
            })
        }
        ("object-delete", Some(container), Some(object), _) => {
            Some(ChangeKind::ObjectDelete { container, object })
        }
        ("purge-object", Some(container), Some(object), _) => {
            Some(ChangeKind::PurgeObject { container, object })
        }
        ("purge-prefix", Some(container), Some(prefix), _) => {
            Some(ChangeKind::PurgePrefix { container, prefix })
        }
        ("container-put", ..) => c().map(|container| ChangeKind::ContainerPut { container }),
        ("container-post", ..) => c().map(|container| ChangeKind::ContainerPost { container }),
        ("container-delete", ..) => c().map(|container| ChangeKind::ContainerDelete { container }),
        ("purge-container", ..) => c().map(|container| ChangeKind::PurgeContainer { container }),
        ("account-put", ..) => Some(ChangeKind::AccountPut),
        ("account-post", ..) => Some(ChangeKind::AccountPost),
        ("account-delete", ..) => Some(ChangeKind::AccountDelete),
        ("purge-account", ..) => Some(ChangeKind::PurgeAccount),
        ("revoke-session", _, Some(id), at) => Some(ChangeKind::RevokeSession {
            id,
            at: parse_at(at.as_deref()),
        }),
        ("revoke-user", _, Some(id), at) => Some(ChangeKind::RevokeUser {
            id,
            at: parse_at(at.as_deref()),
        }),
        ("cert-put", _, Some(domain), _) => Some(ChangeKind::CertPut { domain }),
        _ => None,
    };
    let Some(kind) = kind else {
        tracing::warn!(kind = %tag, "skipping a change row this build cannot read");
        return Ok(None);
    };
    Ok(Some(Change {
        seq: to_u64(r.get(0)?),
        ts: Timestamp(to_u64(r.get(1)?)).to_string(),
        account: r.get(3)?,
        kind,
    }))
}

/// A revocation time as stored; unreadable means "everything up to now", the safe side.
fn parse_at(v: Option<&str>) -> u64 {
    v.and_then(|t| t.parse().ok()).unwrap_or(u64::MAX)
}

impl Db {
    /// Appends an explicit purge of `target` in `account` to the feed; returns its sequence
    /// number.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn append_purge(&self, ts: Timestamp, account: &str, target: PurgeTarget) -> Result<u64> {
        let kind = ChangeKind::from(target);
        self.write(|tx| {
            let seq = record_change(tx, ts, account, &kind)?;
            Ok((seq, Some(seq)))
        })
    }

    /// Revokes a session ([`RevocationKind::Session`]) or every session of a user started up
    /// to `at` ([`RevocationKind::User`]); returns the feed sequence number.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn revoke(
        &self,
        ts: Timestamp,
        account: &str,
        kind: RevocationKind,
        id: &str,
        at: u64,
    ) -> Result<u64> {
        let change = ChangeKind::from(Revocation {
            kind,
            id: id.to_owned(),
            at,
        });
        self.write(|tx| {
            tx.prepare_cached("INSERT OR REPLACE INTO revocations (account, kind, id, at) VALUES (?1, ?2, ?3, ?4)")?.execute(params![account, kind.as_str(), id, to_i64(at)],
            )?;
            let seq = record_change(tx, ts, account, &change)?;
            Ok((seq, Some(seq)))
        })
    }

    /// Revocations of an account.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn revocations(&self, account: &str) -> Result<Vec<Revocation>> {
        self.read(|c| {
            let mut st =
                c.prepare_cached("SELECT kind, id, at FROM revocations WHERE account = ?1")?;
            let rows = st.query_map([account], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            let rows = rows.collect::<rusqlite::Result<Vec<_>>>()?;
            // A kind this build does not know is left out (never written by it).
            Ok(rows
                .into_iter()
                .filter_map(|(kind, id, at)| {
                    Some(Revocation {
                        kind: RevocationKind::parse(&kind)?,
                        id,
                        at: to_u64(at),
                    })
                })
                .collect())
        })
    }
}
