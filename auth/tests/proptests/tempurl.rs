//! (c) Swift tempurls signed with `tempurl::sign` verify through `verify()`, and any
//! single-field mutation is denied.

use std::net::IpAddr;

use http::HeaderMap;
use outpost_auth::tempurl::{self, Digest, TempUrlSpec};
use outpost_auth::{
    verify, AccessRequest, CanonicalPath, DenyReason, Error, Mechanism, NoRevocations, StoragePath,
    VerifiedGrant, VerifyOptions,
};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{denied, ip_range, segment, Keys, K1_SECRET, LEEWAY};

/// Everything needed to sign a tempurl and build a request it allows.
#[derive(Debug, Clone)]
struct TempUrlCase {
    account: String,
    container: String,
    /// Object name; for prefix URLs it starts with `prefix`.
    object: String,
    prefix: Option<String>,
    method: &'static str,
    lower_case_method: bool,
    expires: u64,
    iso8601: bool,
    digest: Digest,
    ip_range: Option<(String, IpAddr)>,
    key: Vec<u8>,
    /// Slot of the signing key among decoys.
    key_slot: usize,
    now: u64,
}

const TEMPURL_METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/// The client when the URL has no address range; outside every generated range.
const OUTSIDE_V4: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 5));

/// Object-name characters that survive an unencoded query string (the prefix is sent raw, as
/// python-swiftclient does): no `&`, `+`, `%`. `~` is reserved for mutations.
fn tempurl_case() -> impl Strategy<Value = TempUrlCase> {
    (
        "[a-zA-Z0-9_-]{1,8}",
        segment(),
        "[a-zA-Z0-9 _.é/-]{1,12}",
        prop::option::of("[a-zA-Z0-9 _.é/-]{1,6}"),
        (
            prop::sample::select(TEMPURL_METHODS.to_vec()),
            any::<bool>(),
        ),
        (
            1_600_000_000u64..2_000_000_000,
            0u64..1_000_000,
            any::<bool>(),
        ),
        prop_oneof![
            Just(Digest::Sha1),
            Just(Digest::Sha256),
            Just(Digest::Sha512)
        ],
        prop::option::of(ip_range()),
        (prop::collection::vec(any::<u8>(), 1..64), 0usize..4),
    )
        .prop_filter("object must be a valid name", |(_, _, o, p, ..)| {
            let full = format!("{}{o}", p.as_deref().unwrap_or(""));
            CanonicalPath::from_decoded(&format!("/{full}")).is_ok() && !full.starts_with('/')
        })
        .prop_map(
            |(account, container, tail, prefix, (method, lower), t, digest, ip_range, k)| {
                let (now, lifetime, iso8601) = t;
                let object = format!("{}{tail}", prefix.as_deref().unwrap_or(""));
                TempUrlCase {
                    account,
                    container,
                    object,
                    prefix,
                    method,
                    lower_case_method: lower,
                    expires: now - LEEWAY + lifetime,
                    iso8601,
                    digest,
                    ip_range,
                    key: k.0,
                    key_slot: k.1,
                    now,
                }
            },
        )
}

impl TempUrlCase {
    /// Signs; returns the query string.
    fn sign(&self) -> String {
        let signed_path = match &self.prefix {
            Some(p) => format!("/v1/AUTH_{}/{}/{p}", self.account, self.container),
            None => format!(
                "/v1/AUTH_{}/{}/{}",
                self.account, self.container, self.object
            ),
        };
        let method = if self.lower_case_method {
            self.method.to_ascii_lowercase()
        } else {
            self.method.to_owned()
        };
        let url = tempurl::sign(
            &TempUrlSpec {
                method: &method,
                path: &signed_path,
                expires: self.expires,
                prefix: self.prefix.is_some(),
                ip_range: self.ip_range.as_ref().map(|(r, _)| r.as_str()),
                iso8601: self.iso8601,
                digest: self.digest,
            },
            &self.key,
        )
        .expect("generated spec is valid");
        // The path is returned unencoded and may itself hold a `?`.
        url[signed_path.len() + 1..].to_owned()
    }

