//! The broker's public API against real sled stores in temp dirs.
//!
//! One test binary (it also serves as the child process of the crash test). Tests that
//! involve time run on tokio's paused clock, which the broker's [`Clock`] follows, so
//! backoffs and lease expiries are exact and nothing sleeps for real.

// `allow-unwrap-in-tests` covers `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

mod causation;
mod crash;
mod delivery;
mod durability;
mod layout;
mod opening;
mod ordering;
mod retention;
mod retry;
mod routing;
mod wal;

use std::sync::Arc;
use std::time::Duration;

use choreo_broker::{
    Broker, Config, Delivery, EventQuery, Outcome, RetryPolicy, SledBroker, StartPosition,
    Subscription,
};
use choreo_core::{Event, EventId, HandlerName, Pattern, RecordedEvent, Topic};

/// Every retained event, in seq order, read page by page.
pub async fn whole_log(broker: &impl Broker) -> Vec<RecordedEvent> {
    let mut log = Vec::new();
    let mut from_seq = 0;
    loop {
        let page = broker
            .read_events(EventQuery {
                from_seq,
                pattern: None,
                limit: 1000,
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            return log;
        }
        from_seq = page.next_seq;
        log.extend(page.events);
    }
}

pub fn handler(name: &str) -> HandlerName {
    HandlerName::new(name).unwrap()
}

pub fn topic(name: &str) -> Topic {
    Topic::new(name).unwrap()
}

pub fn event(on: &str) -> Event {
    Event::new(topic(on), "test://broker", b"{}".to_vec())
}

pub fn keyed(on: &str, key: &str) -> Event {
    let mut e = event(on);
    e.key = Some(key.to_owned());
    e
}

pub fn with_id(on: &str, id: &str) -> Event {
    let mut e = event(on);
    e.id = EventId::new(id).unwrap();
    e
}

pub fn subscription(name: &str, patterns: &[&str]) -> Subscription {
    Subscription::new(
        handler(name),
        patterns.iter().map(|p| Pattern::new(*p).unwrap()).collect(),
    )
}

/// Retries without jitter, so delays are exact.
pub fn exact_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_secs(1),
        max_backoff: Duration::from_secs(10),
        jitter: 0.0,
    }
}

#[derive(Debug)]
pub struct Store {
    pub dir: tempfile::TempDir,
    pub broker: Arc<SledBroker>,
}

// A fresh temp dir per call: not a value a `Default` should hide.
#[allow(clippy::new_without_default)]
impl Store {
    /// A store with the default configuration.
    pub fn new() -> Self {
        Store::with(|_| {})
    }

    pub fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::new(dir.path());
        adjust(&mut config);
        let broker = Arc::new(SledBroker::open(config).unwrap());
        Store { dir, broker }
    }

    /// Closes the broker and opens the same directory again.
    pub async fn reopen(self, adjust: impl FnOnce(&mut Config)) -> Self {
        self.broker.close().await.unwrap();
        let Store { dir, broker } = self;
        // Dropping the last handle joins the writer, which releases sled's file lock.
        drop(broker);
        let mut config = Config::new(dir.path());
        adjust(&mut config);
        let broker = Arc::new(SledBroker::open(config).unwrap());
        Store { dir, broker }
    }

    pub async fn subscribe(&self, sub: Subscription) {
        self.broker.subscribe(sub).await.unwrap();
    }

    pub async fn lease(&self, name: &str, max: usize) -> Vec<Delivery> {
        self.broker
            .lease(&handler(name), max, Duration::from_secs(30), Duration::ZERO)
            .await
            .unwrap()
    }

    pub async fn ack(&self, delivery: &Delivery) {
        let outcome = Outcome::ack(delivery.token.clone(), vec![], vec![]);
        self.broker.commit(vec![outcome]).await.unwrap();
    }
}

pub fn earliest(mut sub: Subscription) -> Subscription {
    sub.start = StartPosition::Earliest;
    sub
}
