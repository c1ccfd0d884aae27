//! `order-view`: the read side of the retail example (Rust, CQRS).
//!
//! Folds every order event (`orders.placed`, `inventory.*`, `payments.*`, `shipments.*`)
//! into one record per order under `orders/<id>` in its state: the order's current status
//! and its history (topic, event id and time of each event). Every publisher keys these
//! events by the order id, so they arrive here in the order they happened and the last one
//! folded is the current status. A second `orders.placed` for a known order is ignored, as
//! inventory ignores it.
//!
//! Read side (`GET /v1/query/order-view/<path>`):
//! - `/orders/<id>`: `{"order", "status", "customer", "amount_cents", "history": [...]}`,
//!   404 for an order never seen;
//! - `/orders`: `{"orders": <n>, "by_status": {"shipped": <n>, ...}}`, from a scan of the
//!   records (no shared counter, so deliveries for different orders never write the same
//!   key and may run concurrently).

use std::collections::BTreeMap;

use choreo_sdk::{Error, Event, Handler, Info, Request, Response, state};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const ORDERS: &str = "orders/";

/// One event in an order's history.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Step {
    topic: String,
    status: String,
    event: String,
    time: String,
}

/// What the read model knows of one order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct OrderRecord {
    order: String,
    status: String,
    #[serde(default)]
    customer: Value,
    #[serde(default)]
    amount_cents: Value,
    history: Vec<Step>,
}

/// The status an order has after an event on `topic`; none for topics that do not move it.
fn status_after(topic: &str) -> Option<&'static str> {
    Some(match topic {
        "orders.placed" => "placed",
        "inventory.reserved" => "reserved",
        "inventory.rejected" => "rejected",
        "inventory.released" => "released",
        "payments.captured" => "paid",
        "payments.declined" => "declined",
        "shipments.scheduled" => "shipped",
        _ => return None,
    })
}

/// Folds one event into the order's record.
fn fold(record: &mut OrderRecord, event: &Event, data: &Value) {
    let Some(status) = status_after(event.topic()) else {
        return;
    };
    if record.history.iter().any(|step| step.event == event.id()) {
        return;
    }
    // An order placed again (a client retrying with a new event id) changes nothing:
    // inventory ignores it too, so nothing would ever follow a second `placed`.
    if event.topic() == "orders.placed" && !record.history.is_empty() {
        return;
    }
    for field in ["customer", "amount_cents"] {
        if let Some(value) = data.get(field) {
            let slot = match field {
                "customer" => &mut record.customer,
                _ => &mut record.amount_cents,
            };
            if slot.is_null() {
                *slot = value.clone();
            }
        }
    }
    record.status = status.to_owned();
    record.history.push(Step {
        topic: event.topic().to_owned(),
        status: status.to_owned(),
        event: event.id().to_owned(),
        time: event.time().to_owned(),
    });
}

struct OrderView;

impl Handler for OrderView {
    fn describe() -> Info {
        Info::new("order-view", env!("CARGO_PKG_VERSION"))
            .description("Every order's status and history; query /orders or /orders/<id>")
            .subscribe("orders.placed")
            .subscribe("inventory.*")
            .subscribe("payments.*")
            .subscribe("shipments.*")
    }

    fn handle(event: Event) -> Result<(), Error> {
        if status_after(event.topic()).is_none() {
            return Ok(());
        }
        let data: Value = event.json()?;
        let order = data
            .get("order")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::reject(format!("event {}: no string `order`", event.id())))?;
        let key = format!("{ORDERS}{order}");
        let mut record = state::get::<OrderRecord>(&key)?.unwrap_or_else(|| OrderRecord {
            order: order.to_owned(),
            ..OrderRecord::default()
        });
        fold(&mut record, &event, &data);
        state::set(&key, &record)?;
        Ok(())
    }

    fn query(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::not_found();
        }
        match request.segments().as_slice() {
            ["orders"] => summary(),
            ["orders", id] => match state::get::<OrderRecord>(&format!("{ORDERS}{id}")) {
                Ok(Some(record)) => Response::json(200, &record),
                Ok(None) => Response::problem(404, format!("no order {id}")),
                Err(e) => Response::problem(500, e.to_string()),
            },
            _ => Response::not_found(),
        }
    }
}

fn summary() -> Response {
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut orders = 0u64;
    for entry in state::scan_json::<OrderRecord>(ORDERS) {
        match entry {
            Ok((_, record)) => {
                orders += 1;
                *by_status.entry(record.status).or_insert(0) += 1;
            }
            Err(e) => return Response::problem(500, e.to_string()),
        }
    }
    Response::json(
        200,
        &serde_json::json!({"orders": orders, "by_status": by_status}),
    )
}

choreo_sdk::export_handler!(OrderView);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_declined_order_ends_released_with_its_whole_history() {
        let mut record = OrderRecord::default();
        let steps = [
            "orders.placed",
            "inventory.reserved",
            "payments.declined",
            "inventory.released",
        ];
        for (i, topic) in steps.iter().enumerate() {
            let event = Event::new(*topic, "{}").with_id(format!("e{i}"));
            fold(&mut record, &event, &json!({"customer": "c-1"}));
        }
        assert_eq!(record.status, "released");
        assert_eq!(record.customer, "c-1");
        let statuses: Vec<&str> = record.history.iter().map(|s| s.status.as_str()).collect();
        assert_eq!(statuses, ["placed", "reserved", "declined", "released"]);
    }

    #[test]
    fn the_same_event_or_a_repeated_placement_is_folded_once_and_unknown_topics_not_at_all() {
        let mut record = OrderRecord::default();
        let placed = Event::new("orders.placed", "{}").with_id("e1");
        fold(&mut record, &placed, &json!({}));
        fold(&mut record, &placed, &json!({}));
        fold(&mut record, &Event::new("shipments.lost", "{}"), &json!({}));
        assert_eq!(record.history.len(), 1);
        assert_eq!(record.status, "placed");
        let reserved = Event::new("inventory.reserved", "{}").with_id("e2");
        fold(&mut record, &reserved, &json!({}));
        let placed_again = Event::new("orders.placed", "{}").with_id("e3");
        fold(&mut record, &placed_again, &json!({}));
        assert_eq!(record.history.len(), 2);
        assert_eq!(record.status, "reserved");
    }
}
