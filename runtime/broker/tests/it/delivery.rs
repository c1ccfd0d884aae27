//! Publish, fan-out, lease, outbox commit, state, dedup, start positions, pause, restart.

use std::time::Duration;

use choreo_broker::{
    Broker, Committed, Error, EventQuery, Outcome, StartPosition, StateView, StateWrite,
};
use choreo_core::{Pattern, Topic};

use crate::{Store, earliest, event, handler, subscription, with_id};

#[tokio::test]
async fn fans_out_to_every_matching_handler_once() {
    let store = Store::new();
    store
        .subscribe(subscription("a", &["orders.*", "orders.>"]))
        .await;
    store
        .subscribe(subscription("b", &["orders.created"]))
        .await;
    store.subscribe(subscription("c", &["payments.>"])).await;
    let published = store
        .broker
        .publish(vec![event("orders.created"), event("orders.paid.eu")])
        .await
        .unwrap();
    assert_eq!(published.iter().map(|p| p.seq).collect::<Vec<_>>(), [1, 2]);
    let seqs =
        |ds: Vec<choreo_broker::Delivery>| ds.iter().map(|d| d.event.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.lease("a", 10).await), [1, 2]);
    assert_eq!(seqs(store.lease("b", 10).await), [1]);
    assert!(store.lease("c", 10).await.is_empty());
}

