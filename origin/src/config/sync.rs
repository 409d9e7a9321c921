//! `[sync]`: cross-datacenter replication settings, raw TOML → [`RawSync::validate`] →
//! [`SyncConfig`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;

/// `[sync]` as written.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSync {
    /// This datacenter's name, as the peers know it (their `[[sync.peers]] name`). Required.
    pub name: String,
    /// Run the shipping worker on this node. In a cluster every node receives from peers, and
    /// one node per DC (or a few: duplicates are harmless) ships. Default true.
    #[serde(default)]
    pub ship: Option<bool>,
    /// Longest wait for a new change when caught up (the feed wakes the worker earlier).
    /// Default `1s`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
    /// Feed entries read and shipped per batch (bounds memory). Default 256.
    #[serde(default)]
    pub batch: Option<usize>,
    /// Objects in flight to one peer at once. Default 8.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// First retry delay after a failed batch; doubles up to `retry_max`. Default `200ms`.
    #[serde(default, with = "humantime_serde")]
    pub retry_min: Option<Duration>,
    /// Longest retry delay. Default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub retry_max: Option<Duration>,
    /// Longest wait for a peer's response headers. Default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub timeout: Option<Duration>,
    /// Peer datacenters, `[[sync.peers]]`.
    #[serde(default)]
    pub peers: Vec<RawPeer>,
    /// Whole accounts replicated to peers, `[[sync.accounts]]`.
    #[serde(default)]
    pub accounts: Vec<RawAccountPolicy>,
}

/// One `[[sync.peers]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPeer {
    /// The peer's name (its own `[sync] name`); containers name it in
    /// `X-Container-Meta-Outpost-Sync-To`.
    pub name: String,
    /// Base URLs of the peer's origin nodes, tried in order.
    pub urls: Vec<String>,
    /// Key shared with the peer (both sides configure the same one), at least 16 bytes.
    pub realm_key: String,
}

/// One `[[sync.accounts]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccountPolicy {
    /// Account (without `AUTH_`).
    pub account: String,
    /// Peers every container of the account replicates to.
    pub peers: Vec<String>,
}

/// A validated peer.
#[derive(Debug, Clone)]
pub struct Peer {
    /// Name.
    pub name: String,
    /// Base URLs without a trailing slash.
    pub urls: Vec<String>,
    /// Realm key.
    pub realm_key: String,
}

/// The validated `[sync]` section.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// This DC's name.
    pub name: String,
    /// Ship from this node.
    pub ship: bool,
    /// Idle poll interval.
    pub interval: Duration,
    /// Feed entries per batch.
    pub batch: usize,
    /// Objects in flight per peer.
    pub concurrency: usize,
    /// First retry delay.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
    /// Peer response timeout.
    pub timeout: Duration,
    /// Peers.
    pub peers: Vec<Peer>,
    /// Account-level policies: account → peer names.
    pub accounts: Vec<(String, Vec<String>)>,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        reason: reason.into(),
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

