//! Receiving side of cross-datacenter replication (see [`crate::xdc`]): peers authenticated
//! by their realm key ask which versions this DC holds and apply their changes through the
//! normal write path with the original timestamps.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, Method};

use super::{blocking, Capability, Identity, Role, Shared, INTERNAL_HEADER};
use crate::xdc::{HaveRequest, HaveResponse, FORMAT, FROM_HEADER, KEY_HEADER};
use crate::{Error, Result};

/// Most objects one have-check may name.
const MAX_HAVE: usize = 10_000;
/// Largest have-check body.
const MAX_HAVE_BYTES: usize = 16 << 20;

/// Checks the sending DC's name and realm key.
fn authenticate(st: &Shared, h: &HeaderMap) -> Result<()> {
    let x = st.xdc.as_ref().ok_or(Error::NotFound {
        what: "cross-datacenter sync ([sync] is not configured)",
    })?;
    let from = h
        .get(FROM_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or(Error::Unauthorized {
            reason: "X-Outpost-Sync-From must name the sending DC",
        })?;
    let key = h.get(KEY_HEADER).map_or(&b""[..], HeaderValue::as_bytes);
    if x.authenticate(from, key) {
        Ok(())
    } else {
        Err(Error::Unauthorized {
            reason: "unknown sync peer or wrong realm key",
        })
    }
}

/// `POST /internal/xdc/have`: for each named object, the timestamp of the version or
/// tombstone held here.
pub async fn have(State(st): State<Shared>, req: Request) -> Response {
    match have_inner(&st, req).await {
        Ok(r) => axum::Json(r).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn have_inner(st: &Shared, req: Request) -> Result<HaveResponse> {
    authenticate(st, req.headers())?;
    let raw = axum::body::to_bytes(req.into_body(), MAX_HAVE_BYTES)
        .await
        .map_err(|_| Error::BadSyncMessage {
            reason: format!("have-check body larger than {MAX_HAVE_BYTES} bytes or aborted"),
        })?;
    let ask: HaveRequest = serde_json::from_slice(&raw).map_err(|e| Error::BadSyncMessage {
        reason: format!("have-check body is not valid JSON: {e}"),
    })?;
    if ask.format != FORMAT {
        return Err(Error::BadSyncMessage {
            reason: format!("unknown sync format version {}", ask.format),
        });
    }
    if ask.objects.len() > MAX_HAVE {
        return Err(Error::BadSyncMessage {
            reason: format!("at most {MAX_HAVE} objects per have-check"),
        });
    }
    blocking(st, move |s| {
        let mut ts = Vec::with_capacity(ask.objects.len());
        for o in &ask.objects {
            let row = s.db.get_object(&o.account, &o.container, &o.object)?;
            ts.push(row.map(|r| r.ts.to_string()));
        }
        Ok(HaveResponse { format: FORMAT, ts })
    })
    .await
}

/// Largest account/container batch body.
const MAX_META_BYTES: usize = 16 << 20;

/// `POST /internal/xdc/meta`: a peer DC's account and container rows
/// ([`crate::xdc::meta`]), merged newest-wins; in a cluster sent on to the other nodes. From
/// another node of this cluster (peer secret), applied here only.
pub async fn meta(State(st): State<Shared>, req: Request) -> Response {
    match meta_inner(&st, req).await {
        Ok(applied) => {
            axum::Json(serde_json::json!({ "format": FORMAT, "applied": applied })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

async fn meta_inner(st: &Shared, req: Request) -> Result<usize> {
    let from_node = st.require(req.headers(), Capability::Storage).is_ok();
    if !from_node {
        authenticate(st, req.headers())?;
    }
    let raw = axum::body::to_bytes(req.into_body(), MAX_META_BYTES)
        .await
        .map_err(|_| Error::BadSyncMessage {
            reason: format!("metadata body larger than {MAX_META_BYTES} bytes or aborted"),
        })?;
    let batch: crate::xdc::meta::MetaBatch =
        serde_json::from_slice(&raw).map_err(|e| Error::BadSyncMessage {
            reason: format!("metadata body is not valid JSON: {e}"),
        })?;
    if batch.format != FORMAT {
        return Err(Error::BadSyncMessage {
            reason: format!("unknown sync format version {}", batch.format),
        });
    }
    for m in &batch.rows {
        crate::names::check_account(&m.account)?;
    }
    let applied = crate::xdc::meta::apply(&st.store, batch.rows).await?;
    if let (Some(cl), false) = (st.cluster.as_ref(), from_node) {
        crate::xdc::meta::fan_out(cl, &applied).await;
    }
    if let Some(x) = st.xdc.as_ref().filter(|_| !from_node) {
        x.received
            .fetch_add(applied.len() as u64, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(applied.len())
}

/// `/internal/xdc/v1/...`: a peer's change, applied as an internal request (its
/// `X-Timestamp` is kept) through the Swift API, so newest-wins, cluster placement and the
/// change feed all apply as for any write.
pub async fn apply(State(st): State<Shared>, req: Request) -> Response {
    match rewrite(&st, req) {
        Ok(req) => {
            let resp = super::swift(State(std::sync::Arc::clone(&st)), req).await;
            if resp.status().is_success() {
                if let Some(x) = st.xdc.as_ref() {
                    x.received
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
            resp
        }
        Err(e) => e.into_response(),
    }
}

fn rewrite(st: &Shared, req: Request) -> Result<Request> {
    authenticate(st, req.headers())?;
    let (mut parts, body) = req.into_parts();
    if !matches!(parts.method, Method::PUT | Method::DELETE | Method::HEAD) {
        return Err(Error::MethodNotAllowed);
    }
    if parts.method != Method::HEAD && !parts.headers.contains_key("x-timestamp") {
        return Err(Error::BadHeader {
            name: "x-timestamp",
            reason: "a replicated change must carry its original timestamp",
        });
    }
    let path = parts
        .uri
        .path()
        .strip_prefix(outpost_proto::paths::XDC)
        .ok_or(Error::NotFound { what: "path" })?;
    // Peers replicate objects and create containers; they never delete containers or touch
    // accounts.
    let sp = outpost_auth::StoragePath::parse(path)?;
    match (sp.container(), sp.object(), &parts.method) {
        (Some(_), Some(_), _) | (Some(_), None, &Method::PUT) => {}
        _ => {
            return Err(Error::Forbidden {
                reason: "sync peers may only write objects and create containers",
            })
        }
    }
    let pq = match parts.uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    parts.uri = pq.parse().map_err(|_| Error::BadHeader {
        name: "path",
        reason: "not a valid request path",
    })?;
    let h = &mut parts.headers;
    for name in [
        KEY_HEADER,
        FROM_HEADER,
        crate::cluster::DIRECT_HEADER,
        crate::cluster::SLO_HEADER,
        "x-auth-token",
        "x-storage-token",
        "x-copy-from",
        "x-purge-wait",
    ] {
        h.remove(name);
    }
    h.remove(INTERNAL_HEADER);
    // Applied as a peer's write (it keeps its timestamp); the realm key authenticated it.
    parts.extensions.insert(Identity::Service(Role::Peer));
    Ok(Request::from_parts(parts, Body::new(body)))
}

/// `GET /internal/xdc/status` (internal secret): this node's per-peer replication state.
pub async fn status(State(st): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = st.require(&headers, Capability::Operate) {
        return e.into_response();
    }
    let x = st.xdc.clone();
    let peers = blocking(&st, move |s| match x {
        Some(x) => crate::xdc::status(s, &x),
        None => Ok(Vec::new()),
    });
    match peers.await {
        Ok(peers) => axum::Json(peers).into_response(),
        Err(e) => e.into_response(),
    }
}
