//! `SIGHUP`: re-read the config file the origin started with and apply what can change in place.
//!
//! The file is parsed and validated with the startup code ([`RawConfig::load`],
//! [`RawConfig::validate`]); a file that fails is refused with one error line naming the key,
//! and the running config stays wholly in force.
//!
//! Applied in place: `log_level` (through the [`LogLevelHook`] the binary gives; `OUTPOST_LOG`,
//! when set, wins). Everything else needs a restart and gets one warning line per changed key,
//! keeping its running value: `listen`, `data_dir`, `[credentials]`, `internal_secret`,
//! `[[auth.users]]`, `[limits]` (the accept loop sizes its connection gate and hyper's head limits once),
//! `[cluster]`, `[sync]`, ... They are read from the one `Config` the store, the handlers and
//! the background tasks share; making them swappable is future work.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::level_filters::LevelFilter;

use crate::config::RawConfig;
use crate::metrics::Metrics;
use crate::Error;

/// Sets the process's log level; `false` when it was not applied because `OUTPOST_LOG` is set
/// (the binary owns the log subscriber).
pub type LogLevelHook = Arc<dyn Fn(LevelFilter) -> bool + Send + Sync>;

/// What the binary hands to [`crate::server::run`] so the origin can reload itself.
pub struct ReloadSource {
    /// The config file the origin started with.
    pub path: PathBuf,
    /// That file as it was parsed at start (the running config).
    pub raw: RawConfig,
    /// Applies `log_level`; `None`: the level is not reloadable.
    pub log_level: Option<LogLevelHook>,
}

/// What a successful reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reloadable things applied ("log level warn -> info").
    pub changed: Vec<String>,
    /// Keys that differ but need a restart, with the running value kept (if printable).
    pub need_restart: Vec<(String, Option<String>)>,
}

/// The config in force.
struct Running {
    /// The start file with every applied reload's reloadable parts.
    raw: RawConfig,
    log_level: LevelFilter,
}

/// Reloads the origin's config on demand (see the module docs).
pub struct Reloader {
    path: PathBuf,
    running: Mutex<Running>,
    log_hook: Option<LogLevelHook>,
    metrics: Metrics,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `src.path` counting into `metrics`.
    ///
    /// # Errors
    /// [`Error::Config`] when `src.raw` has a bad `log_level` (validated configs never do).
    pub fn new(src: ReloadSource, metrics: Metrics) -> Result<Reloader, Error> {
        let level = crate::config::parse_log_level(src.raw.log_level.as_deref())?;
        metrics.config_loaded(unix_now());
        Ok(Reloader {
            path: src.path,
            running: Mutex::new(Running {
                raw: src.raw,
                log_level: level,
            }),
            log_hook: src.log_level,
            metrics,
        })
    }

    /// Reloads and logs the outcome: one info line on success, one warning per key that needs
    /// a restart, one error line when refused; counts it in
    /// `outpost_origin_config_reloads_total`.
    pub fn reload_and_log(&self) {
        match self.reload() {
            Ok(applied) => {
                self.metrics.config_reload(true, unix_now());
                for (key, kept) in &applied.need_restart {
                    match kept {
                        Some(v) => tracing::warn!("{key} changed; needs a restart, keeping {v}"),
                        None => tracing::warn!(
                            "{key} changed; needs a restart, keeping the running value"
                        ),
                    }
                }
                let changed = if applied.changed.is_empty() {
                    "nothing".to_owned()
                } else {
                    applied.changed.join(", ")
                };
                tracing::info!(
                    "reloaded config from {}; changed: {changed}",
                    self.path.display()
                );
            }
            Err(e) => {
                self.metrics.config_reload(false, unix_now());
                tracing::error!(
                    "config reload from {} refused, the running config stays: {e}",
                    self.path.display()
                );
            }
        }
    }

    /// Reloads: validates the file, then applies the reloadable parts.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key that is wrong; nothing was applied.
    pub fn reload(&self) -> Result<Applied, Error> {
        let raw = RawConfig::load(&self.path)?;
        let new = raw.clone().validate()?;
        let mut state = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let before = toml_value(&state.raw)?;
        let after = toml_value(&raw)?;
        let mut keys = Vec::new();
        changed_keys("", Some(&before), Some(&after), &mut keys);
        let mut applied = Applied::default();
        for key in keys {
            if key != "log_level" {
                let kept = printable(&key, lookup(&before, &key));
                applied.need_restart.push((key, kept));
            }
        }
        if state.log_level != new.log_level {
            let note = match &self.log_hook {
                Some(set) if set(new.log_level) => String::new(),
                Some(_) => " (not applied: OUTPOST_LOG is set and wins)".to_owned(),
                None => " (not applied: no log control)".to_owned(),
            };
            applied.changed.push(format!(
                "log level {} -> {}{note}",
                state.log_level, new.log_level
            ));
            state.log_level = new.log_level;
        }
        state.raw.log_level = raw.log_level;
        Ok(applied)
    }
}

