//! Retention of the log, and removal of a handler's records.
//!
//! Retention removes the oldest events while they are older than
//! [`crate::Retention::max_age`] or the log is over [`crate::Retention::max_bytes`], but
//! never an event that some queue or dead-letter index still holds: a held event is
//! skipped and the sweep goes on past it, so one stuck delivery does not stop the log
//! from being trimmed. Each sweep inspects at most [`MAX_RETENTION_SCAN`] entries and runs
//! as a group of its own, so nothing else in its batch can depend on what it deletes.

use choreo_core::HandlerName;

use crate::clock::millis;
use crate::config::MAX_RETENTION_SCAN;
use crate::records::{self, IdRecord, decode};
use crate::registry::Registry;
use crate::store::get;
use crate::{Error, Result};

impl crate::txn::Group<'_> {
    /// Removes what retention allows. Returns how many events.
    pub(crate) fn retention(&mut self, registry: &Registry) -> Result<usize> {
        let policy = self.config.retention;
        let cutoff_ms = policy
            .max_age
            .map(|age| self.now_ms.saturating_sub(millis(age)));
        let mut removed = 0;
        let log = self
            .tree
            .range(records::log_key(0)..=records::log_key(u64::MAX));
        for item in log.take(MAX_RETENTION_SCAN) {
            let (key, value) =
                item.map_err(|e| Error::storage("reading the log for retention", e))?;
            let stored = records::decode_event(&value)?;
            let too_old = cutoff_ms.is_some_and(|cutoff| stored.appended_ms < cutoff);
            let too_big = policy.max_bytes.is_some_and(|max| self.log_bytes > max);
            if !too_old && !too_big {
                break;
            }
            let seq = records::log_seq(&key)?;
            if self.held(registry, seq)? {
                continue;
            }
            let id_key = records::id_key(&stored.event.id, &stored.event.source);
            if let Some(bytes) = get(self.tree, &id_key, "reading the id index")?
                && decode::<IdRecord>(&bytes, "id index entry")?.seq == seq
            {
                self.batch.remove(id_key);
            }
            if let Some(cause) = &stored.event.causation_id {
                self.batch.remove(records::cause_key(cause, seq));
            }
            self.batch.remove(key);
            self.log_bytes = self.log_bytes.saturating_sub(value.len() as u64);
            self.mark_meta_dirty();
            removed += 1;
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
        for kind in [b'Q', b'X', b'S'] {
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
