//! Requests choreo must refuse, each with a 4xx `application/problem+json` answer whose
//! detail says what is wrong — and none of them may store an event.

use http::{Method, StatusCode};

use crate::harness::{Dirs, Server};

/// One past the default body limit (1 MiB).
const OVERSIZED: usize = (1 << 20) + 1;

/// One refused request and what its answer must say.
struct Case {
    what: &'static str,
    method: Method,
    path: &'static str,
    headers: &'static [(&'static str, &'static str)],
    body: Vec<u8>,
    status: StatusCode,
    /// Text the problem's `detail` must contain.
    mentions: &'static str,
}

/// The headers of a well-formed JSON publish.
const JSON: &[(&str, &str)] = &[("content-type", "application/json")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_4xx_problem_json_naming_what_is_wrong() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let cases = [
        Case {
            what: "an empty token in the topic",
            method: Method::POST,
            path: "/v1/topics/orders..created",
            headers: JSON,
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "orders..created",
        },
        Case {
            what: "a wildcard in the topic",
            method: Method::POST,
            path: "/v1/topics/orders.*",
            headers: JSON,
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "orders.*",
        },
        Case {
            what: "a reserved `$` topic",
            method: Method::POST,
            path: "/v1/topics/$dlq.orders",
            headers: JSON,
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "reserved",
        },
        Case {
            what: "an empty body",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: JSON,
            body: Vec::new(),
            status: StatusCode::BAD_REQUEST,
            mentions: "empty",
        },
        Case {
            what: "a body over 1 MiB",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: JSON,
            body: vec![b'x'; OVERSIZED],
            status: StatusCode::PAYLOAD_TOO_LARGE,
            mentions: "1048576",
        },
        Case {
            what: "GET on a topic",
            method: Method::GET,
            path: "/v1/topics/orders.created",
            headers: &[],
            body: Vec::new(),
            status: StatusCode::METHOD_NOT_ALLOWED,
            mentions: "POST",
        },
        Case {
            what: "DELETE on the handler list",
            method: Method::DELETE,
            path: "/v1/handlers",
            headers: &[],
            body: Vec::new(),
            status: StatusCode::METHOD_NOT_ALLOWED,
            mentions: "GET",
        },
        Case {
            what: "an unknown path",
            method: Method::GET,
            path: "/v1/nothing-here",
            headers: &[],
            body: Vec::new(),
            status: StatusCode::NOT_FOUND,
            mentions: "/v1/nothing-here",
        },
        Case {
            what: "an unsupported CloudEvents version",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: &[
                ("ce-specversion", "0.3"),
                ("content-type", "application/json"),
            ],
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "ce-specversion",
        },
        Case {
            what: "a binary-mode source claiming a handler produced the event",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: &[
                ("ce-source", "choreo://handler/inventory"),
                ("content-type", "application/json"),
            ],
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "choreo://handler/",
        },
        Case {
            what: "a structured event whose source claims a handler",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: &[("content-type", "application/cloudevents+json")],
            body: br#"{"specversion":"1.0","id":"e-1","source":"choreo://handler/x","type":"t"}"#
                .to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "reserves",
        },
        Case {
            what: "a batch with one event whose source claims a handler",
            method: Method::POST,
            path: "/v1/events",
            headers: &[("content-type", "application/cloudevents-batch+json")],
            body: br#"[{"specversion":"1.0","id":"e-1","source":"s","type":"t","topic":"a.b"},{"specversion":"1.0","id":"e-2","source":"choreo://handler/x","type":"t","topic":"a.b"}]"#
                .to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "event 1 of the batch",
        },
        Case {
            what: "an invalid ce-time",
            method: Method::POST,
            path: "/v1/topics/orders.created",
            headers: &[
                ("ce-time", "yesterday"),
                ("content-type", "application/json"),
            ],
            body: b"{}".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "ce-time",
        },
    ];
    let mut failures = Vec::new();
    for Case {
        what,
        method,
        path,
        headers,
        body,
        status,
        mentions,
    } in cases
    {
        let reply = match server.request(method.clone(), path, headers, body).await {
            Ok(reply) => reply,
            Err(err) => {
                failures.push(format!("{what}: {method} {path}: no answer: {err}"));
                continue;
            }
        };
        if !reply.is_problem(status, mentions) {
            failures.push(format!(
                "{what}: {method} {path}: want {status} problem+json mentioning {mentions:?}, got {reply}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    let stored = server.events(">").await;
    assert!(
        stored.is_empty(),
        "a refused request stored events: {stored:?}"
    );
    // The server is still fine after all that.
    server.publish("orders.created", JSON, "{}").await.unwrap();
}
