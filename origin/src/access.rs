//! Who may do what to an account, a container or an object: tempauth's `authorize`, on the
//! origin's identities, as one pure function ([`decide`]).
//!
//! In the order tempauth checks them:
//! 1. services and reseller admins own every account; an account's admins own it (account
//!    PUT and DELETE stay the reseller's, checked by the account handler);
//! 2. `OPTIONS` passes (CORS preflights are answered from container metadata);
//! 3. a container ACL's referrer designations grant object reads, and container reads with
//!    `.rlistings` ([`outpost_auth::acl::ContainerAcl::referrer_allowed`]);
//! 4. a container ACL naming one of the requester's groups grants what the ACL is for (the
//!    read ACL for GET/HEAD, the write ACL for PUT/POST/DELETE);
//! 5. an account ACL: `admin` owns the account, `read-write` may do everything to
//!    containers and objects and read the account, `read-only` may read.
//!
//! A container's own PUT/POST/DELETE consult no container ACL (Swift sets none for them).
//! Only owners see and change the owner-only metadata ([`OWNER_HEADERS`]).

use http::Method;
use outpost_auth::acl::{AccountAcl, AccountLevel, ContainerAcl};

use crate::request::Identity;

/// What a request addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `/v1/AUTH_a`.
    Account,
    /// `/v1/AUTH_a/c`.
    Container,
    /// `/v1/AUTH_a/c/o`.
    Object,
}

/// The outcome of [`decide`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Full control (Swift's `swift_owner`): sees and sets ACLs and keys.
    Owner,
    /// Allowed by an ACL, without the owner's rights to ACLs and keys.
    Granted,
    /// Not allowed: 401 for anonymous clients, 403 for others.
    Denied,
}

impl Access {
    /// True unless denied.
    pub fn allowed(self) -> bool {
        self != Access::Denied
    }
}

/// Headers (and stored metadata names) only owners see and set: Swift's
/// `swift_owner_headers`, plus the ids of our token keys.
pub const OWNER_HEADERS: &[&str] = &[
    "x-container-read",
    "x-container-write",
    "x-container-sync-key",
    "x-container-sync-to",
    "x-account-meta-temp-url-key",
    "x-account-meta-temp-url-key-2",
    "x-container-meta-temp-url-key",
    "x-container-meta-temp-url-key-2",
    "x-account-access-control",
    "x-account-outpost-key-ids",
];

/// The stored account metadata key of the account ACL (its canonical JSON form).
pub const ACCOUNT_ACL_META: &str = "x-account-access-control";

/// Everything [`decide`] looks at.
#[derive(Debug, Clone, Copy)]
pub struct Query<'a> {
    /// Who asks.
    pub ident: &'a Identity,
    /// The account addressed.
    pub account: &'a str,
    /// What in it.
    pub target: Target,
    /// The method.
    pub method: &'a Method,
    /// The container ACL that applies: `X-Container-Read` for reads, `X-Container-Write` for
    /// object writes, `None` for account requests and a container's own writes.
    pub container_acl: Option<&'a str>,
    /// The `Referer` header.
    pub referer: Option<&'a str>,
}

impl Query<'_> {
    fn reads(&self) -> bool {
        matches!(*self.method, Method::GET | Method::HEAD)
    }
}

/// tempauth's decision. `account_acl` is the account's ACL if the caller loaded it (it is
/// only needed when the rest denies an authenticated client: see [`needs_account_acl`]).
pub fn decide(q: &Query<'_>, account_acl: Option<&AccountAcl>) -> Access {
    if q.ident.owns(q.account) {
        return Access::Owner;
    }
    if *q.method == Method::OPTIONS {
        return Access::Granted;
    }
    let acl = ContainerAcl::parse(q.container_acl);
    // Referrers only ever grant reads: Swift refuses them in write ACLs, and a write ACL
    // stored before ACLs were cleaned must not make a container world-writable.
    let by_referrer = q.reads() && acl.referrer_allowed(q.referer);
    if by_referrer && (q.target == Target::Object || acl.listings()) {
        return Access::Granted;
    }
    let groups = q.ident.groups();
    if acl.grants_any(groups.iter().map(String::as_str)) {
        return Access::Granted;
    }
    match account_acl.and_then(|a| a.level_of(groups.iter().map(String::as_str))) {
        Some(AccountLevel::Admin) => Access::Owner,
        Some(AccountLevel::ReadWrite) if q.target != Target::Account || q.reads() => {
            Access::Granted
        }
        Some(AccountLevel::ReadOnly) if q.reads() => Access::Granted,
        _ => Access::Denied,
    }
}

/// True when [`decide`] without the account ACL denies a client the account ACL could still
/// admit (an authenticated user of any account).
pub fn needs_account_acl(q: &Query<'_>, without: Access) -> bool {
    without == Access::Denied && matches!(q.ident, Identity::User { .. } | Identity::Member { .. })
}

