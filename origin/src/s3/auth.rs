//! Who an S3 request acts as: access keys from `[[s3.keys]]` (s3s verifies the SigV4 header or
//! presigned-query signature with the secret we return), mapped to the Swift identity of
//! their `[[auth.users]]` user; and the `Host` parser for virtual-hosted-style requests.

use std::collections::HashMap;
use std::sync::Arc;

use s3s::auth::{S3Auth, SecretKey};
use s3s::host::{S3Host, VirtualHost};
use s3s::{s3_error, S3Request, S3Result};

use crate::config::s3::S3Key;
use crate::request::Identity;

/// The configured access keys, by access key id.
#[derive(Debug, Clone, Default)]
pub struct Keys {
    by_id: Arc<HashMap<String, S3Key>>,
}

impl Keys {
    /// The keys of `[[s3.keys]]`.
    pub fn new(keys: &[S3Key]) -> Keys {
        Keys {
            by_id: Arc::new(
                keys.iter()
                    .map(|k| (k.access_key.clone(), k.clone()))
                    .collect(),
            ),
        }
    }

    fn get(&self, access_key: &str) -> Option<&S3Key> {
        self.by_id.get(access_key)
    }

    /// The caller of a request s3s has authenticated.
    ///
    /// # Errors
    /// `AccessDenied` for an anonymous request (s3s's default access check already refuses
    /// them; this keeps the invariant local), `InvalidAccessKeyId` for an unknown key.
    pub fn caller<T>(&self, req: &S3Request<T>) -> S3Result<Caller> {
        let Some(cred) = &req.credentials else {
            return Err(s3_error!(
                AccessDenied,
                "anonymous S3 requests are not served"
            ));
        };
        let key = self
            .get(&cred.access_key)
            .ok_or_else(|| s3_error!(InvalidAccessKeyId))?;
        Ok(Caller {
            account: key.account.clone(),
            ident: Identity::User {
                account: key.account.clone(),
                name: key.name.clone(),
                reseller: key.reseller,
            },
        })
    }
}

#[async_trait::async_trait]
impl S3Auth for Keys {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.get(access_key) {
            Some(k) => Ok(SecretKey::from(k.secret_key.as_str())),
            None => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
        }
    }
}

/// An authenticated S3 caller: its buckets are the containers of `account`, which it owns
/// (the same rights its Swift user has there).
#[derive(Debug, Clone)]
pub struct Caller {
    /// The account the key belongs to.
    pub account: String,
    /// The Swift identity the key acts as.
    pub ident: Identity,
}

/// Virtual-hosted-style parsing for `[s3] domain`: `Host: <bucket>.<domain>` names the bucket;
/// `Host: <domain>` and any other host are path-style (so `127.0.0.1:port` and `localhost`
/// keep working without DNS set-up).
#[derive(Debug, Clone)]
pub struct Domain {
    domain: String,
}

impl Domain {
    /// A parser for `domain` (lower case, validated by the config).
    pub fn new(domain: String) -> Domain {
        Domain { domain }
    }

    /// The bucket a `Host` value names, if it is `<bucket>.<domain>[:port]`.
    pub fn bucket_of<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = match host.rsplit_once(':') {
            Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => host,
        };
        let cut = name.len().checked_sub(self.domain.len() + 1)?;
        let (bucket, rest) = (name.get(..cut)?, name.get(cut..)?);
        (rest.starts_with('.')
            && rest[1..].eq_ignore_ascii_case(&self.domain)
            && !bucket.is_empty())
        .then_some(bucket)
    }
}

impl S3Host for Domain {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket_of(host) {
            Some(b) => VirtualHost::new(self.domain.as_str()).with_bucket(b),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts() {
        let d = Domain::new("s3.example.com".into());
        assert_eq!(d.bucket_of("photos.s3.example.com"), Some("photos"));
        assert_eq!(d.bucket_of("photos.S3.example.com:9000"), Some("photos"));
        assert_eq!(d.bucket_of("a.b.s3.example.com"), Some("a.b"));
        assert_eq!(d.bucket_of("s3.example.com"), None);
        assert_eq!(d.bucket_of(".s3.example.com"), None);
        assert_eq!(d.bucket_of("xs3.example.com"), None);
        assert_eq!(d.bucket_of("127.0.0.1:9000"), None);
        assert_eq!(d.bucket_of("localhost"), None);
    }
}
