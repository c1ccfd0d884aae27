//! `GET /v1/events`: browsing the log by pattern and position, events as structured
//! CloudEvents (`choreo_cloudevents::to_cloudevent`).

use choreo_cloudevents::StructuredEvent;
use http::{Request, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use choreo_broker::EventQuery;
use choreo_core::Pattern;

use crate::AppState;
use crate::problem::Problem;
use crate::publish::broker_problem;
use crate::routes::{Reply, json as json_reply, query_params};

/// Events per page when the client does not say.
pub const DEFAULT_PAGE: usize = 100;
/// Most events per page: a page is built in memory.
pub const MAX_PAGE: usize = 1_000;

/// The `limit` query parameter of a paged list: [`DEFAULT_PAGE`] when absent, 1 to
/// [`MAX_PAGE`] when given.
pub(crate) fn page_limit(
    params: &std::collections::HashMap<String, String>,
) -> Result<usize, Problem> {
    match params.get("limit").map(|l| l.parse::<usize>()) {
        None => Ok(DEFAULT_PAGE),
        Some(Ok(limit)) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(_) => Err(Problem::bad_request(
            "invalid-parameter",
            format!("`limit` must be 1 to {MAX_PAGE}"),
        )),
    }
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
    let limit = match page_limit(&params) {
        Ok(limit) => limit,
        Err(problem) => return problem.into_response(),
    };
    let query = EventQuery {
        from_seq: after.saturating_add(1),
        pattern,
        limit,
    };
    match state.broker.read_events(query).await {
        Ok(page) => {
            #[derive(Serialize)]
            struct Page<'a> {
                events: Vec<StructuredEvent<'a>>,
                next: u64,
            }
            let events = page.events.iter().map(StructuredEvent::new).collect();
            // The broker may stop early when a pattern filters out many rows; its cursor
            // says where to continue, whether or not this page is full.
            let next = page.next_seq.saturating_sub(1).max(after);
            json_reply(StatusCode::OK, &Page { events, next })
        }
        Err(err) => broker_problem(err),
    }
}
