//! `enricher`: validates each new order and republishes it with its totals.
//!
//! Consumes `orders.created`, whose data is an order as JSON:
//! `{"id": "o-1", "customer": "c-9", "region": "eu", "items": [{"sku": "A", "qty": 2,
//! "price_cents": 1250}]}`. Publishes `orders.enriched`, keyed by the order id, with the same
//! order (fields it does not know are carried through) plus `total_cents` (the sum of
//! `qty * price_cents`) and `item_count` (the number of units, the sum of `qty`).
//!
//! An order that does not parse or does not validate is rejected: it goes to the dead-letter
//! topic with the reason, since a retry would fail the same way. Keeps no state.

use choreo_sdk::{Error, Event, Handler, Info, Outgoing, publish};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const CONSUMES: &str = "orders.created";
const PUBLISHES: &str = "orders.enriched";

const ORDER_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "order",
  "type": "object",
  "required": ["id", "customer", "region", "items"],
  "properties": {
    "id": {"type": "string", "minLength": 1},
    "customer": {"type": "string", "minLength": 1},
    "region": {"type": "string", "minLength": 1},
    "items": {
      "type": "array",
      "minItems": 1,
      "items": {
        "type": "object",
        "required": ["sku", "qty", "price_cents"],
        "properties": {
          "sku": {"type": "string", "minLength": 1},
          "qty": {"type": "integer", "minimum": 1},
          "price_cents": {"type": "integer", "minimum": 0}
        }
      }
    }
  }
}"#;

const ENRICHED_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "enriched order",
  "description": "an order plus its totals",
  "type": "object",
  "required": ["id", "customer", "region", "items", "total_cents", "item_count"],
  "properties": {
    "id": {"type": "string", "minLength": 1},
    "customer": {"type": "string", "minLength": 1},
    "region": {"type": "string", "minLength": 1},
    "items": {"type": "array", "minItems": 1},
    "total_cents": {"type": "integer", "minimum": 0},
    "item_count": {"type": "integer", "minimum": 1}
  }
}"#;

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Item {
    sku: String,
    qty: u64,
    price_cents: u64,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// An order as published on `orders.created`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
struct Order {
    id: String,
    customer: String,
    region: String,
    items: Vec<Item>,
    #[serde(flatten)]
    extra: Map<String, Value>,
}

/// An order as published on `orders.enriched`.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Enriched {
    #[serde(flatten)]
    order: Order,
    total_cents: u64,
    item_count: u64,
}

/// Checks `order` and computes its totals; the error says which field is wrong.
fn enrich(order: Order) -> Result<Enriched, String> {
    for (field, value) in [
        ("id", &order.id),
        ("customer", &order.customer),
        ("region", &order.region),
    ] {
        if value.trim().is_empty() {
            return Err(format!("order {:?}: `{field}` is empty", order.id));
        }
    }
    if order.items.is_empty() {
        return Err(format!("order {}: has no items", order.id));
    }
    let mut total_cents: u64 = 0;
    let mut item_count: u64 = 0;
    for (index, item) in order.items.iter().enumerate() {
        if item.sku.trim().is_empty() {
            return Err(format!(
                "order {}: item {index} has an empty `sku`",
                order.id
            ));
        }
        if item.qty == 0 {
            return Err(format!(
                "order {}: item {index} ({}) has `qty` 0",
                order.id, item.sku
            ));
        }
        let line = item.qty.checked_mul(item.price_cents);
        match (
            line.and_then(|l| total_cents.checked_add(l)),
            item_count.checked_add(item.qty),
        ) {
            (Some(total), Some(count)) => (total_cents, item_count) = (total, count),
            _ => {
                return Err(format!(
                    "order {}: totals overflow at item {index}",
                    order.id
                ));
            }
        }
    }
    Ok(Enriched {
        order,
        total_cents,
        item_count,
    })
}

struct Enricher;

impl Handler for Enricher {
    fn describe() -> Info {
        Info::new("enricher", env!("CARGO_PKG_VERSION"))
            .description(
                "Validates new orders and republishes them with total_cents and item_count",
            )
            .subscribe(CONSUMES)
            .publishes(PUBLISHES)
            .schema(CONSUMES, ORDER_SCHEMA)
            .schema(PUBLISHES, ENRICHED_SCHEMA)
    }

    fn handle(event: Event) -> Result<(), Error> {
        let order: Order = event.json()?;
        let enriched = enrich(order).map_err(Error::reject)?;
        publish(Outgoing::json(PUBLISHES, &enriched)?.key(enriched.order.id.as_str()))?;
        Ok(())
    }
}

choreo_sdk::export_handler!(Enricher);

#[cfg(test)]
mod tests {
    use super::*;

    fn order(json: &str) -> Order {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn computes_totals_and_keeps_unknown_fields() {
        let enriched = enrich(order(
            r#"{"id":"o-1","customer":"c-9","region":"eu","channel":"web",
                "items":[{"sku":"A","qty":2,"price_cents":1250},{"sku":"B","qty":1,"price_cents":99}]}"#,
        ))
        .unwrap();
        assert_eq!(enriched.total_cents, 2599);
        assert_eq!(enriched.item_count, 3);
        let json = serde_json::to_value(&enriched).unwrap();
        assert_eq!(json["channel"], "web");
        assert_eq!(json["total_cents"], 2599);
        assert_eq!(json["items"][1]["sku"], "B");
    }

    #[test]
    fn refuses_orders_without_items_or_with_zero_quantities() {
        let empty = order(r#"{"id":"o-2","customer":"c","region":"eu","items":[]}"#);
        assert!(enrich(empty).unwrap_err().contains("no items"));
        let zero = order(
            r#"{"id":"o-3","customer":"c","region":"eu","items":[{"sku":"A","qty":0,"price_cents":1}]}"#,
        );
        assert!(enrich(zero).unwrap_err().contains("`qty` 0"));
        let blank = order(r#"{"id":"o-4","customer":" ","region":"eu","items":[]}"#);
        assert!(enrich(blank).unwrap_err().contains("`customer` is empty"));
    }

    #[test]
    fn refuses_totals_that_overflow() {
        let huge = order(&format!(
            r#"{{"id":"o-5","customer":"c","region":"eu","items":[{{"sku":"A","qty":2,"price_cents":{}}}]}}"#,
            u64::MAX
        ));
        assert!(enrich(huge).unwrap_err().contains("overflow"));
    }

    #[test]
    fn malformed_events_are_rejected() {
        let error = Event::new(CONSUMES, r#"{"id":"o-6"}"#)
            .json::<Order>()
            .unwrap_err();
        assert_eq!(error.kind(), choreo_sdk::ErrorKind::Reject);
    }

    #[test]
    fn schemas_are_json() {
        for schema in [ORDER_SCHEMA, ENRICHED_SCHEMA] {
            serde_json::from_str::<Value>(schema).unwrap();
        }
    }
}
