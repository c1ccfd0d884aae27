//! [`Changes`]: the writes of one group commit, in the order they were made, and their
//! encoding as one write-ahead-log record.
//!
//! A group is built into a `Changes` rather than straight into a `sled::Batch`, because a
//! batch cannot be read back: the same writes go to memory in front of sled
//! (`overlay.rs`) and to the write-ahead log (`wal.rs`), from which recovery replays
//! them into sled.
//!
//! A record is `length (u32 LE) | crc32 of the body (u32 LE) | body`, and the body is
//! `group (u64 LE) | count (u32 LE) | count × write`, where a write is `1 | key length
//! (u32 LE) | key | value length (u32 LE) | value` (insert) or `0 | key length | key`
//! (remove). Every write sets or removes a whole key, so replaying a record over a store
//! that already holds some of it gives the same store.
//!
//! A header of zeros ([`END_MARKER`]) ends a segment's records: no record has an empty
//! body. The log writes one after every append (`wal.rs`), so that whatever a reused
//! segment held before is never read as part of it.

use sled::IVec;

use crate::{Error, Result};

/// Bytes before a record's body: its length and its checksum.
pub(crate) const RECORD_HEADER: usize = 8;

/// Ends the records of a segment: a header whose length is zero.
pub(crate) const END_MARKER: [u8; RECORD_HEADER] = [0; RECORD_HEADER];

const INSERT: u8 = 1;
const REMOVE: u8 = 0;

/// The writes of one group, in order; a later write of a key replaces an earlier one.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    writes: Vec<(IVec, Option<IVec>)>,
}

impl Changes {
    pub(crate) fn insert(&mut self, key: impl Into<IVec>, value: impl Into<IVec>) {
        self.writes.push((key.into(), Some(value.into())));
    }

    pub(crate) fn remove(&mut self, key: impl Into<IVec>) {
        self.writes.push((key.into(), None));
    }

    /// Adds these writes to `batch`, after (and over) what it holds.
    pub(crate) fn add_to(&self, batch: &mut sled::Batch) {
        for (key, value) in &self.writes {
            match value {
                Some(value) => batch.insert(key.clone(), value.clone()),
                None => batch.remove(key.clone()),
            }
        }
    }

    /// The writes, in order.
    pub(crate) fn writes(&self) -> &[(IVec, Option<IVec>)] {
        &self.writes
    }

    /// How many writes there are.
    pub(crate) fn len(&self) -> usize {
        self.writes.len()
    }

    /// Appends the record of these writes, as group `group`, to `out`.
    pub(crate) fn encode(&self, group: u64, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&[0; RECORD_HEADER]);
        out.extend_from_slice(&group.to_le_bytes());
        out.extend_from_slice(&len32(self.writes.len()).to_le_bytes());
        for (key, value) in &self.writes {
            out.push(if value.is_some() { INSERT } else { REMOVE });
            out.extend_from_slice(&len32(key.len()).to_le_bytes());
            out.extend_from_slice(key);
            if let Some(value) = value {
                out.extend_from_slice(&len32(value.len()).to_le_bytes());
                out.extend_from_slice(value);
            }
        }
        let body = &out[start + RECORD_HEADER..];
        let length = len32(body.len()).to_le_bytes();
        let crc = crc32fast::hash(body).to_le_bytes();
        out[start..start + 4].copy_from_slice(&length);
        out[start + 4..start + RECORD_HEADER].copy_from_slice(&crc);
    }
}

/// Lengths in a record are u32; keys and values are far smaller (an event is at most
/// 16 MiB, a log chunk a few KiB), and a group is bounded by [`crate::MAX_GROUP_REQUESTS`].
fn len32(len: usize) -> u32 {
    u32::try_from(len).expect("a record's lengths fit in u32")
}

/// One record read back from the log.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) group: u64,
    pub(crate) changes: Changes,
}

