//! Kept instances (`deliveries_per_instance`): what a handler keeps between deliveries,
//! when the host throws an instance away, and that idle instances never hold a pool
//! slot another handler needs. The `hostile` guest's `hostile.count` publishes how many
//! such events its instance has handled, so a test can see which instance ran. Also:
//! a fresh instance's pool slot comes back only when the caller drops it, and starts
//! clean however its memory is reset.

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use choreo_core::{Event, RecordedEvent, Topic};
use choreo_host::{
    Error, Failure, HandlerSettings, Host, Limits, LoadedHandler, MAX_DELIVERIES_PER_INSTANCE,
    MemoryReset, MemoryState, PoolConfig, ResetMode,
};
use choreo_test_guests as guests;

fn host() -> &'static Host {
    static HOST: OnceLock<Host> = OnceLock::new();
    HOST.get_or_init(|| Host::new().expect("engine builds"))
}

async fn load_on(host: &Host, per_instance: u32, limits: Limits) -> LoadedHandler {
    try_load_on(host, per_instance, limits).await.unwrap()
}

async fn try_load_on(
    host: &Host,
    per_instance: u32,
    limits: Limits,
) -> Result<LoadedHandler, Error> {
    let wasm = std::fs::read(guests::HOSTILE).unwrap();
    let component = host.compile("hostile", &wasm)?;
    let settings = HandlerSettings {
        limits,
        deliveries_per_instance: per_instance,
        ..Default::default()
    };
    host.load("hostile", &component, settings).await
}

/// Handles one `topic` event; for `hostile.count`, returns what the instance counted.
async fn deliver(handler: &LoadedHandler, topic: &str) -> Result<Option<u64>, Failure> {
    let event = RecordedEvent {
        seq: 1,
        event: Event::new(Topic::new(topic).unwrap(), "test://warm", Vec::new()),
    };
    let outcome = handler
        .handle(&event, 1, Arc::new(MemoryState::default()))
        .await;
    outcome.result.map_err(|e| e.failure)?;
    Ok(outcome.publishes.first().map(|published| {
        std::str::from_utf8(&published.data)
            .unwrap()
            .parse()
            .unwrap()
    }))
}

async fn counts(handler: &LoadedHandler, deliveries: usize) -> Vec<u64> {
    let mut seen = Vec::new();
    for _ in 0..deliveries {
        seen.push(deliver(handler, "hostile.count").await.unwrap().unwrap());
    }
    seen
}

#[tokio::test]
async fn by_default_every_delivery_gets_a_fresh_instance() {
    let handler = load_on(host(), 1, Limits::default()).await;
    assert_eq!(counts(&handler, 4).await, [1, 1, 1, 1]);
}

#[tokio::test]
async fn a_kept_instance_serves_its_share_then_is_replaced() {
    let handler = load_on(host(), 3, Limits::default()).await;
    assert_eq!(counts(&handler, 7).await, [1, 2, 3, 1, 2, 3, 1]);
}

#[tokio::test]
async fn a_guest_that_answers_retry_or_reject_keeps_its_instance() {
    let handler = load_on(host(), 100, Limits::default()).await;
    assert_eq!(counts(&handler, 2).await, [1, 2]);
    assert!(matches!(
        deliver(&handler, "hostile.retry").await,
        Err(Failure::Retry(_))
    ));
    assert!(matches!(
        deliver(&handler, "hostile.reject").await,
        Err(Failure::Reject(_))
    ));
    assert_eq!(counts(&handler, 1).await, [3]);
}

