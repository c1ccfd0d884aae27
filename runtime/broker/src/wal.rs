//! The write-ahead log: what makes a group durable, ahead of sled.
//!
//! Every group the writer applies (to memory in front of sled, `overlay.rs`) is also
//! appended, as one record (`changes.rs`), to the log's active segment in
//! `<store>/wal/`. A group is durable once its record is written (buffered mode: in the
//! OS, so it survives the process) or synced (strict mode: fdatasync). sled receives
//! the groups only at a checkpoint: once [`crate::Config::checkpoint_bytes`] have been
//! applied, the segment is sealed after the last of them, they are written into sled,
//! sled is flushed and synced, and the sealed segments are retired.
//!
//! Decision: a log of choreo's own in front of sled, rather than sled's `flush()` per
//! group. sled 0.34's `flush()` holds its concurrency guard while it waits for
//! `sync_file_range`, so the next batch could not be applied during it, and it is not
//! an fsync, so strict mode paid a flush and an fdatasync for every round. Appending one
//! sequential record costs a `write`, and strict mode one fdatasync of a small file.
//!
//! How recovery stays exact: every group's writes include the `applied` key
//! ([`crate::records::APPLIED_KEY`]) with the group's number, so sled always knows the
//! last group it holds. A checkpoint writes that key last, and sled recovers a prefix of
//! the batches it was given, so sled holds every group up to the one it names, and only
//! groups the log holds: a checkpoint covers only groups of sealed, synced segments.
//! [`replay`] skips the records sled already holds and applies the rest in order; each
//! write sets or removes a whole key, so the result is the store as of the log's last
//! whole record. A record cut short by a crash ends the log: it was never acknowledged.
//!
//! Decision: checkpointed segments are kept as spares and written over, not deleted
//! and created anew ([`retire`], [`Wal::create`]). An fdatasync after an append that
//! grows a file must also commit the file system's journal (the file's size changed);
//! one that overwrites blocks the file already has only flushes the data. On this VM's
//! ext4 that took a small append's sync from ≈ 150 to ≈ 100 µs and its CPU time by a
//! fifth. What a spare held before is never read as part of its new segment: every
//! append ends with an end marker (`changes.rs`), which the next append overwrites.
//! With direct writes, a new segment (no spare is left) is written with zeros ahead of
//! its appends, a step at a time ([`ZERO_AHEAD_STEP`]), for the same reason.
//!
//! Decision: in strict mode a segment is opened with `O_DIRECT | O_DSYNC`, so that one
//! `pwrite` puts an append on the disk, instead of a `write` into the page cache and an
//! fdatasync that then writes the dirty pages back and flushes the drive's cache. Each
//! append rewrites the segment's last, partly filled block with the new records after
//! what it already held ([`Writes::Direct`]), as direct I/O writes whole blocks. On this
//! VM's ext4 (a drive with a write-back cache and no FUA), an overwriting 2 KB append
//! took ≈ 80–95 µs and 32 µs of CPU this way against ≈ 100–110 µs and 42 µs with
//! fdatasync; a 64 KB one ≈ 100–110 µs and 34 µs against ≈ 140–150 µs and 55–68 µs.
//! A file system that refuses direct I/O (tmpfs before Linux 6.6, some FUSE ones) gets
//! the page cache and fdatasync.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
#[cfg(target_os = "linux")]
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::changes::{self, END_MARKER, Next};
use crate::overlay::Kv;
use crate::records::APPLIED_KEY;
use crate::store::get;
use crate::{Error, Result};

/// The directory of the log's segments, inside the store directory.
pub(crate) const WAL_DIR: &str = "wal";

/// Checkpointed segments kept for reuse; more are deleted.
const MAX_SPARE_SEGMENTS: usize = 2;

/// The extension of a spare segment (a live one's is `wal`).
const SPARE_EXTENSION: &str = "spare";

/// What a direct write is aligned to, in memory and in the file, and a multiple of its
/// length: a file system block, and a multiple of any drive's logical block.
const BLOCK: usize = 4096;

/// The staging buffer's size kept between direct appends; a larger one (a round of big
/// events) is given back.
const STAGING_KEPT_BYTES: usize = 4 * 1024 * 1024;

