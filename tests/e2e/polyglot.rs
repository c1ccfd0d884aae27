//! Handlers written in Python and JavaScript with choreo's SDKs, built from source by
//! `choreo-polyglot` (componentize-py and componentize-js), deployed on the real binary:
//! `describe` is read, events are handled with state that persists from one event to the
//! next and shows through `query`, publishes reach the log, and `Retry`, `Reject`, an
//! unexpected exception and an undeclared publish end in retries and dead-letters exactly
//! as the Rust SDK's errors do.

use std::collections::BTreeMap;

use http::StatusCode;
use serde_json::{Value, json};

use crate::harness::{DEADLINE, DEPLOY_DEADLINE, Dirs, Server, eventually};

/// A quick retry policy without jitter, and a config value the handlers echo.
const MANIFEST: &str = r#"
[retry]
max_attempts = 3
initial_backoff_ms = 50
max_backoff_ms = 200
jitter = 0.0

[config]
label = "from-manifest"
"#;

const JSON: (&str, &str) = ("content-type", "application/json");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_and_javascript_handlers_built_from_source_handle_events_on_the_real_runtime() {
    let dirs = Dirs::create();
    // Deployed once the server runs, so the slow compiles are waited for here, with a
    // deadline of their own, rather than inside the harness's ready deadline.
    let server = Server::start(&dirs).await;
    dirs.deploy_component("py-counter", choreo_polyglot::PY_COUNTER, Some(MANIFEST));
    dirs.deploy_component("js-enricher", choreo_polyglot::JS_ENRICHER, Some(MANIFEST));
    for name in ["py-counter", "js-enricher"] {
        server.wait_running(name, DEPLOY_DEADLINE).await;
    }

    check_described(
        &server,
        "py-counter",
        "py",
        "Counts order quantities, in Python",
    )
    .await;
    check_described(&server, "js-enricher", "js", "Totals orders, in JavaScript").await;
    check_python_orders(&server).await;
    check_js_orders(&server).await;
    check_failures(&server, "py-counter", "py", "KeyError: 'missing'", 3).await;
    check_failures(&server, "js-enricher", "js", "TypeError: ", 2).await;
}

/// `describe` was read: the catalog shows what the handler declared.
async fn check_described(server: &Server, name: &str, prefix: &str, description: &str) {
    let handler = server.handler(name).await;
    assert_eq!(handler["version"], "1.0.0", "{handler}");
    assert_eq!(handler["description"], description, "{handler}");
    assert_eq!(
        handler["subscriptions"],
        json!([format!("{prefix}.in.>")]),
        "{handler}"
    );
    assert_eq!(
        handler["publishes"],
        json!([format!("{prefix}.out.>")]),
        "{handler}"
    );
}

/// py-counter adds each order's quantity to the order's count and to a running total.
async fn check_python_orders(server: &Server) {
    let orders = [
        json!({"id": "a", "qty": 2}),
        json!({"id": "a", "qty": 3}),
        json!({"id": "b"}),
    ];
    let ids = publish_all(server, "py.in.order", &orders).await;
    let out = wait_for(server, "py.out.counted", orders.len()).await;
    // One topic is one ordering key, so the outputs follow the inputs.
    let data: Vec<&Value> = out.iter().map(|e| &e["data"]).collect();
    assert_eq!(
        data,
        [
            &json!({"id": "a", "count": 2, "total": 2, "label": "from-manifest"}),
            &json!({"id": "a", "count": 5, "total": 5, "label": "from-manifest"}),
            &json!({"id": "b", "count": 1, "total": 6, "label": "from-manifest"}),
        ],
        "{out:#?}"
    );
    check_links(&out, &ids, "py-counter");
    assert_eq!(
        out[0]["partitionkey"], "a",
        "published with the order as key: {}",
        out[0]
    );

    let order = server.query("py-counter", "orders/a").await;
    assert_eq!(order.status, StatusCode::OK, "{order}");
    assert_eq!(order.json(), json!({"id": "a", "count": 5}));
    let total = server.query("py-counter", "total").await;
    assert_eq!(total.json(), json!({"total": 6, "orders": 2}), "{total}");
    let unknown = server.query("py-counter", "orders/zzz").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown}");
    let default = server.query("py-counter", "nothing/here").await;
    assert_eq!(default.status, StatusCode::NOT_FOUND, "{default}");
    assert_eq!(
        default.content_type, "application/problem+json",
        "{default}"
    );
}

