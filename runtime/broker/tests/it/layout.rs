//! The chunked layout (issue 3, performance): the log in chunks of consecutive events
//! and queues in bitmap chunks with delivery state apart. Each test reopens the store,
//! since a layout mistake shows up as what recovery or a read finds on disk.

use std::time::Duration;

use choreo_broker::{Broker, Outcome, Retention};

use crate::{
    Store, earliest, event, exact_retries, handler, keyed, subscription, whole_log, with_id,
};

async fn all_seqs(store: &Store) -> Vec<u64> {
    whole_log(&*store.broker)
        .await
        .iter()
        .map(|e| e.seq)
        .collect()
}

#[tokio::test]
async fn dedup_and_lookup_by_id_hold_after_a_reopen() {
    let store = Store::new();
    let first = store
        .broker
        .publish(vec![event("a"), with_id("a", "order-1"), event("a")])
        .await
        .unwrap();
    let store = store.reopen(|_| {}).await;
    let again = store
        .broker
        .publish(vec![with_id("a", "order-1")])
        .await
        .unwrap();
    assert_eq!((again[0].seq, again[0].duplicate), (first[1].seq, true));
    let found = store.broker.event_by_id(&first[1].id).await.unwrap();
    assert_eq!(found.unwrap().seq, 2, "the middle of a chunk");
    let last = store.broker.event_by_id(&first[2].id).await.unwrap();
    assert_eq!(last.unwrap().seq, 3);
}

#[tokio::test(start_paused = true)]
async fn retention_takes_events_out_of_a_chunk_and_keeps_what_queues_hold() {
    let store = Store::with(|c| {
        c.retention = Retention {
            max_age: Some(Duration::from_secs(60)),
            max_bytes: None,
        };
        c.retention_interval = Duration::from_secs(1_000_000);
    });
    let mut sub = subscription("h", &["held"]);
    sub.concurrency = 16;
    store.subscribe(sub).await;
    // One publish, one chunk: seqs 1-12, every third one held by h's queue.
    let batch = (1..=12)
        .map(|seq| {
            if seq % 3 == 0 {
                keyed("held", &format!("k{seq}"))
            } else {
                event("loose")
            }
        })
        .collect();
    let published = store.broker.publish(batch).await.unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    assert_eq!(store.broker.enforce_retention().await.unwrap(), 8);
    assert_eq!(all_seqs(&store).await, [3, 6, 9, 12]);

    let store = store.reopen(|c| c.retention.max_age = None).await;
    assert_eq!(all_seqs(&store).await, [3, 6, 9, 12]);
    assert!(
        store
            .broker
            .event_by_id(&published[0].id)
            .await
            .unwrap()
            .is_none()
    );
    let held = store.broker.event_by_id(&published[5].id).await.unwrap();
    assert_eq!(held.unwrap().seq, 6);
    let leased = store.lease("h", 10).await;
    let seqs: Vec<u64> = leased.iter().map(|d| d.event.seq).collect();
    assert_eq!(seqs, [3, 6, 9, 12]);
    for delivery in &leased {
        store.ack(delivery).await;
    }
    let next = store.broker.publish(vec![event("loose")]).await.unwrap();
    assert_eq!(next[0].seq, 13, "seqs are never reused");
}

#[tokio::test]
async fn a_queue_spanning_many_chunks_comes_back_whole() {
    let store = Store::new();
    let mut sub = subscription("h", &["in.>"]);
    sub.concurrency = 4096;
    store.subscribe(sub).await;
    // 3,000 events over three queue chunks; distinct keys so all can be leased at once.
    for round in 0..3 {
        let batch = (0..1000)
            .map(|i| keyed("in.x", &format!("k{}", round * 1000 + i)))
            .collect();
        store.broker.publish(batch).await.unwrap();
    }
    let mut leased = Vec::new();
    while leased.len() < 3000 {
        leased.extend(store.lease("h", 1024).await);
    }
    // Ack every seq divisible by 7; leave the rest leased.
    let acks = leased
        .iter()
        .filter(|d| d.event.seq % 7 == 0)
        .map(|d| Outcome::ack(d.token.clone(), vec![], vec![]))
        .collect();
    store.broker.commit(acks).await.unwrap();
    store.broker.flush().await.unwrap();

    let store = store.reopen(|_| {}).await;
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!(stats.queue_depth, 3000 - 3000 / 7);
    assert_eq!(
        stats.in_flight, 0,
        "leases end with the process that took them"
    );
    assert_eq!(stats.oldest_pending_seq, Some(1));
    let mut again = Vec::new();
    while again.len() < 3000 - 3000 / 7 {
        again.extend(store.lease("h", 1024).await);
    }
    assert!(
        again.iter().all(|d| d.attempt == 2 && d.event.seq % 7 != 0),
        "the leases were recorded: every unacked event comes back as a second attempt"
    );
}

#[tokio::test(start_paused = true)]
async fn a_retrying_entry_keeps_its_state_and_its_key_order_across_a_reopen() {
    let store = Store::new();
    let mut sub = earliest(subscription("h", &["a"]));
    sub.retry = exact_retries(5);
    sub.concurrency = 16;
    store
        .broker
        .publish(vec![keyed("a", "x"), keyed("a", "x"), keyed("a", "y")])
        .await
        .unwrap();
    store.subscribe(sub).await;
    let first = store.lease("h", 10).await;
    assert_eq!(
        first.iter().map(|d| d.event.seq).collect::<Vec<_>>(),
        [1, 3]
    );
    let retry = Outcome::retry(first[0].token.clone(), "later");
    store.broker.commit(vec![retry]).await.unwrap();
    store.ack(&first[1]).await;

    let store = store.reopen(|_| {}).await;
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!((stats.queue_depth, stats.in_flight), (2, 0));
    assert!(
        store.lease("h", 10).await.is_empty(),
        "seq 1 waits out its backoff and seq 2 (key x) waits behind it"
    );
    tokio::time::advance(Duration::from_secs(2)).await;
    let again = store.lease("h", 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].event.seq, again[0].attempt), (1, 2));
}

#[tokio::test(start_paused = true)]
async fn a_retry_time_set_by_a_clock_since_stepped_back_waits_no_longer_than_the_longest_backoff() {
    let store = Store::new();
    let mut sub = earliest(subscription("h", &["a"]));
    sub.retry = exact_retries(5);
    store.broker.publish(vec![keyed("a", "x")]).await.unwrap();
    store.subscribe(sub).await;
    let first = store.lease("h", 1).await.remove(0);
    let retry = Outcome::retry(first.token.clone(), "later");
    store.broker.commit(vec![retry]).await.unwrap();

    // Reopened with the wall clock an hour behind the one that set the retry time.
    let closed_at = store.broker.clock().now_ms() as i64;
    let behind = choreo_core::Timestamp::from_millisecond(closed_at - 3_600_000).unwrap();
    let store = store
        .reopen(move |c| c.clock = Some(choreo_broker::Clock::starting_at(behind)))
        .await;
    assert!(store.lease("h", 1).await.is_empty(), "still backing off");
    // The policy's longest backoff is 10 s.
    tokio::time::advance(Duration::from_secs(11)).await;
    let again = store.lease("h", 1).await;
    assert_eq!(
        again
            .iter()
            .map(|d| (d.event.seq, d.attempt))
            .collect::<Vec<_>>(),
        [(1, 2)]
    );
}
