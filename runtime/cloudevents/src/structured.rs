//! The CloudEvents JSON format as the HTTP binding's structured mode
//! (`application/cloudevents+json`, one event object) and batch mode
//! (`application/cloudevents-batch+json`, an array of them).
//!
//! Parsing only: every event of a request is built (or the request refused, naming the
//! event's index in a batch and the attribute) before anything is published, so a batch
//! is all or nothing. Attributes map onto events as in binary mode
//! ([`attributes::build_event`]); the topic comes from the path or, on `/v1/events`,
//! from each event's `topic` attribute.
//!
//! The body is read once, each event's members kept as their JSON text (`read`): JSON
//! data is stored as the text it came in with (a `Value` would round numbers beyond
//! `f64` and sort members), and so are number and boolean extensions. A member named
//! twice is refused.

mod read;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use base64::Engine;
use choreo_core::{Event, Topic};
use http::StatusCode;
use serde_json::value::RawValue;

use crate::attributes::{self, AttributeError, REQUIRED};
use read::{Batch, Item, JsonType, Members};

/// Where the events of a request are published.
#[derive(Debug, Clone, Copy)]
pub enum Destination<'a> {
    /// The topic in the path (`/v1/topics/{topic}`).
    Path(&'a Topic),
    /// Each event's `topic` attribute (`/v1/events`).
    TopicAttribute,
}

/// Why a structured or batch request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The HTTP status to answer with.
    pub status: StatusCode,
    /// The problem kind (`/problems/<kind>`).
    pub kind: &'static str,
    /// What is wrong, naming the event and attribute.
    pub detail: String,
}

impl Refusal {
    fn bad(kind: &'static str, detail: impl Into<String>) -> Self {
        Refusal {
            status: StatusCode::BAD_REQUEST,
            kind,
            detail: detail.into(),
        }
    }

    /// The same refusal, saying which event of a batch it is about.
    fn at(self, index: usize) -> Self {
        Refusal {
            detail: format!("event {index} of the batch: {}", self.detail),
            ..self
        }
    }
}

impl From<AttributeError> for Refusal {
    fn from(err: AttributeError) -> Self {
        Refusal::bad("invalid-attribute", err.to_string())
    }
}

/// Parses a structured-mode body: one CloudEvent object.
pub fn parse_event(body: &[u8], destination: Destination<'_>) -> Result<Event, Refusal> {
    let item: Item<'_> = serde_json::from_slice(body).map_err(|err| {
        Refusal::bad(
            "malformed-json",
            format!("the body is not JSON ({err}); structured mode takes one CloudEvent object"),
        )
    })?;
    from_item(item, destination)
}

/// Parses a batch-mode body: a JSON array of 1 to `max_events` CloudEvent objects.
pub fn parse_batch(
    body: &[u8],
    destination: Destination<'_>,
    max_events: usize,
) -> Result<Vec<Event>, Refusal> {
    let batch: Batch<'_> = serde_json::from_slice(body).map_err(|err| {
        Refusal::bad(
            "malformed-json",
            format!("the body is not JSON ({err}); batch mode takes an array of CloudEvents"),
        )
    })?;
    let items = match batch {
        Batch::Array(items) => items,
        Batch::Other(found) => {
            return Err(Refusal::bad(
                "malformed-batch",
                format!("a batch is a JSON array of CloudEvents, found {found}"),
            ));
        }
    };
    if items.is_empty() {
        return Err(Refusal::bad(
            "empty-batch",
            "the batch holds no events; send at least one",
        ));
    }
    if items.len() > max_events {
        return Err(Refusal {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "batch-too-large",
            detail: format!(
                "the batch holds {} events; the limit is {max_events} (max_batch_events): split it",
                items.len()
            ),
        });
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| from_item(item, destination).map_err(|err| err.at(index)))
        .collect()
}

