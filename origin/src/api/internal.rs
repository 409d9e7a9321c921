//! Internal endpoints for edges and peers, authenticated by the internal secret:
//! the change feed and the CDN snapshot (domains, ACLs, keys, cache defaults).

use std::collections::HashMap;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::HeaderMap;

use super::{blocking, Capability, Shared};
use outpost_proto::feed::FeedPage;
use outpost_proto::snapshot::{AccountSnapshot, ContainerSnapshot, Snapshot, TokenKey};

use crate::db::ListParams;
use crate::{Error, Result};

/// Longest long-poll wait.
const MAX_WAIT: Duration = Duration::from_secs(60);

fn require_internal(st: &Shared, h: &HeaderMap) -> Result<()> {
    st.require(h, Capability::Feed).map(drop)
}

/// `GET /internal/changes?since=SEQ&limit=N&wait=SECS`: changes after `since`; with `wait`,
/// long-polls until at least one arrives or the wait ends.
pub async fn changes(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match changes_inner(&st, &headers, &q).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(e) => e.into_response(),
    }
}

fn num(q: &HashMap<String, String>, name: &'static str, default: u64) -> Result<u64> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v.parse().map_err(|_| Error::BadQuery {
            name,
            reason: "must be a non-negative integer",
        }),
    }
}

async fn changes_inner(
    st: &Shared,
    h: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<FeedPage> {
    require_internal(st, h)?;
    let since = num(q, "since", 0)?;
    let limit = usize::try_from(num(q, "limit", 1000)?.clamp(1, 10_000)).unwrap_or(1000);
    let wait = Duration::from_secs(num(q, "wait", 0)?).min(MAX_WAIT);
    // An edge asking for changes after `since` has applied everything up to it.
    if let Some(edge) = q.get("edge").filter(|e| !e.is_empty() && e.len() <= 128) {
        st.subscribers.ack(edge, since);
    }
    if !wait.is_zero() && st.store.db.last_seq() <= since {
        let mut rx = st.store.db.feed_watch();
        let _ = tokio::time::timeout(wait, rx.wait_for(|s| *s > since)).await;
    }
    blocking(st, move |s| {
        let first = s.db.first_seq()?;
        let changes = s.db.changes_since(since, limit)?;
        Ok(FeedPage {
            format: outpost_proto::Format,
            first,
            last: s.db.last_seq(),
            truncated: first > since + 1,
            changes,
        })
    })
    .await
}

/// The wire form of a token key (the snapshot carries keys to edges).
fn wire_key(k: outpost_auth::TokenKeySpec) -> TokenKey {
    TokenKey {
        id: k.id,
        secret: String::from_utf8_lossy(k.secret.expose()).into_owned(),
        not_before: k.not_before,
        not_after: k.not_after,
    }
}

/// `GET /internal/snapshot[?account=A]`.
pub async fn snapshot(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    if let Err(e) = require_internal(&st, &headers) {
        return e.into_response();
    }
    let only = q.get("account").cloned();
    let r = blocking(&st, move |s| {
        let seq = s.db.last_seq();
        let names = match only {
            Some(a) => vec![a],
            None => s.db.account_names()?,
        };
        let mut accounts = Vec::new();
        for name in names {
            let Some(a) = s.db.get_account(&name)? else {
                continue;
            };
            let mut containers = Vec::new();
            let mut params = ListParams {
                limit: 10_000,
                ..ListParams::default()
            };
            loop {
                let page = s.db.list_containers(&name, &params)?;
                let n = page.len();
                for e in page {
                    if let crate::db::Entry::Item(c) = e {
                        params.marker = Some(c.name.clone());
                        containers.push(ContainerSnapshot {
                            name: c.name,
                            meta: c.meta,
                        });
                    }
                }
                if n < params.limit {
                    break;
                }
            }
            let revocations = s.db.revocations(&name)?;
            accounts.push(AccountSnapshot {
                revocations,
                name,
                meta: a.meta,
                token_keys: a.token_keys.into_iter().map(wire_key).collect(),
                containers,
            });
        }
        Ok(Snapshot {
            format: outpost_proto::Format,
            seq,
            accounts,
        })
    })
    .await;
    match r {
        Ok(s) => axum::Json(s).into_response(),
        Err(e) => e.into_response(),
    }
}
