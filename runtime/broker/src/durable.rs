//! The durability stage: the second half of the group-commit pipeline.
//!
//! The writer (`writer.rs`) builds a group and applies its batch to sled, then hands the
//! group to this stage as an [`Applied`] and goes on with the next group. The stage's
//! flush thread takes every group handed over so far and writes all of them to the OS
//! with one sled `flush()`; its sync thread then fdatasyncs once (strict mode) for every
//! round flushed meanwhile, and only then answers the groups and moves the durable seq
//! on, in the order they were applied.
//!
//! Decision: the stage runs beside the writer, so that the writer's CPU work (building
//! and applying the next group) overlaps the disk wait of the previous one, and the
//! fdatasync has a thread of its own (see [`Durable::run`]). sled 0.34 limits
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
use crate::{Durability, Error};

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

/// Groups that one sled `flush()` has written to the OS, on their way to the sync thread.
struct Flushed {
    round: Vec<Applied>,
    /// The flush failed (or the broker had already failed): answer with this.
    failure: Option<String>,
}

impl Durable {
    /// Runs the flush stage on this thread and the sync stage on a thread of its own.
    ///
    /// Decision: flush and fdatasync run on two threads, so that in strict mode the
    /// fdatasync of one round overlaps the flush of the next (and, since a finished
    /// flush releases sled's guard, the writer applying the round after). A round
    /// waits for one flush and one fdatasync, no longer for the previous round's
    /// fdatasync as well. Every answer still follows an fdatasync that started after
    /// the round's flush returned, and the sync thread answers rounds in the order the
    /// flush thread passed them on, which is the order they were applied.
    pub(crate) fn run(self, rx: Receiver<Applied>) {
        let Durable {
            db,
            syncer,
            shared,
            durability,
            sync_interval,
            done,
        } = self;
        let (to_sync, flushed) = std::sync::mpsc::channel::<Flushed>();
        let sync = Sync {
            syncer,
            shared: shared.clone(),
            durability,
            sync_interval,
            done,
        };
        let sync_thread = std::thread::Builder::new()
            .name("choreo-broker-fsync".into())
            .spawn(move || sync.run(flushed));
        let sync_thread = match sync_thread {
            Ok(thread) => thread,
            Err(e) => {
                let reason = format!("starting the sync thread: {e}");
                shared.fail(reason.clone());
                for applied in rx.iter() {
                    for answer in applied.answers {
                        answer(Some(&reason));
                    }
                }
                return;
            }
        };
        while let Ok(first) = rx.recv() {
            let mut round = vec![first];
            round.extend(rx.try_iter());
            // Judged by this round's own flush: a failure the writer hits meanwhile
            // (with a later group) does not undo what this flush makes durable.
            let failure = match shared.failure() {
                Some(reason) => Some(reason),
                None => db.flush().err().map(|e| {
                    let e = Error::storage("flushing a group commit", e);
                    tracing::error!(error = %e, "broker.commit failed; the broker stops accepting writes");
                    shared.fail(e.to_string());
                    e.to_string()
                }),
            };
            if to_sync.send(Flushed { round, failure }).is_err() {
                break;
            }
        }
        drop(to_sync);
        let _ = sync_thread.join();
    }
}

/// The sync stage: fdatasync when the durability mode (or a `flush`) asks for it, then
/// update the view and answer.
struct Sync {
    syncer: Syncer,
    shared: Arc<Shared>,
    durability: Durability,
    sync_interval: Duration,
    done: Sender<usize>,
}

impl Sync {
    fn run(mut self, rx: Receiver<Flushed>) {
        let mut unsynced_since: Option<Instant> = None;
        loop {
            let first = match unsynced_since {
                Some(since) => rx.recv_timeout(self.sync_interval.saturating_sub(since.elapsed())),
                None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let first = match first {
                Ok(flushed) => flushed,
                Err(RecvTimeoutError::Timeout) => {
                    // Buffered mode: the sync interval has passed.
                    self.sync_or_fail();
                    unsynced_since = None;
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut rounds = vec![first];
            rounds.extend(rx.try_iter());
            let force_sync = rounds.iter().flat_map(|f| &f.round).any(|a| a.force_sync);
            let flushed_ok = rounds.iter().any(|f| f.failure.is_none());
            // Decision: buffered mode acknowledges after the flush alone. sled 0.34's
            // `apply_batch` only copies the batch into sled's in-process IO buffer; the
            // buffer reaches the OS (`pwrite`) only when it fills, when its background
            // flusher runs (disabled, see `store.rs`), or on `flush()`, and `flush()`
            // always follows the `pwrite` with `sync_file_range(WAIT_BEFORE | WRITE |
            // WAIT_AFTER)` (iobuf.rs, `write_to_log`): there is no write-without-wait
            // path. Acknowledging after `apply_batch` alone would lose acknowledged events
            // to a `kill -9`, which buffered mode promises to survive ("acked once written
            // to the OS"). What buffered mode saves is the fdatasync (the drive cache
            // flush and metadata), and a sync here covers every round flushed meanwhile.
            let synced = if flushed_ok && (force_sync || self.durability == Durability::Strict) {
                match self.sync() {
                    Ok(()) => {
                        unsynced_since = None;
                        None
                    }
                    Err(reason) => Some(reason),
                }
            } else {
                if flushed_ok {
                    unsynced_since.get_or_insert_with(Instant::now);
                }
                None
            };
            let mut count = 0;
            for Flushed { round, failure } in rounds {
                let failure = failure.or_else(|| synced.clone());
                count += round.len();
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
            }
            // The writer may have stopped waiting (it is closing); nothing to do then.
            let _ = self.done.send(count);
        }
        if unsynced_since.is_some() {
            self.sync_or_fail();
        }
    }

    /// fdatasync; on failure the broker stops and the reason is returned.
    fn sync(&mut self) -> std::result::Result<(), String> {
        if let Some(reason) = self.shared.failure() {
            return Err(reason);
        }
        self.syncer.sync().map_err(|e| {
            tracing::error!(error = %e, "broker.commit failed; the broker stops accepting writes");
            let reason = e.to_string();
            self.shared.fail(reason.clone());
            reason
        })
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
