//! Edge configuration: raw TOML → [`RawConfig::validate`] → [`Config`].
//!
//! Unknown keys are errors and every error names its key. Defaults are documented per field.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::cors::CorsRules;
use crate::Error;

/// The config file as written.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Plain-HTTP listen address. Default `127.0.0.1:8081`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Name of this edge in logs and purge acknowledgements. Default: the listen address.
    #[serde(default)]
    pub edge_id: Option<String>,
    /// Level of the process log on stderr: `off`, `error`, `warn`, `info`, `debug` or
    /// `trace`. Default `info`. The `OUTPOST_LOG` environment variable (a full filter such as
    /// `warn,outpost_edge=debug`), when set, wins over this key. Applied again on `SIGHUP`.
    #[serde(default)]
    pub log_level: Option<String>,
    /// `[origin]`: where the Outpost origin is. Required unless `[generic]` is set.
    #[serde(default)]
    pub origin: Option<RawOrigin>,
    /// `[generic]`: front any HTTP origin instead of an Outpost origin (public caching by the
    /// origin's `Cache-Control`, no signed access, no change feed). Default: none.
    #[serde(default)]
    pub generic: Option<RawGeneric>,
    /// Base domain: `<container>.<account>.<base_domain>` needs no setup, and `/v1/AUTH_a/c/o`
    /// paths work on the base domain itself. Default `localhost`.
    #[serde(default = "default_base_domain")]
    pub base_domain: String,
    /// `[cache]`.
    #[serde(default)]
    pub cache: RawCache,
    /// `[access]`.
    #[serde(default)]
    pub access: RawAccess,
    /// `[tls]`: an HTTPS listener (HTTP/2 + HTTP/1.1) with per-domain certificates. Default:
    /// none.
    #[serde(default)]
    pub tls: Option<RawTls>,
    /// `[log]`: access logs and their delivery into each account's `.outpost_logs`.
    #[serde(default)]
    pub log: crate::logs::RawLog,
    /// `[billing]`: per-account, per-minute egress records shipped to the origin.
    #[serde(default)]
    pub billing: crate::logs::RawBilling,
    /// `[limits]`: request head, timeout and connection limits; keys and defaults in
    /// [`crate::limits::RawLimits`].
    #[serde(default)]
    pub limits: crate::limits::RawLimits,
    /// `[acme]`: automatic certificates of mapped custom domains (needs `[tls]`); keys and
    /// defaults in [`crate::acme::RawAcme`]. Default: none.
    #[serde(default)]
    pub acme: Option<crate::acme::RawAcme>,
}

/// `[tls]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// HTTPS listen address. Required.
    pub listen: SocketAddr,
    /// Offer HTTP/2 by ALPN. Default true.
    #[serde(default = "yes")]
    pub h2: bool,
    /// Certificates, `[[tls.certs]]`; the first is the default for clients without SNI. They
    /// win over ACME certificates of the names they cover. Required unless `[acme]` is set.
    #[serde(default)]
    pub certs: Vec<CertSpec>,
}

fn yes() -> bool {
    true
}

/// One `[[tls.certs]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertSpec {
    /// Names served with this certificate (`img.example.com`, `*.cdn.example.com`).
    pub domains: Vec<String>,
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[origin]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOrigin {
    /// Origin address `host:port`. Required.
    pub address: SocketAddr,
    /// The origin's internal secret (edge credential). Required, at least 16 bytes.
    pub internal_secret: String,
    /// Connect timeout. Default `2s`.
    #[serde(default, with = "humantime_serde")]
    pub connect_timeout: Option<Duration>,
    /// Read timeout per upstream read. Default `30s`.
    #[serde(default, with = "humantime_serde")]
    pub read_timeout: Option<Duration>,
    /// The origin cluster's ring file: misses read objects straight from a storage node that
    /// holds them (replicas in turn, `address` last) instead of through `address`. Re-read
    /// when it changes. Default: none (everything goes to `address`).
    #[serde(default)]
    pub ring: Option<PathBuf>,
}

/// `[generic]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGeneric {
    /// Upstream address `host:port`. Required.
    pub address: SocketAddr,
    /// `Host` header sent upstream. Default: the client's.
    #[serde(default)]
    pub host: Option<String>,
    /// `[[generic.cors]]`: CORS answered at the edge for some domains. Default: none (CORS
    /// requests and preflights go to the upstream like any other).
    #[serde(default)]
    pub cors: Vec<RawCors>,
    /// `[generic.sigv4]`: sign upstream requests with AWS Signature V4 (a private S3 bucket
    /// as the upstream); keys and defaults in [`crate::sigv4::RawSigV4`]. Default: none
    /// (requests go unsigned).
    #[serde(default)]
    pub sigv4: Option<crate::sigv4::RawSigV4>,
}

