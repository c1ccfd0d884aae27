//! One group commit under construction: the batch of writes, and the in-memory effects
//! the writer applies to the view with it, before the group is durable (`writer.rs`).
//!
//! Every request is checked before it adds anything to the batch, so a request refused
//! for its input leaves the group (and the store) as it was. Sequence numbers are given
//! out here, in request order; appending an event and enqueueing it for every matching
//! handler land in the same batch, which is what makes fan-out atomic with the append.
//! The group also collects the id index's entries of its events (`ids/`), added once
//! the batch is applied, and checks publishes against the dedup window (`dedup.rs`).
//! Dead-letters and replays live in `dlq.rs`, retention and handler removal in
//! `retention.rs`; both add to the same [`Group`].

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use choreo_core::{Event, HandlerName, Topic};

use crate::changes::Changes;
use crate::clock::millis;
use crate::dedup::{DedupWindow, dedup_key};
use crate::ids::{self, IndexEntry};
use crate::log::{self, ChunkBuilder};
use crate::overlay::Kv;
use crate::queued::QueuedChunks;
use crate::records::{self, EntryRecord, META_KEY, Meta, SubRecord, encode};
use crate::registry::{Registry, lock};
use crate::{
    Action, Committed, Config, DeadLetterCause, Outcome, Published, Result, StartPosition,
    Subscription,
};

/// A change to the in-memory view, applied with the group's writes, before they are
/// durable: the log is written in group order, so a group that depends on this one is
/// never durable without it.
#[derive(Debug)]
pub(crate) enum Effect {
    Enqueue {
        handler: HandlerName,
        seq: u64,
        record: EntryRecord,
        /// The event, for the queue to hold until it is leased (`queue.rs`).
        event: Option<Arc<Event>>,
    },
    /// A new subscription's catch-up: many entries for one handler.
    EnqueueAll {
        handler: HandlerName,
        entries: Vec<(u64, EntryRecord)>,
    },
    /// Acked or dead-lettered: leaves the queue.
    Settle {
        handler: HandlerName,
        seq: u64,
    },
    Retry {
        handler: HandlerName,
        seq: u64,
        not_before_ms: u64,
        error: String,
    },
    DeadLettered {
        handler: HandlerName,
        reason: String,
    },
    DeadLettersRemoved {
        handler: HandlerName,
        count: usize,
    },
    /// Something changed that a waiting lease should look at (resume).
    Wake {
        handler: HandlerName,
    },
}

impl Effect {
    pub(crate) fn handler(&self) -> &HandlerName {
        match self {
            Effect::Enqueue { handler, .. }
            | Effect::EnqueueAll { handler, .. }
            | Effect::Settle { handler, .. }
            | Effect::Retry { handler, .. }
            | Effect::DeadLettered { handler, .. }
            | Effect::DeadLettersRemoved { handler, .. }
            | Effect::Wake { handler } => handler,
        }
    }
}

/// An event appended earlier in this group: not in the tree yet, but a catch-up that
/// runs later in the group must see it.
#[derive(Debug)]
struct Appended {
    seq: u64,
    topic: Topic,
    /// The event's `key`; its ordering key is the topic when there is none.
    key: Option<String>,
}

/// A group built: what the writer applies and hands on.
pub(crate) struct Finished {
    pub(crate) changes: Changes,
    pub(crate) effects: Vec<Effect>,
    pub(crate) next_seq: u64,
    pub(crate) log_bytes: u64,
    /// The id index's entries for the group's events.
    pub(crate) index: Vec<IndexEntry>,
}

pub(crate) struct Group<'a> {
    pub(crate) tree: &'a Kv,
    pub(crate) config: &'a Config,
    pub(crate) now_ms: u64,
    pub(crate) batch: Changes,
    pub(crate) effects: Vec<Effect>,
    next_seq: u64,
    pub(crate) log_bytes: u64,
    meta_dirty: bool,
    appended: Vec<Appended>,
    dedup: &'a mut DedupWindow,
    /// The id index's entries for this group's events.
    index: Vec<IndexEntry>,
    /// The log chunk being filled with this group's events (`log.rs`).
    chunk: Option<ChunkBuilder>,
    /// Reused for encoding each event before it is copied into the chunk.
    scratch: Vec<u8>,
    /// The queue chunks this group changes (`queued.rs`).
    queued: QueuedChunks,
}

