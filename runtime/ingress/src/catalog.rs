//! The topics catalog: every topic this process has seen published, with its count,
//! recent rate, first and last time seen, and who produced it.
//!
//! It is fed by the log tail (`telemetry::track_log`), so it sees events from HTTP and
//! from handlers' outboxes alike, and it lives in memory only: after a restart it starts
//! empty and fills again as events are published (the log is not rescanned). Its size
//! is bounded by [`MAX_TRACKED_TOPICS`]; once full, a new topic evicts the one seen
//! least recently. Reply topics (`$reply.<id>`) are not tracked: each is used once, and
//! they would push every real topic out.
//!
//! Pure data: the caller passes the time, so tests need no clock.

use std::collections::{BTreeSet, HashMap};

use choreo_core::{Timestamp, Topic};

/// Most topics tracked at once. Topics are unbounded in number (an id in a topic makes
/// one per event); a thousand covers any catalog a person reads, at about 2 KiB each.
pub const MAX_TRACKED_TOPICS: usize = 1_000;

/// Most producers (`source`s) listed per topic; more are counted as "and others".
pub const MAX_PRODUCERS: usize = 16;

/// The window the rate is measured over, in seconds.
pub const RATE_WINDOW_SECS: usize = 60;

/// What the catalog knows of one topic.
#[derive(Debug, Clone)]
struct Entry {
    count: u64,
    first_seen: Timestamp,
    last_seen: Timestamp,
    producers: BTreeSet<String>,
    more_producers: bool,
    /// Events per second over the last [`RATE_WINDOW_SECS`]: slot `s % window` holds the
    /// count for Unix second `s`, valid while the second matches.
    recent: [(i64, u32); RATE_WINDOW_SECS],
}

/// One topic as the catalog reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TopicSummary {
    /// The topic.
    pub topic: String,
    /// Events seen since this process started.
    pub count: u64,
    /// Events per second over the last minute.
    pub rate_per_sec: f64,
    /// When the first of them was seen.
    pub first_seen: Timestamp,
    /// When the last of them was seen.
    pub last_seen: Timestamp,
    /// The `source`s that published them, sorted; at most [`MAX_PRODUCERS`].
    pub producers: Vec<String>,
    /// Whether more producers were seen than are listed.
    pub more_producers: bool,
}

/// The catalog. Not synchronised: the owner wraps it in a lock.
#[derive(Debug, Default)]
pub struct Catalog {
    topics: HashMap<String, Entry>,
    evicted: u64,
}

impl Catalog {
    /// Records one event on `topic` from `source`, seen at `at`.
    pub fn observe(&mut self, topic: &Topic, source: &str, at: Timestamp) {
        if topic.tokens().next() == Some("$reply") {
            return;
        }
        if !self.topics.contains_key(topic.as_str()) && self.topics.len() >= MAX_TRACKED_TOPICS {
            // A linear scan, only when a new topic arrives at a full catalog.
            let stalest = self
                .topics
                .iter()
                .min_by_key(|(_, entry)| entry.last_seen)
                .map(|(name, _)| name.clone());
            if let Some(stalest) = stalest {
                self.topics.remove(&stalest);
                self.evicted += 1;
            }
        }
        // Looked up by `&str` first: a known topic (nearly every event) costs no allocation.
        if !self.topics.contains_key(topic.as_str()) {
            self.topics.insert(
                topic.as_str().to_owned(),
                Entry {
                    count: 0,
                    first_seen: at,
                    last_seen: at,
                    producers: BTreeSet::new(),
                    more_producers: false,
                    recent: [(i64::MIN, 0); RATE_WINDOW_SECS],
                },
            );
        }
        let entry = self
            .topics
            .get_mut(topic.as_str())
            .expect("inserted above if it was missing");
        entry.count += 1;
        entry.last_seen = entry.last_seen.max(at);
        if !entry.producers.contains(source) {
            if entry.producers.len() < MAX_PRODUCERS {
                entry.producers.insert(source.to_owned());
            } else {
                entry.more_producers = true;
            }
        }
        let second = at.as_second();
        let slot = &mut entry.recent[slot_of(second)];
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 = slot.1.saturating_add(1);
    }