#[tokio::test]
async fn a_trap_a_deadline_or_a_refused_memory_grow_discards_the_instance() {
    let limits = Limits {
        deadline: Duration::from_millis(200),
        max_memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let handler = load_on(host(), 100, limits).await;
    assert_eq!(counts(&handler, 2).await, [1, 2]);
    for topic in ["hostile.trap", "hostile.loop", "hostile.memory"] {
        let failed = deliver(&handler, topic).await;
        assert!(
            matches!(failed, Err(Failure::Trap { .. })),
            "{topic}: {failed:?}"
        );
        assert_eq!(
            counts(&handler, 2).await,
            [1, 2],
            "after {topic}, a fresh instance"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_share_a_few_kept_instances_without_losing_count() {
    let handler = load_on(host(), 1000, Limits::default()).await;
    // Ten callers at once, five deliveries each. Each instance counts 1, 2, 3… over its
    // life, so across all of them there are as many 1s as instances made (at most one
    // per caller: instances are kept and reused, not made per call), no count is skipped,
    // and no count is seen more often than the one before it.
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let handler = handler.clone();
            tokio::spawn(async move { counts(&handler, 5).await })
        })
        .collect();
    let mut per_count = std::collections::BTreeMap::<u64, usize>::new();
    for call in calls {
        for count in call.await.unwrap() {
            *per_count.entry(count).or_default() += 1;
        }
    }
    let histogram: Vec<usize> = per_count.values().copied().collect();
    assert_eq!(histogram.iter().sum::<usize>(), 50, "{per_count:?}");
    assert!((1..=10).contains(&histogram[0]), "{per_count:?}");
    assert!(histogram.windows(2).all(|w| w[0] >= w[1]), "{per_count:?}");
    assert_eq!(
        per_count.keys().copied().collect::<Vec<_>>(),
        (1..=per_count.len() as u64).collect::<Vec<_>>()
    );
}

/// A host whose pool has room for one instance at a time.
fn one_slot_host() -> Host {
    Host::with_pool(PoolConfig {
        max_instances: 1,
        ..PoolConfig::default()
    })
    .unwrap()
}

/// Both ways of resetting a spent memory (`MemoryReset`) give the next instance in the
/// same slot a clean one, even after a guest grew its memory to the limit.
#[tokio::test]
async fn a_reused_slot_starts_clean_whichever_way_memory_is_reset() {
    for reset in [MemoryReset::Auto, MemoryReset::Decommit] {
        let host = Host::with_pool(PoolConfig {
            max_instances: 1,
            memory_reset: reset,
            ..PoolConfig::default()
        })
        .unwrap();
        if reset == MemoryReset::Decommit {
            assert_eq!(host.memory_reset(), ResetMode::Decommit);
        }
        let limits = Limits {
            max_memory_bytes: 16 << 20,
            ..Limits::default()
        };
        let handler = load_on(&host, 1, limits).await;
        for _ in 0..3 {
            assert_eq!(counts(&handler, 3).await, [1, 1, 1], "{reset:?}");
            let bomb = deliver(&handler, "hostile.memory").await;
            assert!(
                matches!(bomb, Err(Failure::Trap { .. })),
                "{reset:?}: {bomb:?}"
            );
        }
    }
}

#[tokio::test]
async fn idle_instances_give_their_pool_slots_back() {
    // One slot in the whole host: a handler that keeps its idle instance holds it, and
    // another handler must still get to run.
    let host = one_slot_host();
    let first = load_on(&host, 100, Limits::default()).await;
    let second = load_on(&host, 100, Limits::default()).await;
    let run = async {
        assert_eq!(counts(&first, 2).await, [1, 2]);
        assert_eq!(counts(&second, 2).await, [1, 2]);
        // The first handler's instance was given up for the second's.
        assert_eq!(counts(&first, 1).await, [1]);
    };
    tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("an idle instance never blocks a call of another handler");
}

#[tokio::test]
async fn a_spent_instance_holds_its_pool_slot_until_the_caller_drops_it() {
    // One slot, fresh instances: the slot comes back with the outcome's spent instance.
    let host = one_slot_host();
    let handler = load_on(&host, 1, Limits::default()).await;
    let event = RecordedEvent {
        seq: 1,
        event: Event::new(Topic::new("hostile.ok").unwrap(), "test://warm", Vec::new()),
    };
    let state = Arc::new(MemoryState::default());
    let mut held = handler.handle(&event, 1, state.clone()).await;
    held.result.unwrap();
    assert!(held.spent.is_some(), "a fresh instance is handed back");
    let next = handler.handle(&event, 1, state.clone());
    tokio::pin!(next);
    assert!(
        tokio::time::timeout(Duration::from_millis(200), &mut next)
            .await
            .is_err(),
        "a second call ran while the first one's instance still held the only slot"
    );
    drop(held.spent.take());
    let outcome = tokio::time::timeout(Duration::from_secs(30), next)
        .await
        .expect("dropping the spent instance frees its slot");
    outcome.result.unwrap();
}

#[tokio::test]
async fn a_share_above_the_ceiling_is_refused() {
    let refused = try_load_on(host(), MAX_DELIVERIES_PER_INSTANCE + 1, Limits::default()).await;
    let err = refused.unwrap_err().to_string();
    assert!(err.contains("deliveries_per_instance"), "{err}");
}
