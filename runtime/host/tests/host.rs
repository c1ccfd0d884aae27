//! The host against real components: the first-party handlers, the hostile guests and
//! the broken ones, built from source by `choreo-test-guests`.

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use choreo_core::{Event, RecordedEvent, Topic};
use choreo_host::{
    Error, Failure, HandleOutcome, HandlerSettings, Host, Limits, LoadedHandler, MemoryState,
    QueryRequest, TrapKind,
};
use choreo_test_guests as guests;

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("engine builds"))
}

async fn load_with(path: &str, limits: Limits) -> Result<LoadedHandler, Error> {
    let wasm = std::fs::read(path).unwrap();
    let component = host().compile(path, &wasm)?;
    host()
        .load(
            path,
            &component,
            HandlerSettings {
                limits,
                config: BTreeMap::new(),
                ..Default::default()
            },
        )
        .await
}

async fn load(path: &str) -> LoadedHandler {
    load_with(path, Limits::default()).await.unwrap()
}

fn event(topic: &str, data: &[u8]) -> RecordedEvent {
    RecordedEvent {
        seq: 7,
        event: Event::new(Topic::new(topic).unwrap(), "test://host", data.to_vec()),
    }
}

async fn handle(handler: &LoadedHandler, topic: &str, data: &[u8]) -> HandleOutcome {
    handler
        .handle(&event(topic, data), 1, Arc::new(MemoryState::default()))
        .await
}

fn failure(outcome: &HandleOutcome) -> &Failure {
    &outcome
        .result
        .as_ref()
        .expect_err("the call should fail")
        .failure
}

#[tokio::test]
async fn enricher_publishes_an_enriched_order_linked_to_its_cause() {
    let enricher = load(guests::ENRICHER).await;
    assert_eq!(enricher.info().name.as_str(), "enricher");
    let order = br#"{"id":"o-1","customer":"c-9","region":"eu","items":[{"sku":"a","qty":2,"price_cents":1250},{"sku":"b","qty":1,"price_cents":500}]}"#;
    let input = event("orders.created", order);
    let outcome = enricher
        .handle(&input, 1, Arc::new(MemoryState::default()))
        .await;
    outcome.result.unwrap();
    let [published] = outcome.publishes.as_slice() else {
        panic!("one publish: {:?}", outcome.publishes)
    };
    assert_eq!(published.topic.as_str(), "orders.enriched");
    assert_eq!(published.causation_id.as_ref(), Some(&input.event.id));
    assert_eq!(published.correlation_id, input.event.correlation_id);
    assert_eq!(published.source, "choreo://handler/enricher");
    let body: serde_json::Value = serde_json::from_slice(&published.data).unwrap();
    assert_eq!(body["total_cents"], 3000);
    assert_eq!(body["item_count"], 3);
}

#[tokio::test]
async fn enricher_rejects_malformed_orders() {
    let enricher = load(guests::ENRICHER).await;
    let outcome = handle(&enricher, "orders.created", b"not json").await;
    assert!(
        matches!(failure(&outcome), Failure::Reject(_)),
        "{:?}",
        outcome.result
    );
    assert!(outcome.publishes.is_empty());
}

#[tokio::test]
async fn counter_keeps_state_and_answers_queries() {
    let counter = load(guests::COUNTER).await;
    let mut state = MemoryState::default();
    for topic in ["orders.created", "orders.created", "orders.enriched"] {
        let outcome = counter
            .handle(&event(topic, b"{}"), 1, Arc::new(state.clone()))
            .await;
        outcome.result.unwrap();
        assert!(!outcome.state_writes.is_empty());
        state.apply(&outcome.state_writes);
    }
    let get = |path: &str| QueryRequest {
        method: "GET".into(),
        path: path.into(),
        ..Default::default()
    };
    let one = counter
        .query(&get("/counts/orders.created"), Arc::new(state.clone()))
        .await
        .unwrap();
    assert_eq!(one.status, 200);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&one.body).unwrap(),
        serde_json::json!(2)
    );
    let all = counter
        .query(&get("/counts"), Arc::new(state.clone()))
        .await
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&all.body).unwrap();
    assert_eq!(all["orders.enriched"], 1);
    let missing = counter
        .query(&get("/counts/orders.never"), Arc::new(state.clone()))
        .await
        .unwrap();
    assert_eq!(missing.status, 404);
    let other = counter
        .query(&get("/elsewhere"), Arc::new(state))
        .await
        .unwrap();
    assert_eq!(other.status, 404);
}

