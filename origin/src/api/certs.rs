//! The certificate store of custom domains (automatic HTTPS): `/internal/certs[/<domain>]`,
//! `/internal/certs/<domain>/lease` and `/internal/acme-challenges/<token>`, for the edge,
//! admin and peer credentials only ([`Capability::Certs`]).
//!
//! Edges order certificates (ACME) and store them here once; the `cert-put` change sends
//! every edge to fetch the record. The private key is in the body of `GET`/`PUT` of one
//! domain and nowhere else: not in the index, the feed, logs (records' `Debug` omits it) or
//! metrics.
//!
//! In a cluster, certificate and challenge writes go on to every other node (each records its
//! own `cert-put`), so edges following any node get them; leases are per node.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};
use outpost_proto::certs::{
    normalize_domain, valid_token, CertIndex, CertRecord, ChallengeRecord, LeaseRequest,
};

use super::{blocking, Capability, Shared};
use crate::credentials::Role;
use crate::{Error, Result};
use outpost_proto::paths;

/// Largest certificate record accepted (a chain of a few certificates and a key).
const MAX_RECORD_BYTES: usize = 64 * 1024;
/// Longest lease an edge may take (an order runs seconds to minutes).
const MAX_LEASE_SECS: u64 = 3600;
/// Longest a challenge answer is kept.
const MAX_CHALLENGE_SECS: u64 = 3600;

