//! The on-disk layout: one sled tree, typed key prefixes, postcard-encoded values.
//!
//! Decision: a single tree, because `Tree::apply_batch` is atomic across the keys of one
//! tree while multi-tree transactions cost far more; a checkpoint (`durable.rs`) writes
//! its batches into one tree, the last-applied-group key last. Keys sort so that each kind of record is a contiguous, ordered range:
//!
//! | prefix | key                                  | value                 |
//! |--------|--------------------------------------|-----------------------|
//! | `L`    | seq of its first event (u64 BE)      | a chunk of events (`log.rs`) |
//! | `Q`    | handler, `0x00`, first seq of a run of 1,024 (u64 BE) | which seqs of the run the queue holds (`queued.rs`) |
//! | `D`    | handler, `0x00`, seq (u64 BE)        | [`StateRecord`], for entries whose state is not fresh |
//! | `S`    | handler, `0x00`, state key           | raw state value       |
//! | `X`    | handler, `0x00`, seq (u64 BE)        | [`DeadLetterRecord`]  |
//! | `H`    | handler                              | [`SubRecord`]         |
//! | `M`    | `meta`                               | [`Meta`]              |
//! | `M`    | `wal`                                | the last group applied (u64 BE, `wal.rs`) |
//!
//! Beside the tree, the store directory holds the write-ahead log (`wal/`, `wal.rs`) and
//! the id index (`ids/`).
//!
//! `0x00` cannot occur in a handler name, so it ends one unambiguously. A queue entry is
//! a bit in a `Q` chunk plus, once it has been leased or retried, a `D` record with its
//! delivery state; recovery rebuilds every queue from the `Q` and `D` ranges and reads
//! ordering keys from the log.
//!
//! Decision: nothing is written to sled per event. sled 0.34 pays per key written (a
//! leaf copy, a log fragment, a deferred free of the old copy), so records that many
//! events share (log chunks, queue chunks) are written once per group, and the indexes
//! by id live outside sled: the id index in files of sorted hashes (`ids/`), the dedup
//! window in memory (`dedup.rs`).

use choreo_core::{HandlerName, Pattern};
use serde::{Deserialize, Serialize, de::DeserializeOwned};

use crate::{DeadLetterCause, Error, Result, RetryPolicy};

/// Bumped when a record's encoding changes; a store in another format is refused.
/// 2: a dead-letter record says why (rejected, or retries spent) apart from the last error.
/// 3: the log is stored in chunks of consecutive events (`log.rs`), not one value each.
/// 4: queue membership in bitmap chunks (`queued.rs`), delivery state in `D` records.
/// 5: a write-ahead log (`wal.rs`) holds what sled has not been synced with.
/// 6: the id and causation indexes left sled for `ids/`.
pub(crate) const FORMAT: u32 = 6;

pub(crate) const META_KEY: &[u8] = b"Mmeta";

/// The number of the last group applied, written in every group (`wal.rs`).
pub(crate) const APPLIED_KEY: &[u8] = b"Mwal";

