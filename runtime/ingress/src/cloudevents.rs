//! The CloudEvents 1.0 HTTP binary mode: `ce-*` headers carry the attributes, the body
//! is the data, `content-type` is `datacontenttype`.
//!
//! Publishers that send plain bodies get sensible defaults: a generated id, the source
//! `choreo://ingress`, the topic as type, the current time. Attributes that are present
//! are validated and refused with a message naming the header.

use std::collections::BTreeMap;

use choreo_core::{Event, EventId, Timestamp, Topic, check_extension_name};
use http::HeaderMap;

/// The `source` of events published over HTTP without a `ce-source` header.
pub const DEFAULT_SOURCE: &str = "choreo://ingress";

/// The CloudEvents version choreo speaks.
pub const SPEC_VERSION: &str = "1.0";

/// Headers that map to choreo's own fields rather than to extensions.
const KNOWN: &[&str] = &[
    "ce-id",
    "ce-source",
    "ce-type",
    "ce-specversion",
    "ce-time",
    "ce-subject",
    "ce-dataschema",
    "ce-partitionkey",
    "ce-correlationid",
];

/// Why the attributes of a binary-mode request were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("header `{header}`: {reason}")]
pub struct AttributeError {
    /// The offending header.
    pub header: String,
    /// What is wrong with it.
    pub reason: String,
}

fn refuse(header: &str, reason: impl Into<String>) -> AttributeError {
    AttributeError {
        header: header.to_owned(),
        reason: reason.into(),
    }
}

/// Builds the event for a binary-mode request to `topic`.
pub fn from_binary(
    topic: Topic,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Event, AttributeError> {
    let text = |name: &str| -> Result<Option<String>, AttributeError> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => value.to_str().map(|v| Some(v.to_owned())).map_err(|_| {
                refuse(
                    name,
                    "is not visible ASCII; percent-encode other characters",
                )
            }),
        }
    };
    if let Some(version) = text("ce-specversion")?
        && version != SPEC_VERSION
    {
        return Err(refuse(
            "ce-specversion",
            format!("is {version:?}; choreo speaks CloudEvents {SPEC_VERSION}"),
        ));
    }
    let mut event = Event::new(topic, DEFAULT_SOURCE, body);
    if let Some(id) = text("ce-id")? {
        event.id = EventId::new(id).map_err(|err| refuse("ce-id", err.to_string()))?;
        event.correlation_id = event.id.clone();
    }
    if let Some(source) = text("ce-source")? {
        if source.is_empty() {
            return Err(refuse("ce-source", "must not be empty"));
        }
        event.source = source;
    }
    if let Some(ty) = text("ce-type")? {
        if ty.is_empty() {
            return Err(refuse("ce-type", "must not be empty"));
        }
        event.ty = ty;
    }
    if let Some(time) = text("ce-time")? {
        event.time = time
            .parse::<Timestamp>()
            .map_err(|err| refuse("ce-time", format!("is not an RFC 3339 timestamp: {err}")))?;
    }
    event.subject = text("ce-subject")?;
    event.dataschema = text("ce-dataschema")?;
    event.key = text("ce-partitionkey")?;
    if let Some(correlation) = text("ce-correlationid")? {
        event.correlation_id =
            EventId::new(correlation).map_err(|err| refuse("ce-correlationid", err.to_string()))?;
    }
    event.datacontenttype = text("content-type")?;
    let mut extensions = BTreeMap::new();
    for (name, _) in headers {
        let name = name.as_str();
        let Some(attribute) = name.strip_prefix("ce-") else {
            continue;
        };
        if KNOWN.contains(&name) {
            continue;
        }
        check_extension_name(attribute).map_err(|err| refuse(name, err.to_string()))?;
        if let Some(value) = text(name)? {
            extensions.insert(attribute.to_owned(), value);
        }
    }
    event.extensions = extensions;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn topic() -> Topic {
        Topic::new("orders.created").unwrap()
    }

    #[test]
    fn a_plain_body_gets_defaults() {
        let event = from_binary(topic(), &HeaderMap::new(), b"{}".to_vec()).unwrap();
        assert_eq!(event.source, DEFAULT_SOURCE);
        assert_eq!(event.ty, "orders.created");
        assert_eq!(event.correlation_id, event.id);
    }

    #[test]
    fn ce_headers_become_attributes_and_extensions() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("ce-id", "order-1"),
            ("ce-source", "/shop"),
            ("ce-type", "com.shop.order.created"),
            ("ce-specversion", "1.0"),
            ("ce-time", "2026-11-26T10:00:00Z"),
            ("ce-partitionkey", "customer-7"),
            ("ce-traceparent", "00-abc-def-01"),
            ("content-type", "application/json"),
        ] {
            headers.insert(name, HeaderValue::from_static(value));
        }
        let event = from_binary(topic(), &headers, b"{}".to_vec()).unwrap();
        assert_eq!(event.id.as_str(), "order-1");
        assert_eq!(event.source, "/shop");
        assert_eq!(event.ty, "com.shop.order.created");
        assert_eq!(event.key.as_deref(), Some("customer-7"));
        assert_eq!(event.datacontenttype.as_deref(), Some("application/json"));
        assert_eq!(
            event.extensions.get("traceparent").map(String::as_str),
            Some("00-abc-def-01")
        );
        assert_eq!(event.time.to_string(), "2026-11-26T10:00:00Z");
    }

    #[test]
    fn bad_attributes_name_their_header() {
        let mut headers = HeaderMap::new();
        headers.insert("ce-specversion", HeaderValue::from_static("0.3"));
        let err = from_binary(topic(), &headers, vec![]).unwrap_err();
        assert_eq!(err.header, "ce-specversion");
        let mut headers = HeaderMap::new();
        headers.insert("ce-time", HeaderValue::from_static("yesterday"));
        assert_eq!(
            from_binary(topic(), &headers, vec![]).unwrap_err().header,
            "ce-time"
        );
        let mut headers = HeaderMap::new();
        headers.insert("ce-id", HeaderValue::from_static("has space"));
        assert_eq!(
            from_binary(topic(), &headers, vec![]).unwrap_err().header,
            "ce-id"
        );
    }
}
