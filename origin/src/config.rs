//! Origin configuration: raw TOML → [`RawConfig::validate`] → [`Config`].
//!
//! Unknown keys are errors; every error names the key. Defaults are documented on each field.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::Error;

pub mod s3;
pub mod sync;

/// The config file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Address to listen on. Default `127.0.0.1:8080`; port 0 picks a free port.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Directory for objects, metadata and the change feed. Required.
    pub data_dir: PathBuf,
    /// Level of the process log on stderr: `off`, `error`, `warn`, `info`, `debug` or
    /// `trace`. Default `info`. The `OUTPOST_LOG` environment variable (a full filter such as
    /// `warn,outpost_origin=debug`), when set, wins over this key. Applied again on `SIGHUP`.
    #[serde(default)]
    pub log_level: Option<String>,
    /// Base URL clients reach this node at, used for `X-Storage-Url`. Default: derived from
    /// the request's `Host` header.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Largest object accepted in one PUT. Default `5 GiB` (Swift's); larger files use SLO.
    #[serde(default = "default_max_object")]
    pub max_object_size: ByteSize,
    /// Longest a client may go without sending any of a request body before it gets 408 and
    /// nothing is stored (Swift's `client_timeout`). Default `60s`.
    #[serde(default, with = "humantime_serde")]
    pub client_timeout: Option<Duration>,
    /// Legacy: one secret for every service role (edges, peers, operators). Prefer
    /// `[credentials]`; exactly one of the two is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_secret: Option<String>,
    /// `[credentials]`: a secret per service role (see [`crate::credentials`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<crate::credentials::RawCredentials>,
    /// Authentication (Swift auth v1).
    #[serde(default)]
    pub auth: RawAuth,
    /// Change feed.
    #[serde(default)]
    pub feed: RawFeed,
    /// Background removal of objects past `X-Delete-At`.
    #[serde(default)]
    pub expirer: RawExpirer,
    /// Cluster mode: absent (the default) runs a single node exactly as before.
    #[serde(default)]
    pub cluster: Option<RawCluster>,
    /// Cross-datacenter replication: absent (the default) replicates nothing to other DCs.
    #[serde(default)]
    pub sync: Option<sync::RawSync>,
    /// `[limits]`: request head and connection limits; keys and defaults in
    /// [`crate::limits::RawLimits`].
    #[serde(default)]
    pub limits: crate::limits::RawLimits,
    /// `[s3]`: the S3 API on its own address; absent (the default) serves Swift only. Keys
    /// in [`s3::RawS3`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<s3::RawS3>,
}

/// `[cluster]`: this node is one device of a replicated cluster described by a ring file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// Ring file built by `outpost ring ...`. Required.
    pub ring: PathBuf,
    /// `host:port` of this node's device in the ring. Default: the `listen` address.
    #[serde(default)]
    pub node: Option<String>,
    /// How often the ring file is checked for a new version. Default `2s`.
    #[serde(default, with = "humantime_serde")]
    pub ring_poll: Option<Duration>,
    /// Longest wait for another node's response headers before it counts as down (a handoff
    /// takes over). Default `5s`.
    #[serde(default, with = "humantime_serde")]
    pub node_timeout: Option<Duration>,
    /// Time between replication passes (`POST /internal/cluster/replicate` runs one at once).
    /// Default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub replication_interval: Option<Duration>,
    /// Age after which tombstones are dropped; must exceed the longest outage a node may come
    /// back from without resurrecting deleted objects. Default `7d`.
    #[serde(default, with = "humantime_serde")]
    pub reclaim_age: Option<Duration>,
    /// Time between auditor passes (`POST /internal/cluster/audit` runs one at once).
    /// Default `1h`.
    #[serde(default, with = "humantime_serde")]
    pub audit_interval: Option<Duration>,
    /// Most data the auditor reads per second. Default `10 MiB`.
    #[serde(default)]
    pub audit_rate: Option<ByteSize>,
    /// Most concurrent requests this node sends to other nodes. Default 64.
    #[serde(default)]
    pub max_peer_requests: Option<usize>,
    /// Age after which a data file no committed row names (a write that crashed between its
    /// rename and its row commit, or the replaced version of one that crashed after it) is
    /// removed by the replicator. Must exceed the longest time between a data file's rename
    /// and its row commit. Default `1h`.
    #[serde(default, with = "humantime_serde")]
    pub orphan_grace: Option<Duration>,
    /// Local IP address of the connections this node opens to other nodes (a multi-homed host
    /// picks its replication network; the fault tests tell nodes apart by it). Default: the
    /// system's choice.
    #[serde(default)]
    pub source_address: Option<std::net::IpAddr>,
}

