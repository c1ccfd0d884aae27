//! [`SledBroker`]: the embedded [`Broker`], on one sled tree.
//!
//! Owns the writer thread (all changes, by group commit) and its durability stage and serves reads directly from
//! the tree. Leasing is in `lease.rs`, reads in `reads.rs`; this file opens the store,
//! checks input, and forwards changes to the writer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use choreo_core::{Event, EventId, HandlerName, RecordedEvent};
use tokio::sync::oneshot;

use crate::config::{
    MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_CONCURRENCY, MAX_STATE_KEY_BYTES, MAX_STATE_VALUE_BYTES,
};
use crate::dedup::DedupWindow;
use crate::durable::{Checkpoints, Durable};
use crate::ids::IdIndex;
use crate::overlay::Kv;
use crate::writer::{Reply, Request, Shared, Writer};
use crate::{
    Action, Broker, Clock, Committed, Config, DeadLetter, Delivery, Durability, Error, EventPage,
    EventQuery, HandlerStats, HeadPage, Outcome, Published, Result, Selection, StateView,
    Subscription,
};

/// The embedded broker. Open one per store directory; share it as `Arc<dyn Broker>`.
#[derive(Debug)]
pub struct SledBroker {
    pub(crate) tree: Kv,
    pub(crate) shared: Arc<Shared>,
    pub(crate) ids: Arc<IdIndex>,
    pub(crate) clock: Clock,
    pub(crate) config: Config,
    tx: Sender<Request>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Lease ids; starts at a random point so a token from before a restart never
    /// matches a lease made after it.
    lease_ids: AtomicU64,
}

impl SledBroker {
    /// Opens (or creates) the store at `config.path`, rebuilds every queue from it, and
    /// starts the writer. Call it from within a tokio runtime: the broker's clock and
    /// timers are tokio's.
    pub fn open(config: Config) -> Result<Self> {
        let clock = config.clock.unwrap_or_else(Clock::system);
        let opened = crate::store::open(&config, clock.now_ms())?;
        let (store, recovered) = (opened.store, opened.recovered);
        let tree = store.kv.clone();
        let ids = Arc::new(IdIndex::open(
            &config.path,
            &tree,
            recovered.meta.last_seq,
            config.index_run_entries,
        )?);
        let dedup = DedupWindow::rebuild(
            &tree,
            crate::clock::millis(config.dedup_window),
            clock.now_ms(),
        )?;
        let shared = Arc::new(Shared::default());
        *shared.registry() = recovered.registry;
        shared.durable_seq.send_replace(recovered.meta.last_seq);
        let (to_durable, applied) = mpsc::channel();
        let (done_tx, done) = mpsc::channel();
        let checkpoints = Checkpoints::spawn(
            store.db.clone(),
            store.kv.sled.clone(),
            store.kv.overlay.clone(),
            opened.syncer,
            shared.clone(),
        )?;
        let durable = Durable {
            overlay: store.kv.overlay.clone(),
            wal: opened.wal,
            checkpoints,
            shared: shared.clone(),
            durability: config.durability,
            sync_interval: config.sync_interval,
            done: done_tx,
        };
        let durable_thread =
            crate::threads::spawn("choreo-broker-sync", move || durable.run(applied))
                .map_err(|e| Error::storage("starting the durability thread", e))?;
        let writer = Writer {
            store,
            shared: shared.clone(),
            clock,
            config: config.clone(),
            next_seq: recovered.meta.last_seq + 1,
            log_bytes: recovered.meta.log_bytes,
            runtime: tokio::runtime::Handle::try_current().ok(),
            ids: ids.clone(),
            dedup,
            to_durable,
            done,
            next_wal_group: opened.applied_group + 1,
            in_flight: 0,
            durable_thread: Some(durable_thread),
        };
        let (tx, rx) = mpsc::channel();
        let thread = crate::threads::spawn("choreo-broker-writer", move || writer.run(rx))
            .map_err(|e| Error::storage("starting the writer thread", e))?;
        tracing::info!(
            path = %config.path.display(),
            durability = config.durability.as_str(),
            last_seq = recovered.meta.last_seq,
            "broker.open"
        );
        Ok(SledBroker {
            tree,
            shared,
            ids,
            clock,
            config,
            tx,
            writer: Mutex::new(Some(thread)),
            lease_ids: AtomicU64::new(rand::random::<u64>() >> 1),
        })
    }

