//! The broker's error type.
//!
//! Every variant names the handler, topic, event or sequence number involved so that a
//! message read in a log or an HTTP problem document is actionable on its own. Input
//! errors (`EmptyBatch`, `EventTooLarge`, `UnknownHandler`, …) are detected before
//! anything is written, so they never change stored data.

use choreo_core::{AttributeError, EventId, HandlerName, Topic};

/// What went wrong in a broker operation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A publish call carried no event.
    #[error("a publish must carry at least one event")]
    EmptyBatch,
    /// A publish or an outcome carried more events than one batch may hold.
    #[error("a batch of {count} events is over the limit of {max}")]
    BatchTooLarge {
        /// Events in the batch.
        count: usize,
        /// The limit.
        max: usize,
    },
    /// A batch's events add up to more bytes than one batch may hold.
    #[error("a batch of {bytes} bytes is over the limit of {max} bytes")]
    BatchTooManyBytes {
        /// Bytes in the batch.
        bytes: usize,
        /// The limit.
        max: usize,
    },
    /// One event is larger than the configured maximum.
    #[error("event `{id}` on `{topic}` is {size} bytes; the limit is {max}")]
    EventTooLarge {
        /// The event.
        id: EventId,
        /// Its topic.
        topic: Topic,
        /// Its size as [`choreo_core::Event::size`] counts it.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An event's attributes are not valid CloudEvents attributes.
    #[error("event `{id}` on `{topic}` is invalid")]
    InvalidEvent {
        /// The event.
        id: EventId,
        /// Its topic.
        topic: Topic,
        /// Which attribute is wrong.
        #[source]
        source: AttributeError,
    },
    /// No subscription exists for this handler.
    #[error("no handler `{handler}` is subscribed")]
    UnknownHandler {
        /// The handler.
        handler: HandlerName,
    },
    /// A subscription named no pattern.
    #[error("handler `{handler}` must subscribe to at least one pattern")]
    NoPatterns {
        /// The handler.
        handler: HandlerName,
    },
    /// A request asked for a count outside what the broker serves in one call.
    #[error("{what} for handler `{handler}` must be between 1 and {max}, not {requested}")]
    OutOfRange {
        /// What was asked for (`lease batch`, `concurrency`, …).
        what: &'static str,
        /// The handler.
        handler: HandlerName,
        /// The value given.
        requested: usize,
        /// The limit.
        max: usize,
    },
    /// A state key or value written by a handler is over its limit.
    #[error("state {what} of {len} bytes for handler `{handler}` is over the limit of {max}")]
    StateTooLarge {
        /// `key` or `value`.
        what: &'static str,
        /// The handler.
        handler: HandlerName,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// No dead-letter is kept for this handler at this sequence number.
    #[error("handler `{handler}` has no dead-letter for event seq {seq}")]
    DeadLetterNotFound {
        /// The handler.
        handler: HandlerName,
        /// The event's sequence number.
        seq: u64,
    },
    /// The store was written by an incompatible version of choreo.
    #[error("the store is in format {found}; this build reads format {expected}")]
    Format {
        /// The format found on disk.
        found: u32,
        /// The format this build writes.
        expected: u32,
    },
    /// A stored record could not be decoded.
    #[error("stored {what} could not be decoded: {reason}")]
    Corrupt {
        /// Which record.
        what: String,
        /// The decoder's message.
        reason: String,
    },
    /// The storage engine or the file system failed.
    #[error("storage failed while {context}")]
    Storage {
        /// What the broker was doing.
        context: &'static str,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An earlier storage failure stopped the writer; reopen the broker to recover.
    #[error("the broker stopped after a storage failure: {reason}")]
    Failed {
        /// The first failure.
        reason: String,
    },
    /// The broker was closed.
    #[error("the broker is closed")]
    Closed,
}

impl Error {
    /// Whether the error is about the caller's input (nothing was written) rather than
    /// about the broker or its storage.
    pub fn is_input(&self) -> bool {
        !matches!(
            self,
            Error::Format { .. }
                | Error::Corrupt { .. }
                | Error::Storage { .. }
                | Error::Failed { .. }
                | Error::Closed
        )
    }

    pub(crate) fn storage(
        context: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Storage {
            context,
            source: Box::new(source),
        }
    }

    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Error::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}

/// Results of broker operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;
