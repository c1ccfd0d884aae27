//! The durability stage: the second half of the group-commit pipeline.
//!
//! The writer (`writer.rs`) builds a group and applies its batch to sled, then hands the
//! group to this stage as an [`Applied`] and goes on with the next group. The stage takes
//! every group handed over so far, appends their records to the write-ahead log
//! (`wal.rs`) with one `write`, in strict mode fdatasyncs once, and only then answers the
//! groups and moves the durable seq on, in the order they were applied. While it waits
//! for the disk, the writer builds and applies the next groups, so under load many
//! publishers share each sync.
//!
//! Buffered mode answers once the records are written to the OS (a process crash keeps
//! them) and fdatasyncs the log at least every [`crate::Config::sync_interval`].
//!
//! A full segment is sealed and handed to the checkpoint thread ([`Checkpoints`]), which
//! flushes and syncs sled and then deletes the segments sled now covers. Closing ends
//! with a checkpoint of everything, so a clean shutdown leaves no log to replay.
//!
//! A failed write or sync stops the broker: every group still in the pipeline is
//! answered with the failure.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::changes::Changes;
use crate::store::Syncer;
use crate::wal::Wal;
use crate::writer::{Pending, Shared};
use crate::{Durability, Error, Result};

/// A group whose batch is applied to sled but not yet durable.
pub(crate) struct Applied {
    pub(crate) answers: Vec<Pending>,
    /// The group's writes, for its write-ahead log record.
    pub(crate) changes: Changes,
    /// The group's number in the write-ahead log.
    pub(crate) wal_group: u64,
    /// The highest seq assigned so far, including this group's.
    pub(crate) last_seq: u64,
    /// The group's place in the order of groups (`Shared::groups_applying`).
    pub(crate) group_number: u64,
    /// A `flush` or `close` is in the group: sync in either mode.
    pub(crate) force_sync: bool,
}

/// The round buffer's capacity kept between rounds; a larger one (a round of big
/// events) is given back.
const RECORDS_KEPT_BYTES: usize = 4 * 1024 * 1024;

pub(crate) struct Durable {
    pub(crate) wal: Wal,
    pub(crate) checkpoints: Checkpoints,
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    pub(crate) sync_interval: Duration,
    /// Tells the writer how many groups have been answered.
    pub(crate) done: Sender<usize>,
}

impl Durable {
    pub(crate) fn run(mut self, rx: Receiver<Applied>) {
        let mut unsynced_since: Option<Instant> = None;
        let mut records = Vec::new();
        loop {
            let first = match unsynced_since {
                Some(since) => rx.recv_timeout(self.sync_interval.saturating_sub(since.elapsed())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match first {
                Ok(applied) => applied,
                Err(RecvTimeoutError::Timeout) => {
                    // Buffered mode: the sync interval has passed.
                    let _ = self.fail_on(Wal::sync);
                    unsynced_since = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut round = vec![first];
            round.extend(rx.try_iter());
            if records.capacity() > RECORDS_KEPT_BYTES {
                records = Vec::new();
            }
            records.clear();
            for applied in &round {
                applied.changes.encode(applied.wal_group, &mut records);
            }
            let sync = round.iter().any(|a| a.force_sync) || self.durability == Durability::Strict;
            let failure = self
                .fail_on(|wal| {
                    wal.append(&records)?;
                    if sync { wal.sync() } else { Ok(()) }
                })
                .err();
            if failure.is_none() {
                if sync {
                    unsynced_since = None;
                } else {
                    unsynced_since.get_or_insert_with(Instant::now);
                }
            }
            let count = round.len();
            let next_group = round.last().map_or(0, |a| a.wal_group + 1);
            for applied in round {
                if failure.is_none() {
                    self.shared.durable_seq.send_if_modified(|durable| {
                        let advanced = applied.last_seq > *durable;
                        *durable = applied.last_seq;
                        advanced
                    });
                    self.shared
                        .groups_durable
                        .send_replace(applied.group_number);
                }
                for answer in applied.answers {
                    answer(failure.as_deref());
                }
            }
            // The writer may have stopped waiting (it is closing); nothing to do then.
            let _ = self.done.send(count);
            if failure.is_none()
                && self.wal.is_full()
                && let Ok(sealed) = self.fail_on(|wal| wal.rotate(next_group))
            {
                self.checkpoints.start(vec![sealed]);
            }
        }
        // Closing: make everything durable, then checkpoint it all, so the next open has
        // nothing to replay. After a failure, leave the log for the next open to replay.
        if self.fail_on(Wal::sync).is_ok() {
            let active = self.wal.path().to_owned();
            self.checkpoints.start(vec![active]);
        }
        self.checkpoints.finish();
    }

    /// Runs `step` on the log unless the broker has failed; a failure stops the broker.
    /// The error is the reason the broker has failed.
    fn fail_on<T>(
        &mut self,
        step: impl FnOnce(&mut Wal) -> Result<T>,
    ) -> std::result::Result<T, String> {
        if let Some(reason) = self.shared.failure() {
            return Err(reason);
        }
        step(&mut self.wal).map_err(|e| {
            tracing::error!(error = %e, "broker.commit failed; the broker stops accepting writes");
            let reason = e.to_string();
            self.shared.fail(reason.clone());
            reason
        })
    }
}

/// The checkpoint thread: makes sled durable up to now, then deletes the segments that
/// it covers.
///
/// Decision: a thread of its own, because sled's `flush()` writes out everything applied
/// since the last checkpoint and waits for it; answering groups must not wait behind it.
/// A sealed segment holds only groups the writer applied before handing them over, so a
/// flush that starts after the segment was sealed covers every group in it.
pub(crate) struct Checkpoints {
    tx: Option<Sender<Vec<PathBuf>>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    pub(crate) fn spawn(db: sled::Db, syncer: Syncer, shared: Arc<Shared>) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Vec<PathBuf>>();
        let thread = std::thread::Builder::new()
            .name("choreo-broker-checkpoint".into())
            .spawn(move || checkpoint_loop(&db, syncer, &shared, &rx))
            .map_err(|e| Error::storage("starting the checkpoint thread", e))?;
        Ok(Checkpoints {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn start(&self, segments: Vec<PathBuf>) {
        if let Some(tx) = &self.tx {
            // The thread only stops once `tx` is dropped, in `finish`.
            let _ = tx.send(segments);
        }
    }

    /// Waits for every checkpoint started so far.
    fn finish(&mut self) {
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn checkpoint_loop(
    db: &sled::Db,
    mut syncer: Syncer,
    shared: &Shared,
    rx: &Receiver<Vec<PathBuf>>,
) {
    while let Ok(mut segments) = rx.recv() {
        for more in rx.try_iter() {
            segments.extend(more);
        }
        if shared.failure().is_some() {
            continue;
        }
        let checkpoint = checkpoint(db, &mut syncer, &segments);
        if let Err(e) = checkpoint {
            tracing::error!(error = %e, "broker.checkpoint failed; the broker stops accepting writes");
            shared.fail(e.to_string());
        }
    }
}

/// Flushes and syncs sled, then deletes `segments`.
pub(crate) fn checkpoint(db: &sled::Db, syncer: &mut Syncer, segments: &[PathBuf]) -> Result<()> {
    let started = Instant::now();
    db.flush()
        .map_err(|e| Error::storage("flushing sled for a checkpoint", e))?;
    syncer.sync()?;
    for segment in segments {
        std::fs::remove_file(segment)
            .map_err(|e| Error::storage("deleting a checkpointed write-ahead log segment", e))?;
    }
    tracing::debug!(
        segments = segments.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "broker.checkpoint"
    );
    Ok(())
}
