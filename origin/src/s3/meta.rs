//! S3 object attributes ↔ the metadata the store keeps, so both APIs see one object:
//! `x-amz-meta-<k>` is stored as `x-object-meta-<k>` (Swift shows `X-Object-Meta-<K>`), the
//! standard headers S3 stores (`Cache-Control`, `Content-Disposition`, `Content-Encoding`,
//! `Content-Language`, `Expires`) are the same stored system headers Swift keeps, and the
//! ETag of a completed multipart upload (`<md5 of part md5s>-<N>`) is Swift system
//! metadata, as Swift's own s3api keeps it.

use base64::Engine as _;
use s3s::dto::{ETag, Metadata, Timestamp, TimestampFormat};
use s3s::{s3_error, S3Result};

use crate::db::{Meta, ObjectRow};
use crate::store::{MetaUpdate, ObjectHeaders};

/// Prefix of user metadata in the store.
pub const USER_PREFIX: &str = "x-object-meta-";
/// The S3 ETag of a completed multipart upload (absent: the S3 ETag is the stored MD5).
pub const S3_ETAG: &str = "x-object-sysmeta-s3api-etag";

/// The standard headers S3 stores with an object (a subset of Swift's stored headers).
#[derive(Debug, Clone, Default)]
pub struct Standard {
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Expires`.
    pub expires: Option<Timestamp>,
}

impl Standard {
    /// The standard headers stored in `meta`.
    pub fn of(meta: &Meta) -> Standard {
        let get = |k: &str| meta.get(k).cloned();
        Standard {
            cache_control: get("cache-control"),
            content_disposition: get("content-disposition"),
            content_encoding: get("content-encoding"),
            content_language: get("content-language"),
            expires: meta
                .get("expires")
                .and_then(|v| Timestamp::parse(TimestampFormat::HttpDate, v).ok()),
        }
    }
}

fn http_date(t: &Timestamp) -> S3Result<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf)
        .map_err(|_| s3_error!(InvalidArgument, "bad Expires"))?;
    String::from_utf8(buf).map_err(|_| s3_error!(InvalidArgument, "bad Expires"))
}

/// The store's metadata items of a new S3 object, in a stable order.
///
/// # Errors
/// `InvalidArgument` for an unformattable `Expires`.
pub fn updates(user: Option<&Metadata>, std: &Standard) -> S3Result<Vec<MetaUpdate>> {
    let mut out = Vec::new();
    if let Some(m) = user {
        let mut keys: Vec<(&String, &String)> = m.iter().collect();
        keys.sort();
        for (k, v) in keys {
            let k = k.to_ascii_lowercase();
            out.push(MetaUpdate::User {
                name: format!("{USER_PREFIX}{k}"),
                key_len: k.len(),
                value: v.clone().into_bytes(),
            });
        }
    }
    let sys = [
        ("cache-control", std.cache_control.clone()),
        ("content-disposition", std.content_disposition.clone()),
        ("content-encoding", std.content_encoding.clone()),
        ("content-language", std.content_language.clone()),
        ("expires", std.expires.as_ref().map(http_date).transpose()?),
    ];
    for (name, v) in sys {
        if let Some(v) = v {
            out.push(MetaUpdate::System {
                name: name.to_owned(),
                value: v.into_bytes(),
            });
        }
    }
    Ok(out)
}

/// `ObjectHeaders` of an S3 write, for [`crate::store::Store::validate_put`].
///
/// # Errors
/// `InvalidDigest` for a `Content-MD5` that is not base64 of 16 bytes; as [`updates`].
pub fn object_headers(
    content_length: Option<i64>,
    content_type: Option<String>,
    content_md5: Option<&str>,
    items: Vec<MetaUpdate>,
) -> S3Result<ObjectHeaders> {
    Ok(ObjectHeaders {
        content_length: content_length.and_then(|n| u64::try_from(n).ok()),
        chunked: content_length.is_none(),
        expiry: None,
        meta: items,
        content_type,
        detect_content_type: false,
        etag: content_md5.map(md5_hex).transpose()?,
    })
}

/// A `Content-MD5` value (base64 of the digest) as the store's hex MD5.
///
/// # Errors
/// `InvalidDigest`.
pub fn md5_hex(b64: &str) -> S3Result<String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| s3_error!(InvalidDigest, "The Content-MD5 you specified was invalid."))?;
    if raw.len() != 16 {
        return Err(s3_error!(
            InvalidDigest,
            "The Content-MD5 you specified was invalid."
        ));
    }
    Ok(hex::encode(raw))
}

/// The user metadata of a stored version, as S3 returns it (`None` when there is none).
pub fn user_metadata(meta: &Meta) -> Option<Metadata> {
    let m: Metadata = meta
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(USER_PREFIX)?.to_owned(), v.clone())))
        .collect();
    (!m.is_empty()).then_some(m)
}

/// The S3 ETag value of a stored version (unquoted).
pub fn etag_value(row: &ObjectRow) -> &str {
    row.meta
        .get(S3_ETAG)
        .map_or(row.etag.as_str(), String::as_str)
}

/// The S3 ETag of a stored version.
pub fn etag(row: &ObjectRow) -> ETag {
    ETag::Strong(etag_value(row).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_metadata_maps_to_swift_names() {
        let mut m = Metadata::new();
        m.insert("Color".into(), "blue".into());
        let std = Standard {
            cache_control: Some("max-age=60".into()),
            ..Standard::default()
        };
        let items = updates(Some(&m), &std).unwrap();
        let stored = crate::store::validate::version_meta(
            crate::store::validate::check_meta(items).unwrap(),
        );
        assert_eq!(stored["x-object-meta-color"], "blue");
        assert_eq!(stored["cache-control"], "max-age=60");
        assert_eq!(user_metadata(&stored).unwrap()["color"], "blue");
        assert_eq!(
            Standard::of(&stored).cache_control.as_deref(),
            Some("max-age=60")
        );
    }

    #[test]
    fn content_md5() {
        // MD5("") = d41d8cd98f00b204e9800998ecf8427e
        assert_eq!(
            md5_hex("1B2M2Y8AsgTpgAmY7PhCfg==").unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert!(md5_hex("AAAA").is_err());
        assert!(md5_hex("not base64!").is_err());
    }
}
