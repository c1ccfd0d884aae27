//! CloudEvents 1.0 attributes, shared by every mode of the HTTP binding, and the binary
//! mode: `ce-*` headers carry the attributes, the body is the data, `content-type` is
//! `datacontenttype`.
//!
//! [`build_event`] maps attributes by name onto [`Event`]'s fields, whatever carried
//! them: binary mode collects them from headers here, structured and batch mode from
//! JSON members (`structured`). Absent attributes get defaults: a generated id, the
//! source `choreo://ingress`, the topic as type, the current time. Structured mode
//! requires the core attributes before it builds; binary mode takes plain bodies too.
//! Present attributes are validated and refused with a message naming them.

use std::collections::BTreeMap;

use choreo_core::{Event, EventId, Timestamp, Topic, check_extension_name};
use http::HeaderMap;

use crate::percent::percent_decode;

/// The `source` of events published over HTTP without a `ce-source` header.
pub const DEFAULT_SOURCE: &str = "choreo://ingress";

/// The CloudEvents version choreo speaks.
pub const SPEC_VERSION: &str = "1.0";

/// The attributes every CloudEvent must carry; structured mode requires them.
pub const REQUIRED: &[&str] = &["specversion", "id", "source", "type"];

/// Why an attribute was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{carrier} `{name}` {reason}")]
pub struct AttributeError {
    /// What carried it: `header` in binary mode, `attribute` in the JSON format.
    pub carrier: &'static str,
    /// The header or attribute as the client spelled it.
    pub name: String,
    /// What is wrong with it, as the rest of a sentence.
    pub reason: String,
}

impl AttributeError {
    /// An attribute of the JSON format refused for `reason`.
    pub fn attribute(name: &str, reason: impl Into<String>) -> Self {
        AttributeError {
            carrier: "attribute",
            name: name.to_owned(),
            reason: reason.into(),
        }
    }

