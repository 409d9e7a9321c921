//! What the edge knows about accounts: domains, ACLs, keys and cache defaults, loaded from the
//! origin's `/internal/snapshot` and kept current by the change feed.
//!
//! The catalog is immutable; updates build a new one and swap an `Arc`, so a request reads one
//! consistent version without locks held across awaits.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use outpost_auth::acl::{ContainerAcl, ReferrerScope};
use outpost_auth::{KeySet, KeyStore, TempUrlKeys, TokenKeySpec};
use outpost_proto::meta::{
    ACCOUNT_HSTS, ACCOUNT_HTTPS_REDIRECT, ACCOUNT_TEMPURL_KEYS, CONTAINER_HSTS,
    CONTAINER_HTTPS_REDIRECT, CONTAINER_TEMPURL_KEYS, WEB_INDEX, WEB_LISTINGS,
};
use outpost_proto::snapshot::Meta;

pub use outpost_proto::meta::{
    ACCOUNT_DEFAULT_CONTAINER, ACCOUNT_DOMAINS, CONTAINER_CACHE_CONTROL, CONTAINER_DOMAINS,
};
/// The origin's snapshot, as sent by `/internal/snapshot` (the wire type).
pub use outpost_proto::snapshot::{AccountSnapshot, Snapshot};

/// Who may read a container anonymously: its read ACL's referrer designations, parsed once
/// per catalog update so that a request pays a `Referer` check only when the answer depends
/// on it. Decides exactly as the origin does (both use `outpost_auth::acl`).
#[derive(Debug, Clone, Default)]
pub enum Referrers {
    /// No anonymous reads (no designation allows).
    #[default]
    Nobody,
    /// Every anonymous read (`.r:*`, no denial after it).
    Everyone,
    /// Reads whose `Referer` the ACL allows (`.r:.example.com`, `.r:*,.r:-bad.example`).
    ByReferer(Arc<ContainerAcl>),
}

impl Referrers {
    fn from_acl(acl: ContainerAcl) -> Referrers {
        match acl.referrer_scope() {
            ReferrerScope::Nobody => Referrers::Nobody,
            ReferrerScope::Everyone => Referrers::Everyone,
            ReferrerScope::ByReferer => Referrers::ByReferer(Arc::new(acl)),
        }
    }

    /// True when a request with these headers may read anonymously.
    pub fn allow(&self, headers: &http::HeaderMap) -> bool {
        match self {
            Referrers::Nobody => false,
            Referrers::Everyone => true,
            Referrers::ByReferer(acl) => {
                acl.referrer_allowed(outpost_auth::acl::referer(headers).as_deref())
            }
        }
    }
}

/// What the edge needs of a container.
#[derive(Debug, Clone, Default)]
pub struct ContainerInfo {
    /// Anonymous reads of objects by the read ACL's referrer designations.
    pub referrers: Referrers,
    /// `.rlistings`: referrers allowed to read objects may list the container too.
    pub listings: bool,
    /// Container tempurl keys.
    pub tempurl_keys: Vec<String>,
    /// Default `Cache-Control`.
    pub cache_control: Option<String>,
    /// CORS rules (`X-Container-Meta-Access-Control-*`), if any origin is allowed.
    pub cors: Option<Arc<crate::cors::CorsRules>>,
    /// A static website (Swift's staticweb: `X-Container-Meta-Web-Index` or `-Web-Listings`
    /// set): anonymous requests get the origin's web answers (see `cache_key::for_route`).
    pub web: bool,
}

/// What the edge needs of an account.
#[derive(Debug, Clone, Default)]
pub struct AccountInfo {
    /// Outpost token keys.
    pub keys: KeySet,
    /// Account tempurl keys.
    pub tempurl_keys: Vec<String>,
    /// Default container of account-mapped domains.
    pub default_container: Option<String>,
    /// Containers by name.
    pub containers: HashMap<String, ContainerInfo>,
}

/// Where a custom domain points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainTarget {
    /// The whole account: the first path segment names a container if one exists, else the
    /// default container.
    Account(String),
    /// One container of an account.
    Container(String, String),
}

