//! Generic upstream mode (`[generic]`): the edge in front of any HTTP server. Cache keys of
//! its requests and what an unsafe method invalidates (RFC 9111 §4.4).

use pingora::http::ResponseHeader;

use crate::cache_policy;
use crate::feed::Purger;

/// The cache key of a generic-mode request: scheme, host, path and query. Requests with
/// `Authorization` get keys of their own, so a response fetched with one user's credentials
/// is never served to an anonymous request, nor an anonymous one to a credentialed request.
pub fn cache_key(scheme: &str, host: &str, path_and_query: &str, authorization: bool) -> String {
    let ns = if authorization {
        "generic-auth"
    } else {
        "generic"
    };
    format!("{ns}|{scheme}://{host}{path_and_query}")
}

/// Purges what the answer `resp` to an unsafe request for `target` invalidates: the target
/// and same-host `Location`/`Content-Location`, under both key namespaces. Returns entries
/// dropped.
pub fn invalidate(
    purger: Purger<'_>,
    scheme: &str,
    host: &str,
    target: &str,
    resp: &ResponseHeader,
) -> usize {
    let mut n = 0;
    for path in cache_policy::invalidated_paths(target, host, resp.status, &resp.headers) {
        for auth in [false, true] {
            n += purger.primary(&cache_key(scheme, host, &path, auth));
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_scheme_host_and_credentials() {
        let k = cache_key("http", "a.example", "/x?y=1", false);
        assert_eq!(k, "generic|http://a.example/x?y=1");
        assert_ne!(k, cache_key("https", "a.example", "/x?y=1", false));
        assert_ne!(k, cache_key("http", "a.example", "/x?y=1", true));
    }
}
