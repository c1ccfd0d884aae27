//! The id index's run files: `ids/<number>.run`, one frozen table each, sorted by key.
//!
//! Layout: a header (magic, first seq, last seq, entry count, crc32 of the entries, all
//! big-endian), then the entries, 16 bytes each: key hash, seq. A run is written to a
//! temporary name, fdatasynced and renamed, so a run file that exists is whole; opening
//! still checks its length and checksum, and deletes a run that fails either.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::IndexEntry;
use crate::wal::sync_dir;
use crate::{Error, Result};

const MAGIC: &[u8; 8] = b"choreoI1";
/// Magic, first seq, last seq, entry count, crc32 of the entries.
pub(super) const HEADER_BYTES: usize = 8 + 8 + 8 + 8 + 4;
const ENTRY_BYTES: usize = 16;

/// A run file.
#[derive(Debug)]
pub(super) struct Run {
    pub(super) number: u64,
    pub(super) first: u64,
    pub(super) last: u64,
    pub(super) count: u64,
    /// The key of every [`BLOCK_ENTRIES`]th entry, so a lookup reads one block.
    fences: Vec<u64>,
    file: File,
    pub(super) path: PathBuf,
}

/// Entries per block of a run: a lookup finds the block in memory and reads it whole
/// (4 KiB) instead of one entry per step of a binary search on disk.
const BLOCK_ENTRIES: usize = 256;

/// The fences of a run's sorted keys.
fn fences(keys: impl Iterator<Item = u64>) -> Vec<u64> {
    keys.step_by(BLOCK_ENTRIES).collect()
}

pub(super) fn run_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:020}.run"))
}

pub(super) fn write_run(dir: &Path, number: u64, entries: &[IndexEntry]) -> std::io::Result<Run> {
    let first = entries.iter().map(|e| e.1).min().unwrap_or(0);
    let last = entries.iter().map(|e| e.1).max().unwrap_or(0);
    let mut body = Vec::with_capacity(entries.len() * ENTRY_BYTES);
    for (key, seq) in entries {
        body.extend_from_slice(&key.to_be_bytes());
        body.extend_from_slice(&seq.to_be_bytes());
    }
    let mut bytes = Vec::with_capacity(HEADER_BYTES + body.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&first.to_be_bytes());
    bytes.extend_from_slice(&last.to_be_bytes());
    bytes.extend_from_slice(&(entries.len() as u64).to_be_bytes());
    bytes.extend_from_slice(&crc32fast::hash(&body).to_be_bytes());
    bytes.extend_from_slice(&body);
    let path = run_path(dir, number);
    let temporary = path.with_extension("tmp");
    {
        let mut file = File::create(&temporary)?;
        file.write_all(&bytes)?;
        file.sync_data()?;
    }
    std::fs::rename(&temporary, &path)?;
    sync_dir(dir)?;
    Ok(Run {
        number,
        first,
        last,
        count: entries.len() as u64,
        fences: fences(entries.iter().map(|(key, _)| *key)),
        file: File::open(&path)?,
        path,
    })
}

impl Run {
    /// Reads `count` entries from entry `from` on.
    fn read_entries(&self, from: usize, count: usize) -> Result<Vec<u8>> {
        let mut bytes = vec![0u8; count * ENTRY_BYTES];
        self.file
            .read_exact_at(&mut bytes, (HEADER_BYTES + from * ENTRY_BYTES) as u64)
            .map_err(|e| Error::storage("reading the id index", e))?;
        Ok(bytes)
    }

    /// Adds the seqs of the entries with `key` to `seqs`.
    pub(super) fn find(&self, key: u64, seqs: &mut Vec<u64>) -> Result<()> {
        // The first block that can hold `key`: the one before the first fence at or
        // past it (the entries before that fence are all below `key`).
        let mut block = self
            .fences
            .partition_point(|fence| *fence < key)
            .saturating_sub(1);
        let count = self.count as usize;
        while block * BLOCK_ENTRIES < count {
            let from = block * BLOCK_ENTRIES;
            let bytes = self.read_entries(from, BLOCK_ENTRIES.min(count - from))?;
            for entry in bytes.chunks_exact(ENTRY_BYTES) {
                let (k, seq) = entry.split_at(8);
                let k = u64::from_be_bytes(k.try_into().expect("8 bytes"));
                if k > key {
                    return Ok(());
                }
                if k == key {
                    seqs.push(u64::from_be_bytes(seq.try_into().expect("8 bytes")));
                }
            }
            // Every entry of the block was at or below `key`: the next may hold more.
            block += 1;
        }
        Ok(())
    }
}

/// The runs in `dir` that are whole and end at or before `last_seq`; every other file
/// there is deleted.
pub(super) fn load_runs(dir: &Path, last_seq: u64) -> Result<Vec<Run>> {
    let listing = std::fs::read_dir(dir).map_err(|e| Error::storage("listing the id index", e))?;
    let mut runs = Vec::new();
    for item in listing {
        let item = item.map_err(|e| Error::storage("listing the id index", e))?;
        let path = item.path();
        let number = path
            .extension()
            .filter(|ext| *ext == "run")
            .and_then(|_| path.file_stem()?.to_str()?.parse::<u64>().ok());
        let verdict = match number {
            Some(number) => check_run(&path, number, last_seq),
            None => Err("not a run file".to_owned()),
        };
        match verdict {
            Ok(run) => runs.push(run),
            Err(why) => {
                tracing::warn!(path = %path.display(), why, "broker.index deletes a run; its events are indexed again from the log");
                std::fs::remove_file(&path)
                    .map_err(|e| Error::storage("deleting a stale id index run", e))?;
            }
        }
    }
    Ok(runs)
}

pub(super) fn check_run(
    path: &Path,
    number: u64,
    last_seq: u64,
) -> std::result::Result<Run, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("unreadable: {e}"))?;
    let field =
        |at: usize| -> u64 { u64::from_be_bytes(bytes[at..at + 8].try_into().expect("8 bytes")) };
    if bytes.len() < HEADER_BYTES || &bytes[..8] != MAGIC {
        return Err("no run header".into());
    }
    let (first, last, count) = (field(8), field(16), field(24));
    let crc = u32::from_be_bytes(bytes[32..36].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_BYTES..];
    if Some(body.len() as u64) != count.checked_mul(ENTRY_BYTES as u64) {
        return Err(format!(
            "{} bytes of entries for {count} entries",
            body.len()
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err("checksum mismatch".into());
    }
    if last > last_seq {
        return Err(format!(
            "indexes seqs up to {last}, past the log's last seq {last_seq}"
        ));
    }
    let file = File::open(path).map_err(|e| format!("unreadable: {e}"))?;
    Ok(Run {
        number,
        first,
        last,
        count,
        fences: fences(
            body.chunks_exact(ENTRY_BYTES)
                .map(|entry| u64::from_be_bytes(entry[..8].try_into().expect("8 bytes"))),
        ),
        file,
        path: path.to_owned(),
    })
}
