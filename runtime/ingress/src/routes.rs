//! Routing requests to resources, and the small resources: health and readiness.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use choreo_core::Topic;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::auth::{Caller, Need};
use crate::problem::Problem;
use crate::{
    AppState, dlq, events, handlers, info, metrics, publish, query, stream, topics, trace,
};

/// A response with a fully buffered body: what most resources answer.
pub type Reply = Response<Full<Bytes>>;

/// Any response body, buffered or streamed (server-sent events).
pub type Body = UnsyncBoxBody<Bytes, Infallible>;

/// Dispatches one request to its resource. Never fails: errors become problem+json.
/// Streaming resources answer before the table of buffered ones.
pub async fn route(state: &AppState, request: Request<Incoming>) -> Response<Body> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let caller = match authorize(state, &method, &segments, request.headers()) {
        Ok(caller) => caller,
        Err(problem) => {
            state
                .telemetry
                .request(template(&segments), &method, problem.status);
            tracing::debug!(%method, %path, status = problem.status, "request refused");
            return problem.into_response().map(BodyExt::boxed_unsync);
        }
    };
    if segments == ["v1", "stream"] && method == Method::GET {
        let response = stream::open(state, &request);
        let status = response.status().as_u16();
        state
            .telemetry
            .request(template(&segments), &method, status);
        tracing::debug!(%method, %path, status, "request");
        return response;
    }
    let reply = match segments.as_slice() {
        // A broker stopped by a storage failure takes no writes until choreo restarts:
        // the node is not live, so an orchestrator restarts it.
        ["healthz"] => only(&method, &path, Method::GET, || {
            match state.broker.failure() {
                Some(reason) => publish::storage_failed(&reason).into_response(),
                None => text(StatusCode::OK, "ok"),
            }
        }),
        ["readyz"] => only(&method, &path, Method::GET, || {
            if let Some(reason) = state.broker.failure() {
                publish::storage_failed(&reason).into_response()
            } else if state.ready.load(Ordering::Acquire) {
                text(StatusCode::OK, "ready")
            } else {
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "not-ready",
                    "components present at startup are still loading",
                )
                .into_response()
            }
        }),
        ["metrics"] if method == Method::GET => metrics::render(state).await,
        ["metrics"] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
        ["v1", "topics"] => only(&method, &path, Method::GET, || topics::list(state)),
        ["v1", "topics", topic] if method == Method::POST => {
            let topic = (*topic).to_owned();
            publish::publish_to_topic(state, &topic, request).await
        }
        ["v1", "topics", _] => Problem::method_not_allowed(&method, &path, "POST").into_response(),
        ["v1", "openapi.json"] => only(&method, &path, Method::GET, openapi),
        ["v1", "info"] => only(&method, &path, Method::GET, || info::show(state)),
        ["v1", "handlers"] if method == Method::GET => handlers::list(state).await,
        ["v1", "handlers"] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
        ["v1", "handlers", name] if method == Method::DELETE => handlers::delete(state, name).await,
        ["v1", "handlers", _] => {
            Problem::method_not_allowed(&method, &path, "DELETE").into_response()
        }
        ["v1", "events"] if method == Method::GET => events::list(state, &request).await,
        ["v1", "events"] if method == Method::POST => {
            publish::publish_events(state, caller, request).await
        }
        ["v1", "events"] => {
            Problem::method_not_allowed(&method, &path, "GET or POST").into_response()
        }
        ["v1", "events", id] if method == Method::GET => trace::show(state, id).await,
        ["v1", "events", _] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
        ["v1", "stream"] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
        ["v1", "query", handler, rest @ ..] if method == Method::GET || method == Method::POST => {
            let handler = (*handler).to_owned();
            let rest = rest.join("/");
            query::query(state, &handler, &rest, request).await
        }
        ["v1", "query", ..] => {
            Problem::method_not_allowed(&method, &path, "GET or POST").into_response()
        }
        ["v1", "dlq", rest @ ..] => {
            dlq::route(state, &method, &path, rest, request.uri().query()).await
        }
        _ => Problem::not_found(&path).into_response(),
    };
    let status = reply.status().as_u16();
    state
        .telemetry
        .request(template(&segments), &method, status);
    tracing::debug!(%method, %path, status, "request");
    reply.map(BodyExt::boxed_unsync)
}

