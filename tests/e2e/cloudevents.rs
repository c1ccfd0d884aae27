//! The CloudEvents HTTP binding beyond binary mode: structured and batch mode on both
//! publish routes, idempotent publishes, and the refusals of malformed CloudEvents. And
//! JSON data read back exactly as it was published.

use base64::Engine;
use http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::harness::{Dirs, Server};

pub const STRUCTURED: &[(&str, &str)] = &[("content-type", "application/cloudevents+json")];
pub const BATCH: &[(&str, &str)] = &[("content-type", "application/cloudevents-batch+json")];

/// A well-formed structured event on `/v1/topics/…` (no `topic` attribute).
pub fn event(id: &str, data: Value) -> Value {
    json!({
        "specversion": "1.0",
        "id": id,
        "source": "/e2e/cloudevents",
        "type": "com.example.test",
        "data": data,
    })
}

async fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: &Value) -> Value {
    let reply = server
        .request(
            Method::POST,
            path,
            headers,
            serde_json::to_vec(body).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::ACCEPTED, "POST {path}: {reply}");
    reply.json()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn structured_events_keep_every_attribute_on_both_routes() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;

    let mut on_path = event("s-1", json!({"total": 12}));
    on_path["subject"] = json!("order-7");
    on_path["partitionkey"] = json!("customer-7");
    on_path["traceparent"] = json!("00-abc-def-01");
    on_path["priority"] = json!(3);
    on_path["time"] = json!("2026-11-26T10:00:00Z");
    let headers = [(
        "content-type",
        "application/cloudevents+json; charset=utf-8",
    )];
    let first = post(&server, "/v1/topics/orders.created", &headers, &on_path).await;
    assert_eq!(first["id"], "s-1");
    assert_eq!(first["duplicate"], false);

    let mut on_events = event("s-2", json!("plain text"));
    on_events["topic"] = json!("notes.added");
    on_events["datacontenttype"] = json!("text/plain");
    on_events["comment"] = json!("café");
    post(&server, "/v1/events", STRUCTURED, &on_events).await;

    let bytes = [0u8, 1, 2, 254, 255];
    let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut binary = event("s-3", Value::Null);
    binary.as_object_mut().unwrap().remove("data");
    binary["data_base64"] = json!(encoded);
    binary["datacontenttype"] = json!("application/octet-stream");
    post(&server, "/v1/topics/blobs.stored", STRUCTURED, &binary).await;

    let log = server.events(">").await;
    assert_eq!(log.len(), 3, "{log:#?}");
    let stored = &log[0];
    for (name, want) in [
        ("specversion", json!("1.0")),
        ("id", json!("s-1")),
        ("source", json!("/e2e/cloudevents")),
        ("type", json!("com.example.test")),
        ("topic", json!("orders.created")),
        ("subject", json!("order-7")),
        ("partitionkey", json!("customer-7")),
        ("traceparent", json!("00-abc-def-01")),
        ("priority", json!("3")),
        ("time", json!("2026-11-26T10:00:00Z")),
        ("data", json!({"total": 12})),
    ] {
        assert_eq!(stored[name], want, "attribute {name} of {stored:#}");
    }
    assert_eq!(log[1]["topic"], "notes.added");
    assert_eq!(log[1]["data"], "plain text");
    assert_eq!(log[1]["comment"], "café");
    assert_eq!(log[2]["data_base64"], encoded, "{:#}", log[2]);
    assert_eq!(log[2]["datacontenttype"], "application/octet-stream");
}

