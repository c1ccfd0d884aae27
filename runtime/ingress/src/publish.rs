//! Publishing: `POST /v1/topics/{topic}` in any CloudEvents mode (binary, structured,
//! batch) and `POST /v1/events` in structured or batch mode, where each event's `topic`
//! attribute says where it goes. Answers 202 with `{id, seq, duplicate}` (an array of
//! them, in order, for a batch) only once the events are durable (the broker's group
//! commit), so an acknowledged event is never lost. A batch is one broker publish: all
//! of it is appended or none. A repeated `source` + `id` within the broker's dedup
//! window is not appended again: its answer has the first copy's seq and
//! `"duplicate": true`. With `?reply=wait` a single publish answers with its reply
//! instead (see `reply`).

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use hyper::body::Incoming;
use serde::Serialize;

use choreo_broker::Published;
use choreo_cloudevents::{self as cloudevents, Destination, Refusal, percent_decode};
use choreo_core::{Event, Topic};
use choreo_host::HANDLER_SOURCE_PREFIX;

use crate::AppState;
use crate::auth::{Caller, Need};
use crate::body::read_whole;
use crate::problem::Problem;
use crate::reply::{self, DEFAULT_REPLY_TIMEOUT};
use crate::routes::{Reply, json, query_params};

/// Structured mode's media type.
const STRUCTURED: &str = "application/cloudevents+json";
/// Batch mode's media type.
const BATCH: &str = "application/cloudevents-batch+json";

#[derive(Serialize)]
struct Accepted {
    id: String,
    seq: u64,
    duplicate: bool,
}

impl From<&Published> for Accepted {
    fn from(published: &Published) -> Self {
        Accepted {
            id: published.id.to_string(),
            seq: published.seq,
            duplicate: published.duplicate,
        }
    }
}

/// How the request carries its events, by its `content-type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Binary,
    Structured,
    Batch,
}

/// `POST /v1/topics/{topic}`.
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
    publish(state, Destination::Path(&topic), None, request)
        .await
        .unwrap_or_else(Problem::into_response)
}

/// `POST /v1/events`.
///
/// The route checked only that the caller may publish somewhere; each event's topic is
/// checked here, once the body is parsed.
pub(crate) async fn publish_events(
    state: &AppState,
    caller: Caller<'_>,
    request: Request<Incoming>,
) -> Reply {
    publish(state, Destination::TopicAttribute, Some(caller), request)
        .await
        .unwrap_or_else(Problem::into_response)
}

/// Publishes the event(s) of `request`. `caller` is checked against each event's topic
/// when the topics come from the body (the route checked a topic in the path).
async fn publish(
    state: &AppState,
    destination: Destination<'_>,
    caller: Option<Caller<'_>>,
    request: Request<Incoming>,
) -> Result<Reply, Problem> {
    let reply = reply_option(request.uri().query(), state.config.max_reply_timeout)?;
    let mode = mode(request.headers())?;
    if mode == Mode::Batch && reply.is_some() {
        return Err(Problem::bad_request(
            "invalid-parameter",
            "`reply=wait` applies to one event, not a batch; publish the request on its own",
        ));
    }
    let (parts, body) = request.into_parts();
    let body = read_body(state, body).await?;
    // A binary event without a `ce-id` gets an id generated now, which cannot repeat:
    // the broker need not keep it in its dedup window. (Structured events require one.)
    let fresh = mode == Mode::Binary && !parts.headers.contains_key("ce-id");
    let event = match (mode, destination) {
        (Mode::Binary, Destination::Path(topic)) => binary_event(topic, &parts.headers, &body)?,
        (Mode::Binary, Destination::TopicAttribute) => {
            return Err(unsupported_problem(
                "POST /v1/events takes structured (application/cloudevents+json) or batch \
                 (application/cloudevents-batch+json) events; to publish a body as the data \
                 of one event, POST it to /v1/topics/{topic}",
            ));
        }
        (Mode::Structured, _) => {
            let event = cloudevents::parse_event(&body, destination).map_err(refusal_problem)?;
            check_source(&event)?;
            if let Some(caller) = caller {
                caller.check(Need::Publish(&event.topic))?;
            }
            event
        }
        (Mode::Batch, _) => {
            let events =
                cloudevents::parse_batch(&body, destination, state.config.max_batch_events)
                    .map_err(refusal_problem)?;
            for (index, event) in events.iter().enumerate() {
                let in_batch = |mut problem: Problem| {
                    problem.detail = format!("event {index} of the batch: {}", problem.detail);
                    problem
                };
                check_source(event).map_err(in_batch)?;
                if let Some(caller) = caller {
                    caller
                        .check(Need::Publish(&event.topic))
                        .map_err(in_batch)?;
                }
            }
            return Ok(publish_batch(state, events).await);
        }
    };
    Ok(match reply {
        None => publish_one(state, event, fresh).await,
        Some(timeout) => publish_and_wait(state, event, fresh, timeout).await,
    })
}

