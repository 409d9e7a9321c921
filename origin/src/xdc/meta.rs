//! Cross-DC sync of account and container rows: metadata (token keys, domains, ACLs, CORS,
//! static-web settings, quotas, default cache control), container creation with its metadata,
//! and container deletes.
//!
//! - **Selection** ([`select`]): from a feed batch, the account changes of accounts an
//!   account policy sends to the peer (account metadata belongs to the whole account, so a
//!   container's `Sync-To` alone does not ship it), the container changes of containers that
//!   replicate to the peer, and every container delete (a deleted row has no metadata left
//!   to say where it replicated; the receiver ignores deletes of containers it does not
//!   hold). Each row once per batch, in its current state.
//! - **Shipping**: `POST /internal/xdc/meta` with a [`MetaBatch`] of rows as replicas
//!   exchange them ([`MetaRow`]: timestamp, tombstone flag, every metadata key, token keys).
//!   Live rows go before the batch's objects (a container exists before its objects arrive),
//!   tombstones after them (a container's objects are deleted before it is).
//! - **Applying** ([`apply`]): the rows are merged with the cluster replicator's rule
//!   ([`crate::db::stamps::merge`]): newest wins per key, removed keys as stamped
//!   tombstones, a container delete clearing every older key. A row that changes
//!   lands in the receiver's change feed (its edges reload the account or container); in a
//!   cluster the receiving node sends the rows on to every other node. An equal row is not
//!   applied again, so the echo of a shipped row stops at the first peer that has it. A
//!   container's `Outpost-Sync-To` is each DC's own: the receiver keeps its value.
//!
//! Concurrent changes of different keys of one account or container in two DCs both survive;
//! a key removed in one DC stays removed unless set again later. A peer of the whole-row
//! format sends rows without stamps: they read as every key written at the row's timestamp.
//! Limits: account deletes are not replicated.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{Xdc, FORMAT, SYNC_TO_META};
use crate::db::{Change, ChangeKind, MetaRow};
use crate::hlc::Timestamp;
use crate::store::Store;
use crate::Result;

/// `POST /internal/xdc/meta` body (`format` 1): account and container rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetaBatch {
    /// Wire format version ([`FORMAT`]).
    pub format: u32,
    /// The rows, each in its current state at the sender.
    pub rows: Vec<MetaRow>,
}

/// Which account (`None`) or container rows of `batch` go to `peer`: `(account, container)`
/// in first-seen order, each once.
fn wanted(x: &Xdc, peer: &str, batch: &[Change]) -> Vec<(String, Option<String>)> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    let policy = |account: &str| {
        x.cfg
            .accounts
            .iter()
            .any(|(a, peers)| a == account && peers.iter().any(|p| p == peer))
    };
    for c in batch {
        let key = match &c.kind {
            ChangeKind::AccountPut | ChangeKind::AccountPost if policy(&c.account) => {
                (c.account.clone(), None)
            }
            ChangeKind::ContainerPut { container }
            | ChangeKind::ContainerPost { container }
            | ChangeKind::ContainerDelete { container } => {
                (c.account.clone(), Some(container.clone()))
            }
            _ => continue,
        };
        if seen.insert(key.clone()) {
            out.push(key);
        }
    }
    out
}

/// The rows of `batch` that replicate to `peer`, in their current local state.
///
/// # Errors
/// [`crate::Error::Db`].
pub async fn select(
    st: &Arc<Store>,
    x: &Arc<Xdc>,
    peer: &str,
    batch: &[Change],
) -> Result<Vec<MetaRow>> {
    let keys = wanted(x, peer, batch);
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let (x, peer) = (Arc::clone(x), peer.to_owned());
    st.blocking(move |s| {
        let mut rows = Vec::new();
        for (account, container) in keys {
            let Some(row) = s.db.meta_row(&account, container.as_deref())? else {
                continue;
            };
            let ships = match &row.container {
                None => true,
                // A tombstone has no metadata left to decide by: see the module docs.
                Some(_) if row.deleted => true,
                Some(_) => x.targets(&account, &row.meta).contains(&peer),
            };
            if ships {
                rows.push(row);
            }
        }
        Ok(rows)
    })
    .await
}

