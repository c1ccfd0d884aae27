//! One handler's queue in memory: which entries may be leased now.
//!
//! Pure bookkeeping, no I/O: the durable copy of every entry lives in the store and the
//! writer keeps both in step. Entries are grouped by ordering key. A key is *busy* while
//! one of its entries is leased or being committed; otherwise its lowest seq (its *head*)
//! is the only entry of that key that may be leased, and only once its retry backoff has
//! passed. This gives per-key order (a retrying head blocks the events behind it) while
//! different keys run side by side up to the handler's concurrency.
//!
//! An entry enqueued by a publish may also hold its event, shared with the other
//! queues it went to, so that leasing it need not read and decode it from the log. Only
//! a short queue holds events ([`CACHED_EVENT_BYTES`] per queue): a queue that backs up
//! holds records only, and its leases read the log as before.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use choreo_core::Event;

use crate::records::{EntryRecord, LeaseRecord};

/// Bytes of events ([`Event::size`]) one queue holds for its next leases.
///
/// Decision: a budget in bytes per queue, not a count: a queue of small events holds
/// a few thousand, which covers a handler keeping up with its publishers; a queue that
/// falls behind stops holding new ones, so its memory stays that of its records.
pub(crate) const CACHED_EVENT_BYTES: usize = 1 << 20;

#[derive(Debug)]
struct Entry {
    key: Arc<str>,
    attempt: u32,
    not_before_ms: u64,
    lease: Option<LeaseRecord>,
    committing: bool,
    last_error: Option<String>,
    /// A `D` record holds this entry's state (set by the writer as it writes one).
    state_stored: bool,
    /// The event, held for the entry's first lease.
    event: Option<Arc<Event>>,
}

#[derive(Debug, Default)]
struct KeyQueue {
    seqs: BTreeSet<u64>,
    /// Entries of this key leased or being committed.
    busy: usize,
}

/// An entry just leased: its seq, the attempt it starts and its lease. (Its record is
/// written later, by the writer: see `Shared::note_leased`.)
#[derive(Debug)]
pub(crate) struct Leased {
    pub(crate) seq: u64,
    pub(crate) attempt: u32,
    pub(crate) lease: LeaseRecord,
    /// The event, when the queue held it; else it is read from the log.
    pub(crate) event: Option<Arc<Event>>,
}

/// What a lease attempt found.
#[derive(Debug, Default)]
pub(crate) struct LeaseScan {
    pub(crate) leased: Vec<Leased>,
    /// When something may become leasable without a new event or commit: the earliest
    /// backoff end or lease expiry.
    pub(crate) wake_at_ms: Option<u64>,
}

#[derive(Debug, Default)]
pub(crate) struct HandlerQueue {
    entries: BTreeMap<u64, Entry>,
    keys: HashMap<Arc<str>, KeyQueue>,
    /// The lowest seq of every key.
    heads: BTreeSet<u64>,
    /// Leased entries and their expiry.
    leased: BTreeMap<u64, u64>,
    committing: usize,
    /// Bytes of the events the entries hold.
    cached_bytes: usize,
}

impl HandlerQueue {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn contains(&self, seq: u64) -> bool {
        self.entries.contains_key(&seq)
    }

    pub(crate) fn oldest(&self) -> Option<u64> {
        self.entries.keys().next().copied()
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.leased.len() + self.committing
    }

