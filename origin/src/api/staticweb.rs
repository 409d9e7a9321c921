//! Static websites, as Swift's staticweb middleware serves them: a container's
//! `X-Container-Meta-Web-*` settings turn anonymous GET/HEAD requests (or any request with
//! `X-Web-Mode: true`, which is how the edge asks) into a web site:
//!
//! - `Web-Index`: a directory path (`/c/`, `/c/sub/`) answers with its index object; the path
//!   without the trailing slash redirects (`301`) to the slash form;
//! - `Web-Listings`: a directory without an index answers with an HTML listing, styled by
//!   `Web-Listings-CSS` (relative to the container) or Swift's default style;
//! - `Web-Error`: a `404` (or a refused directory listing) answers with the object
//!   `<status><Web-Error>` (`404error.html`) if it exists, with the original status;
//! - `Web-Directory-Type`: objects of that type (default `application/directory`) of at most one
//!   byte are directory markers and answer as missing.
//!
//! Without `Web-Index` or `Web-Listings` a container is not a web site and requests go on as
//! usual. The index, error and listing answers are built from sub-requests to the ordinary
//! object and listing handlers with the client's identity, so access rules are the same as for
//! the objects themselves (a container root needs `.r:*,.rlistings`, as in Swift).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, Method, StatusCode};
use outpost_auth::StoragePath;
use outpost_proto::meta::{
    WEB_DIRECTORY_TYPE, WEB_ERROR, WEB_INDEX, WEB_LISTINGS, WEB_LISTINGS_CSS, WEB_LISTINGS_LABEL,
};

use super::{blocking, deny, object, set, Identity, Req, Shared};
use crate::db::{ContainerRow, Entry, ListParams, ObjectRow};
use crate::{Error, Result};

/// The header that asks for web-site answers with a credential (the edge sends it).
use outpost_proto::headers::WEB_MODE;

/// A container's web settings (trimmed; empty when unset).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebSettings {
    /// Index object name of every directory.
    pub index: String,
    /// Suffix of error pages (`<status><error>`).
    pub error: String,
    /// `Web-Listings` as given (Swift: any value enables the site; a true one the listings).
    pub listings: String,
    /// Listing stylesheet.
    pub listings_css: String,
    /// Listing title instead of the storage path.
    pub listings_label: String,
    /// Content type of directory markers.
    pub directory_type: String,
}

/// Swift's `config_true_value`.
fn truthy(v: &str) -> bool {
    matches!(
        v.trim().to_ascii_lowercase().as_str(),
        "true" | "1" | "yes" | "on" | "t" | "y"
    )
}

impl WebSettings {
    /// The settings in a container's metadata.
    pub fn of(meta: &crate::db::Meta) -> WebSettings {
        let get = |k: &str| meta.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
        WebSettings {
            index: get(WEB_INDEX),
            error: get(WEB_ERROR),
            listings: get(WEB_LISTINGS),
            listings_css: get(WEB_LISTINGS_CSS),
            listings_label: get(WEB_LISTINGS_LABEL),
            directory_type: get(WEB_DIRECTORY_TYPE),
        }
    }

    /// True if the container is a web site (an index or listings are configured).
    pub fn active(&self) -> bool {
        !self.index.is_empty() || !self.listings.is_empty()
    }
}

/// True if staticweb looks at this request: GET/HEAD of a container or object, anonymous
/// (tempurls included) or with `X-Web-Mode: true`.
pub(super) fn applies(r: &Req) -> bool {
    r.direct.is_none()
        && matches!(r.method, Method::GET | Method::HEAD)
        && r.path.container().is_some()
        && (r.ident == Identity::Anonymous || r.header(WEB_MODE).is_some_and(truthy))
}

/// Percent-encodes as Python's `urllib.parse.quote(s, safe)` does (what Swift's links use).
fn py_quote(s: &str, safe: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~".contains(&b) || safe.as_bytes().contains(&b) {
            o.push(char::from(b));
        } else {
            o.push_str(&format!("%{b:02X}"));
        }
    }
    o
}

/// Python's `html.escape(s, quote=True)`.
fn html_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#x27;"),
            c => o.push(c),
        }
    }
    o
}