/// HTTPS settings of a custom domain (account or container metadata, the container's winning
/// for a container-mapped domain; an account-mapped domain takes the account's).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HttpsPolicy {
    /// Plain-HTTP requests get a `301` to HTTPS (`...-Outpost-Https-Redirect: true`).
    pub redirect: bool,
    /// HTTPS answers carry `Strict-Transport-Security: max-age=<this>` (`...-Outpost-Hsts`).
    pub hsts_max_age: Option<u64>,
}

impl HttpsPolicy {
    fn from_meta(meta: &Meta, redirect_key: &str, hsts_key: &str) -> (Option<bool>, Option<u64>) {
        let redirect = meta.get(redirect_key).map(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "on" | "1"
            )
        });
        let hsts = meta.get(hsts_key).and_then(|v| v.trim().parse().ok());
        (redirect, hsts)
    }
}

/// An immutable view of every account.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    accounts: HashMap<String, Arc<AccountInfo>>,
    domains: HashMap<String, DomainTarget>,
    https: HashMap<String, HttpsPolicy>,
}

fn split_list(v: Option<&String>) -> impl Iterator<Item = String> + '_ {
    v.into_iter()
        .flat_map(|s| s.split([',', ' ']))
        .map(|d| d.trim().trim_end_matches('.').to_ascii_lowercase())
        .filter(|d| !d.is_empty())
}

impl ContainerInfo {
    /// True when an anonymous request with these headers may read the container's objects
    /// (`listing == false`) or its listing: Swift's referrer rule, listings only with
    /// `.rlistings`.
    pub fn anonymous_read(&self, listing: bool, headers: &http::HeaderMap) -> bool {
        (!listing || self.listings) && self.referrers.allow(headers)
    }
}

fn read_acl(meta: &Meta) -> (Referrers, bool) {
    let acl = ContainerAcl::parse(meta.get("x-container-read").map(String::as_str));
    let listings = acl.listings();
    (Referrers::from_acl(acl), listings)
}

impl AccountInfo {
    fn from_wire(a: &AccountSnapshot) -> AccountInfo {
        let mut tempurl_keys = Vec::new();
        for k in ACCOUNT_TEMPURL_KEYS {
            tempurl_keys.extend(a.meta.get(k).cloned());
        }
        let keys = KeySet::new(a.token_keys.iter().map(|k| TokenKeySpec {
            id: k.id.clone(),
            secret: outpost_auth::Secret::new(k.secret.clone()),
            not_before: k.not_before,
            not_after: k.not_after,
        })).unwrap_or_else(|e| {
            tracing::warn!(account = %a.name, error = %e, "ignoring the account's invalid token keys");
            KeySet::default()
        });
        let containers = a
            .containers
            .iter()
            .map(|c| {
                let (referrers, listings) = read_acl(&c.meta);
                let mut tk = Vec::new();
                for k in CONTAINER_TEMPURL_KEYS {
                    tk.extend(c.meta.get(k).cloned());
                }
                (
                    c.name.clone(),
                    ContainerInfo {
                        referrers,
                        listings,
                        tempurl_keys: tk,
                        cache_control: c.meta.get(CONTAINER_CACHE_CONTROL).cloned(),
                        cors: crate::cors::CorsRules::from_container_meta(&c.meta).map(Arc::new),
                        web: [WEB_INDEX, WEB_LISTINGS]
                            .iter()
                            .any(|k| c.meta.get(*k).is_some_and(|v| !v.trim().is_empty())),
                    },
                )
            })
            .collect();
        AccountInfo {
            keys,
            tempurl_keys,
            default_container: a.meta.get(ACCOUNT_DEFAULT_CONTAINER).cloned(),
            containers,
        }
    }
}

impl Catalog {
    /// Builds a catalog from a full snapshot.
    pub fn from_snapshot(s: &Snapshot) -> Catalog {
        let mut c = Catalog::default();
        for a in &s.accounts {
            c.set_account(a);
        }
        c
    }

