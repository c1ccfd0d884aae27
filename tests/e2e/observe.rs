//! Watching choreo work: `GET /v1/events/{id}` with its causation tree and `choreo
//! trace`; the live tail `GET /v1/stream` (server-sent events) with `Last-Event-ID`
//! resume, its client limit and its end at shutdown; and `choreo tail`, across a restart.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

use crate::choreography::{deploy_choreography, publish_order};
use crate::harness::{Api, CHOREO, DEADLINE, Dirs, Server, eventually};

/// How long a test waits for one event on a stream, or a line from `choreo tail`.
const EVENT_DEADLINE: Duration = Duration::from_secs(60);

/// Data for a test event on `topic`.
async fn publish(api: &Api, topic: &str, n: u64) -> Value {
    api.publish(
        topic,
        &[("content-type", "application/json")],
        format!("{{\"n\":{n}}}"),
    )
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_shows_the_tree_of_events_it_caused_and_who_produced_them() {
    let dirs = Dirs::create();
    deploy_choreography(&dirs);
    let server = Server::start(&dirs).await;
    publish_order(&server, 0).await.unwrap();

    // order-0 → validator → orders.validated → fulfiller → shipments.planned.
    let tree = eventually("the whole chain is traced", DEADLINE, async || {
        let reply = server.get("/v1/events/order-0").await?;
        if reply.status != StatusCode::OK {
            return Err(reply.to_string());
        }
        let tree = reply.json();
        let shipped = &tree["children"][0]["children"][0];
        if shipped.is_null() {
            return Err(format!("not there yet: {tree}"));
        }
        Ok(tree)
    })
    .await;
    assert_eq!(tree["event"]["id"], "order-0", "{tree}");
    assert_eq!(tree["event"]["specversion"], "1.0", "a CloudEvent: {tree}");
    assert_eq!(tree["event"]["source"], "/e2e/shop");
    assert!(tree["handler"].is_null(), "published from outside: {tree}");
    assert!(tree["seq"].as_u64().unwrap() >= 1);
    assert_eq!(tree["truncated"], false);
    assert_eq!(tree["nodes"], 3, "{tree}");
    let children = tree["children"].as_array().unwrap();
    assert_eq!(children.len(), 1, "only validator publishes for it: {tree}");
    let validated = &children[0];
    assert_eq!(validated["handler"], "validator");
    assert_eq!(validated["event"]["topic"], "orders.validated");
    assert_eq!(validated["event"]["causationid"], "order-0");
    assert_eq!(validated["event"]["data"]["order"], 0);
    let shipped = &validated["children"][0];
    assert_eq!(shipped["handler"], "fulfiller");
    assert_eq!(shipped["event"]["topic"], "shipments.planned");
    assert_eq!(shipped["event"]["causationid"], validated["event"]["id"]);
    assert!(shipped["seq"].as_u64() > validated["seq"].as_u64());
    assert_eq!(shipped["children"], Value::Array(vec![]));

    let url = format!("http://{}", server.addr);
    let output = Command::new(CHOREO)
        .args(["trace", "order-0", "--url", url.as_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "choreo trace failed: {output:?}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "one line per event:\n{stdout}");
    assert!(
        lines[0].starts_with("orders.created  order-0  from /e2e/shop"),
        "{stdout}"
    );
    let validated_id = validated["event"]["id"].as_str().unwrap();
    assert!(
        lines[1].starts_with(&format!(
            "└─ orders.validated  {validated_id}  by validator"
        )),
        "{stdout}"
    );
    let shipped_id = shipped["event"]["id"].as_str().unwrap();
    assert!(
        lines[2].starts_with(&format!(
            "   └─ shipments.planned  {shipped_id}  by fulfiller"
        )),
        "{stdout}"
    );

    let missing = Command::new(CHOREO)
        .args(["trace", "no-such-event", "--url", url.as_str()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(
        !missing.status.success(),
        "an unknown id fails: {missing:?}"
    );
    assert!(
        stderr.contains("404") && stderr.contains("no-such-event"),
        "{stderr}"
    );

    let unknown = server.get("/v1/events/no-such-event").await.unwrap();
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown}");
    assert_eq!(unknown.content_type, "application/problem+json");
    assert!(
        unknown.json()["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-event")
    );
    let invalid = server.get("/v1/events/has%20space").await.unwrap();
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST, "{invalid}");
    assert_eq!(invalid.content_type, "application/problem+json");
    assert!(
        invalid.json()["detail"]
            .as_str()
            .unwrap()
            .contains("whitespace"),
        "{invalid}"
    );
}

/// A raw server-sent events client: one open `GET /v1/stream`.
struct Sse {
    body: Incoming,
    text: String,
    ready: VecDeque<(u64, Value)>,
}

impl Sse {
    /// Opens `path`; on any status but 200, that status and the body.
    async fn open(api: &Api, path: &str, headers: &[(&str, &str)]) -> Result<Sse, String> {
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let mut request = Request::get(format!("http://{}{path}", api.addr));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = tokio::time::timeout(
            EVENT_DEADLINE,
            client.request(request.body(Full::new(Bytes::new())).unwrap()),
        )
        .await
        .map_err(|_| format!("GET {path}: no answer"))?
        .map_err(|e| format!("GET {path}: {e}"))?;
        let (parts, body) = response.into_parts();
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        if parts.status != StatusCode::OK {
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            return Err(format!(
                "{} ({content_type}) {}",
                parts.status,
                String::from_utf8_lossy(&body)
            ));
        }
        assert_eq!(content_type, "text/event-stream");
        Ok(Sse {
            body,
            text: String::new(),
            ready: VecDeque::new(),
        })
    }

    /// The next event: its `id:` (a seq) and its `data:` as JSON. Messages without data
    /// (the opening `retry:`/`id:`) and comments are skipped.
    async fn next(&mut self) -> (u64, Value) {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            if let Some(event) = self.ready.pop_front() {
                return event;
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no event within {EVENT_DEADLINE:?}"))
                .expect("the stream ended")
                .expect("the stream failed");
            let Ok(data) = frame.into_data() else {
                continue;
            };
            self.text.push_str(std::str::from_utf8(&data).unwrap());
            while let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("id: ") {
                        id = Some(value.parse::<u64>().unwrap());
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data = Some(serde_json::from_str::<Value>(value).unwrap());
                    }
                }
                if let (Some(id), Some(data)) = (id, data) {
                    self.ready.push_back((id, data));
                }
            }
        }
    }

    /// Whether the server ended the stream (rather than keeping it open), within a deadline.
    async fn ends(mut self) -> bool {
        let deadline = tokio::time::Instant::now() + EVENT_DEADLINE;
        loop {
            match tokio::time::timeout_at(deadline, self.body.frame()).await {
                Err(_) => return false,
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_sends_new_events_and_resumes_after_last_event_id() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let before = publish(&server, "watch.before", 0).await;
    let mut stream = Sse::open(&server, "/v1/stream?pattern=watch.*", &[])
        .await
        .unwrap();
    let mut sent = Vec::new();
    for n in 1..=3 {
        publish(&server, "elsewhere.noise", n).await;
        sent.push(publish(&server, "watch.this", n).await);
    }
    for (n, expected) in (1..=3).zip(&sent) {
        let (seq, event) = stream.next().await;
        assert_eq!(seq, expected["seq"].as_u64().unwrap(), "{event}");
        assert_eq!(event["id"], expected["id"]);
        assert_eq!(event["topic"], "watch.this");
        assert_eq!(event["specversion"], "1.0");
        assert_eq!(event["data"]["n"], n);
    }
    assert!(
        sent[0]["seq"].as_u64() > before["seq"].as_u64(),
        "the stream starts at the next event, not at {before}"
    );
    drop(stream);

    // Two more while nobody listens; resume after the second event seen.
    let resume_after = sent[1]["seq"].as_u64().unwrap().to_string();
    for n in 4..=5 {
        sent.push(publish(&server, "watch.this", n).await);
    }
    let mut resumed = Sse::open(
        &server,
        "/v1/stream?pattern=watch.*",
        &[("last-event-id", &resume_after)],
    )
    .await
    .unwrap();
    let last = publish(&server, "watch.last", 6).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        got.push(resumed.next().await.0);
    }
    let expected: Vec<u64> = sent[2..]
        .iter()
        .chain([&last])
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        got, expected,
        "exactly the events after {resume_after}, in order"
    );

    // `after` in the query does the same for a first connection.
    let mut from_start = Sse::open(
        &server,
        &format!("/v1/stream?pattern=watch.*&after={}", before["seq"]),
        &[],
    )
    .await
    .unwrap();
    assert_eq!(from_start.next().await.1["id"], sent[0]["id"]);

    for (path, header, mentions) in [
        ("/v1/stream?pattern=watch..x", None, "watch..x"),
        ("/v1/stream?pattern=watch.*&after=soon", None, "after"),
        ("/v1/stream", Some("not-a-seq"), "Last-Event-ID"),
    ] {
        let headers: Vec<(&str, &str)> = header.map(|h| ("last-event-id", h)).into_iter().collect();
        let refused = Sse::open(&server, path, &headers).await.err().unwrap();
        assert!(
            refused.starts_with("400") && refused.contains("application/problem+json"),
            "{path}: {refused}"
        );
        assert!(refused.contains(mentions), "{path}: {refused}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_beyond_the_limit_get_503_until_one_closes() {
    let dirs = Dirs::create();
    let server = Server::start_with(&dirs, &["--max-stream-clients", "2"], &[]).await;
    let first = Sse::open(&server, "/v1/stream?pattern=a.b", &[])
        .await
        .unwrap();
    let _second = Sse::open(&server, "/v1/stream?pattern=a.b", &[])
        .await
        .unwrap();
    let refused = Sse::open(&server, "/v1/stream?pattern=a.b", &[])
        .await
        .err()
        .unwrap();
    assert!(
        refused.starts_with("503") && refused.contains("max_stream_clients"),
        "{refused}"
    );
    drop(first);
    let mut third = eventually("a closed stream frees its place", DEADLINE, async || {
        Sse::open(&server, "/v1/stream?pattern=a.b", &[]).await
    })
    .await;
    let published = publish(&server, "a.b", 1).await;
    assert_eq!(third.next().await.1["id"], published["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_stops_promptly_with_a_stream_open() {
    let dirs = Dirs::create();
    let mut server = Server::start(&dirs).await;
    let mut stream = Sse::open(&server, "/v1/stream?pattern=a.%3E", &[])
        .await
        .unwrap();
    publish(&server, "a.b", 1).await;
    stream.next().await;
    let status = server.terminate(DEADLINE).await;
    assert!(status.success(), "exit status {status}");
    assert!(stream.ends().await, "the stream ended with the server");
    let output = server.output();
    assert!(
        !output.contains("grace period were cut"),
        "the open stream held up shutdown:\n{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreo_tail_prints_events_as_they_are_published() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    // Starting at a known seq, so nothing depends on when tail connects.
    let first = publish(&server, "tail.one", 1).await;
    publish(&server, "untailed.x", 2).await;
    let mut tail = Tail::spawn(&server, &first);
    let second = publish(&server, "tail.two.deep", 3).await;
    tail.expect(&first, "tail.one", 1).await;
    tail.expect(&second, "tail.two.deep", 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn choreo_tail_resumes_after_a_restart_without_gap_or_duplicate() {
    let dirs = Dirs::create();
    let mut server = Server::start(&dirs).await;
    let addr = server.addr.to_string();
    let first = publish(&server, "tail.one", 1).await;
    let mut tail = Tail::spawn(&server, &first);
    tail.expect(&first, "tail.one", 1).await;
    server.kill();
    // Same port, same store: tail reconnects on its own with Last-Event-ID.
    let server = Server::start_with(&dirs, &["--listen", &addr], &[]).await;
    let second = publish(&server, "tail.two", 2).await;
    let third = publish(&server, "tail.three", 3).await;
    tail.expect(&second, "tail.two", 2).await;
    tail.expect(&third, "tail.three", 3).await;
}

/// A running `choreo tail 'tail.>'` and the lines it prints. Killed when dropped.
struct Tail {
    child: std::process::Child,
    lines: tokio::sync::mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

impl Tail {
    /// Follows `tail.>` from the seq of `from`, so nothing depends on when it connects.
    fn spawn(api: &Api, from: &Value) -> Tail {
        let mut child = Command::new(CHOREO)
            .args(["tail", "tail.>", "--url"])
            .arg(format!("http://{}", api.addr))
            .arg("--from-seq")
            .arg(from["seq"].to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (lines_tx, lines) = tokio::sync::mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        Tail {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The next line is `event`'s: seq, topic, id and data `{"n":N}`.
    async fn expect(&mut self, event: &Value, topic: &str, n: u64) {
        let seen = &self.seen;
        let line = tokio::time::timeout(EVENT_DEADLINE, self.lines.recv())
            .await
            .unwrap_or_else(|_| panic!("choreo tail printed nothing new; so far {seen:?}"))
            .unwrap_or_else(|| panic!("choreo tail exited; it printed {seen:?}"));
        let id = event["id"].as_str().unwrap();
        let expected = format!("{}  {topic}  {id}  {{\"n\":{n}}}", event["seq"]);
        assert_eq!(line, expected, "after {seen:?}");
        self.seen.push(line);
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