/// A direct append that would write past the end of the segment's file writes zeros
/// after its end marker up to the next multiple of this, so that the appends after it
/// overwrite blocks the file already has.
///
/// Decision: a write that grows a file opened with `O_DSYNC` must also commit the file
/// system's journal (the file's size changed) before it returns; one that overwrites
/// does not. Zeroing ahead in steps makes one append in a step pay that commit, at the
/// price of writing the step's bytes twice. (Reused segments already have their
/// blocks; this covers new ones: a new store's first segments, and any made while
/// checkpoints lag behind.) Not `fallocate`: the extents it reserves are marked
/// unwritten, and the first write to each must commit the journal all the same.
const ZERO_AHEAD_STEP: u64 = 1 << 20;

/// How the log's appends reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Writes {
    /// Through the page cache: an append is in the OS when it returns, and
    /// [`Wal::sync`] fdatasyncs. Buffered mode, and strict mode on a file system that
    /// refuses direct I/O.
    Cached,
    /// `O_DIRECT | O_DSYNC`: an append is on the disk when it returns, and
    /// [`Wal::sync`] has nothing left to do. Strict mode.
    Direct,
}

/// The active segment, appended to by the durability stage (`durable.rs`).
#[derive(Debug)]
pub(crate) struct Wal {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Where the next append goes: the end of the segment's records.
    end: u64,
    writes: Writes,
    /// Direct writes: the bytes of the segment's last block before `end`, which the next
    /// append writes again in front of its records.
    tail: Vec<u8>,
    /// Direct writes: where an append is assembled, with room to start it on a block.
    staging: Vec<u8>,
    /// Direct writes: the segment file's length, which appends up to it overwrite.
    file_len: u64,
}

impl Wal {
    /// Starts a new segment whose first record will be group `first_group`: a spare
    /// renamed, when there is one, else a new file. Its appends are `writes`, or cached
    /// where the file system refuses direct I/O.
    pub(crate) fn create(dir: &Path, first_group: u64, writes: Writes) -> Result<Wal> {
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::storage("creating the write-ahead log directory", e))?;
        let path = dir.join(segment_name(first_group));
        let created = match spares(dir)?.pop() {
            Some(spare) => {
                std::fs::rename(&spare, &path)
                    .map_err(|e| Error::storage("reusing a spare write-ahead log segment", e))?;
                false
            }
            None => true,
        };
        let (file, writes) = open_segment(&path, created, writes)
            .map_err(|e| Error::storage("creating a write-ahead log segment", e))?;
        let file_len = file
            .metadata()
            .map_err(|e| Error::storage("reading a write-ahead log segment's length", e))?
            .len();
        // The segment's directory entry must survive a crash before anything in it counts.
        sync_dir(dir).map_err(|e| Error::storage("syncing the write-ahead log directory", e))?;
        let mut wal = Wal {
            dir: dir.to_owned(),
            file,
            path,
            end: 0,
            writes,
            tail: Vec::new(),
            staging: Vec::new(),
            file_len,
        };
        // A reused segment must read as empty, even if nothing is appended before a crash.
        wal.append(&mut Vec::new())?;
        wal.sync()?;
        Ok(wal)
    }

    /// How this segment's appends reach the disk.
    pub(crate) fn writes(&self) -> Writes {
        self.writes
    }

    /// Writes `records`, followed by an end marker that the next append overwrites: to
    /// the OS (enough for buffered mode: a process crash keeps them), or with direct
    /// writes, to the disk. `records` is given back as it came.
    pub(crate) fn append(&mut self, records: &mut Vec<u8>) -> Result<()> {
        let result = match self.writes {
            Writes::Cached => {
                let written = records.len();
                records.extend_from_slice(&END_MARKER);
                let result = self.file.write_all_at(records, self.end);
                records.truncate(written);
                result
            }
            Writes::Direct => self.append_direct(records),
        };
        result.map_err(|e| Error::storage("writing to the write-ahead log", e))?;
        self.end += records.len() as u64;
        Ok(())
    }

    /// One direct write, from the start of the segment's last block: what that block
    /// held, `records`, the end marker, and zeros to the end of the last block written,
    /// or, where that is past the file's end, to the next [`ZERO_AHEAD_STEP`].
    fn append_direct(&mut self, records: &[u8]) -> std::io::Result<()> {
        let kept = self.tail.len();
        let from = self.end - kept as u64;
        let used = kept + records.len();
        let marked = used + END_MARKER.len();
        let mut len = marked.next_multiple_of(BLOCK);
        if from + len as u64 > self.file_len {
            let zeroed_to = (from + len as u64).next_multiple_of(ZERO_AHEAD_STEP);
            len = usize::try_from(zeroed_to - from).expect("an append fits in memory");
        }
        let block = aligned(&mut self.staging, len);
        block[..kept].copy_from_slice(&self.tail);
        block[kept..used].copy_from_slice(records);
        block[used..marked].copy_from_slice(&END_MARKER);
        block[marked..].fill(0);
        self.file.write_all_at(block, from)?;
        self.file_len = self.file_len.max(from + len as u64);
        let last_block = used - used % BLOCK;
        self.tail.clear();
        self.tail.extend_from_slice(&block[last_block..used]);
        if self.staging.len() > STAGING_KEPT_BYTES {
            self.staging = Vec::new();
        }
        Ok(())
    }

    /// Everything appended so far survives a power loss: fdatasync, or nothing to do
    /// after direct writes.
    pub(crate) fn sync(&mut self) -> Result<()> {
        match self.writes {
            Writes::Cached => self
                .file
                .sync_data()
                .map_err(|e| Error::storage("fdatasync of the write-ahead log", e)),
            Writes::Direct => Ok(()),
        }
    }

    /// Syncs the active segment and starts a new one at `next_group`. Returns the sealed
    /// segment, to be retired once a checkpoint covers it.
    pub(crate) fn rotate(&mut self, next_group: u64) -> Result<PathBuf> {
        self.sync()?;
        let next = Wal::create(&self.dir, next_group, self.writes)?;
        let sealed = std::mem::replace(self, next);
        Ok(sealed.path)
    }

    /// The active segment's path (retired by the checkpoint at close).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// Opens a segment for appending (`create`: a new file), with direct writes when