/// JSON data published as the body, in a structured event or in a batch, reads back digit
/// for digit, its members in their order, in a page of the log and in a trace. (The live
/// stream and dead-letters write events the same way; the stream's unit tests hold it to
/// one line.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_data_reads_back_as_it_was_published() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let api = server.api();
    // A JSON parser would round the first number to an f64, and could sort the members.
    let published = "{\n  \"z\": 12345678901234567890123,\n  \"a\": [1.50, \"two  words\"]\n}";
    let stored = r#""data":{"z":12345678901234567890123,"a":[1.50,"two  words"]}"#;
    let accepted = api
        .publish(
            "prices.quoted",
            &[("content-type", "application/json")],
            published,
        )
        .await
        .unwrap();
    let id = accepted["id"].as_str().unwrap();
    // The same data in a structured event and in a batch.
    let structured = format!(
        r#"{{"specversion": "1.0", "id": "q-1", "source": "/e2e", "type": "t",
            "datacontenttype": "application/json", "data": {published}}}"#
    );
    for (headers, body) in [
        (STRUCTURED, structured.clone()),
        (BATCH, format!("[{}]", structured.replace("q-1", "q-2"))),
    ] {
        let reply = api
            .request(Method::POST, "/v1/topics/prices.quoted", headers, body)
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply}");
    }
    let page = api.get("/v1/events?pattern=prices.quoted").await.unwrap();
    let text = String::from_utf8_lossy(&page.body);
    assert_eq!(text.matches(stored).count(), 3, "GET /v1/events: {text}");
    let trace = api.get(&format!("/v1/events/{id}")).await.unwrap();
    let text = String::from_utf8_lossy(&trace.body);
    assert!(text.contains(stored), "GET /v1/events/{id}: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_appended_all_or_nothing_in_order() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;

    let events: Vec<Value> = (0..20)
        .map(|i| event(&format!("b-{i}"), json!({ "n": i })))
        .collect();
    let answers = post(&server, "/v1/topics/orders.batched", BATCH, &json!(events)).await;
    let answers = answers.as_array().unwrap();
    assert_eq!(answers.len(), 20);
    let seqs: Vec<u64> = answers.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["id"], format!("b-{i}"));
        assert_eq!(answer["duplicate"], false);
    }
    let log = server.events("orders.batched").await;
    let data: Vec<Value> = log.iter().map(|e| e["data"]["n"].clone()).collect();
    assert_eq!(data, (0..20).map(|i| json!(i)).collect::<Vec<_>>());

    // On /v1/events each event names its topic; one bad event refuses the whole batch.
    let mut good = event("b-good", json!(1));
    good["topic"] = json!("orders.batched");
    let mut bad = event("b-bad", json!(2));
    bad["topic"] = json!("orders.batched");
    bad.as_object_mut().unwrap().remove("source");
    let reply = server
        .request(
            Method::POST,
            "/v1/events",
            BATCH,
            serde_json::to_vec(&json!([good.clone(), good.clone(), bad])).unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{reply}");
    assert_eq!(reply.content_type, "application/problem+json");
    let detail = reply.json()["detail"].as_str().unwrap().to_owned();
    assert!(
        detail.contains("event 2") && detail.contains("`source`"),
        "{detail}"
    );
    assert_eq!(
        server.events(">").await.len(),
        20,
        "the refused batch stored events"
    );

    let answers = post(&server, "/v1/events", BATCH, &json!([good])).await;
    assert_eq!(answers[0]["seq"], seqs[19] + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_source_and_id_is_stored_once() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;

    let order = event("order-1", json!({"total": 5}));
    let first = post(&server, "/v1/topics/orders.created", STRUCTURED, &order).await;
    let again = post(&server, "/v1/topics/orders.created", STRUCTURED, &order).await;
    assert_eq!(first["duplicate"], false);
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["seq"], first["seq"]);

    // A batch holding the seen event appends the others and reports the duplicate.
    let batch = json!([
        event("order-2", json!({"total": 6})),
        order,
        event("order-3", json!({"total": 7})),
    ]);
    let answers = post(&server, "/v1/topics/orders.created", BATCH, &batch).await;
    let duplicates: Vec<&Value> = answers
        .as_array()
        .unwrap()
        .iter()
        .map(|a| &a["duplicate"])
        .collect();
    assert_eq!(duplicates, [&json!(false), &json!(true), &json!(false)]);
    assert_eq!(answers[1]["seq"], first["seq"]);

    // The same id from another source is another event.
    let mut elsewhere = event("order-1", json!({"total": 5}));
    elsewhere["source"] = json!("/another/shop");
    let other = post(&server, "/v1/topics/orders.created", STRUCTURED, &elsewhere).await;
    assert_eq!(other["duplicate"], false);

    let ids: Vec<Value> = server
        .events(">")
        .await
        .iter()
        .map(|e| json!([e["id"], e["source"]]))
        .collect();
    assert_eq!(
        ids,
        [
            json!(["order-1", "/e2e/cloudevents"]),
            json!(["order-2", "/e2e/cloudevents"]),
            json!(["order-3", "/e2e/cloudevents"]),
            json!(["order-1", "/another/shop"]),
        ]
    );
}

