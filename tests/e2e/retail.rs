//! The retail choreography of `examples/retail`, end to end: its five handlers (inventory,
//! notifications and order-view in Rust, payments in Python, shipping in JavaScript) built
//! from source, deployed with their own manifests, and 500 orders published over HTTP.
//!
//! The test computes each order's fate from the same rules the handlers apply (the stock in
//! `inventory.toml`, the decline rules of `payments/app.py`), then checks with deadlines that
//! every order ends in that state in the read model with the whole history, that the stock
//! left is exact (reservations of declined orders were released: the compensation), that one
//! notification went out per order for its outcome (also for the orders placed twice), and
//! that nothing was dead-lettered.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Api, DEPLOY_DEADLINE, Dirs, Server, eventually};

/// How long 500 orders may take to go through the whole choreography (≈ 2000 deliveries on
/// five handlers, a third of them in the large guests) on a debug build on a busy machine.
const SETTLE_DEADLINE: Duration = Duration::from_secs(900);

const ORDERS: usize = 500;

/// Concurrent publishers: orders of different customers arrive at once in a real shop.
const PUBLISHERS: usize = 4;

/// Every this many orders, the order is placed twice (a client retrying with a new event
/// id): the handlers must reserve, charge, ship and notify it once.
const PLACED_TWICE_EVERY: usize = 25;

/// The price of one unit in these orders, in cents.
const UNIT_CENTS: u64 = 1250;

/// The retail handlers: (name, component); the manifest is `examples/retail/handlers/<name>/<name>.toml`.
fn handlers() -> [(&'static str, &'static str); 5] {
    [
        ("inventory", choreo_test_guests::RETAIL_INVENTORY),
        ("payments", choreo_polyglot::RETAIL_PAYMENTS),
        ("shipping", choreo_polyglot::RETAIL_SHIPPING),
        ("notifications", choreo_test_guests::RETAIL_NOTIFICATIONS),
        ("order-view", choreo_test_guests::RETAIL_ORDER_VIEW),
    ]
}

/// The manifest the example ships beside a handler's source.
fn manifest(name: &str) -> String {
    // The test belongs to `runtime/cli`; the example sits at the workspace root.
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/retail/handlers")
        .join(name)
        .join(format!("{name}.toml"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// How an order must end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Reserved, paid and shipped.
    Shipped,
    /// Stock could not cover it (too many of a scarce SKU, or an unknown SKU).
    Rejected,
    /// Reserved, the payment declined, the reservation released.
    Released,
}

impl Fate {
    fn status(self) -> &'static str {
        match self {
            Fate::Shipped => "shipped",
            Fate::Rejected => "rejected",
            Fate::Released => "released",
        }
    }

    fn history(self) -> &'static [&'static str] {
        match self {
            Fate::Shipped => &["placed", "reserved", "paid", "shipped"],
            Fate::Rejected => &["placed", "rejected"],
            Fate::Released => &["placed", "reserved", "declined", "released"],
        }
    }

    fn notification(self) -> &'static str {
        match self {
            Fate::Shipped => "shipments.scheduled",
            Fate::Rejected => "inventory.rejected",
            Fate::Released => "payments.declined",
        }
    }
}

#[derive(Debug, Clone)]
struct Order {
    id: String,
    items: Vec<(String, u64)>,
    body: Value,
}

/// The stock `inventory.toml` opens with.
fn initial_stock() -> BTreeMap<String, u64> {
    let manifest: toml::Table = manifest("inventory").parse().unwrap();
    let text = manifest["config"]["stock"].as_str().unwrap();
    text.split(',')
        .map(|pair| {
            let (sku, units) = pair.trim().split_once('=').unwrap();
            (sku.to_owned(), units.parse().unwrap())
        })
        .collect()
}

