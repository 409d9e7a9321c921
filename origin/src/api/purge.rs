//! Purge fan-out: which edges follow the feed and how far they have applied it, `X-Purge-Wait`
//! (answer a write only once every edge purged it), and the operators' purge endpoint.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue};

use super::{blocking, Capability, Shared};
use crate::db::PurgeTarget;
use crate::{Error, Result};

/// Request header asking a write to wait for every edge's purge: `X-Purge-Wait: edges`.
pub const PURGE_WAIT_HEADER: &str = "x-purge-wait";
/// Optional bound on that wait, in seconds (default 5, at most 30).
pub const PURGE_WAIT_TIMEOUT_HEADER: &str = "x-purge-wait-timeout";
/// An edge that has not polled the feed for this long is no longer waited for.
pub const SUBSCRIBER_TTL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
struct Sub {
    applied: u64,
    seen: Instant,
}

/// The edges following the feed. An edge that asks for changes after `N` has applied
/// everything up to `N`: its poll is its acknowledgement.
#[derive(Debug, Default)]
pub struct Subscribers {
    subs: Mutex<HashMap<String, Sub>>,
    changed: tokio::sync::Notify,
}

/// Outcome of waiting for the edges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitOutcome {
    /// Edges that applied the change.
    pub acked: Vec<String>,
    /// Edges that had not when the wait ended.
    pub pending: Vec<String>,
}

impl Subscribers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Sub>> {
        self.subs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records that `edge` has applied the feed up to `seq`.
    pub fn ack(&self, edge: &str, seq: u64) {
        {
            let mut m = self.lock();
            let e = m.entry(edge.to_owned()).or_insert(Sub {
                applied: 0,
                seen: Instant::now(),
            });
            e.applied = e.applied.max(seq);
            e.seen = Instant::now();
        }
        self.changed.notify_waiters();
    }

    /// How far each live edge has applied the feed.
    pub fn positions(&self) -> BTreeMap<String, u64> {
        let now = Instant::now();
        self.lock()
            .iter()
            .filter(|(_, s)| now.duration_since(s.seen) < SUBSCRIBER_TTL)
            .map(|(k, s)| (k.clone(), s.applied))
            .collect()
    }

    fn split(&self, seq: u64) -> WaitOutcome {
        let mut out = WaitOutcome::default();
        for (edge, applied) in self.positions() {
            if applied >= seq {
                out.acked.push(edge);
            } else {
                out.pending.push(edge);
            }
        }
        out
    }

    /// Waits until every live edge applied `seq`, or `timeout`.
    pub async fn wait_for(&self, seq: u64, timeout: Duration) -> WaitOutcome {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            let now = self.split(seq);
            if now.pending.is_empty() {
                return now;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.split(seq);
            }
        }
    }
}

/// Parses `X-Purge-Wait` / `X-Purge-Wait-Timeout`: `Some(timeout)` when the client asked.
///
/// # Errors
/// [`Error::BadHeader`] for values other than `edges` / a number of seconds.
pub fn requested_wait(h: &HeaderMap) -> Result<Option<Duration>> {
    let Some(v) = h.get(PURGE_WAIT_HEADER) else {
        return Ok(None);
    };
    if !v.as_bytes().eq_ignore_ascii_case(b"edges") {
        return Err(Error::BadHeader {
            name: "x-purge-wait",
            reason: "the only value is 'edges'",
        });
    }
    let secs = match h
        .get(PURGE_WAIT_TIMEOUT_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        None => 5.0,
        Some(t) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| *t > 0.0)
            .ok_or(Error::BadHeader {
                name: "x-purge-wait-timeout",
                reason: "must be a positive number of seconds",
            })?,
    };
    Ok(Some(Duration::from_secs_f64(secs.min(30.0))))
}

/// Waits for the edges to apply everything committed so far and says so in the response:
/// `X-Purge-Status: complete|timeout`, `X-Purge-Acked` / `X-Purge-Pending` (edge ids). In a
/// cluster, `landing` holds the writes the request made: the wait covers every edge of the DC
/// whichever node it follows, and `X-Purge-Unreached` names the nodes that could not be asked.
pub async fn wait_and_annotate(
    st: &Shared,
    timeout: Duration,
    landing: &crate::cluster::purge_wait::Landing,
    resp: &mut Response,
) {
    let started = Instant::now();
    let coverage = match st.cluster.as_ref() {
        Some(cl) => {
            crate::cluster::purge_wait::cover(cl, landing, timeout, |t| local_acks(st, t)).await
        }
        None => {
            let outcome = st
                .subscribers
                .wait_for(st.store.db.last_seq(), timeout)
                .await;
            crate::cluster::purge_wait::Coverage {
                acked: outcome.acked.into_iter().collect(),
                pending: outcome.pending.into_iter().collect(),
                unreached: Vec::new(),
                landed: true,
            }
        }
    };
    let complete = coverage.complete();
    st.store.metrics.purge_wait(started.elapsed(), complete);
    let h = resp.headers_mut();
    let status = if complete { "complete" } else { "timeout" };
    h.insert("x-purge-status", HeaderValue::from_static(status));
    let list = |v: &mut dyn Iterator<Item = &String>| {
        HeaderValue::from_str(&v.map(String::as_str).collect::<Vec<_>>().join(", "))
    };
    if let Ok(v) = list(&mut coverage.acked.iter()) {
        h.insert("x-purge-acked", v);
    }
    if !coverage.pending.is_empty() {
        if let Ok(v) = list(&mut coverage.pending.iter()) {
            h.insert("x-purge-pending", v);
        }
    }
    if !coverage.unreached.is_empty() {
        if let Ok(v) = list(&mut coverage.unreached.iter()) {
            h.insert("x-purge-unreached", v);
        }
    }
}

