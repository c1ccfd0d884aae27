//! Request-reply (`?reply=wait`): a handler's reply becomes the HTTP response, silence a
//! 504 with the request kept, and the waiter limit (tested with the batch limit, both set
//! by `serve` flags) holds.

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::json;

use crate::cloudevents::{BATCH, STRUCTURED, event};
use crate::harness::{DEADLINE, Dirs, Server, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_reply_answers_with_the_first_reply_or_times_out() {
    let dirs = Dirs::create();
    dirs.deploy_component("replier", choreo_test_guests::REPLIER, None);
    let server = Server::start(&dirs).await;
    eventually("replier is running", DEADLINE, async || {
        let handler = server.handler("replier").await;
        if handler.is_null() {
            Err("not listed yet".to_owned())
        } else {
            Ok(())
        }
    })
    .await;

    // Binary mode: the reply's data, content type and attributes make the response.
    let request_headers = [
        ("content-type", "text/plain"),
        ("ce-id", "rpc-1"),
        ("ce-source", "/e2e/caller"),
    ];
    let reply = server
        .request(
            Method::POST,
            "/v1/topics/rpc.upper?reply=wait&timeout=2m",
            &request_headers,
            "hello, choreo",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply}");
    assert_eq!(&reply.body[..], b"HELLO, CHOREO");
    assert_eq!(reply.content_type, "text/plain; charset=utf-8");
    assert_eq!(reply.header("ce-specversion"), "1.0");
    assert_eq!(reply.header("ce-topic"), "$reply.rpc-1");
    assert_eq!(reply.header("ce-correlationid"), "rpc-1");
    assert_eq!(reply.header("ce-causationid"), "rpc-1");
    assert!(!reply.header("ce-id").is_empty(), "{:?}", reply.headers);

    // Asking again with the same source and id publishes nothing new and answers with
    // the reply already given.
    let again = server
        .request(
            Method::POST,
            "/v1/topics/rpc.upper?reply=wait&timeout=2m",
            &request_headers,
            "hello, choreo",
        )
        .await
        .unwrap();
    assert_eq!(again.status, StatusCode::OK, "{again}");
    assert_eq!(again.header("ce-id"), reply.header("ce-id"));
    assert_eq!(server.events("rpc.upper").await.len(), 1);

    // Structured mode on /v1/events: the handler sees the extensions and the reply topic.
    let mut request = event("rpc-2", json!({"question": 42}));
    request["topic"] = json!("rpc.describe");
    request["traceparent"] = json!("00-feed-01");
    let reply = server
        .request(
            Method::POST,
            "/v1/events?reply=wait&timeout=2m",
            STRUCTURED,
            serde_json::to_vec(&request).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply}");
    assert_eq!(reply.content_type, "application/json");
    let seen = reply.json();
    assert_eq!(seen["id"], "rpc-2");
    assert_eq!(seen["replyto"], "$reply.rpc-2");
    assert_eq!(seen["extensions"]["traceparent"], "00-feed-01");
    assert_eq!(seen["data"], r#"{"question":42}"#);

    // Nobody replies on rpc.silent: 504 naming the event, which stays published.
    let reply = server
        .request(
            Method::POST,
            "/v1/topics/rpc.silent?reply=wait&timeout=300ms",
            &[("ce-id", "rpc-3")],
            "anyone?",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::GATEWAY_TIMEOUT, "{reply}");
    assert_eq!(reply.content_type, "application/problem+json");
    let detail = reply.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("rpc-3") && detail.contains("stays published"),
        "{detail}"
    );
    let silent = server.events("rpc.silent").await;
    assert_eq!(silent.len(), 1);
    assert_eq!(silent[0]["id"], "rpc-3");
    assert_eq!(silent[0]["replyto"], "$reply.rpc-3");

    // A batch cannot wait for a reply.
    let reply = server
        .request(
            Method::POST,
            "/v1/topics/rpc.upper?reply=wait",
            BATCH,
            serde_json::to_vec(&json!([event("rpc-4", json!(1))])).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply.json()["detail"].as_str().unwrap().contains("batch"));
}

/// How soon a waiter's slot must be free after its client hangs up: far below the
/// waiter's own timeout, so only noticing the hang-up can pass.
const HANG_UP_NOTICED: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_batch_and_waiter_limits_are_configurable() {
    let dirs = Dirs::create();
    let server = Server::start_with(
        &dirs,
        &[
            "--max-batch-events",
            "2",
            "--max-reply-waiters",
            "1",
            "--max-reply-timeout-ms",
            "300000",
        ],
        &[],
    )
    .await;
    let three = json!([
        event("l-1", json!(1)),
        event("l-2", json!(2)),
        event("l-3", json!(3))
    ]);
    let reply = server
        .request(
            Method::POST,
            "/v1/topics/orders.limited",
            BATCH,
            serde_json::to_vec(&three).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("max_batch_events")
    );

    // One request waits (nobody consumes rpc.limited), so a second one is turned away.
    let api = server.api();
    let waiting = tokio::spawn(async move {
        api.request(
            Method::POST,
            "/v1/topics/rpc.limited?reply=wait&timeout=300s",
            &[("ce-id", "w-1")],
            "first",
        )
        .await
    });
    eventually(
        "the first request is published",
        DEADLINE,
        async || match server.events("rpc.limited").await.len() {
            1 => Ok(()),
            n => Err(format!("{n} events on rpc.limited")),
        },
    )
    .await;
    let reply = server
        .request(
            Method::POST,
            "/v1/topics/rpc.limited?reply=wait&timeout=1s",
            &[("ce-id", "w-2")],
            "second",
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "{reply}");
    assert!(
        reply.json()["detail"]
            .as_str()
            .unwrap()
            .contains("max_reply_waiters")
    );
    assert_eq!(
        server.events("rpc.limited").await.len(),
        1,
        "the refused request was stored"
    );

    // The first client hangs up: its slot is freed then, not when its five-minute wait
    // would have ended (which is past this test's deadline).
    waiting.abort();
    eventually(
        "the waiter slot is free again",
        HANG_UP_NOTICED,
        async || {
            let reply = server
                .request(
                    Method::POST,
                    "/v1/topics/rpc.limited?reply=wait&timeout=100ms",
                    &[("ce-id", "w-3")],
                    "third",
                )
                .await?;
            if reply.status == StatusCode::GATEWAY_TIMEOUT {
                Ok(())
            } else {
                Err(reply.to_string())
            }
        },
    )
    .await;
}
