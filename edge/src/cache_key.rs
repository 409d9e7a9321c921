//! The cache-key scheme, in one place: every key the edge stores under, and every key or
//! prefix a purge drops, is built here, so a key written by the request path and the key a
//! change-feed purge removes cannot drift apart.
//!
//! Origin mode keys are the decoded storage path:
//! - an object: `/v1/AUTH_<account>/<container>/<object>`;
//! - a listing: `/v1/AUTH_<account>[/<container>]?<sorted listing params>`;
//! - entries derived from an object (byte-range slices `…#s<index>@<etag>`, the size and
//!   validator record `…#info`) extend the object's key after `#`, so one prefix purge
//!   (`…#`) drops them all.
//!
//! Generic mode keys are `generic|<scheme>://<host><path-and-query>`, or `generic-auth|…` for
//! requests with `Authorization` (never shared with anonymous requests).
//!
//! Every key is a pingora [`CacheKey`] with this string as its primary and no variance: `Vary`
//! variants hang off the same primary (see `proxy::cache_vary_filter`).

use pingora::cache::CacheKey;

use crate::routing::Route;

/// Listing query parameters forwarded upstream and part of the cache key; everything else
/// (tokens, signatures, cache busters) is dropped.
pub const LISTING_PARAMS: &[&str] = &[
    "delimiter",
    "end_marker",
    "format",
    "limit",
    "marker",
    "prefix",
    "reverse",
];

/// The pingora key of a primary key string.
pub fn key(primary: &str) -> CacheKey {
    CacheKey::new(primary, "")
}

/// The primary key of a routed origin-mode request and the URI it is fetched with upstream
/// (percent-encoded, with only the listing parameters kept, sorted).
pub fn for_route(route: &Route, query: Option<&str>) -> (String, String) {
    let encoded = route.path.canonical().to_encoded();
    if route.web {
        // The origin's web answer for this exact path (a trailing slash matters, the query
        // does not: staticweb ignores it).
        return (format!("{WEB}{}", route.path.as_str()), encoded);
    }
    if route.path.object().is_some() {
        return (route.path.as_str().to_owned(), encoded);
    }
    let mut params: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(k, _)| LISTING_PARAMS.contains(&k.as_ref()))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    params.sort();
    let q: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    let base = route.path.as_str().trim_end_matches('/');
    let enc = encoded.trim_end_matches('/');
    (format!("{base}?{q}"), format!("{enc}?{q}"))
}

/// Prefix of the keys of static-website answers (see [`web_site`]).
const WEB: &str = "web|";

/// The key of a static website's container root without its slash, and the prefix of every
/// other web answer of the container. A web answer (an index page, an error page, a listing,
/// a redirect) depends on other objects of the container than the one its path names, so every
/// change in the container drops them all.
pub fn web_site(account: &str, container: &str) -> (String, String) {
    let base = format!("{WEB}/v1/AUTH_{account}/{container}");
    let prefix = format!("{base}/");
    (base, prefix)
}

/// The prefix of every static-website answer of an account.
pub fn web_account(account: &str) -> String {
    format!("{WEB}/v1/AUTH_{account}/")
}

/// The primary key of an object.
pub fn object(account: &str, container: &str, object: &str) -> String {
    format!("/v1/AUTH_{account}/{container}/{object}")
}

/// The prefix of every object key of a container.
pub fn container_objects(account: &str, container: &str) -> String {
    format!("/v1/AUTH_{account}/{container}/")
}

/// The base of a container's listing keys: every listing variant is `<base>?<params>`.
pub fn container_listing(account: &str, container: &str) -> String {
    format!("/v1/AUTH_{account}/{container}")
}

/// The base of an account's keys: its listings are `<base>?<params>`, its containers'
/// entries start with `<base>/`.
pub fn account(account: &str) -> String {
    format!("/v1/AUTH_{account}")
}

/// The prefix of every listing variant under a listing base.
pub fn listing_variants(base: &str) -> String {
    format!("{base}?")
}

/// The prefix of every entry derived from the object keyed `primary` (slices, size record).
pub fn derived(primary: &str) -> String {
    format!("{primary}#")
}

