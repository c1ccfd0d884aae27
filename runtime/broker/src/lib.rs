//! choreo's durable event broker.
//!
//! It owns the event log, one queue per handler with the delivery state of every event
//! in it (leases, attempts, backoff), dead-letters, and each handler's key-value state.
//! It does not run handlers: the dispatch loop leases deliveries from it, runs them on the
//! host, and commits each outcome (ack with the handler's publishes and state writes,
//! retry, or dead-letter) in one atomic step. It knows nothing of Wasm or HTTP.
//!
//! [`Broker`] is the interface; [`SledBroker`] implements it on an embedded sled store
//! (a NATS JetStream backend can implement it too). The store is one sled tree written by
//! one thread with group commit; see `writer` for how acknowledgements become durable in
//! [`Durability::Strict`] and [`Durability::Buffered`] modes, and `records` for the layout.
//!
//! Layout:
//! - `api`: the [`Broker`] trait.
//! - `types`: the values it takes and returns ([`Subscription`], [`Delivery`], [`Outcome`], …).
//! - `config`: [`Config`] with its defaults, and the hard limits (`MAX_*`).
//! - `error`: [`Error`].
//! - `clock`: [`Clock`], wall-clock time driven by tokio's (pausable) clock.
//! - `sled_broker`: [`SledBroker`], input checks, forwarding to the writer.
//! - `lease`: leasing with a long poll.
//! - `reads`: log, id, causation, state and dead-letter reads.
//! - `writer`: the group-commit thread and its requests.
//! - `durable`: the second stage of the group commit: log, sync, answer; checkpoints.
//! - `wal`: the write-ahead log that makes a group durable, and its replay.
//! - `changes`: a group's writes, and their write-ahead log record.
//! - `txn`: building one group (publish with fan-out and dedup, commit, subscribe).
//! - `ids`: the id index (lookups by id and by cause), in files of sorted hashes (`ids/run.rs`).
//! - `dedup`: the dedup window, in memory.
//! - `dlq`: dead-lettering, replay and discard.
//! - `retention`: trimming the log; removing a handler.
//! - `queue`: one handler's in-memory queue and the per-key ordering rules.
//! - `queued`: queue membership as stored, in bitmap chunks.
//! - `registry`: all handlers in memory, and the pattern index that routes events.
//! - `records`: the key layout and the stored records.
//! - `log`: the log stored in chunks of consecutive events.
//! - `overlay`: what is not yet checkpointed, in memory in front of sled, and `Kv` that reads both.
//! - `store`: opening sled, recovery, and the fdatasync of sled at a checkpoint.
//! - `threads`: spawning the broker's threads, scheduled as batch work.

mod api;
mod changes;
mod clock;
mod config;
mod dedup;
mod dlq;
mod durable;
mod error;
mod ids;
mod lease;
mod log;
mod overlay;
mod queue;
mod queued;
mod reads;
mod records;
mod registry;
mod retention;
mod sled_broker;
mod store;
mod threads;
mod txn;
mod types;
mod wal;
mod writer;

pub use api::Broker;
pub use clock::Clock;
pub use config::{
    Config, Durability, MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_CONCURRENCY, MAX_GROUP_REQUESTS,
    MAX_LEASE_BATCH, MAX_READ_ROWS, MAX_READ_SCAN, MAX_REASON_BYTES, MAX_RETENTION_SCAN,
    MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES, Retention,
};
pub use error::{Error, Result};
pub use sled_broker::SledBroker;
pub use types::{
    Action, Committed, DEFAULT_CONCURRENCY, DeadLetter, DeadLetterCause, Delivery, DeliveryToken,
    EventHead, EventPage, EventQuery, HandlerStats, HeadPage, Outcome, Published, RetryPolicy,
    Selection, StartPosition, StateView, StateWrite, Subscription,
};