/// Merges a peer DC's rows into this node's store; returns the rows that applied (to send
/// on to the other nodes of a cluster).
///
/// # Errors
/// [`crate::Error::Db`].
pub async fn apply(st: &Arc<Store>, rows: Vec<MetaRow>) -> Result<Vec<MetaRow>> {
    st.blocking(move |s| {
        let mut keep = Vec::new();
        for mut m in rows {
            let cur = match m.container.as_deref() {
                Some(c) => s.db.meta_row(&m.account, Some(c))?,
                None => None,
            };
            if m.deleted {
                // Only deletes of containers this DC holds: not a tombstone for every
                // container name of every peer.
                if m.container.is_none() || cur.as_ref().is_none_or(|c| c.deleted) {
                    continue;
                }
            } else if m.container.is_some() {
                // Where a container replicates to is this DC's own setting: the sender's
                // (which names this DC) never replaces it.
                let ours = cur.as_ref().map(crate::db::stamps::normalize);
                let ours = ours.as_ref().and_then(|c| {
                    let v = c.meta.get(SYNC_TO_META)?;
                    Some((
                        v.clone(),
                        c.stamps.get(SYNC_TO_META).copied().unwrap_or(c.ts),
                    ))
                });
                // Stamped as ours, so the key merge keeps it as it is.
                match ours {
                    Some((v, t)) => {
                        m.meta.insert(SYNC_TO_META.to_owned(), v);
                        m.stamps.insert(SYNC_TO_META.to_owned(), t);
                    }
                    None => {
                        m.meta.remove(SYNC_TO_META);
                        m.stamps.remove(SYNC_TO_META);
                    }
                }
            }
            s.clock.observe(Timestamp(m.ts));
            keep.push(m);
        }
        let mut applied = Vec::new();
        for m in keep {
            if s.db.merge_meta(std::slice::from_ref(&m))? > 0 {
                applied.push(m);
            }
        }
        Ok(applied)
    })
    .await
}

/// Sends rows a peer DC's batch applied here on to every other node of this cluster (each
/// keeps every account and container row). Best effort: the replicator's metadata pull
/// repairs a node that missed them.
pub async fn fan_out(cl: &crate::cluster::Cluster, rows: &[MetaRow]) {
    if rows.is_empty() {
        return;
    }
    let Ok(body) = serde_json::to_vec(&MetaBatch {
        format: FORMAT,
        rows: rows.to_vec(),
    }) else {
        return;
    };
    let ring = cl.ring();
    let me = cl.me(&ring);
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{}", d.url(), outpost_proto::paths::XDC_META);
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        let body = reqwest::Body::from(body.clone());
        async move {
            match cl.send(http::Method::POST, url, h, Some(body)).await {
                Ok(r) => {
                    let _ = r.bytes().await;
                }
                Err(e) => tracing::debug!(error = %e, "sending a peer DC's rows on failed"),
            }
        }
    });
    futures_util::future::join_all(sends).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(account: &str, kind: ChangeKind) -> Change {
        Change {
            seq: 1,
            ts: "1".into(),
            account: account.into(),
            kind,
        }
    }

    #[test]
    fn selection_takes_each_row_once_and_accounts_only_under_a_policy() {
        let raw: crate::config::sync::RawSync = toml::from_str(
            r#"
name = "dc1"
[[peers]]
name = "dc2"
urls = ["http://127.0.0.1:1"]
realm_key = "0123456789abcdef0123456789abcdef"
[[accounts]]
account = "a"
peers = ["dc2"]
"#,
        )
        .unwrap();
        let x = Xdc::new(raw.validate().unwrap());
        let c = |n: &str| n.to_owned();
        let batch = [
            change("a", ChangeKind::AccountPost),
            change("b", ChangeKind::AccountPost),
            change("a", ChangeKind::ContainerPut { container: c("c") }),
            change("a", ChangeKind::ContainerPost { container: c("c") }),
            change("b", ChangeKind::ContainerDelete { container: c("d") }),
            change(
                "a",
                ChangeKind::ObjectDelete {
                    container: c("c"),
                    object: c("o"),
                },
            ),
        ];
        assert_eq!(
            wanted(&x, "dc2", &batch),
            [
                (c("a"), None),
                (c("a"), Some(c("c"))),
                (c("b"), Some(c("d")))
            ]
        );
        assert!(wanted(&x, "dc3", &batch[..2]).is_empty());
    }
}
