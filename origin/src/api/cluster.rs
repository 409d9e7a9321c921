//! Internal endpoints of cluster mode (cluster secret only): replication queries, triggers for
//! a replication or audit pass, and the node's status.
//!
//! - `GET /internal/replication/hashes?part=P&view=data|listing` → per-suffix hashes
//! - `GET /internal/replication/rows?part=P&suffixes=abc,def` → the rows in those suffixes
//! - `GET /internal/replication/meta` → every account and container row
//! - `POST /internal/cluster/replicate` → runs one replication pass, answers its report
//! - `POST /internal/cluster/audit` → runs one unthrottled audit pass, answers its report
//! - `GET /internal/cluster/status` → [`crate::cluster::status::NodeStatus`]
//! - `GET /internal/cluster/purge-wait` → [`crate::cluster::purge_wait::NodeAcks`]
//!
//! Every answer carries `format` 1.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::HeaderMap;

use super::{blocking, Capability, Shared};
use crate::cluster::replicator::{self, Hashes, MetaRows, Rows, View, FORMAT};
use crate::db::ReplicaRow;
use crate::{Error, Result};

fn require<'a>(
    st: &'a Shared,
    h: &HeaderMap,
    need: Capability,
) -> Result<&'a std::sync::Arc<crate::cluster::Cluster>> {
    st.require(h, need)?;
    st.cluster.as_ref().ok_or(Error::NotFound {
        what: "cluster mode (this node has no [cluster] config)",
    })
}

fn part_param(st: &Shared, q: &HashMap<String, String>) -> Result<u32> {
    let p: u32 = q
        .get("part")
        .and_then(|v| v.parse().ok())
        .ok_or(Error::BadQuery {
            name: "part",
            reason: "must be a partition number",
        })?;
    if p >= (1u32 << st.store.part_power()) {
        return Err(Error::BadQuery {
            name: "part",
            reason: "out of range for the ring",
        });
    }
    Ok(p)
}

fn answer<T: serde::Serialize>(r: Result<T>) -> Response {
    match r {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /internal/replication/hashes`.
pub async fn hashes(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(
        async {
            require(&st, &headers, Capability::Storage)?;
            let part = part_param(&st, &q)?;
            let view = match q.get("view").map(String::as_str) {
                Some("data") => View::Data,
                Some("listing") | None => View::Listing,
                Some(_) => {
                    return Err(Error::BadQuery {
                        name: "view",
                        reason: "must be data or listing",
                    })
                }
            };
            let rows = blocking(&st, move |s| s.db.rows_in_partition(part)).await?;
            Ok(Hashes {
                format: FORMAT,
                hashes: replicator::suffix_hashes(&rows, view, false),
            })
        }
        .await,
    )
}

/// `GET /internal/replication/rows`.
pub async fn rows(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(
        async {
            require(&st, &headers, Capability::Storage)?;
            let part = part_param(&st, &q)?;
            let suffixes: Vec<String> = q
                .get("suffixes")
                .map(|s| s.split(',').map(str::to_owned).collect())
                .unwrap_or_default();
            let rows = blocking(&st, move |s| s.db.rows_in_partition(part)).await?;
            let rows = rows
                .iter()
                .filter(|r| {
                    let h = outpost_ring::object_hash_hex(&r.account, &r.container, &r.name);
                    suffixes.iter().any(|s| s == replicator::suffix(&h))
                })
                .map(ReplicaRow::of)
                .collect();
            Ok(Rows {
                format: FORMAT,
                rows,
            })
        }
        .await,
    )
}

/// `GET /internal/replication/meta`.
pub async fn meta(State(st): State<Shared>, headers: HeaderMap) -> Response {
    answer(
        async {
            require(&st, &headers, Capability::Storage)?;
            let rows = blocking(&st, |s| s.db.meta_rows()).await?;
            Ok(MetaRows {
                format: FORMAT,
                rows,
            })
        }
        .await,
    )
}

/// `POST /internal/cluster/replicate`.
pub async fn replicate(State(st): State<Shared>, headers: HeaderMap) -> Response {
    answer(
        async {
            let cl = require(&st, &headers, Capability::Operate)?;
            replicator::pass(&st.store, cl).await
        }
        .await,
    )
}

/// `POST /internal/cluster/audit`.
pub async fn audit(State(st): State<Shared>, headers: HeaderMap) -> Response {
    answer(
        async {
            let cl = require(&st, &headers, Capability::Operate)?;
            crate::cluster::auditor::pass(&st.store, cl, None).await
        }
        .await,
    )
}

/// `GET /internal/cluster/status`.
pub async fn status(State(st): State<Shared>, headers: HeaderMap) -> Response {
    answer(
        async {
            let cl = require(&st, &headers, Capability::Operate)?;
            let objects = blocking(&st, |s| s.db.object_row_count()).await?;
            Ok(crate::cluster::status::of(cl, objects))
        }
        .await,
    )
}

/// `GET /internal/cluster/purge-wait?timeout=S[&missed=1]`: the barrier of `X-Purge-Wait` in
/// a cluster ([`crate::cluster::purge_wait`]).
pub async fn purge_wait(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    answer(
        async {
            require(&st, &headers, Capability::Storage)?;
            let secs = match q.get("timeout") {
                None => 0.0,
                Some(t) => t
                    .parse::<f64>()
                    .ok()
                    .filter(|t| t.is_finite() && *t >= 0.0)
                    .ok_or(Error::BadQuery {
                        name: "timeout",
                        reason: "must be a non-negative number of seconds",
                    })?,
            };
            let timeout = std::time::Duration::from_secs_f64(secs.min(30.0));
            if q.get("missed").is_some_and(|v| v == "1") {
                let mut edges: Vec<String> = st.subscribers.positions().into_keys().collect();
                edges.sort();
                return Ok(crate::cluster::purge_wait::NodeAcks {
                    format: crate::cluster::purge_wait::FORMAT,
                    acked: Vec::new(),
                    pending: edges,
                });
            }
            Ok(super::purge::local_acks(&st, timeout).await)
        }
        .await,
    )
}
