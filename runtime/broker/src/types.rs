//! The values that cross the [`crate::Broker`] interface.
//!
//! Plain data, free of storage types, so the embedded store and a JetStream backend can
//! both speak them. Each type documents its defaults.

use std::time::Duration;

use choreo_core::{Event, EventId, HandlerName, Pattern, RecordedEvent, Timestamp, Topic};
use serde::{Deserialize, Serialize};

/// What a publish did with one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// The event's place in the log; for a duplicate, the first copy's.
    pub seq: u64,
    /// The event's id.
    pub id: EventId,
    /// True when an event with the same `source` and `id` was published within the
    /// dedup window: nothing new was stored.
    pub duplicate: bool,
}

/// Where a new subscription starts reading the log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StartPosition {
    /// Only events published after the subscription (the default).
    #[default]
    Next,
    /// Every event still retained.
    Earliest,
    /// Retained events appended to the log at or after this time (the broker's append
    /// time, not the publisher's `time` attribute, which a publisher may set freely).
    Time(Timestamp),
}

/// How failed deliveries are retried.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Deliveries before the event is dead-lettered, the first one included. Default: 5.
    pub max_attempts: u32,
    /// Delay before the second attempt. Default: 1 s.
    pub initial_backoff: Duration,
    /// The delay doubles per attempt up to this. Default: 60 s.
    pub max_backoff: Duration,
    /// Fraction (0 to 1) of each delay that is randomised away, so that many failing
    /// deliveries do not retry in lockstep. Default: 0.2.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            initial_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay after failed attempt number `attempt` (1 for the first delivery), with
    /// `random` in `[0, 1)` choosing the jitter: `min(initial * 2^(attempt-1), max)`,
    /// reduced by up to `jitter` of itself.
    pub fn backoff(&self, attempt: u32, random: f64) -> Duration {
        let doublings = attempt.saturating_sub(1).min(32);
        let full = self
            .initial_backoff
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.max_backoff);
        let jitter = self.jitter.clamp(0.0, 1.0) * random.clamp(0.0, 1.0);
        full.mul_f64(1.0 - jitter)
    }
}

/// Default number of deliveries a handler may have in flight.
pub const DEFAULT_CONCURRENCY: usize = 8;

/// A handler's interest in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// Whose queue this is.
    pub handler: HandlerName,
    /// Topics the handler consumes. At least one.
    pub patterns: Vec<Pattern>,
    /// Where a new queue starts; ignored when the handler is already subscribed.
    pub start: StartPosition,
    /// Default: [`RetryPolicy::default`].
    pub retry: RetryPolicy,
    /// Deliveries in flight at once, across ordering keys. Default: [`DEFAULT_CONCURRENCY`].
    pub concurrency: usize,
}

impl Subscription {
    /// A subscription with the defaults: start at the next event, default retries.
    pub fn new(handler: HandlerName, patterns: Vec<Pattern>) -> Self {
        Subscription {
            handler,
            patterns,
            start: StartPosition::Next,
            retry: RetryPolicy::default(),
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// Names one delivery: the lease a commit must present.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DeliveryToken {
    pub(crate) handler: HandlerName,
    pub(crate) seq: u64,
    pub(crate) lease: u64,
}

impl DeliveryToken {
    /// The handler the event was delivered to.
    pub fn handler(&self) -> &HandlerName {
        &self.handler
    }

    /// The delivered event's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }
}

/// One attempt to run a handler on an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Present it to [`crate::Broker::commit`].
    pub token: DeliveryToken,
    /// The event.
    pub event: RecordedEvent,
    /// 1 for the first delivery, then counting every redelivery.
    pub attempt: u32,
}

/// One write to a handler's state, applied with its ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateWrite {
    /// The key in the handler's keyspace.
    pub key: Vec<u8>,
    /// The new value; `None` deletes the key.
    pub value: Option<Vec<u8>>,
}

/// How a delivery ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Handled: the events it published and its state writes are committed with the ack.
    Ack {
        /// Events the handler published (its outbox).
        publishes: Vec<Event>,
        /// State writes, applied in order.
        state: Vec<StateWrite>,
    },
    /// Failed: redeliver after a backoff, or dead-letter once attempts are spent.
    Retry {
        /// Why; kept as the handler's last error.
        reason: String,
    },
    /// Failed for good: dead-letter now.
    DeadLetter {
        /// Why; carried by the dead-letter event.
        reason: String,
    },
}

/// The end of one delivery, for [`crate::Broker::commit`].
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The delivery.
    pub token: DeliveryToken,
    /// What to commit.
    pub action: Action,
}

impl Outcome {
    /// An ack with the handler's publishes and state writes.
    pub fn ack(token: DeliveryToken, publishes: Vec<Event>, state: Vec<StateWrite>) -> Self {
        Outcome {
            token,
            action: Action::Ack { publishes, state },
        }
    }

