//! (a) Outpost tokens round-trip through `verify()` on every carrier; (b) any single mutation
//! of the token or of the request is denied.

use std::net::IpAddr;

use outpost_auth::token::{self, METHODS};
use outpost_auth::{Claims, DenyReason, ScopeClaim, StoragePath, TokenKind};
use proptest::prelude::*;
use proptest::sample::Index;

use super::{carrier, denied, ip_range, segment, Carrier, Keys, Req, K1_SECRET, LEEWAY};

/// `(container, object segments)`.
fn object_path() -> impl Strategy<Value = (String, Vec<String>)> {
    (segment(), prop::collection::vec(segment(), 1..4))
}

/// A scope covering `/<segs...>` (the account-relative path), derived from its segments.
fn covering_pattern(segs: &[String], pick: Index, shape: u8) -> String {
    let k = 1 + pick.index(segs.len());
    let prefix = format!("/{}", segs[..k].join("/"));
    match shape % 6 {
        // A literal prefix covers everything below it.
        0 => prefix,
        1 => format!("{prefix}/"),
        2 => format!("{prefix}/**"),
        // `**` anywhere, then the exact tail.
        3 => format!("/**/{}", segs[k - 1..].join("/")),
        // One whole segment replaced by `*`, at full length.
        4 => {
            let mut s = segs.to_vec();
            s[k - 1] = "*".into();
            format!("/{}", s.join("/"))
        }
        // Keep the first character of the last segment, glob the rest.
        _ => {
            let mut s = segs.to_vec();
            let first = s[segs.len() - 1]
                .chars()
                .next()
                .expect("segments are non-empty");
            let last = s.len() - 1;
            s[last] = format!("{first}*");
            format!("/{}", s.join("/"))
        }
    }
}

/// A scope's method list: `None` (GET,HEAD) or a non-empty subset of [`METHODS`].
fn methods() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        prop::sample::subsequence(METHODS.to_vec(), 1..=METHODS.len())
            .prop_map(|m| Some(m.join(","))),
    ]
}

/// Everything needed to sign a token and build a request it allows.
#[derive(Debug, Clone)]
struct TokenCase {
    carrier: Carrier,
    account: String,
    container: String,
    object: Vec<String>,
    claims: Claims<'static>,
    method: String,
    client_ip: IpAddr,
    now: u64,
}

impl TokenCase {
    fn path(&self) -> StoragePath {
        StoragePath::build(
            &self.account,
            Some(&self.container),
            Some(&self.object.join("/")),
        )
        .expect("generated names are valid")
    }

    fn sign(&self, keys: &Keys, kid: &str) -> String {
        let key = keys.tokens.get(kid, self.now, 0).expect("test key exists");
        token::sign(&self.claims, key).expect("generated claims are valid")
    }

    fn request(&self, token: &str) -> Req {
        Req::new(
            self.carrier,
            token,
            &self.method,
            self.path(),
            self.client_ip,
            self.now,
        )
    }
}

