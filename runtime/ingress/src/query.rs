//! `GET|POST /v1/query/{handler}/{path…}`: the CQRS read side. Runs the handler's
//! `query` export, read-only, against its committed state, and returns its answer as is.

use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use choreo_broker::StateView;
use choreo_core::HandlerName;
use choreo_dispatch::BrokerState;
use choreo_host::{Failure, QueryRequest};

use crate::AppState;
use crate::body::read_whole;
use crate::problem::Problem;
use crate::routes::Reply;

pub(crate) async fn query(
    state: &AppState,
    handler: &str,
    rest: &str,
    request: Request<Incoming>,
) -> Reply {
    let name = match HandlerName::new(handler) {
        Ok(name) => name,
        Err(err) => {
            return Problem::bad_request("invalid-handler", err.to_string()).into_response();
        }
    };
    let Some(deployment) = state.registry.get(&name) else {
        return Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-handler",
            format!("no handler `{name}` is deployed; see /v1/handlers"),
        )
        .into_response();
    };
    let (parts, body) = request.into_parts();
    let config = &state.config;
    let body = match read_whole(body, config.max_body_bytes, config.idle_timeout).await {
        Ok(body) => body,
        Err(err) => return Problem::from(err).into_response(),
    };
    let headers = parts
        .headers
        .iter()
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let request = QueryRequest {
        method: parts.method.as_str().to_owned(),
        path: format!("/{rest}"),
        query: parts.uri.query().unwrap_or("").to_owned(),
        headers,
        body: body.to_vec(),
    };
    let reader = Arc::new(BrokerState::new(
        state.broker.clone(),
        name,
        StateView::Durable,
    ));
    match deployment.handler.query(&request, reader).await {
        Ok(answer) => {
            let mut response = Response::new(Full::new(Bytes::from(answer.body)));
            *response.status_mut() =
                StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
            for (name, value) in answer.headers {
                if let (Ok(name), Ok(value)) =
                    (HeaderName::try_from(name), HeaderValue::try_from(value))
                {
                    response.headers_mut().append(name, value);
                }
            }
            response
        }
        Err(err) => {
            let status = match err.failure {
                Failure::Trap { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            Problem::new(status, "query-failed", err.to_string()).into_response()
        }
    }
}
