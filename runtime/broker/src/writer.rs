//! The writer: the one thread that changes the store, by group commit.
//!
//! Every state-changing call becomes a [`Request`] on a channel. The writer takes the
//! first waiting request, then every request that queued up behind it (up to
//! [`MAX_GROUP_REQUESTS`]), builds all of them into one set of [`Changes`], applies it
//! to the overlay in front of sled (`overlay.rs`) and updates the in-memory view (queues
//! wake their workers), then hands the group to the durability stage (`durable.rs`),
//! which appends every group handed over meanwhile to the write-ahead log with one write
//! (in strict mode one that reaches the disk), and only then answers. While one group is being
//! made durable the next ones are built, so under load many publishers share each sync:
//! this is what makes strict durability affordable.
//!
//! [`Changes`]: crate::changes::Changes
//!
//! Decision: dedicated OS threads rather than tokio tasks, because every step here
//! (sled writes, flushes, fdatasync) blocks. The thread enters the runtime's context so
//! that [`crate::Clock`] reads the same (possibly paused) tokio clock as the callers.
//!
//! A storage failure stops the writer for good: the in-memory view may then be ahead of
//! the store, so every later call fails with [`Error::Failed`] until the broker is
//! reopened, which rebuilds the view from what is durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use choreo_core::{Event, HandlerName};
use tokio::sync::{Notify, oneshot, watch};

use crate::config::MAX_GROUP_REQUESTS;
use crate::dedup::DedupWindow;
use crate::durable::Applied;
use crate::ids::IdIndex;
use crate::records::APPLIED_KEY;
use crate::registry::{Registry, lock};
use crate::store::Store;
use crate::txn::{Effect, Finished, Group};
use crate::{Clock, Committed, Config, Error, Outcome, Published, Result, Selection, Subscription};

pub(crate) type Reply<T> = oneshot::Sender<Result<T>>;

/// A change for the writer to make.
#[derive(Debug)]
pub(crate) enum Request {
    /// `dedup` is false for events whose ids were generated just now
    /// (`Broker::publish_fresh`).
    Publish {
        events: Vec<Event>,
        dedup: bool,
        reply: Reply<Vec<Published>>,
    },
    Commit(Vec<Outcome>, Reply<Vec<Committed>>),
    Subscribe(Subscription, Reply<()>),
    SetPaused(HandlerName, bool, Reply<()>),
    Replay(HandlerName, Selection, Reply<usize>),
    Discard(HandlerName, Selection, Reply<usize>),
    /// Deletes a handler's records. Runs as a group of its own, so no other request in
    /// its batch can write a record under the prefixes it deletes.
    Remove(HandlerName, Reply<()>),
    /// Runs retention now. A group of its own, like the periodic sweep.
    Retention(Reply<usize>),
    /// Syncs to disk now, in either durability mode.
    Flush(Reply<()>),
    /// Syncs and stops the writer.
    Close(Option<Reply<()>>),
}

impl Request {
    fn is_exclusive(&self) -> bool {
        matches!(self, Request::Remove(..) | Request::Retention(..))
    }
}

/// State the writer shares with the callers.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) registry: Mutex<Registry>,
    /// The highest seq that is durable; log reads stop there, and log watchers
    /// ([`crate::Broker::watch_log`]) hear of every change.
    pub(crate) durable_seq: watch::Sender<u64>,
    /// How many groups the writer has started to apply to the tree. Counted before the
    /// batch is applied, so a reader that saw any of a group's writes reads a count that
    /// includes it.
    pub(crate) groups_applying: AtomicU64,
    /// How many groups are durable (or `u64::MAX` once the broker has failed): readers
    /// outside a delivery wait here until what they read is durable (`reads.rs`).
    pub(crate) groups_durable: watch::Sender<u64>,
    /// Entries leased since the writer's last group, whose lease records are still to be
    /// written.
    ///
    /// Decision: lease records are written with the writer's next group, not in a group
    /// of their own. Nobody waits for them: a lease lost in a crash only brings its
    /// delivery back sooner, which at-least-once allows. When that group commits the
    /// delivery (the common case: a handler that answers quickly), the entry is
    /// mid-commit and its lease record is skipped (`Group::record_leases`): the commit
    /// removes or rewrites the record anyway. That saves one sled write per delivery, a
    /// third of a catch-up's writes. They are noted here rather than sent as a request,
    /// so a lease does not wake the writer thread (a futex wake on the lease's path,
    /// costly on a VM) for records that wait for the next group anyway.
    leased: Mutex<Vec<(HandlerName, Vec<u64>)>>,
    failed: Mutex<Option<String>>,
}

