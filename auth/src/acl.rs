//! Swift's ACLs, parsed and validated exactly as Swift 2.38 does
//! (`swift/common/middleware/acl.py` and tempauth).
//!
//! - Container ACLs (`X-Container-Read`, `X-Container-Write`): comma-separated items, each a
//!   referrer designation `.r:[-]<host|.domain|*>` (read ACLs only), `.rlistings`, or a group:
//!   with tempauth an account name (`test`: every user of that account), a user
//!   (`test:tester`) or an account id (`AUTH_test`: that account's admins). Groups are matched
//!   exactly: tempauth has no wildcards, so `test:*` and `*:*` grant nothing. [`clean`]
//!   normalises a header as Swift stores it (or refuses it with Swift's sentence);
//!   [`ContainerAcl`] answers the questions tempauth asks of it.
//! - Account ACLs (`X-Account-Access-Control`): a JSON object with the levels `admin`,
//!   `read-write` and `read-only`, each a list of groups ([`AccountAcl`]).
//!
//! Pure functions: the caller decides who the groups of a request are and what each grant
//! allows (the origin's `access` module, after tempauth's `authorize`).

use crate::Error;

/// Which container ACL header a value is for: referrers are only allowed in read ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclHeader {
    /// `X-Container-Read`.
    Read,
    /// `X-Container-Write`.
    Write,
}

/// Normalises a container ACL as Swift's `clean_acl` does: items trimmed, empty items
/// dropped, `.ref:`/`.referer:`/`.referrer:` shortened to `.r:`, a leading `*` of a domain
/// dropped (`.r:*.example.com` is `.r:.example.com`).
///
/// # Errors
/// [`Error::AclReferrerInWriteAcl`], [`Error::AclNoReferrerHost`],
/// [`Error::AclUnknownDesignator`], whose messages are Swift's.
pub fn clean(header: AclHeader, value: &str) -> Result<String, Error> {
    let mut out: Vec<String> = Vec::new();
    for raw in value.split(',') {
        let raw = raw.trim();
        if raw.is_empty() {
            continue;
        }
        let Some((first, second)) = raw.split_once(':') else {
            out.push(raw.to_owned());
            continue;
        };
        let (first, second) = (first.trim(), second.trim());
        if !first.starts_with('.') {
            out.push(raw.to_owned());
        } else if matches!(first, ".r" | ".ref" | ".referer" | ".referrer") {
            if header == AclHeader::Write {
                return Err(Error::AclReferrerInWriteAcl {
                    item: raw.to_owned(),
                });
            }
            let (negate, mut host) = match second.strip_prefix('-') {
                Some(rest) => (true, rest.trim()),
                None => (false, second),
            };
            if host != "*" {
                if let Some(rest) = host.strip_prefix('*') {
                    host = rest.trim();
                }
            }
            if host.is_empty() || host == "." {
                return Err(Error::AclNoReferrerHost {
                    item: raw.to_owned(),
                });
            }
            out.push(format!(".r:{}{host}", if negate { "-" } else { "" }));
        } else {
            return Err(Error::AclUnknownDesignator {
                designator: first.to_owned(),
                item: raw.to_owned(),
            });
        }
    }
    Ok(out.join(","))
}

/// A cleaned container ACL, split into referrer designations and groups (Swift's
/// `parse_acl`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerAcl {
    referrers: Vec<String>,
    groups: Vec<String>,
}

impl ContainerAcl {
    /// Parses a stored ACL; groups are percent-decoded as Swift's `unquote` does. A value
    /// stored before ACLs were cleaned (`.referrer:*`, spaces) is cleaned first.
    pub fn parse(acl: Option<&str>) -> ContainerAcl {
        let mut out = ContainerAcl::default();
        let raw = acl.unwrap_or("");
        let cleaned = clean(AclHeader::Read, raw).unwrap_or_else(|_| raw.to_owned());
        for item in cleaned.split(',').filter(|s| !s.is_empty()) {
            match item.strip_prefix(".r:") {
                Some(r) => out.referrers.push(r.to_owned()),
                None => out.groups.push(
                    percent_encoding::percent_decode_str(item)
                        .decode_utf8_lossy()
                        .into_owned(),
                ),
            }
        }
        out
    }

