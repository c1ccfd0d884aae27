//! The id index: which seqs hold an event with a given id, and which events name a
//! given event as their cause. It serves lookups by id and causation walks; dedup has
//! its own window (`dedup.rs`).
//!
//! Decision: kept out of sled, in files of sorted hashes. An index key per event was the
//! largest single cost of a publish: sled 0.34 pays per key written (a leaf copy, a log
//! fragment, a deferred free), and with those keys left out the writer published 1.6×
//! (strict) and 1.9× (buffered) as many events (`BENCHMARKS.md`). The index is derived
//! from the log, so it need not be written in the group that appends the event:
//! - An entry is 16 bytes: a 64-bit xxh3 hash of the id (or of the cause, with another
//!   seed) and the seq. Entries of new groups go to an in-memory table.
//! - When the table holds [`crate::Config::index_run_entries`] (default 65,536: 1 MiB),
//!   it is frozen (sorted), and the index thread
//!   writes it to `ids/<number>.run` (a temporary file, fdatasync, rename). Lookups
//!   binary-search the files; until its file is written, a frozen table is searched in
//!   memory.
//! - Opening keeps the runs that are whole and end at or before the log's last seq, and
//!   re-indexes the rest of the log into the table. A run that ends past the log's end
//!   was written for groups a crash lost before they were durable (their seqs are given
//!   out again), so it is deleted.
//! - Lookups return candidate seqs. The caller reads each candidate and checks the event:
//!   a hash may collide, and retention may have removed the event since.
//! - Retention deletes the runs whose every seq is below the log's first event.

mod run;

use std::path::Path;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use choreo_core::{Event, EventId};
use xxhash_rust::xxh3::xxh3_64_with_seed;

use run::{Run, load_runs, write_run};

use crate::overlay::Kv;
use crate::{Error, Result};

/// Where the runs live, inside the store directory.
pub(crate) const IDS_DIR: &str = "ids";

/// Seeds that keep the two kinds of key apart (part of the store format). They differ
/// in their high bits: xxh3 adds the seed to a short input's bits, so seeds that differ
/// only in their low bits make `e11`'s id key equal `e10`'s cause key.
const ID_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
const CAUSE_SEED: u64 = 0xC2B2_AE3D_27D4_EB4F;

/// An index entry: a key hash, and the seq of an event it names.
pub(crate) type IndexEntry = (u64, u64);

/// The index key of events with id `id`.
pub(crate) fn id_key(id: &EventId) -> u64 {
    xxh3_64_with_seed(id.as_str().as_bytes(), ID_SEED)
}

/// The index key of events whose `causationid` is `cause`.
pub(crate) fn cause_key(cause: &EventId) -> u64 {
    xxh3_64_with_seed(cause.as_str().as_bytes(), CAUSE_SEED)
}

/// Adds the entries of `event`, appended at `seq`, to `entries`.
pub(crate) fn entries_of(event: &Event, seq: u64, entries: &mut Vec<IndexEntry>) {
    entries.push((id_key(&event.id), seq));
    if let Some(cause) = &event.causation_id {
        entries.push((cause_key(cause), seq));
    }
}

/// A table frozen for writing: sorted by key, then seq.
#[derive(Debug)]
struct Frozen {
    entries: Vec<IndexEntry>,
    number: u64,
}

#[derive(Debug, Default)]
struct Tables {
    /// Entries not yet frozen, in the order they were added, which is seq order.
    fresh: Vec<IndexEntry>,
    /// Frozen tables whose run is being written, oldest first.
    frozen: Vec<Arc<Frozen>>,
    runs: Vec<Arc<Run>>,
    next_run: u64,
    run_entries: usize,
}

enum Job {
    Write(Arc<Frozen>),
    /// Delete the runs that end before this seq.
    Trim(u64),
}

/// The index, shared by the writer (which adds to it) and readers.
#[derive(Debug)]
pub(crate) struct IdIndex {
    tables: Arc<Mutex<Tables>>,
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Job::Write(frozen) => write!(f, "Write(run {})", frozen.number),
            Job::Trim(seq) => write!(f, "Trim(before {seq})"),
        }
    }
}

