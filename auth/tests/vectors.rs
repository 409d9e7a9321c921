//! Swift tempurl test vectors from python-swiftclient, checked against a running Swift:
//! every case verifies, and every single-field mutation fails.

use std::net::IpAddr;
use std::path::PathBuf;

use outpost_auth::tempurl::{format_iso8601, parse_expires};
use outpost_auth::{
    verify, AccessRequest, Error, KeySet, KeyStore, NoRevocations, StoragePath, TempUrlKeys,
    VerifyOptions,
};
use serde_json::Value;

struct Keys(Vec<Vec<u8>>);

impl KeyStore for Keys {
    fn token_keys(&self, _: &str) -> Option<&KeySet> {
        None
    }
    fn tempurl_keys(&self, _: &str, _: &str) -> TempUrlKeys<'_> {
        let refs: Vec<&[u8]> = self.0.iter().map(Vec::as_slice).collect();
        TempUrlKeys::from_slice(&refs)
    }
}

/// The vectors live in the shared folder beside the repository; a copy is kept in
/// `auth/tests/data` so a checkout without it still runs.
fn vectors() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = [
        dir.join("../../shared/vectors/swift_tempurl.json"),
        dir.join("tests/data/swift_tempurl.json"),
    ];
    let file = candidates
        .iter()
        .find(|p| p.exists())
        .expect("swift_tempurl.json: not in ../shared/vectors nor auth/tests/data");
    let v: Value =
        serde_json::from_slice(&std::fs::read(file).expect("read vectors")).expect("json");
    v["cases"].as_array().expect("cases").clone()
}

fn expires_of(v: &Value) -> u64 {
    match &v["expires"] {
        Value::Number(n) => n.as_u64().expect("epoch"),
        Value::String(s) => parse_expires(s).expect("iso8601"),
        other => panic!("bad expires {other}"),
    }
}

/// Everything a vector case verifies with.
#[derive(Clone)]
struct Case {
    method: String,
    target: String,
    path: String,
    key: String,
    ip: IpAddr,
    now: u64,
    opts: VerifyOptions,
}

impl Case {
    fn from(v: &Value) -> Case {
        let target = v["request_target"].as_str().expect("target").to_owned();
        let mut path = target.split('?').next().expect("path").to_owned();
        if v["kind"] == "prefix" {
            // Prefix URLs are used for an object under the prefix.
            path.push_str("ep01.mp4");
        }
        let ip = match v["ip_range"].as_str() {
            Some("10.0.0.0/8") => IpAddr::from([10, 1, 2, 3]),
            Some("2001:db8::/32") => "2001:db8::7".parse().expect("v6"),
            _ => IpAddr::from([127, 0, 0, 1]),
        };
        Case {
            method: v["method"].as_str().expect("method").to_owned(),
            target,
            path,
            key: v["key"].as_str().expect("key").to_owned(),
            ip,
            now: expires_of(v) - 60,
            opts: VerifyOptions {
                allow_sha1: v["digest"] == "sha1",
                ..VerifyOptions::default()
            },
        }
    }

    fn check(&self) -> Result<(), Error> {
        let path = StoragePath::parse(&self.path)?;
        let query = self.target.split_once('?').map(|(_, q)| q);
        let headers = http::HeaderMap::new();
        let req = AccessRequest {
            method: &self.method,
            path: &path,
            query,
            path_token: None,
            headers: &headers,
            client_ip: self.ip,
            now: self.now,
        };
        let keys = Keys(vec![b"other-key".to_vec(), self.key.as_bytes().to_vec()]);
        verify(&req, &keys, &NoRevocations, &self.opts).map(|_| ())
    }
}

#[test]
fn every_vector_verifies() {
    let cases = vectors();
    assert_eq!(cases.len(), 54, "vector file changed");
    for v in &cases {
        let c = Case::from(v);
        c.check()
            .unwrap_or_else(|e| panic!("{} {}: {e}", c.method, c.target));
        // HEAD is allowed by GET/PUT/POST signatures.
        let head = Case {
            method: "HEAD".into(),
            ..c.clone()
        };
        head.check()
            .unwrap_or_else(|e| panic!("HEAD via {}: {e}", c.target));
    }
}

fn replace_param(target: &str, name: &str, f: impl Fn(&str) -> String) -> String {
    let (path, q) = target.split_once('?').expect("query");
    let q: Vec<String> = q
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if k == name => format!("{k}={}", f(v)),
            _ => kv.to_owned(),
        })
        .collect();
    format!("{path}?{}", q.join("&"))
}

fn mutants(v: &Value, base: &Case) -> Vec<(&'static str, Case)> {
    let mut out: Vec<(&'static str, Case)> = Vec::new();
    let mut push = |what, f: &dyn Fn(&mut Case)| {
        let mut m = base.clone();
        f(&mut m);
        out.push((what, m));
    };
    let prefix = v["kind"] == "prefix";
    push("path", &|m| {
        m.path = if prefix {
            m.path.replace("/videos/", "/videos2/")
        } else {
            format!("{}x", m.path)
        }
    });
    push("method", &|m| {
        m.method = if m.method == "GET" { "PUT" } else { "GET" }.into()
    });
    push("method DELETE", &|m| m.method = "DELETE".into());
    push("expires", &|m| {
        m.target = replace_param(&m.target, "temp_url_expires", |e| {
            let n = parse_expires(e).expect("expires") + 1;
            if e.contains('T') {
                format_iso8601(n).expect("fmt")
            } else {
                n.to_string()
            }
        })
    });
    push("time past expiry + leeway", &|m| m.now = expires_of(v) + 6);
    push("key", &|m| m.key.push('x'));
    push("sig", &|m| {
        m.target = replace_param(&m.target, "temp_url_sig", |s| {
            let mut b = s.as_bytes().to_vec();
            let last = b.len() - 1;
            b[last] = if b[last] == b'a' { b'b' } else { b'a' };
            String::from_utf8(b).expect("ascii")
        })
    });
    if v["ip_range"].is_string() {
        push("client ip", &|m| m.ip = IpAddr::from([192, 0, 2, 1]));
        push("ip range", &|m| {
            m.target = replace_param(&m.target, "temp_url_ip_range", |_| "127.0.0.2".into())
        });
    }
    if prefix {
        push("prefix", &|m| {
            m.target = replace_param(&m.target, "temp_url_prefix", |p| format!("{p}x"))
        });
    }
    if v["digest"] == "sha1" {
        push("sha1 disabled", &|m| m.opts.allow_sha1 = false);
    }
    out
}

#[test]
fn every_single_field_mutation_fails() {
    let mut checked = 0;
    for v in &vectors() {
        let base = Case::from(v);
        for (what, m) in mutants(v, &base) {
            assert!(
                m.check().is_err(),
                "{what} mutation of {} verified",
                base.target
            );
            checked += 1;
        }
    }
    assert!(checked > 54 * 7, "only {checked} mutations checked");
}