/// The key of byte-range slice `index` of the object keyed `primary` at version `etag`
/// (quotes ignored, so a quoted and a bare ETag name the same slice).
pub fn slice(primary: &str, index: u64, etag: Option<&str>) -> CacheKey {
    let etag = etag.unwrap_or("").trim_matches('"');
    CacheKey::new(format!("{primary}#s{index}@{etag}"), "")
}

/// The key of the size-and-validators record of a sliced object (also its fill lock).
pub fn info(primary: &str) -> CacheKey {
    CacheKey::new(format!("{primary}#info"), "")
}

/// The cache key of a generic-mode request: scheme, host, path and query. Requests with
/// `Authorization` get keys of their own, so a response fetched with one user's credentials
/// is never served to an anonymous request, nor an anonymous one to a credentialed request.
pub fn generic(scheme: &str, host: &str, path_and_query: &str, authorization: bool) -> String {
    let ns = if authorization {
        "generic-auth"
    } else {
        "generic"
    };
    format!("{ns}|{scheme}://{host}{path_and_query}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_auth::{CanonicalPath, StoragePath};

    fn route(path: &str) -> Route {
        let canonical = CanonicalPath::parse(path).expect("path");
        Route {
            path: StoragePath::from_canonical(canonical).expect("storage path"),
            path_token: None,
            web: false,
            https: crate::catalog::HttpsPolicy::default(),
        }
    }

    #[test]
    fn web_answers_are_keyed_apart_and_purged_by_container() {
        let mut r = route("/v1/AUTH_a/c/docs/");
        r.web = true;
        let (k, uri) = for_route(&r, Some("format=json"));
        assert_eq!(k, "web|/v1/AUTH_a/c/docs/");
        assert_eq!(uri, "/v1/AUTH_a/c/docs/");
        let (base, prefix) = web_site("a", "c");
        assert!(k.starts_with(&prefix));
        assert!(k.starts_with(&web_account("a")));
        assert!(
            !k.starts_with(&container_objects("a", "c")),
            "never an object key"
        );
        let mut root = route("/v1/AUTH_a/c");
        root.web = true;
        assert_eq!(for_route(&root, None).0, base);
        let mut slash = route("/v1/AUTH_a/c/");
        slash.web = true;
        assert_eq!(
            for_route(&slash, None),
            ("web|/v1/AUTH_a/c/".into(), "/v1/AUTH_a/c/".into())
        );
    }

    #[test]
    fn a_routed_object_is_keyed_as_the_feed_purges_it() {
        let (k, uri) = for_route(&route("/v1/AUTH_a/c/dir/x%20y.mp4"), Some("temp_url_sig=s"));
        assert_eq!(k, object("a", "c", "dir/x y.mp4"));
        assert_eq!(uri, "/v1/AUTH_a/c/dir/x%20y.mp4");
        assert!(k.starts_with(&container_objects("a", "c")));
        assert!(k.starts_with(&account("a")));
        let s = slice(&k, 3, Some("\"e1\""));
        assert_eq!(s.primary_key_str(), Some("/v1/AUTH_a/c/dir/x y.mp4#s3@e1"));
        assert_eq!(
            s.primary_key_str(),
            slice(&k, 3, Some("e1")).primary_key_str()
        );
        assert!(s.primary_key_str().unwrap().starts_with(&derived(&k)));
        assert!(info(&k)
            .primary_key_str()
            .unwrap()
            .starts_with(&derived(&k)));
    }

    #[test]
    fn listings_keep_only_listing_params_sorted() {
        let (k, uri) = for_route(
            &route("/v1/AUTH_a/c"),
            Some("prefix=p&format=json&temp_url_sig=x&_=123"),
        );
        assert_eq!(k, "/v1/AUTH_a/c?format=json&prefix=p");
        assert_eq!(uri, "/v1/AUTH_a/c?format=json&prefix=p");
        assert!(k.starts_with(&listing_variants(&container_listing("a", "c"))));
        let (k, _) = for_route(&route("/v1/AUTH_a"), None);
        assert!(k.starts_with(&listing_variants(&account("a"))));
    }

    #[test]
    fn generic_keys_separate_scheme_host_and_credentials() {
        let k = generic("http", "a.example", "/x?y=1", false);
        assert_eq!(k, "generic|http://a.example/x?y=1");
        assert_ne!(k, generic("https", "a.example", "/x?y=1", false));
        assert_ne!(k, generic("http", "a.example", "/x?y=1", true));
    }
}