/// Token cases. `literal_container`: every covering scope starts with the container as a
/// literal segment (so a request into `<container>-x` is never covered); `min_ips`: at least
/// this many address ranges.
fn token_case(literal_container: bool, min_ips: usize) -> impl Strategy<Value = TokenCase> {
    let scopes = prop::collection::vec((any::<Index>(), any::<u8>(), methods()), 1..4);
    let decoys = prop::collection::vec(("[a-z]{1,6}", methods()), 0..3);
    let times = (
        1_600_000_000u64..2_000_000_000,
        0u64..1_000_000,
        prop::option::of(0u64..1_000_000),
        0u64..100_000,
        1u64..100_000,
    );
    let ids = (
        prop::option::of("[a-zA-Z0-9-]{1,12}"),
        prop::option::of("[a-zA-Z0-9@.]{1,12}"),
    );
    (
        carrier(),
        segment(),
        object_path(),
        scopes,
        decoys,
        prop::collection::vec(ip_range(), min_ips..4),
        any::<Index>(),
        times,
        ids,
        any::<Index>(),
    )
        .prop_map(
            move |(
                carrier,
                account,
                (container, object),
                scopes,
                decoys,
                ips,
                ip_pick,
                t,
                ids,
                m_pick,
            )| {
                let (now, lifetime, nbf_age, iat_age, idle) = t;
                let mut segs = vec![container.clone()];
                segs.extend(object.iter().cloned());
                let covering: Vec<ScopeClaim<'static>> = scopes
                    .into_iter()
                    .map(|(pick, shape, methods)| {
                        // Shapes 3+ may not start with the container literally.
                        let shape = if literal_container { shape % 3 } else { shape };
                        ScopeClaim {
                            pattern: covering_pattern(&segs, pick, shape).into(),
                            methods: methods.map(Into::into),
                        }
                    })
                    .collect();
                let mut all = covering.clone();
                all.extend(decoys.into_iter().map(|(d, methods)| ScopeClaim {
                    pattern: format!("/zz-decoy-{d}/**").into(),
                    methods: methods.map(Into::into),
                }));
                // The request method: one the first covering scope allows.
                let allowed: Vec<&str> = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS"]
                    .into_iter()
                    .filter(|m| covering[0].allows_method(m))
                    .collect();
                let method = allowed[m_pick.index(allowed.len())].to_owned();
                let kind = if carrier == Carrier::Cookie {
                    TokenKind::Session
                } else {
                    TokenKind::Url
                };
                // Valid at `now`, possibly only thanks to the leeway.
                let expires = now - LEEWAY + lifetime;
                let client_ip = if ips.is_empty() {
                    IpAddr::from([192, 0, 2, 99])
                } else {
                    ips[ip_pick.index(ips.len())].1
                };
                let session = kind == TokenKind::Session;
                let claims = Claims {
                    account: account.clone().into(),
                    kind,
                    scopes: all,
                    not_before: nbf_age.map(|a| (now + LEEWAY).saturating_sub(a).min(expires)),
                    expires,
                    issued_at: (session || iat_age % 2 == 0).then(|| now - iat_age),
                    hard_expires: session.then_some(expires + idle),
                    idle_timeout: session.then_some(idle),
                    ips: ips.into_iter().map(|(s, _)| s.into()).collect(),
                    session_id: ids.0.map(Into::into),
                    user_id: ids.1.map(Into::into),
                    nonce: None,
                };
                TokenCase {
                    carrier,
                    account,
                    container,
                    object,
                    claims,
                    method,
                    client_ip,
                    now,
                }
            },
        )
}

/// A change to a request that its token must not allow.
#[derive(Debug, Clone)]
enum RequestMutation {
    /// Request into `<container>-x`, which no scope covers.
    Container,
    /// A method no covering scope allows (picked among the disallowed ones).
    Method(Index),
    /// Another account.
    Account,
    /// This many seconds past expiry + leeway.
    Late(u64),
    /// This many seconds before not-before − leeway (re-signed with a not-before if needed).
    Early(u64),
    /// Sessions: re-signed with a hard expiry this many seconds before now − leeway.
    HardExpired(u64),
    /// A client outside every range (192.0.2.0/24 or 2001:db8::/32).
    Ip(bool),
    /// Same key id, another secret.
    Key,
    /// Signed with `k2`, sent under `k1`'s id.
    KeyId,
}