/// `[auth]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// Lifetime of tokens from `/auth/v1.0`. Default `24h`.
    #[serde(default, with = "humantime_serde")]
    pub token_ttl: Option<Duration>,
    /// Users, `[[auth.users]]`.
    #[serde(default)]
    pub users: Vec<User>,
}

/// One `[[auth.users]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Account the user belongs to (without `AUTH_`).
    pub account: String,
    /// User name: clients log in as `account:user`.
    pub user: String,
    /// The user's key (password).
    pub key: String,
    /// A reseller admin may use every account and create or delete accounts. Default false.
    #[serde(default)]
    pub reseller_admin: bool,
    /// An account admin owns its account (tempauth's `.admin` group). Default true; `false`
    /// is tempauth's plain user: nothing without a container or account ACL naming it.
    #[serde(default = "default_true")]
    pub admin: bool,
}

fn default_true() -> bool {
    true
}

/// `[feed]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFeed {
    /// Changes kept for subscribers to resume from. Default 1,000,000.
    #[serde(default)]
    pub retain: Option<u64>,
}

/// `[expirer]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpirer {
    /// How often expired objects are removed. Default `10s`.
    #[serde(default, with = "humantime_serde")]
    pub interval: Option<Duration>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

fn default_max_object() -> ByteSize {
    ByteSize::gib(5)
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Process log level (`log_level`).
    pub log_level: tracing::level_filters::LevelFilter,
    /// Public base URL, if fixed.
    pub public_url: Option<String>,
    /// Max object size in bytes.
    pub max_object_size: u64,
    /// Longest pause allowed inside a request body.
    pub client_timeout: Duration,
    /// Service credentials (edges, peers, operators).
    pub credentials: crate::credentials::Credentials,
    /// The legacy single `internal_secret` is in use (the server warns at start).
    pub legacy_secret: bool,
    /// Token lifetime.
    pub token_ttl: Duration,
    /// Users.
    pub users: Vec<User>,
    /// Changes kept.
    pub feed_retain: u64,
    /// Expirer interval.
    pub expirer_interval: Duration,
    /// Cluster settings; `None` in single-node mode.
    pub cluster: Option<ClusterConfig>,
    /// Cross-datacenter replication; `None` without `[sync]`.
    pub sync: Option<sync::SyncConfig>,
    /// Request limits (`[limits]`).
    pub limits: crate::limits::Limits,
    /// The S3 API; `None` without `[s3]`.
    pub s3: Option<s3::S3Config>,
}

/// The validated `[cluster]` section.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Ring file.
    pub ring: PathBuf,
    /// `host:port` of this node in the ring.
    pub node: String,
    /// Ring file poll interval.
    pub ring_poll: Duration,
    /// Peer response timeout.
    pub node_timeout: Duration,
    /// Replication pass interval.
    pub replication_interval: Duration,
    /// Tombstone reclaim age.
    pub reclaim_age: Duration,
    /// Auditor pass interval.
    pub audit_interval: Duration,
    /// Auditor bytes per second.
    pub audit_rate: u64,
    /// Concurrent outgoing peer requests.
    pub max_peer_requests: usize,
    /// Age after which an orphan data file is removed.
    pub orphan_grace: Duration,
    /// Local address of connections to other nodes.
    pub source_address: Option<std::net::IpAddr>,
}

/// Resolves `log_level` (default `info`).
///
/// # Errors
/// [`Error::Config`] naming `log_level` for anything but a level name.
pub fn parse_log_level(level: Option<&str>) -> Result<tracing::level_filters::LevelFilter, Error> {
    const NAMES: &str = "must be one of off, error, warn, info, debug, trace";
    let Some(level) = level else {
        return Ok(tracing::level_filters::LevelFilter::INFO);
    };
    // LevelFilter's parser also takes digits; the key documents names only.
    if level.is_empty() || !level.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(err("log_level", NAMES));
    }
    level.parse().map_err(|_| err("log_level", NAMES))
}

