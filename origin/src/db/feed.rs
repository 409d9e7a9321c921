//! Feed-only records: explicit purges and session/user revocations. Each is a change in the
//! feed (so every subscribed edge applies it in order); revocations are also kept in a table so
//! an edge that starts later learns them from the snapshot.

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

/// What an explicit purge targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurgeTarget {
    /// One object (and everything derived from it).
    Object {
        /// Account.
        account: String,
        /// Container.
        container: String,
        /// Object.
        object: String,
    },
    /// Every object whose name starts with `prefix` in a container.
    Prefix {
        /// Account.
        account: String,
        /// Container.
        container: String,
        /// Name prefix.
        prefix: String,
    },
    /// A whole container.
    Container {
        /// Account.
        account: String,
        /// Container.
        container: String,
    },
    /// A whole account.
    Account {
        /// Account.
        account: String,
    },
}

/// A revocation kept for the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Revocation {
    /// `session` or `user`.
    pub kind: String,
    /// Session id or user id.
    pub id: String,
    /// When it was revoked (epoch seconds): sessions started up to then are dead.
    pub at: u64,
}

impl Db {
    /// Appends an explicit purge to the feed; returns its sequence number.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn append_purge(&self, ts: Timestamp, target: &PurgeTarget) -> Result<u64> {
        self.write(|tx| {
            let seq = match target {
                PurgeTarget::Object {
                    account,
                    container,
                    object,
                } => record_change(
                    tx,
                    ts,
                    "purge-object",
                    account,
                    Some(container),
                    Some(object),
                    None,
                )?,
                PurgeTarget::Prefix {
                    account,
                    container,
                    prefix,
                } => record_change(
                    tx,
                    ts,
                    "purge-prefix",
                    account,
                    Some(container),
                    Some(prefix),
                    None,
                )?,
                PurgeTarget::Container { account, container } => record_change(
                    tx,
                    ts,
                    "purge-container",
                    account,
                    Some(container),
                    None,
                    None,
                )?,
                PurgeTarget::Account { account } => {
                    record_change(tx, ts, "purge-account", account, None, None, None)?
                }
            };
            Ok((seq, Some(seq)))
        })
    }

    /// Revokes a session (`kind = "session"`) or every session of a user started up to `at`
    /// (`kind = "user"`); returns the feed sequence number.
    ///
    /// # Errors
    /// [`crate::Error::Db`].
    pub fn revoke(
        &self,
        ts: Timestamp,
        account: &str,
        kind: &str,
        id: &str,
        at: u64,
    ) -> Result<u64> {
        self.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO revocations (account, kind, id, at) VALUES (?1, ?2, ?3, ?4)",
                params![account, kind, id, to_i64(at)],
            )?;
            let change_kind = if kind == "user" { "revoke-user" } else { "revoke-session" };
            // The revoked id travels in `object`, the time in `etag`.
            let seq = record_change(tx, ts, change_kind, account, None, Some(id), Some(&at.to_string()))?;
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
                Ok(Revocation {
                    kind: r.get(0)?,
                    id: r.get(1)?,
                    at: to_u64(r.get(2)?),
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
        })
    }
}