fn request_mutation() -> impl Strategy<Value = RequestMutation> {
    prop_oneof![
        Just(RequestMutation::Container),
        any::<Index>().prop_map(RequestMutation::Method),
        Just(RequestMutation::Account),
        (0u64..1_000_000).prop_map(RequestMutation::Late),
        (0u64..1_000_000).prop_map(RequestMutation::Early),
        (0u64..1_000_000).prop_map(RequestMutation::HardExpired),
        any::<bool>().prop_map(RequestMutation::Ip),
        Just(RequestMutation::Key),
        Just(RequestMutation::KeyId),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a) sign → verify through `verify()` gives back the account, expiry and exact claims.
    #[test]
    fn token_round_trips(case in token_case(false, 0)) {
        let keys = Keys::new(K1_SECRET, Vec::new());
        let token = case.sign(&keys, "k1");
        let grant = case.request(&token).verify(&keys)
            .map_err(|e| TestCaseError::fail(format!("{e} for {case:?}")))?;
        prop_assert_eq!(grant.mechanism(), case.carrier.mechanism());
        prop_assert_eq!(grant.account(), case.account.as_str());
        prop_assert_eq!(grant.expires(), case.claims.expires);
        prop_assert_eq!(grant.claims(), Some(&case.claims));
        let rel = case.path().account_relative().to_owned();
        prop_assert!(grant.allows(&case.method, &rel));
    }

    /// (b) Replacing any one character of a signed token with another visible ASCII character
    /// gives a denial on every carrier.
    #[test]
    fn token_char_mutation_is_denied(
        case in token_case(false, 0),
        at in any::<Index>(),
        with in 0x21u8..0x7f,
    ) {
        let keys = Keys::new(K1_SECRET, Vec::new());
        let token = case.sign(&keys, "k1");
        let i = at.index(token.len());
        prop_assume!(token.as_bytes()[i] != with);
        let mut bytes = token.into_bytes();
        bytes[i] = with;
        let forged = String::from_utf8(bytes).expect("ASCII stays UTF-8");
        let reason = denied(case.request(&forged).verify(&keys))?;
        prop_assert_eq!(reason, DenyReason::Invalid, "{}", forged);
    }

    /// (b) Any one change to the request (path, method, account, time, address) or to the key
    /// gives a denial with the matching reason.
    #[test]
    fn token_request_mutation_is_denied(case in token_case(true, 1), m in request_mutation()) {
        let keys = Keys::new(K1_SECRET, Vec::new());
        let mut token = case.sign(&keys, "k1");
        let mut case = case;
        let mut verify_keys = Keys::new(K1_SECRET, Vec::new());
        let expected = match &m {
            RequestMutation::Container => {
                case.container.push_str("-x");
                DenyReason::WrongScope
            }
            RequestMutation::Method(pick) => {
                let rel = case.path().account_relative().to_owned();
                let all = ["GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS", "PATCH"];
                let disallowed: Vec<&str> = all
                    .into_iter()
                    .filter(|m| case.claims.scope_for(m, &rel).is_none())
                    .collect();
                case.method = disallowed[pick.index(disallowed.len())].to_owned();
                DenyReason::WrongScope
            }
            RequestMutation::Account => {
                case.account.push('x');
                DenyReason::WrongScope
            }
            RequestMutation::Late(d) => {
                case.now = case.claims.expires + LEEWAY + 1 + d;
                DenyReason::Expired
            }
            RequestMutation::Early(d) => {
                let nbf = match case.claims.not_before {
                    Some(nbf) => nbf,
                    None => {
                        let nbf = case.now.min(case.claims.expires);
                        case.claims.not_before = Some(nbf);
                        token = case.sign(&keys, "k1");
                        nbf
                    }
                };
                case.now = nbf - LEEWAY - 1 - d;
                DenyReason::NotYetValid
            }
            RequestMutation::HardExpired(d) => {
                if case.claims.kind != TokenKind::Session {
                    return Ok(());
                }
                case.claims.hard_expires = Some(case.now - LEEWAY - 1 - d);
                token = case.sign(&keys, "k1");
                DenyReason::Expired
            }
            RequestMutation::Ip(v6) => {
                case.client_ip = if *v6 {
                    "2001:db8::1".parse().expect("address literal")
                } else {
                    IpAddr::from([192, 0, 2, 1])
                };
                DenyReason::WrongIp
            }
            RequestMutation::Key => {
                verify_keys = Keys::new("a-different-secret-for-k1", Vec::new());
                DenyReason::Invalid
            }
            RequestMutation::KeyId => {
                let k2 = case.sign(&verify_keys, "k2");
                let renamed = k2.replacen(".k2.", ".k1.", 1);
                let reason = denied(case.request(&renamed).verify(&verify_keys))?;
                prop_assert_eq!(reason, DenyReason::Invalid);
                return Ok(());
            }
        };
        let reason = denied(case.request(&token).verify(&verify_keys))?;
        prop_assert_eq!(reason, expected, "{:?}", m);
    }
}
