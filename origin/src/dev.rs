//! The embedded default behind `outpost dev`: a config with a demo account, and demo content.

use std::path::Path;

use bytes::Bytes;
use outpost_proto::meta;
use serde::{Deserialize, Serialize};

use crate::api::Shared;
use crate::config::{Config, RawConfig};
use crate::{Error, Result};

/// Demo account name.
pub const DEMO_ACCOUNT: &str = "demo";
/// Demo public container (`.r:*,.rlistings`).
pub const PUBLIC_CONTAINER: &str = "public";
/// Demo private container.
pub const PRIVATE_CONTAINER: &str = "private";
/// Id of the demo Outpost token key.
pub const DEMO_KEY_ID: &str = "dev1";

/// Secrets of a dev installation, generated once and kept in `<data>/dev-secrets.toml` so a
/// restart keeps working URLs and logins.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DevSecrets {
    /// The edge's credential (`[credentials] edge`).
    #[serde(default)]
    pub edge_secret: String,
    /// The operator's credential (`[credentials] admin`): `outpost billing report`, purges.
    #[serde(default)]
    pub admin_secret: String,
    /// The nodes' credential (`[credentials] peer`) of `outpost dev --nodes N`; generated on
    /// the first start that needs it.
    #[serde(default)]
    pub peer_secret: String,
    /// The single secret of installations made before `[credentials]`; replaced by the two
    /// above on the next start.
    #[serde(default, skip_serializing)]
    pub internal_secret: Option<String>,
    /// Key of the `demo:demo` user.
    pub user_key: String,
    /// Account tempurl key.
    pub tempurl_key: String,
    /// Secret of the Outpost token key `dev1`.
    pub token_secret: String,
    /// S3 access key id of the `demo:demo` user (generated on first start after S3 came).
    #[serde(default)]
    pub s3_access_key: String,
    /// Its S3 secret.
    #[serde(default)]
    pub s3_secret_key: String,
}

/// A random S3 access key id: 20 upper-case letters and digits, as AWS's look.
fn random_access_key() -> Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).map_err(|_| Error::Task)?;
    let tail: String = b
        .iter()
        .map(|x| char::from(ALPHABET[usize::from(x % 32)]))
        .collect();
    Ok(format!("OPDK{tail}"))
}

fn random_hex(n: usize) -> Result<String> {
    let mut b = vec![0u8; n];
    getrandom::fill(&mut b).map_err(|_| Error::Task)?;
    Ok(hex::encode(b))
}

impl DevSecrets {
    /// Loads the secrets of `data_dir`, creating them the first time.
    ///
    /// # Errors
    /// [`Error::Io`] / [`Error::Config`] for an unreadable or corrupt file.
    pub fn load_or_create(data_dir: &Path) -> Result<DevSecrets> {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("dev-secrets.toml");
        if path.exists() {
            let text = std::fs::read_to_string(&path)?;
            let mut s: DevSecrets = toml::from_str(&text).map_err(|e| Error::Config {
                key: path.display().to_string(),
                reason: e.message().to_owned(),
            })?;
            let mut changed = false;
            if s.edge_secret.is_empty() || s.admin_secret.is_empty() {
                s.edge_secret = random_hex(24)?;
                s.admin_secret = random_hex(24)?;
                changed = true;
            }
            if s.peer_secret.is_empty() {
                s.peer_secret = random_hex(24)?;
                changed = true;
            }
            if s.s3_access_key.is_empty() || s.s3_secret_key.is_empty() {
                s.s3_access_key = random_access_key()?;
                s.s3_secret_key = random_hex(20)?;
                changed = true;
            }
            if changed {
                let text = toml::to_string(&s).map_err(|_| Error::Task)?;
                std::fs::write(&path, text)?;
            }
            return Ok(s);
        }
        let s = DevSecrets {
            edge_secret: random_hex(24)?,
            admin_secret: random_hex(24)?,
            peer_secret: random_hex(24)?,
            internal_secret: None,
            user_key: random_hex(12)?,
            tempurl_key: random_hex(16)?,
            token_secret: random_hex(32)?,
            s3_access_key: random_access_key()?,
            s3_secret_key: random_hex(20)?,
        };
        let text = toml::to_string(&s).map_err(|_| Error::Task)?;
        std::fs::write(&path, text)?;
        Ok(s)
    }

