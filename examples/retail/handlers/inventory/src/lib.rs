//! `inventory`: the retail example's stock keeper (Rust).
//!
//! - `orders.placed` (`{"order", "customer", "items": [{"sku", "qty"}], "amount_cents",
//!   "card"}`): reserves every item of the order, or none of them. When each SKU has enough
//!   stock it takes the quantities and publishes `inventory.reserved` carrying the order on;
//!   otherwise it publishes `inventory.rejected` with a `reason` and leaves stock untouched.
//! - `payments.declined` (`{"order", ...}`): the compensation. It puts the order's reserved
//!   quantities back and publishes `inventory.released`.
//!
//! Every publish is keyed by the order id, so the events of one order reach every consumer
//! in order.
//!
//! State: `stock/<sku>` holds the units left (a JSON number), written the first time a SKU
//! is touched; until then the stock is the initial one from the manifest's `[config]`
//! `stock = "sku-1=100,sku-2=5"`. `orders/<id>` holds the order's `Reservation`, so a
//! second `orders.placed` for the same order (a client retrying its publish) and a second
//! `payments.declined` change nothing: the handler is idempotent per order.
//!
//! Reserving reads and writes shared counters, so the manifest sets `concurrency = 1`: two
//! orders for the same SKU handled at once would each read the same count and one of the two
//! takes would be lost.
//!
//! Read side (`GET /v1/query/inventory/<path>`): `/stock` gives every SKU's units left,
//! `/stock/<sku>` one of them, `/orders/<id>` an order's reservation.

use std::collections::BTreeMap;

use choreo_sdk::{
    Error, Event, Handler, Info, Outgoing, Request, Response, config, publish, state,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

const STOCK: &str = "stock/";
const ORDERS: &str = "orders/";

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Item {
    sku: String,
    qty: u64,
}

/// The fields of `orders.placed` this handler needs; the rest is carried on as is.
#[derive(Debug, Deserialize)]
struct Placed {
    order: String,
    items: Vec<Item>,
}

/// What became of an order here, kept under `orders/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Reservation {
    status: Status,
    items: Vec<Item>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Reserved,
    Rejected,
    Released,
}

/// Parses the `stock` config value: `sku=units` pairs separated by commas.
fn parse_stock(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut stock = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (sku, units) = pair
            .split_once('=')
            .ok_or_else(|| format!("stock entry {pair:?} is not `sku=units`"))?;
        let units = units
            .trim()
            .parse()
            .map_err(|e| format!("stock entry {pair:?}: {e}"))?;
        stock.insert(sku.trim().to_owned(), units);
    }
    Ok(stock)
}

/// The initial stock from the manifest; a broken value is an operator's error, so the
/// delivery is retried (and finally dead-lettered) rather than guessed around.
fn initial_stock() -> Result<BTreeMap<String, u64>, Error> {
    parse_stock(&config::get("stock").unwrap_or_default())
        .map_err(|e| Error::retry(format!("the manifest's [config] stock: {e}")))
}

/// Units left of `sku`: the state's count, else the initial one, else none (unknown SKU).
fn units_left(sku: &str, initial: &BTreeMap<String, u64>) -> Result<Option<u64>, Error> {
    Ok(state::get(&format!("{STOCK}{sku}"))?.or_else(|| initial.get(sku).copied()))
}

/// Sums the quantities per SKU, so an order naming a SKU twice is checked as one need.
fn needs(items: &[Item]) -> BTreeMap<&str, u64> {
    let mut needs = BTreeMap::new();
    for item in items {
        *needs.entry(item.sku.as_str()).or_insert(0) += item.qty;
    }
    needs
}

/// Why `have` (units left per SKU, `None` when unknown) cannot cover `needs`, if it cannot.
fn shortfall(needs: &BTreeMap<&str, u64>, have: &BTreeMap<&str, Option<u64>>) -> Option<String> {
    if needs.is_empty() {
        return Some("the order has no items".to_owned());
    }
    for (sku, need) in needs {
        match have.get(sku).copied().flatten() {
            None => return Some(format!("unknown sku {sku}")),
            Some(left) if left < *need => {
                return Some(format!(
                    "out of stock: {sku} has {left}, the order needs {need}"
                ));
            }
            Some(_) => {}
        }
    }
    None
}

fn emit(topic: &str, order: &str, data: &Value) -> Result<(), Error> {
    publish(Outgoing::json(topic, data)?.key(order))?;
    Ok(())
}

fn on_placed(event: &Event) -> Result<(), Error> {
    let data: Value = event.json()?;
    let placed: Placed = serde_json::from_value(data.clone())
        .map_err(|e| Error::reject(format!("event {}: not an order: {e}", event.id())))?;
    let record = format!("{ORDERS}{}", placed.order);
    if state::get::<Reservation>(&record)?.is_some() {
        // Placed again (a client retried its publish): it was decided the first time.
        return Ok(());
    }
    let initial = initial_stock()?;
    let needs = needs(&placed.items);
    let mut have = BTreeMap::new();
    for sku in needs.keys() {
        have.insert(*sku, units_left(sku, &initial)?);
    }
    if let Some(reason) = shortfall(&needs, &have) {
        state::set(
            &record,
            &Reservation {
                status: Status::Rejected,
                items: placed.items.clone(),
                reason: Some(reason.clone()),
            },
        )?;
        let customer = data.get("customer").cloned().unwrap_or(Value::Null);
        let rejected = json!({"order": placed.order, "customer": customer, "reason": reason});
        return emit("inventory.rejected", &placed.order, &rejected);
    }
    for (sku, need) in &needs {
        let left = have[sku].expect("shortfall found every sku known");
        state::set(&format!("{STOCK}{sku}"), &(left - need))?;
    }
    state::set(
        &record,
        &Reservation {
            status: Status::Reserved,
            items: placed.items.clone(),
            reason: None,
        },
    )?;
    emit("inventory.reserved", &placed.order, &data)
}

