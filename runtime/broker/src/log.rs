//! The log as stored: runs of consecutive events in chunks, one sled value per chunk.
//!
//! Decision: one `L` value holds up to [`CHUNK_BYTES`] of events appended by one group
//! commit, keyed by the seq of its first event, instead of one value per event. sled
//! 0.34's cost is per key written (every insert copies a leaf node and logs a fragment,
//! and the old copy is freed later on sled's threads); a group of 100 publishes now
//! writes about eight log values instead of 100. The size bound keeps a sled leaf (at
//! most 17 values before it splits) well below sled's blob threshold (a quarter of its
//! 512 KiB segment): a larger node would be written to a file of its own, which strict
//! mode must then fdatasync separately.
//!
//! A chunk is written once and never grows. Retention may take events out of it
//! (`retention.rs` rewrites it under the same key, or removes it when empty), so a chunk
//! lists each event's offset from its key rather than assuming a dense run. Chunks never
//! overlap: a chunk keyed `k` holds only seqs from `k` up to the next chunk's key, so the
//! chunk holding `seq` is the last one keyed at or before it.
//!
//! Value layout: the append time (ms, u64 big-endian, shared by the chunk's events: they
//! were appended by one group), then per event: its seq minus the key (varint), the
//! length of its encoding (varint), and the postcard encoding of the [`Event`].

use std::collections::HashMap;
use std::ops::ControlFlow;

use choreo_core::{Event, RecordedEvent};

use crate::overlay::Kv;
use crate::records::log_key;
use crate::{Error, Result};

/// The size at which a chunk is closed and the next event starts a new one. An event
/// larger than this gets a chunk of its own.
pub(crate) const CHUNK_BYTES: usize = 4096;

const HEADER_BYTES: usize = 8;

/// A chunk under construction.
#[derive(Debug)]
pub(crate) struct ChunkBuilder {
    first: u64,
    next: u64,
    value: Vec<u8>,
}

impl ChunkBuilder {
    pub(crate) fn new(first: u64, appended_ms: u64) -> Self {
        let mut value = Vec::with_capacity(CHUNK_BYTES + 512);
        value.extend_from_slice(&appended_ms.to_be_bytes());
        ChunkBuilder {
            first,
            next: first,
            value,
        }
    }

    /// The seq the next event must have to join this chunk.
    pub(crate) fn next_seq(&self) -> u64 {
        self.next
    }

    pub(crate) fn is_full(&self) -> bool {
        self.value.len() >= CHUNK_BYTES
    }

    /// Adds the event at `seq`, encoded by `encoded`.
    pub(crate) fn push(&mut self, seq: u64, encoded: &[u8]) {
        debug_assert!(seq >= self.next, "seqs in a chunk ascend");
        push_entry(&mut self.value, seq - self.first, encoded);
        self.next = seq + 1;
    }

    /// The key and value to store.
    pub(crate) fn finish(self) -> ([u8; 9], Vec<u8>) {
        (log_key(self.first), self.value)
    }
}

fn push_entry(value: &mut Vec<u8>, offset: u64, encoded: &[u8]) {
    push_varint(value, offset);
    push_varint(value, encoded.len() as u64);
    value.extend_from_slice(encoded);
}

/// Bytes an entry takes in its chunk; retention subtracts it from the log's size.
pub(crate) fn entry_footprint(offset: u64, len: usize) -> u64 {
    (varint_len(offset) + varint_len(len as u64) + len) as u64
}

/// Bytes a chunk takes besides its entries.
pub(crate) const fn header_footprint() -> u64 {
    HEADER_BYTES as u64
}

fn push_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

fn read_varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(n);
        }
    }
    None
}

/// One stored chunk, parsed lazily: events are decoded only when asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Chunk<'a> {
    pub(crate) first: u64,
    pub(crate) appended_ms: u64,
    entries: &'a [u8],
}

/// One event's place in a chunk, still encoded.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub(crate) seq: u64,
    pub(crate) encoded: &'a [u8],
}

impl<'a> Chunk<'a> {
    pub(crate) fn parse(key: &[u8], value: &'a [u8]) -> Result<Self> {
        let first = crate::records::log_seq(key)?;
        let header: [u8; HEADER_BYTES] = value
            .get(..HEADER_BYTES)
            .and_then(|h| h.try_into().ok())
            .ok_or_else(|| Error::corrupt(format!("log chunk {first}"), "no header"))?;
        Ok(Chunk {
            first,
            appended_ms: u64::from_be_bytes(header),
            entries: &value[HEADER_BYTES..],
        })
    }

    pub(crate) fn entries(&self) -> Entries<'a> {
        Entries {
            first: self.first,
            bytes: self.entries,
            at: 0,
        }
    }

    /// A chunk holding only `kept` (entries of this chunk, in order), with this one's key.
    pub(crate) fn rebuild(&self, kept: &[Entry<'_>]) -> Vec<u8> {
        let mut value = Vec::with_capacity(HEADER_BYTES + self.entries.len());
        value.extend_from_slice(&self.appended_ms.to_be_bytes());
        for entry in kept {
            push_entry(&mut value, entry.seq - self.first, entry.encoded);
        }
        value
    }
}

