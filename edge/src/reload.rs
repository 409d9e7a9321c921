//! `SIGHUP`: re-read the config file the edge started with and apply what can change in place.
//!
//! A reload is all or nothing. The file is parsed and validated with the startup code
//! ([`RawConfig::load`], [`RawConfig::validate`]), every certificate and key file it names is
//! read again ([`SniResolver::load`], the `[generic.sigv4]` secret file), and only when all of
//! that succeeded is anything swapped in. A refused reload logs one error line naming the key or
//! file and leaves the running config wholly in force.
//!
//! What changes in place, and where the swappable state lives:
//! - `[[tls.certs]]` (certificates, keys, SNI names): the listener resolves through a
//!   [`CertStore`]; new handshakes get the new certificates, established connections keep
//!   theirs. The PEM files are re-read on every reload, so a certificate renewed under the same
//!   path is picked up without a config change.
//! - `[generic.sigv4]` (credentials, the secret file re-read every time): [`Edge::signer`].
//! - `log_level`: through the [`LogLevelHook`] the binary gives (it owns the subscriber);
//!   `OUTPOST_LOG`, when set, wins.
//!
//! Everything else needs a restart: each such key that differs from the running config gets one
//! warning line and keeps its running value (listen addresses, `[tls]` being added or removed,
//! `tls.h2`, the origin, `[cache]` — the memory tier's moka cache and the disk tier's index are
//! sized when built —, `[access]`, `[log]`, `[billing]`, `[limits]`, ...).
//!
//! [`Edge::signer`]: crate::proxy::Edge::signer

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use tracing::level_filters::LevelFilter;

use crate::config::RawConfig;
use crate::metrics::EdgeMetrics;
use crate::sigv4::UpstreamSigner;
use crate::tls::{CertStore, SniResolver};
use crate::Error;

/// Sets the process's log level; `false` when it was not applied because `OUTPOST_LOG` is set
/// (the binary owns the log subscriber).
pub type LogLevelHook = Arc<dyn Fn(LevelFilter) -> bool + Send + Sync>;

/// What the binary hands to [`crate::server::run`] so the edge can reload itself.
pub struct ReloadSource {
    /// The config file the edge started with.
    pub path: PathBuf,
    /// That file as it was parsed at start (the running config).
    pub raw: RawConfig,
    /// Applies `log_level`; `None`: the level is not reloadable (a test harness, say).
    pub log_level: Option<LogLevelHook>,
}

/// What a successful reload did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Reloadable things applied ("tls certs", "log level warn -> info", ...).
    pub changed: Vec<String>,
    /// Keys that differ but need a restart, with the running value kept (if printable).
    pub need_restart: Vec<(String, Option<String>)>,
}

/// Reloads the edge's config on demand (see the module docs).
pub struct Reloader {
    path: PathBuf,
    running: Mutex<Running>,
    log_hook: Option<LogLevelHook>,
    certs: Option<Arc<CertStore>>,
    signer: Arc<ArcSwapOption<UpstreamSigner>>,
    metrics: Arc<EdgeMetrics>,
}

/// The config in force.
struct Running {
    /// The start file with every applied reload's reloadable parts.
    raw: RawConfig,
    log_level: LevelFilter,
}