fn on_declined(event: &Event) -> Result<(), Error> {
    let data: Value = event.json()?;
    let order = data
        .get("order")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::reject(format!("event {}: no string `order`", event.id())))?;
    let record = format!("{ORDERS}{order}");
    let Some(mut reservation) = state::get::<Reservation>(&record)? else {
        return Err(Error::reject(format!(
            "payment of order {order} declined, but the order was never reserved here"
        )));
    };
    if reservation.status != Status::Reserved {
        // Already released (a redelivered or repeated decline), or never reserved.
        return Ok(());
    }
    let initial = initial_stock()?;
    for (sku, qty) in needs(&reservation.items) {
        let left = units_left(sku, &initial)?.unwrap_or(0);
        state::set(&format!("{STOCK}{sku}"), &(left + qty))?;
    }
    reservation.status = Status::Released;
    state::set(&record, &reservation)?;
    let released = json!({
        "order": order,
        "customer": data.get("customer").cloned().unwrap_or(Value::Null),
        "items": reservation.items,
    });
    emit("inventory.released", order, &released)
}

struct Inventory;

impl Handler for Inventory {
    fn describe() -> Info {
        Info::new("inventory", env!("CARGO_PKG_VERSION"))
            .description("Reserves stock for placed orders, all items or none; releases it on a declined payment")
            .subscribe("orders.placed")
            .subscribe("payments.declined")
            .publishes("inventory.*")
    }

    fn handle(event: Event) -> Result<(), Error> {
        match event.topic() {
            "orders.placed" => on_placed(&event),
            "payments.declined" => on_declined(&event),
            other => Err(Error::reject(format!("not subscribed to {other}"))),
        }
    }

    fn query(request: Request) -> Response {
        if request.method() != "GET" {
            return Response::not_found();
        }
        let answer = match request.segments().as_slice() {
            ["stock"] => all_stock(),
            ["stock", sku] => one_stock(sku),
            ["orders", id] => match state::get::<Reservation>(&format!("{ORDERS}{id}")) {
                Ok(Some(reservation)) => Ok(Response::json(200, &reservation)),
                Ok(None) => Ok(Response::problem(404, format!("no order {id} seen"))),
                Err(e) => Err(e.to_string()),
            },
            _ => Ok(Response::not_found()),
        };
        answer.unwrap_or_else(|e| Response::problem(500, e))
    }
}

fn all_stock() -> Result<Response, String> {
    let mut stock = initial_stock().map_err(|e| e.message().to_owned())?;
    for entry in state::scan_json::<u64>(STOCK) {
        let (key, units) = entry.map_err(|e| e.to_string())?;
        stock.insert(key[STOCK.len()..].to_owned(), units);
    }
    Ok(Response::json(200, &stock))
}

fn one_stock(sku: &str) -> Result<Response, String> {
    let initial = initial_stock().map_err(|e| e.message().to_owned())?;
    match units_left(sku, &initial).map_err(|e| e.message().to_owned())? {
        Some(units) => Ok(Response::json(200, &units)),
        None => Ok(Response::problem(404, format!("unknown sku {sku}"))),
    }
}

choreo_sdk::export_handler!(Inventory);

#[cfg(test)]
mod tests {
    use super::*;

    fn item(sku: &str, qty: u64) -> Item {
        Item {
            sku: sku.to_owned(),
            qty,
        }
    }

    #[test]
    fn stock_config_parses_pairs_and_refuses_garbage() {
        let stock = parse_stock(" sku-1=100, sku-2 = 5 ,").unwrap();
        assert_eq!(stock["sku-1"], 100);
        assert_eq!(stock["sku-2"], 5);
        assert!(parse_stock("sku-1").unwrap_err().contains("sku=units"));
        assert!(parse_stock("sku-1=-3").is_err());
        assert!(parse_stock("").unwrap().is_empty());
    }

    #[test]
    fn an_order_is_covered_only_when_every_sku_is() {
        let items = [item("a", 2), item("b", 1), item("a", 3)];
        let needs = needs(&items);
        assert_eq!(needs["a"], 5);
        let enough = BTreeMap::from([("a", Some(5)), ("b", Some(1))]);
        assert_eq!(shortfall(&needs, &enough), None);
        let short = BTreeMap::from([("a", Some(4)), ("b", Some(9))]);
        assert!(shortfall(&needs, &short).unwrap().contains("a has 4"));
        let unknown = BTreeMap::from([("a", Some(9)), ("b", None)]);
        assert!(
            shortfall(&needs, &unknown)
                .unwrap()
                .contains("unknown sku b")
        );
        assert!(shortfall(&BTreeMap::new(), &enough).is_some());
    }
}
