//! The store as the broker reads it: sled, with the writes of the groups not yet
//! checkpointed held in memory in front of it ([`Overlay`]). [`Kv`] reads both.
//!
//! Decision: groups are applied to memory, and reach sled only at checkpoints, as one
//! batch per checkpoint. Every group is durable in the write-ahead log before it is
//! answered, so sled is only where the store is kept between checkpoints. Applied per
//! group, sled cost the most of any step: every `apply_batch` seals sled's IO buffer
//! twice, and sled writes each sealed buffer with `pwrite` followed by a
//! `sync_file_range` that waits for the disk, on its own threads (about a quarter of the
//! server's CPU under load, and the largest step of a delivery at low load).
//!
//! Layers, newest first: the active layer (the writer applies every group to it), then
//! frozen layers, each waiting for its checkpoint. A checkpoint applies a frozen layer to
//! sled, makes sled durable, deletes the log segments it covered, and only then drops the
//! layer, so a read always finds a write in a layer or in sled. A layer maps each key to
//! its last write in the layer: a value, or `None` for a removal, which hides what sled
//! still holds.

use std::cmp::Ordering;
use std::collections::{BTreeMap, VecDeque};
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use sled::IVec;

use crate::changes::Changes;

/// The last write of each key in a layer.
pub(crate) type Layer = BTreeMap<IVec, Option<IVec>>;

#[derive(Debug, Default)]
struct Layers {
    active: Layer,
    /// Bytes of keys and values applied to the active layer.
    active_bytes: u64,
    /// Oldest first.
    frozen: Vec<Arc<Layer>>,
}

/// The writes not yet in sled.
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    layers: RwLock<Layers>,
}

impl Overlay {
    fn read(&self) -> RwLockReadGuard<'_, Layers> {
        self.layers
            .read()
            .expect("overlay users do not panic while holding it")
    }

    fn write(&self) -> RwLockWriteGuard<'_, Layers> {
        self.layers
            .write()
            .expect("overlay users do not panic while holding it")
    }

    /// Applies a group's writes to the active layer. Returns the active layer's size.
    pub(crate) fn apply(&self, changes: &Changes) -> u64 {
        let mut layers = self.write();
        let mut bytes = 0;
        for (key, value) in changes.writes() {
            bytes += (key.len() + value.as_ref().map_or(0, |v| v.len())) as u64;
            layers.active.insert(key.clone(), value.clone());
        }
        layers.active_bytes += bytes;
        layers.active_bytes
    }

    /// Freezes the active layer for a checkpoint and starts a new one.
    pub(crate) fn freeze(&self) -> Arc<Layer> {
        let mut layers = self.write();
        let frozen = Arc::new(std::mem::take(&mut layers.active));
        layers.active_bytes = 0;
        layers.frozen.push(frozen.clone());
        frozen
    }

    /// How many frozen layers wait for their checkpoint.
    pub(crate) fn frozen_layers(&self) -> usize {
        self.read().frozen.len()
    }

    /// Drops a frozen layer once sled holds it.
    pub(crate) fn release(&self, layer: &Arc<Layer>) {
        self.write().frozen.retain(|f| !Arc::ptr_eq(f, layer));
    }

    /// The newest write of `key` in any layer: `Some(None)` is a removal.
    fn lookup(&self, key: &[u8]) -> Option<Option<IVec>> {
        let layers = self.read();
        if let Some(write) = layers.active.get(key) {
            return Some(write.clone());
        }
        layers
            .frozen
            .iter()
            .rev()
            .find_map(|layer| layer.get(key).cloned())
    }

    /// The newest writes of the first `max` keys in `(low, high)`, in key order (last
    /// key first when `reverse`).
    fn page(
        &self,
        range: (Bound<&[u8]>, Bound<&[u8]>),
        reverse: bool,
        max: usize,
    ) -> Vec<(IVec, Option<IVec>)> {
        type Writes<'a> = Box<dyn Iterator<Item = (&'a IVec, &'a Option<IVec>)> + 'a>;
        let layers = self.read();
        // Newest layer first, so the first write found of a key is its newest.
        let mut ranges: Vec<std::iter::Peekable<Writes<'_>>> = std::iter::once(&layers.active)
            .chain(layers.frozen.iter().rev().map(|layer| &**layer))
            .map(|layer| {
                let writes = layer.range::<[u8], _>(range);
                let writes: Writes<'_> = if reverse {
                    Box::new(writes.rev())
                } else {
                    Box::new(writes)
                };
                writes.peekable()
            })
            .collect();
        let mut page = Vec::new();
        while page.len() < max {
            let mut next: Option<&IVec> = None;
            for writes in &mut ranges {
                if let Some((key, _)) = writes.peek()
                    && next.is_none_or(|n| if reverse { *key > n } else { *key < n })
                {
                    next = Some(key);
                }
            }
            let Some(key) = next.cloned() else { break };
            let mut newest = None;
            for writes in &mut ranges {
                if let Some((_, write)) = writes.next_if(|(k, _)| **k == key) {
                    newest.get_or_insert_with(|| write.clone());
                }
            }
            page.push((key, newest.expect("a layer holds the key")));
        }
        page
    }
}