fn toml_value(raw: &RawConfig) -> Result<toml::Value, Error> {
    toml::Value::try_from(raw).map_err(|e| Error::Config {
        key: "config".into(),
        reason: format!("cannot compare with the running config: {e}"),
    })
}

/// Dotted keys whose values differ between `a` and `b`; tables are compared key by key,
/// anything else (arrays of tables included) as one value. (The edge's reload has the same
/// function; the crates share no utility crate.)
fn changed_keys(
    prefix: &str,
    a: Option<&toml::Value>,
    b: Option<&toml::Value>,
    out: &mut Vec<String>,
) {
    match (a, b) {
        (Some(toml::Value::Table(ta)), Some(toml::Value::Table(tb))) => {
            let mut names: Vec<&String> = ta.keys().chain(tb.keys()).collect();
            names.sort();
            names.dedup();
            for n in names {
                let key = if prefix.is_empty() {
                    n.clone()
                } else {
                    format!("{prefix}.{n}")
                };
                changed_keys(&key, ta.get(n), tb.get(n), out);
            }
        }
        (a, b) if a != b => out.push(if prefix.is_empty() {
            "config".to_owned()
        } else {
            prefix.to_owned()
        }),
        _ => {}
    }
}

fn lookup<'a>(v: &'a toml::Value, key: &str) -> Option<&'a toml::Value> {
    key.split('.').try_fold(v, |v, k| v.get(k))
}

/// The running value of `key` for a log line: short scalars only, never a secret.
fn printable(key: &str, v: Option<&toml::Value>) -> Option<String> {
    if key.contains("secret") || key.contains("key") || key.starts_with("credentials") {
        return None;
    }
    match v? {
        v @ (toml::Value::String(_)
        | toml::Value::Integer(_)
        | toml::Value::Float(_)
        | toml::Value::Boolean(_)) => {
            let s = v.to_string();
            (s.len() <= 200).then_some(s)
        }
        _ => None,
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"listen = "127.0.0.1:8080"
data_dir = "/tmp/x"
internal_secret = "0123456789abcdef"
[[auth.users]]
account = "demo"
user = "demo"
key = "k"
"#;

    fn reloader(dir: &std::path::Path, hook: Option<LogLevelHook>) -> (Reloader, PathBuf) {
        let path = dir.join("origin.toml");
        std::fs::write(&path, BASE).unwrap();
        let src = ReloadSource {
            path: path.clone(),
            raw: RawConfig::parse(BASE).unwrap(),
            log_level: hook,
        };
        (Reloader::new(src, Metrics::new()).unwrap(), path)
    }

    #[test]
    fn credentials_are_never_printed() {
        let v = toml::Value::String("peer-secret-0123456789".into());
        for k in ["credentials.peer", "credentials.edge", "internal_secret"] {
            assert_eq!(printable(k, Some(&v)), None, "{k}");
        }
        assert!(printable("listen", Some(&v)).is_some());
    }

    #[test]
    fn bad_files_are_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let (r, path) = reloader(dir.path(), None);
        std::fs::write(&path, format!("{BASE}oops = [")).unwrap();
        assert!(r.reload().is_err());
        std::fs::write(&path, BASE.replace("0123456789abcdef", "short")).unwrap();
        let e = r.reload().unwrap_err();
        assert!(e.to_string().contains("internal_secret"), "{e}");
        std::fs::write(&path, BASE).unwrap();
        assert_eq!(r.reload().unwrap(), Applied::default());
    }

    #[test]
    fn log_level_is_applied_and_the_rest_needs_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let hook: LogLevelHook = Arc::new(move |l| {
            s.lock().unwrap().push(l);
            true
        });
        let (r, path) = reloader(dir.path(), Some(hook));
        let text = format!("log_level = \"debug\"\n{}", BASE.replace("8080", "9090"))
            .replace("key = \"k\"", "key = \"k2\"")
            .replace(
                "[[auth.users]]",
                "[limits]\nmax_connections = 5\n[[auth.users]]",
            );
        std::fs::write(&path, text).unwrap();
        let a = r.reload().unwrap();
        assert_eq!(a.changed, ["log level info -> debug"]);
        let keys: Vec<&str> = a.need_restart.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["auth.users", "limits.max_connections", "listen"]);
        assert_eq!(a.need_restart[0].1, None, "users hold keys: never printed");
        assert_eq!(a.need_restart[2].1.as_deref(), Some("\"127.0.0.1:8080\""));
        assert_eq!(*seen.lock().unwrap(), [LevelFilter::DEBUG]);
        assert!(r.reload().unwrap().changed.is_empty());
    }
}