impl RawSync {
    /// Checks every field and resolves defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad key (`sync.peers[1].realm_key`, ...).
    pub fn validate(self) -> Result<SyncConfig, Error> {
        if !valid_name(&self.name) {
            return Err(err(
                "sync.name",
                "must be 1-64 letters, digits, '-', '_' or '.'",
            ));
        }
        let positive = |key: &str, v: Option<Duration>, default: Duration| match v {
            Some(d) if d.is_zero() => Err(err(format!("sync.{key}"), "must be positive")),
            Some(d) => Ok(d),
            None => Ok(default),
        };
        let count = |key: &str, v: Option<usize>, default: usize, max: usize| match v {
            Some(0) => Err(err(format!("sync.{key}"), "must be positive")),
            Some(n) if n > max => Err(err(format!("sync.{key}"), format!("at most {max}"))),
            Some(n) => Ok(n),
            None => Ok(default),
        };
        let mut peers: Vec<Peer> = Vec::new();
        for (i, p) in self.peers.into_iter().enumerate() {
            let key = |f: &str| format!("sync.peers[{i}].{f}");
            if !valid_name(&p.name) {
                return Err(err(
                    key("name"),
                    "must be 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if p.name == self.name {
                return Err(err(key("name"), "a peer cannot have this DC's own name"));
            }
            if peers.iter().any(|q| q.name == p.name) {
                return Err(err(key("name"), "duplicate peer name"));
            }
            if p.urls.is_empty() {
                return Err(err(key("urls"), "needs at least one URL"));
            }
            let mut urls = Vec::new();
            for u in &p.urls {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    return Err(err(
                        key("urls"),
                        "each URL must start with http:// or https://",
                    ));
                }
                urls.push(u.trim_end_matches('/').to_owned());
            }
            if p.realm_key.len() < 16 {
                return Err(err(key("realm_key"), "must be at least 16 bytes"));
            }
            if http::HeaderValue::from_str(&p.realm_key).is_err() {
                return Err(err(key("realm_key"), "must be printable ASCII"));
            }
            peers.push(Peer {
                name: p.name,
                urls,
                realm_key: p.realm_key,
            });
        }
        let mut accounts = Vec::new();
        for (i, a) in self.accounts.into_iter().enumerate() {
            let key = |f: &str| format!("sync.accounts[{i}].{f}");
            crate::names::check_account(&a.account)
                .map_err(|e| err(key("account"), e.to_string()))?;
            if a.peers.is_empty() {
                return Err(err(key("peers"), "names no peer"));
            }
            if let Some(p) = a
                .peers
                .iter()
                .find(|p| !peers.iter().any(|q| &q.name == *p))
            {
                return Err(err(
                    key("peers"),
                    format!("{p:?} is not a [[sync.peers]] name"),
                ));
            }
            accounts.push((a.account, a.peers));
        }
        Ok(SyncConfig {
            name: self.name,
            ship: self.ship.unwrap_or(true),
            interval: positive("interval", self.interval, Duration::from_secs(1))?,
            batch: count("batch", self.batch, 256, 10_000)?,
            concurrency: count("concurrency", self.concurrency, 8, 256)?,
            retry_min: positive("retry_min", self.retry_min, Duration::from_millis(200))?,
            retry_max: positive("retry_max", self.retry_max, Duration::from_secs(30))?,
            timeout: positive("timeout", self.timeout, Duration::from_secs(30))?,
            peers,
            accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(t: &str) -> Result<SyncConfig, Error> {
        let raw: RawSync = toml::from_str(t).map_err(|e| err("sync", e.message().to_owned()))?;
        raw.validate()
    }

    const OK: &str = r#"
        name = "dc1"
        [[peers]]
        name = "dc2"
        urls = ["http://127.0.0.1:1/"]
        realm_key = "0123456789abcdef"
        [[accounts]]
        account = "demo"
        peers = ["dc2"]
    "#;

    #[test]
    fn defaults_resolve() {
        let c = parse(OK).unwrap();
        assert!(c.ship);
        assert_eq!(c.batch, 256);
        assert_eq!(c.interval, Duration::from_secs(1));
        assert_eq!(c.peers[0].urls, vec!["http://127.0.0.1:1".to_owned()]);
        assert_eq!(
            c.accounts,
            vec![("demo".to_owned(), vec!["dc2".to_owned()])]
        );
    }

    #[test]
    fn errors_name_the_key() {
        let e = parse(&OK.replace("0123456789abcdef", "short"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync.peers[0].realm_key"), "{e}");
        let e = parse(&OK.replace("peers = [\"dc2\"]", "peers = [\"dc9\"]"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync.accounts[0].peers"), "{e}");
        let e = parse(&OK.replace("http://127", "ftp://127"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync.peers[0].urls"), "{e}");
        let e = parse(&format!("batch = 0\n{OK}")).unwrap_err().to_string();
        assert!(e.contains("sync.batch"), "{e}");
        let e = parse(&format!("bogus = 1\n{OK}")).unwrap_err().to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = parse(&OK.replace("name = \"dc2\"", "name = \"dc1\""))
            .unwrap_err()
            .to_string();
        assert!(e.contains("sync.peers[0].name"), "{e}");
    }
}
