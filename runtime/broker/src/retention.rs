//! Retention of the log, and removal of a handler's records.
//!
//! Retention removes the oldest events while they are older than
//! [`crate::Retention::max_age`] or the log is over [`crate::Retention::max_bytes`], but
//! never an event that some queue or dead-letter index still holds: a held event is
//! skipped and the sweep goes on past it, so one stuck delivery does not stop the log
//! from being trimmed. Each sweep inspects at most [`MAX_RETENTION_SCAN`] entries and runs
//! as a group of its own, so nothing else in its batch can depend on what it deletes.
//! The id index is trimmed after it, by whole run files (`ids/`): entries of removed
//! events left in a run are found stale when their event is read.

use choreo_core::HandlerName;

use crate::clock::millis;
use crate::config::MAX_RETENTION_SCAN;
use crate::log::{self, Chunk};
use crate::records;
use crate::registry::Registry;
use crate::{Error, Result};

impl crate::txn::Group<'_> {
    /// Removes what retention allows. Returns how many events.
    ///
    /// The log is stored in chunks (`log.rs`); an event is taken out of its chunk, which
    /// is rewritten under the same key with the events that stay, or removed once empty.
    /// The log's size moves by each event's exact footprint in its chunk, so the count
    /// stored in [`crate::records::Meta`] stays the sum of the `L` values.
    pub(crate) fn retention(&mut self, registry: &Registry) -> Result<usize> {
        let policy = self.config.retention;
        let cutoff_ms = policy
            .max_age
            .map(|age| self.now_ms.saturating_sub(millis(age)));
        let mut removed = 0;
        let mut inspected = 0;
        let log = self
            .tree
            .range(records::log_key(0)..=records::log_key(u64::MAX));
        'chunks: for item in log {
            let (key, value) =
                item.map_err(|e| Error::storage("reading the log for retention", e))?;
            let chunk = Chunk::parse(&key, &value)?;
            let too_old = cutoff_ms.is_some_and(|cutoff| chunk.appended_ms < cutoff);
            let mut kept = Vec::new();
            let mut done = false;
            let mut changed = false;
            for entry in chunk.entries() {
                let entry = entry?;
                let too_big = policy.max_bytes.is_some_and(|max| self.log_bytes > max);
                if done || inspected == MAX_RETENTION_SCAN || (!too_old && !too_big) {
                    done = true;
                    kept.push(entry);
                    continue;
                }
                inspected += 1;
                if self.held(registry, entry.seq)? {
                    kept.push(entry);
                    continue;
                }
                self.log_bytes = self.log_bytes.saturating_sub(entry.footprint(chunk.first));
                changed = true;
                removed += 1;
            }
            if changed {
                self.mark_meta_dirty();
                if kept.is_empty() {
                    self.log_bytes = self.log_bytes.saturating_sub(log::header_footprint());
                    self.batch.remove(key);
                } else {
                    self.batch.insert(key, chunk.rebuild(&kept));
                }
            }
            if done {
                break 'chunks;
            }
        }
        if removed > 0 {
            tracing::debug!(removed, "broker.retention removed events");
        }
        Ok(removed)
    }

    /// Whether any queue or dead-letter index holds the event.
    fn held(&self, registry: &Registry, seq: u64) -> Result<bool> {
        for (name, handler) in &registry.handlers {
            if handler.queue.contains(seq) {
                return Ok(true);
            }
            if handler.dead_letters > 0 {
                let key = records::dlq_key(name, seq);
                let held = self
                    .tree
                    .contains_key(key)
                    .map_err(|e| Error::storage("reading dead-letters for retention", e))?;
                if held {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// Deletes a handler: its subscription, queue, dead-letters and state.
    pub(crate) fn remove(&mut self, registry: &mut Registry, name: &HandlerName) -> Result<()> {
        registry.get(name)?;
        for kind in [b'Q', b'D', b'X', b'S'] {
            for key in self
                .tree
                .scan_prefix(records::handler_prefix(kind, name))
                .keys()
            {
                let key = key.map_err(|e| Error::storage("listing a handler's records", e))?;
                self.batch.remove(key);
            }
        }
        self.batch.remove(records::sub_key(name));
        registry.remove(name);
        Ok(())
    }
}
