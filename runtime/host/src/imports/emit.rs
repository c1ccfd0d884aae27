//! `choreo:handler/emit`: publishing from inside `handle`.
//!
//! A publish is checked here, in this order: the call may publish at all (only
//! `handle` may), the per-call count, the topic grammar, the declared publish patterns
//! (or the handled event's reply topic), the extension names, and the size. An event
//! that passes is stamped with a fresh id, the handler as source, and the handled
//! event's correlation id and id as causation, then buffered: it is committed with the
//! delivery's ack, or dropped if the call fails.

use choreo_core::{Event, EventId, Timestamp, Topic, check_extension_name};

use crate::bindings::choreo::handler::emit::{Host, PublishError};
use crate::bindings::choreo::handler::types::Outgoing;
use crate::call::CallState;

impl Host for CallState {
    async fn publish(&mut self, event: Outgoing) -> wasmtime::Result<Result<String, PublishError>> {
        Ok(self.try_publish(event))
    }
}

impl CallState {
    fn try_publish(&mut self, out: Outgoing) -> Result<String, PublishError> {
        let Some(scope) = &self.setup.scope else {
            return Err(PublishError::ReadOnly(format!(
                "publishing is not possible during {}; only handle may publish",
                self.setup.mode.name()
            )));
        };
        if self.published.len() >= self.setup.limits.max_publishes {
            return Err(PublishError::TooMany(format!(
                "this call already published {} events, the handler's limit (max_publishes)",
                self.setup.limits.max_publishes
            )));
        }
        let topic =
            Topic::new(out.topic).map_err(|err| PublishError::InvalidTopic(err.to_string()))?;
        let is_reply = scope.reply_to.as_ref() == Some(&topic);
        if !is_reply && !scope.declared.iter().any(|pattern| pattern.matches(&topic)) {
            let declared: Vec<&str> = scope.declared.iter().map(|p| p.as_str()).collect();
            return Err(PublishError::NotDeclared(format!(
                "topic `{topic}` matches none of the handler's declared publish patterns [{}]; declare it in describe",
                declared.join(", ")
            )));
        }
        for (name, _) in &out.extensions {
            check_extension_name(name)
                .map_err(|err| PublishError::InvalidEvent(err.to_string()))?;
        }
        let id = EventId::generate();
        let event = Event {
            ty: out.type_.unwrap_or_else(|| topic.as_str().to_owned()),
            topic,
            source: scope.source.to_string(),
            time: Timestamp::now(),
            datacontenttype: out.datacontenttype,
            dataschema: None,
            subject: out.subject,
            key: out.key,
            correlation_id: scope.correlation_id.clone(),
            causation_id: Some(scope.causation_id.clone()),
            reply_to: None,
            extensions: out.extensions.into_iter().collect(),
            data: out.data,
            id: id.clone(),
        };
        if event.size() > self.setup.limits.max_publish_bytes {
            return Err(PublishError::TooLarge(format!(
                "event on `{}` is {} bytes, past the handler's limit of {} (max_publish_bytes)",
                event.topic,
                event.size(),
                self.setup.limits.max_publish_bytes
            )));
        }
        self.published.push(event);
        Ok(id.to_string())
    }
}