    /// Swift's `referrer_allowed`: the designations apply in order, the last one matching
    /// the `Referer` header's host wins; `*` matches any request, with or without a
    /// `Referer`; `.example.com` matches hosts ending with it (not `example.com` itself).
    pub fn referrer_allowed(&self, referer: Option<&str>) -> bool {
        let host = referer
            .and_then(url_host)
            .unwrap_or_else(|| "unknown".into());
        let matches = |m: &str| m == host || (m.starts_with('.') && host.ends_with(m));
        let mut allow = false;
        for m in &self.referrers {
            match m.strip_prefix('-') {
                Some(deny) if matches(deny) => allow = false,
                Some(_) => {}
                None if m == "*" || matches(m) => allow = true,
                None => {}
            }
        }
        allow
    }

    /// What the referrer designations allow whatever the request, so that a caller deciding
    /// on every request (the edge) reads `Referer` only when the answer depends on it.
    /// [`ReferrerScope::ByReferer`] is the only answer that needs
    /// [`ContainerAcl::referrer_allowed`]; the other two are what it answers for every
    /// `Referer`.
    pub fn referrer_scope(&self) -> ReferrerScope {
        let Some(last_star) = self.referrers.iter().rposition(|m| m == "*") else {
            return if self.referrers.iter().any(|m| !m.starts_with('-')) {
                ReferrerScope::ByReferer
            } else {
                ReferrerScope::Nobody
            };
        };
        if self.referrers[last_star..]
            .iter()
            .any(|m| m.starts_with('-'))
        {
            ReferrerScope::ByReferer
        } else {
            ReferrerScope::Everyone
        }
    }

    /// `.rlistings`: a referrer grant also allows listing the container.
    pub fn listings(&self) -> bool {
        self.groups.iter().any(|g| g == ".rlistings")
    }

    /// True if any of `groups` (the requester's, as tempauth names them) is granted.
    pub fn grants_any<'a>(&self, mut groups: impl Iterator<Item = &'a str>) -> bool {
        groups.any(|g| self.groups.iter().any(|x| x == g))
    }
}

/// What a container's referrer designations allow, before looking at a request
/// ([`ContainerAcl::referrer_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReferrerScope {
    /// No request: there is no designation that allows (none, or denials only).
    Nobody,
    /// Every request, with or without `Referer`: `.r:*` and no denial after it.
    Everyone,
    /// It depends on the request's `Referer`.
    ByReferer,
}

/// A request's `Referer` as Swift sees it: WSGI hands headers over as Latin-1, so a value
/// that is not visible ASCII is read byte for byte as Latin-1 (and its host still found)
/// rather than dropped, which would make it `unknown` and slip past a `.r:-host` denial.
pub fn referer(headers: &http::HeaderMap) -> Option<std::borrow::Cow<'_, str>> {
    let v = headers.get(http::header::REFERER)?;
    Some(match v.to_str() {
        Ok(s) => std::borrow::Cow::Borrowed(s),
        Err(_) => std::borrow::Cow::Owned(v.as_bytes().iter().map(|&b| char::from(b)).collect()),
    })
}

/// The host of a URL as Python's `urlparse(url).hostname`: lower-cased, without user info,
/// port or IPv6 brackets; `None` when the value has no `//` authority.
fn url_host(url: &str) -> Option<String> {
    let rest = match url.split_once("//") {
        Some(("", rest)) => rest,
        Some((scheme, rest))
            if scheme.strip_suffix(':').is_some_and(|s| {
                s.starts_with(|c: char| c.is_ascii_alphabetic())
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
            }) =>
        {
            rest
        }
        _ => return None,
    };
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let host = match hostport.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => hostport.split(':').next().unwrap_or(""),
    };
    (!host.is_empty()).then(|| host.to_lowercase())
}

/// The levels of an account ACL, in the order tempauth checks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountLevel {
    /// `admin`: owns the account (may change its metadata and ACLs).
    Admin,
    /// `read-write`: every operation on containers and objects; account GET/HEAD.
    ReadWrite,
    /// `read-only`: GET and HEAD.
    ReadOnly,
}

impl AccountLevel {
    const ALL: [AccountLevel; 3] = [
        AccountLevel::Admin,
        AccountLevel::ReadWrite,
        AccountLevel::ReadOnly,
    ];

