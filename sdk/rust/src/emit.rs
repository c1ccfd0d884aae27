//! Publishing from inside `handle`: the [`Outgoing`] builder, [`publish`] and its JSON and
//! reply shorthands, and [`PublishError`].
//!
//! What a call publishes is buffered by choreo and becomes visible only if the call succeeds;
//! it carries the handled event's correlation id and has it as causation id.

use std::fmt;

use serde::Serialize;

use crate::Event;
use crate::bindings::choreo::handler::emit as wit;
use crate::bindings::choreo::handler::types as wit_types;

/// The media type [`Outgoing::json`], [`publish_json`] and [`reply_json`] set.
pub const JSON: &str = "application/json";

/// An event to publish. choreo fills in the id, source, time and links.
///
/// ```
/// # use choreo_sdk::Outgoing;
/// let event = Outgoing::new("orders.shipped", "o-1")
///     .key("o-1")
///     .kind("com.example.order.shipped")
///     .extension("tenant", "acme");
/// assert_eq!(event.topic(), "orders.shipped");
/// ```
#[derive(Clone)]
pub struct Outgoing {
    raw: wit_types::Outgoing,
}

impl Outgoing {
    /// An event on `topic` carrying `data` as is, without a media type.
    pub fn new(topic: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            raw: wit_types::Outgoing {
                topic: topic.into(),
                type_: None,
                datacontenttype: None,
                key: None,
                subject: None,
                data: data.into(),
                extensions: Vec::new(),
            },
        }
    }

    /// An event on `topic` carrying `value` encoded as JSON, with media type
    /// `application/json`.
    ///
    /// # Errors
    ///
    /// [`PublishError::Encode`] when `value` cannot be encoded (a map with non-string keys).
    pub fn json<T: Serialize + ?Sized>(
        topic: impl Into<String>,
        value: &T,
    ) -> Result<Self, PublishError> {
        let topic = topic.into();
        match serde_json::to_vec(value) {
            Ok(data) => Ok(Self::new(topic, data).content_type(JSON)),
            Err(e) => Err(PublishError::Encode {
                topic,
                message: e.to_string(),
            }),
        }
    }

    /// The ordering key for consumers (CloudEvents `partitionkey`).
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.raw.key = Some(key.into());
        self
    }

    /// CloudEvents `type`; without one choreo uses the topic.
    pub fn kind(mut self, kind: impl Into<String>) -> Self {
        self.raw.type_ = Some(kind.into());
        self
    }

    /// Media type of the data.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.raw.datacontenttype = Some(content_type.into());
        self
    }

    /// CloudEvents `subject`.
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.raw.subject = Some(subject.into());
        self
    }

    /// Adds an extension attribute (name: lower-case ASCII letters and digits).
    pub fn extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.extensions.push((name.into(), value.into()));
        self
    }

    /// The topic it will be published on.
    pub fn topic(&self) -> &str {
        &self.raw.topic
    }

    /// The payload.
    pub fn data(&self) -> &[u8] {
        &self.raw.data
    }

    /// The WIT record.
    pub fn raw(&self) -> &wit_types::Outgoing {
        &self.raw
    }
}

impl fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

/// Why a publish failed. The first six variants are choreo's refusals and carry its message,
/// which says what to change; with `?` in `handle` they all reject the event (see
/// [`Error`](crate::Error)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublishError {
    /// The topic is not a valid topic.
    #[error("invalid topic: {0}")]
    InvalidTopic(String),
    /// Another attribute is invalid, e.g. an extension name.
    #[error("invalid event: {0}")]
    InvalidEvent(String),
    /// The topic matches none of the handler's declared publish patterns.
    #[error("undeclared topic: {0}")]
    NotDeclared(String),
    /// The event is larger than the handler's publish size limit.
    #[error("event too large: {0}")]
    TooLarge(String),
    /// The call already published as many events as one call may.
    #[error("too many publishes: {0}")]
    TooMany(String),
    /// The call is `describe` or `query`, which cannot publish.
    #[error("read-only call: {0}")]
    ReadOnly(String),
    /// [`reply`] was called for an event whose publisher does not wait for a reply.
    #[error("event {event_id} has no reply topic: its publisher does not wait for a reply")]
    NoReplyTopic {
        /// The event that was to be answered.
        event_id: String,
    },
    /// The value to publish could not be encoded as JSON.
    #[error("cannot encode the data for {topic} as json: {message}")]
    Encode {
        /// The topic of the event.
        topic: String,
        /// serde's explanation.
        message: String,
    },
}

