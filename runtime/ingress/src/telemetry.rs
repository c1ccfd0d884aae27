//! What the ingress counts itself, for `/metrics` and `/v1/topics`: events published
//! per topic (from a tail of the durable log) with the topics catalog, and HTTP
//! requests per route and status.
//!
//! Everything else `/metrics` reports is already counted where it happens (deliveries
//! and traps in the dispatcher, deploys in the deploy registry, queues in the broker)
//! and is read there at scrape time, never counted twice.
//!
//! Counts live in memory and start at zero with the process, as Prometheus counters do.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use choreo_broker::{Broker, EventHead};
use choreo_core::{Timestamp, Topic};

use crate::catalog::{Catalog, TopicSummary};

/// Most distinct `topic` label values on the published-events counter; later ones are
/// folded into [`OTHER_LABEL`]. Each value is a time series kept forever by Prometheus,
/// so their number must stay bounded however many topics there are.
pub const MAX_TOPIC_LABELS: usize = 100;

/// The `topic` label of events whose label did not fit in [`MAX_TOPIC_LABELS`].
pub const OTHER_LABEL: &str = "other";

/// Events read per page by the log tail.
const TAIL_PAGE: usize = 512;

/// Pause after a failed log read before the tail tries again.
const TAIL_ERROR_PAUSE: Duration = Duration::from_millis(500);

/// Least time between the starts of two reads of the log tail that are not
/// continuations of a full page.
///
/// Decision: the tail lags the log by up to this much, rather than reading once per
/// durable group. Each read opens an iterator over sled as well as the overlay, which
/// copies a leaf node however few events it returns; under load, groups become durable
/// about a thousand times a second, and a read per group was 2.5 % of the server's CPU
/// while `choreo bench --url` ran its chain of 60,000 events (1.4 % with this interval).
/// Counters and the catalog a few milliseconds late tell an operator the same thing.
const TAIL_INTERVAL: Duration = Duration::from_millis(20);

/// The source handlers publish under (`choreo://handler/<name>`, set by the host).
const HANDLER_SOURCE_PREFIX: &str = "choreo://handler/";

/// Where a published event came from, as the `origin` label says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Origin {
    /// Published by a client (HTTP).
    Ingress,
    /// Published by a handler, committed from its outbox with its ack.
    Handler,
    /// A dead-letter event on `$dlq.<handler>`.
    DeadLetter,
}

impl Origin {
    fn of(event: &EventHead) -> Origin {
        if event.topic.tokens().next() == Some("$dlq") {
            Origin::DeadLetter
        } else if event.source.starts_with(HANDLER_SOURCE_PREFIX) {
            Origin::Handler
        } else {
            Origin::Ingress
        }
    }

    /// The label value.
    pub fn label(self) -> &'static str {
        match self {
            Origin::Ingress => "ingress",
            Origin::Handler => "handler",
            Origin::DeadLetter => "dead_letter",
        }
    }
}

/// The `topic` label of a topic: its first two tokens (`orders.created.eu` counts as
/// `orders.created`), which name the kind of event while per-entity or per-region tokens
/// are dropped; `$reply.<id>` topics count as `$reply`, since each id is used once.
pub fn topic_label(topic: &Topic) -> String {
    let mut tokens = topic.tokens();
    let first = tokens.next().unwrap_or_default();
    if first == "$reply" {
        return first.to_owned();
    }
    match tokens.next() {
        Some(second) => format!("{first}.{second}"),
        None => first.to_owned(),
    }
}

/// Published-event counts by (topic label, origin), with the label set bounded.
#[derive(Debug, Default)]
pub struct PublishedCounts {
    counts: BTreeMap<(String, Origin), u64>,
    labels: HashSet<String>,
}

impl PublishedCounts {
    /// Counts one event on `topic`.
    pub fn count(&mut self, topic: &Topic, origin: Origin) {
        let mut label = topic_label(topic);
        if !self.labels.contains(&label) {
            if self.labels.len() < MAX_TOPIC_LABELS {
                self.labels.insert(label.clone());
            } else {
                label = OTHER_LABEL.to_owned();
            }
        }
        *self.counts.entry((label, origin)).or_default() += 1;
    }

    /// Every count, sorted by label then origin.
    pub fn snapshot(&self) -> Vec<(String, Origin, u64)> {
        self.counts
            .iter()
            .map(|((label, origin), count)| (label.clone(), *origin, *count))
            .collect()
    }
}

/// The ingress's own counters. Shared by the server and the log tail.
#[derive(Debug, Default)]
pub struct Telemetry {
    catalog: Mutex<Catalog>,
    published: Mutex<PublishedCounts>,
    requests: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
}

impl Telemetry {
    /// Records one durable event.
    fn observe(&self, event: &EventHead, now: Timestamp) {
        let origin = Origin::of(event);
        lock(&self.published).count(&event.topic, origin);
        lock(&self.catalog).observe(&event.topic, &event.source, now);
    }

