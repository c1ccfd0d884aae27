//! Three handlers in a choreography: `validator` turns `orders.created` into
//! `orders.validated`; `auditor` (`orders.*`) records per ordering key every order event it
//! handles; `fulfiller` (`*.validated`) turns validated orders into `shipments.planned`.
//!
//! Orders are spread over [`KEYS`] ordering keys (`ce-partitionkey`); each key's orders are
//! published one after the other by one client task, so publish order per key is order-number
//! order, while several tasks publish different keys concurrently. `validator` and
//! `auditor` run with concurrency above 1, so per-key order is a real constraint.
//!
//! [`verify`] is shared with the crash test: it checks every output against the log
//! (`/v1/events`) and the auditor's state (`/v1/query/auditor/seen`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Api, DEADLINE, Dirs, Server, eventually};

/// Ordering keys the orders are spread over.
pub const KEYS: u64 = 20;

/// Manifests: more than one delivery in flight, so only per-key order is promised.
const VALIDATOR_MANIFEST: &str = "concurrency = 4\n";
const AUDITOR_MANIFEST: &str = "concurrency = 4\n";
const FULFILLER_MANIFEST: &str = "concurrency = 2\n";

/// Puts the three handlers of the choreography into the deploy dir.
pub fn deploy_choreography(dirs: &Dirs) {
    dirs.deploy_component(
        "validator",
        choreo_test_guests::VALIDATOR,
        Some(VALIDATOR_MANIFEST),
    );
    dirs.deploy_component(
        "auditor",
        choreo_test_guests::AUDITOR,
        Some(AUDITOR_MANIFEST),
    );
    dirs.deploy_component(
        "fulfiller",
        choreo_test_guests::FULFILLER,
        Some(FULFILLER_MANIFEST),
    );
}

/// The ordering key of order `n`.
pub fn key_of(n: u64) -> String {
    format!("k{:02}", n % KEYS)
}

/// Publishes order `n` on `orders.created` with its own id (`order-<n>`) and key.
pub async fn publish_order(api: &Api, n: u64) -> Result<Value, String> {
    let key = key_of(n);
    let id = format!("order-{n}");
    let data = json!({ "order": n, "key": key }).to_string();
    api.publish(
        "orders.created",
        &[
            ("ce-id", id.as_str()),
            ("ce-source", "/e2e/shop"),
            ("ce-type", "com.example.order.created"),
            ("ce-specversion", "1.0"),
            ("ce-partitionkey", key.as_str()),
            ("content-type", "application/json"),
        ],
        data,
    )
    .await
}

/// Publishes orders `0..` with `tasks` concurrent client tasks; task `t` owns the keys
/// `k ≡ t (mod tasks)` and publishes each key's orders in order, waiting for each 202.
/// Stops at `total` orders, when `stop` is set, or (per task) at the first failed publish.
/// Returns the orders that got a 202.
pub async fn publish_orders(
    api: &Api,
    tasks: u64,
    total: u64,
    stop: Arc<AtomicBool>,
) -> BTreeSet<u64> {
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let (api, stop) = (api.clone(), stop.clone());
        set.spawn(async move {
            let mut accepted = Vec::new();
            // Order n has key n % KEYS; walking n upwards visits each key's orders in order.
            for n in (0..total).filter(|n| (n % KEYS) % tasks == task) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match publish_order(&api, n).await {
                    Ok(_) => accepted.push(n),
                    Err(_) => break,
                }
            }
            accepted
        });
    }
    let mut accepted = BTreeSet::new();
    while let Some(done) = set.join_next().await {
        accepted.extend(done.unwrap());
    }
    accepted
}