/// This node's edges, waited for until they applied its feed as it stands now.
pub async fn local_acks(st: &Shared, timeout: Duration) -> crate::cluster::purge_wait::NodeAcks {
    let outcome = st
        .subscribers
        .wait_for(st.store.db.last_seq(), timeout)
        .await;
    crate::cluster::purge_wait::NodeAcks {
        format: crate::cluster::purge_wait::FORMAT,
        acked: outcome.acked,
        pending: outcome.pending,
    }
}

/// `POST /internal/purge?account=A[&container=C[&object=O | &prefix=P]]`, internal secret
/// only: fans a purge out to every edge through the feed. Idempotent. Honours `X-Purge-Wait`.
pub async fn purge(
    State(st): State<Shared>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    match purge_inner(&st, &headers, &q).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn purge_inner(
    st: &Shared,
    headers: &HeaderMap,
    q: &HashMap<String, String>,
) -> Result<Response> {
    st.require(headers, Capability::Purge)?;
    let wait = requested_wait(headers)?;
    let get = |k: &str| q.get(k).filter(|v| !v.is_empty()).cloned();
    let account = get("account").ok_or(Error::BadQuery {
        name: "account",
        reason: "is required",
    })?;
    crate::names::check_account(&account)?;
    let target = match (get("container"), get("object"), get("prefix")) {
        (None, None, None) => PurgeTarget::Account,
        (Some(container), None, None) => PurgeTarget::Container { container },
        (Some(container), Some(object), None) => PurgeTarget::Object { container, object },
        (Some(container), None, Some(prefix)) => PurgeTarget::Prefix { container, prefix },
        _ => {
            return Err(Error::BadQuery {
                name: "object",
                reason: "give container, then object or prefix (not both)",
            })
        }
    };
    let ts = st.store.clock.now();
    let (t, a) = (target.clone(), account.clone());
    let seq = blocking(st, move |s| s.db.append_purge(ts, &a, t)).await?;
    tracing::info!(target: "audit", account, ?target, seq, action = "purge");
    // Cluster mode: every node's feed carries the purge, so an edge following any node sees it.
    let ((), landing) = crate::cluster::purge_wait::tracking(async {
        if let Some(cl) = st
            .cluster
            .as_ref()
            .filter(|_| !headers.contains_key(crate::cluster::DIRECT_HEADER))
        {
            crate::cluster::broadcast::purge(cl, q).await;
        }
    })
    .await;
    let mut resp = axum::Json(serde_json::json!({ "seq": seq })).into_response();
    if let Some(timeout) = wait {
        wait_and_annotate(st, timeout, &landing, &mut resp).await;
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn waits_for_every_live_edge() {
        let s = std::sync::Arc::new(Subscribers::default());
        s.ack("e1", 5);
        s.ack("e2", 3);
        let out = s.wait_for(5, Duration::from_millis(20)).await;
        assert_eq!(out.acked, ["e1"]);
        assert_eq!(out.pending, ["e2"]);
        let s2 = std::sync::Arc::clone(&s);
        let waiter = tokio::spawn(async move { s2.wait_for(5, Duration::from_secs(5)).await });
        tokio::task::yield_now().await;
        s.ack("e2", 6);
        let out = waiter.await.unwrap();
        assert!(out.pending.is_empty());
        assert_eq!(out.acked, ["e1", "e2"]);
    }

    #[test]
    fn header_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_wait(&h).unwrap(), None);
        h.insert(PURGE_WAIT_HEADER, "edges".parse().unwrap());
        assert_eq!(requested_wait(&h).unwrap(), Some(Duration::from_secs(5)));
        h.insert(PURGE_WAIT_TIMEOUT_HEADER, "0.5".parse().unwrap());
        assert_eq!(
            requested_wait(&h).unwrap(),
            Some(Duration::from_millis(500))
        );
        h.insert(PURGE_WAIT_HEADER, "yes".parse().unwrap());
        assert!(requested_wait(&h).is_err());
    }
}
