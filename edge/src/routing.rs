//! Host + path → storage path.
//!
//! - `<container>.<account>.<base_domain>`: no setup (the first label is the container).
//! - `<base_domain>`: `/v1/AUTH_<account>/<container>/<object>` paths.
//! - Custom domains from the catalog: mapped to an account (the first path segment is a
//!   container if the account has one by that name, else the account's default container), or
//!   to one container.
//!
//! A `/.op/<token>/` path prefix is split off first; it carries an Outpost token.

use outpost_auth::{CanonicalPath, StoragePath};

use crate::catalog::{Catalog, DomainTarget};
use crate::Error;

/// Where a request goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// The storage path (what tokens and tempurls are checked against, and the cache key).
    pub path: StoragePath,
    /// Token from a `/.op/<token>/` prefix.
    pub path_token: Option<String>,
    /// The container is a static website: anonymous requests get the origin's web answers
    /// (index pages, error pages, HTML listings, slash redirects). The proxy clears it for
    /// requests with a credential, which get plain answers as in Swift.
    pub web: bool,
    /// The custom domain's HTTPS settings (redirect, HSTS); default for other hosts.
    pub https: crate::catalog::HttpsPolicy,
}

/// The host without port, lower case, without a trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = if host.starts_with('[') {
        // [v6]:port
        host.split(']')
            .next()
            .map(|s| format!("{s}]"))
            .unwrap_or_default()
    } else {
        host.rsplit_once(':')
            .filter(|(_, p)| p.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(h, _)| h)
            .to_owned()
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

/// Routes a request.
///
/// # Errors
/// [`Error::UnknownHost`] for a host that maps nowhere, [`Error::BadPath`] for a malformed
/// path, [`Error::NotFound`] for a path that names no object on a mapped domain.
pub fn route(
    catalog: &Catalog,
    base_domain: &str,
    host: &str,
    raw_path: &str,
) -> Result<Route, Error> {
    let host = normalize_host(host);
    let (path_token, rest) = match outpost_auth::split_path_token(raw_path) {
        Some((t, rest)) => (Some(t.to_owned()), rest),
        None => (None, raw_path),
    };
    let canonical = CanonicalPath::parse(rest)?;
    let path = if host == base_domain || host == "127.0.0.1" || host == "[::1]" {
        StoragePath::from_canonical(canonical)?
    } else if let Some(target) = catalog.domain(&host) {
        match target {
            DomainTarget::Container(a, c) => {
                build(a, c, canonical.as_str().trim_start_matches('/'))?
            }
            DomainTarget::Account(a) => {
                let p = canonical.as_str().trim_start_matches('/');
                let (first, rest) = p.split_once('/').unwrap_or((p, ""));
                let exists = catalog.container(a, first).is_some();
                match (
                    exists,
                    catalog.account(a).and_then(|i| i.default_container.clone()),
                ) {
                    (true, _) => build(a, first, rest)?,
                    (false, Some(def)) => build(a, &def, p)?,
                    (false, None) => return Err(Error::NotFound { what: "container" }),
                }
            }
        }
    } else if let Some((container, account)) = host
        .strip_suffix(base_domain)
        .and_then(|h| h.strip_suffix('.'))
        .and_then(|labels| labels.split_once('.'))
    {
        build(
            account,
            container,
            canonical.as_str().trim_start_matches('/'),
        )?
    } else {
        return Err(Error::UnknownHost { host });
    };
    let web = path
        .container()
        .and_then(|c| catalog.container(path.account(), c))
        .is_some_and(|c| c.web);
    Ok(Route {
        https: catalog.https(&host),
        path,
        path_token,
        web,
    })
}

fn build(account: &str, container: &str, object: &str) -> Result<StoragePath, Error> {
    if container.is_empty() {
        return Err(Error::NotFound { what: "container" });
    }
    // An empty object keeps the container's trailing slash (`/v1/AUTH_a/c/`): the root of a
    // static website, which staticweb would otherwise redirect to the slash form.
    Ok(StoragePath::build(account, Some(container), Some(object))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Snapshot;

    fn catalog() -> Catalog {
        let w: Snapshot = serde_json::from_str(
            r#"{"format": 1, "seq": 1, "accounts": [{"name": "demo",
                "meta": {"x-account-meta-outpost-domains": "img.example.com",
                         "x-account-meta-outpost-default-container": "public"},
                "token_keys": [],
                "containers": [{"name": "public", "meta": {}},
                               {"name": "videos", "meta": {"x-container-meta-outpost-domains": "tv.example.com"}}],
                "revocations": []}]}"#,
        )
        .unwrap();
        Catalog::from_snapshot(&w)
    }

    fn r(host: &str, path: &str) -> Result<String, Error> {
        route(&catalog(), "cdn.test", host, path).map(|r| r.path.as_str().to_owned())
    }

    #[test]
    fn routes_every_kind_of_host() {
        assert_eq!(
            r("cdn.test", "/v1/AUTH_demo/public/a.jpg").unwrap(),
            "/v1/AUTH_demo/public/a.jpg"
        );
        assert_eq!(
            r("public.demo.cdn.test:8081", "/a%20b.jpg").unwrap(),
            "/v1/AUTH_demo/public/a b.jpg"
        );
        assert_eq!(
            r("IMG.example.com", "/videos/x.mp4").unwrap(),
            "/v1/AUTH_demo/videos/x.mp4"
        );
        assert_eq!(
            r("img.example.com", "/cats/x.jpg").unwrap(),
            "/v1/AUTH_demo/public/cats/x.jpg"
        );
        assert_eq!(
            r("tv.example.com", "/show/master.m3u8").unwrap(),
            "/v1/AUTH_demo/videos/show/master.m3u8"
        );
        assert!(matches!(
            r("evil.example.com", "/x"),
            Err(Error::UnknownHost { .. })
        ));
        assert!(matches!(
            r("img.example.com", "/a/../b"),
            Err(Error::BadPath(_))
        ));
    }

    #[test]
    fn web_containers_are_marked_and_roots_keep_their_slash() {
        let mut c = catalog();
        let mut w: Snapshot = serde_json::from_str(
            r#"{"format": 1, "seq": 1, "accounts": [{"name": "site", "meta": {}, "token_keys": [],
                "containers": [{"name": "www", "meta": {"x-container-meta-outpost-domains": "www.example.com",
                                                        "x-container-meta-web-index": "index.html"}}],
                "revocations": []}]}"#,
        )
        .unwrap();
        c.set_account(&w.accounts.remove(0));
        let root = route(&c, "cdn.test", "www.example.com", "/").unwrap();
        assert!(root.web);
        assert_eq!(root.path.as_str(), "/v1/AUTH_site/www/");
        assert_eq!(root.path.object(), None);
        let sub = route(&c, "cdn.test", "www.example.com", "/docs/").unwrap();
        assert_eq!(sub.path.as_str(), "/v1/AUTH_site/www/docs/");
        assert!(!route(&c, "cdn.test", "tv.example.com", "/x").unwrap().web);
    }

    #[test]
    fn path_tokens_are_split_off() {
        let rt = route(
            &catalog(),
            "cdn.test",
            "tv.example.com",
            "/.op/op1.k.p.s/show/seg1.ts",
        )
        .unwrap();
        assert_eq!(rt.path_token.as_deref(), Some("op1.k.p.s"));
        assert_eq!(rt.path.as_str(), "/v1/AUTH_demo/videos/show/seg1.ts");
    }

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("Img.Example.COM:443"), "img.example.com");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("example.com."), "example.com");
    }
}