    /// The clock the broker stamps and times with.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs retention now instead of waiting for its interval. Returns how many events
    /// it removed.
    pub async fn enforce_retention(&self) -> Result<usize> {
        self.call(Request::Retention).await
    }

    pub(crate) fn next_lease_id(&self) -> u64 {
        self.lease_ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn send(&self, request: Request) -> Result<()> {
        if let Some(reason) = self.shared.failure() {
            return Err(Error::Failed { reason });
        }
        self.tx.send(request).map_err(|_| Error::Closed)
    }

    async fn call<T>(&self, request: impl FnOnce(Reply<T>) -> Request) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        self.send(request(reply))?;
        answer.await.map_err(|_| Error::Closed)?
    }

    async fn publish_checked(&self, events: Vec<Event>, dedup: bool) -> Result<Vec<Published>> {
        if events.is_empty() {
            return Err(Error::EmptyBatch);
        }
        self.check_events(&events)?;
        self.call(|reply| Request::Publish {
            events,
            dedup,
            reply,
        })
        .await
    }

    fn check_events(&self, events: &[Event]) -> Result<()> {
        if events.len() > MAX_BATCH_EVENTS {
            return Err(Error::BatchTooLarge {
                count: events.len(),
                max: MAX_BATCH_EVENTS,
            });
        }
        let mut bytes = 0;
        for event in events {
            event.validate().map_err(|source| Error::InvalidEvent {
                id: event.id.clone(),
                topic: event.topic.clone(),
                source,
            })?;
            let size = event.size();
            if size > self.config.max_event_bytes {
                return Err(Error::EventTooLarge {
                    id: event.id.clone(),
                    topic: event.topic.clone(),
                    size,
                    max: self.config.max_event_bytes,
                });
            }
            bytes += size;
        }
        if bytes > MAX_BATCH_BYTES {
            return Err(Error::BatchTooManyBytes {
                bytes,
                max: MAX_BATCH_BYTES,
            });
        }
        Ok(())
    }
}

fn check_len(what: &'static str, handler: &HandlerName, len: usize, max: usize) -> Result<()> {
    if len > max {
        return Err(Error::StateTooLarge {
            what,
            handler: handler.clone(),
            len,
            max,
        });
    }
    Ok(())
}

