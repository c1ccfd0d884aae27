//! Routing through the broker agrees with a naive matcher, as subscriptions change.

use std::collections::BTreeSet;
use std::time::Duration;

use choreo_broker::{Broker, Subscription};
use choreo_core::{Event, Pattern, Topic};
use proptest::prelude::*;

use crate::{Store, handler};

/// NATS subject matching plus choreo's rule that a leading wildcard skips `$` topics.
fn naive_matches(pattern: &str, topic: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let t: Vec<&str> = topic.split('.').collect();
    if t[0].starts_with('$') && (p[0] == "*" || p[0] == ">") {
        return false;
    }
    for (i, token) in p.iter().enumerate() {
        match *token {
            ">" => return t.len() > i,
            "*" if i < t.len() => {}
            literal if i < t.len() && literal == t[i] => {}
            _ => return false,
        }
    }
    p.len() == t.len()
}

fn topic_strategy() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c", "$dlq"]), 1..4)
        .prop_map(|tokens| tokens.join("."))
}

fn pattern_strategy() -> impl Strategy<Value = String> {
    let token = prop::sample::select(vec!["a", "b", "$dlq", "*"]);
    (prop::collection::vec(token, 1..4), any::<bool>()).prop_map(|(mut tokens, tail)| {
        if tail {
            tokens.push(">");
        }
        tokens.join(".")
    })
}

/// Publishes one event per topic and returns, per handler, the topics of its queue.
async fn routed(store: &Store, handlers: usize, topics: &[String]) -> Vec<BTreeSet<String>> {
    let events: Vec<Event> = topics
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mut e = Event::new(Topic::new(t.as_str()).unwrap(), "test://routing", vec![]);
            e.key = Some(format!("k{i}"));
            e
        })
        .collect();
    store.broker.publish(events).await.unwrap();
    let mut out = Vec::new();
    for h in 0..handlers {
        let delivered = store
            .broker
            .lease(
                &handler(&format!("h{h}")),
                1024,
                Duration::from_secs(60),
                Duration::ZERO,
            )
            .await
            .unwrap();
        let mut topics = BTreeSet::new();
        for d in delivered {
            topics.insert(d.event.event.topic.as_str().to_owned());
            store.ack(&d).await;
        }
        out.push(topics);
    }
    out
}

fn expected(patterns: &[Vec<String>], topics: &[String]) -> Vec<BTreeSet<String>> {
    patterns
        .iter()
        .map(|ps| {
            topics
                .iter()
                .filter(|t| ps.iter().any(|p| naive_matches(p, t)))
                .cloned()
                .collect()
        })
        .collect()
}

async fn subscribe_all(store: &Store, patterns: &[Vec<String>]) {
    for (h, ps) in patterns.iter().enumerate() {
        let mut sub = Subscription::new(
            handler(&format!("h{h}")),
            ps.iter()
                .map(|p| Pattern::new(p.as_str()).unwrap())
                .collect(),
        );
        sub.concurrency = 1024;
        store.broker.subscribe(sub).await.unwrap();
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn the_broker_routes_like_the_naive_matcher(
        before in prop::collection::vec(prop::collection::vec(pattern_strategy(), 1..3), 1..6),
        after in prop::collection::vec(prop::collection::vec(pattern_strategy(), 1..3), 6),
        topics in prop::collection::vec(topic_strategy(), 1..12),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let store = Store::new();
            subscribe_all(&store, &before).await;
            prop_assert_eq!(routed(&store, before.len(), &topics).await, expected(&before, &topics));
            // Re-subscribing replaces each handler's patterns (and adds handlers).
            let after = &after[..before.len().max(1)];
            subscribe_all(&store, after).await;
            prop_assert_eq!(routed(&store, after.len(), &topics).await, expected(after, &topics));
            Ok(())
        })?;
    }
}

#[test]
fn the_naive_matcher_knows_the_rules() {
    assert!(naive_matches("a.>", "a.b.c"));
    assert!(!naive_matches("a.>", "a"));
    assert!(naive_matches("*.b", "a.b"));
    assert!(!naive_matches(">", "$dlq.a"));
    assert!(naive_matches("$dlq.>", "$dlq.a"));
    assert!(!naive_matches("a.*", "a.b.c"));
}

#[tokio::test]
async fn filtered_reads_and_head_reads_agree_with_the_whole_log() {
    let store = Store::new();
    let topics = [
        "orders.created",
        "orders.paid",
        "stock.low",
        "orders.created.eu",
    ];
    let events: Vec<Event> = (0..40)
        .map(|n| {
            let mut event = crate::event(topics[n % topics.len()]);
            event.source = format!("test://source-{}", n % 3);
            event
        })
        .collect();
    store.broker.publish(events).await.unwrap();
    let log = crate::whole_log(&*store.broker).await;
    assert_eq!(log.len(), 40);

    let pattern = Pattern::new("orders.*").unwrap();
    let mut filtered = Vec::new();
    let mut from_seq = 0;
    loop {
        let page = store
            .broker
            .read_events(choreo_broker::EventQuery {
                from_seq,
                pattern: Some(pattern.clone()),
                limit: 4,
            })
            .await
            .unwrap();
        if page.events.is_empty() {
            break;
        }
        from_seq = page.next_seq;
        filtered.extend(page.events);
    }
    let expected: Vec<_> = log
        .iter()
        .filter(|e| pattern.matches(&e.event.topic))
        .cloned()
        .collect();
    assert_eq!(filtered, expected);

    let mut heads = Vec::new();
    let mut from_seq = 0;
    loop {
        let page = store.broker.read_event_heads(from_seq, 7).await.unwrap();
        if page.heads.is_empty() {
            break;
        }
        assert!(page.heads.len() <= 7);
        from_seq = page.next_seq;
        heads.extend(page.heads);
    }
    let expected: Vec<_> = log
        .iter()
        .map(|e| choreo_broker::EventHead {
            seq: e.seq,
            topic: e.event.topic.clone(),
            source: e.event.source.clone(),
        })
        .collect();
    assert_eq!(heads, expected);
}
