//! Deliveries through the dispatch loop: three relay handlers in a chain (`in` → `a` →
//! `b` → `c`) on a real sled broker in a temp dir, each delivery a fresh instance of the
//! relay component and an outbox commit. No HTTP: events are published to the broker in
//! batches, so the figure is the dispatch loop's own (lease, run, commit).
//!
//! `cargo bench -p choreo-dispatch --bench dispatch`
//!
//! - `relay_chain/strict` and `relay_chain/buffered`: 1,000 keyed events (64 keys)
//!   through the three relays, 3,000 deliveries per iteration; throughput in
//!   deliveries. Each relay has a concurrency of 8, as `choreo bench`'s do.
//! - `relay_chain/strict_warm`: the same, strict, with each relay keeping its instances
//!   for up to 1,000 deliveries (`deliveries_per_instance`) instead of a fresh one per
//!   delivery: the difference from `strict` is what fresh instances cost the chain.

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_broker::{Broker, Config, Durability, SledBroker};
use choreo_core::{Event, HandlerName, Topic};
use choreo_dispatch::{DispatchPlan, Dispatcher};
use choreo_host::{HandlerSettings, Host};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// The allocator the `choreo` binary runs with (`runtime/cli/src/main.rs`), so that the
/// figures are the server's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The relays: (handler name, consumes, publishes).
const RELAYS: [(&str, &str, &str); 3] = [
    ("relay-a", "chain.in", "chain.a"),
    ("relay-b", "chain.a", "chain.b"),
    ("relay-c", "chain.b", "chain.c"),
];
const EVENTS: u64 = 1_000;
const KEYS: u64 = 64;
const CONCURRENCY: usize = 8;
/// Events per publish call.
const PUBLISH_BATCH: u64 = 100;
/// How long one iteration may take before the bench gives up.
const ITERATION_DEADLINE: Duration = Duration::from_secs(60);

struct Chain {
    broker: Arc<dyn Broker>,
    dispatcher: Dispatcher,
    last: HandlerName,
    _dir: tempfile::TempDir,
}

async fn chain(
    host: &Host,
    relay: &[u8],
    durability: Durability,
    deliveries_per_instance: u32,
) -> Chain {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("broker"));
    config.durability = durability;
    let broker: Arc<dyn Broker> = Arc::new(SledBroker::open(config).unwrap());
    let dispatcher = Dispatcher::new(broker.clone());
    let component = host.compile("relay", relay).unwrap();
    for (name, subscribe, publish) in RELAYS {
        let config = BTreeMap::from([
            ("name".to_owned(), name.to_owned()),
            ("subscribe".to_owned(), subscribe.to_owned()),
            ("publish".to_owned(), publish.to_owned()),
        ]);
        let settings = HandlerSettings {
            config,
            deliveries_per_instance,
            ..Default::default()
        };
        let handler = host.load(name, &component, settings).await.unwrap();
        let plan = DispatchPlan {
            concurrency: CONCURRENCY,
            ..Default::default()
        };
        dispatcher.deploy(handler, plan).await.unwrap();
    }
    Chain {
        broker,
        dispatcher,
        last: HandlerName::new(RELAYS[2].0).unwrap(),
        _dir: dir,
    }
}

impl Chain {
    /// Publishes `EVENTS` keyed events and waits until the last relay has committed an
    /// output for each of them.
    async fn run(&self) -> Duration {
        let before = self.acked();
        let started = Instant::now();
        for first in (0..EVENTS).step_by(PUBLISH_BATCH as usize) {
            let batch = (first..first + PUBLISH_BATCH)
                .map(|n| {
                    let mut event = Event::new(
                        Topic::new("chain.in").unwrap(),
                        "bench://dispatch",
                        vec![7u8; 256],
                    );
                    event.key = Some(format!("key-{}", n % KEYS));
                    event
                })
                .collect();
            self.broker.publish(batch).await.unwrap();
        }
        let deadline = started + ITERATION_DEADLINE;
        while self.acked() < before + EVENTS {
            assert!(
                Instant::now() < deadline,
                "the chain did not finish in time"
            );
            // tokio's timer ticks every millisecond, so this polls at most a thousand
            // times a second.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        started.elapsed()
    }

    fn acked(&self) -> u64 {
        self.dispatcher
            .counters(&self.last)
            .map_or(0, |counters| counters.acked)
    }
}

fn relay_chain(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new().unwrap();
    let relay = std::fs::read(choreo_test_guests::RELAY).unwrap();
    let mut group = c.benchmark_group("relay_chain");
    group.throughput(Throughput::Elements(3 * EVENTS));
    group.sample_size(20);
    for (label, durability, deliveries_per_instance) in [
        ("strict", Durability::Strict, 1),
        ("buffered", Durability::Buffered, 1),
        ("strict_warm", Durability::Strict, 1000),
    ] {
        let chain = runtime.block_on(chain(&host, &relay, durability, deliveries_per_instance));
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                runtime.block_on(async {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += chain.run().await;
                    }
                    total
                })
            })
        });
        runtime.block_on(chain.dispatcher.shutdown(Duration::from_secs(10)));
    }
    group.finish();
}

criterion_group!(benches, relay_chain);
criterion_main!(benches);