/// One `[[generic.cors]]` entry.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Host names these rules apply to. Required.
    pub domains: Vec<String>,
    /// Origins allowed to read responses (`https://app.example.com`), or `["*"]` for any.
    /// Required.
    pub allow_origins: Vec<String>,
    /// Let the listed origins send credentials (cookies, `Authorization`). Not with `*`.
    /// Default false.
    #[serde(default)]
    pub allow_credentials: bool,
    /// Methods a preflight may ask for. Default `GET, HEAD, POST, PUT, PATCH, DELETE`.
    #[serde(default)]
    pub allow_methods: Option<Vec<String>>,
    /// Request headers a preflight may ask for. Default: whatever it asks for.
    #[serde(default)]
    pub allow_headers: Vec<String>,
    /// Response headers scripts may read, besides the edge's own list. Default none.
    #[serde(default)]
    pub expose_headers: Vec<String>,
    /// How long browsers may cache a preflight. Default: not sent.
    #[serde(default, with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

/// `[cache]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    /// Memory tier bound. Default `256 MiB`.
    #[serde(default)]
    pub memory: Option<ByteSize>,
    /// Largest body kept in the memory tier. Default `1 MiB`.
    #[serde(default)]
    pub memory_object_max: Option<ByteSize>,
    /// Disk tier directory. Required for the disk tier; default `./outpost-edge-cache`.
    #[serde(default)]
    pub disk_dir: Option<PathBuf>,
    /// Disk tier bound. Default `10 GiB`.
    #[serde(default)]
    pub disk: Option<ByteSize>,
    /// Freshness of responses that carry no explicit freshness (`Cache-Control: max-age`,
    /// `s-maxage`, `Expires`). With `[origin]` the default is `1h`: the change feed purges
    /// every changed object, so the edge may keep objects longer than a plain cache could.
    /// With `[generic]` there is no default: such responses get heuristic freshness from
    /// `Last-Modified` (RFC 9111 §4.2.2) or none at all, unless this key is set.
    #[serde(default, with = "humantime_serde")]
    pub default_ttl: Option<Duration>,
    /// Heuristic freshness as a fraction of `Date − Last-Modified`. Default `0.1`; between 0
    /// and 1.
    #[serde(default)]
    pub heuristic_fraction: Option<f64>,
    /// Upper bound of heuristic freshness. Default `1d`.
    #[serde(default, with = "humantime_serde")]
    pub heuristic_max: Option<Duration>,
    /// Serve stale while revalidating when the response does not say
    /// (`stale-while-revalidate`). Default `60s` with `[origin]`, `0s` with `[generic]`.
    /// Never applies under `no-cache`, `must-revalidate`, `proxy-revalidate` or `s-maxage`.
    #[serde(default, with = "humantime_serde")]
    pub stale_while_revalidate: Option<Duration>,
    /// Serve stale when the origin fails, when the response does not say (`stale-if-error`).
    /// Default `1d` with `[origin]`, `0s` with `[generic]`. Same exceptions.
    #[serde(default, with = "humantime_serde")]
    pub stale_if_error: Option<Duration>,
    /// Whether a request's `Cache-Control: no-cache` (or `Pragma: no-cache`) makes the edge
    /// revalidate with the origin, and its `no-store` keeps the response out of the cache.
    /// Default `false`: like nginx, Varnish and most CDNs the edge ignores them, so clients
    /// cannot send every request to the origin. `max-age`, `min-fresh`, `max-stale` and
    /// `only-if-cached` in requests are always honoured.
    #[serde(default)]
    pub honor_request_no_cache: Option<bool>,
    /// Answer fresh memory-tier hits from a pre-decoded head without pingora's cache phases
    /// (the hit fast path; same headers and bytes as the slow path). Default true; off only
    /// to compare the two.
    #[serde(default)]
    pub hot_path: Option<bool>,
    /// Objects larger than this are fetched from the origin and cached in slices of this
    /// size (by `Range` requests). Default `1 MiB`; between `64 KiB` and `64 MiB`.
    #[serde(default)]
    pub slice_size: Option<ByteSize>,
    /// Most byte ranges served in one request; more get the whole object (as RFC 9110
    /// allows). Default `64`; between 1 and 1000.
    #[serde(default)]
    pub max_ranges: Option<usize>,
}

