//! Opening the sled store, replaying the write-ahead log into it, rebuilding the
//! in-memory view from it, and making it durable at checkpoints.
//!
//! sled caveats handled here, each a decision:
//! - sled receives groups and is made durable only at checkpoints (`durable.rs`);
//!   between them, groups live in memory in front of it (`overlay.rs`), the write-ahead
//!   log (`wal.rs`) is what makes a group durable, and opening replays it into sled.
//! - `flush()` ends in `sync_file_range`, which starts and waits for writeback of the
//!   data pages but is not an fsync: it does not flush the drive's cache and does not
//!   persist file size changes. A checkpoint therefore fdatasyncs sled's data file after
//!   the flush ([`Syncer`]), plus any blob file sled wrote (large pages spill into
//!   `blobs/`, which sled writes without any sync) and the directories holding new files.
//! - sled's own periodic flusher thread is disabled (`flush_every_ms(None)`): it would
//!   only add I/O at random times, and hold sled's concurrency guard while it waits.
//! - The page cache is bounded by [`crate::Config::cache_bytes`] (sled's default is 1 GiB).
//! - `Mode::HighThroughput`: the workload is append-heavy and space is reclaimed by
//!   retention; sled's small-space mode would rewrite segments more eagerly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use choreo_core::HandlerName;

use crate::clock::millis;
use crate::durable::checkpoint;
use crate::overlay::Kv;
use crate::queued::Bits;
use crate::records::{
    self, DeadLetterRecord, EntryRecord, FORMAT, META_KEY, Meta, StateRecord, SubRecord, decode,
};
use crate::registry::Registry;
use crate::wal::{self, WAL_DIR, Wal, Writes, sync_dir};
use crate::{Config, Durability, Error, Result};

/// The name of the one tree every record lives in.
const TREE: &[u8] = b"choreo";

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) db: sled::Db,
    /// sled, with what is not yet checkpointed in front of it (`overlay.rs`).
    pub(crate) kv: Kv,
    /// Held for as long as the store is open; dropped after sled.
    pub(crate) _lock: StoreLock,
}

/// What recovery rebuilt.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) registry: Registry,
    pub(crate) meta: Meta,
}

/// How long opening waits for the store's locks before giving up.
///
/// Decision: a short wait, not an immediate failure. The locks are `flock`s on files in
/// the store; any process this one forks holds a copy of them between `fork` and `exec`
/// (the descriptor closes only on exec), and a choreo restarted by a supervisor can
/// overlap its predecessor's last moments. Both clear within milliseconds; a second
/// choreo really running on the same directory still gets a clear error.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// The file whose lock the broker holds while the store is open.
const LOCK_FILE: &str = "choreo.lock";

/// The broker's own lock on the store directory.
///
/// sled locks its data file too, but only partway through opening: it reads its
/// configuration and may be interrupted while it writes a snapshot before that lock
/// protects anything. This lock is taken first, so that what a crash left behind can be
/// cleared before sled reads it ([`clear_interrupted_sled_writes`]) with no other
/// process opening or running the store meanwhile.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl StoreLock {
    /// Takes the lock; `None` while another process holds it.
    fn try_take(dir: &Path) -> Result<Option<StoreLock>> {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(LOCK_FILE))
            .map_err(|e| Error::storage("opening the store's lock file", e))?;
        match file.try_lock() {
            Ok(()) => Ok(Some(StoreLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::storage("locking the store", e)),
        }
    }
}

