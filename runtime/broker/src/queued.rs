//! Which seqs each handler's queue holds, as stored: one bitmap per run of
//! [`QUEUE_CHUNK`] seqs, instead of one record per queued event.
//!
//! Decision: queue membership and delivery state are stored apart. Membership is a bit
//! in a `Q` chunk; an entry's delivery state (attempts, lease, backoff, last error) gets
//! a `D` record of its own only once it differs from a fresh entry's (see
//! `records::StateRecord`). A group that enqueues or acks hundreds of neighbouring seqs
//! for a handler then rewrites one or two chunks instead of writing hundreds of keys,
//! which is what sled 0.34 charges for (`log.rs` explains the cost). A catch-up of 100k
//! events writes about a hundred chunks instead of 100k records, and its acks as many.
//! The ordering key is not stored at all: recovery reads it from the event (`store.rs`).
//!
//! [`QueuedChunks`] is one group's working copy: a chunk is read from the tree the first
//! time the group touches it (the tree holds every earlier group's writes, since the
//! writer applies each batch before building the next) and written once at the end.

use std::collections::HashMap;

use choreo_core::HandlerName;

use crate::changes::Changes;
use crate::overlay::Kv;
use crate::records;
use crate::store::get;
use crate::{Error, Result};

/// Seqs per queue chunk. A dense chunk is a 128-byte bitmap.
pub(crate) const QUEUE_CHUNK: u64 = 1024;

const WORDS: usize = (QUEUE_CHUNK / 64) as usize;

/// Chunks with at most this many entries are stored as a list of 2-byte offsets, so a
/// handler that matches one event in many does not pay a whole bitmap per entry.
const MAX_LISTED: usize = 48;

const TAG_LIST: u8 = 0;
const TAG_BITMAP: u8 = 1;

/// The seqs of one chunk that a queue holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bits([u64; WORDS]);