/// `[access]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    /// Clock leeway for token times. Default `5s`.
    #[serde(default, with = "humantime_serde")]
    pub leeway: Option<Duration>,
    /// Accept sha1 Swift tempurls. Default false.
    #[serde(default)]
    pub allow_sha1: bool,
    /// Session idle timeout (sliding). Default `30m`.
    #[serde(default, with = "humantime_serde")]
    pub session_idle: Option<Duration>,
    /// Session hard lifetime. Default `12h`.
    #[serde(default, with = "humantime_serde")]
    pub session_max: Option<Duration>,
    /// Session cookie name. Default `outpost_session`.
    #[serde(default)]
    pub cookie_name: Option<String>,
    /// Grace past a credential's expiry for further ranges of an object whose earlier range
    /// it authorized (a video that started playing keeps playing). Default `0s` (off); at
    /// most `1h`.
    #[serde(default, with = "humantime_serde")]
    pub range_grace: Option<Duration>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8081))
}

fn default_base_domain() -> String {
    "localhost".into()
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Edge id.
    pub edge_id: String,
    /// Process log level (`log_level`).
    pub log_level: tracing::level_filters::LevelFilter,
    /// Origin (or generic upstream) address.
    pub origin: SocketAddr,
    /// Generic upstream mode: the `Host` to send (`None`: the client's).
    pub generic: Option<Option<String>>,
    /// Generic mode: CORS rules by host name (lower case).
    pub generic_cors: HashMap<String, Arc<CorsRules>>,
    /// Generic upstream mode: the SigV4 signer of upstream requests (`[generic.sigv4]`).
    pub upstream_signer: Option<crate::sigv4::UpstreamSigner>,
    /// Internal secret.
    pub internal_secret: String,
    /// The origin cluster's ring file, if the edge reads from storage nodes directly.
    pub ring: Option<PathBuf>,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Read timeout.
    pub read_timeout: Duration,
    /// Base domain, lower case, no trailing dot.
    pub base_domain: String,
    /// Memory tier bytes.
    pub memory_bytes: u64,
    /// Memory tier object max.
    pub memory_object_max: u64,
    /// Disk tier directory.
    pub disk_dir: PathBuf,
    /// Disk tier bytes.
    pub disk_bytes: u64,
    /// The HTTP caching rules (RFC 9111) and the operator's defaults.
    pub policy: crate::cache_policy::CachePolicy,
    /// Whether fresh memory-tier hits take the fast path.
    pub hot_path: bool,
    /// Slice size in bytes.
    pub slice_size: u64,
    /// Most ranges per request.
    pub max_ranges: usize,
    /// Verification options.
    pub verify: outpost_auth::VerifyOptions,
    /// Session policy.
    pub session: outpost_auth::pubcookie::SessionPolicy,
    /// Range grace past expiry (zero: off).
    pub range_grace: Duration,
    /// HTTPS listener, if any.
    pub tls: Option<RawTls>,
    /// Access logs and billing (`[log]`, `[billing]`).
    pub logs: crate::logs::LogSettings,
    /// Downstream request limits (`[limits]`).
    pub limits: crate::limits::Limits,
    /// Automatic certificates (`[acme]`), if on.
    pub acme: Option<crate::acme::AcmeConfig>,
}