#[tokio::test]
async fn router_fans_out_by_content() {
    let router = load(guests::ROUTER).await;
    let big = br#"{"id":"o-2","customer":"c","region":"us","items":[],"total_cents":250000,"item_count":1}"#;
    let outcome = handle(&router, "orders.enriched", big).await;
    outcome.result.unwrap();
    let mut topics: Vec<&str> = outcome.publishes.iter().map(|e| e.topic.as_str()).collect();
    topics.sort();
    assert_eq!(topics, ["orders.review.high-value", "orders.routed.us"]);
    let small =
        br#"{"id":"o-3","customer":"c","region":"eu","items":[],"total_cents":100,"item_count":1}"#;
    let outcome = handle(&router, "orders.enriched", small).await;
    let topics: Vec<&str> = outcome.publishes.iter().map(|e| e.topic.as_str()).collect();
    assert_eq!(topics, ["orders.routed.eu"]);
}

fn hostile_limits() -> Limits {
    Limits {
        deadline: Duration::from_millis(300),
        max_memory_bytes: 16 << 20,
        max_publish_bytes: 64 << 10,
        max_publishes: 10,
        ..Limits::default()
    }
}

/// Recognises the failure a hostile topic must cause.
type Expected = fn(&Failure) -> bool;

/// Every hostile behaviour fails its own call with an error naming the handler and the
/// limit or reason, and the next call, on the same handler and on another, succeeds.
#[tokio::test]
async fn hostile_guests_cost_only_their_own_call() {
    let hostile = load_with(guests::HOSTILE, hostile_limits()).await.unwrap();
    let echo = load(guests::ECHO).await;
    let cases: [(&str, Expected, &str); 8] = [
        (
            "hostile.loop",
            |f| f.trap_kind() == Some(TrapKind::Deadline),
            "deadline of 300ms",
        ),
        (
            "hostile.memory",
            |f| f.trap_kind() == Some(TrapKind::Memory),
            "limit of 16 MiB",
        ),
        (
            "hostile.recursion",
            |f| f.trap_kind() == Some(TrapKind::StackOverflow),
            "stack",
        ),
        (
            "hostile.trap",
            |f| f.trap_kind() == Some(TrapKind::Unreachable),
            "unreachable",
        ),
        (
            "hostile.undeclared",
            |f| matches!(f, Failure::Reject(_)),
            "declared publish patterns",
        ),
        (
            "hostile.oversized",
            |f| matches!(f, Failure::Reject(_)),
            "max_publish_bytes",
        ),
        (
            "hostile.flood",
            |f| matches!(f, Failure::Reject(_)),
            "max_publishes",
        ),
        // Overflowing the shadow stack in linear memory ends in an out-of-bounds access.
        (
            "hostile.shadow-stack",
            |f| f.trap_kind() == Some(TrapKind::Other),
            "out of bounds",
        ),
    ];
    for (topic, expected, words) in cases {
        let started = std::time::Instant::now();
        let outcome = handle(&hostile, topic, b"x").await;
        let err = outcome.result.as_ref().expect_err(topic);
        assert!(expected(&err.failure), "{topic}: {err}");
        let message = err.to_string();
        assert!(message.contains("handler `hostile`"), "{topic}: {message}");
        assert!(message.contains(words), "{topic}: {message}");
        assert!(
            outcome.publishes.is_empty() && outcome.state_writes.is_empty(),
            "{topic}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{topic} took {:?}",
            started.elapsed()
        );

        let ok = handle(&hostile, "hostile.ok", b"again").await;
        ok.result
            .unwrap_or_else(|err| panic!("after {topic}: {err}"));
        assert_eq!(ok.publishes[0].data, b"again");
        handle(&echo, "bench.ping", b"other").await.result.unwrap();
    }
}

#[tokio::test]
async fn noisy_output_is_bounded_and_the_call_succeeds() {
    // The default deadline: moving 24 MiB of output through the sandbox takes a while on
    // a loaded machine, and this test is about the bound on output, not about deadlines.
    let hostile = load(guests::HOSTILE).await;
    handle(&hostile, "hostile.noisy", b"").await.result.unwrap();
}

#[tokio::test]
async fn a_failed_call_keeps_none_of_its_state_writes() {
    let hostile = load_with(guests::HOSTILE, hostile_limits()).await.unwrap();
    let ok = handle(&hostile, "hostile.state", b"").await;
    ok.result.unwrap();
    assert_eq!(ok.state_writes.len(), 1);
}

#[tokio::test]
async fn events_larger_than_the_limit_are_refused_before_the_guest_runs() {
    let limits = Limits {
        max_event_bytes: 1024,
        ..Limits::default()
    };
    let echo = load_with(guests::ECHO, limits).await.unwrap();
    let outcome = handle(&echo, "bench.big", &[0; 4096]).await;
    let failure = failure(&outcome);
    assert!(matches!(failure, Failure::Refused(_)), "{failure}");
    assert!(!failure.is_retryable());
    assert!(failure.to_string().contains("max_event_bytes"), "{failure}");
}

