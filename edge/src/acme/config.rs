//! `[acme]`: raw keys → [`RawAcme::validate`] → [`AcmeConfig`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Let's Encrypt's production directory (documented example).
pub const LETS_ENCRYPT_PRODUCTION: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// Let's Encrypt's staging directory (documented example; untrusted certificates, high limits).
pub const LETS_ENCRYPT_STAGING: &str = "https://acme-staging-v02.api.letsencrypt.org/directory";

/// `[acme]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAcme {
    /// The CA's ACME directory URL (`https://`). Required. Let's Encrypt:
    /// [`LETS_ENCRYPT_PRODUCTION`], [`LETS_ENCRYPT_STAGING`].
    pub directory: String,
    /// Contact e-mail address of the ACME account. Default: none.
    #[serde(default)]
    pub contact: Option<String>,
    /// Which mapped domains may get certificates: exact names, or `*.example.com` for any name
    /// under `example.com`. Default: every domain mapped at the origin. A domain must be
    /// mapped either way: no certificate is ever ordered for an arbitrary `Host`.
    #[serde(default)]
    pub domains_allowed: Option<Vec<String>>,
    /// Renew when this fraction of a certificate's life has passed. Default `0.6667` (2/3).
    #[serde(default)]
    pub renew_at: Option<f64>,
    /// PEM file of the root that signs the directory's TLS certificate, instead of the
    /// system roots (a test CA such as pebble). Default: system roots.
    #[serde(default)]
    pub ca_root: Option<PathBuf>,
    /// Where this edge keeps its ACME account key. Default `<cache.disk_dir>/acme`.
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// How often mapped domains are checked for a missing or due certificate. Default `10s`.
    #[serde(default, with = "humantime_serde")]
    pub check_interval: Option<Duration>,
    /// How long an order's lease at the origin lasts (one edge orders a domain at a time).
    /// Default `10m`.
    #[serde(default, with = "humantime_serde")]
    pub lease_ttl: Option<Duration>,
    /// First wait after a failed order; doubled per failure. Default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub retry_min: Option<Duration>,
    /// Longest wait between failed orders. Default `1h`.
    #[serde(default, with = "humantime_serde")]
    pub retry_max: Option<Duration>,
    /// How long one order may take (validation, issuance). Default `2m`.
    #[serde(default, with = "humantime_serde")]
    pub order_timeout: Option<Duration>,
}

/// A domain pattern of `domains_allowed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainPattern {
    /// This name only.
    Exact(String),
    /// Any name below this suffix (`*.example.com` → `example.com`), not the suffix itself.
    Below(String),
}

impl DomainPattern {
    /// True when `domain` (lower case) matches.
    pub fn matches(&self, domain: &str) -> bool {
        match self {
            DomainPattern::Exact(d) => d == domain,
            DomainPattern::Below(s) => domain
                .strip_suffix(s.as_str())
                .is_some_and(|head| head.len() > 1 && head.ends_with('.')),
        }
    }
}

/// The validated `[acme]`.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// Directory URL.
    pub directory: String,
    /// `mailto:` contact, if any.
    pub contact: Option<String>,
    /// `None`: every mapped domain.
    pub allowed: Option<Vec<DomainPattern>>,
    /// Fraction of the life after which a certificate is renewed.
    pub renew_at: f64,
    /// Root of the directory's TLS certificate.
    pub ca_root: Option<PathBuf>,
    /// Account key directory.
    pub state_dir: PathBuf,
    /// Check interval.
    pub check_interval: Duration,
    /// Lease length.
    pub lease_ttl: Duration,
    /// First retry wait.
    pub retry_min: Duration,
    /// Longest retry wait.
    pub retry_max: Duration,
    /// Order deadline.
    pub order_timeout: Duration,
}

impl AcmeConfig {
    /// True when `domain` may get a certificate by `domains_allowed`.
    pub fn allows(&self, domain: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|p| p.iter().any(|p| p.matches(domain)))
    }

    /// The wait after `failures` consecutive failures (at least one): `retry_min` doubled per
    /// further failure, at most `retry_max`.
    pub fn backoff(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(20);
        self.retry_min
            .saturating_mul(1 << doublings)
            .min(self.retry_max)
    }
}

fn err(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: format!("acme.{key}"),
        reason: reason.into(),
    }
}