    /// Replaces (or adds) one account from its snapshot entry.
    pub fn set_account(&mut self, a: &AccountSnapshot) {
        self.remove_account(&a.name);
        let (acc_redirect, acc_hsts) =
            HttpsPolicy::from_meta(&a.meta, ACCOUNT_HTTPS_REDIRECT, ACCOUNT_HSTS);
        let account_policy = HttpsPolicy {
            redirect: acc_redirect.unwrap_or(false),
            hsts_max_age: acc_hsts,
        };
        for d in split_list(a.meta.get(ACCOUNT_DOMAINS)) {
            if account_policy != HttpsPolicy::default() {
                self.https.insert(d.clone(), account_policy);
            }
            self.domains
                .insert(d, DomainTarget::Account(a.name.clone()));
        }
        for c in &a.containers {
            let (redirect, hsts) =
                HttpsPolicy::from_meta(&c.meta, CONTAINER_HTTPS_REDIRECT, CONTAINER_HSTS);
            let policy = HttpsPolicy {
                redirect: redirect.unwrap_or(account_policy.redirect),
                hsts_max_age: hsts.or(account_policy.hsts_max_age),
            };
            for d in split_list(c.meta.get(CONTAINER_DOMAINS)) {
                if policy != HttpsPolicy::default() {
                    self.https.insert(d.clone(), policy);
                }
                self.domains
                    .insert(d, DomainTarget::Container(a.name.clone(), c.name.clone()));
            }
        }
        self.accounts
            .insert(a.name.clone(), Arc::new(AccountInfo::from_wire(a)));
    }

    /// Forgets an account and its domains.
    pub fn remove_account(&mut self, name: &str) {
        self.accounts.remove(name);
        self.domains.retain(|_, t| match t {
            DomainTarget::Account(a) | DomainTarget::Container(a, _) => a != name,
        });
        let domains = &self.domains;
        self.https.retain(|d, _| domains.contains_key(d));
    }

    /// Every mapped custom domain (the only names certificates are ordered for).
    pub fn domains(&self) -> impl Iterator<Item = &str> {
        self.domains.keys().map(String::as_str)
    }

    /// A custom domain's HTTPS settings (default: none).
    pub fn https(&self, host: &str) -> HttpsPolicy {
        self.https.get(host).copied().unwrap_or_default()
    }

    /// An account.
    pub fn account(&self, name: &str) -> Option<&AccountInfo> {
        self.accounts.get(name).map(|a| a.as_ref())
    }

    /// A container.
    pub fn container(&self, account: &str, container: &str) -> Option<&ContainerInfo> {
        self.account(account)?.containers.get(container)
    }

    /// Where a custom domain points.
    pub fn domain(&self, host: &str) -> Option<&DomainTarget> {
        self.domains.get(host)
    }

    /// Number of accounts.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// True with no accounts.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }
}

impl KeyStore for Catalog {
    fn token_keys(&self, account: &str) -> Option<&KeySet> {
        self.account(account).map(|a| &a.keys)
    }

    fn tempurl_keys(&self, account: &str, container: &str) -> TempUrlKeys<'_> {
        let Some(a) = self.account(account) else {
            return TempUrlKeys::default();
        };
        let mut keys: Vec<&[u8]> = a.tempurl_keys.iter().map(|k| k.as_bytes()).collect();
        if let Some(c) = a.containers.get(container) {
            keys.extend(c.tempurl_keys.iter().map(|k| k.as_bytes()));
        }
        TempUrlKeys::from_slice(&keys)
    }
}

/// The shared, swappable catalog.
#[derive(Debug, Default)]
pub struct CatalogHandle {
    current: RwLock<Arc<Catalog>>,
}

impl CatalogHandle {
    /// A handle holding `c`.
    pub fn new(c: Catalog) -> Self {
        CatalogHandle {
            current: RwLock::new(Arc::new(c)),
        }
    }

