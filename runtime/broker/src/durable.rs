//! The durability stage: the second half of the group-commit pipeline.
//!
//! The writer (`writer.rs`) builds a group and applies it to memory in front of sled
//! (`overlay.rs`), then hands the group to this stage as an [`Applied`] and goes on with
//! the next group. The stage takes every group handed over so far, appends their
//! records to the write-ahead log (`wal.rs`) with one write (in strict mode a direct,
//! synchronous one, or a write and one fdatasync where direct I/O is refused), and only
//! then answers the groups and moves the durable seq on, in the order they were
//! applied. While it waits for the disk, the writer builds and applies the
//! next groups, so under load many publishers share each sync.
//!
//! Buffered mode answers once the records are written to the OS (a process crash keeps
//! them) and fdatasyncs the log at least every [`crate::Config::sync_interval`].
//!
//! When the writer has frozen the overlay's layer after a group, the segment is sealed
//! right after that group's record, and the layer and the segment go to the checkpoint
//! thread ([`Checkpoints`]), which writes the layer into sled, flushes and syncs sled, and
//! then retires the segment (`wal::retire`: kept for reuse, or deleted). Closing ends
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
use crate::overlay::{Layer, Overlay};
use crate::records::APPLIED_KEY;
use crate::store::Syncer;
use crate::wal::Wal;
use crate::writer::{Pending, Shared};
use crate::{Durability, Error, Result};

/// A group applied to the overlay but not yet durable.
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
    /// The overlay layer frozen after this group (`overlay.rs`): the log segment is
    /// sealed after this group's record, and the layer checkpointed into sled.
    pub(crate) checkpoint: Option<Arc<Layer>>,
}

/// The round buffer's capacity kept between rounds; a larger one (a round of big
/// events) is given back.
const RECORDS_KEPT_BYTES: usize = 4 * 1024 * 1024;

pub(crate) struct Durable {
    pub(crate) wal: Wal,
    pub(crate) overlay: Arc<Overlay>,
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
            let count = round.len();
            // A group that ends a checkpoint ends its part of the round: the segment is
            // sealed right after its record.
            let mut rest = round.into_iter().peekable();
            while rest.peek().is_some() {
                let mut part = Vec::new();
                for applied in rest.by_ref() {
                    let ends = applied.checkpoint.is_some();
                    part.push(applied);
                    if ends {
                        break;
                    }
                }
                self.make_durable(part, &mut records, &mut unsynced_since);
            }
            // The writer may have stopped waiting (it is closing); nothing to do then.
            let _ = self.done.send(count);
        }
        // Closing: the writer has stopped. Make everything durable, then checkpoint it
        // all, so the next open has nothing to replay. After a failure, leave the log for
        // the next open to replay.
        if self.fail_on(Wal::sync).is_ok() {
            let layer = self.overlay.freeze();
            let active = self.wal.path().to_owned();
            self.checkpoints.start(layer, vec![active]);
        }
        self.checkpoints.finish();
    }

    /// Appends the records of `part` with one write, syncs when its mode or its groups
    /// ask for it, answers its groups, and starts the checkpoint that its last group
    /// ends, if any.
    fn make_durable(
        &mut self,
        mut part: Vec<Applied>,
        records: &mut Vec<u8>,
        unsynced_since: &mut Option<Instant>,
    ) {
        if records.capacity() > RECORDS_KEPT_BYTES {
            *records = Vec::new();
        }
        records.clear();
        for applied in &part {
            applied.changes.encode(applied.wal_group, records);
        }
        let checkpoint = part.last_mut().and_then(|a| a.checkpoint.take());
        let sync = part.iter().any(|a| a.force_sync) || self.durability == Durability::Strict;
        let failure = self
            .fail_on(|wal| {
                wal.append(&mut *records)?;
                if sync { wal.sync() } else { Ok(()) }
            })
            .err();
        if failure.is_none() {
            if sync {
                *unsynced_since = None;
            } else {
                unsynced_since.get_or_insert_with(Instant::now);
            }
        }
        let next_group = part.last().map_or(0, |a| a.wal_group + 1);
        for applied in part {
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
        if let Some(layer) = checkpoint
            && failure.is_none()
            && let Ok(sealed) = self.fail_on(|wal| wal.rotate(next_group))
        {
            // Sealing synced the segment: every group of the layer is durable in the log.
            *unsynced_since = None;
            self.checkpoints.start(layer, vec![sealed]);
        }
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
            let reason = choreo_core::with_causes(&e);
            tracing::error!(error = %reason, "broker.commit failed; the broker stops accepting writes");
            self.shared.fail(reason.clone());
            reason
        })
    }
}