/// `writes` asks for them and the file system takes them, else cached.
fn open_segment(path: &Path, create: bool, writes: Writes) -> std::io::Result<(File, Writes)> {
    let open = |direct: bool| {
        let mut options = OpenOptions::new();
        options.write(true);
        if create {
            options.create(true).truncate(true);
        }
        #[cfg(target_os = "linux")]
        if direct {
            options.custom_flags(libc::O_DIRECT | libc::O_DSYNC);
        }
        #[cfg(not(target_os = "linux"))]
        let _ = direct;
        options.open(path)
    };
    if writes == Writes::Direct && cfg!(target_os = "linux") {
        // A file system without direct I/O refuses it when the file is opened (older tmpfs) or
        // written (some FUSE ones), with EINVAL either way.
        let refused = |e: &std::io::Error| e.raw_os_error() == Some(libc::EINVAL);
        match open(true) {
            Ok(file) => match file.write_all_at(aligned(&mut Vec::new(), BLOCK), 0) {
                Ok(()) => return Ok((file, Writes::Direct)),
                Err(e) if refused(&e) => {}
                Err(e) => return Err(e),
            },
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
        tracing::debug!(segment = %path.display(), "broker.wal: the file system refuses direct I/O; appends go through the page cache");
    }
    Ok((open(false)?, Writes::Cached))
}

/// `len` bytes of `buffer`, starting at a [`BLOCK`]-aligned address, as direct I/O
/// needs. Their contents are whatever the buffer held.
fn aligned(buffer: &mut Vec<u8>, len: usize) -> &mut [u8] {
    if buffer.len() < len + BLOCK {
        buffer.resize(len + BLOCK, 0);
    }
    let address = buffer.as_ptr().addr();
    let start = address.next_multiple_of(BLOCK) - address;
    &mut buffer[start..start + len]
}

/// Keeps a checkpointed `segment` as a spare for [`Wal::create`] to reuse, or deletes
/// it when [`MAX_SPARE_SEGMENTS`] are kept already. Everything it holds is in sled.
pub(crate) fn retire(segment: &Path) -> Result<()> {
    let kept = segment
        .parent()
        .map_or(Ok(usize::MAX), |dir| spares(dir).map(|s| s.len()))?;
    let result = if kept < MAX_SPARE_SEGMENTS {
        std::fs::rename(segment, segment.with_extension(SPARE_EXTENSION))
    } else {
        std::fs::remove_file(segment)
    };
    result.map_err(|e| Error::storage("retiring a checkpointed write-ahead log segment", e))
}

/// The spare segments in `dir`.
fn spares(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::storage("listing the write-ahead log's spare segments", e))?;
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| Error::storage("listing the write-ahead log's spare segments", e))?
            .path();
        if path.extension().is_some_and(|ext| ext == SPARE_EXTENSION) {
            found.push(path);
        }
    }
    Ok(found)
}