    fn header(name: &str, reason: impl Into<String>) -> Self {
        AttributeError {
            carrier: "header",
            name: name.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Builds the event on `topic` from its attributes (by CloudEvents name, e.g. `id`,
/// `partitionkey`, `traceparent`) and data. Names choreo does not map to a field of its
/// own become extensions, which must follow the CloudEvents naming rule and must not be
/// one of choreo's reserved names (`replyto` and `causationid` are set by choreo only).
pub fn build_event(
    topic: Topic,
    mut attributes: BTreeMap<String, String>,
    data: Vec<u8>,
) -> Result<Event, AttributeError> {
    let refuse = AttributeError::attribute;
    if let Some(version) = attributes.remove("specversion")
        && version != SPEC_VERSION
    {
        return Err(refuse(
            "specversion",
            format!("is {version:?}; choreo speaks CloudEvents {SPEC_VERSION}"),
        ));
    }
    let mut event = Event::new(topic, DEFAULT_SOURCE, data);
    if let Some(id) = attributes.remove("id") {
        event.id = EventId::new(id).map_err(|err| refuse("id", format!("is invalid: {err}")))?;
        event.correlation_id = event.id.clone();
    }
    if let Some(source) = attributes.remove("source") {
        if source.is_empty() {
            return Err(refuse("source", "must not be empty".to_owned()));
        }
        event.source = source;
    }
    if let Some(ty) = attributes.remove("type") {
        if ty.is_empty() {
            return Err(refuse("type", "must not be empty".to_owned()));
        }
        event.ty = ty;
    }
    if let Some(time) = attributes.remove("time") {
        event.time = time
            .parse::<Timestamp>()
            .map_err(|err| refuse("time", format!("is not an RFC 3339 timestamp: {err}")))?;
    }
    event.subject = attributes.remove("subject");
    event.dataschema = attributes.remove("dataschema");
    event.key = attributes.remove("partitionkey");
    if let Some(correlation) = attributes.remove("correlationid") {
        event.correlation_id = EventId::new(correlation)
            .map_err(|err| refuse("correlationid", format!("is invalid: {err}")))?;
    }
    event.datacontenttype = attributes.remove("datacontenttype");
    for name in attributes.keys() {
        check_extension_name(name).map_err(|err| refuse(name, format!("is refused: {err}")))?;
    }
    event.extensions = attributes;
    Ok(event)
}

/// Builds the event for a binary-mode request to `topic`. Header values are
/// percent-decoded, as the binding asks of receivers.
pub fn from_binary(
    topic: Topic,
    headers: &HeaderMap,
    body: Vec<u8>,
) -> Result<Event, AttributeError> {
    let text = |name: &str, value: &http::HeaderValue| -> Result<String, AttributeError> {
        value.to_str().map(str::to_owned).map_err(|_| {
            AttributeError::header(
                name,
                "is not visible ASCII; percent-encode other characters",
            )
        })
    };
    let mut attributes = BTreeMap::new();
    for (name, value) in headers {
        let Some(attribute) = name.as_str().strip_prefix("ce-") else {
            continue;
        };
        let value = percent_decode(&text(name.as_str(), value)?).map_err(|reason| {
            AttributeError::header(
                name.as_str(),
                format!("is not valid percent-encoding: {reason}"),
            )
        })?;
        attributes.insert(attribute.to_owned(), value);
    }
    if let Some(value) = headers.get(http::header::CONTENT_TYPE) {
        attributes.insert("datacontenttype".to_owned(), text("content-type", value)?);
    }
    build_event(topic, attributes, body).map_err(|err| {
        let header = match err.name.as_str() {
            "datacontenttype" => "content-type".to_owned(),
            name => format!("ce-{name}"),
        };
        AttributeError::header(&header, err.reason)
    })
}

/// Whether data of this media type is JSON: no type (the JSON format's default), or one
/// naming JSON (`application/json`, `text/json`, `application/*+json`).
pub fn is_json_media_type(content_type: Option<&str>) -> bool {
    content_type.is_none_or(|ct| {
        let essence = ct.split(';').next().unwrap_or("").trim();
        essence.is_empty() || essence.to_ascii_lowercase().contains("json")
    })
}

/// Percent-encodes an attribute value for a `ce-*` header, as the binary binding asks:
/// space, `"`, `%` and everything outside printable ASCII, byte by byte in UTF-8.
pub fn percent_encode_header(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if (0x21..=0x7e).contains(&byte) && byte != b'"' && byte != b'%' {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
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
            ("ce-comment", "caf%C3%A9%20au%20lait"),
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
        assert_eq!(
            event.extensions.get("comment").map(String::as_str),
            Some("café au lait")
        );
        assert_eq!(event.time.to_string(), "2026-11-26T10:00:00Z");
    }

    #[test]
    fn bad_attributes_name_their_header() {
        let refused = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            from_binary(topic(), &headers, vec![]).unwrap_err()
        };
        let err = refused("ce-specversion", "0.3");
        assert_eq!(
            (err.carrier, err.name.as_str()),
            ("header", "ce-specversion")
        );
        assert_eq!(refused("ce-time", "yesterday").name, "ce-time");
        assert_eq!(refused("ce-id", "has space").name, "ce-id");
        assert_eq!(refused("ce-replyto", "$reply.x").name, "ce-replyto");
        assert_eq!(refused("ce-note", "100%").name, "ce-note");
    }

    #[test]
    fn attributes_map_to_fields_and_extensions() {
        let attributes: BTreeMap<String, String> = [
            ("specversion", "1.0"),
            ("id", "a-1"),
            ("source", "/s"),
            ("type", "t"),
            ("subject", "sub"),
            ("dataschema", "https://example.com/schema"),
            ("correlationid", "flow-9"),
            ("partitionkey", "k"),
            ("traceparent", "00-1"),
        ]
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
        let event = build_event(topic(), attributes, b"x".to_vec()).unwrap();
        assert_eq!(event.id.as_str(), "a-1");
        assert_eq!(event.correlation_id.as_str(), "flow-9");
        assert_eq!(event.subject.as_deref(), Some("sub"));
        assert_eq!(
            event.dataschema.as_deref(),
            Some("https://example.com/schema")
        );
        assert_eq!(event.key.as_deref(), Some("k"));
        assert_eq!(event.extensions.len(), 1);
        assert_eq!(event.extensions["traceparent"], "00-1");
    }

    #[test]
    fn extension_names_follow_the_naming_rule() {
        for bad in ["Trace", "trace-parent", "causationid"] {
            let attributes = BTreeMap::from([(bad.to_owned(), "v".to_owned())]);
            let err = build_event(topic(), attributes, vec![]).unwrap_err();
            assert_eq!(err.name, bad);
            assert_eq!(err.carrier, "attribute");
        }
        let attributes = BTreeMap::from([("source".to_owned(), String::new())]);
        let err = build_event(topic(), attributes, vec![]).unwrap_err();
        assert_eq!(err.to_string(), "attribute `source` must not be empty");
    }

    #[test]
    fn json_media_types() {
        assert!(is_json_media_type(None));
        assert!(is_json_media_type(Some("application/json; charset=utf-8")));
        assert!(is_json_media_type(Some("application/vnd.shop+json")));
        assert!(!is_json_media_type(Some("text/plain")));
        assert!(!is_json_media_type(Some("application/octet-stream")));
    }

    #[test]
    fn header_values_are_percent_encoded_and_decode_back() {
        let value = "café \"x\" 100%";
        let encoded = percent_encode_header(value);
        assert_eq!(encoded, "caf%C3%A9%20%22x%22%20100%25");
        assert_eq!(percent_decode(&encoded).unwrap(), value);
    }
}