/// The checkpoint thread: applies a frozen overlay layer to sled, makes sled durable,
/// then retires the log segments it covers and drops the layer.
///
/// Decision: a thread of its own, because sled's `flush()` writes out everything applied
/// since the last checkpoint and waits for it; answering groups must not wait behind it.
/// A layer holds exactly the groups of the segments sealed with it, and those are synced
/// before the checkpoint starts, so a crash at any point in it leaves every group of the
/// layer in the log, for the next open to replay.
pub(crate) struct Checkpoints {
    tx: Option<Sender<(Arc<Layer>, Vec<PathBuf>)>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpoints {
    pub(crate) fn spawn(
        db: sled::Db,
        tree: sled::Tree,
        overlay: Arc<Overlay>,
        syncer: Syncer,
        shared: Arc<Shared>,
    ) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<(Arc<Layer>, Vec<PathBuf>)>();
        let thread = crate::threads::spawn("choreo-broker-checkpoint", move || {
            let mut syncer = syncer;
            for (layer, segments) in rx {
                if shared.failure().is_some() {
                    continue;
                }
                let done = apply_layer(&tree, &layer)
                    .and_then(|()| checkpoint(&db, &mut syncer, &segments));
                match done {
                    Ok(()) => overlay.release(&layer),
                    Err(e) => {
                        let reason = choreo_core::with_causes(&e);
                        tracing::error!(error = %reason, "broker.checkpoint failed; the broker stops accepting writes");
                        shared.fail(reason);
                    }
                }
            }
        })
        .map_err(|e| Error::storage("starting the checkpoint thread", e))?;
        Ok(Checkpoints {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn start(&self, layer: Arc<Layer>, segments: Vec<PathBuf>) {
        if let Some(tx) = &self.tx {
            // The thread only stops once `tx` is dropped, in `finish`.
            let _ = tx.send((layer, segments));
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

/// Most writes in one sled batch while a layer is applied: sled blocks its reads while
/// it applies a batch.
const LAYER_BATCH_WRITES: usize = 4096;

/// Writes a layer into sled, in batches, the last-applied-group key last: a crash
/// midway leaves sled naming the previous checkpoint's group, and the replay from there
/// writes every key of the layer again.
fn apply_layer(tree: &sled::Tree, layer: &Layer) -> Result<()> {
    let mut batch = sled::Batch::default();
    let mut in_batch = 0;
    let mut applied_group = None;
    for (key, write) in layer {
        if key == APPLIED_KEY {
            applied_group = write.clone();
            continue;
        }
        match write {
            Some(value) => batch.insert(key.clone(), value.clone()),
            None => batch.remove(key.clone()),
        }
        in_batch += 1;
        if in_batch == LAYER_BATCH_WRITES {
            tree.apply_batch(std::mem::take(&mut batch))
                .map_err(|e| Error::storage("writing a checkpoint into sled", e))?;
            in_batch = 0;
        }
    }
    if let Some(group) = applied_group {
        batch.insert(APPLIED_KEY, group);
    }
    tree.apply_batch(batch)
        .map_err(|e| Error::storage("writing a checkpoint into sled", e))
}

/// Flushes and syncs sled, then retires `segments` (kept as spares or deleted).
pub(crate) fn checkpoint(db: &sled::Db, syncer: &mut Syncer, segments: &[PathBuf]) -> Result<()> {
    let started = Instant::now();
    db.flush()
        .map_err(|e| Error::storage("flushing sled for a checkpoint", e))?;
    syncer.sync()?;
    for segment in segments {
        crate::wal::retire(segment)?;
    }
    tracing::debug!(
        segments = segments.len(),
        took_ms = started.elapsed().as_millis() as u64,
        "broker.checkpoint"
    );
    Ok(())
}
