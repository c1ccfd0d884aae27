//! The transport: HTTP/1.1 keep-alive and HTTP/2 over cleartext (h2c, prior knowledge)
//! on the same port, the bound on request heads, and what `/v1/info` reports.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};

use crate::harness::{Dirs, Server};

/// How long one exchange may take before the test gives up.
const EXCHANGE: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_keep_alive_and_h2c_are_both_served() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let addr = server.api().addr;

    // HTTP/1.1: three requests on one connection.
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    let connection = tokio::spawn(connection);
    for n in 0..3 {
        let request = Request::post(format!("http://{addr}/v1/topics/transport.h1"))
            .header("host", addr.to_string())
            .body(Full::new(Bytes::from(format!("{{\"n\":{n}}}"))))
            .unwrap();
        tokio::time::timeout(EXCHANGE, sender.ready())
            .await
            .expect("the connection ready in time")
            .expect("the kept-alive connection takes another request");
        let response = tokio::time::timeout(EXCHANGE, sender.send_request(request))
            .await
            .expect("an answer in time")
            .expect("the kept-alive connection serves another request");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(response.version(), Version::HTTP_11);
        response.into_body().collect().await.unwrap();
    }
    assert!(!connection.is_finished(), "the connection stays open");

    // HTTP/2 with prior knowledge, no upgrade dance.
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let request = Request::post(format!("http://{addr}/v1/topics/transport.h2"))
        .body(Full::new(Bytes::from_static(b"{\"over\":\"h2c\"}")))
        .unwrap();
    let response = tokio::time::timeout(EXCHANGE, h2.request(request))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let events = server.api().events("transport.>").await;
    let topics: Vec<&str> = events
        .iter()
        .map(|e| e["topic"].as_str().unwrap())
        .collect();
    assert_eq!(
        topics,
        [
            "transport.h1",
            "transport.h1",
            "transport.h1",
            "transport.h2"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_head_is_refused_and_the_server_carries_on() {
    let dirs = Dirs::create();
    let server = Server::start_with(&dirs, &["--max-header-bytes", "16384"], &[]).await;
    let api = server.api();
    let big = "x".repeat(32 * 1024);
    let refused = api
        .request(Method::GET, "/v1/handlers", &[("x-padding", &big)], "")
        .await
        .unwrap();
    assert_eq!(
        refused.status,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "{refused}"
    );
    let small = "x".repeat(1024);
    let served = api
        .request(Method::GET, "/v1/handlers", &[("x-padding", &small)], "")
        .await
        .unwrap();
    assert_eq!(served.status, StatusCode::OK, "{served}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_reports_durability_access_and_limits() {
    let dirs = Dirs::create();
    let server = Server::start_with(
        &dirs,
        &["--durability", "buffered", "--max-stream-clients", "7"],
        &[],
    )
    .await;
    let info = server.api().get("/v1/info").await.unwrap();
    assert_eq!(info.status, StatusCode::OK, "{info}");
    let info = info.json();
    assert_eq!(info["name"], "choreo");
    assert_eq!(info["durability"], "buffered");
    assert_eq!(info["auth"], "open");
    assert_eq!(info["limits"]["max_stream_clients"], 7);
    assert!(info["version"].as_str().is_some_and(|v| !v.is_empty()));
}