pub(crate) fn err(key: impl Into<String>, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.into(),
        reason: reason.into(),
    }
}

impl RawConfig {
    /// Parses TOML text.
    ///
    /// # Errors
    /// [`Error::Config`] naming the offending key (unknown keys included).
    pub fn parse(text: &str) -> Result<Self, Error> {
        toml::from_str(text).map_err(|e| {
            let span = e
                .span()
                .map(|s| format!(" at byte {}", s.start))
                .unwrap_or_default();
            err("config", format!("{}{span}", e.message()))
        })
    }

    /// Reads and parses a file.
    ///
    /// # Errors
    /// [`Error::Config`] for an unreadable file or bad content.
    pub fn load(path: &Path) -> Result<Self, Error> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("config", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text)
    }

    /// Checks every field and resolves defaults.
    ///
    /// # Errors
    /// [`Error::Config`] naming the first bad key.
    pub fn validate(self) -> Result<Config, Error> {
        let legacy_secret =
            crate::credentials::RawCredentials::is_legacy(&self.credentials, &self.internal_secret);
        let credentials = crate::credentials::RawCredentials::validate(
            self.credentials,
            self.internal_secret,
            self.cluster.is_some(),
        )?;
        if let Some(u) = &self.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(err("public_url", "must start with http:// or https://"));
            }
        }
        for (i, u) in self.auth.users.iter().enumerate() {
            let key = |f: &str| format!("auth.users[{i}].{f}");
            crate::names::check_account(&u.account)
                .map_err(|e| err(key("account"), e.to_string()))?;
            if u.user.is_empty() || u.user.contains(':') {
                return Err(err(key("user"), "must be non-empty and contain no ':'"));
            }
            if u.key.is_empty() {
                return Err(err(key("key"), "must not be empty"));
            }
            if self.auth.users[..i]
                .iter()
                .any(|o| o.account == u.account && o.user == u.user)
            {
                return Err(err(key("user"), "duplicate account:user"));
            }
        }
        let max = self.max_object_size.as_u64();
        if max == 0 {
            return Err(err("max_object_size", "must be positive"));
        }
        let client_timeout = self.client_timeout.unwrap_or(Duration::from_secs(60));
        if client_timeout.is_zero() {
            return Err(err("client_timeout", "must be positive"));
        }
        let cluster = match self.cluster {
            None => None,
            Some(c) => Some(validate_cluster(c, self.listen)?),
        };
        let sync = match self.sync {
            None => None,
            Some(s) => Some(s.validate()?),
        };
        let limits = self.limits.validate()?;
        let s3 = match self.s3 {
            None => None,
            Some(s) => Some(s.validate(&self.auth.users)?),
        };
        let log_level = parse_log_level(self.log_level.as_deref())?;
        Ok(Config {
            log_level,
            limits,
            s3,
            cluster,
            sync,
            listen: self.listen,
            data_dir: self.data_dir,
            public_url: self.public_url.map(|u| u.trim_end_matches('/').to_owned()),
            max_object_size: max,
            client_timeout,
            credentials,
            legacy_secret,
            token_ttl: self
                .auth
                .token_ttl
                .unwrap_or(Duration::from_secs(24 * 3600)),
            users: self.auth.users,
            feed_retain: self.feed.retain.unwrap_or(1_000_000).max(1),
            expirer_interval: self.expirer.interval.unwrap_or(Duration::from_secs(10)),
        })
    }
}