    /// Adds an entry (a new event, a replay, or one recovered from the store), holding
    /// `event` for its lease while the queue's budget allows.
    pub(crate) fn insert(&mut self, seq: u64, record: EntryRecord, event: Option<Arc<Event>>) {
        let event = event.filter(|event| {
            let fits = self.cached_bytes + event.size() <= CACHED_EVENT_BYTES;
            if fits {
                self.cached_bytes += event.size();
            }
            fits
        });
        let key: Arc<str> = match self.keys.get_key_value(record.key.as_str()) {
            Some((key, _)) => key.clone(),
            None => Arc::from(record.key.as_str()),
        };
        let queue = self.keys.entry(key.clone()).or_default();
        if let Some(&head) = queue.seqs.first() {
            if seq < head {
                self.heads.remove(&head);
                self.heads.insert(seq);
            }
        } else {
            self.heads.insert(seq);
        }
        queue.seqs.insert(seq);
        if let Some(lease) = record.lease {
            queue.busy += 1;
            self.leased.insert(seq, lease.expires_ms);
        }
        let entry = Entry {
            key,
            attempt: record.attempt,
            not_before_ms: record.not_before_ms,
            lease: record.lease,
            committing: false,
            last_error: record.last_error,
            state_stored: record.state_stored,
            event,
        };
        if let Some(old) = self.entries.insert(seq, entry) {
            debug_assert!(false, "seq {seq} enqueued twice");
            if let Some(event) = self.entries.insert(seq, old).and_then(|new| new.event) {
                self.cached_bytes -= event.size();
            }
        }
    }

    /// Removes an entry (acked, dead-lettered or dropped).
    pub(crate) fn remove(&mut self, seq: u64) {
        let Some(entry) = self.entries.remove(&seq) else {
            return;
        };
        if let Some(event) = &entry.event {
            self.cached_bytes -= event.size();
        }
        let queue = self
            .keys
            .get_mut(&entry.key)
            .expect("every entry's key has a key queue");
        if entry.lease.is_some() {
            self.leased.remove(&seq);
            queue.busy -= 1;
        }
        if entry.committing {
            self.committing -= 1;
            queue.busy -= 1;
        }
        queue.seqs.remove(&seq);
        if self.heads.remove(&seq)
            && let Some(&next) = queue.seqs.first()
        {
            self.heads.insert(next);
        }
        if queue.seqs.is_empty() {
            self.keys.remove(&entry.key);
        }
    }

    /// Leases up to `max` entries at `now_ms`, keeping at most `concurrency` in flight.
    pub(crate) fn lease(
        &mut self,
        now_ms: u64,
        max: usize,
        concurrency: usize,
        lease_ms: u64,
        mut next_id: impl FnMut() -> u64,
    ) -> LeaseScan {
        self.reclaim_expired(now_ms);
        let room = concurrency.saturating_sub(self.in_flight()).min(max);
        let mut scan = LeaseScan {
            wake_at_ms: self.leased.values().min().copied(),
            ..LeaseScan::default()
        };
        if room == 0 {
            return scan;
        }
        let mut picked = Vec::new();
        for &seq in &self.heads {
            let entry = &self.entries[&seq];
            if self.keys[&entry.key].busy > 0 {
                continue;
            }
            if entry.not_before_ms > now_ms {
                scan.wake_at_ms = Some(
                    scan.wake_at_ms
                        .map_or(entry.not_before_ms, |w| w.min(entry.not_before_ms)),
                );
                continue;
            }
            picked.push(seq);
            if picked.len() == room {
                break;
            }
        }
        for seq in picked {
            let lease = LeaseRecord {
                id: next_id(),
                expires_ms: now_ms.saturating_add(lease_ms),
            };
            let entry = self.entries.get_mut(&seq).expect("picked from heads");
            entry.attempt += 1;
            entry.lease = Some(lease);
            let event = entry.event.take();
            if let Some(event) = &event {
                self.cached_bytes -= event.size();
            }
            self.keys
                .get_mut(&entry.key)
                .expect("every entry's key has a key queue")
                .busy += 1;
            self.leased.insert(seq, lease.expires_ms);
            scan.leased.push(Leased {
                seq,
                attempt: entry.attempt,
                lease,
                event,
            });
        }
        scan
    }

