//! Per-key ordering with several workers leasing concurrently and some deliveries failing.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use choreo_broker::{Broker, Outcome, RetryPolicy};
use rand::{Rng, SeedableRng};

use crate::{Store, handler, keyed, subscription};

const KEYS: usize = 6;
const EVENTS: usize = 240;

#[derive(Default)]
struct Seen {
    in_flight: HashSet<String>,
    max_in_flight: usize,
    acked: BTreeMap<String, Vec<u64>>,
}

#[tokio::test(start_paused = true)]
async fn same_key_events_are_handled_one_at_a_time_in_seq_order() {
    let store = Store::new();
    let mut sub = subscription("h", &["orders.>"]);
    sub.concurrency = 4;
    sub.retry = RetryPolicy {
        max_attempts: 100,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        jitter: 0.5,
    };
    store.subscribe(sub).await;
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let events: Vec<_> = (0..EVENTS)
        .map(|_| {
            keyed(
                "orders.created",
                &format!("customer-{}", rng.random_range(0..KEYS)),
            )
        })
        .collect();
    for chunk in events.chunks(40) {
        store.broker.publish(chunk.to_vec()).await.unwrap();
    }

    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut workers = Vec::new();
    for worker in 0..3u64 {
        let broker = store.broker.clone();
        let seen = seen.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(worker);
            loop {
                let deliveries = broker
                    .lease(
                        &handler("h"),
                        2,
                        Duration::from_secs(30),
                        Duration::from_secs(1),
                    )
                    .await
                    .unwrap();
                if deliveries.is_empty() {
                    return;
                }
                for d in &deliveries {
                    let key = d.event.event.ordering_key().to_owned();
                    let mut s = seen.lock().unwrap();
                    assert!(
                        s.in_flight.insert(key),
                        "two deliveries of one key in flight"
                    );
                    s.max_in_flight = s.max_in_flight.max(s.in_flight.len());
                }
                // Work takes a while and lets other workers lease in between.
                tokio::time::sleep(Duration::from_millis(rng.random_range(1..20))).await;
                let mut outcomes = Vec::new();
                for d in deliveries {
                    let key = d.event.event.ordering_key().to_owned();
                    let failed = rng.random_bool(0.25);
                    {
                        let mut s = seen.lock().unwrap();
                        s.in_flight.remove(&key);
                        if !failed {
                            s.acked.entry(key).or_default().push(d.event.seq);
                        }
                    }
                    outcomes.push(if failed {
                        Outcome::retry(d.token, "flaky")
                    } else {
                        Outcome::ack(d.token, vec![], vec![])
                    });
                }
                broker.commit(outcomes).await.unwrap();
            }
        }));
    }
    for worker in workers {
        worker.await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let total: usize = seen.acked.values().map(Vec::len).sum();
    assert_eq!(total, EVENTS, "every event acked once");
    for (key, seqs) in &seen.acked {
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "key {key} out of order: {seqs:?}"
        );
    }
    assert!(seen.max_in_flight > 1, "different keys ran concurrently");
    assert!(seen.max_in_flight <= 4, "concurrency bound held");
}
