//! The causation index: the events an event caused are found by its id, in seq order,
//! and leave with their events when retention trims the log. That the index is on disk
//! and never shows an event a crash takes back is checked by the crash test.

use std::time::Duration;

use choreo_broker::{Broker, Outcome, Retention};
use choreo_core::{Event, EventId};

use crate::{Store, event, subscription};

fn caused(on: &str, by: &EventId) -> Event {
    let mut e = event(on);
    e.causation_id = Some(by.clone());
    e
}

async fn children(store: &Store, of: &EventId) -> Vec<u64> {
    let events = store.broker.caused_by(of, 100).await.unwrap();
    assert!(
        events
            .iter()
            .all(|e| e.event.causation_id.as_ref() == Some(of)),
        "only events caused by {of}: {events:?}"
    );
    events.iter().map(|e| e.seq).collect()
}

#[tokio::test(start_paused = true)]
async fn children_are_found_in_seq_order_until_retention_drops_them() {
    let store = Store::with(|c| {
        c.retention = Retention {
            max_age: Some(Duration::from_secs(3600)),
            max_bytes: None,
        };
        c.retention_interval = Duration::from_secs(1_000_000);
    });
    store.subscribe(subscription("h", &["order"])).await;
    let root = store.broker.publish(vec![event("order")]).await.unwrap()[0].clone();
    // A handler's publishes carry the handled event's id as their cause.
    let delivery = store.lease("h", 1).await.remove(0);
    let from_handler = vec![caused("paid", &root.id), caused("shipped", &root.id)];
    store
        .broker
        .commit(vec![Outcome::ack(delivery.token, from_handler, vec![])])
        .await
        .unwrap();
    let acked = store.broker.caused_by(&root.id, 100).await.unwrap();
    let paid = acked[0].event.id.clone();
    // A later child, a grandchild, and an unrelated event.
    let later = store
        .broker
        .publish(vec![
            caused("billed", &root.id),
            caused("receipt", &paid),
            event("order"),
        ])
        .await
        .unwrap();

    let expected = vec![root.seq + 1, root.seq + 2, later[0].seq];
    assert_eq!(children(&store, &root.id).await, expected);
    assert_eq!(children(&store, &paid).await, vec![later[1].seq]);
    assert!(children(&store, &later[2].id).await.is_empty());
    let first_two = store.broker.caused_by(&root.id, 2).await.unwrap();
    assert_eq!(
        first_two.iter().map(|e| e.seq).collect::<Vec<_>>(),
        expected[..2]
    );

    tokio::time::advance(Duration::from_secs(3601)).await;
    let young = store
        .broker
        .publish(vec![caused("refunded", &root.id)])
        .await
        .unwrap();
    store.broker.enforce_retention().await.unwrap();
    assert_eq!(
        children(&store, &root.id).await,
        vec![young[0].seq],
        "trimmed children leave the index; the young one stays"
    );
    assert!(children(&store, &paid).await.is_empty());
}