fn err(key: &str, reason: impl Into<String>) -> Error {
    Error::Config {
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl RawConfig {
    /// Parses TOML text.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (unknown keys included).
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
    /// [`Error::Config`].
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
        let generic_cors = match &self.generic {
            Some(g) => cors_rules(&g.cors)?,
            None => HashMap::new(),
        };
        let upstream_signer = match &self.generic {
            Some(g) => g.sigv4.clone().map(|s| s.validate(g.address)).transpose()?,
            None => None,
        };
        let (origin, generic) = match (self.origin, self.generic) {
            (Some(o), None) => {
                if o.internal_secret.len() < 16 {
                    return Err(err("origin.internal_secret", "must be at least 16 bytes"));
                }
                (o, None)
            }
            (None, Some(g)) => (
                RawOrigin {
                    address: g.address,
                    internal_secret: String::new(),
                    connect_timeout: None,
                    read_timeout: None,
                    ring: None,
                },
                Some(g.host),
            ),
            (Some(_), Some(_)) => {
                return Err(err("generic", "set either [origin] or [generic], not both"))
            }
            (None, None) => {
                return Err(err(
                    "origin",
                    "is required (or [generic] for a plain HTTP origin)",
                ))
            }
        };
        if let Some(p) = &origin.ring {
            outpost_ring::Ring::load(p).map_err(|e| err("origin.ring", e.to_string()))?;
        }
        let base = self.base_domain.trim_end_matches('.').to_ascii_lowercase();
        if base.is_empty() || base.contains('/') || base.contains(':') {
            return Err(err(
                "base_domain",
                "must be a host name like cdn.example.com",
            ));
        }
        let memory = self.cache.memory.unwrap_or(ByteSize::mib(256)).as_u64();
        let object_max = self
            .cache
            .memory_object_max
            .unwrap_or(ByteSize::mib(1))
            .as_u64();
        if object_max > memory {
            return Err(err(
                "cache.memory_object_max",
                "must not exceed cache.memory",
            ));
        }
        let slice_size = self.cache.slice_size.unwrap_or(ByteSize::mib(1)).as_u64();
        if !(64 << 10..=64 << 20).contains(&slice_size) {
            return Err(err("cache.slice_size", "must be between 64 KiB and 64 MiB"));
        }
        let range_grace = self.access.range_grace.unwrap_or(Duration::ZERO);
        if range_grace > Duration::from_secs(3600) {
            return Err(err("access.range_grace", "must be at most 1h"));
        }
        let max_ranges = self.cache.max_ranges.unwrap_or(64);
        if !(1..=1000).contains(&max_ranges) {
            return Err(err("cache.max_ranges", "must be between 1 and 1000"));
        }
        let cookie_name = self
            .access
            .cookie_name
            .unwrap_or_else(|| outpost_auth::pubcookie::DEFAULT_COOKIE_NAME.to_owned());
        if cookie_name.is_empty()
            || !cookie_name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(err(
                "access.cookie_name",
                "must be letters, digits, '_' or '-'",
            ));
        }
        let idle = self
            .access
            .session_idle
            .unwrap_or(Duration::from_secs(1800));
        let max = self
            .access
            .session_max
            .unwrap_or(Duration::from_secs(12 * 3600));
        if idle.is_zero() || idle > max {
            return Err(err(
                "access.session_idle",
                "must be positive and at most access.session_max",
            ));
        }
        let acme = match (&self.acme, &self.tls, generic.is_some()) {
            (None, ..) => None,
            (Some(_), None, _) => {
                return Err(err("acme", "needs [tls]: the HTTPS listener it serves"))
            }
            (Some(_), _, true) => {
                return Err(err("acme", "needs [origin]: domains are mapped there"))
            }
            (Some(a), Some(_), false) => Some(
                a.validate(
                    self.cache
                        .disk_dir
                        .as_deref()
                        .unwrap_or(Path::new("./outpost-edge-cache")),
                )?,
            ),
        };
        if let Some(t) = &self.tls {
            if t.certs.is_empty() && acme.is_none() {
                return Err(err("tls.certs", "at least one certificate is needed"));
            }
            for (i, c) in t.certs.iter().enumerate() {
                if c.domains.is_empty() {
                    return Err(err(
                        &format!("tls.certs[{i}].domains"),
                        "must name at least one domain",
                    ));
                }
            }
            if t.listen == self.listen {
                return Err(err("tls.listen", "must differ from listen"));
            }
        }
        let logs = crate::logs::LogSettings::validate(&self.log, &self.billing)?;
        let log_level = parse_log_level(self.log_level.as_deref())?;
        let policy = cache_policy(&self.cache, generic.is_some())?;
        let limits = self.limits.validate()?;
        Ok(Config {
            acme,
            limits,
            logs,
            log_level,
            tls: self.tls,
            listen: self.listen,
            edge_id: self.edge_id.unwrap_or_else(|| self.listen.to_string()),
            origin: origin.address,
            generic,
            generic_cors,
            upstream_signer,
            internal_secret: origin.internal_secret,
            ring: origin.ring,
            connect_timeout: origin.connect_timeout.unwrap_or(Duration::from_secs(2)),
            read_timeout: origin.read_timeout.unwrap_or(Duration::from_secs(30)),
            base_domain: base,
            memory_bytes: memory,
            memory_object_max: object_max,
            disk_dir: self
                .cache
                .disk_dir
                .unwrap_or_else(|| PathBuf::from("./outpost-edge-cache")),
            disk_bytes: self.cache.disk.unwrap_or(ByteSize::gib(10)).as_u64(),
            policy,
            hot_path: self.cache.hot_path.unwrap_or(true),
            slice_size,
            max_ranges,
            range_grace,
            verify: outpost_auth::VerifyOptions {
                leeway: self
                    .access
                    .leeway
                    .map_or(outpost_auth::DEFAULT_LEEWAY_SECS, |d| d.as_secs()),
                allow_sha1: self.access.allow_sha1,
                cookie_name,
            },
            session: outpost_auth::pubcookie::SessionPolicy {
                idle_timeout: idle.as_secs(),
                max_lifetime: max.as_secs(),
            },
        })
    }
}