/// Swift's `human_readable`: `1023`, `1Ki`, `5Mi`.
fn human_readable(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)] // reason: a display value, rounded anyway
    let mut v = n as f64;
    let mut index: Option<usize> = None;
    let suffixes = ['K', 'M', 'G', 'T', 'P', 'E', 'Z', 'Y'];
    while v >= 1024.0 && index.map_or(0, |i| i + 1) < suffixes.len() {
        index = Some(index.map_or(0, |i| i + 1));
        v = (v / 1024.0).round();
    }
    match index {
        None => format!("{v:.0}"),
        Some(i) => format!("{v:.0}{}i", suffixes[i]),
    }
}

/// The answer of a sub-request (errors become their HTTP answer).
fn answer(r: Result<Response>) -> Response {
    r.unwrap_or_else(IntoResponse::into_response)
}

fn is_ok_or_redirect(s: StatusCode) -> bool {
    s.is_success() || s.is_redirection()
}

/// `scheme://host` of an absolute `Location`, as swob's `host_url`: the scheme and host of
/// `public_url` (its path is dropped, as Swift drops `url_base`'s), else `http` and `host`;
/// the scheme's default port is left out. Swift takes no `X-Forwarded-Proto`.
fn url_base(public_url: Option<&str>, host: &str) -> String {
    let (scheme, host) = match public_url.and_then(|u| u.split_once("://")) {
        Some((scheme, rest)) => (scheme, rest.split('/').next().unwrap_or(host)),
        None => ("http", host),
    };
    let host = match scheme {
        "http" => host.strip_suffix(":80").unwrap_or(host),
        "https" => host.strip_suffix(":443").unwrap_or(host),
        _ => host,
    };
    format!("{scheme}://{host}")
}

struct Site<'a> {
    st: &'a Shared,
    r: &'a Req,
    row: ContainerRow,
    web: WebSettings,
    /// Who the sub-requests run as: the client, or anonymous for a service (the edge asks
    /// what an anonymous client would see; it checked the client's access itself).
    ident: Identity,
}

