//! OpenStack Swift temporary URLs, byte-compatible with Swift's `tempurl` middleware and
//! python-swiftclient's `generate_temp_url`.
//!
//! The HMAC covers `[ip=<range>\n]METHOD\nEXPIRES\nPATH`, where `EXPIRES` is the integer epoch
//! (also when the URL carries an ISO 8601 time) and `PATH` is the percent-decoded storage path
//! `/v1/AUTH_a/c/o`, or `prefix:/v1/AUTH_a/c/<prefix>` for prefix URLs. As in Swift, a prefix
//! covers every object whose name starts with it as a string (`season1/` is the usual form).

use std::borrow::Cow;
use std::net::IpAddr;
use std::str::FromStr;

use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use hmac::{Hmac, Mac};
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::{query, Error, Mechanism, StoragePath, TempUrlKeys};

/// Digest of a tempurl HMAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// HMAC-SHA1: accepted only when the caller enables it.
    Sha1,
    /// HMAC-SHA256: the default.
    Sha256,
    /// HMAC-SHA512.
    Sha512,
}

impl Digest {
    /// `sha1`, `sha256` or `sha512`.
    pub const fn name(self) -> &'static str {
        match self {
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha512 => "sha512",
        }
    }

    fn len(self) -> usize {
        match self {
            Digest::Sha1 => 20,
            Digest::Sha256 => 32,
            Digest::Sha512 => 64,
        }
    }
}

impl FromStr for Digest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "sha1" => Ok(Digest::Sha1),
            "sha256" => Ok(Digest::Sha256),
            "sha512" => Ok(Digest::Sha512),
            _ => Err(Error::Malformed {
                mechanism: Mechanism::SwiftTempUrl,
                what: "unknown digest",
            }),
        }
    }
}

/// Longest accepted value of any tempurl query parameter, in bytes.
const MAX_PARAM_BYTES: usize = 2048;

/// The tempurl parameters of a query string, decoded.
#[derive(Clone, PartialEq, Eq)]
pub struct TempUrlQuery {
    digest: Digest,
    sig: Sig,
    /// Expiry, epoch seconds.
    pub expires: u64,
    /// `temp_url_prefix`, when the URL is prefix-based.
    pub prefix: Option<String>,
    /// `temp_url_ip_range` exactly as signed.
    pub ip_range: Option<String>,
    /// `filename` (the edge turns it into `Content-Disposition`).
    pub filename: Option<String>,
    /// `inline` was present.
    pub inline: bool,
}

impl std::fmt::Debug for TempUrlQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempUrlQuery")
            .field("digest", &self.digest)
            .field("expires", &self.expires)
            .field("prefix", &self.prefix)
            .field("ip_range", &self.ip_range)
            .finish_non_exhaustive()
    }
}

fn malformed(what: &'static str) -> Error {
    Error::Malformed {
        mechanism: Mechanism::SwiftTempUrl,
        what,
    }
}

impl TempUrlQuery {
    /// Extracts the tempurl parameters from a query string (without `?`).
    ///
    /// Returns `Ok(None)` when neither `temp_url_sig` nor `temp_url_expires` is present: the
    /// request is not a tempurl request.
    ///
    /// # Errors
    /// [`Error::Malformed`] when one is present without the other, a parameter is repeated or
    /// too long, the signature or expiry cannot be parsed.
    pub fn parse(query: &str) -> Result<Option<Self>, Error> {
        // Values stay borrowed from the query unless they need percent-decoding; only the
        // (rare) prefix, address range and filename are copied out.
        let mut sig = None;
        let mut expires = None;
        let mut prefix = None;
        let mut ip_range = None;
        let mut filename = None;
        let mut inline = false;
        for (k, v) in query::raw_pairs(query) {
            let k = query::decode(k);
            let slot = match k.as_ref() {
                "temp_url_sig" => &mut sig,
                "temp_url_expires" => &mut expires,
                "temp_url_prefix" => &mut prefix,
                "temp_url_ip_range" => &mut ip_range,
                "filename" => &mut filename,
                "inline" => {
                    inline = true;
                    continue;
                }
                _ => continue,
            };
            let v = query::decode(v);
            if v.len() > MAX_PARAM_BYTES {
                return Err(malformed("parameter too long"));
            }
            if slot.replace(v).is_some() {
                return Err(malformed("repeated parameter"));
            }
        }
        let (sig, expires) = match (sig, expires) {
            (None, None) => return Ok(None),
            (Some(s), Some(e)) => (s, e),
            (None, Some(_)) => return Err(malformed("temp_url_expires without temp_url_sig")),
            (Some(_), None) => return Err(malformed("temp_url_sig without temp_url_expires")),
        };
        let (digest, sig) = decode_sig(&sig)?;
        Ok(Some(TempUrlQuery {
            digest,
            sig,
            expires: parse_expires(&expires)?,
            prefix: prefix.map(Cow::into_owned),
            ip_range: ip_range.map(Cow::into_owned),
            filename: filename.map(Cow::into_owned),
            inline,
        }))
    }

