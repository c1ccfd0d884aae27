//! `router`: fans enriched orders out by content.
//!
//! Consumes `orders.enriched` and republishes each order, unchanged and keyed by its id, to
//! `orders.routed.<region>`, and also to `orders.review.high-value` when `total_cents` is at
//! least 100000 (`HIGH_VALUE_CENTS`). The region becomes a topic token by `region_token`
//! (lower-cased; anything but ASCII letters, digits, `-` and `_` becomes `-`). An event
//! without a string `region` and an integer `total_cents` is rejected. Keeps no state.

use choreo_sdk::{Error, Event, Handler, Info, Outgoing, publish};
use serde_json::Value;

/// Orders from this total on (1000.00 in the currency's units) also go to review.
const HIGH_VALUE_CENTS: u64 = 100_000;

/// Region tokens are cut to this many bytes so that `orders.routed.<region>` stays well
/// inside choreo's 255-byte topic limit.
const MAX_REGION_BYTES: usize = 64;

const REVIEW_TOPIC: &str = "orders.review.high-value";

/// Turns a region into a topic token: lower-case ASCII letters, digits, `-` and `_` are kept
/// (upper case is lowered, so `EU` and `eu` share a topic), anything else becomes `-`, the
/// result is cut to [`MAX_REGION_BYTES`], and an empty region becomes `unknown`. The result
/// never holds `.`, `*`, `>` or whitespace and never starts with the reserved `$`.
fn region_token(region: &str) -> String {
    let token: String = region
        .trim()
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' | '-' | '_' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .take(MAX_REGION_BYTES)
        .collect();
    if token.is_empty() {
        "unknown".to_owned()
    } else {
        token
    }
}

/// The topics an enriched order goes to, or why it cannot be routed.
fn routes(order: &Value) -> Result<Vec<String>, String> {
    let region = order
        .get("region")
        .and_then(Value::as_str)
        .ok_or("the order has no string `region`")?;
    let total = order
        .get("total_cents")
        .and_then(Value::as_u64)
        .ok_or("the order has no non-negative integer `total_cents`")?;
    let mut topics = vec![format!("orders.routed.{}", region_token(region))];
    if total >= HIGH_VALUE_CENTS {
        topics.push(REVIEW_TOPIC.to_owned());
    }
    Ok(topics)
}

struct Router;

impl Handler for Router {
    fn describe() -> Info {
        Info::new("router", env!("CARGO_PKG_VERSION"))
            .description(
                "Routes enriched orders to orders.routed.<region>; high-value ones also to review",
            )
            .subscribe("orders.enriched")
            .publishes("orders.routed.*")
            .publishes("orders.review.>")
    }

    fn handle(event: Event) -> Result<(), Error> {
        let order: Value = event.json()?;
        let topics =
            routes(&order).map_err(|e| Error::reject(format!("event {}: {e}", event.id())))?;
        let key = order.get("id").and_then(Value::as_str);
        for topic in topics {
            let mut outgoing = Outgoing::new(topic, event.data()).content_type("application/json");
            if let Some(key) = key {
                outgoing = outgoing.key(key);
            }
            publish(outgoing)?;
        }
        Ok(())
    }
}

choreo_sdk::export_handler!(Router);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn region_tokens_are_valid_topic_tokens() {
        assert_eq!(region_token("eu"), "eu");
        assert_eq!(region_token("US-East"), "us-east");
        assert_eq!(region_token("a.b *>\tc"), "a-b----c");
        assert_eq!(region_token("$sys"), "-sys");
        assert_eq!(region_token("   "), "unknown");
        assert_eq!(region_token("é"), "-");
        assert_eq!(region_token(&"x".repeat(300)).len(), MAX_REGION_BYTES);
    }

    #[test]
    fn high_value_orders_also_go_to_review() {
        let small = routes(&json!({"region": "eu", "total_cents": 99_999})).unwrap();
        assert_eq!(small, ["orders.routed.eu"]);
        let large = routes(&json!({"region": "eu", "total_cents": 100_000})).unwrap();
        assert_eq!(large, ["orders.routed.eu", "orders.review.high-value"]);
    }

    #[test]
    fn orders_without_region_or_total_cannot_be_routed() {
        assert!(
            routes(&json!({"total_cents": 1}))
                .unwrap_err()
                .contains("region")
        );
        assert!(
            routes(&json!({"region": "eu", "total_cents": -1}))
                .unwrap_err()
                .contains("total_cents")
        );
    }
}
