//! Account and container rows: create, update, delete, with the rules that are not the
//! database's own (a container PUT creates its account; a POST merges token keys). Emptiness
//! checks on delete live in [`crate::db::Db`].

use std::sync::Arc;

use outpost_auth::TokenKeySpec;

use super::Store;
use crate::hlc::Timestamp;
use crate::{Error, Result};

/// Metadata updates: (stored name, new value or removal).
pub type Updates = Vec<(String, Option<String>)>;

impl Store {
    /// Creates or updates a container (creating its account if it has none). Returns true if
    /// the container was created.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn put_container(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
        updates: Updates,
    ) -> Result<bool> {
        let (a, c) = (account.to_owned(), container.to_owned());
        self.blocking(move |s| {
            if s.db.get_account(&a)?.is_none() {
                s.db.ensure_account(&a, ts)?;
            }
            s.db.put_container(&a, &c, ts, &updates)
        })
        .await
    }

    /// Updates a container's metadata.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Db`].
    pub async fn post_container(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
        updates: Updates,
    ) -> Result<()> {
        let (a, c) = (account.to_owned(), container.to_owned());
        self.blocking(move |s| s.db.post_container(&a, &c, ts, &updates))
            .await
    }

    /// Deletes an empty container.
    ///
    /// # Errors
    /// [`Error::NotFound`], a conflict when it still holds objects, [`Error::Db`].
    pub async fn delete_container(
        self: &Arc<Self>,
        account: &str,
        container: &str,
        ts: Timestamp,
    ) -> Result<()> {
        let (a, c) = (account.to_owned(), container.to_owned());
        self.blocking(move |s| s.db.delete_container(&a, &c, ts))
            .await
    }

    /// Creates an account (if missing) and applies metadata updates. Returns true if it was
    /// created.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub async fn put_account(
        self: &Arc<Self>,
        account: &str,
        ts: Timestamp,
        updates: Updates,
    ) -> Result<bool> {
        let a = account.to_owned();
        self.blocking(move |s| {
            let created = s.db.ensure_account(&a, ts)?;
            if !updates.is_empty() {
                s.db.update_account(&a, ts, &updates, None)?;
            }
            Ok(created)
        })
        .await
    }

    /// Deletes an account without containers.
    ///
    /// # Errors
    /// [`Error::NotFound`], a conflict when it still has containers, [`Error::Db`].
    pub async fn delete_account(self: &Arc<Self>, account: &str, ts: Timestamp) -> Result<()> {
        let a = account.to_owned();
        self.blocking(move |s| s.db.delete_account(&a, ts)).await
    }

    /// Updates an account's metadata and token keys: each `(id, spec)` replaces the key `id`
    /// (`None` removes it); keys not named are kept.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing account, [`Error::Db`].
    pub async fn post_account(
        self: &Arc<Self>,
        account: &str,
        ts: Timestamp,
        updates: Updates,
        key_changes: Vec<(String, Option<TokenKeySpec>)>,
    ) -> Result<()> {
        let a = account.to_owned();
        self.blocking(move |s| {
            let Some(row) = s.db.get_account(&a)? else {
                return Err(Error::NotFound { what: "account" });
            };
            let keys = if key_changes.is_empty() {
                None
            } else {
                let mut keys = row.token_keys;
                for (id, spec) in key_changes {
                    keys.retain(|k| k.id != id);
                    keys.extend(spec);
                }
                Some(keys)
            };
            s.db.update_account(&a, ts, &updates, keys.as_deref())
        })
        .await
    }
}
