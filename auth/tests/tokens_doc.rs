//! Keeps `docs/tokens.md` honest: its Python example prints the token the doc shows, Outpost's
//! signer produces that same token from the same claims, the token verifies (and is denied
//! where the doc says), and the encoding rules the doc states hold.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use outpost_auth::{
    token, verify, AccessRequest, Claims, DenyReason, Error, KeySet, KeyStore, NoRevocations,
    ScopeClaim, Secret, StoragePath, TempUrlKeys, TokenKeySpec, TokenKind, VerifiedGrant,
    VerifyOptions,
};

const SECRET: &str = "docs-example-secret-0123456789";
const KEY_ID: &str = "k2024";
const NOW: u64 = 1_700_000_000;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/tokens.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The body of the first fenced block opened by exactly `fence` at or after byte `from`, and the
/// offset just past it.
fn fenced_block(doc: &str, fence: &str, from: usize) -> (String, usize) {
    let open = format!("\n{fence}\n");
    let start = doc[from..]
        .find(&open)
        .map(|i| from + i + open.len())
        .unwrap_or_else(|| panic!("docs/tokens.md has no {fence} block after byte {from}"));
    let len = doc[start..].find("\n```").expect("fenced block is closed");
    (doc[start..start + len + 1].to_owned(), start + len + 4)
}

/// The Python program and the token the doc says it prints.
fn example() -> (String, String) {
    let doc = doc();
    let (python, after) = fenced_block(&doc, "```python", 0);
    let (token, _) = fenced_block(&doc, "```text", after);
    (python, token.trim().to_owned())
}

fn example_claims() -> Claims<'static> {
    let mut c = Claims::new("demo", TokenKind::Url, "/videos/show1/**", NOW + 3600);
    c.scopes[0].methods = Some("GET,HEAD".into());
    c.scopes.push(ScopeClaim {
        pattern: "/posters/*.jpg".into(),
        methods: None,
    });
    c.not_before = Some(NOW);
    c.ips.push("203.0.113.0/24".into());
    c.session_id = Some(Cow::Borrowed("sess-8f2c"));
    c
}

struct Keys(KeySet);

impl KeyStore for Keys {
    fn token_keys(&self, account: &str) -> Option<&KeySet> {
        (account == "demo").then_some(&self.0)
    }
    fn tempurl_keys(&self, _: &str, _: &str) -> TempUrlKeys<'_> {
        TempUrlKeys::default()
    }
}

fn keys() -> Keys {
    Keys(
        KeySet::new([TokenKeySpec {
            id: KEY_ID.into(),
            secret: Secret::new(SECRET),
            not_before: None,
            not_after: None,
        }])
        .expect("valid key"),
    )
}

/// Verifies `token` in the query of a request for `path` from `ip` at `now`.
fn check(token: &str, path: &str, ip: [u8; 4], now: u64) -> Result<VerifiedGrant, Error> {
    let path = StoragePath::parse(path).expect("valid storage path");
    let query = format!("op_token={token}");
    let headers = http::HeaderMap::new();
    let req = AccessRequest {
        method: "GET",
        path: &path,
        query: Some(&query),
        path_token: None,
        headers: &headers,
        client_ip: IpAddr::from(ip),
        now,
    };
    verify(&req, &keys(), &NoRevocations, &VerifyOptions::default())
}

const SEG: &str = "/v1/AUTH_demo/videos/show1/seg-001.ts";
const CLIENT: [u8; 4] = [203, 0, 113, 9];