/// Resolves `log_level` (default `info`).
///
/// # Errors
/// [`Error::Config`] naming `log_level` for anything but a level name.
pub fn parse_log_level(level: Option<&str>) -> Result<tracing::level_filters::LevelFilter, Error> {
    let Some(level) = level else {
        return Ok(tracing::level_filters::LevelFilter::INFO);
    };
    // LevelFilter's parser also takes digits; the key documents names only.
    if level.is_empty() || !level.bytes().all(|b| b.is_ascii_alphabetic()) {
        return Err(err("log_level", LOG_LEVEL_NAMES));
    }
    level.parse().map_err(|_| err("log_level", LOG_LEVEL_NAMES))
}

const LOG_LEVEL_NAMES: &str = "must be one of off, error, warn, info, debug, trace";

/// Resolves `[[generic.cors]]` into rules by host.
fn cors_rules(raw: &[RawCors]) -> Result<HashMap<String, Arc<CorsRules>>, Error> {
    let mut out = HashMap::new();
    for (i, c) in raw.iter().enumerate() {
        let key = |k: &str| format!("generic.cors[{i}].{k}");
        let mut rules = CorsRules {
            credentials: c.allow_credentials,
            max_age: c.max_age,
            expose: c
                .expose_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            headers: c
                .allow_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            methods: c.allow_methods.clone().unwrap_or_else(|| {
                ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
                    .map(String::from)
                    .to_vec()
            }),
            ..CorsRules::default()
        };
        if c.allow_origins.is_empty() {
            return Err(err(
                &key("allow_origins"),
                "name at least one origin, or \"*\"",
            ));
        }
        for o in &c.allow_origins {
            if o == "*" {
                rules.any = true;
            } else {
                let n = crate::cors::normalize_origin(o).ok_or_else(|| {
                    err(
                        &key("allow_origins"),
                        format!("{o:?} is not an origin like https://app.example.com"),
                    )
                })?;
                rules.origins.push(n);
            }
        }
        if rules.any && rules.credentials {
            return Err(err(
                &key("allow_credentials"),
                "\"*\" never combines with credentials: list the origins",
            ));
        }
        if c.domains.is_empty() {
            return Err(err(&key("domains"), "name at least one host"));
        }
        let rules = Arc::new(rules);
        for d in &c.domains {
            out.insert(crate::routing::normalize_host(d), Arc::clone(&rules));
        }
    }
    Ok(out)
}

