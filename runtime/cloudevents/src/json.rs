//! Events as choreo hands them out: structured-mode CloudEvents JSON.

use base64::Engine;
use choreo_core::RecordedEvent;
use serde_json::{Map, Value, json};

/// A recorded event as a structured-mode CloudEvent, with choreo's fields (`topic`,
/// `seq`, `correlationid`, `causationid`, `partitionkey`, `replyto`) as extensions.
/// JSON data is inlined as `data`, UTF-8 text with a `text/*` type too; anything else
/// is `data_base64`.
pub fn to_cloudevent(recorded: &RecordedEvent) -> Value {
    let event = &recorded.event;
    let mut object = Map::new();
    object.insert("specversion".into(), json!(crate::SPEC_VERSION));
    object.insert("id".into(), json!(event.id.as_str()));
    object.insert("source".into(), json!(event.source));
    object.insert("type".into(), json!(event.ty));
    object.insert("time".into(), json!(event.time.to_string()));
    object.insert("topic".into(), json!(event.topic.as_str()));
    object.insert("seq".into(), json!(recorded.seq));
    object.insert("correlationid".into(), json!(event.correlation_id.as_str()));
    let optional = [
        ("datacontenttype", event.datacontenttype.as_deref()),
        ("dataschema", event.dataschema.as_deref()),
        ("subject", event.subject.as_deref()),
        ("partitionkey", event.key.as_deref()),
        (
            "causationid",
            event.causation_id.as_ref().map(|id| id.as_str()),
        ),
        ("replyto", event.reply_to.as_ref().map(|t| t.as_str())),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            object.insert(name.into(), json!(value));
        }
    }
    for (name, value) in &event.extensions {
        object.insert(name.clone(), json!(value));
    }
    let content_type = event.datacontenttype.as_deref().unwrap_or("");
    let parsed = if crate::attributes::is_json_media_type(event.datacontenttype.as_deref()) {
        serde_json::from_slice::<Value>(&event.data).ok()
    } else {
        None
    };
    match parsed {
        Some(value) => {
            object.insert("data".into(), value);
        }
        None => match std::str::from_utf8(&event.data) {
            Ok(text) if content_type.starts_with("text/") => {
                object.insert("data".into(), json!(text));
            }
            _ => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(&event.data);
                object.insert("data_base64".into(), json!(encoded));
            }
        },
    }
    Value::Object(object)
}