#[tokio::test]
async fn an_ack_commits_its_publishes_and_state_writes_together() {
    let store = Store::new();
    store.subscribe(subscription("worker", &["in.>"])).await;
    store
        .subscribe(subscription("downstream", &["out.>"]))
        .await;
    store.broker.publish(vec![event("in.x")]).await.unwrap();
    let delivery = store.lease("worker", 1).await.remove(0);
    assert_eq!(delivery.attempt, 1);
    let outcome = Outcome::ack(
        delivery.token.clone(),
        vec![event("out.a"), event("out.b")],
        vec![
            StateWrite {
                key: b"count/x".to_vec(),
                value: Some(b"1".to_vec()),
            },
            StateWrite {
                key: b"count/y".to_vec(),
                value: Some(b"2".to_vec()),
            },
        ],
    );
    let committed = store.broker.commit(vec![outcome]).await.unwrap();
    let Committed::Acked { published } = &committed[0] else {
        panic!("expected an ack, got {committed:?}");
    };
    assert_eq!(published.iter().map(|p| p.seq).collect::<Vec<_>>(), [2, 3]);
    let worker = handler("worker");
    assert_eq!(
        store
            .broker
            .state_get(&worker, b"count/x", StateView::Durable)
            .await
            .unwrap(),
        Some(b"1".to_vec())
    );
    let scanned = store
        .broker
        .state_scan(&worker, StateView::Durable, b"count/", None, 10)
        .await
        .unwrap();
    assert_eq!(scanned.len(), 2);
    let after = store
        .broker
        .state_scan(&worker, StateView::Durable, b"count/", Some(b"count/x"), 10)
        .await
        .unwrap();
    assert_eq!(after, vec![(b"count/y".to_vec(), b"2".to_vec())]);
    assert_eq!(store.broker.stats(&worker).await.unwrap().queue_depth, 0);
    assert_eq!(store.lease("downstream", 10).await.len(), 2);
    // A second commit of the same delivery finds no lease.
    let again = Outcome::ack(delivery.token, vec![event("out.c")], vec![]);
    assert_eq!(
        store.broker.commit(vec![again]).await.unwrap(),
        [Committed::LeaseLost]
    );
    let log = store
        .broker
        .read_events(EventQuery {
            from_seq: 1,
            pattern: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(log.events.len(), 3, "the stale commit published nothing");
}

#[tokio::test]
async fn state_deletes_and_keyspaces_are_per_handler() {
    let store = Store::new();
    store.subscribe(subscription("a", &["t"])).await;
    store.subscribe(subscription("b", &["t"])).await;
    store
        .broker
        .publish(vec![event("t"), event("t")])
        .await
        .unwrap();
    let write = |key: &str, value: Option<&str>| StateWrite {
        key: key.as_bytes().to_vec(),
        value: value.map(|v| v.as_bytes().to_vec()),
    };
    let first = store.lease("a", 1).await.remove(0);
    let outcome = Outcome::ack(first.token, vec![], vec![write("k", Some("v"))]);
    store.broker.commit(vec![outcome]).await.unwrap();
    let second = store.lease("a", 1).await.remove(0);
    let outcome = Outcome::ack(second.token, vec![], vec![write("k", None)]);
    store.broker.commit(vec![outcome]).await.unwrap();
    assert_eq!(
        store
            .broker
            .state_get(&handler("a"), b"k", StateView::Durable)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .broker
            .state_get(&handler("b"), b"k", StateView::Durable)
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_duplicate_publish_returns_the_original_seq() {
    let store = Store::new();
    store.subscribe(subscription("h", &[">"])).await;
    let first = store
        .broker
        .publish(vec![with_id("a", "order-1")])
        .await
        .unwrap();
    let again = store
        .broker
        .publish(vec![
            with_id("a", "order-1"),
            with_id("a", "order-2"),
            with_id("a", "order-2"),
        ])
        .await
        .unwrap();
    assert!(!first[0].duplicate);
    assert_eq!((again[0].seq, again[0].duplicate), (first[0].seq, true));
    assert_eq!((again[1].seq, again[1].duplicate), (2, false));
    assert_eq!((again[2].seq, again[2].duplicate), (2, true));
    assert_eq!(
        store.broker.stats(&handler("h")).await.unwrap().queue_depth,
        2
    );
    // The same id from another source is another event.
    let mut other = with_id("a", "order-1");
    other.source = "test://elsewhere".into();
    assert!(!store.broker.publish(vec![other]).await.unwrap()[0].duplicate);
    let found = store
        .broker
        .event_by_id(&choreo_core::EventId::new("order-2").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.seq, 2);
}

#[tokio::test]
async fn a_fresh_publish_is_neither_checked_against_nor_kept_in_the_dedup_window() {
    let store = Store::new();
    let kept = store.broker.publish(vec![with_id("a", "k")]).await.unwrap();
    // Fresh events are appended even when the window holds their (source, id): their
    // ids are generated, so the caller vouches they cannot repeat.
    let fresh = store
        .broker
        .publish_fresh(vec![with_id("a", "k"), with_id("a", "f")])
        .await
        .unwrap();
    assert!(fresh.iter().all(|p| !p.duplicate));
    assert!(fresh[0].seq > kept[0].seq);
    // And the window did not keep them.
    let later = store.broker.publish(vec![with_id("a", "f")]).await.unwrap();
    assert!(!later[0].duplicate);
    assert!(later[0].seq > fresh[1].seq);
    assert!(matches!(
        store.broker.publish_fresh(Vec::new()).await,
        Err(choreo_broker::Error::EmptyBatch)
    ));
}

#[tokio::test(start_paused = true)]
async fn dedup_ends_with_its_window() {
    let store = Store::with(|c| c.dedup_window = Duration::from_secs(60));
    let first = store.broker.publish(vec![with_id("a", "x")]).await.unwrap();
    tokio::time::advance(Duration::from_secs(61)).await;
    let later = store.broker.publish(vec![with_id("a", "x")]).await.unwrap();
    assert!(!later[0].duplicate);
    assert!(later[0].seq > first[0].seq);
}

#[tokio::test]
async fn bad_input_is_refused_and_changes_nothing() {
    let store = Store::with(|c| c.max_event_bytes = 1024);
    store.subscribe(subscription("h", &["a"])).await;
    store.broker.publish(vec![event("a")]).await.unwrap();
    let before = store
        .broker
        .read_events(EventQuery {
            from_seq: 0,
            pattern: None,
            limit: 100,
        })
        .await
        .unwrap();

    assert!(
        Topic::new("a..b").is_err(),
        "a bad topic cannot even be built"
    );
    assert!(Pattern::new("a.>.b").is_err());
    let mut big = event("a");
    big.data = vec![0; 2048];
    let err = store
        .broker
        .publish(vec![event("a"), big])
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::EventTooLarge { max: 1024, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("on `a`"), "{err}");
    assert!(matches!(
        store.broker.publish(vec![]).await,
        Err(Error::EmptyBatch)
    ));
    let mut nameless = event("a");
    nameless.source.clear();
    assert!(matches!(
        store.broker.publish(vec![nameless]).await,
        Err(Error::InvalidEvent { .. })
    ));
    let unknown = handler("nobody");
    let err = store
        .broker
        .lease(&unknown, 1, Duration::from_secs(1), Duration::ZERO)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no handler `nobody` is subscribed");
    assert!(matches!(
        store.broker.pause(&unknown).await,
        Err(Error::UnknownHandler { .. })
    ));
    assert!(matches!(
        store
            .broker
            .state_get(&unknown, b"k", StateView::Durable)
            .await,
        Err(Error::UnknownHandler { .. })
    ));
    // One bad outcome refuses the whole commit, including the valid ack beside it.
    let delivery = store.lease("h", 1).await.remove(0);
    let ok = Outcome::ack(delivery.token.clone(), vec![event("a")], vec![]);
    let oversized_state = Outcome::ack(
        delivery.token,
        vec![],
        vec![StateWrite {
            key: vec![b'k'; 5000],
            value: None,
        }],
    );
    assert!(matches!(
        store.broker.commit(vec![ok, oversized_state]).await,
        Err(Error::StateTooLarge { what: "key", .. })
    ));
    let after = store
        .broker
        .read_events(EventQuery {
            from_seq: 0,
            pattern: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(before.events, after.events);
}

#[tokio::test]
async fn a_commit_naming_an_unknown_handler_commits_nothing() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.subscribe(subscription("gone", &["a"])).await;
    store.broker.publish(vec![event("a")]).await.unwrap();
    let mine = store.lease("h", 1).await.remove(0);
    let theirs = store.lease("gone", 1).await.remove(0);
    store.broker.remove(&handler("gone")).await.unwrap();
    let outcomes = vec![
        Outcome::ack(mine.token, vec![event("b")], vec![]),
        Outcome::ack(theirs.token, vec![], vec![]),
    ];
    let err = store.broker.commit(outcomes).await.unwrap_err();
    assert!(matches!(err, Error::UnknownHandler { .. }), "{err}");
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!(
        (stats.queue_depth, stats.in_flight),
        (1, 1),
        "the ack was not applied"
    );
    let log = store
        .broker
        .read_events(EventQuery {
            from_seq: 0,
            pattern: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert_eq!(log.events.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn start_positions_choose_what_a_new_queue_holds() {
    let store = Store::new();
    store
        .broker
        .publish(vec![event("a"), event("b")])
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;
    let middle = store.broker.clock().now();
    store.broker.publish(vec![event("a")]).await.unwrap();
    store.subscribe(earliest(subscription("all", &["a"]))).await;
    store.subscribe(subscription("next", &["a"])).await;
    let mut since = subscription("since", &["a"]);
    since.start = StartPosition::Time(middle);
    store.subscribe(since).await;
    let seqs =
        |ds: Vec<choreo_broker::Delivery>| ds.iter().map(|d| d.event.seq).collect::<Vec<_>>();
    assert_eq!(seqs(store.lease("all", 10).await), [1]);
    assert!(store.lease("next", 10).await.is_empty());
    assert_eq!(seqs(store.lease("since", 10).await), [3]);
    // Re-subscribing keeps the queue and never replays.
    store
        .subscribe(earliest(subscription("next", &["a", "b"])))
        .await;
    assert!(store.lease("next", 10).await.is_empty());
    store.broker.publish(vec![event("b")]).await.unwrap();
    assert_eq!(seqs(store.lease("next", 10).await), [4]);
}

#[tokio::test]
async fn resubscribing_moves_routing_and_keeps_the_queue() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a.*"])).await;
    store.broker.publish(vec![event("a.x")]).await.unwrap();
    store.subscribe(subscription("h", &["b.*"])).await;
    store
        .broker
        .publish(vec![event("a.y"), event("b.y")])
        .await
        .unwrap();
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!(stats.queue_depth, 2);
    assert_eq!(stats.patterns, vec![Pattern::new("b.*").unwrap()]);
    store.broker.remove(&handler("h")).await.unwrap();
    store.broker.publish(vec![event("b.z")]).await.unwrap();
    assert!(store.broker.stats(&handler("h")).await.is_err());
}

// Real time: with tokio's clock paused, the waiting lease's timer would fire the moment
// the test awaits the writer thread. Nothing here sleeps; the lease returns in ms.
#[tokio::test]
async fn a_paused_handler_keeps_enqueueing_and_resumes_where_it_was() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.broker.pause(&handler("h")).await.unwrap();
    store.broker.publish(vec![event("a")]).await.unwrap();
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert!(stats.paused);
    assert_eq!(stats.queue_depth, 1);
    let broker = store.broker.clone();
    let waiting = tokio::spawn(async move {
        broker
            .lease(
                &handler("h"),
                1,
                Duration::from_secs(30),
                Duration::from_secs(3600),
            )
            .await
            .unwrap()
    });
    tokio::task::yield_now().await;
    let before = std::time::Instant::now();
    store.broker.resume(&handler("h")).await.unwrap();
    let delivered = waiting.await.unwrap();
    assert_eq!(delivered.len(), 1);
    assert!(
        before.elapsed() < Duration::from_secs(60),
        "resume woke the waiting lease"
    );
}

// Real time, for the reason given above.
#[tokio::test]
async fn a_long_poll_returns_as_soon_as_an_event_arrives() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    let broker = store.broker.clone();
    let waiting = tokio::spawn(async move {
        broker
            .lease(
                &handler("h"),
                8,
                Duration::from_secs(30),
                Duration::from_secs(60),
            )
            .await
            .unwrap()
    });
    tokio::task::yield_now().await;
    let before = std::time::Instant::now();
    store.broker.publish(vec![event("a")]).await.unwrap();
    assert_eq!(waiting.await.unwrap().len(), 1);
    assert!(
        before.elapsed() < Duration::from_secs(30),
        "the publish woke the lease"
    );
}

#[tokio::test(start_paused = true)]
async fn an_expired_lease_is_delivered_again() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.broker.publish(vec![event("a")]).await.unwrap();
    let h = handler("h");
    let first = store
        .broker
        .lease(&h, 1, Duration::from_secs(5), Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    let started = tokio::time::Instant::now();
    let second = store
        .broker
        .lease(&h, 1, Duration::from_secs(5), Duration::from_secs(60))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(started.elapsed(), Duration::from_secs(5));
    assert_eq!((second.event.seq, second.attempt), (first.event.seq, 2));
    let stale = Outcome::ack(first.token, vec![], vec![]);
    assert_eq!(
        store.broker.commit(vec![stale]).await.unwrap(),
        [Committed::LeaseLost]
    );
    store.ack(&second).await;
    assert_eq!(store.broker.stats(&h).await.unwrap().queue_depth, 0);
}

#[tokio::test(start_paused = true)]
async fn queues_and_state_survive_a_restart_and_leases_end_with_it() {
    let store = Store::new();
    store.subscribe(subscription("h", &["a"])).await;
    store.broker.pause(&handler("h")).await.unwrap();
    store.broker.resume(&handler("h")).await.unwrap();
    store
        .broker
        .publish(vec![event("a"), event("a"), event("a")])
        .await
        .unwrap();
    let first = store.lease("h", 1).await.remove(0);
    let outcome = Outcome::ack(
        first.token,
        vec![],
        vec![StateWrite {
            key: b"k".to_vec(),
            value: Some(b"v".to_vec()),
        }],
    );
    store.broker.commit(vec![outcome]).await.unwrap();
    let leased = store
        .broker
        .lease(&handler("h"), 1, Duration::from_secs(30), Duration::ZERO)
        .await
        .unwrap()
        .remove(0);
    store.broker.flush().await.unwrap();
    let now = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!(now.queue_depth, 2);

    // Reopened (the process that held the lease has stopped), the lease is void: the
    // event is delivered again at once, well before its 30 s would have run out, even
    // with the wall clock stepped back an hour between the runs.
    let closed_at = store.broker.clock().now_ms() as i64;
    let later = |secs: i64| {
        let ms = closed_at + secs * 1000;
        let at = choreo_core::Timestamp::from_millisecond(ms).unwrap();
        move |c: &mut choreo_broker::Config| c.clock = Some(choreo_broker::Clock::starting_at(at))
    };
    let store = store.reopen(later(-3600)).await;
    assert_eq!(
        store
            .broker
            .state_get(&handler("h"), b"k", StateView::Durable)
            .await
            .unwrap(),
        Some(b"v".to_vec())
    );
    let stats = store.broker.stats(&handler("h")).await.unwrap();
    assert_eq!((stats.queue_depth, stats.in_flight), (2, 0));
    let again = store.lease("h", 10).await;
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].event.seq, again[0].attempt),
        (leased.event.seq, 2)
    );
    let stale = Outcome::ack(leased.token, vec![], vec![]);
    assert_eq!(
        store.broker.commit(vec![stale]).await.unwrap(),
        [Committed::LeaseLost],
        "a token from before the restart cannot commit"
    );
    let next = store.broker.publish(vec![event("a")]).await.unwrap();
    assert_eq!(next[0].seq, 4, "seqs continue after a restart");
}

#[tokio::test]
async fn a_store_in_use_is_refused_with_a_clear_error() {
    let store = Store::new();
    let second = choreo_broker::SledBroker::open(choreo_broker::Config::new(store.dir.path()));
    let err = second.expect_err("two brokers on one store");
    assert!(
        err.to_string().contains("another process holds it"),
        "{err}"
    );
}
