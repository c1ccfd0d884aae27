//! Events as the API hands them out — structured-mode CloudEvents JSON — and
//! `GET /v1/events`, browsing the log by pattern and position.

use base64::Engine;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value, json};

use choreo_broker::EventQuery;
use choreo_core::{Pattern, RecordedEvent};

use crate::AppState;
use crate::problem::Problem;
use crate::publish::broker_problem;
use crate::routes::{Reply, json as json_reply, query_params};

/// Events per page when the client does not say.
pub const DEFAULT_PAGE: usize = 100;
/// Most events per page: a page is built in memory.
pub const MAX_PAGE: usize = 1_000;

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
    let parsed = if crate::cloudevents::is_json_media_type(event.datacontenttype.as_deref()) {
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

pub(crate) async fn list(state: &AppState, request: &Request<Incoming>) -> Reply {
    let params = query_params(request.uri().query());
    let pattern = match params.get("pattern") {
        None => None,
        Some(text) => match Pattern::new(text.clone()) {
            Ok(pattern) => Some(pattern),
            Err(err) => {
                return Problem::bad_request("invalid-pattern", err.to_string()).into_response();
            }
        },
    };
    let after = match params.get("after").map(|a| a.parse::<u64>()) {
        None => 0,
        Some(Ok(after)) => after,
        Some(Err(_)) => {
            return Problem::bad_request("invalid-parameter", "`after` must be a sequence number")
                .into_response();
        }
    };
    let limit = match params.get("limit").map(|l| l.parse::<usize>()) {
        None => DEFAULT_PAGE,
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => limit,
        Some(_) => {
            return Problem::bad_request(
                "invalid-parameter",
                format!("`limit` must be 1 to {MAX_PAGE}"),
            )
            .into_response();
        }
    };
    let query = EventQuery {
        from_seq: after.saturating_add(1),
        pattern,
        limit,
    };
    match state.broker.read_events(query).await {
        Ok(page) => {
            let events: Vec<Value> = page.events.iter().map(to_cloudevent).collect();
            // The broker may stop early when a pattern filters out many rows; its cursor
            // says where to continue, whether or not this page is full.
            let next = page.next_seq.saturating_sub(1).max(after);
            json_reply(StatusCode::OK, &json!({ "events": events, "next": next }))
        }
        Err(err) => broker_problem(err),
    }
}
