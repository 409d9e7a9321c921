//! `[s3]`: the optional S3 API beside the Swift API (see [`crate::s3`]), on its own listen
//! address, with access keys mapped to `[[auth.users]]` identities. Every node of a cluster
//! may serve it (each with its own `[s3]`).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{err, User};
use crate::Error;

/// `[s3]` as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3 {
    /// Address the S3 API listens on. Required (port 0 picks a free port). A port of its own
    /// keeps S3 paths (`/<bucket>/<key>`) from ever being confused with Swift paths.
    pub listen: SocketAddr,
    /// Base domain of virtual-hosted-style requests: `Host: <bucket>.<domain>` names the
    /// bucket. Default: none (path-style only; `Host: <domain>` is always path-style).
    #[serde(default)]
    pub domain: Option<String>,
    /// Region reported by `GetBucketLocation` and `HeadBucket`. Default `us-east-1` (what
    /// clients assume when none is configured).
    #[serde(default)]
    pub region: Option<String>,
    /// Access keys, `[[s3.keys]]`.
    #[serde(default)]
    pub keys: Vec<RawS3Key>,
}

/// One `[[s3.keys]]` entry: an access key of an `[[auth.users]]` user.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawS3Key {
    /// The access key id (`AWS_ACCESS_KEY_ID`): 16 to 128 letters and digits.
    pub access_key: String,
    /// The secret (`AWS_SECRET_ACCESS_KEY`): at least 16 bytes.
    pub secret_key: String,
    /// Account of the user (without `AUTH_`).
    pub account: String,
    /// User name within the account: the key acts as `account:user`, which must be an
    /// `[[auth.users]]` entry.
    pub user: String,
}

/// The validated `[s3]` section.
#[derive(Debug, Clone)]
pub struct S3Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Virtual-hosted-style base domain (lower case).
    pub domain: Option<String>,
    /// Region name.
    pub region: String,
    /// Access keys.
    pub keys: Vec<S3Key>,
}

/// A validated access key and the identity it acts as.
#[derive(Clone)]
pub struct S3Key {
    /// Access key id.
    pub access_key: String,
    /// Secret.
    pub secret_key: String,
    /// Account.
    pub account: String,
    /// `account:user`.
    pub name: String,
    /// The user is a reseller admin (S3 requests still act in `account`).
    pub reseller: bool,
}

impl std::fmt::Debug for S3Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log line.
        f.debug_struct("S3Key")
            .field("access_key", &self.access_key)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.len() <= 253
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

impl RawS3 {
    /// Checks the section against the users it maps keys to.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad key (`s3.keys[1].user`, `s3.domain`, ...).
    pub fn validate(self, users: &[User]) -> Result<S3Config, Error> {
        let domain = match self.domain {
            Some(d) if !valid_domain(&d) => {
                return Err(err(
                    "s3.domain",
                    "must be a host name (letters, digits, '-' and '.'; no port, no scheme)",
                ))
            }
            d => d.map(|d| d.to_ascii_lowercase()),
        };
        let region = self.region.unwrap_or_else(|| "us-east-1".to_owned());
        if region.is_empty()
            || !region
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(err("s3.region", "must be letters, digits and '-'"));
        }
        let mut keys: Vec<S3Key> = Vec::with_capacity(self.keys.len());
        for (i, k) in self.keys.into_iter().enumerate() {
            let key = |f: &str| format!("s3.keys[{i}].{f}");
            if !(16..=128).contains(&k.access_key.len())
                || !k.access_key.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(err(
                    key("access_key"),
                    "must be 16 to 128 letters and digits",
                ));
            }
            if keys.iter().any(|o| o.access_key == k.access_key) {
                return Err(err(key("access_key"), "duplicate access key"));
            }
            if k.secret_key.len() < 16 || k.secret_key.chars().any(char::is_control) {
                return Err(err(
                    key("secret_key"),
                    "must be at least 16 bytes without control characters",
                ));
            }
            let Some(u) = users
                .iter()
                .find(|u| u.account == k.account && u.user == k.user)
            else {
                return Err(err(
                    key("user"),
                    format!(
                        "{}:{} is not an [[auth.users]] entry (S3 keys act as a Swift user)",
                        k.account, k.user
                    ),
                ));
            };
            if !u.admin && !u.reseller_admin {
                return Err(err(
                    key("user"),
                    format!(
                        "{}:{} is a plain user (admin = false); S3 keys act as an account admin",
                        k.account, k.user
                    ),
                ));
            }
            keys.push(S3Key {
                access_key: k.access_key,
                secret_key: k.secret_key,
                name: format!("{}:{}", k.account, k.user),
                account: k.account,
                reseller: u.reseller_admin,
            });
        }
        Ok(S3Config {
            listen: self.listen,
            domain,
            region,
            keys,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::RawConfig;

    const BASE: &str = r#"
        data_dir = "/tmp/x"
        internal_secret = "0123456789abcdef"
        [[auth.users]]
        account = "demo"
        user = "demo"
        key = "k"
    "#;

    fn check(s3: &str) -> Result<crate::config::Config, String> {
        RawConfig::parse(&format!("{BASE}\n{s3}"))
            .and_then(RawConfig::validate)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn keys_map_to_users() {
        let c = check(
            r#"[s3]
            listen = "127.0.0.1:0"
            domain = "S3.Example.com"
            [[s3.keys]]
            access_key = "AKIAEXAMPLE0000001"
            secret_key = "secret-secret-secret"
            account = "demo"
            user = "demo"
            "#,
        )
        .unwrap();
        let s3 = c.s3.unwrap();
        assert_eq!(s3.domain.as_deref(), Some("s3.example.com"));
        assert_eq!(s3.region, "us-east-1");
        assert_eq!(s3.keys[0].name, "demo:demo");
        assert!(!format!("{:?}", s3.keys[0]).contains("secret-secret"));
        assert!(check("").unwrap().s3.is_none());
    }

    #[test]
    fn bad_sections_name_the_key() {
        let key = |ak: &str, sk: &str, user: &str| {
            format!(
                "[s3]\nlisten = \"127.0.0.1:0\"\n[[s3.keys]]\naccess_key = \"{ak}\"\n\
                 secret_key = \"{sk}\"\naccount = \"demo\"\nuser = \"{user}\"\n"
            )
        };
        let e = check(&key("short", "secret-secret-secret", "demo")).unwrap_err();
        assert!(e.contains("s3.keys[0].access_key"), "{e}");
        let e = check(&key("AKIAEXAMPLE0000001", "short", "demo")).unwrap_err();
        assert!(e.contains("s3.keys[0].secret_key"), "{e}");
        let e = check(&key("AKIAEXAMPLE0000001", "secret-secret-secret", "nobody")).unwrap_err();
        assert!(e.contains("s3.keys[0].user"), "{e}");
        let e = check("[s3]\nlisten = \"127.0.0.1:0\"\nbogus = 1\n").unwrap_err();
        assert!(e.contains("bogus"), "{e}");
        let e = check("[s3]\nlisten = \"127.0.0.1:0\"\ndomain = \"http://x\"\n").unwrap_err();
        assert!(e.contains("s3.domain"), "{e}");
    }
}
