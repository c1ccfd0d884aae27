//! The dispatch loop against a real sled broker in a temp dir and real components.

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_broker::{Broker, Config, EventQuery, RetryPolicy, SledBroker, StateView};
use choreo_core::{Event, HandlerName, Pattern, RecordedEvent, Topic};
use choreo_dispatch::{DeleteError, DispatchPlan, Dispatcher};
use choreo_host::{HandlerSettings, Host, Limits, LoadedHandler};

struct Rig {
    broker: Arc<dyn Broker>,
    dispatcher: Dispatcher,
    host: Host,
    _dir: tempfile::TempDir,
}

fn rig() -> Rig {
    let dir = tempfile::tempdir().unwrap();
    let broker: Arc<dyn Broker> =
        Arc::new(SledBroker::open(Config::new(dir.path().join("broker"))).unwrap());
    Rig {
        dispatcher: Dispatcher::new(broker.clone()),
        broker,
        host: Host::new().unwrap(),
        _dir: dir,
    }
}

impl Rig {
    async fn load(&self, path: &str, limits: Limits) -> LoadedHandler {
        let component = self
            .host
            .compile(path, &std::fs::read(path).unwrap())
            .unwrap();
        self.host
            .load(
                path,
                &component,
                HandlerSettings {
                    limits,
                    config: Default::default(),
                    ..Default::default()
                },
            )
            .await
            .unwrap()
    }

    /// The `hostile` guest with a deadline long enough that its `hostile.loop` calls stay
    /// stuck for the whole of a test.
    async fn load_looping_hostile(&self) -> LoadedHandler {
        let limits = Limits {
            deadline: Duration::from_secs(20),
            ..Limits::default()
        };
        self.load(choreo_test_guests::HOSTILE, limits).await
    }

    /// The `echo` guest, deployed, once it has handled one event.
    async fn echo_with_one_output(&self) -> LoadedHandler {
        let echo = self.load(choreo_test_guests::ECHO, Limits::default()).await;
        self.dispatcher
            .deploy(echo.clone(), DispatchPlan::default())
            .await
            .unwrap();
        self.publish("bench.before", b"1").await;
        eventually("the first output", async || {
            (self.events("bench.out.echo").await.len() == 1).then_some(())
        })
        .await;
        echo
    }

    async fn publish(&self, topic: &str, data: &[u8]) -> Event {
        let event = Event::new(Topic::new(topic).unwrap(), "test://dispatch", data.to_vec());
        self.broker.publish(vec![event.clone()]).await.unwrap();
        event
    }

    async fn events(&self, pattern: &str) -> Vec<RecordedEvent> {
        let query = EventQuery {
            from_seq: 1,
            pattern: Some(Pattern::new(pattern).unwrap()),
            limit: 1000,
        };
        self.broker.read_events(query).await.unwrap().events
    }
}

