//! Clients that hold connections without using them. A connection that sends nothing,
//! or its request head or body a piece at a time, or sits idle after an answer, is
//! closed once it has kept the server waiting for the idle timeout; and at the
//! connection limit, newcomers wait for a free place instead of using up the process's
//! file descriptors (which the store and deploys need too). HTTP/2 connections are closed
//! once idle too, and a stop closes idle connections at once.

use std::io::ErrorKind;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{DEADLINE, Dirs, Server, eventually};

/// How long a connection the server should close may stay open before the test fails:
/// far beyond the one-second idle timeout these tests set.
const CLOSE_DEADLINE: Duration = Duration::from_secs(60);

/// Opens a connection to `server` and sends `bytes` on it.
async fn connect_and_send(server: &Server, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Everything the server sends on `stream` until it closes it; panics if it is still
/// open after [`CLOSE_DEADLINE`].
async fn until_closed(what: &str, mut stream: TcpStream) -> String {
    let mut received = Vec::new();
    match tokio::time::timeout(CLOSE_DEADLINE, stream.read_to_end(&mut received)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if e.kind() == ErrorKind::ConnectionReset => {}
        Ok(Err(e)) => panic!("{what}: reading failed: {e}"),
        Err(_) => panic!("{what}: still open {CLOSE_DEADLINE:?} later"),
    }
    String::from_utf8_lossy(&received).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_keep_the_server_waiting_are_closed_after_the_idle_timeout() {
    let dirs = Dirs::create();
    let server = Server::start_with(&dirs, &["--idle-timeout-ms", "1000"], &[]).await;

    let silent = connect_and_send(&server, b"").await;
    let slow_head = connect_and_send(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    // Not yet told apart from HTTP/2's preface, which starts the same way.
    let slow_preface = connect_and_send(&server, b"PRI * HTTP/2.0\r\n").await;
    let idle_after_answer =
        connect_and_send(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let slow_body = connect_and_send(
        &server,
        b"POST /v1/topics/orders.created HTTP/1.1\r\nHost: x\r\n\
          content-type: application/json\r\ncontent-length: 100\r\n\r\n{\"order\":",
    )
    .await;

    let (silent, slow_head, slow_preface, idle_after_answer, slow_body) = tokio::join!(
        until_closed("a connection that sends nothing", silent),
        until_closed("a connection whose head stops half way", slow_head),
        until_closed(
            "a connection whose HTTP/2 preface stops half way",
            slow_preface
        ),
        until_closed(
            "a kept-alive connection after its answer",
            idle_after_answer
        ),
        until_closed("a request whose body stops half way", slow_body),
    );
    assert_eq!(silent, "");
    assert_eq!(slow_head, "");
    assert_eq!(slow_preface, "");
    assert!(
        idle_after_answer.starts_with("HTTP/1.1 200"),
        "{idle_after_answer}"
    );
    assert!(
        slow_body.starts_with("HTTP/1.1 408") && slow_body.contains("/problems/body-timeout"),
        "{slow_body}"
    );
    // Nothing of the cut-off publish was stored, and the server carries on.
    assert!(server.events("orders.>").await.is_empty());
    let health = server.get("/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::OK, "{health}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_connection_limit_newcomers_wait_until_a_connection_closes() {
    const LIMIT: usize = 4;
    let dirs = Dirs::create();
    let server = Server::start_with(&dirs, &["--max-connections", &LIMIT.to_string()], &[]).await;
    let metrics = server.get("/metrics").await.unwrap();
    assert!(
        metrics
            .to_string()
            .contains(&format!("choreo_http_max_connections {LIMIT}")),
        "{metrics}"
    );

    // Idle connections up to the limit (the test client's own may hold a place too).
    let mut held = Vec::new();
    for _ in 0..LIMIT {
        held.push(connect_and_send(&server, b"").await);
    }
    eventually(
        "the server says the limit is reached",
        DEADLINE,
        async || {
            let output = server.output();
            if output.contains("the connection limit is reached") {
                Ok(())
            } else {
                Err("no word of the limit in the server's log".to_owned())
            }
        },
    )
    .await;
    let newcomer = connect_and_send(
        &server,
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    drop(held);
    let answer = until_closed("a newcomer once places are free", newcomer).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_connection_with_no_stream_open_is_closed_after_the_idle_timeout() {
    let dirs = Dirs::create();
    let server = Server::start_with(&dirs, &["--idle-timeout-ms", "1000"], &[]).await;
    let stream = TcpStream::connect(server.addr).await.unwrap();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);
    let request = Request::get(format!("http://{}/healthz", server.addr))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(CLOSE_DEADLINE, sender.send_request(request))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.into_body().collect().await.unwrap();
    // With nothing more to do, the server says goodbye and the connection ends cleanly.
    tokio::time::timeout(CLOSE_DEADLINE, connection)
        .await
        .expect("the server closes an idle HTTP/2 connection")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_closes_idle_and_half_sent_connections_at_once() {
    let dirs = Dirs::create();
    let mut server = Server::start(&dirs).await;
    let _silent = connect_and_send(&server, b"").await;
    let _slow_head = connect_and_send(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await;
    let mut idle = connect_and_send(&server, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut answer = [0; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    // Far below the 10 s a stop waits for requests in progress: none of these has one.
    let status = server.terminate(Duration::from_secs(5)).await;
    assert!(status.success(), "{status}");
}
