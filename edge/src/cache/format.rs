//! The disk tier's file names and the versioned `.meta` record.
//!
//! Layout of `<disk_dir>/<xx>/<combined-hash>.meta` (all integers big-endian), version 1:
//!
//! ```text
//! magic "OPCM" | version u16 | reserved u16 (0) | combined hash [16]
//! body_len u64 | internal_len u32 | header_len u32 | primary_len u32
//! internal meta | response header | primary key (UTF-8)
//! checksum [16] = blake2b-128 of everything before it
//! ```
//!
//! `internal` and `header` are the two parts of [`pingora::cache::CacheMeta::serialize`]; the
//! primary key string is stored so the purge-by-prefix index can be rebuilt on restart. The
//! body lives next to it in `<combined-hash>.body`, raw, exactly `body_len` bytes.
//!
//! `<xx>` is the first byte of the hash in hex: 256 shard directories keep any one directory
//! small. Files ending in `.tmp` (fills and meta rewrites in progress) or `.del` (evicted bodies
//! waiting to be unlinked) are leftovers after a crash and are removed on open.

use std::path::{Path, PathBuf};

use pingora::cache::key::{hash_key, HashBinary};
#[cfg(test)]
use pingora::cache::CacheMeta;

/// First bytes of every `.meta` file.
pub(crate) const MAGIC: [u8; 4] = *b"OPCM";
/// The record version written by this code. Readers reject others (the entry is then dropped
/// and refetched, which is always safe for a cache).
pub(crate) const VERSION: u16 = 1;

const FIXED_LEN: usize = 4 + 2 + 2 + 16 + 8 + 4 + 4 + 4;
const CHECKSUM_LEN: usize = 16;

/// Why a `.meta` file (or its body) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum MetaDefect {
    /// Shorter than its fixed header or than its own length fields say.
    #[error("truncated")]
    Truncated,
    /// Does not start with the magic bytes.
    #[error("bad magic")]
    BadMagic,
    /// Written by a format version this build does not read.
    #[error("unsupported version {0}")]
    UnsupportedVersion(u16),
    /// Longer than its length fields say.
    #[error("trailing bytes")]
    TrailingBytes,
    /// The checksum does not match the content.
    #[error("checksum mismatch")]
    Checksum,
    /// The hash inside differs from the file name.
    #[error("hash does not match the file name")]
    HashMismatch,
    /// The primary key is not UTF-8.
    #[error("primary key is not UTF-8")]
    PrimaryNotUtf8,
    /// pingora could not deserialize the stored `CacheMeta`.
    #[error("cache meta does not deserialize")]
    CacheMeta,
    /// The body file is missing.
    #[error("body file missing")]
    MissingBody,
    /// The body file's size differs from the recorded body length.
    #[error("body is {actual} bytes, meta says {expected}")]
    BodySize {
        /// Length recorded in the meta.
        expected: u64,
        /// Length of the body file.
        actual: u64,
    },
}

/// One decoded `.meta` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetaRecord {
    pub hash: HashBinary,
    pub body_len: u64,
    pub internal: Vec<u8>,
    pub header: Vec<u8>,
    pub primary: String,
}

impl MetaRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(
            FIXED_LEN + self.internal.len() + self.header.len() + self.primary.len() + CHECKSUM_LEN,
        );
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&self.hash);
        out.extend_from_slice(&self.body_len.to_be_bytes());
        for part in [
            &self.internal[..],
            &self.header[..],
            self.primary.as_bytes(),
        ] {
            // Parts are a serialized header and a URL-sized key: far below 4 GiB. Saturating
            // would produce a record that fails its own length check rather than a wrong one.
            let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
            out.extend_from_slice(&len.to_be_bytes());
        }
        out.extend_from_slice(&self.internal);
        out.extend_from_slice(&self.header);
        out.extend_from_slice(self.primary.as_bytes());
        let sum = hash_key(&out);
        out.extend_from_slice(&sum);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<MetaRecord, MetaDefect> {
        if bytes.len() < 6 {
            return Err(MetaDefect::Truncated);
        }
        if bytes[..4] != MAGIC {
            return Err(MetaDefect::BadMagic);
        }
        let version = u16::from_be_bytes([bytes[4], bytes[5]]);
        if version != VERSION {
            return Err(MetaDefect::UnsupportedVersion(version));
        }
        if bytes.len() < FIXED_LEN + CHECKSUM_LEN {
            return Err(MetaDefect::Truncated);
        }
        let mut r = Reader { bytes, pos: 8 };
        let hash: HashBinary = r.array()?;
        let body_len = u64::from_be_bytes(r.array()?);
        let internal_len = r.len_u32()?;
        let header_len = r.len_u32()?;
        let primary_len = r.len_u32()?;
        let total = FIXED_LEN
            .checked_add(internal_len)
            .and_then(|n| n.checked_add(header_len))
            .and_then(|n| n.checked_add(primary_len))
            .and_then(|n| n.checked_add(CHECKSUM_LEN))
            .ok_or(MetaDefect::Truncated)?;
        if bytes.len() < total {
            return Err(MetaDefect::Truncated);
        }
        if bytes.len() > total {
            return Err(MetaDefect::TrailingBytes);
        }
        let content = &bytes[..total - CHECKSUM_LEN];
        if hash_key(content)[..] != bytes[total - CHECKSUM_LEN..] {
            return Err(MetaDefect::Checksum);
        }
        let internal = r.take(internal_len)?.to_vec();
        let header = r.take(header_len)?.to_vec();
        let primary = std::str::from_utf8(r.take(primary_len)?)
            .map_err(|_| MetaDefect::PrimaryNotUtf8)?
            .to_owned();
        Ok(MetaRecord {
            hash,
            body_len,
            internal,
            header,
            primary,
        })
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], MetaDefect> {
        let end = self.pos.checked_add(n).ok_or(MetaDefect::Truncated)?;
        let out = self.bytes.get(self.pos..end).ok_or(MetaDefect::Truncated)?;
        self.pos = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], MetaDefect> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len_u32(&mut self) -> Result<usize, MetaDefect> {
        usize::try_from(u32::from_be_bytes(self.array()?)).map_err(|_| MetaDefect::Truncated)
    }
}