impl IdIndex {
    /// Opens the index of the store at `store_dir`, whose log holds seqs up to
    /// `last_seq`, and starts its thread.
    /// Each run holds `run_entries` entries.
    pub(crate) fn open(
        store_dir: &Path,
        tree: &Kv,
        last_seq: u64,
        run_entries: usize,
    ) -> Result<Self> {
        let dir = store_dir.join(IDS_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::storage("creating the id index", e))?;
        let mut runs = load_runs(&dir, last_seq)?;
        runs.sort_by_key(|r| r.first);
        let mut fresh = Vec::new();
        let mut cursor = 1;
        for run in &runs {
            if run.first > cursor {
                reindex(tree, cursor, run.first - 1, &mut fresh)?;
            }
            cursor = cursor.max(run.last + 1);
        }
        reindex(tree, cursor, last_seq, &mut fresh)?;
        let next_run = runs.iter().map(|r| r.number + 1).max().unwrap_or(1);
        let tables = Arc::new(Mutex::new(Tables {
            fresh,
            frozen: Vec::new(),
            runs: runs.into_iter().map(Arc::new).collect(),
            next_run,
            run_entries: run_entries.max(1),
        }));
        let (jobs, inbox) = mpsc::channel::<Job>();
        let thread = {
            let tables = tables.clone();
            crate::threads::spawn("choreo-broker-index", move || {
                for job in inbox {
                    run_job(&dir, &tables, job);
                }
            })
            .map_err(|e| Error::storage("starting the id index thread", e))?
        };
        let index = IdIndex {
            tables,
            jobs: Mutex::new(Some(jobs)),
            thread: Mutex::new(Some(thread)),
        };
        // What opening indexed again may already fill runs.
        index.freeze_full(&mut index.tables());
        Ok(index)
    }

    fn tables(&self) -> MutexGuard<'_, Tables> {
        lock(&self.tables)
    }

    /// Adds the entries of a group just applied; freezes the table once it is full.
    pub(crate) fn add(&self, entries: Vec<IndexEntry>) {
        let mut tables = self.tables();
        if tables.fresh.is_empty() {
            tables.fresh = entries;
        } else {
            tables.fresh.extend_from_slice(&entries);
        }
        self.freeze_full(&mut tables);
    }

    /// Freezes the table into runs while it holds a run's worth, and has them written.
    fn freeze_full(&self, tables: &mut Tables) {
        let run_entries = tables.run_entries;
        while tables.fresh.len() >= run_entries {
            // The table is in seq order. A run ends with the last entry of a seq, so
            // every run holds all of the entries of the seqs it spans, which is what
            // opening relies on.
            let mut end = run_entries;
            while end < tables.fresh.len() && tables.fresh[end].1 == tables.fresh[end - 1].1 {
                end += 1;
            }
            let rest = tables.fresh.split_off(end);
            let mut entries = std::mem::replace(&mut tables.fresh, rest);
            entries.sort_unstable();
            let number = tables.next_run;
            tables.next_run += 1;
            let frozen = Arc::new(Frozen { entries, number });
            tables.frozen.push(frozen.clone());
            self.send(Job::Write(frozen));
        }
    }

    /// Deletes the runs that hold only seqs below `first_seq` (the log's first event).
    pub(crate) fn trim(&self, first_seq: u64) {
        self.send(Job::Trim(first_seq));
    }

    fn send(&self, job: Job) {
        let jobs = self
            .jobs
            .lock()
            .expect("the job sender is only cloned and taken");
        // Once closed, a frozen table simply stays in memory until the broker is dropped;
        // opening re-indexes it from the log.
        if let Some(jobs) = jobs.as_ref() {
            let _ = jobs.send(job);
        }
    }

    /// The seqs that may hold an event with index key `key`, ascending.
    pub(crate) fn candidates(&self, key: u64) -> Result<Vec<u64>> {
        let (mut seqs, frozen, runs) = {
            let tables = self.tables();
            let seqs: Vec<u64> = tables
                .fresh
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, seq)| *seq)
                .collect();
            (seqs, tables.frozen.clone(), tables.runs.clone())
        };
        for table in frozen {
            let from = table.entries.partition_point(|(k, _)| *k < key);
            seqs.extend(
                table.entries[from..]
                    .iter()
                    .take_while(|(k, _)| *k == key)
                    .map(|(_, seq)| *seq),
            );
        }
        for run in runs {
            run.find(key, &mut seqs)?;
        }
        seqs.sort_unstable();
        seqs.dedup();
        Ok(seqs)
    }

    /// Waits for the runs being written, and stops the index thread.
    pub(crate) fn close(&self) {
        self.jobs
            .lock()
            .expect("the job sender is only cloned and taken")
            .take();
        let thread = self
            .thread
            .lock()
            .expect("the thread handle is only taken")
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// The run files on disk, by number (for tests and diagnostics).
    #[cfg(test)]
    fn run_numbers(&self) -> Vec<u64> {
        self.tables().runs.iter().map(|r| r.number).collect()
    }
}

impl Drop for IdIndex {
    fn drop(&mut self) {
        self.close();
    }
}

fn lock(tables: &Mutex<Tables>) -> MutexGuard<'_, Tables> {
    tables
        .lock()
        .expect("index users do not panic while holding the tables")
}