fn json<T: outpost_proto::Wire>(status: StatusCode, v: &T) -> Response {
    match outpost_proto::to_json(v) {
        Ok(body) => (
            status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn domain_of(raw: &str) -> Result<String> {
    normalize_domain(raw).ok_or(Error::BadName {
        what: "domain",
        reason: "must be a DNS name (letters, digits, '-', dots)",
    })
}

async fn body_of<T: outpost_proto::Wire>(req: Request<Body>) -> Result<(T, bytes::Bytes)> {
    let raw = axum::body::to_bytes(req.into_body(), MAX_RECORD_BYTES)
        .await
        .map_err(|_| Error::TooLarge {
            max: MAX_RECORD_BYTES as u64,
        })?;
    let v = outpost_proto::from_json(&raw).map_err(|e| Error::BadCert {
        reason: e.to_string(),
    })?;
    Ok((v, raw))
}

/// In a cluster, a write that did not come from another node (a peer's `X-Outpost-Direct`)
/// goes on to every other node.
async fn send_on(st: &Shared, role: Role, headers: &HeaderMap, path: String, raw: bytes::Bytes) {
    let from_peer = role == Role::Peer && headers.contains_key(crate::cluster::DIRECT_HEADER);
    if let (Some(cl), false) = (st.cluster.as_ref(), from_peer) {
        crate::cluster::broadcast::cert_store_put(cl, &path, raw).await;
    }
}

fn done<T>(r: Result<T>, ok: impl FnOnce(T) -> Response) -> Response {
    match r {
        Ok(v) => ok(v),
        Err(e) => e.into_response(),
    }
}

/// `GET /internal/certs`: the [`CertIndex`] (domains, expiry, issuer; no PEM, no key).
pub async fn index(State(st): State<Shared>, headers: HeaderMap) -> Response {
    let r = async {
        st.require(&headers, Capability::Certs)?;
        blocking(&st, |s| s.db.cert_summaries()).await
    }
    .await;
    done(r, |certs| {
        json(
            StatusCode::OK,
            &CertIndex {
                format: outpost_proto::Format,
                certs,
            },
        )
    })
}

/// `GET /internal/certs/<domain>`: the domain's [`CertRecord`], key included; 404 without one.
pub async fn get_cert(
    State(st): State<Shared>,
    Path(domain): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        st.require(&headers, Capability::Certs)?;
        let d = domain_of(&domain)?;
        blocking(&st, move |s| s.db.get_cert(&d))
            .await?
            .ok_or(Error::NotFound {
                what: "certificate",
            })
    }
    .await;
    done(r, |rec| json(StatusCode::OK, &rec))
}

/// `PUT /internal/certs/<domain>`: stores a [`CertRecord`] for the domain (its `domain` must
/// match the path) and sends `cert-put` through the feed; `201`.
pub async fn put_cert(
    State(st): State<Shared>,
    Path(domain): Path<String>,
    req: Request<Body>,
) -> Response {
    let r = async {
        let role = st.require(req.headers(), Capability::Certs)?;
        let headers = req.headers().clone();
        let d = domain_of(&domain)?;
        let (rec, raw): (CertRecord, _) = body_of(req).await?;
        if normalize_domain(&rec.domain).as_deref() != Some(d.as_str()) {
            return Err(Error::BadCert {
                reason: format!("the record is for {:?}, the path names {d:?}", rec.domain),
            });
        }
        if rec.cert_pem.is_empty() || rec.key_pem.expose().is_empty() {
            return Err(Error::BadCert {
                reason: "cert_pem and key_pem must not be empty".into(),
            });
        }
        let rec = CertRecord { domain: d, ..rec };
        let ts = st.store.clock.now();
        tracing::info!(domain = %rec.domain, not_after = rec.not_after, issuer = %rec.issuer, "certificate stored");
        let path = format!("{}/{}", paths::CERTS, rec.domain);
        let seq = blocking(&st, move |s| s.db.put_cert(ts, &rec)).await?;
        send_on(&st, role, &headers, path, raw).await;
        Ok(seq)
    }
    .await;
    done(r, |_| StatusCode::CREATED.into_response())
}

/// `POST /internal/certs/<domain>/lease`: a [`LeaseRequest`]; `200` with the granted
/// [`outpost_proto::certs::LeaseAnswer`], `409` with the current holder's.
pub async fn lease(
    State(st): State<Shared>,
    Path(domain): Path<String>,
    req: Request<Body>,
) -> Response {
    let r = async {
        st.require(req.headers(), Capability::Certs)?;
        let d = domain_of(&domain)?;
        let (q, _): (LeaseRequest, _) = body_of(req).await?;
        if q.holder.is_empty() || q.holder.len() > 128 {
            return Err(Error::BadCert {
                reason: "holder must be 1 to 128 bytes".into(),
            });
        }
        let now = st.store.clock.wall_secs();
        let ttl = q.ttl_secs.min(MAX_LEASE_SECS);
        blocking(&st, move |s| s.db.lease_cert(&d, &q.holder, ttl, now)).await
    }
    .await;
    done(r, |a| {
        let status = if a.granted {
            StatusCode::OK
        } else {
            StatusCode::CONFLICT
        };
        json(status, &a)
    })
}

fn token_of(raw: &str) -> Result<String> {
    if valid_token(raw) {
        Ok(raw.to_owned())
    } else {
        Err(Error::BadName {
            what: "token",
            reason: "must be base64url",
        })
    }
}

/// `PUT /internal/acme-challenges/<token>`: publishes a [`ChallengeRecord`] (its token must
/// match the path; kept at most an hour); `201`.
pub async fn put_challenge(
    State(st): State<Shared>,
    Path(token): Path<String>,
    req: Request<Body>,
) -> Response {
    let r = async {
        let role = st.require(req.headers(), Capability::Certs)?;
        let headers = req.headers().clone();
        let t = token_of(&token)?;
        let (c, raw): (ChallengeRecord, _) = body_of(req).await?;
        if c.token != t {
            return Err(Error::BadCert {
                reason: "the record's token differs from the path's".into(),
            });
        }
        let now = st.store.clock.wall_secs();
        let c = ChallengeRecord {
            expires_at: c.expires_at.min(now + MAX_CHALLENGE_SECS),
            ..c
        };
        blocking(&st, move |s| s.db.put_challenge(&c, now)).await?;
        let path = format!("{}/{t}", paths::ACME_CHALLENGES);
        send_on(&st, role, &headers, path, raw).await;
        Ok(())
    }
    .await;
    done(r, |()| StatusCode::CREATED.into_response())
}

/// `GET /internal/acme-challenges/<token>`: the pending [`ChallengeRecord`]; 404 when unknown
/// or expired.
pub async fn get_challenge(
    State(st): State<Shared>,
    Path(token): Path<String>,
    headers: HeaderMap,
) -> Response {
    let r = async {
        st.require(&headers, Capability::Certs)?;
        let t = token_of(&token)?;
        let now = st.store.clock.wall_secs();
        blocking(&st, move |s| s.db.get_challenge(&t, now))
            .await?
            .ok_or(Error::NotFound { what: "challenge" })
    }
    .await;
    done(r, |c| json(StatusCode::OK, &c))
}