fn binary_event(topic: &Topic, headers: &HeaderMap, body: &Bytes) -> Result<Event, Problem> {
    if body.is_empty() {
        return Err(Problem::bad_request(
            "empty-body",
            "the body is the event's data and must not be empty",
        ));
    }
    let event = cloudevents::from_binary(topic.clone(), headers, body.to_vec())
        .map_err(|err| Problem::bad_request("invalid-attribute", err.to_string()))?;
    check_source(&event)?;
    Ok(event)
}

/// Refuses a `source` that claims a handler produced the event: choreo stamps
/// `choreo://handler/<name>` on what handlers publish, and the trace names the producer
/// from it, so a client may not.
fn check_source(event: &Event) -> Result<(), Problem> {
    if event.source.starts_with(HANDLER_SOURCE_PREFIX) {
        return Err(Problem::bad_request(
            "reserved-source",
            format!(
                "source `{}` starts with `{HANDLER_SOURCE_PREFIX}`, which choreo reserves for \
                 events its handlers publish",
                event.source
            ),
        ));
    }
    Ok(())
}

/// Publishes one event; `fresh` when its id was generated here.
async fn publish_one(state: &AppState, event: Event, fresh: bool) -> Reply {
    match broker_publish(state, vec![event], fresh).await {
        Ok(published) => json(StatusCode::ACCEPTED, &Accepted::from(first(&published))),
        Err(err) => broker_problem(err),
    }
}

async fn publish_batch(state: &AppState, events: Vec<Event>) -> Reply {
    match state.broker.publish(events).await {
        Ok(published) => json(
            StatusCode::ACCEPTED,
            &published.iter().map(Accepted::from).collect::<Vec<_>>(),
        ),
        Err(err) => broker_problem(err),
    }
}

/// Publishes a request with `replyto` set to `$reply.<id>` and waits for its reply.
async fn publish_and_wait(
    state: &AppState,
    mut event: Event,
    fresh: bool,
    timeout: Duration,
) -> Reply {
    let topic = match Topic::reply_to(&event.id) {
        Ok(topic) => topic,
        Err(err) => {
            return Problem::bad_request(
                "invalid-attribute",
                format!(
                    "event id `{}` cannot name a reply topic ($reply.<id>): {err}; \
                     use an id whose `.`-separated parts are non-empty and not `*` or `>`",
                    event.id
                ),
            )
            .into_response();
        }
    };
    event.reply_to = Some(topic.clone());
    // Registered before the publish, so the reply cannot come before anyone listens.
    let waiter = match state.replies.register(topic) {
        Ok(waiter) => waiter,
        Err(full) => {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too-many-waiters",
                format!(
                    "{} requests already wait for replies, the limit (max_reply_waiters); \
                     retry later or publish without `reply=wait`",
                    full.max
                ),
            )
            .into_response();
        }
    };
    let published = match broker_publish(state, vec![event], fresh).await {
        Ok(published) => first(&published).clone(),
        Err(err) => return broker_problem(err),
    };
    tracing::debug!(event_id = %published.id, seq = published.seq, "waiting for a reply");
    reply::await_reply(state.broker.as_ref(), waiter, &published, timeout).await
}

