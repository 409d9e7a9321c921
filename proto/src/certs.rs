//! Certificates of custom domains, stored once at the origin for every edge (automatic HTTPS,
//! ACME): the record, the index an edge starts from, the ordering lease and the HTTP-01
//! challenge answers any edge can serve.
//!
//! Only service credentials with the certificate capability (edges, admins, peers) reach
//! these forms (`/internal/certs`, `/internal/acme-challenges`); they are not objects in any
//! account and never appear in Swift listings. The private key travels in exactly one form,
//! [`CertRecord`], whose `Debug` omits it ([`KeyPem`]); the feed's `cert-put` change and the
//! [`CertIndex`] name the domain only.
//!
//! ```
//! use outpost_proto::certs::{CertRecord, KeyPem};
//!
//! let r: CertRecord = outpost_proto::from_json(br#"{"format":1,"domain":"img.example.com",
//!     "cert_pem":"-----BEGIN CERTIFICATE-----...","key_pem":"-----BEGIN PRIVATE KEY-----...",
//!     "not_after":1700086400,"issued_at":1700000000,"issuer":"Pebble Intermediate CA"}"#)
//!     .unwrap();
//! assert_eq!(r.key_pem.expose(), "-----BEGIN PRIVATE KEY-----...");
//! assert!(!format!("{r:?}").contains("PRIVATE KEY"));
//! ```

use serde::{Deserialize, Serialize};

use crate::version::{Format, Wire};

/// Format version of [`CertRecord`].
pub const CERT_FORMAT: u32 = 1;
/// Format version of [`CertIndex`].
pub const CERT_INDEX_FORMAT: u32 = 1;
/// Format version of [`LeaseRequest`] and [`LeaseAnswer`].
pub const LEASE_FORMAT: u32 = 1;
/// Format version of [`ChallengeRecord`].
pub const CHALLENGE_FORMAT: u32 = 1;

/// A private key in PEM. `Debug` prints `KeyPem(..)`: a record logged by mistake never
/// carries its key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyPem(String);

impl KeyPem {
    /// Wraps a PEM key.
    pub fn new(pem: String) -> KeyPem {
        KeyPem(pem)
    }

    /// The PEM text, for the one place that loads it into a TLS key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for KeyPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyPem(..)")
    }
}

/// A domain's certificate and key, as `PUT`/`GET /internal/certs/<domain>` carry it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertRecord {
    /// [`CERT_FORMAT`].
    pub format: Format<CERT_FORMAT>,
    /// The domain (lower case, no trailing dot).
    pub domain: String,
    /// The certificate chain in PEM, leaf first.
    pub cert_pem: String,
    /// The leaf's private key in PEM (PKCS#8).
    pub key_pem: KeyPem,
    /// The leaf's `notAfter` (epoch seconds).
    pub not_after: u64,
    /// When it was issued, or its `notBefore` (epoch seconds).
    pub issued_at: u64,
    /// The leaf's issuer (common name, or the whole distinguished name).
    pub issuer: String,
}

impl Wire for CertRecord {
    const WHAT: &'static str = "certificate record";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[CERT_FORMAT];
}

/// What an edge knows of a stored certificate without fetching it (no key, no PEM).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSummary {
    /// The domain.
    pub domain: String,
    /// The leaf's `notAfter` (epoch seconds).
    pub not_after: u64,
    /// When it was issued (epoch seconds).
    pub issued_at: u64,
    /// The leaf's issuer.
    pub issuer: String,
}

/// `GET /internal/certs`: every stored certificate, for an edge that starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertIndex {
    /// [`CERT_INDEX_FORMAT`].
    pub format: Format<CERT_INDEX_FORMAT>,
    /// One entry per domain, by domain.
    pub certs: Vec<CertSummary>,
}

impl Wire for CertIndex {
    const WHAT: &'static str = "certificate index";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[CERT_INDEX_FORMAT];
}

/// `POST /internal/certs/<domain>/lease`: may `holder` order this domain's certificate for
/// `ttl_secs`? Granted when no lease is held, it expired, or `holder` holds it (renewed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseRequest {
    /// [`LEASE_FORMAT`].
    pub format: Format<LEASE_FORMAT>,
    /// Who asks (an edge id).
    pub holder: String,
    /// How long the lease lasts from now (seconds). `0` releases a lease `holder` holds.
    pub ttl_secs: u64,
}

impl Wire for LeaseRequest {
    const WHAT: &'static str = "lease request";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[LEASE_FORMAT];
}

/// The answer to a [`LeaseRequest`]: `200` when granted, `409` with the current holder
/// otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaseAnswer {
    /// [`LEASE_FORMAT`].
    pub format: Format<LEASE_FORMAT>,
    /// The domain.
    pub domain: String,
    /// Who holds the lease now.
    pub holder: String,
    /// Until when (epoch seconds).
    pub expires_at: u64,
    /// True when the asking holder has it.
    pub granted: bool,
}

impl Wire for LeaseAnswer {
    const WHAT: &'static str = "lease answer";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[LEASE_FORMAT];
}

/// `PUT`/`GET /internal/acme-challenges/<token>`: the key authorization an HTTP-01 request
/// for `/.well-known/acme-challenge/<token>` must get, published by the ordering edge so any
/// edge the CA reaches answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChallengeRecord {
    /// [`CHALLENGE_FORMAT`].
    pub format: Format<CHALLENGE_FORMAT>,
    /// The domain being validated.
    pub domain: String,
    /// The challenge token (base64url, the last path segment).
    pub token: String,
    /// The answer body (`<token>.<account key thumbprint>`): public by design, the CA
    /// fetches it over plain HTTP.
    pub key_authorization: String,
    /// When the origin forgets it (epoch seconds).
    pub expires_at: u64,
}

impl Wire for ChallengeRecord {
    const WHAT: &'static str = "challenge record";
    const FIELD: &'static str = "format";
    const KNOWN: &'static [u32] = &[CHALLENGE_FORMAT];
}

/// The path prefix HTTP-01 validation requests use (RFC 8555 §8.3).
pub const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Normalizes a domain for the certificate store: lower case, no trailing dot; `None` unless
/// it is a plain DNS name (letters, digits, `-`, dots between labels of 1 to 63 bytes, at
/// most 253 bytes): no wildcard, path or port.
pub fn normalize_domain(d: &str) -> Option<String> {
    let d = d.trim_end_matches('.').to_ascii_lowercase();
    let labels_ok = d.split('.').all(|l| {
        (1..=63).contains(&l.len())
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    });
    (!d.is_empty() && d.len() <= 253 && labels_ok).then_some(d)
}

/// True when `token` can be an ACME token (base64url characters only, 1 to 256 bytes).
pub fn valid_token(token: &str) -> bool {
    (1..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_plain_dns_names() {
        assert_eq!(
            normalize_domain("Img.Example.COM."),
            Some("img.example.com".into())
        );
        for bad in ["", "*.example.com", "a/b", "a:80", "-a.com", "a..b", "../x"] {
            assert_eq!(normalize_domain(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_are_base64url() {
        assert!(valid_token("abc-DEF_123"));
        assert!(!valid_token("a/b"));
        assert!(!valid_token(""));
        assert!(!valid_token("a.b"));
    }

    #[test]
    fn key_never_in_debug() {
        let k = KeyPem::new("-----BEGIN PRIVATE KEY-----\nsecret".into());
        assert_eq!(format!("{k:?}"), "KeyPem(..)");
    }
}
