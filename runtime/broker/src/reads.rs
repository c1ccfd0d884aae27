//! Reads served straight from the tree: the log, events by id and by cause (found
//! through the id index, `ids/`), handler state and dead-letters. They never go
//! through the writer.
//!
//! Nobody outside a delivery sees a write that a crash could still take back. Log
//! reads stop at the last durable seq. Other records have no seq to stop at, and sled
//! has no snapshots, so those reads go the other way round: read the tree, then wait
//! until every group that had started to apply by then is durable ([`once_durable`]).
//! What was read is then durable, whichever group wrote it. The wait is at most the
//! write-ahead log append (and sync) in progress, and nothing when the writer is idle.
//!
//! Reads inside a delivery ([`StateView::Latest`]) skip the wait: see its docs.
//!
//! [`once_durable`]: SledBroker::once_durable

use std::ops::ControlFlow;

use choreo_core::{EventId, HandlerName, RecordedEvent, Topic};

use crate::config::{MAX_READ_ROWS, MAX_READ_SCAN};
use crate::dlq::load;
use crate::ids;
use crate::log;
use crate::records;
use crate::store::get;
use crate::{
    DeadLetter, Error, EventHead, EventPage, EventQuery, HeadPage, Result, SledBroker, StateView,
};

impl SledBroker {
    /// Returns `read`, taken from the tree just before, once everything it may contain
    /// is durable.
    pub(crate) async fn once_durable<T>(&self, read: T) -> Result<T> {
        // SeqCst pairs with the writer's count taken before it applies a batch: if the
        // read saw a group's writes, this load sees that group counted.
        let started = self
            .shared
            .groups_applying
            .load(std::sync::atomic::Ordering::SeqCst);
        let mut durable = self.shared.groups_durable.subscribe();
        // The sender lives in `shared`, which `self` holds: it cannot be dropped.
        let _ = durable.wait_for(|&done| done >= started).await;
        match self.shared.failure() {
            Some(reason) => Err(Error::Failed { reason }),
            None => Ok(read),
        }
    }

    pub(crate) async fn as_seen_by<T>(&self, view: StateView, read: T) -> Result<T> {
        match view {
            StateView::Durable => self.once_durable(read).await,
            StateView::Latest => Ok(read),
        }
    }

    fn known(&self, handler: &HandlerName) -> Result<()> {
        self.shared.registry().get(handler).map(|_| ())
    }

    pub(crate) fn read_state(&self, handler: &HandlerName, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.known(handler)?;
        get(
            &self.tree,
            &records::state_key(handler, key),
            "reading state",
        )
    }

    pub(crate) fn scan_state(
        &self,
        handler: &HandlerName,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.known(handler)?;
        let base = records::handler_prefix(b'S', handler).len();
        let scan_prefix = records::state_key(handler, prefix);
        let start = match start_after {
            // The smallest key after `after` is `after` followed by a zero byte.
            Some(after) => {
                let mut key = records::state_key(handler, after);
                key.push(0);
                key.max(scan_prefix.clone())
            }
            None => scan_prefix.clone(),
        };
        self.tree
            .range(start..)
            .take_while(|item| {
                item.as_ref()
                    .map_or(true, |(k, _)| k.starts_with(&scan_prefix))
            })
            .take(limit.min(MAX_READ_ROWS))
            .map(|item| {
                let (key, value) = item.map_err(|e| Error::storage("scanning state", e))?;
                Ok((key[base..].to_vec(), value.to_vec()))
            })
            .collect()
    }

    pub(crate) fn read_log(&self, query: EventQuery) -> Result<EventPage> {
        let limit = query.limit.min(MAX_READ_ROWS);
        let mut events = Vec::new();
        let next_seq = self.scan_durable(query.from_seq, limit, |entry| {
            // Only the events that match are decoded in full.
            let wanted = match &query.pattern {
                Some(pattern) => pattern.matches(&stored_topic(entry.head()?.topic)?),
                None => true,
            };
            if wanted {
                events.push(entry.recorded()?);
            }
            Ok(events.len())
        })?;
        Ok(EventPage { events, next_seq })
    }