impl std::fmt::Debug for Reloader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reloader")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Reloader {
    /// A reloader of `src.path`. `certs` is the HTTPS listener's store (if `[tls]` is on),
    /// `signer` the proxy's [`crate::proxy::Edge::signer`].
    ///
    /// # Errors
    /// [`Error::Config`] when `src.raw` has a bad `log_level` (validated configs never do).
    pub fn new(
        src: ReloadSource,
        certs: Option<Arc<CertStore>>,
        signer: Arc<ArcSwapOption<UpstreamSigner>>,
        metrics: Arc<EdgeMetrics>,
    ) -> Result<Reloader, Error> {
        let level = crate::config::parse_log_level(src.raw.log_level.as_deref())?;
        metrics.config_loaded(unix_now());
        Ok(Reloader {
            path: src.path,
            running: Mutex::new(Running {
                raw: src.raw,
                log_level: level,
            }),
            log_hook: src.log_level,
            certs,
            signer,
            metrics,
        })
    }

    /// Reloads and logs the outcome: one info line on success, one warning per key that needs
    /// a restart, one error line when refused; counts it in
    /// `outpost_edge_config_reloads_total`.
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

    /// Reloads: validates everything, then applies the reloadable parts.
    ///
    /// # Errors
    /// [`Error::Config`] naming the key (or the file) that is wrong; nothing was applied.
    pub fn reload(&self) -> Result<Applied, Error> {
        let raw = RawConfig::load(&self.path)?;
        let new = raw.clone().validate()?;
        let mut state = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let Running {
            raw: running,
            log_level: level,
        } = &mut *state;

        // Everything that can fail comes before anything is swapped.
        let certs = match (&self.certs, &new.tls) {
            (Some(_), Some(t)) => Some(SniResolver::load(&t.certs)?),
            (None, Some(t)) => {
                // [tls] added: not applied until a restart, but still checked.
                SniResolver::load(&t.certs)?;
                None
            }
            (_, None) => None,
        };
        let signer = match (&running.generic, &raw.generic) {
            // Validated against the running upstream (its address is the fallback `Host`).
            (Some(old), Some(g)) => Some(
                g.sigv4
                    .clone()
                    .map(|s| s.validate(old.address))
                    .transpose()?,
            ),
            _ => None,
        };

        let before = toml_value(running)?;
        let after = toml_value(&raw)?;
        let mut keys = Vec::new();
        changed_keys("", Some(&before), Some(&after), &mut keys);
        let mut applied = Applied::default();
        for key in keys {
            if !reloadable(&key, running, &raw) {
                let kept = printable(&key, lookup(&before, &key));
                applied.need_restart.push((key, kept));
            }
        }

        if let (Some(store), Some(resolver)) = (&self.certs, certs) {
            store.replace(resolver);
            let n = new.tls.as_ref().map_or(0, |t| t.certs.len());
            applied.changed.push(format!("tls certs ({n} re-read)"));
            if let (Some(run_tls), Some(new_tls)) = (running.tls.as_mut(), raw.tls.as_ref()) {
                run_tls.certs.clone_from(&new_tls.certs);
            }
        }
        if let Some(signer) = signer {
            if signer.is_some() {
                applied
                    .changed
                    .push("generic.sigv4 credentials (re-read)".to_owned());
            } else if self.signer.load().is_some() {
                applied
                    .changed
                    .push("generic.sigv4 removed (requests go unsigned)".to_owned());
            }
            self.signer.store(signer.map(Arc::new));
            if let (Some(run_g), Some(new_g)) = (running.generic.as_mut(), raw.generic.as_ref()) {
                run_g.sigv4.clone_from(&new_g.sigv4);
            }
        }
        if *level != new.log_level {
            let note = match &self.log_hook {
                Some(set) if set(new.log_level) => String::new(),
                Some(_) => " (not applied: OUTPOST_LOG is set and wins)".to_owned(),
                None => " (not applied: no log control)".to_owned(),
            };
            applied
                .changed
                .push(format!("log level {} -> {}{note}", *level, new.log_level));
            *level = new.log_level;
        }
        running.log_level.clone_from(&raw.log_level);
        Ok(applied)
    }
}

