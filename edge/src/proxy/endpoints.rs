//! The edge's built-in endpoints and small answers: `/metrics`, the pubcookie login, the
//! operators' purge, CORS preflights, and the plain-text responses errors get.

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result as PResult;

use super::{client_ip, host_of, now_secs, Edge, DENY_HEADER};
use crate::cors::{self, CorsOut, CorsRules};
use crate::feed::{PurgeTarget, INTERNAL_HEADER};
use crate::routing;
use crate::Error;
use outpost_proto::feed::ChangeKind;
use outpost_proto::headers;

/// Writes a small complete response.
pub(super) async fn send(
    session: &mut Session,
    status: u16,
    headers: &[(&'static str, String)],
    body: &str,
) -> PResult<bool> {
    let mut h = ResponseHeader::build(status, Some(headers.len() + 3))?;
    h.insert_header("content-type", "text/plain; charset=utf-8")?;
    h.insert_header("content-length", body.len().to_string())?;
    h.insert_header("cache-control", "no-store")?;
    for (k, v) in headers {
        if *k == "set-cookie" {
            h.append_header(*k, v.as_str())?;
        } else {
            h.insert_header(*k, v.as_str())?;
        }
    }
    let head = session.req_header().method == http::Method::HEAD;
    session.write_response_header(Box::new(h), head).await?;
    if !head {
        session
            .write_response_body(Some(Bytes::copy_from_slice(body.as_bytes())), true)
            .await?;
    }
    Ok(true)
}

pub(super) async fn send_error(session: &mut Session, e: &Error) -> PResult<bool> {
    send_error_cors(session, e, None).await
}

/// [`send_error`] with the request's CORS headers, so a player on another origin can read
/// why it was denied.
pub(super) async fn send_error_cors(
    session: &mut Session,
    e: &Error,
    cors: Option<&CorsOut>,
) -> PResult<bool> {
    let mut headers = vec![(headers::ERROR, e.code().to_owned())];
    if let Some(c) = cors {
        headers.extend(c.headers().iter().cloned());
    }
    if let Error::Denied { reason } = e {
        headers.push((DENY_HEADER, reason.as_str().to_owned()));
    }
    if matches!(e, Error::MethodNotAllowed) {
        headers.push(("allow", "GET, HEAD".to_owned()));
    }
    send(session, e.status().as_u16(), &headers, &format!("{e}\n")).await
}

impl Edge {
    /// `GET /metrics`: Prometheus text, with the ring version when the edge reads a ring.
    pub(super) async fn metrics_endpoint(&self, session: &mut Session) -> PResult<bool> {
        let mut body = self.metrics.render(self.storage.stats());
        if let Some(ring) = &self.ring {
            body.push_str(&format!(
                "# HELP outpost_edge_ring_version Version of the origin ring in use.\n\
                 # TYPE outpost_edge_ring_version gauge\n\
                 outpost_edge_ring_version {}\n",
                ring.ring().version
            ));
        }
        if let Some(certs) = &self.certs {
            body.push_str(&certs.metrics_text());
        }
        send(session, 200, &[], &body).await
    }

    /// `POST /.outpost/purge?account=A[&container=C[&object=O | &prefix=P]]` with the internal
    /// secret: drops entries from this edge only (the origin's `/internal/purge` fans out to
    /// every edge). Idempotent; answers how many entries were dropped.
    pub(super) async fn purge(&self, session: &mut Session) -> PResult<bool> {
        use subtle::ConstantTimeEq;
        let authorized = session
            .req_header()
            .headers
            .get(INTERNAL_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(self.cfg.internal_secret.as_bytes())));
        if !authorized {
            return send(
                session,
                401,
                &[(headers::ERROR, "unauthorized".into())],
                "purges need the X-Outpost-Internal secret\n",
            )
            .await;
        }
        if session.req_header().method != http::Method::POST {
            return send_error(session, &Error::MethodNotAllowed).await;
        }
        let query = session.req_header().uri.query().unwrap_or("").to_owned();
        let mut p: std::collections::HashMap<String, String> = std::collections::HashMap::new();
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            p.entry(k.into_owned()).or_insert_with(|| v.into_owned());
        }
        let get = |k: &str| p.get(k).filter(|v| !v.is_empty()).cloned();
        let Some(account) = get("account") else {
            return send(session, 400, &[], "account is required\n").await;
        };
        let target = match (get("container"), get("object"), get("prefix")) {
            (None, None, None) => PurgeTarget::Account,
            (Some(container), None, None) => PurgeTarget::Container { container },
            (Some(container), Some(object), None) => PurgeTarget::Object { container, object },
            (Some(container), None, Some(prefix)) => PurgeTarget::Prefix { container, prefix },
            _ => {
                return send(
                    session,
                    400,
                    &[],
                    "give container, then object or prefix (not both)\n",
                )
                .await
            }
        };
        let purger = crate::feed::Purger {
            storage: self.storage,
            log: &self.purge_log,
        };
        let n = crate::feed::purge_for(purger, &account, &ChangeKind::from(target));
        self.metrics.purged("api", n);
        let body = format!("{{\"purged\":{n}}}\n");
        send(
            session,
            200,
            &[("content-type", "application/json".into())],
            &body,
        )
        .await
    }

    /// Answers a CORS preflight at the edge: `200` with the allowed origin, methods and
    /// headers, or `401` (as Swift does) when the rules do not allow it.
    pub(super) async fn preflight(
        &self,
        session: &mut Session,
        rules: Option<&CorsRules>,
    ) -> PResult<bool> {
        let answer = rules.map(|r| r.preflight(&session.req_header().headers));
        match answer {
            Some(Ok(headers)) => {
                let mut h = ResponseHeader::build(200, Some(headers.len() + 4))?;
                h.insert_header("content-length", "0")?;
                h.insert_header("cache-control", "no-store")?;
                for (k, v) in headers {
                    h.insert_header(k, v)?;
                }
                if rules.is_some_and(CorsRules::varies) {
                    h.insert_header("vary", "Origin")?;
                }
                session.write_response_header(Box::new(h), true).await?;
                Ok(true)
            }
            Some(Err(cors::Refusal::Method)) => {
                send(session, 401, &[], "CORS preflight: method not allowed\n").await
            }
            _ => send(session, 401, &[], "CORS preflight: origin not allowed\n").await,
        }
    }

    pub(super) async fn login(&self, session: &mut Session) -> PResult<bool> {
        let query = session.req_header().uri.query().unwrap_or("").to_owned();
        let mut grant = None;
        let mut next = None;
        for (k, v) in form_urlencoded::parse(query.as_bytes()) {
            match k.as_ref() {
                "grant" => grant = Some(v.into_owned()),
                "next" => next = Some(v.into_owned()),
                _ => {}
            }
        }
        let Some(grant) = grant else {
            return send_error(
                session,
                &Error::BadLogin {
                    reason: "missing grant",
                },
            )
            .await;
        };
        let next = next.unwrap_or_else(|| "/".to_owned());
        if outpost_auth::pubcookie::safe_next(&next).is_err() {
            return send_error(
                session,
                &Error::BadLogin {
                    reason: "next must be a path on this site",
                },
            )
            .await;
        }
        let catalog = self.catalog.get();
        let host = routing::normalize_host(&host_of(session));
        let account = match routing::route(&catalog, &self.cfg.base_domain, &host, "/") {
            Ok(r) => r.path.account().to_owned(),
            Err(Error::NotFound { .. }) => match catalog.domain(&host) {
                Some(crate::catalog::DomainTarget::Account(a)) => a.clone(),
                _ => return send_error(session, &Error::UnknownHost { host }).await,
            },
            Err(e) => return send_error(session, &e).await,
        };
        let now = now_secs();
        let leeway = self.cfg.verify.leeway;
        let redeemed = outpost_auth::pubcookie::redeem_grant(
            &grant,
            &account,
            client_ip(session),
            now,
            leeway,
            catalog.as_ref(),
            &self.seen,
            &self.revocations,
        );
        let verified = match redeemed {
            Ok(g) => g,
            Err(e) => {
                self.metrics.denied(e.deny_reason().as_str());
                return send_error(
                    session,
                    &Error::Denied {
                        reason: e.deny_reason(),
                    },
                )
                .await;
            }
        };
        let key = catalog
            .account(&account)
            .and_then(|a| a.keys.signing_key(now));
        let issued = key
            .map(|k| outpost_auth::pubcookie::issue_session(&verified, k, now, self.cfg.session));
        let Some(Ok(issued)) = issued else {
            return send_error(
                session,
                &Error::Denied {
                    reason: outpost_auth::DenyReason::Invalid,
                },
            )
            .await;
        };
        let cookie = issued
            .cookie(&self.cfg.verify.cookie_name, "/", now)
            .to_string();
        send(
            session,
            302,
            &[("location", next), ("set-cookie", cookie)],
            "logged in\n",
        )
        .await
    }
}