impl RawAcme {
    /// Validates; `disk_dir` is the cache's, for the default state directory.
    ///
    /// # Errors
    /// [`Error::Config`] naming the `acme.*` key.
    pub fn validate(&self, disk_dir: &Path) -> Result<AcmeConfig, Error> {
        if !self.directory.starts_with("https://") {
            return Err(err("directory", "must be an https:// URL"));
        }
        let contact = match &self.contact {
            Some(c) if !c.contains('@') || c.contains(char::is_whitespace) => {
                return Err(err("contact", "must be an e-mail address"))
            }
            Some(c) => Some(format!("mailto:{}", c.trim_start_matches("mailto:"))),
            None => None,
        };
        let allowed = match &self.domains_allowed {
            None => None,
            Some(list) => Some(
                list.iter()
                    .map(|p| {
                        let p = p.trim().trim_end_matches('.').to_ascii_lowercase();
                        let (below, name) = match p.strip_prefix("*.") {
                            Some(rest) => (true, rest.to_owned()),
                            None => (false, p.clone()),
                        };
                        match outpost_proto::certs::normalize_domain(&name) {
                            Some(n) if below => Ok(DomainPattern::Below(n)),
                            Some(n) => Ok(DomainPattern::Exact(n)),
                            None => Err(err(
                                "domains_allowed",
                                format!("{p:?} is not a domain or *.domain"),
                            )),
                        }
                    })
                    .collect::<Result<Vec<_>, Error>>()?,
            ),
        };
        let renew_at = self.renew_at.unwrap_or(2.0 / 3.0);
        if !(renew_at > 0.0 && renew_at < 1.0) {
            return Err(err("renew_at", "must be between 0 and 1 (exclusive)"));
        }
        let retry_min = self.retry_min.unwrap_or(Duration::from_secs(30));
        let retry_max = self.retry_max.unwrap_or(Duration::from_secs(3600));
        if retry_min.is_zero() || retry_min > retry_max {
            return Err(err(
                "retry_min",
                "must be positive and at most acme.retry_max",
            ));
        }
        let check_interval = self.check_interval.unwrap_or(Duration::from_secs(10));
        if check_interval < Duration::from_millis(100) {
            return Err(err("check_interval", "must be at least 100ms"));
        }
        let lease_ttl = self.lease_ttl.unwrap_or(Duration::from_secs(600));
        if !(Duration::from_secs(10)..=Duration::from_secs(3600)).contains(&lease_ttl) {
            return Err(err("lease_ttl", "must be between 10s and 1h"));
        }
        if let Some(root) = &self.ca_root {
            let pem = std::fs::read_to_string(root)
                .map_err(|e| err("ca_root", format!("{}: {e}", root.display())))?;
            if !pem.contains("-----BEGIN CERTIFICATE-----") {
                return Err(err(
                    "ca_root",
                    format!("{} holds no PEM certificate", root.display()),
                ));
            }
        }
        Ok(AcmeConfig {
            directory: self.directory.clone(),
            contact,
            allowed,
            renew_at,
            ca_root: self.ca_root.clone(),
            state_dir: self
                .state_dir
                .clone()
                .unwrap_or_else(|| disk_dir.join("acme")),
            check_interval,
            lease_ttl,
            retry_min,
            retry_max,
            order_timeout: self.order_timeout.unwrap_or(Duration::from_secs(120)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(extra: &str) -> Result<AcmeConfig, Error> {
        let text = format!("directory = \"{LETS_ENCRYPT_STAGING}\"\n{extra}");
        let r: RawAcme = toml::from_str(&text).map_err(|e| Error::Config {
            key: "acme".into(),
            reason: e.to_string(),
        })?;
        r.validate(Path::new("/var/cache/outpost"))
    }

    #[test]
    fn defaults_and_patterns() {
        let c = raw("domains_allowed = [\"img.example.com\", \"*.cdn.example.org\"]").unwrap();
        assert!((c.renew_at - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(c.state_dir, Path::new("/var/cache/outpost/acme"));
        assert!(c.allows("img.example.com"));
        assert!(c.allows("a.b.cdn.example.org"));
        assert!(!c.allows("cdn.example.org"));
        assert!(!c.allows("xcdn.example.org"));
        assert!(!c.allows("other.example.com"));
        assert!(raw("").unwrap().allows("anything.example"));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = raw("retry_min = \"30s\"\nretry_max = \"1h\"").unwrap();
        assert_eq!(c.backoff(1), Duration::from_secs(30));
        assert_eq!(c.backoff(2), Duration::from_secs(60));
        assert_eq!(c.backoff(5), Duration::from_secs(480));
        assert_eq!(c.backoff(40), Duration::from_secs(3600));
    }

    #[test]
    fn bad_values_name_their_key() {
        for (extra, key) in [
            ("renew_at = 1.5", "acme.renew_at"),
            ("contact = \"nobody\"", "acme.contact"),
            ("domains_allowed = [\"a/b\"]", "acme.domains_allowed"),
            ("retry_min = \"2h\"\nretry_max = \"1h\"", "acme.retry_min"),
            ("lease_ttl = \"1s\"", "acme.lease_ttl"),
        ] {
            let e = raw(extra).unwrap_err().to_string();
            assert!(e.contains(key), "{extra}: {e}");
        }
        assert!(raw("ca_root = \"/nonexistent/root.pem\"")
            .unwrap_err()
            .to_string()
            .contains("acme.ca_root"));
        let r: RawAcme = toml::from_str("directory = \"http://ca\"").unwrap();
        assert!(r
            .validate(Path::new("."))
            .unwrap_err()
            .to_string()
            .contains("acme.directory"));
    }
}