    /// The JSON key.
    pub fn key(self) -> &'static str {
        match self {
            AccountLevel::Admin => "admin",
            AccountLevel::ReadWrite => "read-write",
            AccountLevel::ReadOnly => "read-only",
        }
    }
}

/// A tempauth account ACL (`X-Account-Access-Control`). A level is `None` when the JSON did
/// not name it (Swift echoes back the keys it was given, empty lists included).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountAcl {
    admin: Option<Vec<String>>,
    read_write: Option<Vec<String>>,
    read_only: Option<Vec<String>>,
}

impl AccountAcl {
    /// Parses and validates a header value as tempauth does (`extract_acl_and_report_errors`).
    /// The empty string is the empty ACL (it removes a stored one).
    ///
    /// # Errors
    /// [`Error::AccountAclSyntax`] (not a JSON object), [`Error::AccountAclUnknownKey`],
    /// [`Error::AccountAclNotList`], [`Error::AccountAclNotString`].
    pub fn parse(value: &str) -> Result<AccountAcl, Error> {
        if value.is_empty() {
            return Ok(AccountAcl::default());
        }
        let syntax = || Error::AccountAclSyntax {
            input: value.to_owned(),
        };
        let map: serde_json::Map<String, serde_json::Value> =
            match serde_json::from_str(value).map_err(|_| syntax())? {
                serde_json::Value::Object(m) => m,
                _ => return Err(syntax()),
            };
        if let Some(k) = map
            .keys()
            .find(|k| !AccountLevel::ALL.iter().any(|l| l.key() == k.as_str()))
        {
            return Err(Error::AccountAclUnknownKey { key: k.clone() });
        }
        let mut acl = AccountAcl::default();
        for level in AccountLevel::ALL {
            let Some(v) = map.get(level.key()) else {
                continue;
            };
            let list = v
                .as_array()
                .ok_or(Error::AccountAclNotList { key: level.key() })?;
            let names = list
                .iter()
                .map(|x| x.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(Error::AccountAclNotString { key: level.key() })?;
            *acl.level_mut(level) = Some(names);
        }
        Ok(acl)
    }

    fn level_mut(&mut self, level: AccountLevel) -> &mut Option<Vec<String>> {
        match level {
            AccountLevel::Admin => &mut self.admin,
            AccountLevel::ReadWrite => &mut self.read_write,
            AccountLevel::ReadOnly => &mut self.read_only,
        }
    }

    fn level(&self, level: AccountLevel) -> &[String] {
        match level {
            AccountLevel::Admin => self.admin.as_deref(),
            AccountLevel::ReadWrite => self.read_write.as_deref(),
            AccountLevel::ReadOnly => self.read_only.as_deref(),
        }
        .unwrap_or(&[])
    }

    /// True when no level was named: nothing to store or show.
    pub fn is_empty(&self) -> bool {
        self.admin.is_none() && self.read_write.is_none() && self.read_only.is_none()
    }

    /// The highest level granted to any of `groups`, tempauth's order (admin, read-write,
    /// read-only). An ACL whose lists are all empty grants nothing.
    pub fn level_of<'a>(
        &self,
        groups: impl Iterator<Item = &'a str> + Clone,
    ) -> Option<AccountLevel> {
        AccountLevel::ALL
            .into_iter()
            .find(|&l| groups.clone().any(|g| self.level(l).iter().any(|x| x == g)))
    }

    /// The header as Swift sends it back: JSON with sorted keys, no spaces, ASCII only
    /// (`format_acl_v2`).
    pub fn to_header(&self) -> String {
        let mut levels: Vec<(&str, &Vec<String>)> = AccountLevel::ALL
            .iter()
            .filter_map(|&l| {
                let v = match l {
                    AccountLevel::Admin => self.admin.as_ref(),
                    AccountLevel::ReadWrite => self.read_write.as_ref(),
                    AccountLevel::ReadOnly => self.read_only.as_ref(),
                };
                v.map(|v| (l.key(), v))
            })
            .collect();
        levels.sort_by_key(|(k, _)| *k);
        let body: Vec<String> = levels
            .iter()
            .map(|(k, v)| {
                let items: Vec<String> = v.iter().map(|s| json_ascii(s)).collect();
                format!("{}:[{}]", json_ascii(k), items.join(","))
            })
            .collect();
        format!("{{{}}}", body.join(","))
    }
}

