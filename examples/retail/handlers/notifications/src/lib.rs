//! `notifications`: tells the customer how the order ended (Rust).
//!
//! Subscribes with wildcards to every final outcome of an order: `*.rejected` (stock ran
//! short: `inventory.rejected`), `payments.declined`, and `shipments.*` (the shipment was
//! scheduled). For each it publishes one `notifications.sent` with `{"order", "customer",
//! "outcome", "message"}`, keyed by the order id. A real shop would call a mail service from
//! outside choreo, reacting to `notifications.sent`; the example stops at the event.
//!
//! State: `sent/<order>/<topic>` marks a notification as sent, so the same outcome published
//! twice for an order (it never is by the other handlers, but a client may publish by hand)
//! sends one notification. Read side: `GET /v1/query/notifications/sent` gives the count of
//! notifications per outcome topic.

use std::collections::BTreeMap;

use choreo_sdk::{Error, Event, Handler, Info, Outgoing, Request, Response, publish, state};
use serde_json::{Value, json};

const SENT: &str = "sent/";

/// The message a customer reads for an outcome topic.
fn message(topic: &str, data: &Value) -> String {
    let order = data.get("order").and_then(Value::as_str).unwrap_or("?");
    match topic {
        "inventory.rejected" => format!(
            "Sorry, order {order} could not be placed: {}",
            data.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("out of stock")
        ),
        "payments.declined" => format!(
            "Your payment for order {order} was declined ({}); nothing was charged",
            data.get("reason")
                .and_then(Value::as_str)
                .unwrap_or("declined")
        ),
        "shipments.scheduled" => format!(
            "Order {order} is on its way: shipment {}",
            data.get("shipment").and_then(Value::as_str).unwrap_or("?")
        ),
        other => format!("Order {order}: {other}"),
    }
}

struct Notifications;

impl Handler for Notifications {
    fn describe() -> Info {
        Info::new("notifications", env!("CARGO_PKG_VERSION"))
            .description("Sends one notification per final order outcome")
            .subscribe("*.rejected")
            .subscribe("payments.declined")
            .subscribe("shipments.*")
            .publishes("notifications.sent")
    }

    fn handle(event: Event) -> Result<(), Error> {
        let data: Value = event.json()?;
        let order = data
            .get("order")
            .and_then(Value::as_str)
            .ok_or_else(|| Error::reject(format!("event {}: no string `order`", event.id())))?;
        let mark = format!("{SENT}{order}/{}", event.topic());
        if state::get_bytes(&mark)?.is_some() {
            return Ok(());
        }
        state::set(&mark, &event.id())?;
        let sent = json!({
            "order": order,
            "customer": data.get("customer").cloned().unwrap_or(Value::Null),
            "outcome": event.topic(),
            "message": message(event.topic(), &data),
        });
        publish(Outgoing::json("notifications.sent", &sent)?.key(order))?;
        Ok(())
    }

    fn query(request: Request) -> Response {
        if request.method() != "GET" || request.segments() != ["sent"] {
            return Response::not_found();
        }
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for entry in state::scan(SENT) {
            match entry {
                Ok((key, _)) => {
                    let topic = key.rsplit('/').next().unwrap_or_default().to_owned();
                    *counts.entry(topic).or_insert(0) += 1;
                }
                Err(e) => return Response::problem(500, e.to_string()),
            }
        }
        Response::json(200, &counts)
    }
}

choreo_sdk::export_handler!(Notifications);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_order_and_the_outcome() {
        let rejected = json!({"order": "o-1", "reason": "unknown sku x"});
        assert_eq!(
            message("inventory.rejected", &rejected),
            "Sorry, order o-1 could not be placed: unknown sku x"
        );
        let shipped = json!({"order": "o-2", "shipment": "shp-o-2"});
        assert!(message("shipments.scheduled", &shipped).contains("shp-o-2"));
        assert!(message("payments.declined", &json!({"order": "o-3"})).contains("o-3"));
    }
}