    /// The digest the signature was made with.
    pub fn digest(&self) -> Digest {
        self.digest
    }
}

/// A decoded signature: up to 64 bytes (SHA-512), kept inline.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Sig {
    bytes: [u8; 64],
    len: usize,
}

impl Sig {
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// Decodes `temp_url_sig`: hex (digest from its length) or `<digest>:<base64>`.
fn decode_sig(sig: &str) -> Result<(Digest, Sig), Error> {
    if let Some((name, b64)) = sig.split_once(':') {
        let digest: Digest = name.parse()?;
        let b64 = b64.trim_end_matches('=');
        let mut buf = [0u8; 64];
        let len = match URL_SAFE_NO_PAD
            .decode_slice(b64, &mut buf)
            .or_else(|_| STANDARD_NO_PAD.decode_slice(b64, &mut buf))
        {
            Ok(len) => len,
            // Not base64, or longer than any digest: decode again the allocating way so the
            // error is exactly the one it has always been.
            Err(_) => {
                let bytes = URL_SAFE_NO_PAD
                    .decode(b64)
                    .or_else(|_| STANDARD_NO_PAD.decode(b64))
                    .map_err(|_| malformed("signature is not base64"))?;
                if bytes.len() != digest.len() {
                    return Err(malformed("signature length does not match its digest"));
                }
                buf[..bytes.len()].copy_from_slice(&bytes);
                bytes.len()
            }
        };
        if len != digest.len() {
            return Err(malformed("signature length does not match its digest"));
        }
        return Ok((digest, Sig { bytes: buf, len }));
    }
    let digest = match sig.len() {
        40 => Digest::Sha1,
        64 => Digest::Sha256,
        128 => Digest::Sha512,
        _ => return Err(malformed("signature has the wrong length")),
    };
    let len = digest.len();
    let mut bytes = [0u8; 64];
    hex::decode_to_slice(sig, &mut bytes[..len]).map_err(|_| malformed("signature is not hex"))?;
    Ok((digest, Sig { bytes, len }))
}

/// The ISO 8601 form Swift accepts: `2033-05-18T03:33:19Z`.
const ISO8601: &[time::format_description::FormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// Parses `temp_url_expires`: epoch seconds or `YYYY-MM-DDTHH:MM:SSZ`.
///
/// # Errors
/// [`Error::Malformed`] for anything else.
pub fn parse_expires(s: &str) -> Result<u64, Error> {
    if !s.is_empty() && s.len() <= 20 && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map_err(|_| malformed("temp_url_expires out of range"));
    }
    let dt = time::PrimitiveDateTime::parse(s, ISO8601)
        .map_err(|_| malformed("temp_url_expires is neither epoch seconds nor ISO 8601"))?;
    u64::try_from(dt.assume_utc().unix_timestamp())
        .map_err(|_| malformed("temp_url_expires before 1970"))
}

/// Formats epoch seconds the way Swift's ISO 8601 tempurls spell them.
pub fn format_iso8601(epoch: u64) -> Option<String> {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(epoch).ok()?).ok()?;
    t.format(ISO8601).ok()
}

/// The exact bytes Swift signs.
pub fn hmac_body(
    method: &str,
    expires: u64,
    path: &str,
    prefix: bool,
    ip_range: Option<&str>,
) -> String {
    let mut body = String::with_capacity(path.len() + 48);
    if let Some(ip) = ip_range {
        body.push_str("ip=");
        body.push_str(ip);
        body.push('\n');
    }
    body.push_str(method);
    body.push('\n');
    body.push_str(&expires.to_string());
    body.push('\n');
    if prefix {
        body.push_str("prefix:");
    }
    body.push_str(path);
    body
}

