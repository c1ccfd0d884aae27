//! Routing requests to resources, and the small resources: health and readiness.

use std::convert::Infallible;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;

use crate::problem::Problem;
use crate::{AppState, dlq, events, handlers, metrics, publish, query, topics};

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
    let reply = match segments.as_slice() {
        ["healthz"] => only(&method, &path, Method::GET, || text(StatusCode::OK, "ok")),
        ["readyz"] => only(&method, &path, Method::GET, || {
            if state.ready.load(Ordering::Acquire) {
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
        ["v1", "handlers"] if method == Method::GET => handlers::list(state).await,
        ["v1", "handlers"] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
        ["v1", "events"] if method == Method::GET => events::list(state, &request).await,
        ["v1", "events"] => Problem::method_not_allowed(&method, &path, "GET").into_response(),
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
        ["v1", "events"] => "/v1/events",
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
            crate::publish::percent_decode(&text.replace('+', " "))
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
