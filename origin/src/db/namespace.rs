//! Accounts and containers: their rows, metadata, counters and listings (every node of a
//! cluster keeps all of them; objects are in `db/mod.rs`).

use rusqlite::OptionalExtension;

use super::*;

impl Db {
    // ---- accounts ----

    /// An account with its counters, if it exists and is not deleted.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn get_account(&self, name: &str) -> Result<Option<AccountRow>> {
        self.read(|c| {
            let row = c
                .prepare_cached("SELECT ts, deleted, meta, token_keys FROM accounts WHERE name = ?1")?.query_row([name],
                    |r| {
                        Ok((
                            to_u64(r.get(0)?),
                            r.get::<_, i64>(1)? != 0,
                            r.get::<_, String>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((ts, deleted, meta, keys)) = row else {
                return Ok(None);
            };
            if deleted {
                return Ok(None);
            }
            let (cc, oc, bu): (i64, i64, i64) = c.prepare_cached("SELECT COUNT(*), COALESCE(SUM(object_count), 0), COALESCE(SUM(bytes_used), 0) FROM containers WHERE account = ?1 AND deleted = 0")?.query_row([name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            Ok(Some(AccountRow {
                name: name.to_owned(),
                ts: Timestamp(ts),
                meta: parse_meta(&meta),
                token_keys: serde_json::from_str(&keys).unwrap_or_default(),
                container_count: to_u64(cc),
                object_count: to_u64(oc),
                bytes_used: to_u64(bu),
            }))
        })
    }

    /// Creates the account if missing (or deleted); returns true if it was created.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn ensure_account(&self, name: &str, ts: Timestamp) -> Result<bool> {
        self.write(|tx| {
            let existing: Option<i64> = tx
                .prepare_cached("SELECT deleted FROM accounts WHERE name = ?1")?
                .query_row([name], |r| r.get(0))
                .optional()?;
            if existing == Some(0) {
                return Ok((false, None));
            }
            // Created anew: what an earlier delete cleared stays cleared (`stamps.rs`).
            let cur =
                replica::meta_row_in(tx, name, None)?.unwrap_or_else(|| stamps::absent(name, None));
            let next = stamps::write(&cur, ts.0, &[], Some("[]"));
            replica::write_meta_row(tx, &next)?;
            let seq = record_change(tx, ts, name, &ChangeKind::AccountPut)?;
            Ok((true, Some(seq)))
        })
    }

    /// Applies metadata updates (value `None` removes) and token key changes to an account.
    ///
    /// # Errors
    /// [`Error::NotFound`] for a missing account, [`Error::Db`].
    pub fn update_account(
        &self,
        name: &str,
        ts: Timestamp,
        updates: &[(String, Option<String>)],
        keys: Option<&[outpost_auth::TokenKeySpec]>,
    ) -> Result<()> {
        self.write(|tx| {
            let Some(cur) = replica::meta_row_in(tx, name, None)?.filter(|r| !r.deleted) else {
                return Err(Error::NotFound { what: "account" });
            };
            let keys_json = keys.map(|k| serde_json::to_string(k).unwrap_or_else(|_| "[]".into()));
            // Each key is stamped with this write; a newer write of a key (from a peer) stays.
            let next = stamps::write(&cur, ts.0, updates, keys_json.as_deref());
            replica::write_meta_row(tx, &next)?;
            let seq = record_change(tx, ts, name, &ChangeKind::AccountPost)?;
            Ok(((), Some(seq)))
        })
    }

    /// Tombstones an account. Refuses while it holds containers.
    ///
    /// # Errors
    /// [`Error::Conflict`] when not empty, [`Error::NotFound`], [`Error::Db`].
    pub fn delete_account(&self, name: &str, ts: Timestamp) -> Result<()> {
        self.write(|tx| {
            let n: i64 = tx
                .prepare_cached(
                    "SELECT COUNT(*) FROM containers WHERE account = ?1 AND deleted = 0",
                )?
                .query_row([name], |r| r.get(0))?;
            if n > 0 {
                return Err(Error::Conflict {
                    reason: "account still has containers",
                });
            }
            let Some(cur) = replica::meta_row_in(tx, name, None)?.filter(|r| !r.deleted) else {
                return Err(Error::NotFound { what: "account" });
            };
            replica::write_meta_row(tx, &stamps::delete(&cur, ts.0))?;
            let seq = record_change(tx, ts, name, &ChangeKind::AccountDelete)?;
            Ok(((), Some(seq)))
        })
    }

    /// Every live account name.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn account_names(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut st = c.prepare("SELECT name FROM accounts WHERE deleted = 0 ORDER BY name")?;
            let rows = st.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<rusqlite::Result<Vec<String>>>()?)
        })
    }