/// A string as Python's `repr` prints it (Swift's error messages quote with it).
pub(crate) fn py_repr(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..0xa1).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// A JSON string as Python's `json.dumps(s)` writes it (`ensure_ascii`).
pub(crate) fn json_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_as_swift_documents_it() {
        let cases = [
            ("bob, sue", "bob,sue"),
            ("bob , sue", "bob,sue"),
            ("bob,,,sue", "bob,sue"),
            (".referrer : *", ".r:*"),
            (".ref:*.example.com", ".r:.example.com"),
            (".r:*, .rlistings", ".r:*,.rlistings"),
            (".r:-bad.example.com", ".r:-bad.example.com"),
            (".r: - *.thief.com", ".r:-.thief.com"),
            ("test:tester3", "test:tester3"),
        ];
        for (raw, want) in cases {
            assert_eq!(clean(AclHeader::Read, raw).unwrap(), want, "{raw}");
        }
        assert_eq!(
            clean(AclHeader::Read, ".r:").unwrap_err().to_string(),
            "No host/domain value after referrer designation in ACL: '.r:'"
        );
        assert!(clean(AclHeader::Read, ".r:-").is_err());
        assert!(clean(AclHeader::Read, ".r:*.").is_err());
        assert_eq!(
            clean(AclHeader::Write, ".r:*").unwrap_err().to_string(),
            "Referrers not allowed in write ACL: '.r:*'"
        );
        assert_eq!(
            clean(AclHeader::Read, ".foo:bar").unwrap_err().to_string(),
            "Unknown designator '.foo' in ACL: '.foo:bar'"
        );
        assert_eq!(
            clean(AclHeader::Write, "a:b,.rlistings").unwrap(),
            "a:b,.rlistings"
        );
    }

    #[test]
    fn referrers_in_order_last_match_wins() {
        let acl = ContainerAcl::parse(Some(".r:.example.com,.r:-bad.example.com"));
        assert!(acl.referrer_allowed(Some("http://www.example.com/page")));
        assert!(acl.referrer_allowed(Some("https://user@WWW.Example.COM:8443/x")));
        assert!(!acl.referrer_allowed(Some("http://bad.example.com/")));
        assert!(
            !acl.referrer_allowed(Some("http://example.com/")),
            "not the domain itself"
        );
        assert!(!acl.referrer_allowed(None));
        assert!(!acl.referrer_allowed(Some("www.example.com/no-scheme")));
        let star = ContainerAcl::parse(Some(".r:*,.r:-bad.example.com"));
        assert!(star.referrer_allowed(None));
        assert!(!star.referrer_allowed(Some("http://bad.example.com/")));
        assert!(!star.listings());
        let host = ContainerAcl::parse(Some(".r:good.test,.rlistings"));
        assert!(host.referrer_allowed(Some("//good.test/")));
        assert!(!host.referrer_allowed(Some("http://sub.good.test/")));
        assert!(host.listings());
        assert!(!ContainerAcl::parse(None).referrer_allowed(None));
        let legacy = ContainerAcl::parse(Some(" .referrer:* , .rlistings"));
        assert!(legacy.referrer_allowed(None) && legacy.listings());
    }

    #[test]
    fn referrer_scope_says_when_referer_matters() {
        let scope = |v: &str| ContainerAcl::parse(Some(v)).referrer_scope();
        assert_eq!(scope(""), ReferrerScope::Nobody);
        assert_eq!(scope("test:tester3,.rlistings"), ReferrerScope::Nobody);
        assert_eq!(scope(".r:-bad.example.com"), ReferrerScope::Nobody);
        assert_eq!(scope(".r:*,.rlistings"), ReferrerScope::Everyone);
        assert_eq!(scope(".r:-bad.example.com,.r:*"), ReferrerScope::Everyone);
        assert_eq!(scope(".r:*,.r:-bad.example.com"), ReferrerScope::ByReferer);
        assert_eq!(scope(".r:.example.com"), ReferrerScope::ByReferer);
        assert_eq!(scope(".r:*,.r:-*"), ReferrerScope::ByReferer);
    }

    #[test]
    fn a_latin1_referer_keeps_its_host() {
        let mut h = http::HeaderMap::new();
        assert!(referer(&h).is_none());
        h.insert(
            http::header::REFERER,
            http::HeaderValue::from_bytes(b"http://bad.example.com/\xe9").unwrap(),
        );
        let acl = ContainerAcl::parse(Some(".r:*,.r:-bad.example.com"));
        assert!(!acl.referrer_allowed(referer(&h).as_deref()));
        h.insert(
            http::header::REFERER,
            http::HeaderValue::from_static("http://good.test/"),
        );
        assert!(acl.referrer_allowed(referer(&h).as_deref()));
    }

    proptest::proptest! {
        /// `Nobody` and `Everyone` are what `referrer_allowed` answers for every `Referer`.
        #[test]
        fn referrer_scope_agrees_with_referrer_allowed(
            items in proptest::collection::vec(
                proptest::sample::select(vec![
                    ".r:*", ".r:-*", ".r:a.test", ".r:-a.test", ".r:.test", ".r:-.test",
                    ".r:unknown", ".r:-unknown", ".rlistings", "test",
                ]),
                0..6,
            ),
            referer in proptest::option::of(proptest::sample::select(vec![
                "http://a.test/", "http://b.test/x", "https://a.test:8443/", "no-scheme",
                "http://other.example/", "//a.test/",
            ])),
        ) {
            let acl = ContainerAcl::parse(Some(&items.join(",")));
            let allowed = acl.referrer_allowed(referer);
            match acl.referrer_scope() {
                ReferrerScope::Nobody => proptest::prop_assert!(!allowed),
                ReferrerScope::Everyone => proptest::prop_assert!(allowed),
                ReferrerScope::ByReferer => {}
            }
        }
    }

    #[test]
    fn groups_match_exactly_after_unquoting() {
        let acl = ContainerAcl::parse(Some("test:tester3,other,AUTH_x,a%3Ab"));
        assert!(acl.grants_any(["test", "test:tester3"].into_iter()));
        assert!(acl.grants_any(["other"].into_iter()));
        assert!(acl.grants_any(["a:b"].into_iter()));
        assert!(!acl.grants_any(["test", "test:tester"].into_iter()));
        let wild = ContainerAcl::parse(Some("test:*,*:*,*"));
        assert!(!wild.grants_any(["test", "test:tester"].into_iter()));
    }

    #[test]
    fn account_acls_validated_like_tempauth() {
        let acl = AccountAcl::parse(r#"{"read-only":["test:tester3"],"admin":[]}"#).unwrap();
        assert_eq!(
            acl.to_header(),
            r#"{"admin":[],"read-only":["test:tester3"]}"#
        );
        assert_eq!(
            acl.level_of(["test", "test:tester3"].into_iter()),
            Some(AccountLevel::ReadOnly)
        );
        assert_eq!(acl.level_of(["test", "test:tester"].into_iter()), None);
        assert!(AccountAcl::parse("").unwrap().is_empty());
        assert!(AccountAcl::parse("{}").unwrap().is_empty());
        let err = |v: &str| AccountAcl::parse(v).unwrap_err().to_string();
        assert_eq!(err("[1]"), "Syntax error in input ('[1]')");
        assert_eq!(err("{bad"), "Syntax error in input ('{bad')");
        assert_eq!(err(r#"{"foo":[]}"#), r#"Key "foo" not recognized"#);
        assert_eq!(
            err(r#"{"admin":"x"}"#),
            r#"Value for key "admin" must be a list"#
        );
        assert_eq!(
            err(r#"{"read-write":[1]}"#),
            r#"Elements of "read-write" list must be strings"#
        );
        let uni = AccountAcl::parse(r#"{"admin":["é"]}"#).unwrap();
        assert_eq!(uni.to_header(), r#"{"admin":["\u00e9"]}"#);
    }

    #[test]
    fn python_repr_quotes() {
        assert_eq!(py_repr("a'b"), "\"a'b\"");
        assert_eq!(py_repr("a'b\""), "'a\\'b\"'");
        assert_eq!(py_repr("x\\y"), "'x\\\\y'");
    }
}
