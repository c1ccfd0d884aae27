//! `relay`: bridges topics by republishing every event it receives onto another topic.
//!
//! One component serves any number of bridges: each deployment's manifest says what to
//! relay in its `[config]` table, read in `describe` and `handle`:
//!
//! ```toml
//! [config]
//! name = "orders-to-billing"   # the handler's name; default `relay`
//! subscribe = "orders.>"       # the pattern it consumes; default `relay.in`
//! publish = "billing.orders"   # the topic it republishes on; default `relay.out`
//! ```
//!
//! The republished event carries the same data, the same ordering key (so per-key order
//! holds downstream) and the same content type; choreo links it to the received event
//! (`causationid`, and the same `correlationid`). An event that arrives on the publish
//! topic itself is rejected rather than republished, so a pattern that covers its own
//! output cannot loop forever. Keeps no state.

use choreo_sdk::{Error, Event, Handler, Info, Outgoing, config, publish};

/// The handler's name when the manifest sets none.
const DEFAULT_NAME: &str = "relay";
/// The pattern consumed when the manifest sets none.
const DEFAULT_SUBSCRIBE: &str = "relay.in";
/// The topic republished on when the manifest sets none.
const DEFAULT_PUBLISH: &str = "relay.out";

/// The configured value of `key`, or `default`; an empty value counts as unset.
fn setting(key: &str, default: &str) -> String {
    config::get(key)
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// The event to publish on `topic` for a received event with these attributes.
fn relayed(topic: &str, data: &[u8], key: Option<&str>, content_type: Option<&str>) -> Outgoing {
    let mut outgoing = Outgoing::new(topic, data);
    if let Some(key) = key {
        outgoing = outgoing.key(key);
    }
    if let Some(content_type) = content_type {
        outgoing = outgoing.content_type(content_type);
    }
    outgoing
}

struct Relay;

impl Handler for Relay {
    fn describe() -> Info {
        let publish = setting("publish", DEFAULT_PUBLISH);
        Info::new(setting("name", DEFAULT_NAME), env!("CARGO_PKG_VERSION"))
            .description(format!("Republishes every event it receives on {publish}"))
            .subscribe(setting("subscribe", DEFAULT_SUBSCRIBE))
            .publishes(publish)
    }

    fn handle(event: Event) -> Result<(), Error> {
        let topic = setting("publish", DEFAULT_PUBLISH);
        if event.topic() == topic {
            return Err(Error::reject(format!(
                "event {} arrived on {topic}, the topic this relay publishes to; \
                 relaying it would loop",
                event.id()
            )));
        }
        publish(relayed(
            &topic,
            event.data(),
            event.key(),
            event.content_type(),
        ))?;
        Ok(())
    }
}

choreo_sdk::export_handler!(Relay);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_events_keep_data_key_and_content_type() {
        let outgoing = relayed("b.out", b"{\"n\":1}", Some("k-7"), Some("application/json"));
        assert_eq!(outgoing.topic(), "b.out");
        assert_eq!(outgoing.data(), b"{\"n\":1}");
        assert_eq!(outgoing.raw().key.as_deref(), Some("k-7"));
        assert_eq!(
            outgoing.raw().datacontenttype.as_deref(),
            Some("application/json")
        );
    }

    #[test]
    fn relayed_events_without_key_or_content_type_have_none() {
        let outgoing = relayed("b.out", b"raw", None, None);
        assert_eq!(outgoing.raw().key, None);
        assert_eq!(outgoing.raw().datacontenttype, None);
    }
}