pub(crate) fn log_key(seq: u64) -> [u8; 9] {
    let mut key = [b'L'; 9];
    key[1..].copy_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn log_seq(key: &[u8]) -> Result<u64> {
    seq_suffix(key).ok_or_else(|| Error::corrupt("log key", "shorter than 9 bytes"))
}

/// The prefix of a handler's records of kind `kind` (`Q`, `S` or `X`).
pub(crate) fn handler_prefix(kind: u8, handler: &HandlerName) -> Vec<u8> {
    let mut key = Vec::with_capacity(2 + handler.as_str().len() + 8);
    key.push(kind);
    key.extend_from_slice(handler.as_str().as_bytes());
    key.push(0);
    key
}

/// The key of the queue chunk starting at `base` (see `queued.rs`).
pub(crate) fn queue_key(handler: &HandlerName, base: u64) -> Vec<u8> {
    let mut key = handler_prefix(b'Q', handler);
    key.extend_from_slice(&base.to_be_bytes());
    key
}

/// The key of a queue entry's delivery state.
pub(crate) fn state_record_key(handler: &HandlerName, seq: u64) -> Vec<u8> {
    let mut key = handler_prefix(b'D', handler);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn dlq_key(handler: &HandlerName, seq: u64) -> Vec<u8> {
    let mut key = handler_prefix(b'X', handler);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

pub(crate) fn state_key(handler: &HandlerName, state: &[u8]) -> Vec<u8> {
    let mut key = handler_prefix(b'S', handler);
    key.extend_from_slice(state);
    key
}

pub(crate) fn sub_key(handler: &HandlerName) -> Vec<u8> {
    let mut key = vec![b'H'];
    key.extend_from_slice(handler.as_str().as_bytes());
    key
}

/// The handler named by a `Q`, `D` or `X` key, and the seq it ends with.
pub(crate) fn handler_seq(key: &[u8]) -> Result<(HandlerName, u64)> {
    let bad = || Error::corrupt("queue key", format!("malformed key {key:?}"));
    let end = key.iter().position(|b| *b == 0).ok_or_else(bad)?;
    let name = std::str::from_utf8(&key[1..end]).map_err(|_| bad())?;
    let handler = HandlerName::new(name).map_err(|e| Error::corrupt("queue key", e))?;
    let seq = seq_suffix(&key[end..]).ok_or_else(bad)?;
    Ok((handler, seq))
}

fn seq_suffix(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// A live lease on a queue entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaseRecord {
    pub(crate) id: u64,
    pub(crate) expires_ms: u64,
}

/// An event waiting in a handler's queue, with its delivery state, as the writer hands
/// it to the in-memory queue. Stored as a bit in a `Q` chunk and, when not fresh, a
/// [`StateRecord`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryRecord {
    /// The event's ordering key.
    pub(crate) key: String,
    /// Deliveries started so far.
    pub(crate) attempt: u32,
    /// No delivery before this time (retry backoff).
    pub(crate) not_before_ms: u64,
    pub(crate) lease: Option<LeaseRecord>,
    pub(crate) last_error: Option<String>,
    /// Whether a `D` record holds this state, so settling the entry must remove it.
    pub(crate) state_stored: bool,
}

impl EntryRecord {
    pub(crate) fn new(key: &str) -> Self {
        EntryRecord {
            key: key.to_owned(),
            attempt: 0,
            not_before_ms: 0,
            lease: None,
            last_error: None,
            state_stored: false,
        }
    }

    /// The delivery state to store.
    pub(crate) fn state(&self) -> StateRecord {
        StateRecord {
            attempt: self.attempt,
            not_before_ms: self.not_before_ms,
            lease: self.lease,
            last_error: self.last_error.clone(),
        }
    }
}

/// A queue entry's delivery state (`D`): written when the entry is leased or retried,
/// removed with the entry. An entry without one is fresh: never delivered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct StateRecord {
    pub(crate) attempt: u32,
    pub(crate) not_before_ms: u64,
    pub(crate) lease: Option<LeaseRecord>,
    pub(crate) last_error: Option<String>,
}

impl StateRecord {
    /// The entry with this state, whose event has ordering key `key`.
    pub(crate) fn entry(self, key: String) -> EntryRecord {
        EntryRecord {
            key,
            attempt: self.attempt,
            not_before_ms: self.not_before_ms,
            lease: self.lease,
            last_error: self.last_error,
            state_stored: true,
        }
    }
}

/// Why and when an event was dead-lettered for a handler.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct DeadLetterRecord {
    pub(crate) cause: DeadLetterCause,
    pub(crate) last_error: String,
    pub(crate) attempts: u32,
    pub(crate) at_ms: u64,
    pub(crate) dlq_seq: u64,
}

/// A subscription as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SubRecord {
    pub(crate) patterns: Vec<Pattern>,
    pub(crate) retry: RetryPolicy,
    pub(crate) concurrency: u32,
    pub(crate) paused: bool,
}

/// Counters that must survive a restart.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Meta {
    pub(crate) format: u32,
    /// The highest seq ever assigned; seqs are never reused, even once retention has
    /// emptied the log.
    pub(crate) last_seq: u64,
    /// Bytes of all `L` values, for retention by size.
    pub(crate) log_bytes: u64,
}

pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    postcard::to_stdvec(value).expect("records hold only types postcard can encode")
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::corrupt(what, e))
}

/// Decodes the leading fields of an encoded record (postcard encodes fields in order).
pub(crate) fn decode_prefix<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T> {
    postcard::from_bytes(bytes).map_err(|e| Error::corrupt("an event's leading fields", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_and_sort_by_seq() {
        let h = HandlerName::new("orders").unwrap();
        let (name, seq) = handler_seq(&queue_key(&h, 258)).unwrap();
        assert_eq!((name, seq), (h.clone(), 258));
        assert!(queue_key(&h, 9) < queue_key(&h, 10));
        assert!(log_key(255) < log_key(256));
        assert_eq!(log_seq(&log_key(77)).unwrap(), 77);
        // A handler whose name extends another's does not fall in its range.
        let longer = HandlerName::new("orders-eu").unwrap();
        assert!(!queue_key(&longer, 1).starts_with(&handler_prefix(b'Q', &h)));
    }

    #[test]
    fn events_round_trip_through_postcard() {
        use choreo_core::Event;
        let mut event = Event::new(
            choreo_core::Topic::new("a.b").unwrap(),
            "test://unit",
            vec![1, 2, 3],
        );
        event.extensions.insert("x".into(), "y".into());
        let back: Event = decode(&encode(&event), "event").unwrap();
        assert_eq!(back, event);
    }
}