/// `Broker::publish`, or `Broker::publish_fresh` when the events' ids were generated here.
async fn broker_publish(
    state: &AppState,
    events: Vec<Event>,
    fresh: bool,
) -> choreo_broker::Result<Vec<Published>> {
    if fresh {
        state.broker.publish_fresh(events).await
    } else {
        state.broker.publish(events).await
    }
}

fn first(published: &[Published]) -> &Published {
    published.first().expect("one event in, one result out")
}

/// The `reply` and `timeout` parameters: how long to wait for a reply, if at all.
fn reply_option(query: Option<&str>, max: Duration) -> Result<Option<Duration>, Problem> {
    let params = query_params(query);
    let timeout = params
        .get("timeout")
        .map(|text| reply::parse_timeout(text, max))
        .transpose()
        .map_err(|reason| Problem::bad_request("invalid-parameter", reason))?;
    match params.get("reply").map(String::as_str) {
        Some("wait") => Ok(Some(timeout.unwrap_or(DEFAULT_REPLY_TIMEOUT.min(max)))),
        Some(other) => Err(Problem::bad_request(
            "invalid-parameter",
            format!("`reply` is `{other}`; the only value is `wait`"),
        )),
        None if timeout.is_some() => Err(Problem::bad_request(
            "invalid-parameter",
            "`timeout` only applies with `reply=wait`",
        )),
        None => Ok(None),
    }
}

/// The mode of a request by its `content-type`: structured and batch by their media
/// types (UTF-8 only), other CloudEvents formats refused, anything else binary mode.
fn mode(headers: &HeaderMap) -> Result<Mode, Problem> {
    let Some(content_type) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return Ok(Mode::Binary);
    };
    let mut parts = content_type.split(';');
    let essence = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let mode = match essence.as_str() {
        STRUCTURED => Mode::Structured,
        BATCH => Mode::Batch,
        other if other.starts_with("application/cloudevents") => {
            return Err(unsupported_problem(format!(
                "`{content_type}` is not supported; send {STRUCTURED}, {BATCH}, or the data \
                 itself with ce-* headers (binary mode)"
            )));
        }
        _ => return Ok(Mode::Binary),
    };
    for parameter in parts {
        let (name, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        let value = value.trim().trim_matches('"');
        if name.trim().eq_ignore_ascii_case("charset") && !value.eq_ignore_ascii_case("utf-8") {
            return Err(unsupported_problem(format!(
                "charset `{value}` is not supported; CloudEvents JSON is UTF-8"
            )));
        }
    }
    Ok(mode)
}

fn unsupported_problem(detail: impl Into<String>) -> Problem {
    Problem::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported-media-type",
        detail,
    )
}

/// Reads the whole body, up to [`crate::IngressConfig::max_body_bytes`], each piece
/// within [`crate::IngressConfig::idle_timeout`].
async fn read_body(state: &AppState, body: Incoming) -> Result<Bytes, Problem> {
    let config = &state.config;
    read_whole(body, config.max_body_bytes, config.idle_timeout)
        .await
        .map_err(Problem::from)
}

/// Maps a broker error to the status a client can act on, for every route that calls
/// the broker (publishes, listings, metrics, deletes).
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
        // Logged once, with its cause, when the broker stopped; not again per request.
        E::Failed { reason } => storage_failed(&reason).into_response(),
        other => {
            let error = choreo_core::with_causes(&other);
            tracing::error!(%error, "the broker failed a request");
            Problem::internal(format!("the broker failed: {error}")).into_response()
        }
    }
}

/// What every write answers once a storage failure has stopped the broker, and what
/// `/healthz` and `/readyz` answer then: the node cannot take writes until it restarts.
pub(crate) fn storage_failed(reason: &str) -> Problem {
    Problem::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "storage-failed",
        format!(
            "choreo stopped writing after a storage failure: {reason}. Every event already \
             answered 202 is on disk; a write answered 503 may be too, so retry it with the \
             same id (a duplicate is recognised). Restart choreo once the storage is fixed \
             (a full disk freed, a failed one replaced)"
        ),
    )
}

/// A refused CloudEvent as problem+json.
fn refusal_problem(refusal: Refusal) -> Problem {
    Problem::new(refusal.status, refusal.kind, refusal.detail)
}