fn mac(digest: Digest, key: &[u8], body: &[u8]) -> Vec<u8> {
    fn run<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8]) -> Vec<u8> {
        let mut m = <M as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length");
        m.update(body);
        m.finalize().into_bytes().to_vec()
    }
    match digest {
        Digest::Sha1 => run::<Hmac<sha1::Sha1>>(key, body),
        Digest::Sha256 => run::<Hmac<sha2::Sha256>>(key, body),
        Digest::Sha512 => run::<Hmac<sha2::Sha512>>(key, body),
    }
}

/// What verification signs, fed to the MAC in pieces: the same bytes as [`hmac_body`] without
/// building them.
struct SignedBody<'a> {
    ip_range: Option<&'a str>,
    /// Decimal `EXPIRES`.
    expires: &'a [u8],
    /// `prefix:` or empty.
    prefix_tag: &'a str,
    /// The path, in pieces (a prefix path is `/v1/AUTH_<account>/<container>/<prefix>`).
    path: [&'a str; 6],
}

impl SignedBody<'_> {
    fn feed<M: Mac>(&self, mac: &mut M, method: &str) {
        if let Some(ip) = self.ip_range {
            mac.update(b"ip=");
            mac.update(ip.as_bytes());
            mac.update(b"\n");
        }
        mac.update(method.as_bytes());
        mac.update(b"\n");
        mac.update(self.expires);
        mac.update(b"\n");
        mac.update(self.prefix_tag.as_bytes());
        for p in self.path {
            mac.update(p.as_bytes());
        }
    }
}

/// The first of `methods` whose signature under one of `keys` is `sig` (constant-time compare),
/// trying every key for a method before the next method. Each key's HMAC state is set up once
/// and cloned for each method.
fn find_signed_method<M: Mac + hmac::digest::KeyInit + Clone>(
    methods: &[&'static str],
    keys: TempUrlKeys<'_>,
    body: &SignedBody<'_>,
    sig: &[u8],
) -> Option<&'static str> {
    let mut keyed: [Option<M>; 4] = [None, None, None, None];
    for m in methods {
        for (slot, key) in keyed.iter_mut().zip(keys.keys) {
            let Some(key) = key else { continue };
            let base = slot.get_or_insert_with(|| {
                <M as Mac>::new_from_slice(key).expect("HMAC accepts keys of any length")
            });
            let mut mac = base.clone();
            body.feed(&mut mac, m);
            if bool::from(mac.finalize().into_bytes().as_slice().ct_eq(sig)) {
                return Some(m);
            }
        }
    }
    None
}

/// Writes `n` in decimal into `buf`; returns the digits.
fn decimal(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// What to sign: the inputs of python-swiftclient's `generate_temp_url`.
#[derive(Debug, Clone)]
pub struct TempUrlSpec<'a> {
    /// `GET`, `HEAD`, `PUT`, `POST` or `DELETE`.
    pub method: &'a str,
    /// Decoded path: `/v1/AUTH_a/c/o`, or `/v1/AUTH_a/c/<prefix>` when `prefix` is true.
    pub path: &'a str,
    /// Expiry, epoch seconds.
    pub expires: u64,
    /// Prefix-based URL.
    pub prefix: bool,
    /// Restrict to an address or CIDR range.
    pub ip_range: Option<&'a str>,
    /// Write the expiry as ISO 8601.
    pub iso8601: bool,
    /// Digest.
    pub digest: Digest,
}

