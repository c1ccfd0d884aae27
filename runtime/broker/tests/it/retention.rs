//! Retention trims the log by age and size but never drops what a queue or a
//! dead-letter index holds.

use std::time::Duration;

use choreo_broker::{Broker, EventQuery, Outcome, Retention};

use crate::{Store, event, handler, subscription};

async fn retained(store: &Store) -> Vec<u64> {
    let page = store
        .broker
        .read_events(EventQuery {
            from_seq: 0,
            pattern: None,
            limit: 1000,
        })
        .await
        .unwrap();
    page.events.iter().map(|e| e.seq).collect()
}

#[tokio::test(start_paused = true)]
async fn old_events_go_unless_a_queue_or_dead_letter_holds_them() {
    let store = Store::with(|c| {
        c.retention = Retention {
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: None,
        };
        c.retention_interval = Duration::from_secs(1_000_000);
    });
    store.subscribe(subscription("h", &["held"])).await;
    // seqs 1-4 are held by h's queue, 5-8 by nobody.
    let held: Vec<_> = (0..4).map(|_| event("held")).collect();
    let loose: Vec<_> = (0..4).map(|_| event("loose")).collect();
    store.broker.publish(held).await.unwrap();
    let loose_ids = store.broker.publish(loose).await.unwrap();
    // Ack seq 1; dead-letter seq 2; 3 and 4 stay queued.
    let first = store.lease("h", 1).await.remove(0);
    store.ack(&first).await;
    let second = store.lease("h", 1).await.remove(0);
    store
        .broker
        .commit(vec![Outcome::dead_letter(second.token, "no")])
        .await
        .unwrap();

    assert_eq!(
        store.broker.enforce_retention().await.unwrap(),
        0,
        "nothing is old yet"
    );
    tokio::time::advance(Duration::from_secs(3601)).await;
    let fresh = store.broker.publish(vec![event("loose")]).await.unwrap();
    let removed = store.broker.enforce_retention().await.unwrap();
    // 1 (acked), 5-8 (never queued) and 9 (the `$dlq.h` event, queued nowhere) go;
    // 2 (dead-lettered), 3 and 4 (queued) stay.
    let left = retained(&store).await;
    assert!(
        left.contains(&2) && left.contains(&3) && left.contains(&4),
        "{left:?}"
    );
    assert!(left.contains(&fresh[0].seq), "young events stay");
    for gone in [1, 5, 6, 7, 8] {
        assert!(!left.contains(&gone), "{gone} should be gone: {left:?}");
    }
    assert_eq!(removed, 6, "1, 5-8 and the old `$dlq.h` event");
    assert!(
        store
            .broker
            .event_by_id(&loose_ids[0].id)
            .await
            .unwrap()
            .is_none()
    );
    // What is held is still deliverable and replayable.
    assert_eq!(store.lease("h", 10).await.len(), 1, "seq 3 (same key as 4)");
    assert_eq!(
        store
            .broker
            .replay(&handler("h"), choreo_broker::Selection::One(2))
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn the_oldest_unheld_events_go_when_the_log_is_over_its_size() {
    let store = Store::with(|c| {
        c.retention = Retention {
            max_age: None,
            max_bytes: Some(2_000),
        };
    });
    store.subscribe(subscription("h", &["held"])).await;
    let mut batch = vec![event("held")];
    batch.extend((0..20).map(|_| event("loose")));
    store.broker.publish(batch).await.unwrap();
    let removed = store.broker.enforce_retention().await.unwrap();
    assert!(removed > 0);
    let left = retained(&store).await;
    assert_eq!(left[0], 1, "the held event stays though it is the oldest");
    assert_eq!(*left.last().unwrap(), 21, "the newest stay");
    assert_eq!(left.len(), 21 - removed);
    // The size is accounted across restarts: nothing more to remove.
    let store = store
        .reopen(|c| {
            c.retention = Retention {
                max_age: None,
                max_bytes: Some(2_000),
            };
        })
        .await;
    assert_eq!(store.broker.enforce_retention().await.unwrap(), 0);
    let next = store.broker.publish(vec![event("loose")]).await.unwrap();
    assert_eq!(next[0].seq, 22);
}