impl Bits {
    pub(crate) fn set(&mut self, offset: u64, present: bool) {
        let (word, bit) = ((offset / 64) as usize, offset % 64);
        if present {
            self.0[word] |= 1 << bit;
        } else {
            self.0[word] &= !(1 << bit);
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    fn count(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// The offsets present, ascending.
    pub(crate) fn offsets(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().enumerate().flat_map(|(i, &word)| {
            let mut word = word;
            std::iter::from_fn(move || {
                if word == 0 {
                    return None;
                }
                let bit = u64::from(word.trailing_zeros());
                word &= word - 1;
                Some(i as u64 * 64 + bit)
            })
        })
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        let count = self.count();
        if count <= MAX_LISTED {
            let mut out = Vec::with_capacity(1 + 2 * count);
            out.push(TAG_LIST);
            for offset in self.offsets() {
                out.extend_from_slice(&(offset as u16).to_be_bytes());
            }
            out
        } else {
            let mut out = Vec::with_capacity(1 + 8 * WORDS);
            out.push(TAG_BITMAP);
            for word in self.0 {
                out.extend_from_slice(&word.to_be_bytes());
            }
            out
        }
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Self> {
        let bad = || {
            Error::corrupt(
                "queue chunk",
                format!("malformed value of {} bytes", bytes.len()),
            )
        };
        let mut bits = Bits::default();
        match bytes.split_first() {
            Some((&TAG_LIST, rest)) if rest.len() % 2 == 0 => {
                for pair in rest.chunks_exact(2) {
                    let offset = u64::from(u16::from_be_bytes([pair[0], pair[1]]));
                    if offset >= QUEUE_CHUNK {
                        return Err(bad());
                    }
                    bits.set(offset, true);
                }
            }
            Some((&TAG_BITMAP, rest)) if rest.len() == 8 * WORDS => {
                for (word, bytes) in bits.0.iter_mut().zip(rest.chunks_exact(8)) {
                    *word = u64::from_be_bytes(bytes.try_into().expect("chunks of 8"));
                }
            }
            _ => return Err(bad()),
        }
        Ok(bits)
    }
}

/// The first seq of the chunk holding `seq`.
pub(crate) fn chunk_base(seq: u64) -> u64 {
    seq - seq % QUEUE_CHUNK
}

/// One group's changes to queue chunks.
#[derive(Debug, Default)]
pub(crate) struct QueuedChunks {
    chunks: HashMap<HandlerName, HashMap<u64, Bits>>,
}

impl QueuedChunks {
    /// Marks `seq` as held (or no longer held) by the handler's queue.
    pub(crate) fn set(
        &mut self,
        tree: &Kv,
        handler: &HandlerName,
        seq: u64,
        present: bool,
    ) -> Result<()> {
        let base = chunk_base(seq);
        if !self.chunks.contains_key(handler) {
            self.chunks.insert(handler.clone(), HashMap::new());
        }
        let chunks = self
            .chunks
            .get_mut(handler)
            .expect("inserted just above when missing");
        let bits = match chunks.entry(base) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => {
                let key = records::queue_key(handler, base);
                let stored = get(tree, &key, "reading a queue chunk")?;
                entry.insert(match stored {
                    Some(bytes) => Bits::decode(&bytes)?,
                    None => Bits::default(),
                })
            }
        };
        bits.set(seq - base, present);
        Ok(())
    }

    /// Adds every touched chunk to the batch; an empty chunk is removed.
    pub(crate) fn write(self, batch: &mut Changes) {
        for (handler, chunks) in self.chunks {
            for (base, bits) in chunks {
                let key = records::queue_key(&handler, base);
                if bits.is_empty() {
                    batch.remove(key);
                } else {
                    batch.insert(key, bits.encode());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sparse_and_dense_chunks_round_trip() {
        let mut sparse = Bits::default();
        for offset in [0, 5, 1023] {
            sparse.set(offset, true);
        }
        assert_eq!(sparse.encode().len(), 7);
        assert_eq!(Bits::decode(&sparse.encode()).unwrap(), sparse);
        assert_eq!(sparse.offsets().collect::<Vec<_>>(), [0, 5, 1023]);

        let mut dense = Bits::default();
        for offset in (0..QUEUE_CHUNK).step_by(3) {
            dense.set(offset, true);
        }
        dense.set(3, false);
        assert_eq!(dense.encode().len(), 129);
        let back = Bits::decode(&dense.encode()).unwrap();
        assert_eq!(back, dense);
        assert_eq!(back.offsets().take(3).collect::<Vec<_>>(), [0, 6, 9]);
        assert!(Bits::decode(&[7]).is_err());
        assert!(
            Bits::decode(&[TAG_LIST, 4, 0]).is_err(),
            "offset 1024 is out of range"
        );
    }

    #[test]
    fn a_group_reads_a_chunk_once_and_removes_it_when_empty() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = Kv::new(db.open_tree("t").unwrap());
        let entries = |tree: &Kv| tree.scan_prefix(b"").count();
        let h = HandlerName::new("h").unwrap();
        let mut group = QueuedChunks::default();
        for seq in [1, 2, 1030] {
            group.set(&tree, &h, seq, true).unwrap();
        }
        let mut batch = Changes::default();
        group.write(&mut batch);
        tree.overlay.apply(&batch);
        assert_eq!(entries(&tree), 2);

        let mut group = QueuedChunks::default();
        group.set(&tree, &h, 1, false).unwrap();
        group.set(&tree, &h, 1030, false).unwrap();
        let mut batch = Changes::default();
        group.write(&mut batch);
        tree.overlay.apply(&batch);
        let (key, value) = tree.scan_prefix(b"").next().unwrap().unwrap();
        assert_eq!(records::handler_seq(&key).unwrap().1, 0);
        assert_eq!(
            Bits::decode(&value).unwrap().offsets().collect::<Vec<_>>(),
            [2]
        );
        assert_eq!(entries(&tree), 1);
    }
}
