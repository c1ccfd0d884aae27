//! The [`Broker`] trait: everything the dispatch loop, the ingress and the CLI need from
//! a broker, with no storage type in it, so the embedded sled store and a NATS JetStream
//! backend are interchangeable behind `Arc<dyn Broker>`.

use std::time::Duration;

use async_trait::async_trait;
use choreo_core::{Event, EventId, HandlerName, RecordedEvent};

use crate::{
    Committed, DeadLetter, Delivery, Durability, EventHead, EventPage, EventQuery, HandlerStats,
    HeadPage, Outcome, Published, Result, Selection, StateView, Subscription,
};

/// A durable event broker with per-handler queues.
///
/// Every method that changes state returns only once the change is durable as the
/// broker's [`Durability`] defines it. Input errors leave stored data untouched.
#[async_trait]
pub trait Broker: Send + Sync + std::fmt::Debug {
    /// Appends `events` in order and enqueues each for every matching subscription, all
    /// or nothing. An event whose `source` and `id` were published within the dedup
    /// window is not stored again: its entry reports the first copy's seq.
    async fn publish(&self, events: Vec<Event>) -> Result<Vec<Published>>;

    /// [`Broker::publish`] for events whose ids were generated for them just now (an
    /// HTTP publish without a `ce-id`): an id that cannot repeat is not looked up in the
    /// dedup window, nor kept in it, which is memory the window does not need.
    async fn publish_fresh(&self, events: Vec<Event>) -> Result<Vec<Published>> {
        self.publish(events).await
    }

    /// Creates the handler's queue, starting at `subscription.start`, or, for a handler
    /// that exists, replaces its patterns, retry policy and concurrency and keeps its
    /// queue, dead-letters, state and paused flag.
    async fn subscribe(&self, subscription: Subscription) -> Result<()>;

    /// Deletes the handler: subscription, queue, dead-letters and state.
    async fn remove(&self, handler: &HandlerName) -> Result<()>;

    /// Stops delivering to the handler. Matching events are still enqueued.
    async fn pause(&self, handler: &HandlerName) -> Result<()>;

    /// Resumes delivering to a paused handler.
    async fn resume(&self, handler: &HandlerName) -> Result<()>;

    /// Leases up to `max` deliveries for `lease_for`, waiting up to `wait` for the first
    /// one. Per ordering key, deliveries come in seq order and one at a time; across
    /// keys, at most the handler's concurrency are in flight. A lease not committed
    /// before it expires is delivered again.
    ///
    /// Cancel-safe: a future dropped before it returns has leased nothing, so a caller
    /// may race it against a stop signal.
    async fn lease(
        &self,
        handler: &HandlerName,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>>;

    /// Commits outcomes atomically: acks with their publishes and state writes, retries
    /// and dead-letters. The result has one entry per outcome, in order. An ack's
    /// publishes are not checked against the dedup window: the runtime gives them their
    /// ids, and the commit itself happens once.
    async fn commit(&self, outcomes: Vec<Outcome>) -> Result<Vec<Committed>>;

    /// Checks one outcome as [`Broker::commit`] does before committing anything (its
    /// publishes and state writes are valid and within limits), without committing it.
    /// A caller that commits many outcomes together checks each first, so that one the
    /// broker would refuse does not make the whole commit fail.
    fn check_outcome(&self, outcome: &Outcome) -> Result<()>;

    /// Reads one key of a handler's state as `view` sees it.
    async fn state_get(
        &self,
        handler: &HandlerName,
        key: &[u8],
        view: StateView,
    ) -> Result<Option<Vec<u8>>>;

    /// Reads up to `limit` keys of a handler's state that start with `prefix`, in key
    /// order, after `start_after` when given, as `view` sees them.
    async fn state_scan(
        &self,
        handler: &HandlerName,
        view: StateView,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Lists a handler's dead-letters in seq order, after `start_after` when given. Only
    /// durable dead-letters are listed, like every read outside a delivery.
    async fn dead_letters(
        &self,
        handler: &HandlerName,
        start_after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>>;

    /// One dead-letter.
    async fn dead_letter(&self, handler: &HandlerName, seq: u64) -> Result<Option<DeadLetter>>;

    /// Puts dead-lettered events back in the handler's queue (and only its queue), with
    /// their attempt count reset. Returns how many.
    async fn replay(&self, handler: &HandlerName, which: Selection) -> Result<usize>;

    /// Forgets dead-letters. Returns how many.
    async fn discard(&self, handler: &HandlerName, which: Selection) -> Result<usize>;

    /// Reads the log. Only durable events are read.
    async fn read_events(&self, query: EventQuery) -> Result<EventPage>;

    /// The topic and source of up to `limit` ([`crate::MAX_READ_ROWS`]) durable events
    /// from `from_seq`: for readers that count events (metrics, the topics catalog) and
    /// need neither their data nor their other attributes. The default reads whole
    /// events; a backend that can read less should.
    async fn read_event_heads(&self, from_seq: u64, limit: usize) -> Result<HeadPage> {
        let page = self
            .read_events(EventQuery {
                from_seq,
                pattern: None,
                limit,
            })
            .await?;
        Ok(HeadPage {
            heads: page
                .events
                .into_iter()
                .map(|recorded| EventHead {
                    seq: recorded.seq,
                    topic: recorded.event.topic,
                    source: recorded.event.source,
                })
                .collect(),
            next_seq: page.next_seq,
        })
    }

    /// The seq of the newest durable event, updated as the log grows: live readers (a
    /// tail, a wait for a reply) wait on it, then read the log from where they were.
    fn watch_log(&self) -> tokio::sync::watch::Receiver<u64>;

    /// The first retained event with this id.
    async fn event_by_id(&self, id: &EventId) -> Result<Option<RecordedEvent>>;

    /// Up to `limit` (at most [`crate::MAX_READ_ROWS`]) retained events whose
    /// `causationid` is `id`, in seq order: the events published by handling it. Only
    /// durable events are read.
    async fn caused_by(&self, id: &EventId, limit: usize) -> Result<Vec<RecordedEvent>>;

    /// One handler's queue statistics.
    async fn stats(&self, handler: &HandlerName) -> Result<HandlerStats>;

    /// Every handler's queue statistics, by name.
    async fn handlers(&self) -> Result<Vec<HandlerStats>>;

    /// Makes everything acknowledged so far durable on disk, in either durability mode.
    async fn flush(&self) -> Result<()>;

    /// Flushes and stops; later calls fail with [`crate::Error::Closed`].
    async fn close(&self) -> Result<()>;

    /// The durability this broker gives its acknowledgements.
    fn durability(&self) -> Durability;

    /// Why the broker stopped accepting writes, if a storage failure stopped it: the
    /// failure and its causes, as [`crate::Error::Failed`] reports them. Everything
    /// acknowledged before it is on disk; only reopening the store (restarting choreo
    /// once the storage is fixed) resumes writes.
    fn failure(&self) -> Option<String>;
}