/// Signs a tempurl and returns it the way python-swiftclient does: the path (as given, not
/// percent-encoded) followed by the query.
///
/// # Errors
/// [`Error::NotStoragePath`] when `path` is not an object path (or `/v1/AUTH_a/c/` prefix).
pub fn sign(spec: &TempUrlSpec<'_>, key: &[u8]) -> Result<String, Error> {
    let parts: Vec<&str> = spec.path.splitn(5, '/').collect();
    let needed = if spec.prefix { 4 } else { 5 };
    if parts.len() != 5 || !parts[0].is_empty() || parts[1..needed].iter().any(|p| p.is_empty()) {
        return Err(Error::NotStoragePath {
            reason: "tempurl path must be /v1/AUTH_a/c/o (or /v1/AUTH_a/c/<prefix> with prefix)",
        });
    }
    let method = spec.method.to_ascii_uppercase();
    let body = hmac_body(&method, spec.expires, spec.path, spec.prefix, spec.ip_range);
    let raw = mac(spec.digest, key, body.as_bytes());
    let sig = match spec.digest {
        Digest::Sha512 => format!("sha512:{}", URL_SAFE_NO_PAD.encode(raw)),
        _ => hex::encode(raw),
    };
    let exp = if spec.iso8601 {
        format_iso8601(spec.expires).ok_or(malformed("expiry out of range"))?
    } else {
        spec.expires.to_string()
    };
    let mut url = format!("{}?temp_url_sig={sig}&temp_url_expires={exp}", spec.path);
    if let Some(ip) = spec.ip_range {
        url.push_str("&temp_url_ip_range=");
        url.push_str(ip);
    }
    if spec.prefix {
        url.push_str("&temp_url_prefix=");
        url.push_str(parts[4]);
    }
    Ok(url)
}

/// Options of tempurl verification.
#[derive(Debug, Clone, Copy)]
pub struct TempUrlOptions {
    /// Accept HMAC-SHA1 signatures (off by default, as SHA1 is deprecated in Swift).
    pub allow_sha1: bool,
    /// Seconds of clock leeway past the expiry.
    pub leeway: u64,
}

impl Default for TempUrlOptions {
    fn default() -> Self {
        TempUrlOptions {
            allow_sha1: false,
            leeway: crate::DEFAULT_LEEWAY_SECS,
        }
    }
}

/// What a valid tempurl allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempUrlGrant {
    /// The method the signature was made for (a `HEAD` may be allowed by a `GET` signature).
    pub signed_method: &'static str,
    /// Expiry, epoch seconds.
    pub expires: u64,
    /// Prefix, for prefix-based URLs.
    pub prefix: Option<String>,
}

/// Methods whose signatures allow a `HEAD` (Swift behaviour).
const HEAD_ALLOWED_BY: [&str; 4] = ["HEAD", "GET", "PUT", "POST"];
const METHODS: [&str; 5] = ["GET", "HEAD", "PUT", "POST", "DELETE"];

/// Verifies a tempurl for `method` on `path` from `client_ip` at `now`.
///
/// Checks, in order: digest allowed, IP range, signature against each key (constant time),
/// path under the prefix, expiry.
///
/// # Errors
/// A denial: [`Error::DigestNotAllowed`], [`Error::WrongIp`], [`Error::BadSignature`],
/// [`Error::WrongScope`], [`Error::Expired`], or [`Error::Malformed`] for an unparsable IP
/// range.
pub fn verify(
    q: &TempUrlQuery,
    method: &str,
    path: &StoragePath,
    client_ip: IpAddr,
    now: u64,
    keys: TempUrlKeys<'_>,
    opts: TempUrlOptions,
) -> Result<TempUrlGrant, Error> {
    if q.digest == Digest::Sha1 && !opts.allow_sha1 {
        return Err(Error::DigestNotAllowed { digest: "sha1" });
    }
    let (Some(container), Some(object)) = (path.container(), path.object()) else {
        return Err(Error::WrongScope { what: "path" });
    };
    if let Some(range) = &q.ip_range {
        let net = parse_ip_range(range)?;
        if !net.contains(&client_ip) {
            return Err(Error::WrongIp { ip: client_ip });
        }
    }
    let candidates: &[&'static str] = if method == "HEAD" {
        &HEAD_ALLOWED_BY
    } else {
        match METHODS.iter().find(|m| **m == method) {
            Some(m) => std::slice::from_ref(m),
            None => return Err(Error::WrongScope { what: "method" }),
        }
    };
    let account = path.account();
    let path_pieces = match &q.prefix {
        Some(prefix) => ["/v1/AUTH_", account, "/", container, "/", prefix.as_str()],
        None => [path.as_str(), "", "", "", "", ""],
    };
    let mut digits = [0u8; 20];
    let body = SignedBody {
        ip_range: q.ip_range.as_deref(),
        expires: decimal(q.expires, &mut digits),
        prefix_tag: if q.prefix.is_some() { "prefix:" } else { "" },
        path: path_pieces,
    };
    let sig = q.sig.as_slice();
    let matched = match q.digest {
        Digest::Sha1 => find_signed_method::<Hmac<sha1::Sha1>>(candidates, keys, &body, sig),
        Digest::Sha256 => find_signed_method::<Hmac<sha2::Sha256>>(candidates, keys, &body, sig),
        Digest::Sha512 => find_signed_method::<Hmac<sha2::Sha512>>(candidates, keys, &body, sig),
    };
    let Some(signed_method) = matched else {
        return Err(Error::BadSignature {
            mechanism: Mechanism::SwiftTempUrl,
        });
    };
    if let Some(prefix) = &q.prefix {
        if !object.starts_with(prefix.as_str()) {
            return Err(Error::WrongScope { what: "path" });
        }
    }
    if now > q.expires.saturating_add(opts.leeway) {
        return Err(Error::Expired {
            expired_at: q.expires,
            now,
        });
    }
    Ok(TempUrlGrant {
        signed_method,
        expires: q.expires,
        prefix: q.prefix.clone(),
    })
}