    /// A failure to retry.
    pub fn retry(token: DeliveryToken, reason: impl Into<String>) -> Self {
        Outcome {
            token,
            action: Action::Retry {
                reason: reason.into(),
            },
        }
    }

    /// A failure to dead-letter at once.
    pub fn dead_letter(token: DeliveryToken, reason: impl Into<String>) -> Self {
        Outcome {
            token,
            action: Action::DeadLetter {
                reason: reason.into(),
            },
        }
    }
}

/// What a commit did with one outcome.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Acked; the publishes are in the log.
    Acked {
        /// One per published event, in order.
        published: Vec<Published>,
    },
    /// Will be redelivered, not before the given time.
    Retrying {
        /// The attempt that failed.
        attempt: u32,
        /// Earliest redelivery.
        not_before: Timestamp,
    },
    /// Dead-lettered; the dead-letter event was published on `$dlq.<handler>`.
    DeadLettered {
        /// The dead-letter event.
        dead_letter: Published,
    },
    /// The lease had expired and the event was leased again (or it is gone): nothing of
    /// this outcome was committed. Another delivery now owns the event.
    LeaseLost,
}

/// Why an event was dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterCause {
    /// The handler rejected it (`reject(..)`, or a failure that retrying cannot fix).
    Rejected,
    /// Every attempt the retry policy allows failed.
    RetriesExhausted,
}

impl DeadLetterCause {
    /// A stable lower-case label: `rejected` or `retries-exhausted`.
    pub fn label(self) -> &'static str {
        match self {
            DeadLetterCause::Rejected => "rejected",
            DeadLetterCause::RetriesExhausted => "retries-exhausted",
        }
    }
}

/// A dead-lettered event, kept for inspection and replay.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// The handler that gave up.
    pub handler: HandlerName,
    /// The original event.
    pub event: RecordedEvent,
    /// Why it was given up on.
    pub cause: DeadLetterCause,
    /// The error of the last attempt.
    pub last_error: String,
    /// Deliveries made.
    pub attempts: u32,
    /// When it was dead-lettered.
    pub at: Timestamp,
    /// The seq of the `$dlq.<handler>` event.
    pub dead_letter_seq: u64,
}

impl DeadLetter {
    /// One sentence saying why: the cause, the attempts and the last error.
    pub fn reason(&self) -> String {
        describe(self.cause, self.attempts, &self.last_error)
    }
}

/// The reason a dead-letter gives: kept as the handler's last error and carried by the
/// dead-letter event.
pub(crate) fn describe(cause: DeadLetterCause, attempts: u32, last_error: &str) -> String {
    match cause {
        DeadLetterCause::Rejected => last_error.to_owned(),
        DeadLetterCause::RetriesExhausted => {
            format!("gave up after {attempts} attempts: {last_error}")
        }
    }
}

/// Which dead-letters a replay or discard applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    /// The one for the event with this seq.
    One(u64),
    /// Every one the handler has.
    All,
}

/// A read of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventQuery {
    /// First seq to consider.
    pub from_seq: u64,
    /// Only events whose topic matches; `None` for all.
    pub pattern: Option<Pattern>,
    /// Most events to return, up to [`crate::MAX_READ_ROWS`].
    pub limit: usize,
}

/// One page of a log read.
#[derive(Debug, Clone, PartialEq)]
pub struct EventPage {
    /// Matching events, in seq order.
    pub events: Vec<RecordedEvent>,
    /// Where the next page starts.
    pub next_seq: u64,
}

/// Where an event went and who published it: what a reader that counts events needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHead {
    /// Its place in the log.
    pub seq: u64,
    /// Its topic.
    pub topic: Topic,
    /// Its `source`.
    pub source: String,
}

/// One page of [`crate::Broker::read_event_heads`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeadPage {
    /// The events' heads, in seq order.
    pub heads: Vec<EventHead>,
    /// Where the next page starts.
    pub next_seq: u64,
}

/// A handler's queue at a glance.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerStats {
    /// The handler.
    pub handler: HandlerName,
    /// What it consumes.
    pub patterns: Vec<Pattern>,
    /// Whether delivery is paused.
    pub paused: bool,
    /// Events waiting or in flight.
    pub queue_depth: usize,
    /// Deliveries leased and not yet committed.
    pub in_flight: usize,
    /// The lowest seq in the queue.
    pub oldest_pending_seq: Option<u64>,
    /// Dead-letters kept for replay.
    pub dead_letters: usize,
    /// The reason of the most recent retry or dead-letter since the broker opened.
    pub last_error: Option<String>,
}

/// Which writes a state read may see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StateView {
    /// Only writes that are durable: what a crash would keep. For every reader outside a
    /// delivery (queries, the HTTP API). A read may wait for the log write in progress.
    #[default]
    Durable,
    /// Also writes of commits not yet durable. For reads inside a
    /// delivery: groups become durable in order, so a commit that read such a write can
    /// only become durable together with it or after it, never without it.
    Latest,
}