/// js-enricher totals each order's items and counts the orders it has seen.
async fn check_js_orders(server: &Server) {
    let orders = [
        json!({"id": "o1", "items": [{"price": 5, "qty": 2}, {"price": 1, "qty": 1}]}),
        json!({"id": "o2", "items": [{"price": 3, "qty": 3}]}),
    ];
    let ids = publish_all(server, "js.in.order", &orders).await;
    let out = wait_for(server, "js.out.enriched", orders.len()).await;
    let data: Vec<&Value> = out.iter().map(|e| &e["data"]).collect();
    assert_eq!(
        data,
        [
            &json!({"id": "o1", "total": 11, "seen": 1, "label": "from-manifest"}),
            &json!({"id": "o2", "total": 9, "seen": 2, "label": "from-manifest"}),
        ],
        "{out:#?}"
    );
    check_links(&out, &ids, "js-enricher");

    let order = server.query("js-enricher", "orders/o1").await;
    assert_eq!(order.status, StatusCode::OK, "{order}");
    assert_eq!(order.json(), json!({"id": "o1", "total": 11}));
    let stats = server.query("js-enricher", "stats").await;
    assert_eq!(stats.json(), json!({"seen": 2, "orders": 2}), "{stats}");
    let unknown = server.query("js-enricher", "orders/zzz").await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{unknown}");
    let default = server.query("js-enricher", "nothing/here").await;
    assert_eq!(default.status, StatusCode::NOT_FOUND, "{default}");
}

/// Each output was caused by the matching input and carries its correlation id.
fn check_links(out: &[Value], inputs: &[String], handler: &str) {
    for (event, input) in out.iter().zip(inputs) {
        assert_eq!(event["causationid"], *input, "{event}");
        assert_eq!(event["correlationid"], *input, "{event}");
        assert_eq!(
            event["source"],
            format!("choreo://handler/{handler}"),
            "{event}"
        );
        assert_eq!(event["datacontenttype"], "application/json", "{event}");
    }
}

/// `Retry` is retried up to `max_attempts`, then dead-lettered; `Reject`, an unexpected
/// exception and a refused publish are dead-lettered at the first attempt; none of the
/// failed calls publishes anything.
async fn check_failures(server: &Server, name: &str, prefix: &str, crash: &str, acked: u64) {
    let outputs_before = server.events(&format!("{prefix}.out.>")).await.len();
    for kind in ["retry", "reject", "crash", "undeclared"] {
        server
            .publish(&format!("{prefix}.in.{kind}"), &[JSON], "{}")
            .await
            .unwrap();
    }
    let dlq = format!("$dlq.{name}");
    let dead = wait_for(server, &dlq, 4).await;
    let by_topic: BTreeMap<String, &Value> = dead
        .iter()
        .map(|e| (e["dlqtopic"].as_str().unwrap().to_owned(), e))
        .collect();
    let expect = [
        ("retry", "3", "not yet: attempt 3"),
        ("reject", "1", "this event can never be handled"),
        ("crash", "1", crash),
        ("undeclared", "1", "PublishError: undeclared topic"),
    ];
    for (kind, attempts, reason) in expect {
        let letter = by_topic
            .get(&format!("{prefix}.in.{kind}"))
            .unwrap_or_else(|| panic!("no dead-letter for {prefix}.in.{kind}: {dead:#?}"));
        assert_eq!(letter["dlqhandler"], name, "{letter}");
        assert_eq!(letter["dlqattempts"], attempts, "{kind}: {letter}");
        let text = letter["dlqreason"].as_str().unwrap();
        assert!(
            text.contains(reason),
            "{kind}: the reason {text:?} lacks {reason:?}"
        );
    }

    let handler = eventually(&format!("{name}'s counters settle"), DEADLINE, async || {
        let handler = server.handler(name).await;
        if handler["dead_lettered"] == 4 && handler["queue_depth"] == 0 {
            Ok(handler)
        } else {
            Err(handler.to_string())
        }
    })
    .await;
    assert_eq!(
        handler["retried"], 2,
        "two retries of the Retry event: {handler}"
    );
    assert_eq!(handler["acked"], acked, "{handler}");
    assert_eq!(handler["status"], "running", "{handler}");
    let outputs_after = server.events(&format!("{prefix}.out.>")).await.len();
    assert_eq!(
        outputs_after, outputs_before,
        "a failed call published something"
    );
}

/// Publishes each value as JSON on `topic`, in order; returns the event ids.
async fn publish_all(server: &Server, topic: &str, values: &[Value]) -> Vec<String> {
    let mut ids = Vec::new();
    for value in values {
        let accepted = server
            .publish(topic, &[JSON], value.to_string())
            .await
            .unwrap();
        ids.push(accepted["id"].as_str().unwrap().to_owned());
    }
    ids
}

/// Waits until `pattern` holds `count` events, and checks it holds no more.
async fn wait_for(server: &Server, pattern: &str, count: usize) -> Vec<Value> {
    let events = eventually(
        &format!("{count} events on {pattern}"),
        DEADLINE,
        async || {
            let events = server.events(pattern).await;
            if events.len() >= count {
                Ok(events)
            } else {
                Err(format!("{} so far: {events:?}", events.len()))
            }
        },
    )
    .await;
    assert_eq!(events.len(), count, "{events:#?}");
    events
}
