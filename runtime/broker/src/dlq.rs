//! Dead-letters: giving up on an event for one handler, and replaying or discarding it.
//!
//! A dead-lettered event leaves the handler's queue and is recorded twice, in the same
//! batch: as an `X` record in the handler's dead-letter index (which keeps the original
//! event retained and replayable) and as a new event on `$dlq.<handler>`, published like
//! any other so that a handler subscribed to `$dlq.>` can react to it. The dead-letter
//! event is a copy of the original with a new id, caused by the original, and these
//! extension attributes: `dlqhandler`, `dlqcause` (`rejected` or `retries-exhausted`),
//! `dlqreason`, `dlqattempts`, `dlqseq`, `dlqtopic`.

use std::sync::Arc;

use choreo_core::{Event, EventId, HandlerName, RecordedEvent, Topic};

use crate::clock::timestamp;
use crate::overlay::Kv;
use crate::records::{self, DeadLetterRecord, EntryRecord, decode, encode};
use crate::registry::Registry;
use crate::store::get;
use crate::txn::{Effect, Group, truncate};
use crate::types::describe;
use crate::{DeadLetter, DeadLetterCause, Error, Published, Result, Selection};

impl Group<'_> {
    /// Moves the entry `seq` (being committed) from the handler's queue to its
    /// dead-letters, and publishes the dead-letter event.
    pub(crate) fn dead_letter(
        &mut self,
        registry: &Registry,
        handler: &HandlerName,
        seq: u64,
        attempts: u32,
        cause: DeadLetterCause,
        last_error: String,
    ) -> Result<Published> {
        let last_error = truncate(last_error);
        let reason = truncate(describe(cause, attempts, &last_error));
        let original = read_event(self.tree, seq)?;
        let event = dead_letter_event(handler, &original, cause, &reason, attempts, self.now_ms);
        let published = self.append(registry.matching(&event.topic), event)?;
        let record = DeadLetterRecord {
            cause,
            last_error,
            attempts,
            at_ms: self.now_ms,
            dlq_seq: published.seq,
        };
        let state_stored = registry.get(handler)?.queue.state_stored(seq);
        self.unqueue(handler, seq, state_stored)?;
        self.batch
            .insert(records::dlq_key(handler, seq), encode(&record));
        self.effects.push(Effect::Settle {
            handler: handler.clone(),
            seq,
        });
        self.effects.push(Effect::DeadLettered {
            handler: handler.clone(),
            reason,
        });
        Ok(published)
    }

    pub(crate) fn replay(
        &mut self,
        registry: &Registry,
        handler: &HandlerName,
        which: Selection,
    ) -> Result<usize> {
        let seqs = self.selected(registry, handler, which)?;
        for &seq in &seqs {
            let event = read_event(self.tree, seq)?;
            let record = EntryRecord::new(event.event.ordering_key());
            self.enqueue(handler, seq)?;
            self.batch.remove(records::dlq_key(handler, seq));
            self.effects.push(Effect::Enqueue {
                handler: handler.clone(),
                seq,
                record,
                event: Some(Arc::new(event.event)),
            });
        }
        self.effects.push(Effect::DeadLettersRemoved {
            handler: handler.clone(),
            count: seqs.len(),
        });
        Ok(seqs.len())
    }

    pub(crate) fn discard(
        &mut self,
        registry: &Registry,
        handler: &HandlerName,
        which: Selection,
    ) -> Result<usize> {
        let seqs = self.selected(registry, handler, which)?;
        for &seq in &seqs {
            self.batch.remove(records::dlq_key(handler, seq));
        }
        self.effects.push(Effect::DeadLettersRemoved {
            handler: handler.clone(),
            count: seqs.len(),
        });
        Ok(seqs.len())
    }

    /// The seqs of the dead-letters `which` names; an input error if one is missing.
    fn selected(
        &self,
        registry: &Registry,
        handler: &HandlerName,
        which: Selection,
    ) -> Result<Vec<u64>> {
        registry.get(handler)?;
        match which {
            Selection::One(seq) => {
                let key = records::dlq_key(handler, seq);
                match get(self.tree, &key, "reading a dead-letter")? {
                    Some(_) => Ok(vec![seq]),
                    None => Err(Error::DeadLetterNotFound {
                        handler: handler.clone(),
                        seq,
                    }),
                }
            }
            Selection::All => self
                .tree
                .scan_prefix(records::handler_prefix(b'X', handler))
                .keys()
                .map(|key| {
                    let key = key.map_err(|e| Error::storage("listing dead-letters", e))?;
                    Ok(records::handler_seq(&key)?.1)
                })
                .collect(),
        }
    }
}

fn dead_letter_event(
    handler: &HandlerName,
    original: &RecordedEvent,
    cause: DeadLetterCause,
    reason: &str,
    attempts: u32,
    now_ms: u64,
) -> Event {
    let mut event = original.event.clone();
    event.id = EventId::generate();
    event.topic = Topic::dead_letter(handler);
    event.time = timestamp(now_ms);
    event.causation_id = Some(original.event.id.clone());
    event.key = None;
    let extensions = [
        ("dlqhandler", handler.as_str().to_owned()),
        ("dlqcause", cause.label().to_owned()),
        ("dlqreason", reason.to_owned()),
        ("dlqattempts", attempts.to_string()),
        ("dlqseq", original.seq.to_string()),
        ("dlqtopic", original.event.topic.as_str().to_owned()),
    ];
    for (name, value) in extensions {
        event.extensions.insert(name.to_owned(), value);
    }
    event
}

/// Reads one event from the log; the caller holds it (a queue or dead-letter does), so
/// it must be there.
pub(crate) fn read_event(tree: &Kv, seq: u64) -> Result<RecordedEvent> {
    crate::log::read_held(tree, seq)
}

/// A dead-letter as the API returns it.
pub(crate) fn load(
    tree: &Kv,
    handler: &HandlerName,
    key: &[u8],
    value: &[u8],
) -> Result<DeadLetter> {
    let (_, seq) = records::handler_seq(key)?;
    let record: DeadLetterRecord = decode(value, "dead-letter")?;
    Ok(DeadLetter {
        handler: handler.clone(),
        event: read_event(tree, seq)?,
        cause: record.cause,
        last_error: record.last_error,
        attempts: record.attempts,
        at: timestamp(record.at_ms),
        dead_letter_seq: record.dlq_seq,
    })
}