    /// The key store: the signing key in its slot, decoys elsewhere.
    fn keys(&self, key: &[u8]) -> Keys {
        let mut tempurl: Vec<Vec<u8>> = (0..3).map(|i| format!("decoy-{i}").into_bytes()).collect();
        tempurl.insert(self.key_slot.min(3), key.to_vec());
        Keys::new(K1_SECRET, tempurl)
    }

    /// Verifies the request this case allows, with `query` and `key`, sha1 enabled.
    fn verify(&self, query: &str, key: &[u8]) -> Result<VerifiedGrant, Error> {
        let opts = VerifyOptions {
            allow_sha1: true,
            ..VerifyOptions::default()
        };
        self.verify_with(query, key, &opts)
    }

    fn verify_with(
        &self,
        query: &str,
        key: &[u8],
        opts: &VerifyOptions,
    ) -> Result<VerifiedGrant, Error> {
        let path = StoragePath::build(&self.account, Some(&self.container), Some(&self.object))
            .expect("generated names are valid");
        let headers = HeaderMap::new();
        let req = AccessRequest {
            method: self.method,
            path: &path,
            query: Some(query),
            path_token: None,
            headers: &headers,
            client_ip: self.ip_range.as_ref().map_or(OUTSIDE_V4, |r| r.1),
            now: self.now,
        };
        verify(&req, &self.keys(key), &NoRevocations, opts)
    }
}

/// A change to a tempurl request or to its query string.
#[derive(Debug, Clone)]
enum TempUrlMutation {
    Account,
    Container,
    /// `~` + object: another object, and never under the prefix.
    Object,
    Method(Index),
    /// `temp_url_expires` rewritten to another epoch value.
    ExpiresValue(u64),
    /// This many seconds past expiry + leeway.
    Late(u64),
    /// One byte of the key changed.
    Key(Index),
    /// Range added, removed or respelled (still containing the client).
    IpRange,
    /// Client outside the range (re-signed with a range when there was none).
    IpOutside,
    /// One character of `temp_url_sig` replaced.
    SigChar(Index, u8),
    /// sha1 with the default options (sha1 off).
    Sha1Off,
}

fn tempurl_mutation() -> impl Strategy<Value = TempUrlMutation> {
    prop_oneof![
        Just(TempUrlMutation::Account),
        Just(TempUrlMutation::Container),
        Just(TempUrlMutation::Object),
        any::<Index>().prop_map(TempUrlMutation::Method),
        (1u64..1_000_000).prop_map(TempUrlMutation::ExpiresValue),
        (0u64..1_000_000).prop_map(TempUrlMutation::Late),
        any::<Index>().prop_map(TempUrlMutation::Key),
        Just(TempUrlMutation::IpRange),
        Just(TempUrlMutation::IpOutside),
        (any::<Index>(), 0x21u8..0x7f).prop_map(|(i, c)| TempUrlMutation::SigChar(i, c)),
        Just(TempUrlMutation::Sha1Off),
    ]
}

/// Replaces the value of query parameter `name` (or appends it, or removes it with `None`).
fn set_param(query: &str, name: &str, value: Option<&str>) -> String {
    let mut parts: Vec<String> = query
        .split('&')
        .filter(|p| p.split('=').next() != Some(name))
        .map(str::to_owned)
        .collect();
    if let Some(v) = value {
        parts.push(format!("{name}={v}"));
    }
    parts.join("&")
}