    /// Ends expired leases: their entries become leasable again (the attempt counts).
    fn reclaim_expired(&mut self, now_ms: u64) {
        let expired: Vec<u64> = self
            .leased
            .iter()
            .filter(|(_, expires)| **expires <= now_ms)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            self.leased.remove(&seq);
            let entry = self.entries.get_mut(&seq).expect("leased entries exist");
            entry.lease = None;
            self.keys
                .get_mut(&entry.key)
                .expect("every entry's key has a key queue")
                .busy -= 1;
        }
    }

    /// Starts settling the delivery `(seq, lease_id)`: it stays in flight, and no lease
    /// can take it, until [`Self::remove`] or [`Self::retry`]. `None` when the lease is
    /// not current (expired and taken again, or the entry is gone); else the attempt
    /// that is ending.
    pub(crate) fn begin_commit(&mut self, seq: u64, lease_id: u64) -> Option<u32> {
        let entry = self.entries.get_mut(&seq)?;
        if entry.committing || entry.lease.map(|l| l.id) != Some(lease_id) {
            return None;
        }
        entry.lease = None;
        entry.committing = true;
        self.leased.remove(&seq);
        self.committing += 1;
        Some(entry.attempt)
    }

    /// Ends a commit that retries: the entry waits until `not_before_ms`.
    pub(crate) fn retry(&mut self, seq: u64, not_before_ms: u64, error: String) {
        let Some(entry) = self.entries.get_mut(&seq) else {
            return;
        };
        if entry.committing {
            entry.committing = false;
            self.committing -= 1;
            self.keys
                .get_mut(&entry.key)
                .expect("every entry's key has a key queue")
                .busy -= 1;
        }
        entry.not_before_ms = not_before_ms;
        entry.last_error = Some(error);
    }

    /// The entry's record as it should be stored.
    pub(crate) fn record(&self, seq: u64) -> Option<EntryRecord> {
        self.entries.get(&seq).map(|entry| EntryRecord {
            key: entry.key.to_string(),
            attempt: entry.attempt,
            not_before_ms: entry.not_before_ms,
            lease: entry.lease,
            last_error: entry.last_error.clone(),
            state_stored: entry.state_stored,
        })
    }

    /// Whether a `D` record holds the entry's state.
    pub(crate) fn state_stored(&self, seq: u64) -> bool {
        self.entries.get(&seq).is_some_and(|e| e.state_stored)
    }

    /// Notes that the writer has put a `D` record for the entry in its batch.
    pub(crate) fn mark_state_stored(&mut self, seq: u64) {
        if let Some(entry) = self.entries.get_mut(&seq) {
            entry.state_stored = true;
        }
    }

    /// Whether the entry may be persisted as it is now (not in the middle of a commit,
    /// whose batch owns its record).
    pub(crate) fn is_settled(&self, seq: u64) -> bool {
        self.entries.get(&seq).is_some_and(|e| !e.committing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(entries: &[(u64, &str)]) -> HandlerQueue {
        let mut q = HandlerQueue::default();
        for (seq, key) in entries {
            q.insert(*seq, EntryRecord::new(key), None);
        }
        q
    }

    fn lease(q: &mut HandlerQueue, now: u64, max: usize) -> Vec<u64> {
        let mut id = 0;
        q.lease(now, max, 8, 1000, || {
            id += 1;
            id
        })
        .leased
        .iter()
        .map(|l| l.seq)
        .collect()
    }

    fn event_of(bytes: usize) -> Arc<Event> {
        let topic = choreo_core::Topic::new("orders.created").unwrap();
        Arc::new(Event::new(topic, "test://queue", vec![b'x'; bytes]))
    }

    #[test]
    fn a_held_event_goes_to_the_first_lease_only() {
        let mut q = HandlerQueue::default();
        let event = event_of(10);
        q.insert(1, EntryRecord::new("a"), Some(event.clone()));
        let first = q.lease(0, 1, 8, 1000, || 1);
        let held = first.leased[0]
            .event
            .as_ref()
            .expect("the queue held the event");
        assert!(Arc::ptr_eq(held, &event));
        assert_eq!(
            q.cached_bytes, 0,
            "a lease takes the event out of the budget"
        );
        // The lease expires: the redelivery reads the log.
        let again = q.lease(1000, 1, 8, 1000, || 2);
        assert_eq!(again.leased[0].seq, 1);
        assert!(again.leased[0].event.is_none());
    }

    #[test]
    fn a_queue_holds_events_only_within_its_budget() {
        let mut q = HandlerQueue::default();
        let big = event_of(CACHED_EVENT_BYTES / 2);
        q.insert(1, EntryRecord::new("a"), Some(big.clone()));
        q.insert(2, EntryRecord::new("b"), Some(big.clone()));
        assert!(q.entries[&1].event.is_some());
        assert!(
            q.entries[&2].event.is_none(),
            "past the budget: records only"
        );
        assert_eq!(q.cached_bytes, big.size());
        // Settling frees the budget for the next event.
        q.remove(1);
        assert_eq!(q.cached_bytes, 0);
        q.insert(3, EntryRecord::new("c"), Some(big.clone()));
        assert!(q.entries[&3].event.is_some());
        let leased = q.lease(0, 8, 8, 1000, || 7).leased;
        let held: Vec<(u64, bool)> = leased.iter().map(|l| (l.seq, l.event.is_some())).collect();
        assert_eq!(held, [(2, false), (3, true)]);
        assert_eq!(q.cached_bytes, 0);
    }

    #[test]
    fn one_entry_per_key_in_flight_in_seq_order() {
        let mut q = queue(&[(1, "a"), (2, "a"), (3, "b"), (4, "a")]);
        assert_eq!(lease(&mut q, 0, 10), vec![1, 3]);
        assert_eq!(lease(&mut q, 0, 10), Vec::<u64>::new());
        q.begin_commit(1, 1).unwrap();
        q.remove(1);
        assert_eq!(lease(&mut q, 0, 10), vec![2]);
    }

    #[test]
    fn a_retrying_head_blocks_its_key_until_backoff_ends() {
        let mut q = queue(&[(1, "a"), (2, "a"), (3, "b")]);
        assert_eq!(lease(&mut q, 0, 1), vec![1]);
        let lease_id = q.entries[&1].lease.unwrap().id;
        q.begin_commit(1, lease_id).unwrap();
        q.retry(1, 500, "boom".into());
        let scan = q.lease(10, 10, 8, 1000, || 9);
        assert_eq!(scan.leased.iter().map(|l| l.seq).collect::<Vec<_>>(), [3]);
        assert_eq!(scan.wake_at_ms, Some(500));
        assert_eq!(lease(&mut q, 500, 10), vec![1]);
        assert_eq!(q.entries[&1].attempt, 2);
    }

    #[test]
    fn expired_leases_come_back_and_stale_tokens_are_refused() {
        let mut q = queue(&[(1, "a")]);
        assert_eq!(lease(&mut q, 0, 1), vec![1]);
        assert_eq!(lease(&mut q, 999, 1), Vec::<u64>::new());
        let scan = q.lease(1000, 1, 8, 1000, || 42);
        assert_eq!(scan.leased.len(), 1);
        assert!(q.begin_commit(1, 1).is_none(), "the first lease is stale");
        assert!(q.begin_commit(1, 42).is_some());
        assert!(q.begin_commit(1, 42).is_none(), "a commit is in progress");
    }

    #[test]
    fn concurrency_bounds_leases_across_keys() {
        let mut q = queue(&[(1, "a"), (2, "b"), (3, "c")]);
        let mut id = 0;
        let scan = q.lease(0, 10, 2, 1000, || {
            id += 1;
            id
        });
        assert_eq!(scan.leased.len(), 2);
        assert_eq!(q.in_flight(), 2);
    }

    #[test]
    fn a_replayed_older_event_waits_for_its_key_and_goes_first() {
        let mut q = queue(&[(5, "a"), (6, "a")]);
        assert_eq!(lease(&mut q, 0, 10), vec![5]);
        q.insert(2, EntryRecord::new("a"), None);
        assert_eq!(lease(&mut q, 0, 10), Vec::<u64>::new(), "key a is busy");
        q.begin_commit(5, 1).unwrap();
        q.remove(5);
        assert_eq!(lease(&mut q, 0, 10), vec![2]);
        assert_eq!(q.oldest(), Some(2));
        assert_eq!(q.len(), 2);
    }
}
