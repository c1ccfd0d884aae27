//! The dedup window: the (`source`, `id`) of every event published within
//! [`crate::Config::dedup_window`], to recognise a second publish of the same event.
//!
//! Decision: held in memory, the way JetStream holds its duplicate window, rather than as
//! an index key per event in sled (the largest single cost of a publish; see `ids/`).
//! - An entry is a 128-bit xxh3 hash of (`source`, `id`) and the seq it was published
//!   at: about 40 bytes per event published within the window. Two different events
//!   share a hash with a chance near 2⁻¹²⁸ per pair, far below the disk's own rate of
//!   undetected errors, so a match is taken as the same event without reading it back.
//! - Only [`crate::Broker::publish`] adds to it. The events a handler publishes carry ids
//!   the runtime generated, and their commit is already exactly-once (the outbox); an
//!   HTTP publish without a `ce-id` gets a fresh id ([`crate::Broker::publish_fresh`]).
//!   Neither can repeat. (After a restart, the rebuilt window holds every event of the
//!   window's span, whatever published it: more than needed, never less.)
//! - Entries expire by seq: the window remembers the first seq of each append time, so
//!   the oldest seq still inside the window is known; older entries are swept out once
//!   the window has moved on by half of what it holds.
//! - Opening rebuilds it from the events the log appended within the window.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::ControlFlow;

use xxhash_rust::xxh3::Xxh3;

use crate::Result;
use crate::overlay::Kv;
use crate::records::log_key;

/// The 128-bit hash of an event's (`source`, `id`).
pub(crate) type DedupKey = u128;

pub(crate) fn dedup_key(source: &str, id: &str) -> DedupKey {
    let mut hasher = Xxh3::new();
    hasher.update(source.as_bytes());
    // `0x00` occurs in neither, so the pair is unambiguous.
    hasher.update(&[0]);
    hasher.update(id.as_bytes());
    hasher.digest128()
}

/// Keys are already hashes: the map uses their low bits as they are.
#[derive(Default)]
pub(crate) struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.0 = (self.0 << 8) | u64::from(*byte);
        }
    }

    fn write_u128(&mut self, key: u128) {
        self.0 = key as u64;
    }
}

#[derive(Debug)]
pub(crate) struct DedupWindow {
    window_ms: u64,
    seqs: HashMap<DedupKey, u64, BuildHasherDefault<KeyHasher>>,
    /// (append time, first seq appended then), oldest first, for the times still inside
    /// the window.
    times: VecDeque<(u64, u64)>,
    /// The window's oldest seq at the last sweep.
    swept_floor: u64,
}

impl DedupWindow {
    pub(crate) fn new(window_ms: u64) -> Self {
        DedupWindow {
            window_ms,
            seqs: HashMap::default(),
            times: VecDeque::new(),
            swept_floor: 0,
        }
    }

    /// Rebuilds the window from the events the log appended within it, before `now_ms`.
    pub(crate) fn rebuild(tree: &Kv, window_ms: u64, now_ms: u64) -> Result<Self> {
        let mut window = DedupWindow::new(window_ms);
        let cutoff = now_ms.saturating_sub(window_ms);
        // Chunks are appended in time order: walk back to the first one inside the window.
        let mut from = None;
        for item in tree.range_rev(log_key(0)..=log_key(u64::MAX)) {
            let (key, value) = item.map_err(|e| crate::Error::storage("reading the log", e))?;
            let chunk = crate::log::Chunk::parse(&key, &value)?;
            if chunk.appended_ms <= cutoff {
                break;
            }
            from = Some(chunk.first);
        }
        if let Some(from) = from {
            crate::log::scan(tree, from, u64::MAX, |appended_ms, entry| {
                let event = entry.head()?;
                window.insert(dedup_key(event.source, event.id), entry.seq, appended_ms);
                Ok(ControlFlow::Continue(()))
            })?;
        }
        Ok(window)
    }

    /// The seq of the event published with `key` within the window, if any.
    pub(crate) fn get(&mut self, key: DedupKey, now_ms: u64) -> Option<u64> {
        let floor = self.floor(now_ms);
        self.seqs.get(&key).copied().filter(|seq| *seq >= floor)
    }

    /// Notes that the event with `key` was published at `seq`, at `now_ms`.
    pub(crate) fn insert(&mut self, key: DedupKey, seq: u64, now_ms: u64) {
        if self.times.back().is_none_or(|(ms, _)| *ms < now_ms) {
            self.times.push_back((now_ms, seq));
        }
        self.seqs.insert(key, seq);
        let floor = self.floor(now_ms);
        if floor.saturating_sub(self.swept_floor) as usize >= (self.seqs.len() / 2).max(1024) {
            self.seqs.retain(|_, seq| *seq >= floor);
            self.swept_floor = floor;
        }
    }

    /// The oldest seq published within the window.
    fn floor(&mut self, now_ms: u64) -> u64 {
        while let Some(&(ms, _)) = self.times.front() {
            if ms.saturating_add(self.window_ms) > now_ms {
                break;
            }
            self.times.pop_front();
        }
        self.times.front().map_or(u64::MAX, |(_, seq)| *seq)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seqs.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_was_published_within_the_window_only() {
        let mut window = DedupWindow::new(1000);
        let a = dedup_key("s", "a");
        assert_ne!(a, dedup_key("sa", ""));
        window.insert(a, 1, 10);
        assert_eq!(window.get(a, 500), Some(1));
        assert_eq!(window.get(dedup_key("s", "b"), 500), None);
        window.insert(dedup_key("s", "b"), 2, 600);
        assert_eq!(window.get(a, 1009), Some(1));
        assert_eq!(window.get(a, 1010), None);
        assert_eq!(window.get(dedup_key("s", "b"), 1010), Some(2));
    }

    #[test]
    fn expired_entries_are_swept() {
        let mut window = DedupWindow::new(10);
        for seq in 1..=100_000u64 {
            window.insert(dedup_key("s", &seq.to_string()), seq, seq / 100);
        }
        // 10 ms of 100 events each are inside the window; sweeps keep it near that.
        assert!(window.len() < 3 * 1024, "{}", window.len());
        assert_eq!(window.get(dedup_key("s", "99999"), 1000), Some(99_999));
        assert_eq!(window.get(dedup_key("s", "5"), 1000), None);
    }
}