impl Drop for SledBroker {
    /// Stops the writer and waits for it, so the store is closed (and can be reopened)
    /// once the broker is dropped. Everything acknowledged is already durable.
    fn drop(&mut self) {
        let _ = self.tx.send(Request::Close(None));
        let thread = self
            .writer
            .get_mut()
            .map(Option::take)
            .unwrap_or_else(|poisoned| poisoned.into_inner().take());
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

#[async_trait]
impl Broker for SledBroker {
    async fn publish(&self, events: Vec<Event>) -> Result<Vec<Published>> {
        self.publish_checked(events, true).await
    }

    async fn publish_fresh(&self, events: Vec<Event>) -> Result<Vec<Published>> {
        self.publish_checked(events, false).await
    }

    async fn subscribe(&self, subscription: Subscription) -> Result<()> {
        if subscription.patterns.is_empty() {
            return Err(Error::NoPatterns {
                handler: subscription.handler,
            });
        }
        if !(1..=MAX_CONCURRENCY).contains(&subscription.concurrency) {
            return Err(Error::OutOfRange {
                what: "concurrency",
                handler: subscription.handler,
                requested: subscription.concurrency,
                max: MAX_CONCURRENCY,
            });
        }
        self.call(|reply| Request::Subscribe(subscription, reply))
            .await
    }

    async fn remove(&self, handler: &HandlerName) -> Result<()> {
        self.call(|reply| Request::Remove(handler.clone(), reply))
            .await
    }

    async fn pause(&self, handler: &HandlerName) -> Result<()> {
        self.call(|reply| Request::SetPaused(handler.clone(), true, reply))
            .await
    }

    async fn resume(&self, handler: &HandlerName) -> Result<()> {
        self.call(|reply| Request::SetPaused(handler.clone(), false, reply))
            .await
    }

    async fn lease(
        &self,
        handler: &HandlerName,
        max: usize,
        lease_for: Duration,
        wait: Duration,
    ) -> Result<Vec<Delivery>> {
        self.lease_deliveries(handler, max, lease_for, wait).await
    }

    async fn commit(&self, outcomes: Vec<Outcome>) -> Result<Vec<Committed>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        for outcome in &outcomes {
            self.check_outcome(outcome)?;
        }
        self.call(|reply| Request::Commit(outcomes, reply)).await
    }

    fn check_outcome(&self, outcome: &Outcome) -> Result<()> {
        let Action::Ack { publishes, state } = &outcome.action else {
            return Ok(());
        };
        self.check_events(publishes)?;
        let handler = &outcome.token.handler;
        for write in state {
            check_len("key", handler, write.key.len(), MAX_STATE_KEY_BYTES)?;
            let value_len = write.value.as_ref().map_or(0, Vec::len);
            check_len("value", handler, value_len, MAX_STATE_VALUE_BYTES)?;
        }
        Ok(())
    }

    async fn state_get(
        &self,
        handler: &HandlerName,
        key: &[u8],
        view: StateView,
    ) -> Result<Option<Vec<u8>>> {
        let value = self.read_state(handler, key)?;
        self.as_seen_by(view, value).await
    }

    async fn state_scan(
        &self,
        handler: &HandlerName,
        view: StateView,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let entries = self.scan_state(handler, prefix, start_after, limit)?;
        self.as_seen_by(view, entries).await
    }

    async fn dead_letters(
        &self,
        handler: &HandlerName,
        start_after: Option<u64>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let listed = self.list_dead_letters(handler, start_after, limit)?;
        self.once_durable(listed).await
    }

    async fn dead_letter(&self, handler: &HandlerName, seq: u64) -> Result<Option<DeadLetter>> {
        let found = self.get_dead_letter(handler, seq)?;
        self.once_durable(found).await
    }

    async fn replay(&self, handler: &HandlerName, which: Selection) -> Result<usize> {
        self.call(|reply| Request::Replay(handler.clone(), which, reply))
            .await
    }

    async fn discard(&self, handler: &HandlerName, which: Selection) -> Result<usize> {
        self.call(|reply| Request::Discard(handler.clone(), which, reply))
            .await
    }

    async fn read_events(&self, query: EventQuery) -> Result<EventPage> {
        self.read_log(query)
    }

    async fn read_event_heads(&self, from_seq: u64, limit: usize) -> Result<HeadPage> {
        self.read_heads(from_seq, limit)
    }

    fn watch_log(&self) -> tokio::sync::watch::Receiver<u64> {
        self.shared.durable_seq.subscribe()
    }

    async fn event_by_id(&self, id: &EventId) -> Result<Option<RecordedEvent>> {
        self.find_event(id)
    }

    async fn caused_by(&self, id: &EventId, limit: usize) -> Result<Vec<RecordedEvent>> {
        self.find_caused_by(id, limit)
    }

    async fn stats(&self, handler: &HandlerName) -> Result<HandlerStats> {
        Ok(self.shared.registry().get(handler)?.stats(handler))
    }

    async fn handlers(&self) -> Result<Vec<HandlerStats>> {
        let registry = self.shared.registry();
        let mut all: Vec<HandlerStats> = registry
            .handlers
            .iter()
            .map(|(name, handler)| handler.stats(name))
            .collect();
        all.sort_by(|a, b| a.handler.cmp(&b.handler));
        Ok(all)
    }

    async fn flush(&self) -> Result<()> {
        self.call(Request::Flush).await
    }

    async fn close(&self) -> Result<()> {
        self.call(|reply| Request::Close(Some(reply))).await
    }

    fn durability(&self) -> Durability {
        self.config.durability
    }

    fn failure(&self) -> Option<String> {
        self.shared.failure()
    }
}
