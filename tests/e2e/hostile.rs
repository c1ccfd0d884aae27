//! A hostile handler beside well-behaved ones: its infinite loop, memory bomb and panic
//! each cost only their own deliveries, which are retried with backoff and then
//! dead-lettered, while every other event (its own good ones included) is handled.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::harness::{DEADLINE, Dirs, Server, eventually};

/// Small limits and a quick retry policy, without jitter so the backoff has a known floor.
const HOSTILE_MANIFEST: &str = r#"
[limits]
deadline_ms = 300
max_memory_bytes = 16777216

[retry]
max_attempts = 3
initial_backoff_ms = 50
max_backoff_ms = 200
jitter = 0.0
"#;

/// The backoff before attempts 2 and 3: 50 ms, then 100 ms.
const MIN_BACKOFF_MS: i64 = 150;

/// Events for the well-behaved handler, and good events for the hostile one.
const ECHO_EVENTS: usize = 100;
const HOSTILE_OK_EVENTS: usize = 10;

/// The misbehaviours fed to the hostile handler, with the trap kind each must be counted
/// under in `/v1/handlers`.
const BAD: [(&str, &str); 3] = [
    ("hostile.loop", "deadline"),
    ("hostile.memory", "memory"),
    ("hostile.trap", "unreachable"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_handler_retries_with_backoff_then_dead_letters_while_others_keep_working() {
    let dirs = Dirs::create();
    dirs.deploy_component(
        "hostile",
        choreo_test_guests::HOSTILE,
        Some(HOSTILE_MANIFEST),
    );
    dirs.deploy_component("echo", choreo_test_guests::ECHO, None);
    let server = Server::start(&dirs).await;

    // Bad events first, so good ones queue up behind their retries, interleaved with
    // events for echo.
    let mut bad_ids = BTreeMap::new();
    for (topic, _) in BAD {
        let accepted = server.publish(topic, &[], "misbehave").await.unwrap();
        bad_ids.insert(accepted["id"].as_str().unwrap().to_owned(), topic);
    }
    for i in 0..ECHO_EVENTS.max(HOSTILE_OK_EVENTS) {
        if i < ECHO_EVENTS {
            server
                .publish("bench.hostile-test", &[], format!("echo {i}"))
                .await
                .unwrap();
        }
        if i < HOSTILE_OK_EVENTS {
            server
                .publish("hostile.ok", &[], format!("ok {i}"))
                .await
                .unwrap();
        }
    }

    let dead = eventually(
        "the three bad events are dead-lettered",
        DEADLINE,
        async || {
            let dead = server.events("$dlq.>").await;
            if dead.len() >= BAD.len() {
                Ok(dead)
            } else {
                Err(format!("{} dead-letters: {dead:?}", dead.len()))
            }
        },
    )
    .await;
    assert_eq!(dead.len(), BAD.len(), "{dead:#?}");
    let originals: BTreeMap<String, Value> = server
        .events("hostile.*")
        .await
        .into_iter()
        .map(|e| (e["id"].as_str().unwrap().to_owned(), e))
        .collect();
    let mut dead_topics = BTreeSet::new();
    for letter in &dead {
        assert_eq!(letter["topic"], "$dlq.hostile", "{letter}");
        assert_eq!(letter["dlqhandler"], "hostile", "{letter}");
        assert_eq!(
            letter["dlqattempts"], "3",
            "every attempt was made: {letter}"
        );
        assert!(
            letter["dlqreason"].as_str().is_some_and(|r| !r.is_empty()),
            "the reason is given: {letter}"
        );
        let cause = letter["causationid"].as_str().unwrap();
        let topic = bad_ids
            .get(cause)
            .unwrap_or_else(|| panic!("a dead-letter not caused by a bad event: {letter}"));
        assert_eq!(letter["dlqtopic"], *topic, "{letter}");
        dead_topics.insert(*topic);
        let original = &originals[cause];
        let took = time_ms(&letter["time"]) - time_ms(&original["time"]);
        assert!(
            took >= MIN_BACKOFF_MS,
            "{topic} was dead-lettered {took} ms after it was published, before the backoff \
             ({MIN_BACKOFF_MS} ms) could have elapsed"
        );
    }
    assert_eq!(dead_topics.len(), BAD.len(), "{dead:#?}");

    let echoed = eventually("echo handles all its events", DEADLINE, async || {
        let out = server.events("bench.out.echo").await;
        if out.len() >= ECHO_EVENTS {
            Ok(out)
        } else {
            Err(format!("{} echoed", out.len()))
        }
    })
    .await;
    assert_eq!(echoed.len(), ECHO_EVENTS, "each echoed once");
    let ok = eventually("hostile handles its good events", DEADLINE, async || {
        let out = server.events("hostile.out.ok").await;
        if out.len() >= HOSTILE_OK_EVENTS {
            Ok(out)
        } else {
            Err(format!("{} handled", out.len()))
        }
    })
    .await;
    assert_eq!(ok.len(), HOSTILE_OK_EVENTS, "each handled once");

    let hostile = eventually(
        "the hostile handler's counters settle",
        DEADLINE,
        async || {
            let hostile = server.handler("hostile").await;
            if hostile["acked"] == HOSTILE_OK_EVENTS && hostile["queue_depth"] == 0 {
                Ok(hostile)
            } else {
                Err(hostile.to_string())
            }
        },
    )
    .await;
    assert_eq!(hostile["status"], "running", "{hostile}");
    assert_eq!(hostile["dead_letters"], BAD.len(), "{hostile}");
    assert_eq!(hostile["dead_lettered"], BAD.len(), "{hostile}");
    assert_eq!(
        hostile["retried"],
        2 * BAD.len(),
        "two retries per bad event: {hostile}"
    );
    for (topic, kind) in BAD {
        assert_eq!(
            hostile["traps"][kind], 3,
            "{topic} trapped as `{kind}` on each of its 3 attempts: {hostile}"
        );
    }
    assert!(
        hostile["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{hostile}"
    );
    let echo = server.handler("echo").await;
    assert_eq!(echo["acked"], ECHO_EVENTS, "{echo}");
    assert_eq!(echo["dead_letters"], 0, "{echo}");
    assert_eq!(echo["retried"], 0, "{echo}");
}

/// An event's `time` in milliseconds since the epoch.
fn time_ms(time: &Value) -> i64 {
    let text = time.as_str().unwrap_or_else(|| panic!("no time: {time}"));
    text.parse::<jiff::Timestamp>()
        .unwrap_or_else(|e| panic!("time {text:?}: {e}"))
        .as_millisecond()
}