impl<'a> Group<'a> {
    pub(crate) fn new(
        tree: &'a Kv,
        config: &'a Config,
        now_ms: u64,
        next_seq: u64,
        log_bytes: u64,
        dedup: &'a mut DedupWindow,
    ) -> Self {
        Group {
            tree,
            config,
            now_ms,
            batch: Changes::default(),
            effects: Vec::new(),
            next_seq,
            log_bytes,
            meta_dirty: false,
            appended: Vec::new(),
            dedup,
            index: Vec::new(),
            chunk: None,
            scratch: Vec::new(),
            queued: QueuedChunks::default(),
        }
    }

    /// The batch (with the counters written into it), the effects, and the new counters.
    pub(crate) fn finish(mut self) -> Finished {
        self.seal_chunk();
        std::mem::take(&mut self.queued).write(&mut self.batch);
        if self.meta_dirty {
            let meta = Meta {
                format: records::FORMAT,
                last_seq: self.next_seq - 1,
                log_bytes: self.log_bytes,
            };
            self.batch.insert(META_KEY, encode(&meta));
        }
        Finished {
            changes: self.batch,
            effects: self.effects,
            next_seq: self.next_seq,
            log_bytes: self.log_bytes,
            index: self.index,
        }
    }

    pub(crate) fn mark_meta_dirty(&mut self) {
        self.meta_dirty = true;
    }

    /// Adds `seq` to the handler's stored queue; the caller adds the in-memory effect.
    pub(crate) fn enqueue(&mut self, handler: &HandlerName, seq: u64) -> Result<()> {
        self.queued.set(self.tree, handler, seq, true)
    }

    /// Takes `seq` out of the handler's stored queue, with its delivery state if stored.
    pub(crate) fn unqueue(
        &mut self,
        handler: &HandlerName,
        seq: u64,
        state_stored: bool,
    ) -> Result<()> {
        if state_stored {
            self.batch.remove(records::state_record_key(handler, seq));
        }
        self.queued.set(self.tree, handler, seq, false)
    }

    /// Puts the chunk being filled into the batch.
    fn seal_chunk(&mut self) {
        if let Some(chunk) = self.chunk.take() {
            let (key, value) = chunk.finish();
            self.log_bytes += value.len() as u64;
            self.batch.insert(&key, value);
        }
    }

    /// Adds the event at `seq` to the group's log chunk, starting a new chunk when the
    /// current one is full.
    fn log(&mut self, seq: u64, event: &Event) {
        if self
            .chunk
            .as_ref()
            .is_some_and(|c| c.is_full() || c.next_seq() != seq)
        {
            self.seal_chunk();
        }
        self.scratch.clear();
        let scratch = std::mem::take(&mut self.scratch);
        self.scratch = postcard::to_extend(event, scratch)
            .expect("events hold only types postcard can encode");
        let now_ms = self.now_ms;
        self.chunk
            .get_or_insert_with(|| ChunkBuilder::new(seq, now_ms))
            .push(seq, &self.scratch);
    }

    /// Appends each event. With `dedup`, an event whose (`source`, `id`) was published
    /// within the dedup window is reported as the earlier copy instead, and the others
    /// are kept in the window; without it (ids generated just now), the window is not
    /// consulted. The registry is locked only to look up who subscribes to each topic,
    /// so a large batch does not hold leases back while it is encoded.
    pub(crate) fn publish(
        &mut self,
        registry: &Mutex<Registry>,
        events: Vec<Event>,
        dedup: bool,
    ) -> Result<Vec<Published>> {
        let subscribers: Vec<BTreeSet<HandlerName>> = {
            let registry = lock(registry);
            events.iter().map(|e| registry.matching(&e.topic)).collect()
        };
        events
            .into_iter()
            .zip(subscribers)
            .map(|(event, subscribers)| {
                if !dedup {
                    return self.append(subscribers, event);
                }
                let key = dedup_key(&event.source, event.id.as_str());
                if let Some(seq) = self.dedup.get(key, self.now_ms) {
                    return Ok(duplicate(event, seq));
                }
                let published = self.append(subscribers, event)?;
                self.dedup.insert(key, published.seq, self.now_ms);
                Ok(published)
            })
            .collect()
    }