/// Parses `temp_url_ip_range`: an address or a CIDR network (host bits allowed, as Swift).
///
/// # Errors
/// [`Error::Malformed`] when it is neither.
pub fn parse_ip_range(s: &str) -> Result<IpNet, Error> {
    if let Ok(net) = IpNet::from_str(s) {
        return Ok(net);
    }
    IpAddr::from_str(s)
        .map(IpNet::from)
        .map_err(|_| malformed("temp_url_ip_range is not an address or CIDR range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_forms() {
        assert_eq!(parse_expires("1999999999").unwrap(), 1_999_999_999);
        assert_eq!(
            parse_expires("2033-05-18T03:33:19Z").unwrap(),
            1_999_999_999
        );
        assert_eq!(
            format_iso8601(1_999_999_999).unwrap(),
            "2033-05-18T03:33:19Z"
        );
        for bad in [
            "",
            "-1",
            "1e9",
            "2033-05-18 03:33:19",
            "2033-05-18T03:33:19",
            "99999999999999999999999",
        ] {
            assert!(parse_expires(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn query_parsing() {
        assert_eq!(TempUrlQuery::parse("a=b").unwrap(), None);
        let sig = "0".repeat(64);
        let q = TempUrlQuery::parse(&format!("temp_url_sig={sig}&temp_url_expires=5&inline"))
            .unwrap()
            .unwrap();
        assert_eq!((q.digest(), q.expires, q.inline), (Digest::Sha256, 5, true));
        for bad in [
            format!("temp_url_sig={sig}"),
            "temp_url_expires=5".to_string(),
            format!("temp_url_sig={sig}&temp_url_sig={sig}&temp_url_expires=5"),
            "temp_url_sig=abc&temp_url_expires=5".to_string(),
            format!("temp_url_sig={}&temp_url_expires=5", "z".repeat(64)),
            "temp_url_sig=md5:AAAA&temp_url_expires=5".to_string(),
            "temp_url_sig=sha512:AAAA&temp_url_expires=5".to_string(),
        ] {
            assert!(TempUrlQuery::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sha1_needs_opt_in() {
        let url = sign(
            &TempUrlSpec {
                method: "GET",
                path: "/v1/AUTH_a/c/o",
                expires: 100,
                prefix: false,
                ip_range: None,
                iso8601: false,
                digest: Digest::Sha1,
            },
            b"k",
        )
        .unwrap();
        let q = TempUrlQuery::parse(url.split_once('?').unwrap().1)
            .unwrap()
            .unwrap();
        let path = StoragePath::parse("/v1/AUTH_a/c/o").unwrap();
        let ip = IpAddr::from([127, 0, 0, 1]);
        let keys = TempUrlKeys::from_slice(&[b"k"]);
        let err = verify(&q, "GET", &path, ip, 50, keys, TempUrlOptions::default()).unwrap_err();
        assert_eq!(err, Error::DigestNotAllowed { digest: "sha1" });
        let opts = TempUrlOptions {
            allow_sha1: true,
            ..TempUrlOptions::default()
        };
        assert!(verify(&q, "GET", &path, ip, 50, keys, opts).is_ok());
        assert!(verify(&q, "GET", &path, ip, 106, keys, opts).is_err());
        assert!(
            verify(&q, "GET", &path, ip, 105, keys, opts).is_ok(),
            "leeway"
        );
    }
}
