//! `POST /v1/topics/{topic}`: publish one event, CloudEvents binary mode. Answers 202
//! with `{id, seq, duplicate}` only once the event is durable (the broker's group
//! commit), so an acknowledged event is never lost.

use http::{Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Serialize;

use choreo_core::Topic;

use crate::AppState;
use crate::cloudevents;
use crate::problem::Problem;
use crate::routes::{Reply, json};

#[derive(Serialize)]
struct Accepted {
    id: String,
    seq: u64,
    duplicate: bool,
}

pub(crate) async fn publish_to_topic(
    state: &AppState,
    topic: &str,
    request: Request<Incoming>,
) -> Reply {
    let topic =
        match percent_decode(topic).and_then(|t| Topic::new(t).map_err(|err| err.to_string())) {
            Ok(topic) => topic,
            Err(reason) => return Problem::bad_request("invalid-topic", reason).into_response(),
        };
    if topic.is_reserved() {
        return Problem::bad_request(
            "reserved-topic",
            format!("topic `{topic}` starts with `$`, which is reserved to choreo"),
        )
        .into_response();
    }
    let (parts, body) = request.into_parts();
    let max = state.config.max_body_bytes;
    let body = match Limited::new(body, max).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err)
            if err
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Problem::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too-large",
                format!("the body is larger than the limit of {max} bytes"),
            )
            .into_response();
        }
        Err(err) => {
            return Problem::bad_request("bad-body", format!("reading the body failed: {err}"))
                .into_response();
        }
    };
    if body.is_empty() {
        return Problem::bad_request(
            "empty-body",
            "the body is the event's data and must not be empty",
        )
        .into_response();
    }
    let event = match cloudevents::from_binary(topic, &parts.headers, body.to_vec()) {
        Ok(event) => event,
        Err(err) => {
            return Problem::bad_request("invalid-attribute", err.to_string()).into_response();
        }
    };
    match state.broker.publish(vec![event]).await {
        Ok(published) => {
            let first = published
                .into_iter()
                .next()
                .expect("one event in, one result out");
            json(
                StatusCode::ACCEPTED,
                &Accepted {
                    id: first.id.to_string(),
                    seq: first.seq,
                    duplicate: first.duplicate,
                },
            )
        }
        Err(err) => broker_problem(err),
    }
}

/// Maps a broker error to the status a client can act on.
pub(crate) fn broker_problem(err: choreo_broker::Error) -> Reply {
    use choreo_broker::Error as E;
    match err {
        E::Closed => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting-down",
            "choreo is shutting down; retry against another node or later",
        )
        .into_response(),
        E::EventTooLarge { .. } | E::BatchTooManyBytes { .. } => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "too-large", err.to_string())
                .into_response()
        }
        E::InvalidEvent { .. } | E::EmptyBatch | E::BatchTooLarge { .. } => {
            Problem::bad_request("invalid-event", err.to_string()).into_response()
        }
        other => {
            tracing::error!(error = %other, "the broker failed a publish");
            Problem::internal(format!("storing the event failed: {other}")).into_response()
        }
    }
}

pub(crate) fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .ok_or_else(|| format!("`{text}` has a truncated %-escape"))?;
            let byte = u8::from_str_radix(hex, 16)
                .map_err(|_| format!("`{text}` has an invalid %-escape `%{hex}`"))?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("`{text}` is not UTF-8 once decoded"))
}