impl Default for Shared {
    fn default() -> Self {
        Shared {
            registry: Mutex::default(),
            durable_seq: watch::Sender::new(0),
            groups_applying: AtomicU64::new(0),
            groups_durable: watch::Sender::new(0),
            leased: Mutex::default(),
            failed: Mutex::default(),
        }
    }
}

impl Shared {
    pub(crate) fn registry(&self) -> MutexGuard<'_, Registry> {
        lock(&self.registry)
    }

    /// Notes entries just leased; the writer writes their lease records with its next
    /// group.
    pub(crate) fn note_leased(&self, handler: HandlerName, seqs: Vec<u64>) {
        self.leased
            .lock()
            .expect("the lease notes are only pushed and taken")
            .push((handler, seqs));
    }

    fn take_leased(&self) -> Vec<(HandlerName, Vec<u64>)> {
        std::mem::take(
            &mut *self
                .leased
                .lock()
                .expect("the lease notes are only pushed and taken"),
        )
    }

    pub(crate) fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .expect("the failure slot is only read and set")
            .clone()
    }

    pub(crate) fn fail(&self, reason: String) {
        let mut failed = self
            .failed
            .lock()
            .expect("the failure slot is only read and set");
        failed.get_or_insert(reason);
        // Nothing in flight will become durable now; wake every reader waiting for it.
        self.groups_durable.send_replace(u64::MAX);
    }
}

/// An answer to send once the group is durable (or has failed).
pub(crate) type Pending = Box<dyn FnOnce(Option<&str>) + Send>;

fn pending<T: Send + 'static>(reply: Reply<T>, value: T) -> Pending {
    Box::new(move |failure: Option<&str>| {
        let result = match failure {
            None => Ok(value),
            Some(reason) => Err(Error::Failed {
                reason: reason.to_owned(),
            }),
        };
        // The caller may have given up waiting; nothing to do then.
        let _ = reply.send(result);
    })
}

pub(crate) struct Writer {
    pub(crate) store: Store,
    pub(crate) shared: Arc<Shared>,
    pub(crate) clock: Clock,
    pub(crate) config: Config,
    pub(crate) next_seq: u64,
    pub(crate) log_bytes: u64,
    pub(crate) runtime: Option<tokio::runtime::Handle>,
    /// The id index, which the writer adds each applied group's entries to.
    pub(crate) ids: Arc<IdIndex>,
    pub(crate) dedup: DedupWindow,
    /// The durability stage's inbox.
    pub(crate) to_durable: Sender<Applied>,
    /// How many groups the durability stage has answered.
    pub(crate) done: Receiver<usize>,
    /// The write-ahead log number of the next group (`wal.rs`).
    pub(crate) next_wal_group: u64,
    /// Groups handed to the durability stage and not yet answered.
    pub(crate) in_flight: usize,
    pub(crate) durable_thread: Option<JoinHandle<()>>,
}