/// True when replacing `from` by `to` in a signature spells the same bytes: hex is read case-
/// insensitively, and base64 signatures are accepted in both the URL-safe and the standard
/// alphabet.
fn same_sig_symbol(from: u8, to: u8) -> bool {
    from.eq_ignore_ascii_case(&to) && from.is_ascii_hexdigit()
        || matches!((from, to), (b'-', b'+') | (b'_', b'/'))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (c) tempurl::sign → verify() round trip (with sha1 enabled), and a `HEAD` is allowed by
    /// a `GET`, `PUT` or `POST` signature as in Swift.
    #[test]
    fn tempurl_round_trips(case in tempurl_case()) {
        let query = case.sign();
        let grant = case.verify(&query, &case.key)
            .map_err(|e| TestCaseError::fail(format!("{e}: {query} for {case:?}")))?;
        prop_assert_eq!(grant.mechanism(), Mechanism::SwiftTempUrl);
        prop_assert_eq!(grant.account(), case.account.as_str());
        prop_assert_eq!(grant.expires(), case.expires);
        if ["GET", "PUT", "POST"].contains(&case.method) {
            let head = TempUrlCase { method: "HEAD", ..case.clone() };
            prop_assert!(head.verify(&query, &case.key).is_ok());
        }
    }

    /// (c) Any single-field mutation of a tempurl request is denied.
    #[test]
    fn tempurl_mutation_is_denied(case in tempurl_case(), m in tempurl_mutation()) {
        let mut query = case.sign();
        let mut case = case;
        let mut key = case.key.clone();
        match &m {
            TempUrlMutation::Account => case.account.push('x'),
            TempUrlMutation::Container => case.container.push('x'),
            TempUrlMutation::Object => case.object.insert(0, '~'),
            TempUrlMutation::Method(pick) => {
                // A HEAD is allowed by GET, PUT and POST signatures (Swift behaviour).
                let head_ok = ["GET", "PUT", "POST"].contains(&case.method);
                let others: Vec<&'static str> = TEMPURL_METHODS
                    .into_iter()
                    .chain(["OPTIONS", "PATCH"])
                    .filter(|m| *m != case.method && !(head_ok && *m == "HEAD"))
                    .collect();
                case.method = others[pick.index(others.len())];
            }
            TempUrlMutation::ExpiresValue(d) => {
                let e = (case.expires + d).to_string();
                query = set_param(&query, "temp_url_expires", Some(&e));
            }
            TempUrlMutation::Late(d) => case.now = case.expires + LEEWAY + 1 + d,
            TempUrlMutation::Key(at) => {
                let i = at.index(key.len());
                key[i] ^= 0x01;
            }
            TempUrlMutation::IpRange => {
                let respelled = match &case.ip_range {
                    None => Some("0.0.0.0/0".to_owned()),
                    Some((r, _)) if r.contains('/') => None,
                    Some((r, ip)) => {
                        Some(format!("{r}/{}", if ip.is_ipv4() { 32 } else { 128 }))
                    }
                };
                if respelled.as_deref() == Some("0.0.0.0/0") {
                    // The client must be inside the added range to reach the signature check.
                    case.ip_range = Some(("0.0.0.0/0".into(), OUTSIDE_V4));
                }
                query = set_param(&query, "temp_url_ip_range", respelled.as_deref());
            }
            TempUrlMutation::IpOutside => {
                if case.ip_range.is_none() {
                    case.ip_range = Some(("10.9.8.7/32".into(), IpAddr::from([10, 9, 8, 7])));
                    query = case.sign();
                }
                let (_, ip) = case.ip_range.as_mut().expect("set above");
                *ip = if ip.is_ipv4() {
                    IpAddr::from([192, 0, 2, 1])
                } else {
                    "2001:db8::1".parse().expect("address literal")
                };
            }
            TempUrlMutation::SigChar(at, with) => {
                let start = "temp_url_sig=".len();
                prop_assert!(query.starts_with("temp_url_sig="));
                let end = query.find('&').expect("sig is followed by expires");
                let i = start + at.index(end - start);
                let from = query.as_bytes()[i];
                prop_assume!(from != *with && !same_sig_symbol(from, *with));
                let mut bytes = query.into_bytes();
                bytes[i] = *with;
                query = String::from_utf8(bytes).expect("ASCII stays UTF-8");
            }
            TempUrlMutation::Sha1Off => {
                case.digest = Digest::Sha1;
                let query = case.sign();
                let r = case.verify_with(&query, &key, &VerifyOptions::default());
                prop_assert_eq!(r, Err(Error::DigestNotAllowed { digest: "sha1" }));
                return Ok(());
            }
        }
        let reason = denied(case.verify(&query, &key))?;
        let expected = match m {
            TempUrlMutation::Late(_) => DenyReason::Expired,
            TempUrlMutation::IpOutside => DenyReason::WrongIp,
            TempUrlMutation::Object if case.prefix.is_some() => DenyReason::WrongScope,
            TempUrlMutation::Method(_) if !TEMPURL_METHODS.contains(&case.method) => {
                DenyReason::WrongScope
            }
            _ => DenyReason::Invalid,
        };
        prop_assert_eq!(reason, expected, "{:?} {}", m, query);
    }
}