/// Checks the caller's token against what the route needs (see `auth`), and returns
/// the caller for checks the route makes itself (the topics of `POST /v1/events`).
fn authorize<'a>(
    state: &'a AppState,
    method: &Method,
    segments: &[&str],
    headers: &http::HeaderMap,
) -> Result<Caller<'a>, Problem> {
    let publish_topic = match segments {
        ["v1", "topics", topic] if method == Method::POST => Topic::new(*topic).ok(),
        _ => None,
    };
    let need = match segments {
        ["healthz"] | ["readyz"] => return Ok(Caller::Anyone),
        ["v1", "topics", _] if method == Method::POST => match &publish_topic {
            Some(topic) => Need::Publish(topic),
            // The resource answers 400 for the topic; any publisher may learn that.
            None => Need::PublishSomewhere,
        },
        ["v1", "events"] if method == Method::POST => Need::PublishSomewhere,
        ["v1", "query", ..] => Need::Read,
        _ if method == Method::GET || method == Method::HEAD => Need::Read,
        // Anything else changes something: new routes are admin-only until said otherwise.
        _ => Need::Admin,
    };
    let caller = state.auth.authenticate(headers)?;
    caller.check(need)?;
    Ok(caller)
}

/// The OpenAPI document of this API. Kept true by tests: every route it lists is
/// served, and schemathesis finds no operation that fails with a server error.
pub const OPENAPI: &str = include_str!("openapi.json");

fn openapi() -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The route a path belongs to, for the requests counter: the template with its
/// parameters named, never the raw path (whose values are unbounded). Paths no route
/// serves count as `unmatched`.
fn template(segments: &[&str]) -> &'static str {
    match segments {
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["v1", "topics"] => "/v1/topics",
        ["v1", "topics", _] => "/v1/topics/{topic}",
        ["v1", "handlers"] => "/v1/handlers",
        ["v1", "handlers", _] => "/v1/handlers/{handler}",
        ["v1", "events"] => "/v1/events",
        ["v1", "events", _] => "/v1/events/{id}",
        ["v1", "stream"] => "/v1/stream",
        ["v1", "openapi.json"] => "/v1/openapi.json",
        ["v1", "info"] => "/v1/info",
        ["v1", "query", _, ..] => "/v1/query/{handler}/{path}",
        ["v1", "dlq"] => "/v1/dlq",
        ["v1", "dlq", _] => "/v1/dlq/{handler}",
        ["v1", "dlq", _, "replay"] => "/v1/dlq/{handler}/replay",
        ["v1", "dlq", _, _] => "/v1/dlq/{handler}/{seq}",
        ["v1", "dlq", _, _, "replay"] => "/v1/dlq/{handler}/{seq}/replay",
        _ => "unmatched",
    }
}

fn only(method: &Method, path: &str, allowed: Method, answer: impl FnOnce() -> Reply) -> Reply {
    if *method == allowed {
        answer()
    } else {
        Problem::method_not_allowed(method, path, allowed.as_str()).into_response()
    }
}

fn text(status: StatusCode, body: &'static str) -> Reply {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    response
}

/// The query-string parameters, percent-decoded (`+` as space); the last value wins.
pub fn query_params(query: Option<&str>) -> std::collections::HashMap<String, String> {
    let mut params = std::collections::HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |text: &str| {
            choreo_cloudevents::percent_decode(&text.replace('+', " "))
                .unwrap_or_else(|_| text.to_owned())
        };
        params.insert(decode(name), decode(value));
    }
    params
}

/// A JSON response.
pub fn json(status: StatusCode, value: &impl serde::Serialize) -> Reply {
    let body = serde_json::to_vec(value).expect("API values always serialise");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