impl Writer {
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let runtime = self.runtime.clone();
        let _context = runtime.as_ref().map(tokio::runtime::Handle::enter);
        let mut last_retention = self.clock.now_ms();
        let mut carried: Option<Request> = None;
        loop {
            let first = match carried.take() {
                Some(request) => request,
                None => match rx.recv() {
                    Ok(request) => request,
                    Err(_) => break,
                },
            };
            let mut group = vec![first];
            if !group[0].is_exclusive() {
                while group.len() < MAX_GROUP_REQUESTS {
                    match rx.try_recv() {
                        Ok(request) if request.is_exclusive() => {
                            carried = Some(request);
                            break;
                        }
                        Ok(request) => group.push(request),
                        Err(_) => break,
                    }
                }
            }
            self.in_flight -= self.done.try_iter().sum::<usize>();
            let closing = group.iter().any(|r| matches!(r, Request::Close(_)));
            self.process(group);
            if closing {
                break;
            }
            let now = self.clock.now_ms();
            if now.saturating_sub(last_retention)
                >= crate::clock::millis(self.config.retention_interval)
            {
                last_retention = now;
                let (reply, _) = oneshot::channel();
                self.process(vec![Request::Retention(reply)]);
            }
        }
        // Closing: the durability stage answers what it holds, syncs if anything is
        // unsynced, and stops once its inbox is dropped.
        self.settle();
        let Writer {
            to_durable,
            durable_thread,
            ids,
            ..
        } = self;
        drop(to_durable);
        if let Some(thread) = durable_thread {
            let _ = thread.join();
        }
        ids.close();
    }

    /// Waits until the durability stage has answered every group handed to it (closing).
    fn settle(&mut self) {
        while self.in_flight > 0 {
            match self.done.recv() {
                Ok(count) => self.in_flight -= count,
                Err(_) => break,
            }
        }
    }

    /// Builds and applies one group, and hands it to the durability stage.
    fn process(&mut self, group: Vec<Request>) {
        if let Some(reason) = self.shared.failure() {
            for request in group {
                pending_for(request)(Some(&reason));
            }
            return;
        }
        let mut txn = Group::new(
            &self.store.kv,
            &self.config,
            self.clock.now_ms(),
            self.next_seq,
            self.log_bytes,
            &mut self.dedup,
        );
        let mut answers: Vec<Pending> = Vec::with_capacity(group.len());
        let mut force_sync = false;
        let mut retention = false;
        let mut fatal: Option<Error> = None;
        // Decision: the registry is locked for one request at a time, not for the whole
        // group, and publishes and commits lock it only for their in-memory bookkeeping
        // (`Group::publish`, `Group::commit`). Leases lock it too, on the async threads,
        // and a group of many requests takes a while to build: held throughout, it kept
        // every lease (and the thread under it) waiting. A lease between two requests
        // sees the queues as the requests before it left them, which is a state they
        // pass through anyway.
        for request in group {
            if fatal.is_some() {
                answers.push(pending_for(request));
                continue;
            }
            force_sync |= matches!(request, Request::Flush(_) | Request::Close(_));
            retention |= matches!(request, Request::Retention(_));
            match build(&mut txn, &self.shared.registry, request) {
                Ok(Some(answer)) => answers.push(answer),
                Ok(None) => {}
                Err(e) => fatal = Some(e),
            }
        }
        // After the group's commits, so that entries they settle are skipped. Taken
        // after the group's requests were received: a commit was sent after its lease
        // was noted, so the lease is among these.
        {
            let mut registry = self.shared.registry();
            for (handler, seqs) in self.shared.take_leased() {
                txn.record_leases(&mut registry, &handler, &seqs);
            }
        }
        let Finished {
            mut changes,
            effects,
            next_seq,
            log_bytes,
            index,
        } = txn.finish();
        let group_number = self.shared.groups_applying.fetch_add(1, Ordering::SeqCst) + 1;
        let wal_group = self.next_wal_group;
        let applied = match fatal {
            Some(e) => Err(e),
            None => {
                changes.insert(APPLIED_KEY, &wal_group.to_be_bytes());
                Ok(self.store.kv.overlay.apply(&changes))
            }
        };
        match applied {
            Ok(overlay_bytes) => {
                // A checkpoint covers exactly the groups up to this one: the durability
                // stage seals the log segment right after this group's record.
                let checkpoint = (overlay_bytes >= self.config.checkpoint_bytes).then(|| {
                    self.wait_for_checkpoints();
                    self.store.kv.overlay.freeze()
                });
                self.next_seq = next_seq;
                self.log_bytes = log_bytes;
                self.next_wal_group += 1;
                apply_to_view(&self.shared, effects);
                self.ids.add(index);
                if retention {
                    self.trim_ids();
                }
                let applied = Applied {
                    answers,
                    changes,
                    wal_group,
                    last_seq: next_seq.saturating_sub(1),
                    group_number,
                    force_sync,
                    checkpoint,
                };
                match self.to_durable.send(applied) {
                    Ok(()) => self.in_flight += 1,
                    Err(unsent) => {
                        let reason = "the durability stage has stopped";
                        self.shared.fail(reason.to_owned());
                        for answer in unsent.0.answers {
                            answer(Some(reason));
                        }
                    }
                }
            }
            Err(e) => {
                let reason = choreo_core::with_causes(&e);
                tracing::error!(error = %reason, "broker.commit failed; the broker stops accepting writes");
                self.shared.fail(reason.clone());
                for answer in answers {
                    answer(Some(&reason));
                }
            }
        }
    }
}