/// Whether a changed key is applied by a reload.
fn reloadable(key: &str, running: &RawConfig, new: &RawConfig) -> bool {
    let under = |prefix: &str| {
        key == prefix
            || key
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    if under("log_level") {
        return true;
    }
    if under("tls.certs") {
        return running.tls.is_some() && new.tls.is_some();
    }
    if under("generic.sigv4") {
        return running.generic.is_some() && new.generic.is_some();
    }
    false
}

fn toml_value(raw: &RawConfig) -> Result<toml::Value, Error> {
    toml::Value::try_from(raw).map_err(|e| Error::Config {
        key: "config".into(),
        reason: format!("cannot compare with the running config: {e}"),
    })
}

/// Dotted keys whose values differ between `a` and `b`; tables are compared key by key,
/// anything else (arrays of tables included, `tls.certs`) as one value.
pub fn changed_keys(
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
    if key.contains("secret") || key.contains("key") {
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

/// Reloads on every `SIGHUP`, for as long as the process lives, on a thread of its own. The
/// handler is installed before this returns, so a `SIGHUP` sent after the edge printed its
/// address never takes the default action (terminating the process); pingora itself handles
/// only `SIGTERM`, `SIGINT` and `SIGQUIT`.
///
/// # Errors
/// [`Error::Io`] when the signal handler or the thread cannot be set up.
pub fn spawn_on_sighup(reloader: Reloader) -> Result<(), Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut hup = {
        let _in_rt = rt.enter();
        signal(SignalKind::hangup())?
    };
    std::thread::Builder::new()
        .name("outpost-reload".into())
        .spawn(move || {
            rt.block_on(async move {
                while hup.recv().await.is_some() {
                    reloader.reload_and_log();
                }
            });
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
        listen = "127.0.0.1:8081"
        [origin]
        address = "127.0.0.1:8080"
        internal_secret = "0123456789abcdef"
        [cache]
        memory = "64 MiB"
    "#;

    fn keys(a: &str, b: &str) -> Vec<String> {
        let (a, b): (toml::Value, toml::Value) =
            (toml::from_str(a).unwrap(), toml::from_str(b).unwrap());
        let mut out = Vec::new();
        changed_keys("", Some(&a), Some(&b), &mut out);
        out
    }

    #[test]
    fn changed_keys_name_leaves() {
        assert!(keys(BASE, BASE).is_empty());
        let b = format!(
            "log_level = \"debug\"\n{}",
            BASE.replace("8081", "9091").replace("64 MiB", "32 MiB")
        );
        assert_eq!(keys(BASE, &b), ["cache.memory", "listen", "log_level"]);
        assert_eq!(
            keys(BASE, &format!("{BASE}\n[tls]\nlisten = \"127.0.0.1:1\"")),
            ["tls"]
        );
    }

    fn raw(text: &str) -> RawConfig {
        RawConfig::parse(text).unwrap()
    }

    #[test]
    fn only_reloadable_keys_are_applied() {
        let tls = "[tls]\nlisten = \"127.0.0.1:8443\"\n[[tls.certs]]\ndomains = [\"a\"]\ncert = \"a.crt\"\nkey = \"a.key\"\n";
        let with_tls = raw(&format!("{BASE}\n{tls}"));
        let without = raw(BASE);
        assert!(reloadable("log_level", &without, &without));
        assert!(reloadable("tls.certs", &with_tls, &with_tls));
        assert!(!reloadable("tls.certs", &without, &with_tls), "[tls] added");
        assert!(!reloadable("tls.listen", &with_tls, &with_tls));
        assert!(!reloadable("tls.h2", &with_tls, &with_tls));
        assert!(!reloadable("cache.memory", &without, &without));
        assert!(!reloadable("log_levels", &without, &without));
        let generic = raw("[generic]\naddress = \"127.0.0.1:9\"");
        assert!(reloadable("generic.sigv4", &generic, &generic));
        assert!(!reloadable("generic.address", &generic, &generic));
    }

    #[test]
    fn secrets_are_never_printed() {
        let v: toml::Value = toml::from_str(BASE).unwrap();
        assert_eq!(
            printable("listen", lookup(&v, "listen")).as_deref(),
            Some("\"127.0.0.1:8081\"")
        );
        assert_eq!(
            printable(
                "origin.internal_secret",
                lookup(&v, "origin.internal_secret")
            ),
            None
        );
        assert_eq!(printable("origin", lookup(&v, "origin")), None, "tables");
    }

    fn reloader(dir: &std::path::Path, text: &str) -> (Reloader, PathBuf) {
        let path = dir.join("edge.toml");
        std::fs::write(&path, text).unwrap();
        let src = ReloadSource {
            path: path.clone(),
            raw: raw(text),
            log_level: None,
        };
        let r = Reloader::new(
            src,
            None,
            Arc::new(ArcSwapOption::empty()),
            Arc::new(EdgeMetrics::new()),
        )
        .unwrap();
        (r, path)
    }

    #[test]
    fn a_bad_file_is_refused_and_the_running_config_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (r, path) = reloader(dir.path(), BASE);
        std::fs::write(&path, format!("{BASE}\nbroken = [")).unwrap();
        assert!(r.reload().is_err());
        std::fs::write(
            &path,
            BASE.replace("\"64 MiB\"", "\"1 MiB\"\nmemory_object_max = \"2 MiB\""),
        )
        .unwrap();
        let e = r.reload().unwrap_err();
        assert!(e.to_string().contains("cache.memory_object_max"), "{e}");
        // The good file again: nothing differs from what runs.
        std::fs::write(&path, BASE).unwrap();
        assert_eq!(r.reload().unwrap(), Applied::default());
    }

    #[test]
    fn restart_keys_keep_warning_until_restarted() {
        let dir = tempfile::tempdir().unwrap();
        let (r, path) = reloader(dir.path(), BASE);
        let text = BASE
            .replace("8081", "9091")
            .replace("listen", "log_level = \"warn\"\nlisten");
        std::fs::write(&path, text).unwrap();
        for _ in 0..2 {
            let a = r.reload().unwrap();
            assert_eq!(
                a.need_restart,
                [("listen".to_owned(), Some("\"127.0.0.1:8081\"".to_owned()))]
            );
        }
        let a = r.reload().unwrap();
        assert!(a.changed.is_empty(), "log level applied once: {a:?}");
    }

    #[test]
    fn the_sigv4_secret_file_is_read_again_and_a_missing_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        std::fs::write(&secret, "first-secret\n").unwrap();
        let text = format!(
            "[generic]\naddress = \"127.0.0.1:9\"\n[generic.sigv4]\naccess_key_id = \"AK\"\n\
             secret_access_key_file = \"{}\"\n",
            secret.display()
        );
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = raw(&text).validate().unwrap();
        let signer = Arc::new(ArcSwapOption::from(cfg.upstream_signer.map(Arc::new)));
        let r = Reloader::new(
            ReloadSource {
                path,
                raw: raw(&text),
                log_level: None,
            },
            None,
            Arc::clone(&signer),
            Arc::new(EdgeMetrics::new()),
        )
        .unwrap();
        let before = signer.load_full().unwrap();
        std::fs::write(&secret, "second-secret\n").unwrap();
        let a = r.reload().unwrap();
        assert_eq!(a.changed, ["generic.sigv4 credentials (re-read)"]);
        let after = signer.load_full().unwrap();
        assert!(!Arc::ptr_eq(&before, &after), "a new signer is in force");
        std::fs::remove_file(&secret).unwrap();
        let e = r.reload().unwrap_err();
        assert!(
            e.to_string()
                .contains("generic.sigv4.secret_access_key_file"),
            "{e}"
        );
        assert!(Arc::ptr_eq(&after, &signer.load_full().unwrap()), "kept");
    }

    #[test]
    fn a_log_level_change_goes_through_the_hook() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("edge.toml");
        std::fs::write(&path, BASE).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let hook: LogLevelHook = Arc::new(move |l| {
            s.lock().unwrap().push(l);
            true
        });
        let r = Reloader::new(
            ReloadSource {
                path: path.clone(),
                raw: raw(BASE),
                log_level: Some(hook),
            },
            None,
            Arc::new(ArcSwapOption::empty()),
            Arc::new(EdgeMetrics::new()),
        )
        .unwrap();
        std::fs::write(&path, format!("log_level = \"debug\"\n{BASE}")).unwrap();
        let a = r.reload().unwrap();
        assert_eq!(a.changed, ["log level info -> debug"]);
        assert_eq!(*seen.lock().unwrap(), [LevelFilter::DEBUG]);
    }
}