/// 10,000 hostile calls: the process survives and its memory does not grow with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_hostile_calls_leak_nothing() {
    let limits = Limits {
        deadline: Duration::from_millis(50),
        max_memory_bytes: 2 << 20,
        max_publish_bytes: 1024,
        max_publishes: 3,
        ..Limits::default()
    };
    let hostile = load_with(guests::HOSTILE, limits).await.unwrap();
    let topics = [
        "hostile.trap",
        "hostile.memory",
        "hostile.recursion",
        "hostile.undeclared",
        "hostile.oversized",
        "hostile.flood",
    ];
    let run = |count: usize| {
        let hostile = hostile.clone();
        async move {
            for i in 0..count {
                // A deadline hit costs the full deadline, so loops are a small share.
                let topic = if i % 500 == 0 {
                    "hostile.loop"
                } else {
                    topics[i % topics.len()]
                };
                let outcome = handle(&hostile, topic, b"x").await;
                assert!(outcome.result.is_err(), "{topic} should fail");
            }
        }
    };
    run(1_000).await; // warm the pool and the allocator
    let before = rss_bytes();
    run(9_000).await;
    let grown = rss_bytes().saturating_sub(before);
    assert!(
        grown < 64 << 20,
        "RSS grew by {} MiB over 9,000 hostile calls",
        grown >> 20
    );
    handle(&hostile, "hostile.ok", b"still alive")
        .await
        .result
        .unwrap();
}

fn rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_component_of_another_world_is_refused_with_what_is_missing() {
    let err = load_with(guests::WRONG_WORLD, Limits::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::WrongWorld { .. }), "{message}");
    assert!(
        message.contains("does not export the function `describe`"),
        "{message}"
    );
    assert!(
        message.contains("greet"),
        "the message lists what it does export: {message}"
    );
}

#[tokio::test]
async fn an_invalid_name_in_describe_is_refused() {
    let err = load_with(guests::BAD_NAME, Limits::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::InvalidDescribe { .. }), "{message}");
    assert!(message.contains("name \"Not A Name\""), "{message}");
}

#[tokio::test]
async fn an_invalid_pattern_in_describe_is_refused() {
    let err = load_with(guests::BAD_PATTERN, Limits::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("subscription \"orders..created\""),
        "{message}"
    );
    assert!(message.contains("empty token at position 2"), "{message}");
}

#[tokio::test]
async fn a_describe_that_never_returns_is_refused_at_its_deadline() {
    let limits = Limits {
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let err = load_with(guests::DESCRIBE_LOOP, limits).await.unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::DescribeFailed { .. }), "{message}");
    assert!(message.contains("deadline"), "{message}");
}

#[test]
fn core_modules_and_garbage_are_refused_with_a_hint() {
    let core_module = b"\0asm\x01\0\0\0";
    let err = host().compile("plain.wasm", core_module).unwrap_err();
    assert!(err.to_string().contains("not a component"), "{err}");
    assert!(err.to_string().contains("wasm32-wasip2"), "{err}");
    let err = host()
        .compile("junk.wasm", b"definitely not wasm")
        .unwrap_err();
    assert!(matches!(err, Error::Compile { .. }), "{err}");
    assert!(err.to_string().contains("junk.wasm"), "{err}");
}

#[tokio::test]
async fn limits_above_the_pool_ceiling_are_refused() {
    let limits = Limits {
        max_memory_bytes: 1 << 40,
        ..Limits::default()
    };
    let err = load_with(guests::ECHO, limits).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::LimitAboveCeiling {
                limit: "max_memory_bytes",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn precompiled_artifacts_load_and_run() {
    let wasm = std::fs::read(guests::ECHO).unwrap();
    let component = host().compile("echo", &wasm).unwrap();
    let artifact = host().precompile("echo", &component).unwrap();
    // SAFETY: the artifact was just made by this very host.
    let loaded = unsafe { host().load_precompiled("echo", &artifact) }.unwrap();
    let echo = host()
        .load("echo", &loaded, HandlerSettings::default())
        .await
        .unwrap();
    let outcome = handle(&echo, "bench.x", b"hello").await;
    outcome.result.unwrap();
    assert_eq!(outcome.publishes[0].topic.as_str(), "bench.out.echo");
    assert_eq!(outcome.publishes[0].data, b"hello");
}

#[tokio::test]
async fn a_reply_topic_may_be_published_without_declaring_it() {
    let hostile = load(guests::HOSTILE).await;
    let mut request = event("hostile.reply", b"ping");
    request.event.reply_to = Some(Topic::reply_to(&request.event.id).unwrap());
    let outcome = hostile
        .handle(&request, 1, Arc::new(MemoryState::default()))
        .await;
    outcome.result.unwrap();
    assert_eq!(outcome.publishes[0].topic, request.event.reply_to.unwrap());
}