/// Polls `check` until it returns `Some`, or fails after a generous deadline.
async fn eventually<T>(what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn name(text: &str) -> HandlerName {
    HandlerName::new(text).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_deliveries_commit_their_publishes_and_state_writes() {
    let rig = rig();
    let hostile = rig
        .load(choreo_test_guests::HOSTILE, Limits::default())
        .await;
    rig.dispatcher
        .deploy(hostile, DispatchPlan::default())
        .await
        .unwrap();
    let cause = rig.publish("hostile.ok", b"payload").await;
    rig.publish("hostile.state", b"remembered").await;

    let outputs = eventually("the published output", async || {
        let outputs = rig.events("hostile.out.ok").await;
        (!outputs.is_empty()).then_some(outputs)
    })
    .await;
    let output = &outputs[0].event;
    assert_eq!(output.causation_id.as_ref(), Some(&cause.id));
    assert_eq!(output.correlation_id, cause.correlation_id);
    assert_eq!(output.data, b"payload");
    let stored = eventually("the state write", async || {
        rig.broker
            .state_get(&name("hostile"), b"hostile.state", StateView::Durable)
            .await
            .unwrap()
    })
    .await;
    assert_eq!(stored, b"remembered");
    // The broker makes a commit readable slightly before it answers the committer, so
    // the dispatcher's counter may trail the state by a moment.
    eventually("both acks counted", async || {
        (rig.dispatcher.counters(&name("hostile")).unwrap().acked == 2).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_deliveries_are_retried_then_dead_lettered() {
    let rig = rig();
    let hostile = rig
        .load(choreo_test_guests::HOSTILE, Limits::default())
        .await;
    let retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        jitter: 0.0,
    };
    rig.dispatcher
        .deploy(
            hostile,
            DispatchPlan {
                retry,
                ..DispatchPlan::default()
            },
        )
        .await
        .unwrap();
    let doomed = rig.publish("hostile.trap", b"").await;

    let dead = eventually("the dead-letter", async || {
        let dead = rig
            .broker
            .dead_letters(&name("hostile"), None, 10)
            .await
            .unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead[0].event.event.id, doomed.id);
    assert_eq!(dead[0].attempts, 3);
    assert!(
        dead[0].reason().contains("unreachable"),
        "{}",
        dead[0].reason()
    );
    let published = rig.events("$dlq.hostile").await;
    assert_eq!(
        published.len(),
        1,
        "the dead-letter is published on $dlq.hostile"
    );
    // The worker counts the dead-letter once its commit returns, which may trail the
    // broker's answer to a reader by a moment.
    let counters = eventually("the dead-letter counted", async || {
        let counters = rig.dispatcher.counters(&name("hostile")).unwrap();
        (counters.dead_lettered == 1).then_some(counters)
    })
    .await;
    assert_eq!(counters.retried, 2);
    assert_eq!(counters.traps.get("unreachable"), Some(&3));
    assert!(
        counters
            .last_error
            .unwrap()
            .message
            .contains("handler `hostile`")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_event_is_dead_lettered_at_once() {
    let rig = rig();
    let hostile = rig
        .load(choreo_test_guests::HOSTILE, Limits::default())
        .await;
    rig.dispatcher
        .deploy(hostile, DispatchPlan::default())
        .await
        .unwrap();
    rig.publish("hostile.reject", b"").await;
    let dead = eventually("the dead-letter", async || {
        let dead = rig
            .broker
            .dead_letters(&name("hostile"), None, 10)
            .await
            .unwrap();
        (!dead.is_empty()).then_some(dead)
    })
    .await;
    assert_eq!(dead[0].attempts, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeploy_keeps_the_queue_and_a_redeploy_resumes_it() {
    let rig = rig();
    let echo = rig.echo_with_one_output().await;

    rig.dispatcher.undeploy(&name("echo")).await.unwrap();
    assert!(rig.dispatcher.running().await.is_empty());
    for i in 0..3 {
        rig.publish("bench.while-away", format!("{i}").as_bytes())
            .await;
    }
    let stats = rig.broker.stats(&name("echo")).await.unwrap();
    assert_eq!(
        stats.queue_depth, 3,
        "events published while undeployed stay queued"
    );
    assert_eq!(rig.events("bench.out.echo").await.len(), 1);

    rig.dispatcher
        .deploy(echo, DispatchPlan::default())
        .await
        .unwrap();
    eventually("the queued outputs", async || {
        (rig.events("bench.out.echo").await.len() == 4).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_is_deleted_only_once_undeployed_and_then_forgets_everything() {
    let rig = rig();
    let echo = rig.echo_with_one_output().await;
    assert!(matches!(
        rig.dispatcher.delete(&name("echo")).await,
        Err(DeleteError::Running { .. })
    ));

    rig.dispatcher.undeploy(&name("echo")).await.unwrap();
    for i in 0..3 {
        rig.publish("bench.while-away", format!("{i}").as_bytes())
            .await;
    }
    let deleted = rig.dispatcher.delete(&name("echo")).await.unwrap().unwrap();
    assert_eq!(deleted.queue_depth, 3);
    assert!(rig.dispatcher.counters(&name("echo")).is_none());
    assert!(rig.broker.handlers().await.unwrap().is_empty());
    assert!(
        rig.dispatcher
            .delete(&name("echo"))
            .await
            .unwrap()
            .is_none()
    );

    // Deployed again, it is a new subscriber: nothing of the deleted queue comes back.
    rig.dispatcher
        .deploy(echo, DispatchPlan::default())
        .await
        .unwrap();
    rig.publish("bench.after", b"2").await;
    eventually("the new output", async || {
        (rig.events("bench.out.echo").await.len() == 2).then_some(())
    })
    .await;
    let stats = rig.broker.stats(&name("echo")).await.unwrap();
    assert_eq!((stats.queue_depth, stats.dead_letters), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_handler_does_not_hold_up_another() {
    let rig = rig();
    let hostile = rig.load_looping_hostile().await;
    let echo = rig.load(choreo_test_guests::ECHO, Limits::default()).await;
    rig.dispatcher
        .deploy(hostile, DispatchPlan::default())
        .await
        .unwrap();
    rig.dispatcher
        .deploy(echo, DispatchPlan::default())
        .await
        .unwrap();
    rig.publish("hostile.loop", b"").await;
    eventually("hostile to be stuck in its loop", async || {
        (rig.broker.stats(&name("hostile")).await.unwrap().in_flight == 1).then_some(())
    })
    .await;
    for i in 0..20 {
        rig.publish("bench.meanwhile", format!("{i}").as_bytes())
            .await;
    }
    eventually("echo's outputs", async || {
        (rig.events("bench.out.echo").await.len() == 20).then_some(())
    })
    .await;
    assert_eq!(
        rig.dispatcher.counters(&name("hostile")).unwrap().acked,
        0,
        "hostile is still looping"
    );
    // Shutting down waits for the loop only as long as the grace period.
    assert!(!rig.dispatcher.shutdown(Duration::from_millis(100)).await);
}

/// A handler's concurrency bounds the calls running at once: with more keys waiting than
/// slots and every call stuck in a loop, exactly that many are in flight, though the
/// broker would lease one per waiting key, since it lets several rounds be in flight
/// while their commits are on their way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_bounds_the_calls_running_at_once() {
    let rig = rig();
    let hostile = rig.load_looping_hostile().await;
    let plan = DispatchPlan {
        concurrency: 3,
        ..DispatchPlan::default()
    };
    rig.dispatcher.deploy(hostile, plan).await.unwrap();
    let events = (0..8)
        .map(|n| {
            let mut event = Event::new(Topic::new("hostile.loop").unwrap(), "test://dispatch", []);
            event.key = Some(format!("key-{n}"));
            event
        })
        .collect();
    rig.broker.publish(events).await.unwrap();
    let in_flight = async || rig.broker.stats(&name("hostile")).await.unwrap().in_flight;
    eventually("three calls stuck in their loops", async || {
        (in_flight().await == 3).then_some(())
    })
    .await;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(
            in_flight().await,
            3,
            "no call beyond the handler's concurrency"
        );
    }
    assert!(!rig.dispatcher.shutdown(Duration::from_millis(100)).await);
}