    /// Counts one HTTP request by route template, method and status.
    pub(crate) fn request(&self, route: &'static str, method: &http::Method, status: u16) {
        *lock(&self.requests)
            .entry((route, method_label(method), status))
            .or_default() += 1;
    }

    /// Requests by (route, method, status).
    pub(crate) fn requests(&self) -> Vec<((&'static str, &'static str, u16), u64)> {
        lock(&self.requests)
            .iter()
            .map(|(key, count)| (*key, *count))
            .collect()
    }

    /// Published events by (topic label, origin).
    pub(crate) fn published(&self) -> Vec<(String, Origin, u64)> {
        lock(&self.published).snapshot()
    }

    /// The topics catalog as of `now`, and how many topics it has dropped.
    pub(crate) fn topics(&self, now: Timestamp) -> (Vec<TopicSummary>, u64) {
        let catalog = lock(&self.catalog);
        (catalog.summaries(now), catalog.evicted())
    }
}

/// Methods choreo serves keep their name; any other (a client may send any token) is
/// `other`, so the label stays bounded.
fn method_label(method: &http::Method) -> &'static str {
    use http::Method as M;
    [
        M::GET,
        M::POST,
        M::PUT,
        M::DELETE,
        M::HEAD,
        M::OPTIONS,
        M::PATCH,
    ]
    .iter()
    .find(|known| *known == method)
    .map_or("other", |known| known.as_str())
}

// Only counter updates run under these locks, so a poisoned one still holds
// consistent counts.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Follows the durable log from its current end and feeds every new event to
/// `telemetry`, until `shutdown` resolves. It covers events from every path into the
/// log (HTTP, handlers' outboxes, dead-letters) and sees each once, in order.
///
/// The starting point is taken when this is called, not when the future first runs, so
/// a caller that calls it before serving requests misses no event. Events already in
/// the log are not read: after a restart the catalog fills again as events arrive.
pub fn track_log(
    broker: Arc<dyn Broker>,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> impl Future<Output = ()> + Send + 'static {
    let mut newest = broker.watch_log();
    let mut next = newest.borrow_and_update().saturating_add(1);
    async move {
        tokio::pin!(shutdown);
        loop {
            let read_at = tokio::time::Instant::now();
            match broker.read_event_heads(next, TAIL_PAGE).await {
                Ok(page) => {
                    let now = Timestamp::now();
                    for event in &page.heads {
                        telemetry.observe(event, now);
                    }
                    next = next.max(page.next_seq);
                    if page.heads.len() == TAIL_PAGE {
                        continue; // more may be waiting
                    }
                }
                Err(choreo_broker::Error::Closed) => return,
                Err(err) => {
                    tracing::warn!(error = %err, "reading the log for metrics failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(TAIL_ERROR_PAUSE) => continue,
                        () = &mut shutdown => return,
                    }
                }
            }
            tokio::select! {
                changed = newest.changed() => if changed.is_err() { return },
                () = &mut shutdown => return,
            }
            tokio::select! {
                () = tokio::time::sleep_until(read_at + TAIL_INTERVAL) => {}
                () = &mut shutdown => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap()
    }

    #[test]
    fn labels_keep_the_first_two_tokens() {
        assert_eq!(topic_label(&topic("orders")), "orders");
        assert_eq!(topic_label(&topic("orders.created")), "orders.created");
        assert_eq!(topic_label(&topic("orders.created.eu.1")), "orders.created");
        assert_eq!(topic_label(&topic("$dlq.billing")), "$dlq.billing");
        assert_eq!(topic_label(&topic("$reply.0193abc")), "$reply");
    }

    #[test]
    fn labels_beyond_the_bound_fold_into_other() {
        let mut counts = PublishedCounts::default();
        for i in 0..MAX_TOPIC_LABELS + 10 {
            counts.count(&topic(&format!("kind{i}.x.y")), Origin::Ingress);
        }
        // A label already admitted keeps counting under its own name.
        counts.count(&topic("kind0.x.z"), Origin::Handler);
        let snapshot = counts.snapshot();
        let labels: HashSet<&str> = snapshot.iter().map(|(l, _, _)| l.as_str()).collect();
        assert_eq!(labels.len(), MAX_TOPIC_LABELS + 1, "the bound plus `other`");
        let other: u64 = snapshot
            .iter()
            .filter(|(l, _, _)| l == OTHER_LABEL)
            .map(|(_, _, c)| c)
            .sum();
        assert_eq!(other, 10);
        assert!(snapshot.contains(&("kind0.x".to_owned(), Origin::Handler, 1)));
    }

    #[test]
    fn unknown_methods_are_labelled_other() {
        let telemetry = Telemetry::default();
        let custom = http::Method::from_bytes(b"PURGE").unwrap();
        telemetry.request("/healthz", &custom, 405);
        telemetry.request("/healthz", &http::Method::GET, 200);
        telemetry.request("/healthz", &http::Method::GET, 200);
        assert_eq!(
            telemetry.requests(),
            [
                (("/healthz", "GET", 200), 2),
                (("/healthz", "other", 405), 1)
            ]
        );
    }
}