fn run_job(dir: &Path, tables: &Mutex<Tables>, job: Job) {
    match job {
        Job::Write(frozen) => match write_run(dir, frozen.number, &frozen.entries) {
            Ok(run) => {
                let mut tables = lock(tables);
                tables.frozen.retain(|f| !Arc::ptr_eq(f, &frozen));
                tables.runs.push(Arc::new(run));
            }
            // The table stays in memory, where lookups still find it; opening
            // re-indexes its events from the log.
            Err(e) => {
                tracing::warn!(error = %e, run = frozen.number, "broker.index could not write a run")
            }
        },
        Job::Trim(first_seq) => {
            let gone: Vec<Arc<Run>> = {
                let mut tables = lock(tables);
                let (gone, kept) = std::mem::take(&mut tables.runs)
                    .into_iter()
                    .partition(|r| r.last < first_seq);
                tables.runs = kept;
                gone
            };
            for run in gone {
                if let Err(e) = std::fs::remove_file(&run.path) {
                    tracing::warn!(error = %e, path = %run.path.display(), "broker.index could not delete a run");
                }
            }
        }
    }
}

/// Adds the entries of the logged events with seqs in `from..=to` to `entries`.
fn reindex(tree: &Kv, from: u64, to: u64, entries: &mut Vec<IndexEntry>) -> Result<()> {
    crate::log::scan(tree, from, to, |_, entry| {
        entries_of(&entry.decode()?, entry.seq, entries);
        Ok(std::ops::ControlFlow::Continue(()))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;
    use std::path::PathBuf;

    use super::run::{HEADER_BYTES, check_run, run_path};
    use super::*;
    use crate::log::ChunkBuilder;
    use choreo_core::Topic;

    const RUNS: usize = 1 << 16;

    fn event(n: u64) -> Event {
        let mut event = Event::new(Topic::new("a.b").unwrap(), "test://ids", vec![]);
        event.id = EventId::new(format!("e{n}")).unwrap();
        if n > 1 {
            event.causation_id = Some(EventId::new(format!("e{}", n / 2)).unwrap());
        }
        event
    }

    /// A log of events 1..=n in one tree, and each event's index entries.
    fn log(tree: &Kv, from: u64, to: u64) -> Vec<IndexEntry> {
        let mut entries = Vec::new();
        let mut chunk = ChunkBuilder::new(from, 1);
        for seq in from..=to {
            let event = event(seq);
            chunk.push(seq, &crate::records::encode(&event));
            entries_of(&event, seq, &mut entries);
        }
        let (key, value) = chunk.finish();
        tree.sled.insert(key, value).unwrap();
        entries
    }

    fn ids_of(index: &IdIndex, n: u64) -> Vec<u64> {
        index.candidates(id_key(&event(n).id)).unwrap()
    }

    /// A temp dir for the index, and a temp sled tree for the log (the db keeps it open).
    fn temp_store() -> (tempfile::TempDir, sled::Db, Kv) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().temporary(true).open().unwrap();
        let tree = Kv::new(db.open_tree("t").unwrap());
        (dir, db, tree)
    }

    fn caused_by(index: &IdIndex, n: u64) -> Vec<u64> {
        index.candidates(cause_key(&event(n).id)).unwrap()
    }

    #[test]
    fn finds_entries_in_the_table_in_runs_and_after_reopening() {
        let (dir, _db, tree) = temp_store();
        let last = RUNS as u64; // about 1.5 runs' worth of entries, with causes
        let entries = log(&tree, 1, last);
        let index = IdIndex::open(dir.path(), &tree, 0, RUNS).unwrap();
        for group in entries.chunks(1000) {
            index.add(group.to_vec());
        }
        assert_eq!(ids_of(&index, 7), [7]);
        assert_eq!(caused_by(&index, 7), [14, 15]);
        index.close();
        assert_eq!(index.run_numbers(), [1]);
        assert_eq!(ids_of(&index, last), [last]);
        assert_eq!(caused_by(&index, 100), [200, 201]);
        drop(index);

        // Reopened: the run is kept; the rest is indexed again from the log.
        let index = IdIndex::open(dir.path(), &tree, last, RUNS).unwrap();
        assert_eq!(index.run_numbers(), [1]);
        for n in [1, 2, 9_999, last] {
            assert_eq!(ids_of(&index, n), [n], "id of {n}");
        }
        assert_eq!(caused_by(&index, last / 2), [last]);
        assert!(ids_of(&index, last + 1).is_empty());
    }

    /// A store whose log holds events 1..=RUNS and whose index has written
    /// run 1 (the first half of the events).
    fn store_with_a_run() -> (tempfile::TempDir, sled::Db, Kv, PathBuf) {
        let (dir, db, tree) = temp_store();
        let entries = log(&tree, 1, RUNS as u64);
        let index = IdIndex::open(dir.path(), &tree, 0, RUNS).unwrap();
        index.add(entries);
        index.close();
        assert_eq!(index.run_numbers(), [1]);
        let run = run_path(&dir.path().join(IDS_DIR), 1);
        (dir, db, tree, run)
    }

    #[test]
    fn opening_deletes_a_run_past_the_end_of_the_log() {
        let (dir, _db, tree, run) = store_with_a_run();
        // The log lost its events past 1,000 (a crash before they were durable): the run
        // indexes seqs the log does not hold, which will be given out again.
        let index = IdIndex::open(dir.path(), &tree, 1000, RUNS).unwrap();
        assert!(!run.exists());
        assert!(index.run_numbers().is_empty());
        assert_eq!(ids_of(&index, 1000), [1000]);
        assert_eq!(caused_by(&index, 250), [500, 501]);
        assert!(ids_of(&index, 1001).is_empty());
    }

    #[test]
    fn opening_deletes_a_damaged_run_and_indexes_its_events_again() {
        let (dir, _db, tree, run) = store_with_a_run();
        let file = std::fs::OpenOptions::new().write(true).open(&run).unwrap();
        file.write_at(&[0xff; 4], HEADER_BYTES as u64 + 160)
            .unwrap();
        drop(file);
        let index = IdIndex::open(dir.path(), &tree, RUNS as u64, RUNS).unwrap();
        for n in [1, 11, 20_000, RUNS as u64] {
            assert_eq!(ids_of(&index, n), [n], "id of {n}");
        }
        // Its events were indexed again, and written to a new run.
        index.close();
        assert_eq!(index.run_numbers(), [1]);
        assert!(check_run(&run, 1, RUNS as u64).is_ok());
    }

    #[test]
    fn id_and_cause_keys_of_similar_ids_do_not_collide() {
        let mut keys = std::collections::HashSet::new();
        for n in 0..20_000 {
            let id = EventId::new(format!("e{n}")).unwrap();
            assert!(keys.insert(id_key(&id)), "id key of {id}");
            assert!(keys.insert(cause_key(&id)), "cause key of {id}");
        }
    }

    #[test]
    fn a_run_holds_every_entry_of_the_seqs_it_spans() {
        let (dir, _db, tree) = temp_store();
        let index = IdIndex::open(dir.path(), &tree, 0, 2).unwrap();
        // Seq 2 has an id entry and a cause entry: both go in the first run.
        index.add(vec![(10, 1), (20, 2), (30, 2), (40, 3)]);
        index.close();
        let run = check_run(&run_path(&dir.path().join(IDS_DIR), 1), 1, 3).unwrap();
        assert_eq!((run.first, run.last, run.count), (1, 2, 3));
        assert_eq!(index.candidates(40).unwrap(), [3]);
    }

    #[test]
    fn a_lookup_finds_every_entry_of_a_key_across_blocks() {
        let (dir, _db, tree) = temp_store();
        let index = IdIndex::open(dir.path(), &tree, 0, 2000).unwrap();
        // Key 5 for seqs 100..700 spans three blocks; other keys repeat three times.
        let key_of = |seq: u64| {
            if (100..700).contains(&seq) {
                5
            } else {
                seq / 3 * 11
            }
        };
        let entries: Vec<IndexEntry> = (1..=2000).map(|seq| (key_of(seq), seq)).collect();
        index.add(entries.clone());
        index.close();
        assert_eq!(index.run_numbers(), [1]);
        for key in [
            0,
            4,
            5,
            6,
            11,
            33,
            11 * 233,
            11 * 234,
            11 * 666,
            11 * 667,
            11 * 1000,
        ] {
            let want: Vec<u64> = entries
                .iter()
                .filter(|(k, _)| *k == key)
                .map(|(_, seq)| *seq)
                .collect();
            assert_eq!(index.candidates(key).unwrap(), want, "key {key}");
        }
    }

    #[test]
    fn trimming_deletes_runs_below_the_first_seq() {
        let (dir, _db, tree) = temp_store();
        let index = IdIndex::open(dir.path(), &tree, 0, RUNS).unwrap();
        // Two runs of id entries only: seqs 1..=RUNS, then the next ones.
        let n = RUNS as u64;
        index.add((1..=2 * n).map(|seq| (seq * 7919, seq)).collect());
        index.trim(n);
        index.trim(n + 1);
        index.close();
        assert_eq!(index.run_numbers(), [2]);
        assert!(!run_path(&dir.path().join(IDS_DIR), 1).exists());
        assert_eq!(index.candidates((n + 5) * 7919).unwrap(), [n + 5]);
    }
}