    /// Appends one event and enqueues it for each of its `subscribers` (the handlers
    /// whose patterns match its topic, [`Registry::matching`]).
    pub(crate) fn append(
        &mut self,
        subscribers: BTreeSet<HandlerName>,
        event: Event,
    ) -> Result<Published> {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.meta_dirty = true;
        ids::entries_of(&event, seq, &mut self.index);
        self.log(seq, &event);
        let published = Published {
            seq,
            id: event.id.clone(),
            duplicate: false,
        };
        self.appended.push(Appended {
            seq,
            key: event.key.clone(),
            topic: event.topic.clone(),
        });
        if subscribers.is_empty() {
            return Ok(published);
        }
        // One copy, shared by every queue it goes to.
        let event = Arc::new(event);
        for handler in subscribers {
            self.enqueue(&handler, seq)?;
            self.effects.push(Effect::Enqueue {
                handler,
                seq,
                record: EntryRecord::new(event.ordering_key()),
                event: Some(event.clone()),
            });
        }
        Ok(published)
    }

    /// Commits each outcome. The registry is locked for one outcome's queue bookkeeping
    /// at a time: what takes longer (the log, the stored queues, the state writes) is
    /// added to the batch with it unlocked, so leases on the async threads wait for
    /// neither. Only the writer changes subscriptions, so the subscribers looked up for
    /// a publish still hold when it is appended.
    pub(crate) fn commit(
        &mut self,
        registry: &Mutex<Registry>,
        outcomes: Vec<Outcome>,
    ) -> Result<Vec<Committed>> {
        {
            let registry = lock(registry);
            for outcome in &outcomes {
                registry.get(&outcome.token.handler)?;
            }
        }
        let mut committed = Vec::with_capacity(outcomes.len());
        for Outcome { token, action } in outcomes {
            let mut locked = lock(registry);
            let handler = locked.get_mut(&token.handler)?;
            let Some(attempt) = handler.queue.begin_commit(token.seq, token.lease) else {
                committed.push(Committed::LeaseLost);
                continue;
            };
            let retry = handler.sub.retry;
            let state_stored = handler.queue.state_stored(token.seq);
            let name = token.handler;
            committed.push(match action {
                Action::Ack { publishes, state } => {
                    let subscribers: Vec<_> = publishes
                        .iter()
                        .map(|e| locked.matching(&e.topic))
                        .collect();
                    drop(locked);
                    self.unqueue(&name, token.seq, state_stored)?;
                    for write in state {
                        let key = records::state_key(&name, &write.key);
                        match write.value {
                            Some(value) => self.batch.insert(key, value),
                            None => self.batch.remove(key),
                        }
                    }
                    self.effects.push(Effect::Settle {
                        handler: name,
                        seq: token.seq,
                    });
                    let published = publishes
                        .into_iter()
                        .zip(subscribers)
                        .map(|(event, subscribers)| self.append(subscribers, event))
                        .collect::<Result<_>>()?;
                    Committed::Acked { published }
                }
                Action::Retry { reason } if attempt < retry.max_attempts => {
                    let delay = retry.backoff(attempt, rand::random::<f64>());
                    let not_before_ms = self.now_ms.saturating_add(millis(delay));
                    let error = truncate(reason);
                    let mut record = handler
                        .queue
                        .record(token.seq)
                        .expect("an entry being committed is in the queue");
                    record.not_before_ms = not_before_ms;
                    record.last_error = Some(error.clone());
                    handler.queue.mark_state_stored(token.seq);
                    drop(locked);
                    self.batch.insert(
                        records::state_record_key(&name, token.seq),
                        encode(&record.state()),
                    );
                    self.effects.push(Effect::Retry {
                        handler: name,
                        seq: token.seq,
                        not_before_ms,
                        error,
                    });
                    Committed::Retrying {
                        attempt,
                        not_before: crate::clock::timestamp(not_before_ms),
                    }
                }
                Action::Retry { reason } => {
                    let cause = DeadLetterCause::RetriesExhausted;
                    let dead_letter =
                        self.dead_letter(&locked, &name, token.seq, attempt, cause, reason)?;
                    Committed::DeadLettered { dead_letter }
                }
                Action::DeadLetter { reason } => {
                    let cause = DeadLetterCause::Rejected;
                    let dead_letter =
                        self.dead_letter(&locked, &name, token.seq, attempt, cause, reason)?;
                    Committed::DeadLettered { dead_letter }
                }
            });
        }
        Ok(committed)
    }