#[test]
fn python_example_prints_the_documented_token() {
    let (python, expected) = example();
    let out = match Command::new("python3")
        .arg("-I")
        .arg("-c")
        .arg(&python)
        .output()
    {
        Ok(out) => out,
        Err(e) => {
            println!("skipped: cannot run python3 ({e})");
            return;
        }
    };
    assert!(
        out.status.success(),
        "python3 failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8(out.stdout).expect("python prints UTF-8");
    assert_eq!(printed.trim_end(), expected);
}

#[test]
fn rust_signer_produces_the_documented_token_and_it_verifies() {
    let (_, expected) = example();
    let keys = keys();
    let token = token::sign(&example_claims(), &keys.0.keys()[0]).expect("valid claims");
    assert_eq!(token, expected);

    let grant = check(&token, SEG, CLIENT, NOW).expect("documented token verifies");
    assert_eq!(grant.account(), "demo");
    assert_eq!(grant.session_id(), Some("sess-8f2c"));
    assert_eq!(grant.claims(), Some(&example_claims()));
    assert!(check(&token, "/v1/AUTH_demo/posters/a.jpg", CLIENT, NOW).is_ok());

    // The denials the doc lists, and the last second of leeway.
    let reason = |r: Result<VerifiedGrant, Error>| r.expect_err("denied").deny_reason();
    let show2 = "/v1/AUTH_demo/videos/show2/seg-001.ts";
    assert_eq!(
        reason(check(&token, show2, CLIENT, NOW)),
        DenyReason::WrongScope
    );
    assert_eq!(
        reason(check(&token, SEG, [198, 51, 100, 1], NOW)),
        DenyReason::WrongIp
    );
    assert!(check(&token, SEG, CLIENT, NOW + 3605).is_ok());
    assert_eq!(
        reason(check(&token, SEG, CLIENT, NOW + 3606)),
        DenyReason::Expired
    );
    assert_eq!(
        reason(check(&token, SEG, CLIENT, NOW - 6)),
        DenyReason::NotYetValid
    );
}

#[test]
fn documented_payload_and_abbreviations_match() {
    let (_, token) = example();
    let doc = doc();
    let payload = token.split('.').nth(2).expect("four parts");
    let json =
        String::from_utf8(URL_SAFE_NO_PAD.decode(payload).expect("base64url")).expect("UTF-8 JSON");
    assert!(
        doc.contains(&format!("The payload decodes to\n`{json}`.")),
        "docs/tokens.md must show the payload {json}"
    );
    let short = format!("{}...{}", &token[..13], &token[token.len() - 3..]);
    assert_eq!(short, "op1.k2024.eyJ...e_0", "abbreviation used in the doc");
    assert!(doc.contains(&short));
}

/// `op1.<kid>.<payload>.<sig>` over an arbitrary payload, signed with the example key.
fn sign_raw(payload: &str) -> String {
    let signed = format!("op1.{KEY_ID}.{payload}");
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).expect("any key");
    mac.update(signed.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signed}.{sig}")
}

#[test]
fn encoding_rules_stated_in_the_doc_hold() {
    let ok = |t: &str| check(t, SEG, CLIENT, NOW);
    // Any JSON spelling verifies: other field order, whitespace, \u escapes.
    let respelled = r#"{ "exp": 1700003600, "scp": [ {"p": "\/videos\/show1\/**"} ],
        "knd": "url", "acc": "d\u0065mo" }"#;
    let t = sign_raw(&URL_SAFE_NO_PAD.encode(respelled));
    assert!(ok(&t).is_ok(), "{:?}", ok(&t));

    let base = r#"{"acc":"demo","knd":"url","scp":[{"p":"/"}],"exp":1700003600"#;
    for (json, why) in [
        (format!(r#"{base},"xyz":1}}"#), "unknown field"),
        (format!(r#"{base},"exp":1800000000}}"#), "repeated field"),
        (format!(r#"{base},"nbf":1800000000}}"#), "nbf after exp"),
    ] {
        let t = sign_raw(&URL_SAFE_NO_PAD.encode(&json));
        assert_eq!(
            ok(&t).expect_err(why).deny_reason(),
            DenyReason::Invalid,
            "{why}"
        );
    }

    // Padding and the standard alphabet are rejected, even when correctly signed.
    let json = format!("{base}}}");
    let padded = STANDARD.encode(format!("{json} "));
    assert!(padded.ends_with('='), "{padded}");
    let with_plus = STANDARD.encode(">>>".repeat(3) + &json);
    assert!(with_plus.contains('+'), "{with_plus}");
    for payload in [padded, with_plus] {
        let t = sign_raw(&payload);
        assert!(
            matches!(ok(&t), Err(Error::Malformed { .. })),
            "{payload}: {:?}",
            ok(&t)
        );
    }
    // A stray bit in the last payload character: the MAC is right, the base64 is not.
    let mut payload = URL_SAFE_NO_PAD.encode(&json);
    assert!(
        payload.len() % 4 != 0,
        "the last character must carry unused bits"
    );
    let last = payload.pop().expect("non-empty");
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let i = alphabet.find(last).expect("base64url character");
    payload.push(alphabet.as_bytes()[i ^ 1] as char);
    assert!(matches!(
        ok(&sign_raw(&payload)),
        Err(Error::Malformed { .. })
    ));
}