/// Builds the event from one CloudEvent in the JSON format.
fn from_item(item: Item<'_>, destination: Destination<'_>) -> Result<Event, Refusal> {
    let members = match item {
        Item::Object(members) => members,
        Item::Other(found) => {
            return Err(Refusal::bad(
                "malformed-event",
                format!("a CloudEvent is a JSON object, found {found}"),
            ));
        }
    };
    let mut members = by_name(members)?;
    let data = members.remove("data").filter(|value| !is_null(value));
    let data_base64 = members
        .remove("data_base64")
        .filter(|value| !is_null(value));
    let mut attributes = attributes(members)?;
    for name in REQUIRED {
        if !attributes.contains_key(*name) {
            return Err(AttributeError::attribute(
                name,
                "is missing; a CloudEvent needs `specversion`, `id`, `source` and `type`",
            )
            .into());
        }
    }
    let topic = topic(attributes.remove("topic"), destination)?;
    let content_type = attributes.get("datacontenttype").map(String::as_str);
    let data = match (data, data_base64) {
        (Some(_), Some(_)) => {
            return Err(Refusal::bad(
                "invalid-data",
                "the event has both `data` and `data_base64`; send one",
            ));
        }
        (None, None) => Vec::new(),
        (None, Some(encoded)) => {
            let Some(encoded) = string(encoded, "data_base64")? else {
                return Err(Refusal::bad(
                    "invalid-data",
                    format!(
                        "`data_base64` must be a base64 string, found {}",
                        JsonType::of(encoded)
                    ),
                ));
            };
            base64::engine::general_purpose::STANDARD
                .decode(encoded.as_bytes())
                .map_err(|err| {
                    Refusal::bad(
                        "invalid-data",
                        format!("`data_base64` is not valid base64: {err}"),
                    )
                })?
        }
        (Some(data), None) if attributes::is_json_media_type(content_type) => {
            data.get().as_bytes().to_vec()
        }
        (Some(data), None) => match string(data, "data")? {
            Some(text) => text.into_bytes(),
            None => {
                return Err(Refusal::bad(
                    "invalid-data",
                    format!(
                        "`data` is {} but `datacontenttype` `{}` is not JSON: send text as a string or bytes as `data_base64`",
                        JsonType::of(data),
                        content_type.unwrap_or_default()
                    ),
                ));
            }
        },
    };
    Ok(attributes::build_event(topic, attributes, data)?)
}