    pub(crate) fn subscribe(&mut self, registry: &mut Registry, sub: Subscription) -> Result<()> {
        let name = sub.handler;
        let record = SubRecord {
            patterns: sub.patterns,
            retry: sub.retry,
            concurrency: u32::try_from(sub.concurrency).expect("checked against MAX_CONCURRENCY"),
            paused: false,
        };
        let is_new = registry.upsert(&name, record);
        let stored = &registry.get(&name)?.sub;
        self.batch.insert(records::sub_key(&name), encode(stored));
        let from_ms = match sub.start {
            _ if !is_new => return Ok(()),
            StartPosition::Next => return Ok(()),
            StartPosition::Earliest => 0,
            StartPosition::Time(at) => crate::clock::timestamp_ms(at),
        };
        let patterns = stored.patterns.clone();
        let matches = |topic: &Topic| patterns.iter().any(|p| p.matches(topic));
        let mut found = Vec::new();
        log::scan(self.tree, 0, u64::MAX, |appended_ms, entry| {
            if appended_ms >= from_ms {
                let event = entry.decode()?;
                if matches(&event.topic) {
                    found.push((entry.seq, EntryRecord::new(event.ordering_key())));
                }
            }
            Ok(std::ops::ControlFlow::Continue(()))
        })?;
        for event in &self.appended {
            if self.now_ms >= from_ms && matches(&event.topic) {
                let key = event.key.as_deref().unwrap_or(event.topic.as_str());
                found.push((event.seq, EntryRecord::new(key)));
            }
        }
        for (seq, _) in &found {
            self.queued.set(self.tree, &name, *seq, true)?;
        }
        // One effect for the whole catch-up, not one per event.
        self.effects.push(Effect::EnqueueAll {
            handler: name,
            entries: found,
        });
        Ok(())
    }

    pub(crate) fn set_paused(
        &mut self,
        registry: &mut Registry,
        name: &HandlerName,
        paused: bool,
    ) -> Result<()> {
        let handler = registry.get_mut(name)?;
        handler.sub.paused = paused;
        self.batch
            .insert(records::sub_key(name), encode(&handler.sub));
        self.effects.push(Effect::Wake {
            handler: name.clone(),
        });
        Ok(())
    }

    /// Persists the current lease of entries leased since the last group, unless a
    /// commit already owns their record (then its batch, or an earlier one, decides what
    /// is stored) or they are gone.
    pub(crate) fn record_leases(
        &mut self,
        registry: &mut Registry,
        name: &HandlerName,
        seqs: &[u64],
    ) {
        let Ok(handler) = registry.get_mut(name) else {
            return;
        };
        for &seq in seqs {
            if !handler.queue.is_settled(seq) {
                continue;
            }
            if let Some(record) = handler.queue.record(seq) {
                self.batch.insert(
                    records::state_record_key(name, seq),
                    encode(&record.state()),
                );
                handler.queue.mark_state_stored(seq);
            }
        }
    }
}

fn duplicate(event: Event, seq: u64) -> Published {
    Published {
        seq,
        id: event.id,
        duplicate: true,
    }
}

/// Cuts a guest-supplied reason to [`crate::config::MAX_REASON_BYTES`].
pub(crate) fn truncate(mut reason: String) -> String {
    let max = crate::config::MAX_REASON_BYTES;
    if reason.len() > max {
        let mut end = max;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason.push('…');
    }
    reason
}