    /// The topic and source of durable events from `from_seq`, decoding nothing else.
    pub(crate) fn read_heads(&self, from_seq: u64, limit: usize) -> Result<HeadPage> {
        let limit = limit.min(MAX_READ_ROWS);
        let mut heads = Vec::new();
        let next_seq = self.scan_durable(from_seq, limit, |entry| {
            let head = entry.head()?;
            heads.push(EventHead {
                seq: entry.seq,
                topic: stored_topic(head.topic)?,
                source: head.source.to_owned(),
            });
            Ok(heads.len())
        })?;
        Ok(HeadPage { heads, next_seq })
    }

    /// Visits the durable log's entries from `from_seq` until `take` (which returns how
    /// many rows it has kept) reaches `limit`, or [`MAX_READ_SCAN`] entries were looked
    /// at. Returns where the next page starts.
    fn scan_durable(
        &self,
        from_seq: u64,
        limit: usize,
        mut take: impl FnMut(&log::Entry<'_>) -> Result<usize>,
    ) -> Result<u64> {
        let durable = *self.shared.durable_seq.borrow();
        if from_seq > durable || limit == 0 {
            return Ok(from_seq);
        }
        let mut next_seq = from_seq;
        let mut inspected = 0;
        let stopped = log::scan(&self.tree, from_seq, durable, |_, entry| {
            if inspected == MAX_READ_SCAN {
                return Ok(ControlFlow::Break(()));
            }
            inspected += 1;
            next_seq = entry.seq + 1;
            Ok(if take(&entry)? == limit {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            })
        })?;
        // Neither the limit nor the scan budget stopped it: the rest of the range holds
        // no entry.
        Ok(if stopped { next_seq } else { durable + 1 })
    }

    pub(crate) fn find_event(&self, id: &EventId) -> Result<Option<RecordedEvent>> {
        let durable = *self.shared.durable_seq.borrow();
        for seq in self.ids.candidates(ids::id_key(id))? {
            if seq > durable {
                break;
            }
            // A candidate may be another id with the same hash, or trimmed since.
            if let Some(found) = log::read(&self.tree, seq)?
                && found.event.id == *id
            {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    pub(crate) fn find_caused_by(&self, id: &EventId, limit: usize) -> Result<Vec<RecordedEvent>> {
        let durable = *self.shared.durable_seq.borrow();
        let mut events = Vec::new();
        for seq in self.ids.candidates(ids::cause_key(id))? {
            if seq > durable || events.len() >= limit.min(MAX_READ_ROWS) {
                break;
            }
            if let Some(found) = log::read(&self.tree, seq)?
                && found.event.causation_id.as_ref() == Some(id)
            {
                events.push(found);
            }
        }
        Ok(events)
    }

    pub(crate) fn list_dead_letters(
        &self,
        handler: &HandlerName,
        start_after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        self.known(handler)?;
        let prefix = records::handler_prefix(b'X', handler);
        let start = match start_after {
            Some(seq) => records::dlq_key(handler, seq.saturating_add(1)),
            None => prefix.clone(),
        };
        self.tree
            .range(start..)
            .take_while(|item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .take(limit.min(MAX_READ_ROWS))
            .map(|item| {
                let (key, value) = item.map_err(|e| Error::storage("listing dead-letters", e))?;
                load(&self.tree, handler, &key, &value)
            })
            .collect()
    }

    pub(crate) fn get_dead_letter(
        &self,
        handler: &HandlerName,
        seq: u64,
    ) -> Result<Option<DeadLetter>> {
        self.known(handler)?;
        let key = records::dlq_key(handler, seq);
        get(&self.tree, &key, "reading a dead-letter")?
            .map(|value| load(&self.tree, handler, &key, &value))
            .transpose()
    }
}

/// A topic as the log stores it: it was checked when published, so a bad one is damage.
fn stored_topic(topic: &str) -> Result<Topic> {
    Topic::new(topic).map_err(|e| Error::corrupt("a logged event's topic", e))
}
