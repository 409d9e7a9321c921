//! Automatic HTTPS for custom domains: certificates ordered by ACME (RFC 8555, through the
//! `instant-acme` crate), stored once at the origin, served by every edge.
//!
//! - [`CertSync`] (every edge with `[tls]` in origin mode): loads the origin's certificates at
//!   start (`GET /internal/certs`), installs each one the change feed announces
//!   (`cert-put`) into the listener's [`CertStore`] without a restart (new handshakes get it,
//!   established connections keep theirs), answers HTTP-01 requests
//!   (`/.well-known/acme-challenge/<token>`) from its own pending orders or from the origin,
//!   and keeps the per-domain status (`/.outpost/certs`, metrics).
//! - [`order::run`] (edges with `[acme]`): for every domain mapped in the catalog, allowed by
//!   `domains_allowed` and not covered by a `[[tls.certs]]` entry, whose certificate is
//!   missing or past `renew_at` of its life, takes the origin's lease for the domain, orders,
//!   publishes the HTTP-01 answer through the origin (the CA may reach any edge), finalizes
//!   with a fresh key and stores the record at the origin. Failures back off exponentially
//!   (`retry_min` doubled up to `retry_max`) with the CA's or origin's reason kept.
//!
//! Invariants: a certificate is only ever ordered for a domain the catalog maps (the order
//! loop iterates the catalog, never a `Host`); the private key exists in the record sent to
//! and fetched from the origin and in the TLS key, nowhere else (not in the status, metrics
//! or logs: [`outpost_proto::certs::KeyPem`]'s `Debug` hides it).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use outpost_proto::certs::{CertIndex, CertRecord, ChallengeRecord};
use outpost_proto::paths;
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{CertificateDer, CryptoProvider, PrivateKeyDer};
use serde::Serialize;

use crate::feed::OriginClient;
use crate::tls::CertStore;
use crate::Error;

mod config;
pub mod order;

pub use config::{
    AcmeConfig, DomainPattern, RawAcme, LETS_ENCRYPT_PRODUCTION, LETS_ENCRYPT_STAGING,
};

/// The edge's certificate status endpoint (internal secret required).
pub const STATUS_PATH: &str = "/.outpost/certs";

/// What an edge knows of one domain's automatic certificate.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DomainStatus {
    /// `valid`, `expiring` (past `renew_at` of its life), `expired`, `missing`.
    pub state: &'static str,
    /// The served certificate's issuer.
    pub issuer: Option<String>,
    /// Its `notAfter` (epoch seconds).
    pub not_after: Option<u64>,
    /// When it was issued (epoch seconds): the last renewal.
    pub issued_at: Option<u64>,
    /// When this edge last installed a certificate for the domain (epoch seconds).
    pub installed_at: Option<u64>,
    /// The last failure of this edge's orders (or of loading the record), if the last attempt
    /// failed.
    pub last_error: Option<String>,
    /// When this edge last tried to order (epoch seconds).
    pub last_attempt: Option<u64>,
    /// Failed orders in a row.
    pub failures: u32,
    /// No order before (epoch seconds), after failures.
    pub retry_at: Option<u64>,
    /// Orders completed by this edge.
    pub orders: u64,
    /// Who held the lease when this edge last asked and did not get it.
    pub lease_holder: Option<String>,
}

/// The certificates of custom domains on one edge: installation, status, HTTP-01 answers.
pub struct CertSync {
    store: Arc<CertStore>,
    origin: OriginClient,
    status: Mutex<BTreeMap<String, DomainStatus>>,
    /// Pending HTTP-01 answers of this edge's own orders: token → key authorization.
    pending: Mutex<HashMap<String, String>>,
    renew_at: f64,
    /// The origin's index was loaded once (else the feed follower tries again).
    loaded: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for CertSync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertSync").finish_non_exhaustive()
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a PEM chain says of its leaf: `(not_before, not_after, issuer)`.
///
/// # Errors
/// [`Error::Cert`] when the chain holds no parsable certificate.
pub fn leaf_info(domain: &str, chain_pem: &str) -> Result<(u64, u64, String), Error> {
    let bad = |reason: String| Error::Cert {
        domain: domain.to_owned(),
        reason,
    };
    let pem = x509_parser::pem::Pem::iter_from_buffer(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| bad("no certificate in the chain".into()))?
        .map_err(|e| bad(format!("bad PEM: {e}")))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| bad(format!("bad certificate: {e}")))?;
    let v = cert.validity();
    let secs = |t: x509_parser::time::ASN1Time| u64::try_from(t.timestamp()).unwrap_or(0);
    let issuer = cert
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map_or_else(|| cert.issuer().to_string(), str::to_owned);
    Ok((secs(v.not_before), secs(v.not_after), issuer))
}

