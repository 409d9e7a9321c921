//! The request-path side of automatic HTTPS: HTTP-01 answers
//! (`/.well-known/acme-challenge/<token>`), the certificate status endpoint, the opt-in
//! HTTP → HTTPS redirect and the opt-in `Strict-Transport-Security` of custom domains.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::Result as PResult;

use super::endpoints::send;
use super::{host_of, Edge};
use crate::acme::STATUS_PATH;
use crate::feed::INTERNAL_HEADER;
use crate::routing::normalize_host;
use outpost_proto::certs::HTTP01_PREFIX;
use outpost_proto::headers;

/// True when the downstream connection is TLS.
pub(super) fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

/// True for the paths [`Edge::https_endpoint`] answers (the front path leaves them alone).
pub(super) fn is_https_endpoint(path: &str) -> bool {
    path == STATUS_PATH || path.starts_with(HTTP01_PREFIX)
}

/// `Strict-Transport-Security` on an HTTPS answer of a domain that opted in.
pub(super) fn add_hsts(resp: &mut ResponseHeader, max_age: Option<u64>) -> PResult<()> {
    if let Some(age) = max_age {
        resp.insert_header(
            http::header::STRICT_TRANSPORT_SECURITY,
            format!("max-age={age}"),
        )?;
    }
    Ok(())
}

impl Edge {
    /// Answers an HTTP-01 validation request or the status endpoint; `None` for other paths.
    pub(super) async fn https_endpoint(
        &self,
        session: &mut Session,
        path: &str,
    ) -> Option<PResult<bool>> {
        let certs = self.certs.as_ref()?;
        if path == STATUS_PATH {
            use subtle::ConstantTimeEq;
            let authorized = session
                .req_header()
                .headers
                .get(INTERNAL_HEADER)
                .is_some_and(|v| {
                    bool::from(v.as_bytes().ct_eq(self.cfg.internal_secret.as_bytes()))
                });
            if !authorized {
                return Some(
                    send(
                        session,
                        401,
                        &[(headers::ERROR, "unauthorized".into())],
                        "the certificate status needs the X-Outpost-Internal secret\n",
                    )
                    .await,
                );
            }
            let body = certs.status_json();
            return Some(
                send(
                    session,
                    200,
                    &[("content-type", "application/json".into())],
                    &body,
                )
                .await,
            );
        }
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        // Only names the origin maps are validated here: a challenge for any other Host is
        // not ours to answer.
        let host = normalize_host(&host_of(session));
        let mapped = self.catalog.get().domain(&host).is_some();
        let answer = match mapped {
            true => certs.answer_challenge(token).await,
            false => None,
        };
        Some(match answer {
            Some(key_authorization) => {
                tracing::debug!(host = %host, "answered an http-01 challenge");
                send(session, 200, &[], &key_authorization).await
            }
            None => {
                send(
                    session,
                    404,
                    &[(headers::ERROR, "not-found".into())],
                    "no such challenge\n",
                )
                .await
            }
        })
    }

    /// The `301` to HTTPS of a plain-HTTP request on a domain that opted in; `None` when no
    /// redirect applies (TLS already, not opted in, or no HTTPS listener).
    pub(super) async fn https_redirect(
        &self,
        session: &mut Session,
        host: &str,
    ) -> Option<PResult<bool>> {
        let host = normalize_host(host);
        if !self.catalog.get().https(&host).redirect || is_tls(session) {
            return None;
        }
        let tls = self.cfg.tls.as_ref()?;
        let port = match tls.listen.port() {
            443 => String::new(),
            p => format!(":{p}"),
        };
        let target = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let location = format!("https://{host}{port}{target}");
        Some(send(session, 301, &[("location", location)], "moved to HTTPS\n").await)
    }
}
