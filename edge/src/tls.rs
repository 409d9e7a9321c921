//! TLS for the downstream listener: per-domain certificates chosen by SNI (exact names and
//! `*.` wildcards of one label), with a default for clients that send no SNI.
//!
//! The listener holds a [`CertStore`], not a resolver: a reload (`SIGHUP`, see
//! [`crate::reload`]) loads a whole new [`SniResolver`] and swaps it in, so new handshakes get
//! the new certificates while established connections keep the ones they negotiated.
//!
//! Beside the configured (manual) certificates the store holds the automatic ones of custom
//! domains ([`crate::acme`]), swapped in one at a time as the change feed announces them.
//! Order of choice: a manual exact name, a manual wildcard, an automatic certificate of the
//! exact name, the manual default. Manual certificates therefore always win where they are
//! configured, and a reload never drops an automatic one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use pingora::tls::{
    load_certs_and_key_files, sign::CertifiedKey, ClientHello, CryptoProvider, ResolvesServerCert,
};

use crate::config::CertSpec;
use crate::Error;

/// Picks a certificate by the client's SNI name.
pub struct SniResolver {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SniResolver")
            .field("exact", &self.exact.keys().collect::<Vec<_>>())
            .field("wildcard", &self.wildcard.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn load_one(
    cert: &Path,
    key: &Path,
    index: usize,
    provider: &CryptoProvider,
) -> Result<Arc<CertifiedKey>, Error> {
    let bad = |field: &str, reason: String| Error::Config {
        key: format!("tls.certs[{index}].{field}"),
        reason,
    };
    let (cs, ks) = (
        cert.to_str()
            .ok_or_else(|| bad("cert", "path is not UTF-8".into()))?,
        key.to_str()
            .ok_or_else(|| bad("key", "path is not UTF-8".into()))?,
    );
    let loaded = load_certs_and_key_files(cs, ks)
        .map_err(|e| bad("cert", format!("cannot load {cs} / {ks}: {e}")))?;
    let Some((chain, private)) = loaded else {
        return Err(bad(
            "cert",
            format!("{cs} holds no certificate or {ks} no private key"),
        ));
    };
    let chain = chain.into_iter().map(|c| c.into_owned()).collect();
    CertifiedKey::from_der(chain, private.clone_key(), provider)
        .map(Arc::new)
        .map_err(|e| bad("key", format!("{ks}: {e}")))
}

impl SniResolver {
    /// Loads every certificate. The first one is the default.
    ///
    /// # Errors
    /// [`Error::Config`] naming `tls.certs[i].cert` or `.key`.
    pub fn load(certs: &[CertSpec]) -> Result<SniResolver, Error> {
        pingora::tls::install_default_crypto_provider();
        let provider = CryptoProvider::get_default().ok_or_else(|| Error::Config {
            key: "tls".into(),
            reason: "no TLS crypto provider".into(),
        })?;
        let mut r = SniResolver {
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            default: None,
        };
        for (i, c) in certs.iter().enumerate() {
            let ck = load_one(&c.cert, &c.key, i, provider)?;
            if r.default.is_none() {
                r.default = Some(Arc::clone(&ck));
            }
            for d in &c.domains {
                let d = d.trim_end_matches('.').to_ascii_lowercase();
                match d.strip_prefix("*.") {
                    Some(suffix) => r.wildcard.insert(suffix.to_owned(), Arc::clone(&ck)),
                    None => r.exact.insert(d, Arc::clone(&ck)),
                };
            }
        }
        Ok(r)
    }

    /// The certificate for a server name.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        match name {
            Some(n) => self
                .covering(&n.to_ascii_lowercase())
                .or_else(|| self.default.clone()),
            None => self.default.clone(),
        }
    }