/// The payments manifest's limit.
fn max_amount_cents() -> u64 {
    let manifest: toml::Table = manifest("payments").parse().unwrap();
    manifest["config"]["max_amount_cents"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// Order `i` of the mix: three in ten are rejected by inventory (two ask for more of the
/// scarce SKU than was ever in stock, one of them beside a plentiful SKU that an
/// all-or-none reservation must leave untouched; one names an unknown SKU), two in ten are
/// declined by payments (a card ending in 0000, an amount over the limit), the rest ship.
fn order(i: usize, stock: &BTreeMap<String, u64>, limit: u64) -> Order {
    let common = format!("sku-{}", 1 + i % 4);
    let other = format!("sku-{}", 1 + (i + 1) % 4);
    let qty = 1 + (i % 3) as u64;
    let rare = stock["sku-rare"];
    let (items, card, amount) = match i % 10 {
        3 => (
            vec![(common, qty), ("sku-rare".to_owned(), rare + 1)],
            "4242",
            None,
        ),
        6 => (
            vec![(common, qty), ("sku-unknown".to_owned(), 1)],
            "4242",
            None,
        ),
        8 => (vec![("sku-rare".to_owned(), rare + 2)], "4242", None),
        5 => (vec![(common, qty)], "0000", None),
        7 => (
            vec![(common, qty), (other, 1)],
            "4242",
            Some(limit + 1 + i as u64),
        ),
        _ if i.is_multiple_of(2) => (vec![(common, qty), (other, 1)], "4242", None),
        _ => (vec![(common, qty)], "4242", None),
    };
    let amount = amount.unwrap_or(items.iter().map(|(_, q)| q * UNIT_CENTS).sum());
    let id = format!("o-{i:04}");
    let body = json!({
        "order": id,
        "customer": format!("c-{}", i % 37),
        "items": items.iter().map(|(sku, qty)| json!({"sku": sku, "qty": qty})).collect::<Vec<_>>(),
        "amount_cents": amount,
        "card": format!("424242424242{card}"),
    });
    Order { id, items, body }
}

/// The fate of `order` by the handlers' rules. Only the scarce SKU can run short, and no
/// order asks for less of it than there ever was, so fates do not depend on arrival order.
fn fate(order: &Order, stock: &BTreeMap<String, u64>, limit: u64) -> Fate {
    let mut needs: BTreeMap<&str, u64> = BTreeMap::new();
    for (sku, qty) in &order.items {
        *needs.entry(sku).or_insert(0) += qty;
    }
    if needs
        .iter()
        .any(|(sku, need)| stock.get(*sku).is_none_or(|have| have < need))
    {
        return Fate::Rejected;
    }
    let card = order.body["card"].as_str().unwrap();
    let amount = order.body["amount_cents"].as_u64().unwrap();
    if card.ends_with("0000") || amount > limit {
        Fate::Released
    } else {
        Fate::Shipped
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retail_choreography_takes_500_orders_to_the_right_end() {
    let stock = initial_stock();
    let limit = max_amount_cents();
    let orders: Vec<Order> = (0..ORDERS).map(|i| order(i, &stock, limit)).collect();
    let fates: HashMap<String, Fate> = orders
        .iter()
        .map(|o| (o.id.clone(), fate(o, &stock, limit)))
        .collect();
    for wanted in [Fate::Shipped, Fate::Rejected, Fate::Released] {
        assert!(
            fates.values().filter(|f| **f == wanted).count() >= ORDERS / 10,
            "the mix lacks {wanted:?} orders"
        );
    }

    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    for (name, wasm) in handlers() {
        dirs.deploy_component(name, wasm, Some(&manifest(name)));
    }
    for (name, _) in handlers() {
        server.wait_running(name, DEPLOY_DEADLINE).await;
    }

    publish_orders(&server, &orders).await;
    let expected = expected_summary(&fates);
    eventually("every order settles", SETTLE_DEADLINE, async || {
        let reply = server.query("order-view", "orders").await;
        let summary = reply.json();
        let idle = queues_empty(&server).await;
        if summary == expected && idle {
            Ok(())
        } else {
            Err(format!(
                "{summary} (expected {expected}); queues empty: {idle}"
            ))
        }
    })
    .await;

    check_read_model(&server, &orders, &fates).await;
    check_stock(&server, &orders, &fates, &stock).await;
    check_notifications(&server, &fates).await;
    check_nothing_dead_lettered(&server).await;
}

/// Publishes every order on `orders.placed`, keyed by its id, from a few tasks at once;
/// every [`PLACED_TWICE_EVERY`]th order a second time, after the first.
async fn publish_orders(server: &Server, orders: &[Order]) {
    let mut tasks = Vec::new();
    for publisher in 0..PUBLISHERS {
        let api: Api = server.api();
        let mut mine: Vec<Order> = orders
            .iter()
            .skip(publisher)
            .step_by(PUBLISHERS)
            .cloned()
            .collect();
        let again: Vec<Order> = mine
            .iter()
            .enumerate()
            .filter(|(n, _)| (n * PUBLISHERS + publisher).is_multiple_of(PLACED_TWICE_EVERY))
            .map(|(_, o)| o.clone())
            .collect();
        mine.extend(again);
        tasks.push(tokio::spawn(async move {
            for order in mine {
                api.publish(
                    "orders.placed",
                    &[
                        ("content-type", "application/json"),
                        ("ce-partitionkey", &order.id),
                    ],
                    order.body.to_string(),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// What `GET /v1/query/order-view/orders` answers once every order has settled.
fn expected_summary(fates: &HashMap<String, Fate>) -> Value {
    let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
    for fate in fates.values() {
        *by_status.entry(fate.status()).or_insert(0) += 1;
    }
    json!({"orders": fates.len(), "by_status": by_status})
}

/// Whether every retail handler has worked through its queue.
async fn queues_empty(server: &Server) -> bool {
    let mut empty = true;
    for (name, _) in handlers() {
        empty &= server.handler(name).await["queue_depth"] == 0;
    }
    empty
}

/// Every order's record shows its fate, its whole history in order, and its customer.
async fn check_read_model(server: &Server, orders: &[Order], fates: &HashMap<String, Fate>) {
    for order in orders {
        let fate = fates[&order.id];
        let reply = server
            .query("order-view", &format!("orders/{}", order.id))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}: {reply}", order.id);
        let record = reply.json();
        assert_eq!(record["status"], fate.status(), "{}: {record}", order.id);
        assert_eq!(record["customer"], order.body["customer"], "{record}");
        let history: Vec<&str> = record["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|step| step["status"].as_str().unwrap())
            .collect();
        assert_eq!(history, fate.history(), "{}: {record}", order.id);
    }
    let unknown = server.query("order-view", "orders/o-none").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown}");
}

/// The stock left is the initial stock minus what shipped: rejected orders took nothing
/// (all or none), declined ones gave back what they had reserved.
async fn check_stock(
    server: &Server,
    orders: &[Order],
    fates: &HashMap<String, Fate>,
    initial: &BTreeMap<String, u64>,
) {
    let mut left = initial.clone();
    for order in orders.iter().filter(|o| fates[&o.id] == Fate::Shipped) {
        for (sku, qty) in &order.items {
            *left.get_mut(sku).unwrap() -= qty;
        }
    }
    let placed = server.events("orders.placed").await.len();
    assert_eq!(
        placed,
        orders.len() + orders.len().div_ceil(PLACED_TWICE_EVERY)
    );
    let reply = server.query("inventory", "stock").await;
    assert_eq!(reply.status, StatusCode::OK, "{reply}");
    assert_eq!(reply.json(), json!(left), "initial {initial:?}");
    assert!(
        left["sku-1"] < initial["sku-1"],
        "nothing shipped: {left:?}"
    );

    // One declined order in detail: reserved, then released by the decline.
    let declined = orders
        .iter()
        .find(|o| fates[&o.id] == Fate::Released)
        .unwrap();
    let reservation = server
        .query("inventory", &format!("orders/{}", declined.id))
        .await
        .json();
    assert_eq!(reservation["status"], "released", "{reservation}");
}

/// One `notifications.sent` per order, for its final outcome, keyed by the order.
async fn check_notifications(server: &Server, fates: &HashMap<String, Fate>) {
    let sent = server.events("notifications.sent").await;
    let mut per_order: HashMap<String, Vec<&Value>> = HashMap::new();
    for event in &sent {
        let order = event["data"]["order"].as_str().unwrap().to_owned();
        assert_eq!(event["partitionkey"], order.as_str(), "{event}");
        per_order.entry(order).or_default().push(event);
    }
    assert_eq!(per_order.len(), fates.len(), "orders notified");
    for (order, fate) in fates {
        let events = &per_order[order];
        assert_eq!(events.len(), 1, "{order}: {events:#?}");
        assert_eq!(events[0]["data"]["outcome"], fate.notification(), "{order}");
    }
    assert_eq!(sent.len(), fates.len());
}

/// No retail handler gave up on an event, and none is in trouble.
async fn check_nothing_dead_lettered(server: &Server) {
    let dead = server.events("$dlq.>").await;
    assert!(dead.is_empty(), "dead-letters: {dead:#?}");
    for (name, _) in handlers() {
        let handler = server.handler(name).await;
        assert_eq!(handler["dead_lettered"], 0, "{handler}");
        assert_eq!(handler["status"], "running", "{handler}");
    }
}