pub(crate) struct Entries<'a> {
    first: u64,
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.at >= self.bytes.len() {
            return None;
        }
        let bad = || Error::corrupt(format!("log chunk {}", self.first), "truncated entry");
        let mut at = self.at;
        let Some(offset) = read_varint(self.bytes, &mut at) else {
            self.at = self.bytes.len();
            return Some(Err(bad()));
        };
        let len = read_varint(self.bytes, &mut at).and_then(|l| usize::try_from(l).ok());
        let Some(encoded) = len.and_then(|len| self.bytes.get(at..at.checked_add(len)?)) else {
            self.at = self.bytes.len();
            return Some(Err(bad()));
        };
        self.at = at + encoded.len();
        Some(Ok(Entry {
            seq: self.first + offset,
            encoded,
        }))
    }
}

impl Entry<'_> {
    pub(crate) fn decode(&self) -> Result<Event> {
        crate::records::decode(self.encoded, "log entry")
    }

    pub(crate) fn recorded(&self) -> Result<RecordedEvent> {
        Ok(RecordedEvent {
            seq: self.seq,
            event: self.decode()?,
        })
    }

    /// The event's leading fields only: what matching, counting and deduplicating read,
    /// without decoding (or allocating) the rest.
    pub(crate) fn head(&self) -> Result<Head<'_>> {
        crate::records::decode_prefix(self.encoded)
    }

    pub(crate) fn footprint(&self, first: u64) -> u64 {
        entry_footprint(self.seq - first, self.encoded.len())
    }
}

/// The first four fields of a stored [`Event`], in their stored order.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct Head<'a> {
    pub(crate) id: &'a str,
    pub(crate) source: &'a str,
    #[serde(rename = "type")]
    _ty: &'a str,
    pub(crate) topic: &'a str,
}

/// The chunk that would hold `seq`: the last one keyed at or before it.
fn chunk_at(tree: &Kv, seq: u64) -> Result<Option<(sled::IVec, sled::IVec)>> {
    tree.range_rev(log_key(0)..=log_key(seq))
        .next()
        .transpose()
        .map_err(|e| Error::storage("reading the log", e))
}

/// The seq of the log's first event, if it holds any.
pub(crate) fn first_seq(tree: &Kv) -> Result<Option<u64>> {
    match tree.range(log_key(0)..=log_key(u64::MAX)).next() {
        Some(item) => {
            let (key, _) = item.map_err(|e| Error::storage("reading the log", e))?;
            crate::records::log_seq(&key).map(Some)
        }
        None => Ok(None),
    }
}

/// Reads one event, if the log holds it.
pub(crate) fn read(tree: &Kv, seq: u64) -> Result<Option<RecordedEvent>> {
    let Some((key, value)) = chunk_at(tree, seq)? else {
        return Ok(None);
    };
    let chunk = Chunk::parse(&key, &value)?;
    for entry in chunk.entries() {
        let entry = entry?;
        if entry.seq == seq {
            return entry.recorded().map(Some);
        }
        if entry.seq > seq {
            break;
        }
    }
    Ok(None)
}

/// Reads one event that must be in the log (a queue or a dead-letter holds it).
pub(crate) fn read_held(tree: &Kv, seq: u64) -> Result<RecordedEvent> {
    read(tree, seq)?
        .ok_or_else(|| Error::corrupt(format!("event seq {seq}"), "missing from the log"))
}