/// What reading the next record found.
#[derive(Debug)]
pub(crate) enum Next {
    Record(Record, usize),
    /// The bytes end cleanly here.
    End,
    /// A record begins here but is cut short or fails its checksum: the tail of a write
    /// that a crash interrupted.
    Torn,
}

/// Decodes the record at the start of `bytes`, with how many bytes it took.
pub(crate) fn decode(bytes: &[u8]) -> Result<Next> {
    if bytes.is_empty() {
        return Ok(Next::End);
    }
    let Some(header) = bytes.get(..RECORD_HEADER) else {
        return Ok(Next::Torn);
    };
    if header == END_MARKER {
        return Ok(Next::End);
    }
    let length = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    let Some(body) = bytes.get(RECORD_HEADER..RECORD_HEADER + length) else {
        return Ok(Next::Torn);
    };
    if crc32fast::hash(body) != crc {
        return Ok(Next::Torn);
    }
    // The checksum matched, so a body that does not parse was written wrong: corrupt.
    let mut reader = Reader { bytes: body };
    let group = u64::from_le_bytes(reader.take(8)?.try_into().expect("8 bytes"));
    let count = reader.u32()?;
    let mut changes = Changes::default();
    for _ in 0..count {
        let kind = reader.take(1)?[0];
        let key_len = reader.u32()? as usize;
        let key = IVec::from(reader.take(key_len)?);
        match kind {
            INSERT => {
                let value_len = reader.u32()? as usize;
                changes.insert(key, reader.take(value_len)?);
            }
            REMOVE => changes.remove(key),
            other => {
                return Err(Error::corrupt(
                    "write-ahead log record",
                    format!("write kind {other}"),
                ));
            }
        }
    }
    if !reader.bytes.is_empty() {
        return Err(Error::corrupt(
            "write-ahead log record",
            format!("{} bytes after its last write", reader.bytes.len()),
        ));
    }
    Ok(Next::Record(
        Record { group, changes },
        RECORD_HEADER + length,
    ))
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.bytes.len() < n {
            return Err(Error::corrupt(
                "write-ahead log record",
                "a write runs past the record's end",
            ));
        }
        let (taken, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(taken)
    }

    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Changes {
        let mut changes = Changes::default();
        changes.insert(&b"La"[..], &b"first"[..]);
        changes.remove(&b"Qb"[..]);
        changes.insert(&b"La"[..], vec![7u8; 300]);
        changes
    }

    #[test]
    fn records_round_trip_in_order() {
        let mut bytes = Vec::new();
        sample().encode(41, &mut bytes);
        Changes::default().encode(42, &mut bytes);
        let Next::Record(first, used) = decode(&bytes).unwrap() else {
            panic!("a whole record")
        };
        assert_eq!(first.group, 41);
        assert_eq!(first.changes.writes, sample().writes);
        let Next::Record(second, rest) = decode(&bytes[used..]).unwrap() else {
            panic!("a whole record")
        };
        assert_eq!((second.group, second.changes.writes.len()), (42, 0));
        assert!(matches!(decode(&bytes[used + rest..]).unwrap(), Next::End));
    }

    #[test]
    fn a_cut_or_damaged_record_is_torn() {
        let mut bytes = Vec::new();
        sample().encode(1, &mut bytes);
        for cut in [1, RECORD_HEADER - 1, RECORD_HEADER + 3, bytes.len() - 1] {
            assert!(
                matches!(decode(&bytes[..cut]).unwrap(), Next::Torn),
                "cut at {cut}"
            );
        }
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        assert!(matches!(decode(&bytes).unwrap(), Next::Torn));
    }

    #[test]
    fn the_batch_applies_the_last_write_of_each_key() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = db.open_tree("t").unwrap();
        tree.insert(b"Qb", b"old").unwrap();
        let mut batch = sled::Batch::default();
        sample().add_to(&mut batch);
        tree.apply_batch(batch).unwrap();
        assert_eq!(tree.get(b"La").unwrap().unwrap(), vec![7u8; 300]);
        assert!(tree.get(b"Qb").unwrap().is_none());
    }
}
