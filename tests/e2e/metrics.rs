//! Prometheus metrics after a known workload, and the topics catalog.

use http::{Method, StatusCode};

use crate::harness::{DEADLINE, Dirs, Server, eventually};
use crate::operate::{HOSTILE_MANIFEST, json_at};

/// Good events for the hostile handler; each is acked and republished by it on
/// `hostile.out.ok`.
const OK_EVENTS: u64 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_topics_describe_a_known_workload() {
    let dirs = Dirs::create();
    dirs.deploy_component(
        "hostile",
        choreo_test_guests::HOSTILE,
        Some(HOSTILE_MANIFEST),
    );
    let server = Server::start(&dirs).await;
    for i in 0..OK_EVENTS {
        server
            .publish(
                "hostile.ok",
                &[("ce-source", "/tests/shop")],
                format!("{i}"),
            )
            .await
            .unwrap();
    }
    server.publish("hostile.reject", &[], "r").await.unwrap();
    eventually("the workload is handled", DEADLINE, async || {
        let hostile = server.handler("hostile").await;
        if hostile["acked"] == OK_EVENTS && hostile["dead_letters"] == 1 {
            Ok(())
        } else {
            Err(format!("{hostile}"))
        }
    })
    .await;

    // The log tail counts published events a little after they are durable.
    let expected = [
        (
            "choreo_events_published_total",
            vec![("topic", "hostile.ok"), ("origin", "ingress")],
            OK_EVENTS as f64,
        ),
        (
            "choreo_events_published_total",
            vec![("topic", "hostile.out"), ("origin", "handler")],
            OK_EVENTS as f64,
        ),
        (
            "choreo_events_published_total",
            vec![("topic", "$dlq.hostile"), ("origin", "dead_letter")],
            1.0,
        ),
        (
            "choreo_deliveries_total",
            vec![("handler", "hostile"), ("outcome", "acked")],
            OK_EVENTS as f64,
        ),
        (
            "choreo_deliveries_total",
            vec![("handler", "hostile"), ("outcome", "dead_lettered")],
            1.0,
        ),
        (
            "choreo_deliveries_total",
            vec![("handler", "hostile"), ("outcome", "retried")],
            0.0,
        ),
        (
            "choreo_delivery_call_seconds_count",
            vec![("handler", "hostile")],
            (OK_EVENTS + 1) as f64,
        ),
        (
            "choreo_delivery_start_delay_seconds_count",
            vec![("handler", "hostile")],
            (OK_EVENTS + 1) as f64,
        ),
        ("choreo_queue_depth", vec![("handler", "hostile")], 0.0),
        ("choreo_queue_lag", vec![("handler", "hostile")], 0.0),
        ("choreo_dead_letters", vec![("handler", "hostile")], 1.0),
        ("choreo_deploys_total", vec![("result", "succeeded")], 1.0),
        ("choreo_deploys_total", vec![("result", "failed")], 0.0),
    ];
    let samples = eventually("metrics report the workload", DEADLINE, async || {
        let reply = server.get("/metrics").await?;
        if reply.status != StatusCode::OK {
            return Err(format!("{reply}"));
        }
        assert!(
            reply.content_type.starts_with("text/plain; version=0.0.4"),
            "{reply}"
        );
        let text = String::from_utf8(reply.body.to_vec()).unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines)
            .unwrap_or_else(|e| panic!("not Prometheus text ({e}):\n{text}"));
        for (name, labels, value) in &expected {
            let found = value_of(&scrape, name, labels);
            if found != Some(*value) {
                return Err(format!(
                    "{name}{labels:?} is {found:?}, not {value}:\n{text}"
                ));
            }
        }
        // prometheus-parse skips a line whose label value holds a `}` (valid in the
        // format), as route templates do, so this series is checked on the text itself.
        let publishes = format!(
            "choreo_http_requests_total{{route=\"/v1/topics/{{topic}}\",method=\"POST\",status=\"202\"}} {}",
            OK_EVENTS + 1
        );
        if !text.lines().any(|line| line == publishes) {
            return Err(format!("no line `{publishes}`:\n{text}"));
        }
        Ok(scrape)
    })
    .await;
    let delay_buckets = samples
        .samples
        .iter()
        .filter(|s| s.metric == "choreo_delivery_call_seconds")
        .count();
    assert_eq!(delay_buckets, 1, "one histogram, for the one handler");
    let healthz = value_of(
        &samples,
        "choreo_http_requests_total",
        &[("route", "/readyz"), ("method", "GET"), ("status", "200")],
    );
    assert!(
        healthz >= Some(1.0),
        "the harness polled /readyz: {healthz:?}"
    );
    // Connections and file descriptors: the scrape's own connection is open, the limit is
    // the one /v1/info reports, and the open-files limit leaves room beside it.
    let gauge = |name: &str| {
        value_of(&samples, name, &[]).unwrap_or_else(|| panic!("no {name} in the scrape"))
    };
    let info = server.get("/v1/info").await.unwrap().json();
    let max_connections = gauge("choreo_http_max_connections");
    assert_eq!(
        Some(max_connections),
        info["limits"]["max_connections"].as_f64()
    );
    assert!(gauge("choreo_http_connections") >= 1.0);
    let open_fds = gauge("process_open_fds");
    assert!(open_fds > gauge("choreo_http_connections"), "{open_fds}");
    assert!(gauge("process_max_fds") >= max_connections + 512.0);
    assert!(gauge("process_resident_memory_bytes") > 0.0);
    assert!(gauge("process_start_time_seconds") > 0.0);

    let topics = json_at(&server, Method::GET, "/v1/topics", StatusCode::OK).await;
    let topic = |name: &str| {
        topics["topics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic"] == name)
            .unwrap_or_else(|| panic!("no {name} in {topics}"))
            .clone()
    };
    let ok = topic("hostile.ok");
    assert_eq!(ok["count"], OK_EVENTS, "{ok}");
    assert_eq!(ok["producers"], serde_json::json!(["/tests/shop"]), "{ok}");
    assert_eq!(ok["consumers"], serde_json::json!(["hostile"]), "{ok}");
    assert!(ok["rate_per_sec"].as_f64().unwrap() > 0.0, "{ok}");
    assert!(
        ok["first_seen"].as_str() <= ok["last_seen"].as_str(),
        "{ok}"
    );
    let out = topic("hostile.out.ok");
    assert_eq!(out["count"], OK_EVENTS, "{out}");
    assert_eq!(
        out["producers"],
        serde_json::json!(["choreo://handler/hostile"]),
        "{out}"
    );
    assert_eq!(out["consumers"], serde_json::json!([]), "{out}");
    let dead = topic("$dlq.hostile");
    assert_eq!(dead["count"], 1, "{dead}");
    assert_eq!(
        dead["consumers"],
        serde_json::json!([]),
        "`hostile.*` is not `$dlq`"
    );

    for (method, path) in [(Method::POST, "/metrics"), (Method::DELETE, "/v1/topics")] {
        let reply = server.request(method.clone(), path, &[], "").await.unwrap();
        assert_eq!(
            reply.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}: {reply}"
        );
    }
}

/// The value of the sample `name` whose labels include `labels`.
fn value_of(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(k).is_some_and(|found| found == *v))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}