impl PublishError {
    /// choreo's own message for a refusal, or the whole description for the SDK's errors.
    pub fn message(&self) -> String {
        match self {
            Self::InvalidTopic(m)
            | Self::InvalidEvent(m)
            | Self::NotDeclared(m)
            | Self::TooLarge(m)
            | Self::TooMany(m)
            | Self::ReadOnly(m) => m.clone(),
            other => other.to_string(),
        }
    }
}

impl From<wit::PublishError> for PublishError {
    fn from(error: wit::PublishError) -> Self {
        match error {
            wit::PublishError::InvalidTopic(m) => Self::InvalidTopic(m),
            wit::PublishError::InvalidEvent(m) => Self::InvalidEvent(m),
            wit::PublishError::NotDeclared(m) => Self::NotDeclared(m),
            wit::PublishError::TooLarge(m) => Self::TooLarge(m),
            wit::PublishError::TooMany(m) => Self::TooMany(m),
            wit::PublishError::ReadOnly(m) => Self::ReadOnly(m),
        }
    }
}

/// Publishes `event` and returns the id choreo gave it.
///
/// # Errors
///
/// choreo's refusal: undeclared or invalid topic, invalid attribute, too large, too many, or a read-only call.
pub fn publish(event: Outgoing) -> Result<String, PublishError> {
    wit::publish(&event.raw).map_err(PublishError::from)
}

/// Publishes `value` as JSON on `topic` (media type `application/json`).
///
/// # Errors
///
/// As [`publish`], plus [`PublishError::Encode`].
pub fn publish_json<T: Serialize + ?Sized>(topic: &str, value: &T) -> Result<String, PublishError> {
    publish(Outgoing::json(topic, value)?)
}

/// Publishes `data` on the reply topic of `event`, answering a request-reply publisher.
///
/// # Errors
///
/// [`PublishError::NoReplyTopic`] when nobody waits for a reply, else as [`publish`].
pub fn reply(event: &Event, data: impl Into<Vec<u8>>) -> Result<String, PublishError> {
    publish(Outgoing::new(reply_topic(event)?, data))
}

/// Publishes `value` as JSON on the reply topic of `event`.
///
/// # Errors
///
/// As [`reply`], plus [`PublishError::Encode`].
pub fn reply_json<T: Serialize + ?Sized>(event: &Event, value: &T) -> Result<String, PublishError> {
    publish(Outgoing::json(reply_topic(event)?, value)?)
}

fn reply_topic(event: &Event) -> Result<&str, PublishError> {
    event.reply_to().ok_or_else(|| PublishError::NoReplyTopic {
        event_id: event.id().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_sets_every_field() {
        let raw = Outgoing::new("a.b", "x")
            .key("k")
            .kind("t")
            .content_type("text/plain")
            .subject("s")
            .extension("tenant", "acme")
            .raw()
            .clone();
        assert_eq!(raw.topic, "a.b");
        assert_eq!(raw.data, b"x");
        assert_eq!(raw.key.as_deref(), Some("k"));
        assert_eq!(raw.type_.as_deref(), Some("t"));
        assert_eq!(raw.datacontenttype.as_deref(), Some("text/plain"));
        assert_eq!(raw.subject.as_deref(), Some("s"));
        assert_eq!(raw.extensions, [("tenant".to_owned(), "acme".to_owned())]);
    }

    #[test]
    fn json_sets_the_media_type_and_encodes() {
        let event = Outgoing::json("a.b", &serde_json::json!({"n": 1})).unwrap();
        assert_eq!(event.data(), br#"{"n":1}"#);
        assert_eq!(event.raw().datacontenttype.as_deref(), Some(JSON));
    }

    #[test]
    fn json_that_cannot_be_encoded_is_an_error_naming_the_topic() {
        let mut map = std::collections::HashMap::new();
        map.insert((1, 2), 3);
        let error = Outgoing::json("a.b", &map).unwrap_err();
        assert!(
            matches!(&error, PublishError::Encode { topic, .. } if topic == "a.b"),
            "{error}"
        );
    }

    #[test]
    fn reply_without_a_reply_topic_names_the_event() {
        let error = reply(&Event::new("a.b", "").with_id("e-7"), "x").unwrap_err();
        assert_eq!(
            error,
            PublishError::NoReplyTopic {
                event_id: "e-7".into()
            }
        );
        assert!(error.to_string().contains("e-7"));
    }

    #[test]
    fn message_is_the_hosts_text_for_refusals() {
        let error = PublishError::from(wit::PublishError::TooMany("at most 100".into()));
        assert_eq!(error.message(), "at most 100");
        assert_eq!(error.to_string(), "too many publishes: at most 100");
    }
}
