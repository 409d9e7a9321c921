//! Generic upstream mode (`[generic]`): the edge in front of any HTTP server. What an unsafe
//! method invalidates (RFC 9111 §4.4); its keys are in [`crate::cache_key`].

use pingora::http::ResponseHeader;

use crate::cache_key;
use crate::cache_policy;
use crate::feed::Purger;

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
            n += purger.primary(&cache_key::generic(scheme, host, &path, auth));
        }
    }
    n
}