    // ---- containers ----

    /// A live container.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn get_container(&self, account: &str, name: &str) -> Result<Option<ContainerRow>> {
        self.read(|c| {
            Ok(c.prepare_cached("SELECT name, ts, meta, object_count, bytes_used FROM containers WHERE account = ?1 AND name = ?2 AND deleted = 0")?.query_row([account, name],
                container_from_row,
            )
            .optional()?)
        })
    }

    /// Creates a container (or updates its metadata if it exists). Returns true if created.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn put_container(
        &self,
        account: &str,
        name: &str,
        ts: Timestamp,
        updates: &[(String, Option<String>)],
    ) -> Result<bool> {
        self.write(|tx| {
            let cur = replica::meta_row_in(tx, account, Some(name))?;
            let created = cur.as_ref().is_none_or(|c| c.deleted);
            let cur = cur.unwrap_or_else(|| stamps::absent(account, Some(name)));
            // Created anew, the keys an earlier delete cleared stay cleared (`stamps.rs`).
            let next = stamps::write(&cur, ts.0, updates, None);
            replica::write_meta_row(tx, &next)?;
            let container = name.to_owned();
            let kind = if created {
                ChangeKind::ContainerPut { container }
            } else {
                ChangeKind::ContainerPost { container }
            };
            let seq = record_change(tx, ts, account, &kind)?;
            Ok((created, Some(seq)))
        })
    }

    /// Applies metadata updates to a live container.
    ///
    /// # Errors
    /// [`Error::NotFound`], [`Error::Db`].
    pub fn post_container(
        &self,
        account: &str,
        name: &str,
        ts: Timestamp,
        updates: &[(String, Option<String>)],
    ) -> Result<()> {
        self.write(|tx| {
            let Some(cur) = replica::meta_row_in(tx, account, Some(name))?.filter(|r| !r.deleted)
            else {
                return Err(Error::NotFound { what: "container" });
            };
            replica::write_meta_row(tx, &stamps::write(&cur, ts.0, updates, None))?;
            let seq = record_change(
                tx,
                ts,
                account,
                &ChangeKind::ContainerPost {
                    container: name.to_owned(),
                },
            )?;
            Ok(((), Some(seq)))
        })
    }

    /// Tombstones an empty container.
    ///
    /// # Errors
    /// [`Error::Conflict`] when it holds objects, [`Error::NotFound`], [`Error::Db`].
    pub fn delete_container(&self, account: &str, name: &str, ts: Timestamp) -> Result<()> {
        self.write(|tx| {
            let count: Option<i64> = tx
                .prepare_cached("SELECT object_count FROM containers WHERE account = ?1 AND name = ?2 AND deleted = 0")?.query_row([account, name],
                    |r| r.get(0),
                )
                .optional()?;
            match count {
                None => return Err(Error::NotFound { what: "container" }),
                Some(n) if n > 0 => {
                    return Err(Error::Conflict {
                        reason: "there was a conflict when trying to complete your request: container not empty",
                    })
                }
                Some(_) => {}
            }
            if let Some(cur) = replica::meta_row_in(tx, account, Some(name))? {
                replica::write_meta_row(tx, &stamps::delete(&cur, ts.0))?;
            }
            let seq = record_change(tx, ts, account, &ChangeKind::ContainerDelete { container: name.to_owned() })?;
            Ok(((), Some(seq)))
        })
    }

    /// Lists containers of an account.
    ///
    /// # Errors
    /// [`Error::Db`].
    pub fn list_containers(
        &self,
        account: &str,
        p: &ListParams,
    ) -> Result<Vec<Entry<ContainerRow>>> {
        self.read(|c| {
            list(p, |lower, upper, n| {
                let (sql, args) = range_query(
                    "SELECT name, ts, meta, object_count, bytes_used FROM containers WHERE account = ?1 AND deleted = 0",
                    2,
                    lower,
                    upper,
                    p.reverse,
                    n,
                );
                let mut st = c.prepare_cached(&sql)?;
                let mut all: Vec<&dyn rusqlite::ToSql> = vec![&account];
                all.extend(args.iter().map(|s| s as &dyn rusqlite::ToSql));
                let rows = st.query_map(all.as_slice(), container_from_row)?;
                Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
            }, |r: &ContainerRow| r.name.as_str())
        })
    }
}

fn container_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ContainerRow> {
    Ok(ContainerRow {
        name: r.get(0)?,
        ts: Timestamp(to_u64(r.get(1)?)),
        meta: parse_meta(&r.get::<_, String>(2)?),
        object_count: to_u64(r.get(3)?),
        bytes_used: to_u64(r.get(4)?),
    })
}
