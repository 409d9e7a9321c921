//! The memory tier's side of the hit fast path (`proxy::hot`): a complete, fresh entry as a
//! decoded response head and a `Bytes` body, decoded once per stored version instead of on
//! every hit.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use pingora::cache::key::{CacheHashKey, HashBinary};
use pingora::cache::{CacheKey, CacheMeta};
use pingora::http::ResponseHeader;

use super::memory::MemEntry;
use super::TieredStorage;

/// A memory-tier entry ready to be served without pingora's cache machinery.
#[derive(Debug)]
pub struct HotEntry {
    /// The stored response head as pingora serves a hit (HTTP/1.1, no `Age`), with what the
    /// caller's `prepare` added.
    pub header: ResponseHeader,
    /// Fresh until (inclusive, as pingora's `CacheMeta::is_fresh`).
    pub fresh_until: SystemTime,
    /// The reference point of `Age` (the response's corrected creation or last validation).
    pub epoch: SystemTime,
    /// The whole body.
    pub body: Bytes,
    /// The head as the front path writes it, public and private variant, made on first use.
    wire: [std::sync::OnceLock<Option<Bytes>>; 2],
}

impl HotEntry {
    /// Decodes a memory entry; `None` for entries the fast path must not serve (undecodable,
    /// or varying by request headers, whose variant choice is pingora's).
    pub(super) fn decode(entry: &MemEntry, prepare: fn(&mut ResponseHeader)) -> Option<HotEntry> {
        let meta = CacheMeta::deserialize(&entry.internal, &entry.header).ok()?;
        if meta.variance().is_some() || meta.headers().contains_key(http::header::VARY) {
            return None;
        }
        let mut header = meta.response_header_copy();
        header.set_version(http::Version::HTTP_11);
        prepare(&mut header);
        Some(HotEntry {
            header,
            fresh_until: meta.fresh_until(),
            epoch: meta.epoch(),
            body: entry.body.clone(),
            wire: Default::default(),
        })
    }

    /// The head of a plain full hit as wire bytes, for the public (`false`) or the private
    /// (`true`) variant, made by `build` once per stored version; `None` when `build` says the
    /// entry cannot be written that way.
    pub fn wire(
        &self,
        private: bool,
        build: impl FnOnce(&ResponseHeader, bool) -> Option<Bytes>,
    ) -> Option<&Bytes> {
        self.wire[usize::from(private)]
            .get_or_init(|| build(&self.header, private))
            .as_ref()
    }

    /// Whether the entry is fresh at `now`.
    pub fn is_fresh(&self, now: SystemTime) -> bool {
        self.fresh_until >= now
    }
}

impl TieredStorage {
    /// Whether a lookup of `key` would find something right now (a fill, or an entry in
    /// either tier), from in-memory state only: no file is opened.
    pub fn contains(&self, key: &CacheKey) -> bool {
        self.inner.shows(&key.combined_bin())
    }

    /// The memory-tier entry of `key` for the fast path, synchronously: `None` when there is
    /// none, when a fill is replacing it (readers must follow the fill), or when it varies.
    /// `prepare` adds to the head, once per stored version, what every hit of it carries.
    pub fn hot(&self, key: &CacheKey, prepare: fn(&mut ResponseHeader)) -> Option<Arc<HotEntry>> {
        let hash: HashBinary = key.combined_bin();
        if self.inner.latest_fill(&hash).is_some() {
            return None;
        }
        let entry = self.inner.memory.get(&hash)?;
        entry
            .hot
            .get_or_init(|| HotEntry::decode(&entry, prepare).map(Arc::new))
            .clone()
    }
}
