//! Account, container and purge writes in cluster mode: applied on the accepting node, then
//! sent with the same timestamp to every other node (each keeps every account and container
//! row and its own change feed). Best effort: the replicator's metadata pull repairs misses.

use futures_util::future::join_all;
use http::{HeaderMap, HeaderName, HeaderValue, Method};

use super::{Cluster, Direct, DIRECT_HEADER};

/// Nodes a broadcast did not reach miss the change in their feeds (`X-Purge-Wait`).
fn note_missed(answers: Vec<Option<u32>>) {
    super::purge_wait::note_missed(answers.into_iter().flatten());
}
use crate::hlc::Timestamp;
use crate::request::Req;

fn set(h: &mut HeaderMap, name: &'static str, value: impl ToString) {
    if let Ok(v) = HeaderValue::from_str(&value.to_string()) {
        h.insert(HeaderName::from_static(name), v);
    }
}

/// Account and container writes in cluster mode: applied here with a timestamp chosen here,
/// then sent with that timestamp to every other node (each keeps every account and container
/// row). Peers that miss it catch up in the replicator's metadata pull.
pub async fn meta_write(cl: &Cluster, r: &Req, ts: Timestamp) {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let mut headers = HeaderMap::new();
    for (k, v) in &r.headers {
        let n = k.as_str();
        if n.starts_with("x-account-")
            || n.starts_with("x-container-")
            || n.starts_with("x-remove-")
            || n.starts_with(outpost_proto::headers::REVOKE_PREFIX)
        {
            headers.append(k.clone(), v.clone());
        }
    }
    set(&mut headers, "x-timestamp", ts);
    set(&mut headers, DIRECT_HEADER, Direct::Data.as_str());
    set(&mut headers, "content-length", 0);
    let mut path = format!("/v1/AUTH_{}", r.path.account());
    if let Some(c) = r.path.container() {
        path.push('/');
        path.push_str(
            &percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
        );
    }
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{path}", d.url());
        let headers = headers.clone();
        let method = r.method.clone();
        let id = d.id;
        async move {
            match cl.send(method, url, headers, None).await {
                Ok(resp) if !resp.status().is_server_error() => {
                    let _ = resp.bytes().await;
                    None
                }
                _ => Some(id),
            }
        }
    });
    note_missed(join_all(sends).await);
}

/// A container create (`PUT`) or delete (`DELETE`) applied here at `ts`, sent with that
/// timestamp to every other node, as [`meta_write`] sends a Swift container write: the S3
/// API's CreateBucket and DeleteBucket.
pub async fn container(
    cl: &Cluster,
    method: Method,
    account: &str,
    container: &str,
    ts: Timestamp,
) {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let mut headers = HeaderMap::new();
    set(&mut headers, "x-timestamp", ts);
    set(&mut headers, DIRECT_HEADER, Direct::Data.as_str());
    set(&mut headers, "content-length", 0);
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let path = format!("/v1/AUTH_{}/{}", enc(account), enc(container));
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{path}", d.url());
        let (headers, method, id) = (headers.clone(), method.clone(), d.id);
        async move {
            match cl.send(method, url, headers, None).await {
                Ok(resp) if !resp.status().is_server_error() => {
                    let _ = resp.bytes().await;
                    None
                }
                _ => Some(id),
            }
        }
    });
    note_missed(join_all(sends).await);
}

/// Creates an account on every other node (after a first login made it here), with the
/// same timestamp.
pub async fn account(cl: &Cluster, account: &str, ts: Timestamp) {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let mut headers = HeaderMap::new();
    set(&mut headers, "x-timestamp", ts);
    set(&mut headers, DIRECT_HEADER, Direct::Data.as_str());
    set(&mut headers, "content-length", 0);
    let path = format!(
        "/v1/AUTH_{}",
        percent_encoding::utf8_percent_encode(account, percent_encoding::NON_ALPHANUMERIC)
    );
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{path}", d.url());
        let headers = headers.clone();
        let id = d.id;
        async move {
            match cl.send(Method::PUT, url, headers, None).await {
                Ok(resp) if !resp.status().is_server_error() => {
                    let _ = resp.bytes().await;
                    None
                }
                _ => Some(id),
            }
        }
    });
    note_missed(join_all(sends).await);
}

/// Sends an explicit purge (`/internal/purge`) to every other node, so each node's change feed
/// carries it. Best effort: a node that misses it is also missing from its edges' view only
/// for this one purge.
pub async fn purge(cl: &Cluster, query: &std::collections::HashMap<String, String>) {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(query.iter())
        .finish();
    let mut headers = HeaderMap::new();
    set(&mut headers, DIRECT_HEADER, Direct::Data.as_str());
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{}?{q}", d.url(), outpost_proto::paths::PURGE);
        let headers = headers.clone();
        let id = d.id;
        async move {
            match cl.send(Method::POST, url, headers, None).await {
                Ok(resp) if !resp.status().is_server_error() => {
                    let _ = resp.bytes().await;
                    None
                }
                _ => Some(id),
            }
        }
    });
    note_missed(join_all(sends).await);
}

/// Sends a certificate-store write (`PUT /internal/certs/<domain>` or
/// `/internal/acme-challenges/<token>`, `path` with its body) to every other node, so edges
/// following any node get the certificate (each node records its own `cert-put`) and any
/// node can answer a pending challenge. Best effort: the replicator does not repair the
/// certificate tables; a node that missed a certificate gets it with the next renewal.
pub async fn cert_store_put(cl: &Cluster, path: &str, body: bytes::Bytes) {
    let ring = cl.ring();
    let me = cl.me(&ring);
    let mut headers = HeaderMap::new();
    set(&mut headers, DIRECT_HEADER, Direct::Data.as_str());
    set(&mut headers, "content-type", "application/json");
    let sends = ring.live_devices().filter(|d| Some(d.id) != me).map(|d| {
        let url = format!("{}{path}", d.url());
        let headers = headers.clone();
        let body = body.clone();
        async move {
            match cl
                .send(Method::PUT, url, headers, Some(reqwest::Body::from(body)))
                .await
            {
                Ok(resp) if resp.status().is_success() => {
                    let _ = resp.bytes().await;
                }
                Ok(resp) => {
                    tracing::warn!(node = d.id, status = %resp.status(), "certificate store write not applied by a node");
                }
                Err(e) => {
                    tracing::warn!(node = d.id, error = %e, "certificate store write did not reach a node");
                }
            }
        }
    });
    join_all(sends).await;
}