/// Runs `attempt` until it stops finding the store locked, for at most [`LOCK_WAIT`].
fn waiting_for_lock<T>(mut attempt: impl FnMut() -> Result<Option<T>>) -> Result<T> {
    let started = Instant::now();
    loop {
        if let Some(done) = attempt()? {
            return Ok(done);
        }
        if started.elapsed() >= LOCK_WAIT {
            return Err(Error::storage(
                "opening the store: another process holds it (is another choreo running on this data dir?)",
                std::io::Error::from(std::io::ErrorKind::WouldBlock),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Removes what sled leaves behind when a process dies while opening the store, which
/// sled itself would read back as corruption and refuse to open.
///
/// - `snap.*.generating`: a snapshot being written. sled writes one while it opens a
///   store, and renames it to `snap.*` once complete and synced, then removes the older
///   ones; an interrupted one is left under its temporary name beside the previous
///   snapshot, which is still whole. sled 0.34 takes any `snap.*` file for a snapshot
///   and reads the newest, so it reads the unfinished one, finds its checksum wrong, and
///   reports `Corruption`. Removing it leaves the previous snapshot; sled replays its log
///   from there, as it would have had the snapshot never started.
/// - sled's `conf` without the data file `db`: a store whose creation was interrupted.
///   sled writes `conf` in two steps before it creates `db`, and a `conf` cut between
///   them does not parse. With no data file there is no data; sled writes `conf` again.
///
/// Runs only under [`StoreLock`], so nothing is removed while another process opens
/// the store.
fn clear_interrupted_sled_writes(dir: &Path) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::storage("listing the store", e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::storage("listing the store", e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(
                file = %name,
                "broker.recover: removing a snapshot that sled did not finish writing"
            );
            std::fs::remove_file(entry.path())
                .map_err(|e| Error::storage("removing an unfinished sled snapshot", e))?;
        }
    }
    let conf = dir.join("conf");
    // Only a file sled wrote: `conf` is a common name for a file of one's own.
    let written_by_sled =
        |conf: &Path| std::fs::read(conf).is_ok_and(|bytes| bytes.starts_with(b"segment_size: "));
    if !dir.join("db").exists() && written_by_sled(&conf) {
        tracing::warn!(
            "broker.recover: removing the configuration of a store whose creation was interrupted"
        );
        std::fs::remove_file(conf)
            .map_err(|e| Error::storage("removing an unfinished sled configuration", e))?;
    }
    Ok(())
}

/// Takes the store's lock, clears what a crash left, and opens sled.
fn open_locked(config: &Config) -> Result<(StoreLock, sled::Db)> {
    let lock = waiting_for_lock(|| StoreLock::try_take(&config.path))?;
    clear_interrupted_sled_writes(&config.path)?;
    // sled's own lock can still be held for a moment after this lock is free: by a
    // forked child between `fork` and `exec`, or by a predecessor whose last readers
    // still hold sled's files.
    let db = waiting_for_lock(|| {
        let opened = sled::Config::new()
            .path(&config.path)
            .cache_capacity(config.cache_bytes)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput)
            .open();
        // sled reports a held lock as an `Other` I/O error with this message.
        match opened {
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                Ok(None)
            }
            other => other
                .map(Some)
                .map_err(|e| Error::storage("opening the store", e)),
        }
    })?;
    Ok((lock, db))
}

/// An opened store, ready for the writer.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) store: Store,
    pub(crate) syncer: Syncer,
    pub(crate) recovered: Recovered,
    /// A new, empty segment for the groups after [`Opened::applied_group`].
    pub(crate) wal: Wal,
    /// The last group the store holds.
    pub(crate) applied_group: u64,
}

/// Opens the store; `now_ms` is the broker's clock at open, which recovered retry times
/// are checked against.
pub(crate) fn open(config: &Config, now_ms: u64) -> Result<Opened> {
    std::fs::create_dir_all(&config.path)
        .map_err(|e| Error::storage("creating the store directory", e))?;
    let (lock, db) = open_locked(config)?;
    let tree = db
        .open_tree(TREE)
        .map_err(|e| Error::storage("opening the store's tree", e))?;
    // A store in another format is refused before anything is replayed into it or
    // created beside it. (A store whose counters are still only in the log is checked
    // again once it is replayed, by `recover`.)
    read_meta(&Kv::new(tree.clone()))?;
    let mut syncer = Syncer::new(&config.path)?;
    let wal_dir = config.path.join(WAL_DIR);
    let replayed = wal::replay(&tree, &wal_dir)?;
    if replayed.groups > 0 {
        tracing::info!(
            groups = replayed.groups,
            applied_group = replayed.applied,
            "broker.recover: replayed the write-ahead log"
        );
    }
    if !replayed.segments.is_empty() {
        checkpoint(&db, &mut syncer, &replayed.segments)?;
    }
    let writes = match config.durability {
        Durability::Strict => Writes::Direct,
        Durability::Buffered => Writes::Cached,
    };
    let wal = Wal::create(&wal_dir, replayed.applied + 1, writes)?;
    tracing::debug!(writes = ?wal.writes(), "broker.wal: appends");
    let store = Store {
        db,
        kv: Kv::new(tree),
        _lock: lock,
    };
    let recovered = recover(&store, now_ms)?;
    Ok(Opened {
        store,
        syncer,
        recovered,
        wal,
        applied_group: replayed.applied,
    })
}

/// Rebuilds subscriptions and queues. Queue entries of a handler that no longer has a
/// subscription are dropped.
fn recover(store: &Store, now_ms: u64) -> Result<Recovered> {
    let tree = &store.kv;
    let meta = read_meta(tree)?;
    let mut registry = Registry::default();
    for item in tree.scan_prefix(b"H") {
        let (key, value) = item.map_err(|e| Error::storage("reading subscriptions", e))?;
        let name = std::str::from_utf8(&key[1..])
            .ok()
            .and_then(|name| choreo_core::HandlerName::new(name).ok())
            .ok_or_else(|| Error::corrupt("subscription key", format!("{key:?}")))?;
        registry.upsert(&name, decode::<SubRecord>(&value, "subscription")?);
    }
    let mut orphans = sled::Batch::default();
    let queues = recover_queues(tree, &registry, &mut orphans)?;
    for (handler, entries) in queues {
        let handler = registry
            .handlers
            .get_mut(&handler)
            .expect("only known handlers' entries are recovered");
        // No backoff is longer than the handler's longest: a retry time past that was
        // set by a wall clock ahead of this one (stepped back since), or under a longer
        // policy than the handler has now.
        let latest_retry_ms = now_ms.saturating_add(millis(handler.sub.retry.max_backoff));
        let queue = &mut handler.queue;
        for (seq, mut record) in entries {
            record.not_before_ms = record.not_before_ms.min(latest_retry_ms);
            // Leases belong to the process that took them, and one process at a time
            // holds the store: a lease found here was taken by one that has stopped, and
            // its token cannot be committed (lease ids start afresh). Its delivery is
            // leasable at once, rather than after the lease would have run out (the
            // handler's deadline and a margin, plus any step back of the wall clock
            // between the two runs); the attempt it started still counts.
            record.lease = None;
            queue.insert(seq, record, None);
        }
    }
    for item in tree.scan_prefix(b"X") {
        let (key, value) = item.map_err(|e| Error::storage("reading dead-letters", e))?;
        let (handler, _) = records::handler_seq(&key)?;
        let record = decode::<DeadLetterRecord>(&value, "dead-letter")?;
        if let Some(h) = registry.handlers.get_mut(&handler) {
            h.dead_letters += 1;
            h.last_error = Some(crate::types::describe(
                record.cause,
                record.attempts,
                &record.last_error,
            ));
        }
    }
    tree.sled
        .apply_batch(orphans)
        .map_err(|e| Error::storage("dropping orphaned queue entries", e))?;
    Ok(Recovered { registry, meta })
}

/// The store's counters; a store in another format is refused.
fn read_meta(tree: &Kv) -> Result<Meta> {
    let meta = match get(tree, META_KEY, "reading the store's counters")? {
        Some(bytes) => decode::<Meta>(&bytes, "meta")?,
        None => Meta {
            format: FORMAT,
            last_seq: 0,
            log_bytes: 0,
        },
    };
    if meta.format != FORMAT {
        return Err(Error::Format {
            found: meta.format,
            expected: FORMAT,
        });
    }
    Ok(meta)
}

/// Every known handler's queue entries as stored: seqs from the `Q` chunks, delivery
/// state from the `D` records, ordering keys from the log (read in slices of
/// [`RECOVERY_SLICE`] events, so a long backlog is not held in memory whole). Records of
/// handlers that have no subscription, and state records of entries no queue holds, go
/// into `orphans` for removal.
fn recover_queues(
    tree: &Kv,
    registry: &Registry,
    orphans: &mut sled::Batch,
) -> Result<HashMap<HandlerName, Vec<(u64, EntryRecord)>>> {
    let mut queued: BTreeMap<u64, Vec<HandlerName>> = BTreeMap::new();
    for item in tree.scan_prefix(b"Q") {
        let (key, value) = item.map_err(|e| Error::storage("reading queues", e))?;
        let (handler, base) = records::handler_seq(&key)?;
        if !registry.handlers.contains_key(&handler) {
            orphans.remove(key);
            continue;
        }
        for offset in Bits::decode(&value)?.offsets() {
            queued
                .entry(base + offset)
                .or_default()
                .push(handler.clone());
        }
    }
    let mut states: HashMap<(HandlerName, u64), StateRecord> = HashMap::new();
    for item in tree.scan_prefix(b"D") {
        let (key, value) = item.map_err(|e| Error::storage("reading delivery states", e))?;
        let (handler, seq) = records::handler_seq(&key)?;
        let held = queued.get(&seq).is_some_and(|hs| hs.contains(&handler));
        if !held {
            orphans.remove(key);
            continue;
        }
        states.insert((handler, seq), decode(&value, "delivery state")?);
    }
    let mut queues: HashMap<HandlerName, Vec<(u64, EntryRecord)>> = HashMap::new();
    let seqs: Vec<u64> = queued.keys().copied().collect();
    for slice in seqs.chunks(RECOVERY_SLICE) {
        for event in crate::log::read_held_many(tree, slice)? {
            let key = event.event.ordering_key();
            for handler in queued.remove(&event.seq).unwrap_or_default() {
                let record = match states.remove(&(handler.clone(), event.seq)) {
                    Some(state) => state.entry(key.to_owned()),
                    None => EntryRecord::new(key),
                };
                queues.entry(handler).or_default().push((event.seq, record));
            }
        }
    }
    Ok(queues)
}

/// Queued events read from the log at a time while recovering.
const RECOVERY_SLICE: usize = 4096;

pub(crate) fn get(tree: &Kv, key: &[u8], context: &'static str) -> Result<Option<Vec<u8>>> {
    tree.get(key)
        .map(|v| v.map(|v| v.to_vec()))
        .map_err(|e| Error::storage(context, e))
}

/// Makes what sled has written durable: fdatasync of its data file, of blob files not
/// yet synced, and of the directories that gained files.
#[derive(Debug)]
pub(crate) struct Syncer {
    data: File,
    blobs: PathBuf,
    synced_blobs: BTreeSet<OsString>,
}

impl Syncer {
    fn new(path: &Path) -> Result<Self> {
        let data = File::open(path.join("db"))
            .map_err(|e| Error::storage("opening sled's data file for syncing", e))?;
        // The store directory gained `db`, `conf` and `blobs/` when it was made, and sled
        // renamed a new snapshot into place while opening it (sled does not sync the
        // directory); syncing it here, before any checkpoint, keeps sled's later writes
        // from reaching the disk ahead of that rename.
        sync_dir(path).map_err(|e| Error::storage("syncing the store directory", e))?;
        let mut syncer = Syncer {
            data,
            blobs: path.join("blobs"),
            synced_blobs: BTreeSet::new(),
        };
        syncer.sync()?;
        Ok(syncer)
    }

    pub(crate) fn sync(&mut self) -> Result<()> {
        self.data
            .sync_data()
            .map_err(|e| Error::storage("fdatasync of sled's data file", e))?;
        self.sync_new_blobs()
            .map_err(|e| Error::storage("syncing sled's blob files", e))
    }

    fn sync_new_blobs(&mut self) -> std::io::Result<()> {
        let entries = match std::fs::read_dir(&self.blobs) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut present = BTreeSet::new();
        let mut new_files = false;
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !self.synced_blobs.contains(&name) {
                File::open(entry.path())?.sync_data()?;
                new_files = true;
            }
            present.insert(name);
        }
        if new_files {
            sync_dir(&self.blobs)?;
        }
        // Forget blobs sled has since removed, so the set does not grow without bound.
        self.synced_blobs = present;
        Ok(())
    }
}
