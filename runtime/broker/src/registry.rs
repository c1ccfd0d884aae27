//! The in-memory view of every handler: subscription, queue, and the pattern index.
//!
//! Shared between the writer (which changes it in step with the store) and the lease
//! and stats paths (which read it, and mark entries leased). Guarded by one mutex held
//! only for in-memory work, never across I/O.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use choreo_core::{HandlerName, PatternIndex};
use tokio::sync::Notify;

use crate::queue::HandlerQueue;
use crate::records::SubRecord;
use crate::{Error, HandlerStats, Result};

#[derive(Debug)]
pub(crate) struct Handler {
    pub(crate) sub: SubRecord,
    pub(crate) queue: HandlerQueue,
    /// Woken when the queue may have something to lease.
    pub(crate) notify: Arc<Notify>,
    pub(crate) dead_letters: usize,
    pub(crate) last_error: Option<String>,
}

impl Handler {
    pub(crate) fn new(sub: SubRecord) -> Self {
        Handler {
            sub,
            queue: HandlerQueue::default(),
            notify: Arc::new(Notify::new()),
            dead_letters: 0,
            last_error: None,
        }
    }

    pub(crate) fn stats(&self, name: &HandlerName) -> HandlerStats {
        HandlerStats {
            handler: name.clone(),
            patterns: self.sub.patterns.clone(),
            paused: self.sub.paused,
            queue_depth: self.queue.len(),
            in_flight: self.queue.in_flight(),
            oldest_pending_seq: self.queue.oldest(),
            dead_letters: self.dead_letters,
            last_error: self.last_error.clone(),
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) handlers: HashMap<HandlerName, Handler>,
    /// Every handler's patterns; kept equal to `handlers[*].sub.patterns`.
    pub(crate) index: PatternIndex<HandlerName>,
}

/// Locks the registry.
pub(crate) fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry
        .lock()
        .expect("registry users do not panic while holding it")
}

impl Registry {
    /// The handlers subscribed to `topic`.
    pub(crate) fn matching(&self, topic: &choreo_core::Topic) -> BTreeSet<HandlerName> {
        self.index.matching(topic)
    }

    pub(crate) fn get(&self, name: &HandlerName) -> Result<&Handler> {
        self.handlers
            .get(name)
            .ok_or_else(|| Error::UnknownHandler {
                handler: name.clone(),
            })
    }

    pub(crate) fn get_mut(&mut self, name: &HandlerName) -> Result<&mut Handler> {
        self.handlers
            .get_mut(name)
            .ok_or_else(|| Error::UnknownHandler {
                handler: name.clone(),
            })
    }

    /// Adds or updates a handler, keeping the index in step. Returns whether it is new.
    pub(crate) fn upsert(&mut self, name: &HandlerName, sub: SubRecord) -> bool {
        match self.handlers.get_mut(name) {
            Some(handler) => {
                for pattern in &handler.sub.patterns {
                    self.index.remove(pattern, name);
                }
                handler.sub = SubRecord {
                    paused: handler.sub.paused,
                    ..sub
                };
                for pattern in &handler.sub.patterns {
                    self.index.insert(pattern, name.clone());
                }
                false
            }
            None => {
                for pattern in &sub.patterns {
                    self.index.insert(pattern, name.clone());
                }
                self.handlers.insert(name.clone(), Handler::new(sub));
                true
            }
        }
    }

    /// Removes a handler and its index entries.
    pub(crate) fn remove(&mut self, name: &HandlerName) -> Option<Handler> {
        let handler = self.handlers.remove(name)?;
        for pattern in &handler.sub.patterns {
            self.index.remove(pattern, name);
        }
        handler.notify.notify_waiters();
        Some(handler)
    }
}