/// Resolves `[cache]`'s freshness keys; the defaults depend on the mode (see [`RawCache`]).
fn cache_policy(c: &RawCache, generic: bool) -> Result<crate::cache_policy::CachePolicy, Error> {
    let fraction = c.heuristic_fraction.unwrap_or(0.1);
    if !(0.0..=1.0).contains(&fraction) {
        return Err(err("cache.heuristic_fraction", "must be between 0 and 1"));
    }
    let (ttl, swr, sie) = if generic {
        (None, Duration::ZERO, Duration::ZERO)
    } else {
        (
            Some(Duration::from_secs(3600)),
            Duration::from_secs(60),
            Duration::from_secs(86_400),
        )
    };
    Ok(crate::cache_policy::CachePolicy {
        default_ttl: c.default_ttl.or(ttl),
        heuristic_fraction: fraction,
        heuristic_max: c.heuristic_max.unwrap_or(Duration::from_secs(86_400)),
        stale_while_revalidate: c.stale_while_revalidate.unwrap_or(swr),
        stale_if_error: c.stale_if_error.unwrap_or(sie),
        honor_request_no_cache: c.honor_request_no_cache.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OK: &str = r#"
        [origin]
        address = "127.0.0.1:8080"
        internal_secret = "0123456789abcdef"
    "#;

    #[test]
    fn defaults() {
        let c = RawConfig::parse(OK).unwrap().validate().unwrap();
        assert_eq!(c.memory_bytes, 256 << 20);
        assert_eq!(c.base_domain, "localhost");
        assert_eq!(c.verify.leeway, 5);
        assert_eq!(c.log_level, tracing::level_filters::LevelFilter::INFO);
    }

    #[test]
    fn log_level_is_a_level_name() {
        let level = |v: &str| {
            RawConfig::parse(&format!("log_level = \"{v}\"\n{OK}"))
                .and_then(RawConfig::validate)
                .map(|c| c.log_level)
        };
        assert_eq!(
            level("debug").unwrap(),
            tracing::level_filters::LevelFilter::DEBUG
        );
        assert_eq!(
            level("WARN").unwrap(),
            tracing::level_filters::LevelFilter::WARN
        );
        for bad in ["loud", "3", "", "info,outpost_edge=debug"] {
            let e = level(bad).unwrap_err();
            assert!(e.to_string().contains("log_level"), "{bad}: {e}");
        }
    }

    #[test]
    fn video_and_ring_keys_are_checked() {
        let bad = |extra: &str, key: &str| {
            let e = RawConfig::parse(&format!("{OK}\n{extra}"))
                .and_then(RawConfig::validate)
                .unwrap_err();
            assert!(e.to_string().contains(key), "{extra}: {e}");
        };
        bad("[cache]\nslice_size = \"1 KiB\"", "cache.slice_size");
        bad("[cache]\nslice_size = \"1 GiB\"", "cache.slice_size");
        bad("[cache]\nmax_ranges = 0", "cache.max_ranges");
        bad("[cache]\nmax_ranges = 5000", "cache.max_ranges");
        bad("[access]\nrange_grace = \"2h\"", "access.range_grace");
        let c = RawConfig::parse(OK).unwrap().validate().unwrap();
        assert_eq!((c.slice_size, c.max_ranges), (1 << 20, 64));
        assert_eq!(c.range_grace, Duration::ZERO);
        let e = RawConfig::parse(
            &OK.replace("[origin]", "[origin]\nring = \"/nonexistent/ring.json\""),
        )
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("origin.ring"), "{e}");
    }

    #[test]
    fn errors_name_keys() {
        let e = RawConfig::parse(&format!("{OK}\n[cache]\nmemroy = \"1 MiB\"")).unwrap_err();
        assert!(e.to_string().contains("memroy"), "{e}");
        let e = RawConfig::parse(&format!(
            "{OK}\n[cache]\nmemory = \"1 MiB\"\nmemory_object_max = \"2 MiB\""
        ))
        .unwrap()
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("cache.memory_object_max"), "{e}");
        let e = RawConfig::parse(&OK.replace("0123456789abcdef", "short"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("origin.internal_secret"), "{e}");
        let e = RawConfig::parse("listen = \"127.0.0.1:1\"")
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("origin"), "{e}");
        let g = RawConfig::parse("[generic]\naddress = \"127.0.0.1:9\"")
            .unwrap()
            .validate()
            .unwrap();
        assert_eq!(g.generic, Some(None));
        assert_eq!(
            g.policy.default_ttl, None,
            "generic mode invents no freshness"
        );
        assert_eq!(g.policy.stale_while_revalidate, Duration::ZERO);
        let o = RawConfig::parse(OK).unwrap().validate().unwrap();
        assert_eq!(o.policy.default_ttl, Some(Duration::from_secs(3600)));
        let e = RawConfig::parse(&format!("{OK}\n[cache]\nheuristic_fraction = 2.0"))
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(e.to_string().contains("cache.heuristic_fraction"), "{e}");
        let cors = |body: &str| {
            RawConfig::parse(&format!(
                "[generic]\naddress = \"127.0.0.1:9\"\n[[generic.cors]]\n{body}"
            ))
            .unwrap()
            .validate()
        };
        let e = cors("domains = [\"a\"]\nallow_origins = [\"*\"]\nallow_credentials = true")
            .unwrap_err();
        assert!(
            e.to_string().contains("generic.cors[0].allow_credentials"),
            "{e}"
        );
        let e = cors("domains = [\"a\"]\nallow_origins = [\"app.example.com\"]").unwrap_err();
        assert!(
            e.to_string().contains("generic.cors[0].allow_origins"),
            "{e}"
        );
        let c = cors("domains = [\"A.example\"]\nallow_origins = [\"https://x.example\"]").unwrap();
        assert!(c.generic_cors.contains_key("a.example"));
    }
}
