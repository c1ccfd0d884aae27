//! The OpenAPI document at `/v1/openapi.json`: it lists only operations choreo serves,
//! and schemathesis, driving every documented operation with generated requests, finds
//! none that fails with a server error or answers off its document.

use std::process::{Command, Stdio};
use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::Value;

use crate::harness::{Dirs, Server};
use crate::tools::{SCHEMATHESIS, python_tool, wait};

/// A value for each path parameter the document uses.
fn sample(parameter: &str) -> &'static str {
    match parameter {
        "topic" => "doc.check",
        "handler" => "counter",
        "path" => "anything",
        "seq" => "1",
        "id" => "01ARZ3NDEKTSV4RRFFQ69G5FAV",
        other => panic!("the document has a path parameter `{other}` this test has no sample for"),
    }
}

/// `/v1/dlq/{handler}/{seq}` with every `{…}` replaced by its sample.
fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(
            |segment| match segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(parameter) => sample(parameter).to_owned(),
                None => segment.to_owned(),
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_operation_is_served() {
    let dirs = Dirs::create();
    dirs.deploy_component("counter", choreo_test_guests::COUNTER, None);
    let server = Server::start(&dirs).await;
    let api = server.api();
    let reply = api.get("/v1/openapi.json").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply}");
    assert_eq!(reply.content_type, "application/json");
    let document: Value = reply.json();
    assert_eq!(document["openapi"], "3.1.0");
    let paths = document["paths"].as_object().unwrap();
    for essential in ["/v1/topics/{topic}", "/v1/events", "/v1/handlers"] {
        assert!(paths.contains_key(essential), "{essential} is documented");
    }
    for (template, operations) in paths {
        for (method, operation) in operations.as_object().unwrap() {
            let endless = operation["responses"]["200"]["content"]
                .get("text/event-stream")
                .is_some();
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let path = concrete(template);
            if endless {
                // A stream never ends: its answering 200 with the right type is enough.
                let (status, content_type) = open_stream(api.addr, &path).await;
                assert_eq!(status, StatusCode::OK, "{method} {template}");
                assert_eq!(content_type, "text/event-stream", "{method} {template}");
                continue;
            }
            let answer = api.request(method.clone(), &path, &[], "").await.unwrap();
            let unrouted = answer.status == StatusCode::METHOD_NOT_ALLOWED
                || (answer.status == StatusCode::NOT_FOUND
                    && answer.json()["detail"]
                        .as_str()
                        .is_some_and(|d| d.starts_with("no resource at")));
            assert!(
                !unrouted,
                "{method} {template} is documented but not served: {answer}"
            );
        }
    }
}

/// Opens a server-sent event stream and returns its status and content type, without
/// waiting for a body that never ends.
async fn open_stream(addr: std::net::SocketAddr, path: &str) -> (StatusCode, String) {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(Full::default())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(60), client.request(request))
        .await
        .expect("the stream answers in time")
        .unwrap();
    let content_type = response
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    (response.status(), content_type)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_no_server_error_and_nothing_off_the_document() {
    let schemathesis = python_tool(SCHEMATHESIS, "schemathesis");
    let dirs = Dirs::create();
    dirs.deploy_component("counter", choreo_test_guests::COUNTER, None);
    // Short reply waits, so that generated `reply=wait` requests end quickly.
    let server = Server::start_with(&dirs, &["--max-reply-timeout-ms", "200"], &[]).await;
    let config = dirs.root().join("schemathesis.toml");
    // A 504 is the documented answer when no reply comes in time: not a server fault.
    std::fs::write(
        &config,
        "[checks.not_a_server_error]\nexpected-statuses = [\"2xx\", \"3xx\", \"4xx\", \"504\"]\n",
    )
    .unwrap();
    let report = dirs.root().join("schemathesis.out");
    let output = std::fs::File::create(&report).unwrap();
    let url = format!("http://{}/v1/openapi.json", server.api().addr);
    let mut child = Command::new(&schemathesis)
        .arg("--config-file")
        .arg(&config)
        .args([
            "--no-color",
            "run",
            &url,
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
            "--max-examples",
            "25",
            "--workers",
            "1",
            "--request-timeout",
            "30",
            // Endless by design (server-sent events); `observe` tests it.
            "--exclude-path",
            "/v1/stream",
        ])
        .current_dir(dirs.root())
        .stdin(Stdio::null())
        .stdout(output.try_clone().unwrap())
        .stderr(output)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", schemathesis.display()));
    let status = wait(&mut child, Duration::from_secs(900), "schemathesis");
    let text = std::fs::read_to_string(&report).unwrap();
    if !status.success() {
        // The summary and failures are at the end; the start only lists progress.
        let tail: Vec<&str> = text.lines().rev().take(120).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "schemathesis found problems ({status}); the last lines:\n{}\n\nserver output:\n{}",
            tail.join("\n"),
            server.output()
        );
    }
}