/// Segments are named by their first group, zero-padded so names sort like numbers.
fn segment_name(first_group: u64) -> String {
    format!("{first_group:020}.wal")
}

/// The segments in `dir`, oldest first.
pub(crate) fn segments(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::storage("listing the write-ahead log", e)),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::storage("listing the write-ahead log", e))?;
        let name = entry.file_name();
        let first_group = name
            .to_str()
            .and_then(|name| name.strip_suffix(".wal"))
            .and_then(|number| number.parse::<u64>().ok());
        if let Some(first_group) = first_group {
            found.push((first_group, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, path)| path).collect())
}

/// The last group sled holds.
pub(crate) fn applied_group(tree: &sled::Tree) -> Result<u64> {
    match get(
        &Kv::new(tree.clone()),
        APPLIED_KEY,
        "reading the last applied group",
    )? {
        None => Ok(0),
        Some(bytes) => bytes
            .as_slice()
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| Error::corrupt("applied group", format!("{} bytes", bytes.len()))),
    }
}

/// What [`replay`] did.
#[derive(Debug)]
pub(crate) struct Replayed {
    /// The last group the store now holds.
    pub(crate) applied: u64,
    /// Records applied to sled.
    pub(crate) groups: usize,
    /// The segments read; retire them once sled is synced.
    pub(crate) segments: Vec<PathBuf>,
}

/// Writes [`replay`] gathers into one sled batch.
///
/// Decision: consecutive records are applied together, not one batch per group. Each
/// sled batch costs a fixed overhead (it rolls sled's IO buffer twice): a full replay of
/// 50,000 single-event groups (12 MB of log) took 3.6 s one group at a time and takes
/// 0.65 s in batches (release build, this 2-core VM). A batch of many records leaves the
/// same store, and sled applies it whole or not at all, with the applied key naming its
/// last group, so a crash during a replay is replayed again from there.
const REPLAY_BATCH_WRITES: usize = 16 * 1024;

/// Applies to `tree`, in order, every whole record in `dir` after the last group sled
/// holds.
pub(crate) fn replay(tree: &sled::Tree, dir: &Path) -> Result<Replayed> {
    let mut applied = applied_group(tree)?;
    let segments = segments(dir)?;
    let mut groups = 0;
    let mut batch = sled::Batch::default();
    let mut batched = 0;
    let apply = |batch: &mut sled::Batch, batched: &mut usize| {
        *batched = 0;
        tree.apply_batch(std::mem::take(batch))
            .map_err(|e| Error::storage("replaying the write-ahead log", e))
    };
    let mut torn: Option<&Path> = None;
    for path in &segments {
        let bytes =
            std::fs::read(path).map_err(|e| Error::storage("reading the write-ahead log", e))?;
        if let Some(torn) = torn {
            if !bytes.is_empty() {
                return Err(Error::corrupt(
                    "write-ahead log",
                    format!(
                        "{} ends in a damaged record, but {} follows it",
                        torn.display(),
                        path.display()
                    ),
                ));
            }
            continue;
        }
        let mut at = 0;
        loop {
            match changes::decode(&bytes[at..])? {
                Next::Record(record, used) => {
                    at += used;
                    if record.group <= applied {
                        continue;
                    }
                    if record.group != applied + 1 {
                        return Err(Error::corrupt(
                            "write-ahead log",
                            format!(
                                "group {} follows group {applied} in {}: groups are missing",
                                record.group,
                                path.display()
                            ),
                        ));
                    }
                    record.changes.add_to(&mut batch);
                    batched += record.changes.len();
                    if batched >= REPLAY_BATCH_WRITES {
                        apply(&mut batch, &mut batched)?;
                    }
                    applied = record.group;
                    groups += 1;
                }
                Next::End => break,
                Next::Torn => {
                    tracing::warn!(
                        segment = %path.display(),
                        offset = at,
                        "broker.recover: the write-ahead log ends in a record cut short by a crash; it was never acknowledged"
                    );
                    torn = Some(path);
                    break;
                }
            }
        }
    }
    if batched > 0 {
        apply(&mut batch, &mut batched)?;
    }
    Ok(Replayed {
        applied,
        groups,
        segments,
    })
}

pub(crate) fn sync_dir(path: &Path) -> std::io::Result<()> {
    File::open(path)?.sync_all()
}

#[cfg(test)]
mod tests;