/// Most frozen layers waiting for their checkpoint before the writer stalls.
const MAX_FROZEN_LAYERS: usize = 1;

impl Writer {
    /// Stalls the writer while an earlier checkpoint still holds a frozen layer in
    /// memory: writes then go no faster than sled takes them in, and the overlay holds
    /// at most about twice [`Config::checkpoint_bytes`]. A failed broker never frees the
    /// layer, so a failure ends the wait.
    fn wait_for_checkpoints(&self) {
        while self.store.kv.overlay.frozen_layers() >= MAX_FROZEN_LAYERS
            && self.shared.failure().is_none()
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }

    /// Lets the id index delete the runs below the log's first event, once retention ran.
    fn trim_ids(&self) {
        match crate::log::first_seq(&self.store.kv) {
            Ok(Some(first)) => self.ids.trim(first),
            // An empty log: every run is below the next event.
            Ok(None) => self.ids.trim(self.next_seq),
            Err(e) => {
                tracing::warn!(error = %e, "broker.index kept its runs: the log's first seq is unreadable")
            }
        }
    }
}

/// Adds one request to the group. `Ok(Some)` is the answer to send once durable; an
/// input error is answered at once and adds nothing; `Err` is a storage failure.
fn build(
    txn: &mut Group<'_>,
    registry: &Mutex<Registry>,
    request: Request,
) -> Result<Option<Pending>> {
    macro_rules! answer {
        ($reply:expr, $result:expr) => {
            match $result {
                Ok(value) => Some(pending($reply, value)),
                Err(e) if e.is_input() => {
                    let _ = $reply.send(Err(e));
                    None
                }
                Err(e) => return Err(e),
            }
        };
    }
    Ok(match request {
        Request::Publish {
            events,
            dedup,
            reply,
        } => answer!(reply, txn.publish(registry, events, dedup)),
        Request::Commit(outcomes, reply) => answer!(reply, txn.commit(registry, outcomes)),
        Request::Subscribe(sub, reply) => answer!(reply, txn.subscribe(&mut lock(registry), sub)),
        Request::SetPaused(handler, paused, reply) => {
            answer!(reply, txn.set_paused(&mut lock(registry), &handler, paused))
        }
        Request::Replay(handler, which, reply) => {
            answer!(reply, txn.replay(&lock(registry), &handler, which))
        }
        Request::Discard(handler, which, reply) => {
            answer!(reply, txn.discard(&lock(registry), &handler, which))
        }
        Request::Remove(handler, reply) => {
            answer!(reply, txn.remove(&mut lock(registry), &handler))
        }
        Request::Retention(reply) => answer!(reply, txn.retention(&lock(registry))),
        Request::Flush(reply) => Some(pending(reply, ())),
        Request::Close(reply) => reply.map(|reply| pending(reply, ())),
    })
}