    /// Every tracked topic, sorted by name, with rates as of `now`.
    pub fn summaries(&self, now: Timestamp) -> Vec<TopicSummary> {
        let now = now.as_second();
        let window = RATE_WINDOW_SECS as i64;
        let mut summaries: Vec<TopicSummary> = self
            .topics
            .iter()
            .map(|(topic, entry)| {
                let recent: u64 = entry
                    .recent
                    .iter()
                    .filter(|(second, _)| *second <= now && *second > now - window)
                    .map(|(_, count)| u64::from(*count))
                    .sum();
                TopicSummary {
                    topic: topic.clone(),
                    count: entry.count,
                    rate_per_sec: recent as f64 / RATE_WINDOW_SECS as f64,
                    first_seen: entry.first_seen,
                    last_seen: entry.last_seen,
                    producers: entry.producers.iter().cloned().collect(),
                    more_producers: entry.more_producers,
                }
            })
            .collect();
        summaries.sort_by(|a, b| a.topic.cmp(&b.topic));
        summaries
    }

    /// Topics dropped to stay within [`MAX_TRACKED_TOPICS`].
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

fn slot_of(second: i64) -> usize {
    usize::try_from(second.rem_euclid(RATE_WINDOW_SECS as i64))
        .expect("a remainder of a small positive modulus fits usize")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn topic(name: &str) -> Topic {
        Topic::new(name).unwrap()
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).unwrap()
    }

    #[test]
    fn counts_topics_with_their_producers_and_times() {
        let mut catalog = Catalog::default();
        catalog.observe(&topic("orders.created"), "shop", at(0));
        catalog.observe(&topic("orders.created"), "choreo://handler/x", at(5));
        catalog.observe(&topic("orders.created"), "shop", at(7));
        catalog.observe(&topic("orders.paid"), "bank", at(3));
        let summaries = catalog.summaries(at(7));
        assert_eq!(summaries.len(), 2);
        let created = &summaries[0];
        assert_eq!(created.topic, "orders.created");
        assert_eq!(created.count, 3);
        assert_eq!((created.first_seen, created.last_seen), (at(0), at(7)));
        assert_eq!(created.producers, ["choreo://handler/x", "shop"]);
        assert!(!created.more_producers);
        assert_eq!(summaries[1].topic, "orders.paid");
    }

    #[test]
    fn rate_covers_only_the_last_minute() {
        let mut catalog = Catalog::default();
        for second in 0..30 {
            catalog.observe(&topic("a"), "s", at(second));
            catalog.observe(&topic("a"), "s", at(second));
        }
        // 60 events within the window: one per second on average.
        assert_eq!(catalog.summaries(at(30)).first().unwrap().rate_per_sec, 1.0);
        // 75 seconds on, seconds 0..=15 have left the window.
        let later = catalog.summaries(at(75)).remove(0);
        assert_eq!(later.rate_per_sec, 28.0 / 60.0);
        assert_eq!(later.count, 60, "the count is not windowed");
        // Long after, a slot reused for a new second forgets the old count.
        catalog.observe(&topic("a"), "s", at(600));
        assert_eq!(catalog.summaries(at(600))[0].rate_per_sec, 1.0 / 60.0);
    }

    #[test]
    fn producers_are_bounded() {
        let mut catalog = Catalog::default();
        for i in 0..MAX_PRODUCERS + 5 {
            catalog.observe(&topic("t"), &format!("source-{i:02}"), at(0));
        }
        let summary = catalog.summaries(at(0)).remove(0);
        assert_eq!(summary.producers.len(), MAX_PRODUCERS);
        assert!(summary.more_producers);
    }

    #[test]
    fn a_full_catalog_evicts_the_topic_seen_least_recently() {
        let mut catalog = Catalog::default();
        for i in 0..MAX_TRACKED_TOPICS {
            catalog.observe(&topic(&format!("t.{i}")), "s", at(i as i64));
        }
        // t.0 is the stalest; seeing it again makes t.1 the stalest.
        catalog.observe(&topic("t.0"), "s", at(5_000));
        catalog.observe(&topic("new.one"), "s", at(5_001));
        let names: BTreeSet<String> = catalog
            .summaries(at(5_001))
            .into_iter()
            .map(|s| s.topic)
            .collect();
        assert_eq!(names.len(), MAX_TRACKED_TOPICS);
        assert!(names.contains("t.0") && names.contains("new.one"));
        assert!(!names.contains("t.1"));
        assert_eq!(catalog.evicted(), 1);
    }

    #[test]
    fn reply_topics_are_not_tracked() {
        let mut catalog = Catalog::default();
        catalog.observe(&topic("$reply.abc"), "s", at(0));
        catalog.observe(&topic("$dlq.orders"), "s", at(0));
        let names: Vec<String> = catalog
            .summaries(at(0))
            .into_iter()
            .map(|s| s.topic)
            .collect();
        assert_eq!(names, ["$dlq.orders"]);
    }
}