/// Reads of the store: the overlay first, then sled.
#[derive(Debug, Clone)]
pub(crate) struct Kv {
    pub(crate) sled: sled::Tree,
    pub(crate) overlay: Arc<Overlay>,
}

impl Kv {
    pub(crate) fn new(sled: sled::Tree) -> Self {
        Kv {
            sled,
            overlay: Arc::default(),
        }
    }

    pub(crate) fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<IVec>> {
        match self.overlay.lookup(key.as_ref()) {
            Some(write) => Ok(write),
            None => self.sled.get(key),
        }
    }

    pub(crate) fn contains_key(&self, key: impl AsRef<[u8]>) -> sled::Result<bool> {
        Ok(self.get(key)?.is_some())
    }

    /// The entries in `range`, in key order.
    pub(crate) fn range<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.merged(range, false)
    }

    /// The entries in `range`, last key first.
    pub(crate) fn range_rev<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R) -> Iter {
        self.merged(range, true)
    }

    /// The entries whose key starts with `prefix`, in key order.
    pub(crate) fn scan_prefix(&self, prefix: impl AsRef<[u8]>) -> Iter {
        let prefix = prefix.as_ref();
        match prefix_end(prefix) {
            Some(end) => self.range(prefix..end.as_slice()),
            None => self.range(prefix..),
        }
    }

    fn merged<K: AsRef<[u8]>, R: RangeBounds<K>>(&self, range: R, reverse: bool) -> Iter {
        let start = as_slice(range.start_bound());
        let end = as_slice(range.end_bound());
        let sled = self.sled.range::<&[u8], _>((start, end));
        Iter {
            overlay: self.overlay.clone(),
            low: owned(start),
            high: owned(end),
            reverse,
            page: VecDeque::new(),
            page_size: FIRST_PAGE,
            overlay_done: false,
            // Fused: a sled iterator is not promised to stay at its end.
            sled: if reverse {
                Box::new(sled.rev().fuse())
            } else {
                Box::new(sled.fuse())
            },
            sled_next: None,
        }
    }
}

/// Keys read from the overlay at a time by an iterator: few at first (most range reads
/// want one or two entries), then more.
const FIRST_PAGE: usize = 8;
const MAX_PAGE: usize = 1024;