/// The failure answer for a request that never got built.
fn pending_for(request: Request) -> Pending {
    fn fail<T: Send + 'static>(reply: Reply<T>) -> Pending {
        Box::new(move |failure: Option<&str>| {
            let _ = reply.send(Err(Error::Failed {
                reason: failure
                    .unwrap_or("an earlier request in its group failed")
                    .to_owned(),
            }));
        })
    }
    match request {
        Request::Publish { reply, .. } => fail(reply),
        Request::Commit(_, reply) => fail(reply),
        Request::Subscribe(_, reply)
        | Request::SetPaused(_, _, reply)
        | Request::Remove(_, reply)
        | Request::Flush(reply) => fail(reply),
        Request::Replay(_, _, reply)
        | Request::Discard(_, _, reply)
        | Request::Retention(reply) => fail(reply),
        Request::Close(Some(reply)) => fail(reply),
        Request::Close(None) => Box::new(|_| {}),
    }
}

/// Brings the in-memory view in step with a batch just applied to the tree, and wakes
/// the handlers whose queues changed.
///
/// Decision: at apply time, not once the batch is durable. A publish's event is then
/// leasable while the durability stage is still syncing it, which takes the sync (up to
/// milliseconds in strict mode) out of publish → handler start. Nothing durable can come
/// of it early: what a delivery does reaches the store only through a commit, in a later
/// group, and groups become durable in order, so a crash that loses the event loses the
/// commit with it and the delivery simply never happened. Every answer (the 202, a
/// commit's result) and every read outside a delivery still waits for durability. The
/// view never lags the store either, so building a request never sees it stale.
///
/// Decision: the registry is locked for one handler's run of effects at a time, and the
/// handlers are woken once it is unlocked. A group carries an effect for every delivery
/// it settles and every entry it enqueues; held for all of them, and for the wake-ups,
/// the lock kept leases on the async threads waiting, their threads parked on it. A
/// lease between two runs sees the queues as the runs before it left them: a state
/// that a smaller group would have left, as between two requests in `process`.
fn apply_to_view(shared: &Shared, effects: Vec<Effect>) {
    let mut woken: Vec<Arc<Notify>> = Vec::new();
    let mut effects = effects.into_iter().peekable();
    while let Some(first) = effects.next() {
        let name = first.handler().clone();
        let mut registry = shared.registry();
        let Some(handler) = registry.handlers.get_mut(&name) else {
            while effects.next_if(|next| next.handler() == &name).is_some() {}
            continue;
        };
        apply_effect(handler, first);
        while let Some(effect) = effects.next_if(|next| next.handler() == &name) {
            apply_effect(handler, effect);
        }
        if !woken
            .iter()
            .any(|notify| Arc::ptr_eq(notify, &handler.notify))
        {
            woken.push(handler.notify.clone());
        }
    }
    for notify in woken {
        notify.notify_waiters();
    }
}

fn apply_effect(handler: &mut crate::registry::Handler, effect: Effect) {
    match effect {
        Effect::Enqueue {
            seq, record, event, ..
        } => handler.queue.insert(seq, record, event),
        Effect::EnqueueAll { entries, .. } => {
            for (seq, record) in entries {
                handler.queue.insert(seq, record, None);
            }
        }
        Effect::Settle { seq, .. } => handler.queue.remove(seq),
        Effect::Retry {
            seq,
            not_before_ms,
            error,
            ..
        } => {
            handler.last_error = Some(error.clone());
            handler.queue.retry(seq, not_before_ms, error);
        }
        Effect::DeadLettered { reason, .. } => {
            handler.dead_letters += 1;
            handler.last_error = Some(reason);
        }
        Effect::DeadLettersRemoved { count, .. } => {
            handler.dead_letters = handler.dead_letters.saturating_sub(count);
        }
        Effect::Wake { .. } => {}
    }
}