    /// The origin config of the dev installation: the Swift API on `listen`, the S3 API on
    /// `s3_listen` with the demo user's key.
    ///
    /// # Errors
    /// [`Error::Config`] (should not happen: the values are ours).
    pub fn origin_config(
        &self,
        data_dir: &Path,
        listen: std::net::SocketAddr,
        s3_listen: std::net::SocketAddr,
    ) -> Result<Config> {
        let raw = RawConfig {
            listen,
            data_dir: data_dir.join("origin"),
            log_level: None,
            public_url: None,
            max_object_size: bytesize::ByteSize::gib(5),
            client_timeout: None,
            internal_secret: None,
            credentials: Some(crate::credentials::RawCredentials {
                edge: Some(crate::credentials::RawSecrets::One(
                    self.edge_secret.clone(),
                )),
                peer: None,
                admin: Some(crate::credentials::RawSecrets::One(
                    self.admin_secret.clone(),
                )),
            }),
            auth: crate::config::RawAuth {
                token_ttl: None,
                users: vec![crate::config::User {
                    account: DEMO_ACCOUNT.into(),
                    user: DEMO_ACCOUNT.into(),
                    key: self.user_key.clone(),
                    reseller_admin: false,
                    admin: true,
                }],
            },
            feed: Default::default(),
            expirer: Default::default(),
            cluster: None,
            sync: None,
            limits: Default::default(),
            s3: Some(crate::config::s3::RawS3 {
                listen: s3_listen,
                domain: None,
                region: None,
                keys: vec![crate::config::s3::RawS3Key {
                    access_key: self.s3_access_key.clone(),
                    secret_key: self.s3_secret_key.clone(),
                    account: DEMO_ACCOUNT.into(),
                    user: DEMO_ACCOUNT.into(),
                }],
            }),
        };
        raw.validate()
    }
}

/// Creates the demo account (mapped to the custom `domain`), its containers, keys and a few
/// objects (idempotent).
///
/// # Errors
/// Any storage error.
pub async fn seed(st: &Shared, secrets: &DevSecrets, domain: &str) -> Result<()> {
    let ts = st.store.clock.now();
    let s = secrets.clone();
    let domain = domain.to_owned();
    st.store
        .blocking(move |st| {
            st.db.ensure_account(DEMO_ACCOUNT, ts)?;
            let key = outpost_auth::TokenKeySpec {
                id: DEMO_KEY_ID.into(),
                secret: outpost_auth::Secret::new(s.token_secret.clone()),
                not_before: None,
                not_after: None,
            };
            st.db.update_account(
                DEMO_ACCOUNT,
                ts,
                &[
                    (
                        meta::ACCOUNT_TEMPURL_KEYS[0].into(),
                        Some(s.tempurl_key.clone()),
                    ),
                    (meta::ACCOUNT_DOMAINS.into(), Some(domain)),
                    (
                        meta::ACCOUNT_DEFAULT_CONTAINER.into(),
                        Some(PUBLIC_CONTAINER.into()),
                    ),
                ],
                Some(&[key]),
            )?;
            st.db.put_container(
                DEMO_ACCOUNT,
                PUBLIC_CONTAINER,
                ts,
                &[("x-container-read".into(), Some(".r:*,.rlistings".into()))],
            )?;
            st.db
                .put_container(DEMO_ACCOUNT, PRIVATE_CONTAINER, ts, &[])?;
            Ok(())
        })
        .await?;
    let hello = "Hello from Outpost: this file is public.\n";
    st.store
        .put_bytes(
            DEMO_ACCOUNT,
            PUBLIC_CONTAINER,
            "hello.txt",
            "text/plain",
            Bytes::from(hello),
        )
        .await?;
    let secret = "This file is private: you reached it with a signed URL or a session.\n";
    st.store
        .put_bytes(
            DEMO_ACCOUNT,
            PRIVATE_CONTAINER,
            "secret.txt",
            "text/plain",
            Bytes::from(secret),
        )
        .await?;
    Ok(())
}