/// Publishes orders `0..total` as [`publish_orders`] does, but a failed publish (the
/// server gone, or not answering) is retried with the same id until it is answered 202,
/// as a client that must not lose an order would: the dedup window recognises a retry
/// whose first attempt reached the log. Panics if an order is still unanswered at
/// `deadline`.
pub async fn publish_orders_retrying(api: &Api, tasks: u64, total: u64, deadline: Instant) {
    /// The pause before retrying a failed publish.
    const RETRY_PAUSE: Duration = Duration::from_millis(20);
    let mut set = tokio::task::JoinSet::new();
    for task in 0..tasks {
        let api = api.clone();
        set.spawn(async move {
            for n in (0..total).filter(|n| (n % KEYS) % tasks == task) {
                while let Err(error) = publish_order(&api, n).await {
                    assert!(
                        Instant::now() < deadline,
                        "order {n} was still not accepted at the deadline: {error}"
                    );
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        });
    }
    while let Some(done) = set.join_next().await {
        done.unwrap();
    }
}

/// The order number in an event's data.
fn order_of(event: &Value) -> u64 {
    event["data"]["order"]
        .as_u64()
        .unwrap_or_else(|| panic!("no order number in {event}"))
}

/// Events by order number; panics naming the order when one appears twice.
fn by_order(topic: &str, events: Vec<Value>) -> BTreeMap<u64, Value> {
    let mut map = BTreeMap::new();
    for event in events {
        let n = order_of(&event);
        if let Some(first) = map.insert(n, event.clone()) {
            panic!("order {n} appears twice on {topic}:\n  {first}\n  {event}");
        }
    }
    map
}

/// Waits until the choreography has fully processed every order on `orders.created`,
/// then checks it: see [`verify`]. Returns the number of orders processed.
pub async fn wait_and_verify(api: &Api) -> usize {
    eventually("every order is validated, audited and shipped", DEADLINE, async || {
        let created = api.events("orders.created").await.len();
        let validated = api.events("orders.validated").await.len();
        let planned = api.events("shipments.planned").await.len();
        let audited: usize = seen(api).await.values().map(Vec::len).sum();
        if validated == created && planned == created && audited == 2 * created {
            Ok(())
        } else {
            Err(format!(
                "{created} created, {validated} validated, {planned} planned, {audited} audited \
                 (want twice created)"
            ))
        }
    })
    .await;
    verify(api).await
}

/// What the auditor recorded, per ordering key: (topic, order, seq) in handling order.
async fn seen(api: &Api) -> BTreeMap<String, Vec<(String, u64, u64)>> {
    let reply = api.query("auditor", "seen").await;
    assert_eq!(reply.status, 200, "query auditor /seen: {reply}");
    let all: BTreeMap<String, Vec<Value>> = serde_json::from_value(reply.json()).unwrap();
    all.into_iter()
        .map(|(key, list)| {
            let list = list
                .iter()
                .map(|s| {
                    (
                        s["topic"].as_str().unwrap().to_owned(),
                        s["order"].as_u64().unwrap(),
                        s["seq"].as_u64().unwrap(),
                    )
                })
                .collect();
            (key, list)
        })
        .collect()
}

/// Checks the whole choreography against the orders on `orders.created`:
/// - each order has exactly one `orders.validated` and one `shipments.planned`;
/// - `orders.validated` is caused by the order's `orders.created` event and
///   `shipments.planned` by its `orders.validated` event, all three sharing the order's
///   correlation id (`order-<n>`, its `ce-id`), and keeping its ordering key;
/// - per ordering key, `validator` and `fulfiller` emitted in order-number order, and the
///   auditor handled each `orders.*` event exactly once, in `seq` order.
///
/// Returns the number of orders.
pub async fn verify(api: &Api) -> usize {
    let created = by_order("orders.created", api.events("orders.created").await);
    let validated = by_order("orders.validated", api.events("orders.validated").await);
    let planned = by_order("shipments.planned", api.events("shipments.planned").await);
    let orders: Vec<u64> = created.keys().copied().collect();
    assert_eq!(
        validated.keys().copied().collect::<Vec<_>>(),
        orders,
        "every created order is validated exactly once, and nothing else is"
    );
    assert_eq!(
        planned.keys().copied().collect::<Vec<_>>(),
        orders,
        "every validated order is planned exactly once, and nothing else is"
    );
    for (n, order) in &created {
        let correlation = format!("order-{n}");
        let key = key_of(*n);
        assert_eq!(order["id"], correlation.as_str(), "{order}");
        assert_eq!(order["correlationid"], correlation.as_str(), "{order}");
        let valid = &validated[n];
        assert_eq!(
            valid["causationid"], order["id"],
            "validated by order {n}: {valid}"
        );
        assert_eq!(valid["correlationid"], correlation.as_str(), "{valid}");
        assert_eq!(valid["partitionkey"], key.as_str(), "{valid}");
        let plan = &planned[n];
        assert_eq!(
            plan["causationid"], valid["id"],
            "planned from order {n}: {plan}"
        );
        assert_eq!(plan["correlationid"], correlation.as_str(), "{plan}");
        assert_eq!(plan["partitionkey"], key.as_str(), "{plan}");
    }
    for (topic, outputs) in [
        ("orders.validated", &validated),
        ("shipments.planned", &planned),
    ] {
        let mut per_key: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
        for (n, event) in outputs.iter() {
            per_key
                .entry(key_of(*n))
                .or_default()
                .push((event["seq"].as_u64().unwrap(), *n));
        }
        for (key, mut list) in per_key {
            list.sort_unstable();
            let numbers: Vec<u64> = list.iter().map(|(_, n)| *n).collect();
            assert!(
                numbers.is_sorted(),
                "{topic} for key {key} was emitted out of order: {numbers:?}"
            );
        }
    }
    let seen = seen(api).await;
    let mut audited = 0;
    for (key, list) in &seen {
        let seqs: Vec<u64> = list.iter().map(|(_, _, seq)| *seq).collect();
        assert!(
            seqs.is_sorted() && seqs.windows(2).all(|w| w[0] != w[1]),
            "auditor handled key {key} out of seq order or twice: {list:?}"
        );
        audited += list.len();
        for (topic, n, seq) in list {
            let source = match topic.as_str() {
                "orders.created" => &created,
                "orders.validated" => &validated,
                other => panic!("auditor saw {other} (order {n}), which it does not subscribe"),
            };
            let event = source
                .get(n)
                .unwrap_or_else(|| panic!("auditor saw {topic} order {n} that is not in the log"));
            assert_eq!(event["seq"].as_u64(), Some(*seq), "auditor's {topic} {n}");
            assert_eq!(key_of(*n), *key, "auditor filed order {n} under {key}");
        }
    }
    assert_eq!(
        audited,
        2 * orders.len(),
        "the auditor handled every orders.created and orders.validated event once"
    );
    orders.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_handler_choreography_handles_1000_orders_exactly_once_in_key_order() {
    const ORDERS: u64 = 1_000;
    const PUBLISHERS: u64 = 5;
    let dirs = Dirs::create();
    deploy_choreography(&dirs);
    let server = Server::start(&dirs).await;
    for name in ["validator", "auditor", "fulfiller"] {
        assert_eq!(
            server.handler(name).await["status"],
            "running",
            "{name} is deployed from the start"
        );
    }

    let accepted = publish_orders(&server.api(), PUBLISHERS, ORDERS, Arc::default()).await;
    assert_eq!(
        accepted.len() as u64,
        ORDERS,
        "every publish got a 202; the first failure is not retried"
    );

    let processed = wait_and_verify(&server).await;
    assert_eq!(processed as u64, ORDERS);
    for name in ["validator", "auditor", "fulfiller"] {
        let handler = server.handler(name).await;
        assert_eq!(handler["dead_letters"], 0, "{handler}");
        assert_eq!(handler["queue_depth"], 0, "{handler}");
    }
}
