//! Retry timing, backoff, dead-letters and replay, on tokio's paused clock.

use std::time::Duration;

use choreo_broker::{
    Broker, Committed, DeadLetterCause, EventQuery, Outcome, RetryPolicy, Selection,
};
use choreo_core::Pattern;
use tokio::time::Instant;

use crate::{Store, event, exact_retries, handler, subscription};

async fn fail(store: &Store, delivery: &choreo_broker::Delivery) -> Committed {
    let outcome = Outcome::retry(delivery.token.clone(), "boom");
    store.broker.commit(vec![outcome]).await.unwrap().remove(0)
}

async fn lease_waiting(store: &Store, name: &str) -> choreo_broker::Delivery {
    store
        .broker
        .lease(
            &handler(name),
            1,
            Duration::from_secs(30),
            Duration::from_secs(3600),
        )
        .await
        .unwrap()
        .remove(0)
}

#[tokio::test(start_paused = true)]
async fn retries_back_off_exponentially_then_dead_letter() {
    let store = Store::new();
    let mut sub = subscription("h", &["orders.>"]);
    sub.retry = exact_retries(4);
    store.subscribe(sub).await;
    store
        .subscribe(subscription("dlq-watch", &["$dlq.>"]))
        .await;
    store.subscribe(subscription("everything", &[">"])).await;
    let original = store
        .broker
        .publish(vec![event("orders.created")])
        .await
        .unwrap()[0]
        .clone();

    let mut delivery = store.lease("h", 1).await.remove(0);
    for (attempt, backoff) in [(1, 1), (2, 2), (3, 4)] {
        assert_eq!(delivery.attempt, attempt);
        let Committed::Retrying {
            attempt: failed, ..
        } = fail(&store, &delivery).await
        else {
            panic!("attempt {attempt} should be retried");
        };
        assert_eq!(failed, attempt);
        assert!(
            store.lease("h", 1).await.is_empty(),
            "not before the backoff"
        );
        let started = Instant::now();
        delivery = lease_waiting(&store, "h").await;
        assert_eq!(started.elapsed(), Duration::from_secs(backoff));
    }
    assert_eq!(delivery.attempt, 4);
    let Committed::DeadLettered { dead_letter } = fail(&store, &delivery).await else {
        panic!("the last attempt dead-letters");
    };

    let h = handler("h");
    let stats = store.broker.stats(&h).await.unwrap();
    assert_eq!((stats.queue_depth, stats.dead_letters), (0, 1));
    assert!(
        stats
            .last_error
            .unwrap()
            .contains("gave up after 4 attempts: boom")
    );
    let kept = store.broker.dead_letters(&h, None, 10).await.unwrap();
    assert_eq!(kept.len(), 1);
    assert_eq!((kept[0].event.seq, kept[0].attempts), (original.seq, 4));
    assert_eq!(kept[0].cause, DeadLetterCause::RetriesExhausted);
    assert_eq!(kept[0].last_error, "boom");
    assert_eq!(kept[0].reason(), "gave up after 4 attempts: boom");
    assert_eq!(kept[0].dead_letter_seq, dead_letter.seq);

    let dlq = store
        .broker
        .read_events(EventQuery {
            from_seq: 0,
            pattern: Some(Pattern::new("$dlq.h").unwrap()),
            limit: 10,
        })
        .await
        .unwrap();
    let dlq_event = &dlq.events[0].event;
    assert_eq!(dlq_event.causation_id.as_ref(), Some(&original.id));
    assert_eq!(dlq_event.extensions["dlqattempts"], "4");
    assert_eq!(dlq_event.extensions["dlqtopic"], "orders.created");
    assert!(dlq_event.extensions["dlqreason"].contains("boom"));
    assert_eq!(store.lease("dlq-watch", 10).await.len(), 1);
    assert_eq!(
        store.lease("everything", 10).await.len(),
        1,
        "`>` does not match the reserved `$dlq` topic"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dead_letter_outcome_skips_the_retries() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.broker.publish(vec![event("a")]).await.unwrap();
    let delivery = store.lease("h", 1).await.remove(0);
    let outcome = Outcome::dead_letter(delivery.token, "rejected: bad payload");
    let committed = store.broker.commit(vec![outcome]).await.unwrap();
    assert!(matches!(committed[0], Committed::DeadLettered { .. }));
    let kept = store
        .broker
        .dead_letter(&handler("h"), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (kept.cause, kept.last_error.as_str(), kept.attempts),
        (DeadLetterCause::Rejected, "rejected: bad payload", 1)
    );
    assert_eq!(kept.reason(), "rejected: bad payload");
}

#[tokio::test(start_paused = true)]
async fn replay_requeues_for_that_handler_only_and_discard_forgets() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.subscribe(subscription("other", &["a"])).await;
    store
        .broker
        .publish(vec![event("a"), event("a"), event("a")])
        .await
        .unwrap();
    for _ in 0..3 {
        let delivery = store.lease("h", 1).await.remove(0);
        store
            .broker
            .commit(vec![Outcome::dead_letter(delivery.token, "no")])
            .await
            .unwrap();
    }
    let h = handler("h");
    assert_eq!(store.broker.replay(&h, Selection::One(2)).await.unwrap(), 1);
    let replayed = store.lease("h", 10).await;
    assert_eq!(replayed.len(), 1);
    assert_eq!((replayed[0].event.seq, replayed[0].attempt), (2, 1));
    store.ack(&replayed[0]).await;
    assert!(store.broker.replay(&h, Selection::One(2)).await.is_err());
    assert_eq!(
        store.broker.discard(&h, Selection::One(1)).await.unwrap(),
        1
    );
    assert_eq!(store.broker.replay(&h, Selection::All).await.unwrap(), 1);
    let rest = store.lease("h", 10).await;
    assert_eq!(rest.iter().map(|d| d.event.seq).collect::<Vec<_>>(), [3]);
    let other = store.broker.stats(&handler("other")).await.unwrap();
    assert_eq!(other.queue_depth, 3, "replay touched only h's queue");
    assert_eq!(store.broker.stats(&h).await.unwrap().dead_letters, 0);
}

#[tokio::test(start_paused = true)]
async fn jitter_shortens_a_delay_by_at_most_its_fraction() {
    let store = Store::new();
    let mut sub = subscription("h", &["a"]);
    sub.retry = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_secs(8),
        max_backoff: Duration::from_secs(8),
        jitter: 0.5,
    };
    store.subscribe(sub).await;
    store.broker.publish(vec![event("a")]).await.unwrap();
    let mut delivery = store.lease("h", 1).await.remove(0);
    let mut delays = Vec::new();
    for _ in 0..5 {
        assert!(matches!(
            fail(&store, &delivery).await,
            Committed::Retrying { .. }
        ));
        let started = Instant::now();
        delivery = lease_waiting(&store, "h").await;
        delays.push(started.elapsed());
    }
    for delay in &delays {
        assert!(
            (Duration::from_secs(4)..=Duration::from_secs(8)).contains(delay),
            "{delays:?}"
        );
    }
}

#[test]
fn backoff_doubles_up_to_its_cap() {
    let policy = RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(100),
        max_backoff: Duration::from_secs(1),
        jitter: 0.5,
    };
    let exact: Vec<u64> = (1..=6)
        .map(|a| policy.backoff(a, 0.0).as_millis() as u64)
        .collect();
    assert_eq!(exact, [100, 200, 400, 800, 1000, 1000]);
    assert_eq!(policy.backoff(2, 0.999_999).as_millis(), 100);
    assert_eq!(policy.backoff(u32::MAX, 0.0), Duration::from_secs(1));
}
