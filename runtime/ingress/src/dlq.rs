//! `/v1/dlq`: dead-letters — how many each handler has, listing and inspecting them
//! (cause, attempts, last error, the original event), replaying them into the handler's
//! queue, and discarding them.
//!
//! | method | path | answer |
//! |---|---|---|
//! | GET | `/v1/dlq` | `{handlers: [{handler, dead_letters}]}` |
//! | GET | `/v1/dlq/{handler}?after=SEQ&limit=N` | `{dead_letters: [..], next}`; `next` is the `after` of the next page, `null` on the last |
//! | DELETE | `/v1/dlq/{handler}` | `{discarded: n}`, all of them |
//! | POST | `/v1/dlq/{handler}/replay` | `{replayed: n}`, all of them |
//! | GET | `/v1/dlq/{handler}/{seq}` | one dead-letter |
//! | DELETE | `/v1/dlq/{handler}/{seq}` | `{discarded: 1}` |
//! | POST | `/v1/dlq/{handler}/{seq}/replay` | `{replayed: 1}` |
//!
//! A dead-letter is named by the seq of the original event. Replaying puts the event
//! back in that handler's queue only, with its attempts reset.

use http::{Method, StatusCode};
use serde::Serialize;
use serde_json::{Value, json};

use choreo_broker::{DeadLetter, Selection};
use choreo_core::{HandlerName, Timestamp};

use crate::AppState;
use crate::events::page_limit;
use crate::problem::Problem;
use crate::publish::broker_problem;
use crate::routes::{Reply, json as json_reply, query_params};
use choreo_cloudevents::StructuredEvent;

#[derive(Serialize)]
struct DeadLetterView<'a> {
    /// The original event's seq: the dead-letter's name.
    seq: u64,
    handler: String,
    /// `rejected` or `retries-exhausted`.
    cause: &'static str,
    /// One sentence: the cause with the last error.
    reason: String,
    last_error: String,
    attempts: u32,
    dead_lettered_at: Timestamp,
    /// The seq of the `$dlq.<handler>` event announcing it.
    dead_letter_seq: u64,
    event: StructuredEvent<'a>,
}

impl<'a> From<&'a DeadLetter> for DeadLetterView<'a> {
    fn from(letter: &'a DeadLetter) -> Self {
        DeadLetterView {
            seq: letter.event.seq,
            handler: letter.handler.to_string(),
            cause: letter.cause.label(),
            reason: letter.reason(),
            last_error: letter.last_error.clone(),
            attempts: letter.attempts,
            dead_lettered_at: letter.at,
            dead_letter_seq: letter.dead_letter_seq,
            event: StructuredEvent::new(&letter.event),
        }
    }
}

/// Serves everything under `/v1/dlq`; `rest` is the path after it.
pub(crate) async fn route(
    state: &AppState,
    method: &Method,
    path: &str,
    rest: &[&str],
    query: Option<&str>,
) -> Reply {
    let not_allowed = |allowed| Problem::method_not_allowed(method, path, allowed).into_response();
    match rest {
        [] => match *method {
            Method::GET => counts(state).await,
            _ => not_allowed("GET"),
        },
        [handler] => match (handler_name(handler), method) {
            (Err(problem), _) => problem.into_response(),
            (Ok(handler), &Method::GET) => list(state, &handler, query).await,
            (Ok(handler), &Method::DELETE) => discard(state, &handler, Selection::All).await,
            _ => not_allowed("GET or DELETE"),
        },
        [handler, "replay"] => match (handler_name(handler), method) {
            (Err(problem), _) => problem.into_response(),
            (Ok(handler), &Method::POST) => replay(state, &handler, Selection::All).await,
            _ => not_allowed("POST"),
        },
        [handler, seq] => match (named(handler, seq), method) {
            (Err(problem), _) => problem.into_response(),
            (Ok((handler, seq)), &Method::GET) => show(state, &handler, seq).await,
            (Ok((handler, seq)), &Method::DELETE) => {
                discard(state, &handler, Selection::One(seq)).await
            }
            _ => not_allowed("GET or DELETE"),
        },
        [handler, seq, "replay"] => match (named(handler, seq), method) {
            (Err(problem), _) => problem.into_response(),
            (Ok((handler, seq)), &Method::POST) => {
                replay(state, &handler, Selection::One(seq)).await
            }
            _ => not_allowed("POST"),
        },
        _ => Problem::not_found(path).into_response(),
    }
}

