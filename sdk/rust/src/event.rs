//! [`Event`]: one delivered event, with accessors for its CloudEvents attributes and
//! choreo's routing fields, and decoding of its data.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::Error;
use crate::bindings::choreo::handler::types as wit;

/// One immutable event, as delivered to [`Handler::handle`](crate::Handler::handle).
///
/// Decoding its data with [`json`](Event::json) or [`text`](Event::text) fails with a
/// reject: data that does not decode now will not decode on a redelivery either.
#[derive(Clone)]
pub struct Event {
    raw: wit::Event,
}

impl Event {
    /// An event on `topic` carrying `data`, with placeholder attributes: id `test`, source
    /// `choreo://test`, seq 0, attempt 1. Meant for unit tests of handler logic; choreo builds
    /// the real ones.
    pub fn new(topic: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        let topic = topic.into();
        Self {
            raw: wit::Event {
                id: "test".to_owned(),
                source: "choreo://test".to_owned(),
                type_: topic.clone(),
                topic,
                time: "1970-01-01T00:00:00Z".to_owned(),
                datacontenttype: None,
                subject: None,
                data: data.into(),
                seq: 0,
                key: None,
                correlationid: "test".to_owned(),
                causationid: None,
                replyto: None,
                attempt: 1,
                extensions: Vec::new(),
            },
        }
    }

    /// Replaces the id (and, as for an event that came from outside, the correlation id).
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.raw.id = id.into();
        self.raw.correlationid = self.raw.id.clone();
        self
    }

    /// Sets the media type of the data.
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.raw.datacontenttype = Some(content_type.into());
        self
    }

    /// Sets the reply topic.
    pub fn with_reply_to(mut self, topic: impl Into<String>) -> Self {
        self.raw.replyto = Some(topic.into());
        self
    }

    /// Sets the ordering key.
    pub fn with_key(mut self, key: impl Into<String>) -> Self {
        self.raw.key = Some(key.into());
        self
    }

    /// Adds an extension attribute.
    pub fn with_extension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.raw.extensions.push((name.into(), value.into()));
        self
    }

    /// Unique id of the event (CloudEvents `id`).
    pub fn id(&self) -> &str {
        &self.raw.id
    }

    /// Who published it, as a URI reference (CloudEvents `source`).
    pub fn source(&self) -> &str {
        &self.raw.source
    }

    /// What happened (CloudEvents `type`).
    pub fn kind(&self) -> &str {
        &self.raw.type_
    }

    /// The topic it was published on.
    pub fn topic(&self) -> &str {
        &self.raw.topic
    }

    /// When it was published, RFC 3339 in UTC.
    pub fn time(&self) -> &str {
        &self.raw.time
    }

    /// Media type of the data (CloudEvents `datacontenttype`), if known.
    pub fn content_type(&self) -> Option<&str> {
        self.raw.datacontenttype.as_deref()
    }

    /// CloudEvents `subject`.
    pub fn subject(&self) -> Option<&str> {
        self.raw.subject.as_deref()
    }

    /// The payload, exactly as published.
    pub fn data(&self) -> &[u8] {
        &self.raw.data
    }

    /// Takes the payload out of the event.
    pub fn into_data(self) -> Vec<u8> {
        self.raw.data
    }

    /// Position in choreo's log, increasing in publish order.
    pub fn seq(&self) -> u64 {
        self.raw.seq
    }

    /// The ordering key (CloudEvents `partitionkey`); none means the topic is the key.
    pub fn key(&self) -> Option<&str> {
        self.raw.key.as_deref()
    }

    /// Id of the business transaction the event belongs to.
    pub fn correlation_id(&self) -> &str {
        &self.raw.correlationid
    }

    /// Id of the event whose handling published this one; none if it came from outside.
    pub fn causation_id(&self) -> Option<&str> {
        self.raw.causationid.as_deref()
    }

    /// The topic on which the publisher waits for a reply; see [`reply`](crate::reply).
    pub fn reply_to(&self) -> Option<&str> {
        self.raw.replyto.as_deref()
    }

    /// Which delivery attempt this is: 1 the first time.
    pub fn attempt(&self) -> u32 {
        self.raw.attempt
    }

    /// Every extension attribute, as name/value pairs.
    pub fn extensions(&self) -> &[(String, String)] {
        &self.raw.extensions
    }

    /// The value of the extension attribute `name`, if present.
    pub fn extension(&self, name: &str) -> Option<&str> {
        self.raw
            .extensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Decodes the data as JSON into `T`.
    ///
    /// # Errors
    ///
    /// A reject naming the event and the serde error when the data is not JSON of that shape.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.raw.data).map_err(|e| {
            Error::reject(format!(
                "event {} on {}: invalid json data: {e}",
                self.id(),
                self.topic()
            ))
        })
    }

    /// The data as UTF-8 text.
    ///
    /// # Errors
    ///
    /// A reject naming the event when the data is not valid UTF-8.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.raw.data).map_err(|e| {
            Error::reject(format!(
                "event {} on {}: data is not utf-8: {e}",
                self.id(),
                self.topic()
            ))
        })
    }

    /// The WIT record.
    pub fn raw(&self) -> &wit::Event {
        &self.raw
    }

    /// Takes the WIT record out.
    pub fn into_raw(self) -> wit::Event {
        self.raw
    }
}

impl From<wit::Event> for Event {
    fn from(raw: wit::Event) -> Self {
        Self { raw }
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.raw.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Order {
        id: String,
    }

    #[test]
    fn json_decodes_and_malformed_data_rejects_naming_the_event() {
        let event = Event::new("orders.created", r#"{"id":"o-1"}"#).with_id("e-1");
        assert_eq!(event.json::<Order>().unwrap(), Order { id: "o-1".into() });

        let error = Event::new("orders.created", "{")
            .with_id("e-2")
            .json::<Order>()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Reject);
        assert!(
            error
                .message()
                .starts_with("event e-2 on orders.created: invalid json"),
            "{error}"
        );
    }

    #[test]
    fn text_rejects_invalid_utf8() {
        assert_eq!(Event::new("a", "hi").text().unwrap(), "hi");
        let error = Event::new("a", vec![0xff, 0xfe]).text().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Reject);
    }

    #[test]
    fn accessors_read_the_attributes() {
        let event = Event::new("a.b", "x")
            .with_id("e-9")
            .with_reply_to("$reply.e-9")
            .with_key("k")
            .with_content_type("text/plain")
            .with_extension("tenant", "acme");
        assert_eq!(event.id(), "e-9");
        assert_eq!(event.correlation_id(), "e-9");
        assert_eq!(event.topic(), "a.b");
        assert_eq!(event.kind(), "a.b");
        assert_eq!(event.reply_to(), Some("$reply.e-9"));
        assert_eq!(event.key(), Some("k"));
        assert_eq!(event.content_type(), Some("text/plain"));
        assert_eq!(event.extension("tenant"), Some("acme"));
        assert_eq!(event.extension("missing"), None);
        assert_eq!(event.attempt(), 1);
        assert_eq!(event.into_data(), b"x");
    }
}