fn validate_cluster(c: RawCluster, listen: SocketAddr) -> Result<ClusterConfig, Error> {
    let positive = |key: &str, v: Option<Duration>, default: Duration| match v {
        Some(d) if d.is_zero() => Err(err(format!("cluster.{key}"), "must be positive")),
        Some(d) => Ok(d),
        None => Ok(default),
    };
    let node = match c.node {
        Some(n) => n,
        None if listen.port() == 0 => {
            return Err(err(
                "cluster.node",
                "required when listen uses port 0 (the ring names nodes by host:port)",
            ))
        }
        None => listen.to_string(),
    };
    if !node.contains(':') {
        return Err(err("cluster.node", "must be host:port as in the ring"));
    }
    if c.ring.as_os_str().is_empty() {
        return Err(err("cluster.ring", "must name the ring file"));
    }
    let audit_rate = c.audit_rate.map_or(10 << 20, |b| b.as_u64());
    if audit_rate == 0 {
        return Err(err("cluster.audit_rate", "must be positive"));
    }
    let max_peer_requests = c.max_peer_requests.unwrap_or(64);
    if max_peer_requests == 0 {
        return Err(err("cluster.max_peer_requests", "must be positive"));
    }
    Ok(ClusterConfig {
        ring: c.ring,
        node,
        ring_poll: positive("ring_poll", c.ring_poll, Duration::from_secs(2))?,
        node_timeout: positive("node_timeout", c.node_timeout, Duration::from_secs(5))?,
        replication_interval: positive(
            "replication_interval",
            c.replication_interval,
            Duration::from_secs(30),
        )?,
        reclaim_age: positive(
            "reclaim_age",
            c.reclaim_age,
            Duration::from_secs(7 * 86_400),
        )?,
        audit_interval: positive(
            "audit_interval",
            c.audit_interval,
            Duration::from_secs(3600),
        )?,
        audit_rate,
        max_peer_requests,
        orphan_grace: positive("orphan_grace", c.orphan_grace, Duration::from_secs(3600))?,
        source_address: c.source_address,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
        data_dir = "/tmp/x"
        internal_secret = "0123456789abcdef"
        [[auth.users]]
        account = "demo"
        user = "demo"
        key = "k"
    "#;

    #[test]
    fn defaults_resolve() {
        let c = RawConfig::parse(OK).unwrap().validate().unwrap();
        assert_eq!(c.max_object_size, 5 << 30);
        assert_eq!(c.token_ttl, Duration::from_secs(86_400));
        assert_eq!(c.listen.port(), 8080);
        assert_eq!(c.client_timeout, Duration::from_secs(60));
    }

    #[test]
    fn users_are_admins_unless_admin_false() {
        let c = RawConfig::parse(OK).unwrap().validate().unwrap();
        assert!(c.users[0].admin, "the default keeps existing users owners");
        let plain = OK.replace("key = \"k\"", "key = \"k\"\nadmin = false");
        let c = RawConfig::parse(&plain).unwrap().validate().unwrap();
        assert!(!c.users[0].admin);
        let s3 = format!(
            "{plain}\n[s3]\nlisten = \"127.0.0.1:0\"\n[[s3.keys]]\naccess_key = \"AKIAEXAMPLE0000001\"\n\
             secret_key = \"secret-secret-secret\"\naccount = \"demo\"\nuser = \"demo\"\n"
        );
        let e = RawConfig::parse(&s3)
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("s3.keys[0].user") && e.contains("plain user"),
            "{e}"
        );
    }

    #[test]
    fn cluster_section_validates() {
        let c = RawConfig::parse(&format!("{OK}\n[cluster]\nring = \"/r.json\"\n"))
            .unwrap()
            .validate()
            .unwrap();
        let cl = c.cluster.unwrap();
        assert_eq!(cl.node, "127.0.0.1:8080");
        assert_eq!(cl.reclaim_age, Duration::from_secs(7 * 86_400));
        let e = RawConfig::parse(&format!(
            "{OK}\n[cluster]\nring = \"/r.json\"\nnode_timeout = \"0s\"\n"
        ))
        .unwrap()
        .validate()
        .unwrap_err()
        .to_string();
        assert!(e.contains("cluster.node_timeout"), "{e}");
        let e = RawConfig::parse(&format!("{OK}\n[cluster]\nring = \"/r\"\nbogus = 1\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        assert!(RawConfig::parse(OK)
            .unwrap()
            .validate()
            .unwrap()
            .cluster
            .is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let e = RawConfig::parse(&format!("{OK}\nbogus = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = RawConfig::parse(&OK.replace("0123456789abcdef", "short"))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("internal_secret"), "{e}");
        let e = RawConfig::parse(&OK.replace("account = \"demo\"", "account = \"\""))
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.users[0].account"), "{e}");
        let e = RawConfig::parse(&OK.replace("[[auth.users]]", "[[auth.users]]\nrole = 1"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("role"), "{e}");
    }
}