/// Builds the TLS key of a record (chain and PKCS#8 key in PEM).
fn certified_key(rec: &CertRecord) -> Result<Arc<CertifiedKey>, Error> {
    let bad = |reason: String| Error::Cert {
        domain: rec.domain.clone(),
        reason,
    };
    let mut chain = Vec::new();
    for pem in x509_parser::pem::Pem::iter_from_buffer(rec.cert_pem.as_bytes()) {
        let pem = pem.map_err(|e| bad(format!("bad certificate PEM: {e}")))?;
        chain.push(CertificateDer::from(pem.contents));
    }
    let key = x509_parser::pem::Pem::iter_from_buffer(rec.key_pem.expose().as_bytes())
        .next()
        .and_then(Result::ok)
        .filter(|p| p.label == "PRIVATE KEY")
        // Never the parser's message: it could quote the key.
        .ok_or_else(|| bad("the key is not a PKCS#8 PEM private key".into()))?;
    let key = PrivateKeyDer::Pkcs8(key.contents.into());
    pingora::tls::install_default_crypto_provider();
    let provider =
        CryptoProvider::get_default().ok_or_else(|| bad("no TLS crypto provider".into()))?;
    CertifiedKey::from_der(chain, key, provider)
        .map(Arc::new)
        .map_err(|e| bad(format!("the key does not fit the certificate: {e}")))
}