/// One refused request and what its problem+json must say.
struct Case {
    what: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: StatusCode,
    /// Text the problem's `detail` must contain.
    mentions: &'static str,
}

fn without(member: &str) -> Vec<u8> {
    let mut value = event("bad-1", json!(1));
    value.as_object_mut().unwrap().remove(member);
    serde_json::to_vec(&value).unwrap()
}

fn with(member: &str, value: Value) -> Vec<u8> {
    let mut event = event("bad-1", json!(1));
    event[member] = value;
    serde_json::to_vec(&event).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_cloudevents_get_problem_json_and_store_nothing() {
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let structured = "application/cloudevents+json";
    let batch = "application/cloudevents-batch+json";
    let topic = "/v1/topics/orders.created";
    let too_many: Vec<Value> = (0..1025)
        .map(|i| event(&format!("m-{i}"), json!(i)))
        .collect();
    let cases = [
        Case {
            what: "malformed JSON",
            path: topic,
            content_type: structured,
            body: b"{\"specversion\": \"1.0\",".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "not JSON",
        },
        Case {
            what: "an array in structured mode",
            path: topic,
            content_type: structured,
            body: b"[]".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "JSON object",
        },
        Case {
            what: "no specversion",
            path: topic,
            content_type: structured,
            body: without("specversion"),
            status: StatusCode::BAD_REQUEST,
            mentions: "`specversion` is missing",
        },
        Case {
            what: "no id",
            path: topic,
            content_type: structured,
            body: without("id"),
            status: StatusCode::BAD_REQUEST,
            mentions: "`id` is missing",
        },
        Case {
            what: "no source",
            path: topic,
            content_type: structured,
            body: without("source"),
            status: StatusCode::BAD_REQUEST,
            mentions: "`source` is missing",
        },
        Case {
            what: "no type",
            path: topic,
            content_type: structured,
            body: without("type"),
            status: StatusCode::BAD_REQUEST,
            mentions: "`type` is missing",
        },
        Case {
            what: "specversion 0.3",
            path: topic,
            content_type: structured,
            body: with("specversion", json!("0.3")),
            status: StatusCode::BAD_REQUEST,
            mentions: "`specversion`",
        },
        Case {
            what: "both data and data_base64",
            path: topic,
            content_type: structured,
            body: with("data_base64", json!("AA==")),
            status: StatusCode::BAD_REQUEST,
            mentions: "both `data` and `data_base64`",
        },
        Case {
            what: "an invalid extension name",
            path: topic,
            content_type: structured,
            body: with("Trace-Parent", json!("x")),
            status: StatusCode::BAD_REQUEST,
            mentions: "`Trace-Parent`",
        },
        Case {
            what: "no topic attribute on /v1/events",
            path: "/v1/events",
            content_type: structured,
            body: without("topic"),
            status: StatusCode::BAD_REQUEST,
            mentions: "`topic` is missing",
        },
        Case {
            what: "an invalid topic attribute",
            path: "/v1/events",
            content_type: structured,
            body: with("topic", json!("orders..created")),
            status: StatusCode::BAD_REQUEST,
            mentions: "orders..created",
        },
        Case {
            what: "a reserved topic attribute",
            path: "/v1/events",
            content_type: structured,
            body: with("topic", json!("$reply.x")),
            status: StatusCode::BAD_REQUEST,
            mentions: "reserved",
        },
        Case {
            what: "no topic attribute in a batch on /v1/events",
            path: "/v1/events",
            content_type: batch,
            body: serde_json::to_vec(&json!([event("bad-1", json!(1))])).unwrap(),
            status: StatusCode::BAD_REQUEST,
            mentions: "event 0 of the batch: attribute `topic` is missing",
        },
        Case {
            what: "an empty batch",
            path: topic,
            content_type: batch,
            body: b"[]".to_vec(),
            status: StatusCode::BAD_REQUEST,
            mentions: "no events",
        },
        Case {
            what: "a batch over max_batch_events",
            path: topic,
            content_type: batch,
            body: serde_json::to_vec(&too_many).unwrap(),
            status: StatusCode::PAYLOAD_TOO_LARGE,
            mentions: "1024",
        },
        Case {
            what: "the CloudEvents XML format",
            path: topic,
            content_type: "application/cloudevents+xml",
            body: b"<event/>".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            mentions: "application/cloudevents+json",
        },
        Case {
            what: "a binary-mode body on /v1/events",
            path: "/v1/events",
            content_type: "application/json",
            body: b"{}".to_vec(),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            mentions: "/v1/topics/{topic}",
        },
        Case {
            what: "a charset other than UTF-8",
            path: topic,
            content_type: "application/cloudevents+json; charset=latin1",
            body: with("id", json!("x")),
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            mentions: "UTF-8",
        },
        Case {
            what: "an unknown reply mode",
            path: "/v1/topics/orders.created?reply=later",
            content_type: structured,
            body: with("id", json!("x")),
            status: StatusCode::BAD_REQUEST,
            mentions: "`reply`",
        },
        Case {
            what: "a timeout without a unit",
            path: "/v1/topics/orders.created?reply=wait&timeout=10",
            content_type: structured,
            body: with("id", json!("x")),
            status: StatusCode::BAD_REQUEST,
            mentions: "`timeout`",
        },
    ];
    let mut failures = Vec::new();
    for case in cases {
        let Case {
            what,
            path,
            content_type,
            body,
            status,
            mentions,
        } = case;
        let reply = match server
            .request(Method::POST, path, &[("content-type", content_type)], body)
            .await
        {
            Ok(reply) => reply,
            Err(err) => {
                failures.push(format!("{what}: POST {path}: no answer: {err}"));
                continue;
            }
        };
        if !reply.is_problem(status, mentions) {
            failures.push(format!(
                "{what}: POST {path}: want {status} problem+json mentioning {mentions:?}, got {reply}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let stored = server.events(">").await;
    assert!(
        stored.is_empty(),
        "a refused request stored events: {stored:?}"
    );
}

/// The official CloudEvents SDK for Python publishes to choreo with no adapter, in binary
/// and structured mode, and parses every event choreo hands back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_works_with_no_adapter() {
    let python = crate::tools::python_tool(crate::tools::CLOUDEVENTS_SDK, "python");
    let dirs = Dirs::create();
    let server = Server::start(&dirs).await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/e2e/cloudevents_sdk.py"
    );
    let mut child = std::process::Command::new(&python)
        .arg(script)
        .arg(format!("http://{}", server.api().addr))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = crate::tools::wait(
        &mut child,
        std::time::Duration::from_secs(120),
        "the CloudEvents SDK client",
    );
    let mut out = String::new();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut out).unwrap();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(
        status.success() && out.trim() == "ok",
        "the SDK client failed ({status}):\n{out}\n{err}\nserver:\n{}",
        server.output()
    );
}