    /// The configured certificate naming `name` (lower case) exactly or by wildcard; not the
    /// default.
    pub fn covering(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        if let Some(c) = self.exact.get(name) {
            return Some(Arc::clone(c));
        }
        let (_, parent) = name.split_once('.')?;
        self.wildcard.get(parent).map(Arc::clone)
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

/// The listener's certificates, swappable while it runs: every handshake resolves through the
/// [`SniResolver`] stored last.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<SniResolver>,
    /// Automatic certificates by exact domain (lower case).
    automatic: ArcSwap<HashMap<String, Arc<CertifiedKey>>>,
}

impl CertStore {
    /// A store serving `resolver`.
    pub fn new(resolver: SniResolver) -> CertStore {
        CertStore {
            current: ArcSwap::from_pointee(resolver),
            automatic: ArcSwap::from_pointee(HashMap::new()),
        }
    }

    /// Serves `resolver` from the next handshake on (automatic certificates stay).
    pub fn replace(&self, resolver: SniResolver) {
        self.current.store(Arc::new(resolver));
    }

    /// Serves `key` for `domain` (an automatic certificate) from the next handshake on.
    pub fn install(&self, domain: &str, key: Arc<CertifiedKey>) {
        self.automatic.rcu(|m| {
            let mut next = HashMap::clone(m);
            next.insert(domain.to_owned(), Arc::clone(&key));
            next
        });
    }

    /// True when a configured certificate names `domain` (exactly or by wildcard): no
    /// automatic certificate is ordered for it.
    pub fn manual_covers(&self, domain: &str) -> bool {
        self.current.load().covering(domain).is_some()
    }

    /// The certificate a handshake for `name` gets now.
    pub fn pick(&self, name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let resolver = self.current.load();
        let Some(name) = name.map(str::to_ascii_lowercase) else {
            return resolver.pick(None);
        };
        resolver
            .covering(&name)
            .or_else(|| self.automatic.load().get(&name).map(Arc::clone))
            .or_else(|| resolver.pick(None))
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(
        name: &str,
    ) -> (
        Arc<CertifiedKey>,
        std::path::PathBuf,
        std::path::PathBuf,
        tempfile::TempDir,
    ) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (cp, kp) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&cp, c.cert.pem()).unwrap();
        std::fs::write(&kp, c.signing_key.serialize_pem()).unwrap();
        pingora::tls::install_default_crypto_provider();
        let provider = CryptoProvider::get_default().unwrap();
        (load_one(&cp, &kp, 0, provider).unwrap(), cp, kp, dir)
    }

    #[test]
    fn manual_certificates_win_and_automatic_ones_survive_a_reload() {
        let (_, cp, kp, _d) = key("manual.example");
        let spec = CertSpec {
            domains: vec!["manual.example".into(), "*.wild.example".into()],
            cert: cp,
            key: kp,
        };
        let store = CertStore::new(SniResolver::load(std::slice::from_ref(&spec)).unwrap());
        let manual = store.pick(Some("manual.example")).unwrap();
        let (auto, ..) = key("auto.example");
        store.install("auto.example", Arc::clone(&auto));
        store.install("manual.example", Arc::clone(&auto));
        store.install("a.wild.example", Arc::clone(&auto));
        assert!(Arc::ptr_eq(
            &store.pick(Some("Auto.Example")).unwrap(),
            &auto
        ));
        // A configured name or wildcard beats an automatic certificate of the same name.
        assert!(Arc::ptr_eq(
            &store.pick(Some("manual.example")).unwrap(),
            &manual
        ));
        assert!(Arc::ptr_eq(
            &store.pick(Some("a.wild.example")).unwrap(),
            &manual
        ));
        assert!(store.manual_covers("x.wild.example"));
        assert!(!store.manual_covers("auto.example"));
        // Unknown names and no SNI get the manual default.
        assert!(Arc::ptr_eq(
            &store.pick(Some("other.example")).unwrap(),
            &manual
        ));
        assert!(Arc::ptr_eq(&store.pick(None).unwrap(), &manual));
        // A reload replaces the manual certificates only.
        store.replace(SniResolver::load(&[]).unwrap());
        assert!(Arc::ptr_eq(
            &store.pick(Some("auto.example")).unwrap(),
            &auto
        ));
        assert!(store.pick(Some("other.example")).is_none());
    }
}