/// What a directory entry of the disk tier is, judged by its name only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Meta(HashBinary),
    Body(HashBinary),
    /// A temp or trash file left by a crash.
    Leftover,
    /// Not ours: left alone, so a misconfigured `disk_dir` never deletes foreign files.
    Foreign,
}

pub(crate) fn classify(name: &str) -> FileKind {
    let Some((stem, rest)) = name.split_once('.') else {
        return FileKind::Foreign;
    };
    let Some(hash) = parse_hash(stem) else {
        return FileKind::Foreign;
    };
    match rest {
        "meta" => FileKind::Meta(hash),
        "body" => FileKind::Body(hash),
        _ if rest.ends_with(".tmp") || rest.ends_with(".del") => FileKind::Leftover,
        _ => FileKind::Foreign,
    }
}

fn parse_hash(s: &str) -> Option<HashBinary> {
    let mut out = HashBinary::default();
    if s.len() != out.len() * 2 {
        return None;
    }
    hex::decode_to_slice(s, &mut out).ok()?;
    Some(out)
}

/// The shard directory names, `00` to `ff`.
pub(crate) fn shard_names() -> impl Iterator<Item = String> {
    (0..=u8::MAX).map(|b| format!("{b:02x}"))
}

fn shard(root: &Path, hash: &HashBinary) -> PathBuf {
    root.join(format!("{:02x}", hash[0]))
}

pub(crate) fn meta_path(root: &Path, hash: &HashBinary) -> PathBuf {
    shard(root, hash).join(format!("{}.meta", hex::encode(hash)))
}

pub(crate) fn body_path(root: &Path, hash: &HashBinary) -> PathBuf {
    shard(root, hash).join(format!("{}.body", hex::encode(hash)))
}

/// Body of a fill in progress; `id` keeps concurrent fills of one key apart.
pub(crate) fn temp_body_path(root: &Path, hash: &HashBinary, id: u64) -> PathBuf {
    shard(root, hash).join(format!("{}.{id}.body.tmp", hex::encode(hash)))
}

/// A `.meta` being written before it is renamed into place.
pub(crate) fn temp_meta_path(root: &Path, hash: &HashBinary, id: u64) -> PathBuf {
    shard(root, hash).join(format!("{}.{id}.meta.tmp", hex::encode(hash)))
}