fn owned(bound: Bound<&[u8]>) -> Bound<IVec> {
    match bound {
        Bound::Included(k) => Bound::Included(IVec::from(k)),
        Bound::Excluded(k) => Bound::Excluded(IVec::from(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn borrowed(bound: &Bound<IVec>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k),
        Bound::Excluded(k) => Bound::Excluded(k),
        Bound::Unbounded => Bound::Unbounded,
    }
}

fn as_slice<K: AsRef<[u8]>>(bound: Bound<&K>) -> Bound<&[u8]> {
    match bound {
        Bound::Included(k) => Bound::Included(k.as_ref()),
        Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// The first key after every key that starts with `prefix`, if there is one.
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

type SledIter = Box<dyn Iterator<Item = sled::Result<(IVec, IVec)>> + Send>;

/// A merge of the overlay and a sled range, in one direction. On a key in both, the
/// overlay's write wins; a removal hides the key. The overlay is read a page at a time
/// (its lock is not held between pages), like sled's own iterators: writes made while
/// iterating may or may not be seen.
pub(crate) struct Iter {
    overlay: Arc<Overlay>,
    /// What is left of the range on the overlay's side.
    low: Bound<IVec>,
    high: Bound<IVec>,
    reverse: bool,
    page: VecDeque<(IVec, Option<IVec>)>,
    page_size: usize,
    overlay_done: bool,
    sled: SledIter,
    sled_next: Option<(IVec, IVec)>,
}

impl Iter {
    /// Only the keys.
    pub(crate) fn keys(self) -> impl Iterator<Item = sled::Result<IVec>> {
        self.map(|item| item.map(|(key, _)| key))
    }

    /// Reads the overlay's next page when the current one is used up.
    fn fill_page(&mut self) {
        if !self.page.is_empty() || self.overlay_done {
            return;
        }
        let page = self.overlay.page(
            (borrowed(&self.low), borrowed(&self.high)),
            self.reverse,
            self.page_size,
        );
        self.overlay_done = page.len() < self.page_size;
        self.page_size = (self.page_size * 2).min(MAX_PAGE);
        if let Some((last, _)) = page.last() {
            let past = Bound::Excluded(last.clone());
            if self.reverse {
                self.high = past;
            } else {
                self.low = past;
            }
        }
        self.page.extend(page);
    }
}

impl Iterator for Iter {
    type Item = sled::Result<(IVec, IVec)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.sled_next.is_none() {
                match self.sled.next() {
                    Some(Ok(item)) => self.sled_next = Some(item),
                    Some(Err(e)) => return Some(Err(e)),
                    None => {}
                }
            }
            self.fill_page();
            // Which side comes first in this iterator's direction.
            let order = match (self.page.front(), &self.sled_next) {
                (None, None) => return None,
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (Some((o, _)), Some((s, _))) if self.reverse => s.cmp(o),
                (Some((o, _)), Some((s, _))) => o.cmp(s),
            };
            if order == Ordering::Greater {
                return self.sled_next.take().map(Ok);
            }
            if order == Ordering::Equal {
                // The overlay's write replaces sled's value.
                self.sled_next = None;
            }
            let (key, write) = self.page.pop_front().expect("the page has a front");
            if let Some(value) = write {
                return Some(Ok((key, value)));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv() -> Kv {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Kv::new(db.open_tree("t").unwrap())
    }

    fn changes(writes: &[(&str, Option<&str>)]) -> Changes {
        let mut changes = Changes::default();
        for (key, value) in writes {
            match value {
                Some(value) => changes.insert(key.as_bytes(), value.as_bytes()),
                None => changes.remove(key.as_bytes()),
            }
        }
        changes
    }

    fn pairs(iter: Iter) -> Vec<(String, String)> {
        iter.map(|item| {
            let (k, v) = item.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
    }

    fn strings(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn layers_hide_and_replace_what_sled_holds() {
        let kv = kv();
        for key in ["a1", "a2", "a3", "b1"] {
            kv.sled.insert(key, "sled").unwrap();
        }
        kv.overlay.apply(&changes(&[
            ("a2", None),
            ("a4", Some("old")),
            ("a0", Some("x")),
        ]));
        let frozen = kv.overlay.freeze();
        kv.overlay
            .apply(&changes(&[("a4", Some("new")), ("a1", Some("over"))]));
        assert_eq!(kv.get("a2").unwrap(), None);
        assert_eq!(kv.get("a4").unwrap().unwrap(), b"new".as_slice());
        assert_eq!(kv.get("a3").unwrap().unwrap(), b"sled".as_slice());
        let want = [("a0", "x"), ("a1", "over"), ("a3", "sled"), ("a4", "new")];
        assert_eq!(pairs(kv.scan_prefix("a")), strings(&want));
        let mut reversed = want.to_vec();
        reversed.reverse();
        assert_eq!(pairs(kv.range_rev("a".."b")), strings(&reversed));
        assert_eq!(
            pairs(kv.range("a1"..="a3")),
            strings(&[("a1", "over"), ("a3", "sled")])
        );

        // The checkpoint: the frozen layer reaches sled, then is dropped. Reads agree
        // before and after.
        for (key, write) in frozen.iter() {
            match write {
                Some(value) => kv.sled.insert(key, value.clone()).unwrap(),
                None => kv.sled.remove(key).unwrap(),
            };
        }
        assert_eq!(pairs(kv.scan_prefix("a")), strings(&want));
        kv.overlay.release(&frozen);
        assert_eq!(pairs(kv.scan_prefix("a")), strings(&want));
        assert!(!kv.contains_key("a2").unwrap());
    }

    #[test]
    fn long_ranges_page_through_the_layers_and_agree_with_a_model() {
        let kv = kv();
        let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        let key = |n: u64| format!("k{:05}", n % 5000).into_bytes();
        // sled, two frozen layers and the active one, each writing and removing keys
        // that overlap the others'.
        let mut n = 7u64;
        let mut next = || {
            n = n
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n >> 33
        };
        for i in 0..3000 {
            let k = key(next());
            kv.sled.insert(&k, format!("sled{i}").as_bytes()).unwrap();
            model.insert(k, format!("sled{i}").into_bytes());
        }
        for layer in 0..3 {
            let mut changes = Changes::default();
            for i in 0..1500 {
                let k = key(next());
                if next() % 3 == 0 {
                    changes.remove(k.clone());
                    model.remove(&k);
                } else {
                    let v = format!("l{layer}-{i}").into_bytes();
                    changes.insert(k.clone(), v.clone());
                    model.insert(k, v);
                }
            }
            kv.overlay.apply(&changes);
            if layer < 2 {
                kv.overlay.freeze();
            }
        }
        let got: Vec<(Vec<u8>, Vec<u8>)> = kv
            .scan_prefix(b"k")
            .map(|item| {
                let (k, v) = item.unwrap();
                (k.to_vec(), v.to_vec())
            })
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = model.clone().into_iter().collect();
        assert_eq!(got, want);
        let got_rev: Vec<Vec<u8>> = kv
            .range_rev(b"k01000".as_slice()..b"k04000".as_slice())
            .map(|item| item.unwrap().0.to_vec())
            .collect();
        let want_rev: Vec<Vec<u8>> = model
            .range(b"k01000".to_vec()..b"k04000".to_vec())
            .rev()
            .map(|(k, _)| k.clone())
            .collect();
        assert_eq!(got_rev, want_rev);
        for probe in 0..5000 {
            let k = key(probe);
            assert_eq!(
                kv.get(&k).unwrap().map(|v| v.to_vec()),
                model.get(&k).cloned()
            );
        }
    }

    #[test]
    fn prefix_ends_carry_past_full_bytes() {
        assert_eq!(prefix_end(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_end(&[1, 255]), Some(vec![2]));
        assert_eq!(prefix_end(&[255, 255]), None);
    }
}
