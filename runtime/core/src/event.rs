//! Events: CloudEvents 1.0 attributes plus routing and choreography links.
//!
//! An [`Event`] is what a publisher hands to choreo; once the broker has appended it to
//! its log it becomes a [`RecordedEvent`] with a sequence number. Both are immutable facts:
//! nothing here changes an event after it is built.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::{EventId, Topic};

/// Longest extension attribute name. CloudEvents recommends at most 20 characters; this
/// is looser so existing producers are not refused, but still bounded.
pub const MAX_EXTENSION_NAME_BYTES: usize = 64;

/// CloudEvents attribute names that are not extensions, so cannot be set as one.
pub const RESERVED_ATTRIBUTES: &[&str] = &[
    "id",
    "source",
    "specversion",
    "type",
    "datacontenttype",
    "dataschema",
    "subject",
    "time",
    "data",
    "data_base64",
    "topic",
    "partitionkey",
    "correlationid",
    "causationid",
    "replyto",
];

/// Why an event attribute was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    /// A required attribute is empty.
    #[error("attribute `{name}` must not be empty")]
    Empty {
        /// The attribute.
        name: &'static str,
    },
    /// An extension name breaks the CloudEvents naming rule.
    #[error(
        "extension attribute name `{name}` must be 1 to {MAX_EXTENSION_NAME_BYTES} lower-case ASCII letters or digits"
    )]
    BadExtensionName {
        /// The name.
        name: String,
    },
    /// An extension uses the name of a core or choreo attribute.
    #[error("`{name}` is a reserved attribute and cannot be set as an extension")]
    ReservedExtension {
        /// The name.
        name: String,
    },
}

/// Checks an extension attribute name against the CloudEvents rule.
pub fn check_extension_name(name: &str) -> Result<(), AttributeError> {
    let well_formed = !name.is_empty()
        && name.len() <= MAX_EXTENSION_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !well_formed {
        return Err(AttributeError::BadExtensionName {
            name: name.to_owned(),
        });
    }
    if RESERVED_ATTRIBUTES.contains(&name) {
        return Err(AttributeError::ReservedExtension {
            name: name.to_owned(),
        });
    }
    Ok(())
}

/// An immutable event before (or apart from) its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// CloudEvents `id`: generated, or supplied by the publisher.
    pub id: EventId,
    /// CloudEvents `source`: who published it (a URI reference).
    pub source: String,
    /// CloudEvents `type`: what happened.
    #[serde(rename = "type")]
    pub ty: String,
    /// Where it was published.
    pub topic: Topic,
    /// CloudEvents `time`.
    pub time: Timestamp,
    /// CloudEvents `datacontenttype`.
    pub datacontenttype: Option<String>,
    /// CloudEvents `dataschema`.
    pub dataschema: Option<String>,
    /// CloudEvents `subject`.
    pub subject: Option<String>,
    /// The ordering key (CloudEvents `partitionkey` extension); none means the topic.
    pub key: Option<String>,
    /// The business transaction this event belongs to.
    pub correlation_id: EventId,
    /// The event whose handling published this one.
    pub causation_id: Option<EventId>,
    /// Where the publisher waits for a reply.
    pub reply_to: Option<Topic>,
    /// Other CloudEvents extension attributes.
    pub extensions: BTreeMap<String, String>,
    /// The payload.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

impl Event {
    /// A new event on `topic` with a generated id, the topic as type, the current time,
    /// and itself as the root of its correlation.
    pub fn new(topic: Topic, source: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        let id = EventId::generate();
        Event {
            correlation_id: id.clone(),
            id,
            source: source.into(),
            ty: topic.as_str().to_owned(),
            topic,
            time: Timestamp::now(),
            datacontenttype: None,
            dataschema: None,
            subject: None,
            key: None,
            causation_id: None,
            reply_to: None,
            extensions: BTreeMap::new(),
            data: data.into(),
        }
    }

    /// The key that orders this event among a handler's deliveries: the partition key,
    /// or the topic when there is none.
    pub fn ordering_key(&self) -> &str {
        self.key.as_deref().unwrap_or(self.topic.as_str())
    }

    /// Approximate encoded size in bytes: the payload plus every attribute. Size limits
    /// are checked against this, so a large extension cannot slip past a data limit.
    pub fn size(&self) -> usize {
        let optional = |v: &Option<String>| v.as_ref().map_or(0, String::len);
        self.id.as_str().len()
            + self.source.len()
            + self.ty.len()
            + self.topic.as_str().len()
            + optional(&self.datacontenttype)
            + optional(&self.dataschema)
            + optional(&self.subject)
            + optional(&self.key)
            + self.correlation_id.as_str().len()
            + self.causation_id.as_ref().map_or(0, |id| id.as_str().len())
            + self.reply_to.as_ref().map_or(0, |t| t.as_str().len())
            + self
                .extensions
                .iter()
                .map(|(k, v)| k.len() + v.len())
                .sum::<usize>()
            + self.data.len()
            + 32
    }

    /// Checks what the types alone cannot: required attributes are non-empty and
    /// extension names follow the CloudEvents rule.
    pub fn validate(&self) -> Result<(), AttributeError> {
        if self.source.is_empty() {
            return Err(AttributeError::Empty { name: "source" });
        }
        if self.ty.is_empty() {
            return Err(AttributeError::Empty { name: "type" });
        }
        self.extensions
            .keys()
            .try_for_each(|name| check_extension_name(name))
    }
}

/// An event as the broker's log holds it: with its sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    /// Position in the log: strictly increasing in publish order, starting at 1.
    pub seq: u64,
    /// The event.
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> Event {
        Event::new(
            Topic::new("orders.created").unwrap(),
            "test://unit",
            b"{}".to_vec(),
        )
    }

    #[test]
    fn a_new_event_roots_its_own_correlation() {
        let e = event();
        assert_eq!(e.correlation_id, e.id);
        assert_eq!(e.ty, "orders.created");
        assert_eq!(e.ordering_key(), "orders.created");
        assert!(e.validate().is_ok());
    }

    #[test]
    fn the_partition_key_orders_when_present() {
        let mut e = event();
        e.key = Some("customer-7".into());
        assert_eq!(e.ordering_key(), "customer-7");
    }

    #[test]
    fn extension_names_follow_cloudevents() {
        let mut e = event();
        e.extensions.insert("traceparent".into(), "x".into());
        assert!(e.validate().is_ok());
        e.extensions.insert("Bad-Name".into(), "x".into());
        assert!(matches!(
            e.validate(),
            Err(AttributeError::BadExtensionName { .. })
        ));
        assert!(matches!(
            check_extension_name("topic"),
            Err(AttributeError::ReservedExtension { .. })
        ));
    }

    #[test]
    fn size_counts_attributes_not_only_data() {
        let mut e = event();
        let before = e.size();
        e.extensions.insert("big".into(), "v".repeat(1000));
        assert!(e.size() >= before + 1000);
    }

    #[test]
    fn round_trips_through_json() {
        let mut e = event();
        e.data = vec![0, 159, 146, 150];
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(serde_json::from_str::<Event>(&text).unwrap(), e);
    }
}
