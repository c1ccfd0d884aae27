//! The durability stage: the second half of the group-commit pipeline.
//!
//! The writer (`writer.rs`) builds a group and applies its batch to sled, then hands the
//! group to this stage's thread as an [`Applied`] and goes on with the next group. This
//! thread takes every group that has been handed over so far, makes all of them durable
//! with one sled `flush()` (and in strict mode one fdatasync), and only then answers
//! them and moves the durable seq on, in the order they were applied.
//!
//! Decision: two threads instead of one, so that the writer's CPU work (building and
//! applying the next group) overlaps the disk wait of the previous one. sled 0.34 limits
//! the overlap: `flush()` holds sled's global concurrency-control read guard while it
//! writes its IO buffer and waits for `sync_file_range`, and `apply_batch` takes the
//! write side of that guard, so the next batch is applied only once that flush returns.
//! Building the next group (matching, dedup reads, encoding) overlaps the whole flush,
//! and applying it overlaps the fdatasync, which sled knows nothing about.
//!
//! Why this keeps every guarantee: a group is answered only after a flush (and, in strict
//! mode, an fdatasync) that started after its batch was applied, so it covers it; groups
//! are answered, and become durable, in order. The in-memory view (queues, leases) is
//! not held back: the writer updates it as it applies a batch (`writer.rs`), so a
//! delivery may start while its event is still being synced; see `apply_to_view` for
//! why that is safe.
//!
//! A failed flush or sync stops the broker, as before: every group still in the pipeline
//! is answered with the failure.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use crate::store::Syncer;
use crate::writer::{Pending, Shared};
use crate::{Durability, Error, Result};

/// A group whose batch is applied to sled but not yet durable.
pub(crate) struct Applied {
    pub(crate) answers: Vec<Pending>,
    /// The highest seq assigned so far, including this group's.
    pub(crate) last_seq: u64,
    /// The group's place in the order of groups (`Shared::groups_applying`).
    pub(crate) group_number: u64,
    /// A `flush` or `close` is in the group: sync in either mode.
    pub(crate) force_sync: bool,
}

pub(crate) struct Durable {
    pub(crate) db: sled::Db,
    pub(crate) syncer: Syncer,
    pub(crate) shared: Arc<Shared>,
    pub(crate) durability: Durability,
    pub(crate) sync_interval: Duration,
    /// Tells the writer how many groups have been answered.
    pub(crate) done: Sender<usize>,
}

impl Durable {
    pub(crate) fn run(mut self, rx: Receiver<Applied>) {
        let mut unsynced_since: Option<Instant> = None;
        loop {
            let first = match unsynced_since {
                Some(since) => rx.recv_timeout(self.sync_interval.saturating_sub(since.elapsed())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match first {
                Ok(applied) => applied,
                Err(RecvTimeoutError::Timeout) => {
                    // Buffered mode: the sync interval has passed.
                    self.sync_or_fail();
                    unsynced_since = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut round = vec![first];
            round.extend(rx.try_iter());
            let force_sync = round.iter().any(|a| a.force_sync);
            let count = round.len();
            // Judged by this round's own flush: a failure the writer hits meanwhile
            // (with a later group) does not undo what this flush made durable.
            let failure = match self.make_durable(force_sync) {
                Ok(true) => {
                    unsynced_since = None;
                    None
                }
                Ok(false) => {
                    unsynced_since.get_or_insert_with(Instant::now);
                    None
                }
                Err(e) => {
                    tracing::error!(error = %e, "broker.commit failed; the broker stops accepting writes");
                    let reason = e.to_string();
                    self.shared.fail(reason.clone());
                    Some(reason)
                }
            };
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
        }
        if unsynced_since.is_some() {
            self.sync_or_fail();
        }
    }

    /// Flushes sled and, when required, fdatasyncs. `Ok(true)` when synced to disk.
    fn make_durable(&mut self, force_sync: bool) -> Result<bool> {
        if let Some(reason) = self.shared.failure() {
            return Err(Error::Failed { reason });
        }
        // Decision: buffered mode flushes per round too. sled 0.34's `apply_batch` only
        // copies the batch into sled's in-process IO buffer; the buffer reaches the OS
        // (`pwrite`) only when it fills, when its background flusher runs (disabled, see
        // `store.rs`), or on `flush()`, and `flush()` always follows the `pwrite` with
        // `sync_file_range(WAIT_BEFORE | WRITE | WAIT_AFTER)` (iobuf.rs, `write_to_log`),
        // there is no write-without-wait path. Acknowledging after `apply_batch` alone
        // would lose acknowledged events to a `kill -9`, which buffered mode promises to
        // survive ("acked once written to the OS"). What buffered mode saves is the
        // fdatasync (the drive cache flush and metadata), and a round here covers every
        // group applied meanwhile.
        self.db
            .flush()
            .map_err(|e| Error::storage("flushing a group commit", e))?;
        if force_sync || self.durability == Durability::Strict {
            self.syncer.sync()?;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    fn sync_or_fail(&mut self) {
        if self.shared.failure().is_some() {
            return;
        }
        if let Err(e) = self.syncer.sync() {
            tracing::error!(error = %e, "broker.sync failed; the broker stops accepting writes");
            self.shared.fail(e.to_string());
        }
    }
}