impl CertSync {
    /// A sync for `store`, fetching from `origin`; `renew_at` says when a certificate counts
    /// as expiring (its fraction of life).
    pub fn new(store: Arc<CertStore>, origin: OriginClient, renew_at: f64) -> CertSync {
        CertSync {
            store,
            origin,
            status: Mutex::new(BTreeMap::new()),
            pending: Mutex::new(HashMap::new()),
            renew_at,
            loaded: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The listener's store.
    pub fn store(&self) -> &CertStore {
        &self.store
    }

    /// Loads every certificate the origin holds (at start and after a feed resync). A record
    /// that fails to load is logged and kept out; the rest are installed.
    ///
    /// # Errors
    /// [`Error::Origin`] when the index cannot be read.
    ///
    /// # Cancel safety
    /// Cancelling leaves the certificates installed so far installed.
    pub async fn load_all(&self) -> Result<usize, Error> {
        let resp = self
            .origin
            .internal(reqwest::Method::GET, paths::CERTS)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| Error::Origin(format!("{}: {e}", paths::CERTS)))?;
        if !resp.status().is_success() {
            return Err(Error::Origin(format!(
                "{}: HTTP {}",
                paths::CERTS,
                resp.status()
            )));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Origin(format!("{}: {e}", paths::CERTS)))?;
        let index: CertIndex = outpost_proto::from_json(&body)
            .map_err(|e| Error::Origin(format!("{}: {e}", paths::CERTS)))?;
        self.loaded
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut n = 0;
        for c in index.certs {
            match self.fetch(&c.domain).await {
                Ok(()) => n += 1,
                Err(e) => tracing::warn!(domain = %c.domain, error = %e, "certificate not loaded"),
            }
        }
        Ok(n)
    }

    /// True once the origin's index was read ([`CertSync::load_all`]).
    pub fn loaded(&self) -> bool {
        self.loaded.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The origin's record of `domain`, `None` when it holds none.
    ///
    /// # Errors
    /// [`Error::Origin`].
    pub(crate) async fn get_record(&self, domain: &str) -> Result<Option<CertRecord>, Error> {
        let path = format!("{}/{domain}", paths::CERTS);
        let resp = self
            .origin
            .internal(reqwest::Method::GET, &path)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| Error::Origin(format!("{path}: {e}")))?;
        if resp.status() == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Error::Origin(format!("{path}: HTTP {}", resp.status())));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| Error::Origin(format!("{path}: {e}")))?;
        outpost_proto::from_json(&body)
            .map(Some)
            .map_err(|e| Error::Origin(format!("{path}: {e}")))
    }

    /// Fetches `domain`'s record from the origin and installs it (the feed's `cert-put`).
    ///
    /// # Errors
    /// [`Error::Origin`], [`Error::Cert`] (recorded in the domain's status too).
    pub async fn fetch(&self, domain: &str) -> Result<(), Error> {
        let r = match self.get_record(domain).await {
            Ok(Some(rec)) => self.install(&rec),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Err(e) = &r {
            self.with_status(domain, |s| s.last_error = Some(e.to_string()));
        }
        r
    }

    /// Installs a record in the listener's store and the status.
    ///
    /// # Errors
    /// [`Error::Cert`] for a record whose PEM or key does not load.
    pub fn install(&self, rec: &CertRecord) -> Result<(), Error> {
        let key = certified_key(rec)?;
        self.store.install(&rec.domain, key);
        let now = now_secs();
        self.with_status(&rec.domain, |s| {
            s.issuer = Some(rec.issuer.clone());
            s.not_after = Some(rec.not_after);
            s.issued_at = Some(rec.issued_at);
            s.installed_at = Some(now);
        });
        tracing::info!(domain = %rec.domain, not_after = rec.not_after, issuer = %rec.issuer, "certificate installed");
        Ok(())
    }

    /// Applies `f` to a domain's status (created if new).
    pub fn with_status<T>(&self, domain: &str, f: impl FnOnce(&mut DomainStatus) -> T) -> T {
        f(lock(&self.status).entry(domain.to_owned()).or_default())
    }

    /// A copy of a domain's status.
    pub fn status_of(&self, domain: &str) -> Option<DomainStatus> {
        lock(&self.status).get(domain).cloned()
    }

    /// True when `domain` has no certificate, or one past `renew_at` of its life at `now`.
    pub fn due(&self, domain: &str, now: u64) -> bool {
        lock(&self.status)
            .get(domain)
            .and_then(|s| Some((s.issued_at?, s.not_after?)))
            .is_none_or(|(from, to)| now >= renew_time(from, to, self.renew_at))
    }

    fn state_of(&self, s: &DomainStatus, now: u64) -> &'static str {
        match (s.issued_at, s.not_after) {
            (Some(_), Some(to)) if now >= to => "expired",
            (Some(from), Some(to)) if now >= renew_time(from, to, self.renew_at) => "expiring",
            (Some(_), Some(_)) => "valid",
            _ => "missing",
        }
    }

    /// Every domain's status with its state at `now`, as the status endpoint answers it.
    pub fn snapshot(&self, now: u64) -> BTreeMap<String, DomainStatus> {
        let mut all = lock(&self.status).clone();
        for s in all.values_mut() {
            s.state = self.state_of(s, now);
        }
        all
    }

    /// The status endpoint's JSON body: `{"now":..,"domains":{"<domain>":{...}}}`.
    pub fn status_json(&self) -> String {
        #[derive(Serialize)]
        struct Body {
            now: u64,
            domains: BTreeMap<String, DomainStatus>,
        }
        let now = now_secs();
        serde_json::to_string(&Body {
            now,
            domains: self.snapshot(now),
        })
        .unwrap_or_default()
    }

    /// Prometheus text: `outpost_edge_certs{state}` and
    /// `outpost_edge_cert_expiry_days{domain}`.
    pub fn metrics_text(&self) -> String {
        let now = now_secs();
        let all = self.snapshot(now);
        let mut by_state: BTreeMap<&str, usize> =
            ["valid", "expiring", "expired", "missing", "failing"]
                .into_iter()
                .map(|s| (s, 0))
                .collect();
        for s in all.values() {
            *by_state.entry(s.state).or_default() += 1;
            if s.last_error.is_some() {
                *by_state.entry("failing").or_default() += 1;
            }
        }
        let mut out = String::from(
            "# HELP outpost_edge_certs Automatic certificates of custom domains by state (failing: the last attempt failed).\n# TYPE outpost_edge_certs gauge\n",
        );
        for (state, n) in by_state {
            let _ = writeln!(out, "outpost_edge_certs{{state=\"{state}\"}} {n}");
        }
        out.push_str("# HELP outpost_edge_cert_expiry_days Days until the served automatic certificate expires.\n# TYPE outpost_edge_cert_expiry_days gauge\n");
        for (d, s) in &all {
            if let Some(to) = s.not_after {
                #[allow(clippy::cast_precision_loss)] // seconds to days: precision is ample
                let days = (to as f64 - now as f64) / 86_400.0;
                let _ = writeln!(
                    out,
                    "outpost_edge_cert_expiry_days{{domain=\"{d}\"}} {days:.3}"
                );
            }
        }
        out
    }

    /// Publishes an HTTP-01 answer of this edge's order: kept locally and at the origin, so
    /// whichever edge the CA reaches can answer.
    ///
    /// # Errors
    /// [`Error::Origin`] when the origin does not take it.
    pub(crate) async fn publish_challenge(&self, c: &ChallengeRecord) -> Result<(), Error> {
        lock(&self.pending).insert(c.token.clone(), c.key_authorization.clone());
        let path = format!("{}/{}", paths::ACME_CHALLENGES, c.token);
        let resp = self.send_json(reqwest::Method::PUT, &path, c).await?;
        if !resp.status().is_success() {
            return Err(Error::Origin(format!("{path}: HTTP {}", resp.status())));
        }
        Ok(())
    }

    /// Sends one wire record as JSON to an internal origin endpoint (10 s timeout); the
    /// answer, whatever its status.
    ///
    /// # Errors
    /// [`Error::Origin`] naming `path` when the record does not serialize or the origin is
    /// unreachable.
    pub(crate) async fn send_json<T: outpost_proto::Wire>(
        &self,
        method: reqwest::Method,
        path: &str,
        record: &T,
    ) -> Result<reqwest::Response, Error> {
        let body = outpost_proto::to_json(record).map_err(|e| Error::Origin(e.to_string()))?;
        self.origin
            .internal(method, path)
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(body)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| Error::Origin(format!("{path}: {e}")))
    }

    /// Forgets a local pending answer (the order finished).
    pub(crate) fn forget_challenge(&self, token: &str) {
        lock(&self.pending).remove(token);
    }

    /// The answer to `GET /.well-known/acme-challenge/<token>`: this edge's pending order's,
    /// else the origin's (another edge's order). `None`: unknown token.
    pub async fn answer_challenge(&self, token: &str) -> Option<String> {
        if !outpost_proto::certs::valid_token(token) {
            return None;
        }
        if let Some(k) = lock(&self.pending).get(token).cloned() {
            return Some(k);
        }
        let path = format!("{}/{token}", paths::ACME_CHALLENGES);
        let resp = self
            .origin
            .internal(reqwest::Method::GET, &path)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        if !resp.status().is_success() {
            return None;
        }
        let body = resp.bytes().await.ok()?;
        let c: ChallengeRecord = outpost_proto::from_json(&body).ok()?;
        Some(c.key_authorization)
    }
}

/// When a certificate valid from `from` to `to` is renewed: after `fraction` of its life.
pub fn renew_time(from: u64, to: u64, fraction: f64) -> u64 {
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )] // lifetimes are far below 2^52 seconds and non-negative
    let part = (to.saturating_sub(from) as f64 * fraction) as u64;
    from.saturating_add(part)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_at_two_thirds() {
        assert_eq!(renew_time(0, 90, 2.0 / 3.0), 60);
        assert_eq!(renew_time(1000, 1000, 0.5), 1000);
    }

    #[test]
    fn status_never_shows_a_key() {
        let s = DomainStatus {
            issuer: Some("Pebble".into()),
            ..DomainStatus::default()
        };
        let j = serde_json::to_string(&s).unwrap();
        assert!(!j.contains("PRIVATE"));
        assert!(j.contains("Pebble"));
    }
}