impl Site<'_> {
    fn account(&self) -> &str {
        self.r.path.account()
    }

    fn container(&self) -> &str {
        &self.row.name
    }

    /// A GET/HEAD of another object of the container, as the client.
    async fn object(&self, name: &str, method: Method, headers: HeaderMap) -> Response {
        let path = match StoragePath::build(self.account(), Some(self.container()), Some(name)) {
            Ok(p) => p,
            Err(e) => return Error::from(e).into_response(),
        };
        let sub = Req {
            method,
            path,
            raw_query: None,
            query: std::collections::HashMap::new(),
            headers,
            ident: self.ident.clone(),
            client_ip: self.r.client_ip,
            body: std::sync::Mutex::new(Body::empty()),
            direct: None,
            ts: None,
        };
        let c = self.container().to_owned();
        answer(object::handle(self.st, sub, &c, name).await)
    }

    /// The same request for `name` (the index of a directory, the object itself).
    async fn same_for(&self, name: &str) -> Response {
        self.object(name, self.r.method.clone(), self.r.headers.clone())
            .await
    }

    /// Swift's `_error_response`: the `<status><Web-Error>` object with the original status
    /// when it exists, else `resp`.
    async fn error(&self, resp: Response) -> Response {
        if self.web.error.is_empty() {
            return resp;
        }
        let code = resp.status();
        let page = format!("{}{}", code.as_u16(), self.web.error);
        let mut got = self.object(&page, Method::GET, HeaderMap::new()).await;
        if !got.status().is_success() {
            return resp;
        }
        *got.status_mut() = code;
        got
    }

    /// A 301 to the path with a trailing slash, absolute as Swift's: on `public_url`'s
    /// scheme and host when set (Swift's `url_base`), else on the listener's scheme (plain
    /// HTTP) and the request's `Host`.
    fn redirect(&self) -> Response {
        let base = url_base(
            self.st.store.cfg.public_url.as_deref(),
            self.r.header("host").unwrap_or("127.0.0.1"),
        );
        let location = format!(
            "{base}{}",
            py_quote(&format!("{}/", self.r.path.as_str()), "/")
        );
        let mut resp = super::status(StatusCode::MOVED_PERMANENTLY);
        set(resp.headers_mut(), "location", location);
        resp
    }

    /// May the client list the container? Swift authorizes listings as tempauth does, on
    /// the container's read ACL (owners, grants, or a referrer designation with
    /// `.rlistings`) and then the account's ACL.
    ///
    /// # Errors
    /// [`Error::Db`] reading the account's ACL.
    async fn may_list(&self) -> Result<bool> {
        let referer = outpost_auth::acl::referer(&self.r.headers);
        let q = crate::access::Query {
            ident: &self.ident,
            account: self.account(),
            target: crate::access::Target::Container,
            method: &http::Method::GET,
            container_acl: self.row.meta.get("x-container-read").map(String::as_str),
            referer: referer.as_deref(),
        };
        let first = crate::access::decide(&q, None);
        if !crate::access::needs_account_acl(&q, first) {
            return Ok(first.allowed());
        }
        let a = self.account().to_owned();
        let row = blocking(self.st, move |s| s.db.get_account(&a)).await?;
        let acl = row.and_then(|row| crate::access::account_acl(&row.meta));
        Ok(crate::access::decide(&q, acl.as_ref()).allowed())
    }

    async fn list(&self, prefix: &str, limit: usize) -> Result<Vec<Entry<ObjectRow>>> {
        let params = ListParams {
            prefix: prefix.to_owned(),
            delimiter: Some("/".to_owned()),
            marker: None,
            end_marker: None,
            limit,
            reverse: false,
            live_at: Some(self.st.store.clock.wall_secs()),
        };
        let (a, c) = (self.account().to_owned(), self.container().to_owned());
        blocking(self.st, move |s| s.db.list_objects(&a, &c, &params)).await
    }

    /// The listing title: the path, or `Web-Listings-Label` and the path below the container.
    fn label(&self) -> String {
        let path = self.r.path.as_str();
        if self.web.listings_label.is_empty() {
            return path.to_owned();
        }
        let below: Vec<&str> = path.split('/').skip(4).collect();
        format!("{}/{}", self.web.listings_label, below.join("/"))
    }

    fn css_path(&self, prefix: &str) -> String {
        let css = &self.web.listings_css;
        if css.starts_with('/') || css.starts_with("http://") || css.starts_with("https://") {
            py_quote(css, ":/")
        } else {
            format!(
                "{}{}",
                "../".repeat(prefix.matches('/').count()),
                py_quote(css, "/")
            )
        }
    }

    /// Swift's `_listing`: the HTML listing of the directory `prefix`.
    async fn listing(&self, prefix: &str) -> Result<Response> {
        let label = html_escape(&self.label());
        if !truthy(&self.web.listings) {
            let mut body =
                format!("<!DOCTYPE html>\n<html>\n<head>\n<title>Listing of {label}</title>\n");
            if self.web.listings_css.is_empty() {
                body.push_str(
                    "  <style type=\"text/css\">\n   h1 {font-size: 1em; font-weight: bold;}\n   p {font-size: 2}\n  </style>\n",
                );
            } else {
                body.push_str(&format!(
                    "  <link rel=\"stylesheet\" type=\"text/css\" href=\"{}\" />\n",
                    self.css_path(prefix)
                ));
            }
            body.push_str(
                "</head>\n<body>  <h1>Web Listing Disabled</h1>   <p>The owner of this web site has disabled web listing.   <p>If you are the owner of this web site, you can enable   web listing by setting X-Container-Meta-Web-Listings.</p>",
            );
            if !self.web.index.is_empty() {
                body.push_str(&format!(
                    "<h1>Index File Not Found</h1> <p>The owner of this web site has set  <b>X-Container-Meta-Web-Index: {}</b>.  However, this file is not found.</p>",
                    self.web.index
                ));
            }
            body.push_str(" </body>\n</html>\n");
            let mut resp = (StatusCode::NOT_FOUND, body).into_response();
            set(
                resp.headers_mut(),
                "content-type",
                "text/html; charset=UTF-8",
            );
            return Ok(self.error(resp).await);
        }
        if !self.may_list().await? {
            return Ok(self.error(deny(&self.ident).into_response()).await);
        }
        let entries = self.list(prefix, super::listing::MAX_LIMIT).await?;
        if !prefix.is_empty() && entries.is_empty() {
            let nf = Error::NotFound { what: "directory" }.into_response();
            return Ok(self.error(nf).await);
        }
        let mut body =
            format!("<!DOCTYPE html>\n<html>\n <head>\n  <title>Listing of {label}</title>\n");
        if self.web.listings_css.is_empty() {
            body.push_str(
                "  <style type=\"text/css\">\n   h1 {font-size: 1em; font-weight: bold;}\n   th {text-align: left; padding: 0px 1em 0px 1em;}\n   td {padding: 0px 1em 0px 1em;}\n   a {text-decoration: none;}\n  </style>\n",
            );
        } else {
            body.push_str(&format!(
                "  <link rel=\"stylesheet\" type=\"text/css\" href=\"{}\" />\n",
                self.css_path(prefix)
            ));
        }
        body.push_str(&format!(
            " </head>\n <body>\n  <h1 id=\"title\">Listing of {label}</h1>\n  <table id=\"listing\">\n   <tr id=\"heading\">\n    <th class=\"colname\">Name</th>\n    <th class=\"colsize\">Size</th>\n    <th class=\"coldate\">Date</th>\n   </tr>\n"
        ));
        if !prefix.is_empty() {
            body.push_str("   <tr id=\"parent\" class=\"item\">\n    <td class=\"colname\"><a href=\"../\">../</a></td>\n    <td class=\"colsize\">&nbsp;</td>\n    <td class=\"coldate\">&nbsp;</td>\n   </tr>\n");
        }
        let link = |name: &str| py_quote(name, "/").replace('.', "%2E");
        for e in &entries {
            if let Entry::Subdir(d) = e {
                let d = d.strip_prefix(prefix).unwrap_or(d);
                body.push_str(&format!(
                    "   <tr class=\"item subdir\">\n    <td class=\"colname\"><a href=\"./{}\">{}</a></td>\n    <td class=\"colsize\">&nbsp;</td>\n    <td class=\"coldate\">&nbsp;</td>\n   </tr>\n",
                    link(d),
                    html_escape(d)
                ));
            }
        }
        for e in &entries {
            if let Entry::Item(o) = e {
                let name = o.name.strip_prefix(prefix).unwrap_or(&o.name);
                let classes: Vec<String> = o
                    .content_type
                    .split('/')
                    .map(|t| format!("type-{}", html_escape(&t.to_lowercase())))
                    .collect();
                let iso = o.ts.iso();
                let date = iso.split('.').next().unwrap_or("").replace('T', " ");
                body.push_str(&format!(
                    "   <tr class=\"item {}\">\n    <td class=\"colname\"><a href=\"./{}\">{}</a></td>\n    <td class=\"colsize\">{}</td>\n    <td class=\"coldate\">{}</td>\n   </tr>\n",
                    classes.join(" "),
                    link(name),
                    html_escape(name),
                    human_readable(o.size),
                    html_escape(&date)
                ));
            }
        }
        body.push_str("  </table>\n </body>\n</html>\n");
        let mut resp = Response::new(Body::from(body));
        set(
            resp.headers_mut(),
            "content-type",
            "text/html; charset=UTF-8",
        );
        Ok(resp)
    }

    /// Swift's `handle_container`: `/v1/a/c` and `/v1/a/c/`.
    async fn container_request(&self) -> Result<Response> {
        if !self.may_list().await? {
            return Ok(self.error(deny(&self.ident).into_response()).await);
        }
        if !self.r.path.as_str().ends_with('/') {
            return Ok(self.redirect());
        }
        if self.web.index.is_empty() {
            return self.listing("").await;
        }
        let resp = self.same_for(&self.web.index).await;
        let s = resp.status();
        if s == StatusCode::NOT_FOUND {
            return self.listing("").await;
        }
        if !is_ok_or_redirect(s) {
            return Ok(self.error(resp).await);
        }
        Ok(resp)
    }

    /// Swift's `handle_object`: an object, or a directory below the container.
    async fn object_request(&self, name: &str) -> Result<Response> {
        let resp = self.same_for(name).await;
        let s = resp.status();
        if is_ok_or_redirect(s) {
            let dir_type = if self.web.directory_type.is_empty() {
                "application/directory"
            } else {
                self.web.directory_type.as_str()
            };
            let h = resp.headers();
            let ct = h.get("content-type").and_then(|v| v.to_str().ok());
            let len: u64 = h
                .get("content-length")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if ct != Some(dir_type) || len > 1 {
                return Ok(resp);
            }
            // A directory marker: as if missing.
        } else if s != StatusCode::NOT_FOUND {
            // Swift uses custom error pages for 404s only.
            return Ok(resp);
        }
        let slash = name.ends_with('/');
        if !self.web.index.is_empty() {
            let index = format!("{name}{}{}", if slash { "" } else { "/" }, self.web.index);
            let got = self.same_for(&index).await;
            if is_ok_or_redirect(got.status()) {
                return Ok(if slash { got } else { self.redirect() });
            }
            if got.status() != StatusCode::NOT_FOUND {
                return Ok(got);
            }
        }
        if slash {
            return self.listing(name).await;
        }
        // `name` may be a directory: redirect if anything is below `name/`.
        let below = if self.may_list().await? {
            !self.list(&format!("{name}/"), 1).await?.is_empty()
        } else {
            false
        };
        if below {
            return Ok(self.redirect());
        }
        let nf = Error::NotFound { what: "object" }.into_response();
        Ok(self.error(nf).await)
    }
}

