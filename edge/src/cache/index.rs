//! Primary key string → the combined hashes (variances) stored under it, for purge by
//! primary key and by prefix.
//!
//! The index may hold hashes that are no longer stored anywhere (an entry the memory tier
//! evicted after the disk tier had dropped it): purges count only what they actually removed,
//! and `TieredStorage` sweeps such hashes once they outnumber live entries. It never lacks a
//! stored hash: fills register here before they can commit (see `TieredStorage`).

use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::Arc;

use pingora::cache::key::HashBinary;

#[derive(Default)]
pub(crate) struct PrimaryIndex {
    by_primary: BTreeMap<Arc<str>, HashSet<HashBinary>>,
    len: usize,
}

impl PrimaryIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn add(&mut self, primary: &Arc<str>, hash: HashBinary) {
        let set = match self.by_primary.get_mut(&**primary) {
            Some(set) => set,
            None => self.by_primary.entry(primary.clone()).or_default(),
        };
        if set.insert(hash) {
            self.len += 1;
        }
    }

    pub fn remove(&mut self, primary: &str, hash: &HashBinary) {
        if let Some(set) = self.by_primary.get_mut(primary) {
            if set.remove(hash) {
                self.len -= 1;
            }
            if set.is_empty() {
                self.by_primary.remove(primary);
            }
        }
    }

    pub fn take_exact(&mut self, primary: &str) -> Vec<HashBinary> {
        let set = self.by_primary.remove(primary).unwrap_or_default();
        self.len -= set.len();
        set.into_iter().collect()
    }

    pub fn take_prefix(&mut self, prefix: &str) -> Vec<HashBinary> {
        let keys: Vec<Arc<str>> = self
            .by_primary
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, _)| k.clone())
            .collect();
        keys.iter().flat_map(|k| self.take_exact(k)).collect()
    }

    pub fn take_all(&mut self) -> Vec<HashBinary> {
        self.len = 0;
        std::mem::take(&mut self.by_primary)
            .into_values()
            .flatten()
            .collect()
    }

    /// Keeps only the hashes for which `live` holds.
    pub fn retain(&mut self, mut live: impl FnMut(&HashBinary) -> bool) {
        let mut len = 0;
        self.by_primary.retain(|_, set| {
            set.retain(&mut live);
            len += set.len();
            !set.is_empty()
        });
        self.len = len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_takes_only_matching_primaries() {
        let mut ix = PrimaryIndex::default();
        let p = |s: &str| -> Arc<str> { s.into() };
        ix.add(&p("/a/b"), [1; 16]);
        ix.add(&p("/a/b"), [2; 16]);
        ix.add(&p("/a/bc"), [3; 16]);
        ix.add(&p("/a/c"), [4; 16]);
        ix.add(&p("/a"), [5; 16]);
        assert_eq!(ix.len(), 5);
        let mut got = ix.take_prefix("/a/b");
        got.sort();
        assert_eq!(got, vec![[1; 16], [2; 16], [3; 16]]);
        assert_eq!(ix.len(), 2);
        assert_eq!(ix.take_exact("/a"), vec![[5; 16]]);
        ix.retain(|_| false);
        assert_eq!(ix.len(), 0);
        assert!(ix.take_all().is_empty());
    }
}