/// The members of an event object by name; a name given twice is refused rather than
/// one of its values silently dropped.
fn by_name(members: Members<'_>) -> Result<BTreeMap<Cow<'_, str>, &RawValue>, Refusal> {
    let mut by_name = BTreeMap::new();
    for (name, value) in members {
        match by_name.entry(name) {
            Entry::Vacant(slot) => {
                slot.insert(value);
            }
            Entry::Occupied(slot) => {
                return Err(Refusal::bad(
                    "malformed-event",
                    format!(
                        "the event has two `{}` members; a CloudEvent names each once",
                        slot.key()
                    ),
                ));
            }
        }
    }
    Ok(by_name)
}

fn is_null(value: &RawValue) -> bool {
    JsonType::of(value) == JsonType::Null
}

/// The text of member `name`'s value when it is a JSON string, `None` for any other value.
fn string(value: &RawValue, name: &str) -> Result<Option<String>, Refusal> {
    if JsonType::of(value) == JsonType::String {
        text(value, name).map(Some)
    } else {
        Ok(None)
    }
}

/// The text of the JSON string `value` of member `name`. An escape that is no character
/// (a lone surrogate, `"\ud800"`) is refused here: the body's one read checks only the
/// escapes' syntax.
fn text(value: &RawValue, name: &str) -> Result<String, Refusal> {
    serde_json::from_str(value.get()).map_err(|err| {
        let kind = if matches!(name, "data" | "data_base64") {
            "invalid-data"
        } else {
            "invalid-attribute"
        };
        Refusal::bad(kind, format!("`{name}` is not valid text: {err}"))
    })
}

/// The members of an event object other than its data, as attribute text. The core
/// attributes must be strings; extensions may also be numbers or booleans (CloudEvents
/// `Integer` and `Boolean`), kept as their JSON text. `null` means absent.
fn attributes(
    members: BTreeMap<Cow<'_, str>, &RawValue>,
) -> Result<BTreeMap<String, String>, Refusal> {
    const STRINGS: &[&str] = &[
        "specversion",
        "id",
        "source",
        "type",
        "time",
        "subject",
        "dataschema",
        "datacontenttype",
        "topic",
    ];
    let mut attributes = BTreeMap::new();
    for (name, value) in members {
        let found = JsonType::of(value);
        let text = match found {
            JsonType::Null => continue,
            JsonType::String => text(value, &name)?,
            JsonType::Number | JsonType::Boolean if !STRINGS.contains(&name.as_ref()) => {
                value.get().to_owned()
            }
            _ => {
                let expected = if STRINGS.contains(&name.as_ref()) {
                    "a string"
                } else {
                    "a string, number or boolean"
                };
                return Err(AttributeError::attribute(
                    &name,
                    format!("must be {expected}, found {found}"),
                )
                .into());
            }
        };
        attributes.insert(name.into_owned(), text);
    }
    Ok(attributes)
}

/// The event's topic: the path's, or its `topic` attribute's on `/v1/events`.
fn topic(attribute: Option<String>, destination: Destination<'_>) -> Result<Topic, Refusal> {
    let topic = match (destination, attribute) {
        (Destination::Path(path), None) => return Ok(path.clone()),
        (Destination::Path(path), Some(named)) if named == path.as_str() => {
            return Ok(path.clone());
        }
        (Destination::Path(path), Some(named)) => {
            return Err(AttributeError::attribute(
                "topic",
                format!("is `{named}` but the path publishes to `{path}`; drop one"),
            )
            .into());
        }
        (Destination::TopicAttribute, None) => {
            return Err(AttributeError::attribute(
                "topic",
                "is missing; on /v1/events it names where the event is published \
                 (or POST to /v1/topics/{topic})",
            )
            .into());
        }
        (Destination::TopicAttribute, Some(named)) => Topic::new(named)
            .map_err(|err| Refusal::bad("invalid-topic", format!("attribute `topic`: {err}")))?,
    };
    if topic.is_reserved() {
        return Err(Refusal::bad(
            "reserved-topic",
            format!("attribute `topic`: `{topic}` starts with `$`, which is reserved to choreo"),
        ));
    }
    Ok(topic)
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    fn path() -> Topic {
        Topic::new("orders.created").unwrap()
    }

    fn minimal() -> Value {
        json!({"specversion": "1.0", "id": "e-1", "source": "/shop", "type": "order.created"})
    }

    fn parse(value: Value) -> Result<Event, Refusal> {
        parse_event(
            &serde_json::to_vec(&value).unwrap(),
            Destination::Path(&path()),
        )
    }

    fn with(member: &str, value: Value) -> Value {
        let mut event = minimal();
        event[member] = value;
        event
    }

    #[test]
    fn json_data_is_stored_exactly_as_it_came_in() {
        let body = br#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t",
            "data": {"z": 12345678901234567890123, "a": [1.50]}}"#;
        let event = parse_event(body, Destination::Path(&path())).unwrap();
        assert_eq!(
            event.data,
            br#"{"z": 12345678901234567890123, "a": [1.50]}"#
        );
        let batch = format!(
            "[{}, {}]",
            std::str::from_utf8(body).unwrap(),
            r#"{"specversion": "1.0", "id": "e-2", "source": "/s", "type": "t", "data": 0.30000000000000000001}"#
        );
        let events = parse_batch(batch.as_bytes(), Destination::Path(&path()), 8).unwrap();
        assert_eq!(events[0].data, event.data);
        assert_eq!(events[1].data, b"0.30000000000000000001");
    }

    #[test]
    fn deeply_nested_data_is_stored_without_recursing() {
        // As binary mode stores any body: the data is skipped over, not built, so its
        // depth costs no stack.
        let data = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        let body = format!(
            r#"{{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data": {data}}}"#
        );
        let event = parse_event(body.as_bytes(), Destination::Path(&path())).unwrap();
        assert_eq!(event.data, data.as_bytes());
        let batch = format!("[{body}]");
        let events = parse_batch(batch.as_bytes(), Destination::Path(&path()), 8).unwrap();
        assert_eq!(events[0].data, data.as_bytes());
    }

    #[test]
    fn a_lone_surrogate_is_refused() {
        for (body, kind) in [
            (
                r#"{"specversion": "1.0", "id": "\ud800", "source": "/s", "type": "t"}"#,
                "invalid-attribute",
            ),
            (
                r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "x\udfff": "1"}"#,
                "malformed-json",
            ),
            (
                r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "datacontenttype": "text/plain", "data": "\udc00"}"#,
                "invalid-data",
            ),
            (
                r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data_base64": "\ud800"}"#,
                "invalid-data",
            ),
        ] {
            let err = parse_event(body.as_bytes(), Destination::Path(&path())).unwrap_err();
            assert_eq!(err.kind, kind, "{body}: {err:?}");
        }
        // In JSON data it is JSON text, kept as it came, as binary mode keeps any body.
        let body =
            r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data": "\ud800"}"#;
        let event = parse_event(body.as_bytes(), Destination::Path(&path())).unwrap();
        assert_eq!(event.data, br#""\ud800""#);
    }

    #[test]
    fn a_member_named_twice_is_refused() {
        for body in [
            r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data": 1, "data": {"b": 2}}"#,
            r#"{"specversion": "1.0", "id": null, "source": "/s", "type": "t", "id": "e-2"}"#,
            r#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t", "data": 1, "da\u0074a": 2}"#,
        ] {
            let err = parse_event(body.as_bytes(), Destination::Path(&path())).unwrap_err();
            assert_eq!(err.kind, "malformed-event", "{body}: {err:?}");
            assert!(err.detail.starts_with("the event has two `"), "{err:?}");
        }
    }

    #[test]
    fn json_data_is_stored_as_its_text() {
        let event = parse(with("data", json!({"total": 12}))).unwrap();
        assert_eq!(event.data, br#"{"total":12}"#);
        assert_eq!(event.topic, path());
        assert_eq!(event.id.as_str(), "e-1");
        assert_eq!(event.datacontenttype, None);
    }

    #[test]
    fn text_data_with_a_text_type_is_stored_as_its_bytes() {
        let mut value = with("data", json!("hello"));
        value["datacontenttype"] = json!("text/plain");
        assert_eq!(parse(value).unwrap().data, b"hello");
        // The same string with a JSON type is a JSON string.
        assert_eq!(
            parse(with("data", json!("hello"))).unwrap().data,
            b"\"hello\""
        );
    }

    #[test]
    fn data_base64_is_decoded() {
        let mut value = with("data_base64", json!("AAEC/w=="));
        value["datacontenttype"] = json!("application/octet-stream");
        assert_eq!(parse(value).unwrap().data, [0, 1, 2, 255]);
        let err = parse(with("data_base64", json!("not base64!"))).unwrap_err();
        assert_eq!(err.kind, "invalid-data");
    }

    #[test]
    fn both_data_forms_are_refused() {
        let mut value = with("data", json!(1));
        value["data_base64"] = json!("AA==");
        let err = parse(value).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert!(
            err.detail.contains("both `data` and `data_base64`"),
            "{err:?}"
        );
    }

    #[test]
    fn extensions_are_kept_as_text() {
        let mut value = with("traceparent", json!("00-abc"));
        value["priority"] = json!(3);
        value["urgent"] = json!(true);
        value["partitionkey"] = json!("c-7");
        let event = parse(value).unwrap();
        assert_eq!(event.extensions["traceparent"], "00-abc");
        assert_eq!(event.extensions["priority"], "3");
        assert_eq!(event.extensions["urgent"], "true");
        assert_eq!(event.key.as_deref(), Some("c-7"));
    }

    #[test]
    fn number_extensions_keep_their_digits() {
        let body = br#"{"specversion": "1.0", "id": "e-1", "source": "/s", "type": "t",
            "weight": 1.50, "big": 12345678901234567890123}"#;
        let event = parse_event(body, Destination::Path(&path())).unwrap();
        assert_eq!(event.extensions["weight"], "1.50");
        assert_eq!(event.extensions["big"], "12345678901234567890123");
    }

    #[test]
    fn required_attributes_are_named_when_missing_or_wrong() {
        for name in REQUIRED {
            let mut value = minimal();
            value.as_object_mut().unwrap().remove(*name);
            let err = parse(value).unwrap_err();
            assert!(
                err.detail
                    .starts_with(&format!("attribute `{name}` is missing")),
                "{err:?}"
            );
        }
        let err = parse(with("specversion", json!("0.3"))).unwrap_err();
        assert!(err.detail.starts_with("attribute `specversion`"), "{err:?}");
        let err = parse(with("id", json!(7))).unwrap_err();
        assert!(
            err.detail.starts_with("attribute `id` must be a string"),
            "{err:?}"
        );
        let err = parse(with("type", json!(""))).unwrap_err();
        assert!(err.detail.starts_with("attribute `type`"), "{err:?}");
        let err = parse(with("Bad-Name", json!("x"))).unwrap_err();
        assert!(err.detail.starts_with("attribute `Bad-Name`"), "{err:?}");
    }

    #[test]
    fn the_topic_comes_from_the_path_or_the_attribute() {
        let body = serde_json::to_vec(&with("topic", json!("payments.settled"))).unwrap();
        let event = parse_event(&body, Destination::TopicAttribute).unwrap();
        assert_eq!(event.topic.as_str(), "payments.settled");
        assert!(!event.extensions.contains_key("topic"));
        let err = parse_event(&body, Destination::Path(&path())).unwrap_err();
        assert!(err.detail.contains("the path publishes to"), "{err:?}");
        let missing = serde_json::to_vec(&minimal()).unwrap();
        let err = parse_event(&missing, Destination::TopicAttribute).unwrap_err();
        assert!(
            err.detail.starts_with("attribute `topic` is missing"),
            "{err:?}"
        );
        for bad in ["a..b", "$reply.x"] {
            let body = serde_json::to_vec(&with("topic", json!(bad))).unwrap();
            let err = parse_event(&body, Destination::TopicAttribute).unwrap_err();
            assert!(err.detail.contains("attribute `topic`"), "{err:?}");
        }
    }

    #[test]
    fn a_batch_names_the_index_of_a_bad_event() {
        let batch = json!([minimal(), with("id", json!("")), minimal()]);
        let err = parse_batch(
            &serde_json::to_vec(&batch).unwrap(),
            Destination::Path(&path()),
            10,
        )
        .unwrap_err();
        assert!(
            err.detail
                .starts_with("event 1 of the batch: attribute `id`"),
            "{err:?}"
        );
    }

    #[test]
    fn batch_shape_and_size_are_checked() {
        let parse = |body: &[u8], max| parse_batch(body, Destination::Path(&path()), max);
        assert_eq!(parse(b"[]", 10).unwrap_err().kind, "empty-batch");
        assert_eq!(parse(b"{}", 10).unwrap_err().kind, "malformed-batch");
        let err = parse(br#"{"a": [1, {}]}"#, 10).unwrap_err();
        assert!(err.detail.ends_with("found an object"), "{err:?}");
        let err = parse(br#"[[1, {"id": 2}], "x"]"#, 10).unwrap_err();
        assert_eq!(err.kind, "malformed-event");
        assert!(
            err.detail
                .starts_with("event 0 of the batch: a CloudEvent is a JSON object, found an array"),
            "{err:?}"
        );
        assert_eq!(parse(b"[1,", 10).unwrap_err().kind, "malformed-json");
        let three = serde_json::to_vec(&json!([minimal(), minimal(), minimal()])).unwrap();
        assert_eq!(
            parse(&three, 2).unwrap_err().status,
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(parse(&three, 3).unwrap().len(), 3);
    }
}