/// Handles a GET/HEAD that [`applies`]: a web answer if the container is a web site, else the
/// ordinary one.
///
/// # Errors
/// As the container and object handlers.
pub(super) async fn handle(st: &Shared, r: Req, container: &str) -> Result<Response> {
    let (a, c) = (r.path.account().to_owned(), container.to_owned());
    let row = blocking(st, move |s| s.db.get_container(&a, &c)).await?;
    let web = row
        .as_ref()
        .map(|row| WebSettings::of(&row.meta))
        .unwrap_or_default();
    let web_mode = r.header(WEB_MODE).is_some_and(truthy);
    let (Some(row), true) = (row, web.active()) else {
        if web_mode && r.path.object().is_none() {
            return Err(Error::NotFound { what: "web site" });
        }
        return super::dispatch_plain(st, r).await;
    };
    let object = r.path.object().map(str::to_owned);
    let ident = match &r.ident {
        Identity::Service(_) => Identity::Anonymous,
        other => other.clone(),
    };
    let site = Site {
        st,
        r: &r,
        row,
        web,
        ident,
    };
    let mut resp = match object {
        None => site.container_request().await?,
        Some(o) => site.object_request(&o).await?,
    };
    // Listings and redirects are cached at the edge like the container's objects.
    let cc = site
        .row
        .meta
        .get(outpost_proto::meta::CONTAINER_CACHE_CONTROL);
    if let Some(cc) = cc.filter(|_| !resp.headers().contains_key("cache-control")) {
        set(resp.headers_mut(), "cache-control", cc);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escapes_and_sizes_as_python() {
        assert_eq!(py_quote("b & c.html", "/"), "b%20%26%20c.html");
        assert_eq!(py_quote("a/é~", "/"), "a/%C3%A9~");
        assert_eq!(
            html_escape("<a href='x'>&\"</a>"),
            "&lt;a href=&#x27;x&#x27;&gt;&amp;&quot;&lt;/a&gt;"
        );
        assert_eq!(human_readable(1023), "1023");
        assert_eq!(human_readable(1024), "1Ki");
        assert_eq!(human_readable(1536), "2Ki");
        assert_eq!(human_readable(5 * 1024 * 1024), "5Mi");
        assert!(truthy(" Yes") && !truthy("false") && !truthy(""));
    }

    #[test]
    fn redirect_base_as_swob_host_url() {
        assert_eq!(url_base(None, "h.test:8080"), "http://h.test:8080");
        assert_eq!(url_base(None, "h.test:80"), "http://h.test");
        assert_eq!(
            url_base(Some("https://www.example.com:443/base/"), "ignored"),
            "https://www.example.com"
        );
        assert_eq!(
            url_base(Some("https://cdn.test:8443"), "ignored"),
            "https://cdn.test:8443"
        );
        assert_eq!(url_base(Some("http://a.test:80"), "x"), "http://a.test");
    }

    #[test]
    fn a_site_needs_an_index_or_listings() {
        let mut meta = crate::db::Meta::new();
        meta.insert(WEB_ERROR.into(), "error.html".into());
        assert!(!WebSettings::of(&meta).active());
        meta.insert(WEB_LISTINGS.into(), "false".into());
        assert!(WebSettings::of(&meta).active(), "any value, as Swift");
        meta.clear();
        meta.insert(WEB_INDEX.into(), " index.html ".into());
        assert_eq!(WebSettings::of(&meta).index, "index.html");
    }
}