async fn counts(state: &AppState) -> Reply {
    match state.broker.handlers().await {
        Ok(stats) => {
            let handlers: Vec<Value> = stats
                .iter()
                .map(|s| json!({ "handler": s.handler.as_str(), "dead_letters": s.dead_letters }))
                .collect();
            json_reply(StatusCode::OK, &json!({ "handlers": handlers }))
        }
        Err(err) => broker_problem(err),
    }
}

async fn list(state: &AppState, handler: &HandlerName, query: Option<&str>) -> Reply {
    let params = query_params(query);
    let after = match params.get("after").map(|a| a.parse::<u64>()) {
        None => None,
        Some(Ok(after)) => Some(after),
        Some(Err(_)) => {
            return Problem::bad_request(
                "invalid-parameter",
                "`after` must be a sequence number (the `next` of the previous page)",
            )
            .into_response();
        }
    };
    let limit = match page_limit(&params) {
        Ok(limit) => limit,
        Err(problem) => return problem.into_response(),
    };
    // One more than asked tells whether another page follows.
    match state.broker.dead_letters(handler, after, limit + 1).await {
        Ok(mut letters) => {
            let more = letters.len() > limit;
            letters.truncate(limit);
            let next = if more {
                letters.last().map(|l| l.event.seq)
            } else {
                None
            };
            // A struct, not `json!`: a `Value` would parse each event's data again.
            #[derive(Serialize)]
            struct Page<'a> {
                handler: &'a str,
                dead_letters: Vec<DeadLetterView<'a>>,
                next: Option<u64>,
            }
            let page = Page {
                handler: handler.as_str(),
                dead_letters: letters.iter().map(DeadLetterView::from).collect(),
                next,
            };
            json_reply(StatusCode::OK, &page)
        }
        Err(err) => dlq_problem(err),
    }
}

async fn show(state: &AppState, handler: &HandlerName, seq: u64) -> Reply {
    match state.broker.dead_letter(handler, seq).await {
        Ok(Some(letter)) => json_reply(StatusCode::OK, &DeadLetterView::from(&letter)),
        Ok(None) => not_found(handler, seq),
        Err(err) => dlq_problem(err),
    }
}

async fn replay(state: &AppState, handler: &HandlerName, which: Selection) -> Reply {
    match state.broker.replay(handler, which).await {
        Ok(replayed) => {
            tracing::info!(handler = %handler, replayed, "dead-letters replayed");
            json_reply(StatusCode::OK, &json!({ "replayed": replayed }))
        }
        Err(err) => dlq_problem(err),
    }
}

async fn discard(state: &AppState, handler: &HandlerName, which: Selection) -> Reply {
    match state.broker.discard(handler, which).await {
        Ok(discarded) => {
            tracing::info!(handler = %handler, discarded, "dead-letters discarded");
            json_reply(StatusCode::OK, &json!({ "discarded": discarded }))
        }
        Err(err) => dlq_problem(err),
    }
}

/// A handler name from the path. A name that is malformed is the client's mistake (400);
/// a well-formed one that is not subscribed is answered 404 by the broker call.
fn handler_name(text: &str) -> Result<HandlerName, Problem> {
    HandlerName::new(text).map_err(|err| {
        Problem::bad_request(
            "invalid-handler",
            format!("`{text}` is not a handler name: {err}"),
        )
    })
}

/// A handler and a dead-letter's seq from the path.
fn named(handler: &str, seq: &str) -> Result<(HandlerName, u64), Problem> {
    let handler = handler_name(handler)?;
    let seq = seq.parse::<u64>().map_err(|_| {
        Problem::bad_request(
            "invalid-seq",
            format!(
                "`{seq}` is not a sequence number; name a dead-letter by the seq of its event, as `GET /v1/dlq/{handler}` lists them"
            ),
        )
    })?;
    Ok((handler, seq))
}

fn not_found(handler: &HandlerName, seq: u64) -> Reply {
    Problem::new(
        StatusCode::NOT_FOUND,
        "dead-letter-not-found",
        format!(
            "handler `{handler}` has no dead-letter for seq {seq}; `GET /v1/dlq/{handler}` lists the ones it has"
        ),
    )
    .into_response()
}

fn dlq_problem(err: choreo_broker::Error) -> Reply {
    use choreo_broker::Error as E;
    match err {
        E::UnknownHandler { handler } => Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-handler",
            format!("no handler `{handler}` is subscribed; `GET /v1/dlq` lists the handlers"),
        )
        .into_response(),
        E::DeadLetterNotFound { handler, seq } => not_found(&handler, seq),
        other => broker_problem(other),
    }
}