    /// The current catalog.
    pub fn get(&self) -> Arc<Catalog> {
        Arc::clone(
            &self
                .current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Applies `f` to a copy and swaps it in.
    pub fn update(&self, f: impl FnOnce(&mut Catalog)) {
        let mut guard = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = Catalog::clone(&guard);
        f(&mut next);
        *guard = Arc::new(next);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire() -> Snapshot {
        serde_json::from_str(
            r#"{"format": 1, "seq": 7, "accounts": [{"name": "demo",
                "meta": {"x-account-meta-outpost-domains": "Img.Example.com, cdn.example.org",
                         "x-account-meta-outpost-default-container": "public",
                         "x-account-meta-temp-url-key": "k1"},
                "token_keys": [],
                "containers": [
                  {"name": "public", "meta": {"x-container-read": ".r:*,.rlistings",
                                               "x-container-meta-web-index": "index.html"}},
                  {"name": "videos", "meta": {"x-container-meta-outpost-domains": "tv.example.com",
                                               "x-container-meta-temp-url-key": "k2"}}
                ], "revocations": []}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn builds_domains_acls_and_keys() {
        let c = Catalog::from_snapshot(&wire());
        assert_eq!(
            c.domain("img.example.com"),
            Some(&DomainTarget::Account("demo".into()))
        );
        assert_eq!(
            c.domain("tv.example.com"),
            Some(&DomainTarget::Container("demo".into(), "videos".into()))
        );
        let none = http::HeaderMap::new();
        assert!(c
            .container("demo", "public")
            .unwrap()
            .anonymous_read(true, &none));
        assert!(!c
            .container("demo", "videos")
            .unwrap()
            .anonymous_read(false, &none));
        assert!(c.container("demo", "public").unwrap().web);
        assert!(!c.container("demo", "videos").unwrap().web);
        assert_eq!(c.tempurl_keys("demo", "videos").iter().count(), 2);
        let mut c2 = c.clone();
        c2.remove_account("demo");
        assert!(c2.domain("img.example.com").is_none());
        let mut names: Vec<&str> = c.domains().collect();
        names.sort_unstable();
        assert_eq!(
            names,
            ["cdn.example.org", "img.example.com", "tv.example.com"]
        );
    }

    #[test]
    fn referrer_acls_decide_per_referer_without_rlistings_no_listing() {
        let mut s = wire();
        s.accounts[0].containers[1].meta.insert(
            "x-container-read".into(),
            ".r:*, .r:-bad.example.com".into(),
        );
        s.accounts[0].containers[0]
            .meta
            .insert("x-container-read".into(), ".ref:*.example.com".into());
        let c = Catalog::from_snapshot(&s);
        let from = |r: &str| {
            let mut h = http::HeaderMap::new();
            h.insert(http::header::REFERER, r.parse().unwrap());
            h
        };
        let none = http::HeaderMap::new();
        let deny = c.container("demo", "videos").unwrap();
        assert!(matches!(deny.referrers, Referrers::ByReferer(_)));
        assert!(deny.anonymous_read(false, &none));
        assert!(deny.anonymous_read(false, &from("http://good.example.org/")));
        assert!(!deny.anonymous_read(false, &from("http://bad.example.com/page")));
        assert!(!deny.anonymous_read(true, &none), "no .rlistings");
        let domain = c.container("demo", "public").unwrap();
        assert!(domain.anonymous_read(false, &from("https://www.example.com/")));
        assert!(!domain.anonymous_read(false, &from("https://example.com/")));
        assert!(!domain.anonymous_read(false, &none));
    }

    #[test]
    fn https_policy_container_wins_over_account() {
        let mut s = wire();
        s.accounts[0]
            .meta
            .insert(ACCOUNT_HSTS.into(), "31536000".into());
        s.accounts[0].containers[1]
            .meta
            .insert(CONTAINER_HTTPS_REDIRECT.into(), "true".into());
        let c = Catalog::from_snapshot(&s);
        assert_eq!(
            c.https("img.example.com"),
            HttpsPolicy {
                redirect: false,
                hsts_max_age: Some(31_536_000)
            }
        );
        assert_eq!(
            c.https("tv.example.com"),
            HttpsPolicy {
                redirect: true,
                hsts_max_age: Some(31_536_000)
            }
        );
        assert_eq!(c.https("unmapped.example"), HttpsPolicy::default());
    }
}