/// The account ACL stored in an account's metadata, if any.
pub fn account_acl(meta: &crate::db::Meta) -> Option<AccountAcl> {
    meta.get(ACCOUNT_ACL_META)
        .and_then(|v| AccountAcl::parse(v).ok())
        .filter(|a| !a.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member() -> Identity {
        Identity::Member {
            account: "test".into(),
            name: "test:tester3".into(),
        }
    }

    fn admin(account: &str) -> Identity {
        Identity::User {
            account: account.into(),
            name: format!("{account}:tester"),
            reseller: false,
        }
    }

    fn q<'a>(
        ident: &'a Identity,
        target: Target,
        method: &'a Method,
        acl: Option<&'a str>,
        referer: Option<&'a str>,
    ) -> Query<'a> {
        Query {
            ident,
            account: "test",
            target,
            method,
            container_acl: acl,
            referer,
        }
    }

    #[test]
    fn admins_own_plain_users_need_an_acl() {
        let (a, m, other) = (admin("test"), member(), admin("test2"));
        let get = Method::GET;
        assert_eq!(
            decide(&q(&a, Target::Object, &get, None, None), None),
            Access::Owner
        );
        assert_eq!(
            decide(&q(&m, Target::Object, &get, None, None), None),
            Access::Denied
        );
        assert_eq!(
            decide(
                &q(&m, Target::Container, &get, Some("test:tester3"), None),
                None
            ),
            Access::Granted,
            "a group grant lists without .rlistings"
        );
        assert_eq!(
            decide(&q(&m, Target::Object, &get, Some("test"), None), None),
            Access::Granted,
            "the account name is every user of it"
        );
        assert_eq!(
            decide(&q(&m, Target::Object, &get, Some("AUTH_test"), None), None),
            Access::Denied,
            "the account id is its admins"
        );
        assert_eq!(
            decide(
                &q(&other, Target::Object, &get, Some("test2:*"), None),
                None
            ),
            Access::Denied,
            "tempauth has no wildcards"
        );
        assert_eq!(
            decide(
                &q(&other, Target::Object, &get, Some("AUTH_test2"), None),
                None
            ),
            Access::Granted
        );
    }

    #[test]
    fn referrers_grant_reads_of_objects_and_listings_with_rlistings() {
        let anon = Identity::Anonymous;
        let get = Method::GET;
        let acl = Some(".r:.example.com,.r:-bad.example.com");
        let good = Some("http://www.example.com/");
        assert_eq!(
            decide(&q(&anon, Target::Object, &get, acl, good), None),
            Access::Granted
        );
        assert_eq!(
            decide(
                &q(
                    &anon,
                    Target::Object,
                    &get,
                    acl,
                    Some("http://bad.example.com/")
                ),
                None
            ),
            Access::Denied
        );
        assert_eq!(
            decide(&q(&anon, Target::Container, &get, acl, good), None),
            Access::Denied
        );
        let listed = Some(".r:*,.rlistings");
        assert_eq!(
            decide(&q(&anon, Target::Container, &get, listed, None), None),
            Access::Granted
        );
    }

    #[test]
    fn a_stored_write_acl_with_referrers_never_grants_writes() {
        let anon = Identity::Anonymous;
        let (put, del) = (Method::PUT, Method::DELETE);
        for m in [&put, &del] {
            assert_eq!(
                decide(&q(&anon, Target::Object, m, Some(".r:*"), None), None),
                Access::Denied
            );
        }
    }

    #[test]
    fn account_acl_levels() {
        let m = member();
        let acl = AccountAcl::parse(r#"{"read-only":["test:tester3"]}"#).unwrap();
        let rw = AccountAcl::parse(r#"{"read-write":["test:tester3"]}"#).unwrap();
        let adm = AccountAcl::parse(r#"{"admin":["test"]}"#).unwrap();
        let (get, put, post) = (Method::GET, Method::PUT, Method::POST);
        let d = |t, m2: &Method, a: &AccountAcl| decide(&q(&m, t, m2, None, None), Some(a));
        assert_eq!(d(Target::Object, &get, &acl), Access::Granted);
        assert_eq!(d(Target::Account, &get, &acl), Access::Granted);
        assert_eq!(d(Target::Object, &put, &acl), Access::Denied);
        assert_eq!(d(Target::Object, &put, &rw), Access::Granted);
        assert_eq!(d(Target::Container, &put, &rw), Access::Granted);
        assert_eq!(d(Target::Account, &post, &rw), Access::Denied);
        assert_eq!(d(Target::Account, &post, &adm), Access::Owner);
        assert!(needs_account_acl(
            &q(&m, Target::Object, &get, None, None),
            Access::Denied
        ));
        assert!(!needs_account_acl(
            &q(&Identity::Anonymous, Target::Object, &get, None, None),
            Access::Denied
        ));
    }
}