/// Where an evicted body is moved (under the index lock, which a rename keeps short) before it
/// is unlinked (outside the lock: unlinking a large file can take a while).
pub(crate) fn trash_path(root: &Path, hash: &HashBinary, id: u64) -> PathBuf {
    shard(root, hash).join(format!("{}.{id}.del", hex::encode(hash)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> MetaRecord {
        MetaRecord {
            hash: [7; 16],
            body_len: 1234,
            internal: vec![1, 2, 3],
            header: b"HTTP/1.1 200 OK\r\n\r\n".to_vec(),
            primary: "/v1/AUTH_a/c/o".to_owned(),
        }
    }

    #[test]
    fn round_trips() {
        let r = record();
        assert_eq!(MetaRecord::decode(&r.encode()), Ok(r));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let bytes = record().encode();
        for n in 0..bytes.len() {
            assert!(
                MetaRecord::decode(&bytes[..n]).is_err(),
                "prefix of {n} bytes"
            );
        }
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x10;
            assert!(MetaRecord::decode(&b).is_err(), "flip at {i}");
        }
        let mut longer = bytes;
        longer.push(0);
        assert_eq!(MetaRecord::decode(&longer), Err(MetaDefect::TrailingBytes));
    }

    #[test]
    fn other_versions_are_named() {
        let mut bytes = record().encode();
        bytes[5] = 9;
        assert_eq!(
            MetaRecord::decode(&bytes),
            Err(MetaDefect::UnsupportedVersion(9))
        );
    }

    #[test]
    fn names_are_classified() {
        let h = [0xab; 16];
        let hex = hex::encode(h);
        assert_eq!(classify(&format!("{hex}.meta")), FileKind::Meta(h));
        assert_eq!(classify(&format!("{hex}.body")), FileKind::Body(h));
        assert_eq!(classify(&format!("{hex}.3.body.tmp")), FileKind::Leftover);
        assert_eq!(classify(&format!("{hex}.3.del")), FileKind::Leftover);
        assert_eq!(classify("notes.txt.tmp"), FileKind::Foreign);
        assert_eq!(classify(&format!("{hex}.other")), FileKind::Foreign);
        let p = temp_body_path(Path::new("/d"), &h, 3);
        assert_eq!(p, PathBuf::from(format!("/d/ab/{hex}.3.body.tmp")));
    }

    /// The v1 fixture: a record for [`fixture_key`] as this build writes it.
    fn fixture_record() -> MetaRecord {
        use pingora::cache::key::CacheHashKey;
        use std::time::{Duration, UNIX_EPOCH};
        let mut header = pingora::http::ResponseHeader::build(200, None).unwrap();
        header.append_header("content-type", "text/plain").unwrap();
        header.append_header("etag", "\"fixture-v1\"").unwrap();
        let meta = CacheMeta::new(
            UNIX_EPOCH + Duration::from_secs(2_000_000_000),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            30,
            60,
            header,
        );
        let (internal, header) = meta.serialize().unwrap();
        MetaRecord {
            hash: fixture_key().combined_bin(),
            body_len: FIXTURE_BODY.len() as u64,
            internal,
            header,
            primary: "/v1/AUTH_fixture/c/o".to_owned(),
        }
    }

    fn fixture_key() -> pingora::cache::CacheKey {
        pingora::cache::CacheKey::new("/v1/AUTH_fixture/c/o", "")
    }

    const FIXTURE_META: &[u8] = include_bytes!("fixtures/v1.meta");
    const FIXTURE_BODY: &[u8] = include_bytes!("fixtures/v1.body");

    /// Regenerates the fixture; run by hand (`-- --ignored`) only when adding a version.
    #[test]
    #[ignore = "writes the committed fixture"]
    fn write_v1_fixture() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/cache/fixtures");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("v1.meta"), fixture_record().encode()).unwrap();
    }

    #[test]
    fn v1_fixture_decodes_and_is_what_this_build_writes() {
        let record = MetaRecord::decode(FIXTURE_META).unwrap();
        assert_eq!(record.primary, "/v1/AUTH_fixture/c/o");
        let meta = CacheMeta::deserialize(&record.internal, &record.header).unwrap();
        assert_eq!(meta.headers().get("etag").unwrap(), "\"fixture-v1\"");
        assert_eq!(meta.stale_if_error_sec(), 60);
        let want = fixture_record();
        assert_eq!(
            meta.fresh_until(),
            CacheMeta::deserialize(&want.internal, &want.header)
                .unwrap()
                .fresh_until()
        );
        assert_eq!((record.hash, record.body_len), (want.hash, want.body_len));
        // Our layout is byte-stable: re-encoding a v1 record reproduces the file. (pingora's
        // own meta bytes are checked by deserializing them above, not byte for byte: its
        // header compression may legitimately produce other bytes after an upgrade.)
        assert_eq!(record.encode(), FIXTURE_META);
    }

    #[tokio::test]
    async fn a_v1_directory_is_served_after_upgrade() {
        use pingora::cache::storage::Storage;
        let dir = tempfile::tempdir().unwrap();
        let hash = MetaRecord::decode(FIXTURE_META).unwrap().hash;
        std::fs::create_dir_all(shard(dir.path(), &hash)).unwrap();
        std::fs::write(meta_path(dir.path(), &hash), FIXTURE_META).unwrap();
        std::fs::write(body_path(dir.path(), &hash), FIXTURE_BODY).unwrap();
        let storage = Box::leak(Box::new(
            super::super::TieredStorage::open(super::super::CacheConfig {
                memory_bytes: 1 << 20,
                memory_object_max: 1 << 16,
                disk_dir: dir.path().to_path_buf(),
                disk_bytes: 1 << 20,
            })
            .unwrap(),
        ));
        let span = pingora::cache::trace::Span::inactive().handle();
        let (meta, mut hit) = storage
            .lookup(&fixture_key(), &span)
            .await
            .unwrap()
            .expect("fixture entry");
        assert_eq!(meta.headers().get("content-type").unwrap(), "text/plain");
        assert_eq!(&hit.read_body().await.unwrap().unwrap()[..], FIXTURE_BODY);
    }
}