/// Visits the stored events with seqs in `from..=to`, in seq order, with their chunk's
/// append time, until `visit` breaks. Returns whether it did.
pub(crate) fn scan(
    tree: &Kv,
    from: u64,
    to: u64,
    mut visit: impl FnMut(u64, Entry<'_>) -> Result<ControlFlow<()>>,
) -> Result<bool> {
    if from > to {
        return Ok(false);
    }
    // The chunk holding `from` may start before it.
    let start = match chunk_at(tree, from)? {
        Some((key, _)) => crate::records::log_seq(&key)?,
        None => from,
    };
    for item in tree.range(log_key(start)..=log_key(to)) {
        let (key, value) = item.map_err(|e| Error::storage("reading the log", e))?;
        let chunk = Chunk::parse(&key, &value)?;
        for entry in chunk.entries() {
            let entry = entry?;
            if entry.seq < from {
                continue;
            }
            if entry.seq > to {
                return Ok(false);
            }
            if visit(chunk.appended_ms, entry)?.is_break() {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Fewest held events read with one range scan instead of point reads.
const MIN_RANGE_READ: usize = 8;

/// A range scan reads every event in the span, matching or not; it is used while the
/// span holds at most this many events per leased one.
const MAX_RANGE_SPREAD: u64 = 4;

/// Reads events that queues hold (just leased, or recovered), in the order of `seqs`.
///
/// Decision: when the seqs are dense (a catch-up, or a busy handler, leases runs of
/// neighbouring seqs), one range scan over their span: sled walks each leaf once, where a
/// point read descends the tree for every event. Sparse seqs are read one by one. Every
/// leased event is in the log: it is durable before it is enqueued, and retention keeps
/// events that a queue holds.
pub(crate) fn read_held_many(tree: &Kv, seqs: &[u64]) -> Result<Vec<RecordedEvent>> {
    let (Some(&first), Some(&last)) = (seqs.iter().min(), seqs.iter().max()) else {
        return Ok(Vec::new());
    };
    let count = seqs.len() as u64;
    if seqs.len() < MIN_RANGE_READ || last - first >= count.saturating_mul(MAX_RANGE_SPREAD) {
        return seqs.iter().map(|&seq| read_held(tree, seq)).collect();
    }
    let slots: HashMap<u64, usize> = seqs.iter().enumerate().map(|(i, &s)| (s, i)).collect();
    let mut events: Vec<Option<RecordedEvent>> = (0..seqs.len()).map(|_| None).collect();
    scan(tree, first, last, |_, entry| {
        if let Some(&slot) = slots.get(&entry.seq) {
            events[slot] = Some(entry.recorded()?);
        }
        Ok(ControlFlow::Continue(()))
    })?;
    events
        .into_iter()
        .zip(seqs)
        .map(|(event, &seq)| {
            event.ok_or_else(|| Error::corrupt(format!("event seq {seq}"), "missing from the log"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use choreo_core::Topic;

    fn event(n: u8) -> Event {
        Event::new(Topic::new("a.b").unwrap(), "test://log", vec![n; 300])
    }

    fn store(tree: &Kv, first: u64, events: &[(u64, Event)]) {
        let mut chunk = ChunkBuilder::new(first, 77);
        for (seq, event) in events {
            chunk.push(*seq, &crate::records::encode(event));
        }
        let (key, value) = chunk.finish();
        tree.sled.insert(key, value).unwrap();
    }

    fn temp_tree() -> Kv {
        let db = sled::Config::new().temporary(true).open().unwrap();
        Kv::new(db.open_tree("t").unwrap())
    }

    #[test]
    fn the_head_is_the_leading_fields_of_a_stored_event() {
        let mut event = Event::new(Topic::new("a.b").unwrap(), "test://log", vec![1, 2]);
        event.extensions.insert("tenant".into(), "acme".into());
        let encoded = crate::records::encode(&event);
        let entry = Entry {
            seq: 7,
            encoded: &encoded,
        };
        let head = entry.head().unwrap();
        assert_eq!(
            (head.id, head.source, head.topic),
            (event.id.as_str(), "test://log", "a.b")
        );
    }

    #[test]
    fn reads_a_seq_inside_a_chunk_and_not_between_chunks() {
        let tree = temp_tree();
        store(&tree, 1, &[(1, event(1)), (2, event(2)), (3, event(3))]);
        // Retention took 11 and 12 out of the chunk keyed 10.
        store(&tree, 10, &[(10, event(10)), (13, event(13))]);
        assert_eq!(read(&tree, 2).unwrap().unwrap().event.data, vec![2; 300]);
        assert_eq!(read(&tree, 13).unwrap().unwrap().seq, 13);
        for missing in [0, 4, 9, 11, 12, 14, 1000] {
            assert!(read(&tree, missing).unwrap().is_none(), "{missing}");
        }
        let mut seen = Vec::new();
        scan(&tree, 2, 12, |appended_ms, entry| {
            assert_eq!(appended_ms, 77);
            seen.push(entry.seq);
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(seen, [2, 3, 10]);
    }

    #[test]
    fn rebuilding_keeps_offsets_and_footprints_add_up() {
        let tree = temp_tree();
        let events: Vec<_> = (5..9).map(|s| (s, event(s as u8))).collect();
        store(&tree, 5, &events);
        let (key, value) = tree.sled.iter().next().unwrap().unwrap();
        let chunk = Chunk::parse(&key, &value).unwrap();
        let entries: Vec<_> = chunk.entries().map(Result::unwrap).collect();
        let total: u64 = entries.iter().map(|e| e.footprint(5)).sum();
        assert_eq!(total + header_footprint(), value.len() as u64);
        let kept = [entries[1], entries[3]];
        let rebuilt = chunk.rebuild(&kept);
        let kept_bytes: u64 = kept.iter().map(|e| e.footprint(5)).sum();
        assert_eq!(rebuilt.len() as u64, kept_bytes + header_footprint());
        tree.sled.insert(key, rebuilt).unwrap();
        assert!(read(&tree, 5).unwrap().is_none());
        assert_eq!(read(&tree, 8).unwrap().unwrap().event.data, vec![8; 300]);
    }

    #[test]
    fn varints_round_trip() {
        for n in [0, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let mut out = Vec::new();
            push_varint(&mut out, n);
            assert_eq!(out.len(), varint_len(n));
            let mut at = 0;
            assert_eq!(read_varint(&out, &mut at), Some(n));
        }
    }
}
