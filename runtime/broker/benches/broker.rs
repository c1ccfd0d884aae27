//! Criterion benchmarks of the embedded broker.
//!
//! Run with `cargo bench -p choreo-broker --bench broker`. Every store lives in a fresh
//! temp dir on the machine's disk. Events carry 256 bytes of data. Groups:
//! - `publish/{strict,buffered}/{1,16,256}`: durable publish throughput with that many
//!   publishers in flight, one event per call, no subscriber (pure append, as a
//!   JetStream stream without consumers).
//! - `publish_to_lease/{strict,buffered}`: time from calling publish to a waiting lease
//!   returning the event; p50 and p99 over 2,000 round trips are printed as well.
//! - `catch_up/100k`: a new subscription (start = earliest) drains 100,000 stored events:
//!   lease up to 1,024 at a time, commit their acks in one call, until all are acked.
//! - `matching/10k_subscriptions`: routing one topic through the pattern index holding
//!   10,000 handlers' patterns (the lookup every append does).
//! - `commit/2_publishes_2_state_writes/committers/{1,64}`: 1,000 commits, each of one
//!   ack that publishes two events and writes two state keys (strict), by one committer
//!   in turn or by 64 at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_broker::{
    Broker, Config, Delivery, Durability, Outcome, SledBroker, StartPosition, StateWrite,
    Subscription,
};
use choreo_core::{Event, HandlerName, Pattern, PatternIndex, Topic};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use tokio::runtime::Runtime;

const DATA_BYTES: usize = 256;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

fn event(topic: &str, key: Option<String>) -> Event {
    let mut e = Event::new(
        Topic::new(topic).expect("a valid topic"),
        "bench://publisher",
        vec![7u8; DATA_BYTES],
    );
    e.key = key;
    e
}

fn open(rt: &Runtime, durability: Durability) -> (tempfile::TempDir, Arc<SledBroker>) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut config = Config::new(dir.path());
    config.durability = durability;
    let broker = rt.block_on(async { SledBroker::open(config).expect("the store opens") });
    (dir, Arc::new(broker))
}

fn name(durability: Durability) -> &'static str {
    durability.as_str()
}

fn pattern(text: &str) -> Pattern {
    Pattern::new(text).expect("a valid pattern")
}

fn handler(name: &str) -> HandlerName {
    HandlerName::new(name).expect("a valid handler name")
}

fn publish(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("publish");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    for durability in [Durability::Strict, Durability::Buffered] {
        let (_dir, broker) = open(&rt, durability);
        for in_flight in [1u64, 16, 256] {
            let id = BenchmarkId::new(name(durability), in_flight);
            group.bench_function(id, |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let broker = broker.clone();
                    async move {
                        let start = Instant::now();
                        let tasks: Vec<_> = (0..in_flight)
                            .map(|i| {
                                let n = iters / in_flight + u64::from(i < iters % in_flight);
                                let broker = broker.clone();
                                tokio::spawn(async move {
                                    for _ in 0..n {
                                        broker
                                            .publish(vec![event("bench.publish", None)])
                                            .await
                                            .expect("publish");
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.expect("publisher task");
                        }
                        start.elapsed()
                    }
                })
            });
        }
    }
    group.finish();
}

/// A consumer that leases and acks everything, reporting when each event arrived.
fn consumer(
    broker: Arc<SledBroker>,
    arrived: tokio::sync::mpsc::UnboundedSender<Instant>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let h = handler("latency");
        loop {
            let Ok(deliveries) = broker
                .lease(&h, 64, Duration::from_secs(30), Duration::from_secs(5))
                .await
            else {
                return;
            };
            let now = Instant::now();
            let mut outcomes = Vec::new();
            for d in deliveries {
                if arrived.send(now).is_err() {
                    return;
                }
                outcomes.push(Outcome::ack(d.token, vec![], vec![]));
            }
            if !outcomes.is_empty() && broker.commit(outcomes).await.is_err() {
                return;
            }
        }
    })
}

fn publish_to_lease(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("publish_to_lease");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(5));
    for durability in [Durability::Strict, Durability::Buffered] {
        let (_dir, broker) = open(&rt, durability);
        let mut sub = Subscription::new(handler("latency"), vec![pattern("lat.>")]);
        sub.concurrency = 64;
        rt.block_on(broker.subscribe(sub)).expect("subscribe");
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let rx = Arc::new(tokio::sync::Mutex::new(rx));
        let task = {
            let _context = rt.enter();
            consumer(broker.clone(), tx)
        };
        let round_trip = {
            let broker = broker.clone();
            let rx = rx.clone();
            move || {
                let broker = broker.clone();
                let rx = rx.clone();
                async move {
                    let start = Instant::now();
                    broker
                        .publish(vec![event("lat.x", None)])
                        .await
                        .expect("publish");
                    let arrived = rx.lock().await.recv().await.expect("the consumer runs");
                    arrived.saturating_duration_since(start)
                }
            }
        };
        let mut samples: Vec<Duration> = rt.block_on(async {
            let mut samples = Vec::new();
            for _ in 0..2000 {
                samples.push(round_trip().await);
            }
            samples
        });
        samples.sort();
        println!(
            "publish_to_lease/{}: p50 {:?}, p99 {:?} over {} round trips",
            name(durability),
            samples[samples.len() / 2],
            samples[samples.len() * 99 / 100],
            samples.len()
        );
        group.bench_function(name(durability), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let round_trip = round_trip.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += round_trip().await;
                    }
                    total
                }
            })
        });
        task.abort();
    }
    group.finish();
}

const CATCH_UP_EVENTS: u64 = 100_000;

fn catch_up(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, broker) = open(&rt, Durability::Strict);
    rt.block_on(async {
        for chunk in 0..CATCH_UP_EVENTS / 1000 {
            let batch = (0..1000)
                .map(|i| {
                    event(
                        "bench.stored",
                        Some(format!("k{}", (chunk * 1000 + i) % 1024)),
                    )
                })
                .collect();
            broker.publish(batch).await.expect("publish");
        }
    });
    let mut group = c.benchmark_group("catch_up");
    group.throughput(Throughput::Elements(CATCH_UP_EVENTS));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut round = 0u32;
    group.bench_function("100k", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let broker = broker.clone();
            round += 1;
            let first = round;
            async move {
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let h = handler(&format!("catch-up-{first}-{i}"));
                    let start = Instant::now();
                    let mut sub = Subscription::new(h.clone(), vec![pattern("bench.>")]);
                    sub.start = StartPosition::Earliest;
                    sub.concurrency = 1024;
                    broker.subscribe(sub).await.expect("subscribe");
                    let mut acked = 0;
                    while acked < CATCH_UP_EVENTS {
                        let deliveries = broker
                            .lease(&h, 1024, Duration::from_secs(60), Duration::ZERO)
                            .await
                            .expect("lease");
                        acked += deliveries.len() as u64;
                        let outcomes = deliveries
                            .into_iter()
                            .map(|d| Outcome::ack(d.token, vec![], vec![]))
                            .collect();
                        broker.commit(outcomes).await.expect("commit");
                    }
                    total += start.elapsed();
                    broker.remove(&h).await.expect("remove");
                }
                total
            }
        })
    });
    group.finish();
}

fn matching(c: &mut Criterion) {
    let words = [
        "orders", "payments", "users", "stock", "created", "paid", "eu", "us", "asia",
    ];
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let pick = |rng: &mut rand::rngs::StdRng| words[rng.random_range(0..words.len())];
    let mut index = PatternIndex::new();
    for i in 0..10_000 {
        let mut tokens: Vec<String> = (0..rng.random_range(2..5))
            .map(|_| {
                if rng.random_bool(0.15) {
                    "*".to_owned()
                } else {
                    format!("{}{}", pick(&mut rng), rng.random_range(0..20))
                }
            })
            .collect();
        if rng.random_bool(0.1) {
            tokens.push(">".into());
        }
        let pattern = Pattern::new(tokens.join(".")).expect("a valid pattern");
        index.insert(&pattern, handler(&format!("h{i}")));
    }
    let topics: Vec<Topic> = (0..1000)
        .map(|_| {
            let tokens: Vec<String> = (0..rng.random_range(2..5))
                .map(|_| format!("{}{}", pick(&mut rng), rng.random_range(0..20)))
                .collect();
            Topic::new(tokens.join(".")).expect("a valid topic")
        })
        .collect();
    let matched: usize = topics.iter().map(|t| index.matching(t).len()).sum();
    println!(
        "matching: {} subscriptions matched on average",
        matched / topics.len()
    );
    let mut group = c.benchmark_group("matching");
    group.throughput(Throughput::Elements(1));
    let mut next = 0;
    group.bench_function("10k_subscriptions", |b| {
        b.iter(|| {
            next = (next + 1) % topics.len();
            index.matching(&topics[next])
        })
    });
    group.finish();
}

/// Commits timed per run: enough that 64 committers form full groups.
const COMMITS_PER_RUN: usize = 1000;

/// Publishes and leases `n` deliveries for the committer (untimed set-up).
async fn leased(broker: &SledBroker, h: &HandlerName, n: usize) -> Vec<Delivery> {
    let batch = (0..n)
        .map(|i| event("in.x", Some(format!("k{i}"))))
        .collect();
    broker.publish(batch).await.expect("publish");
    let mut deliveries = Vec::new();
    while deliveries.len() < n {
        let more = broker
            .lease(h, 1024, Duration::from_secs(600), Duration::ZERO)
            .await
            .expect("lease");
        deliveries.extend(more);
    }
    // Lease records reach the writer without a reply; let them land before the clock
    // starts, so only commits are timed.
    broker.flush().await.expect("flush");
    deliveries
}

fn ack_with_outbox(d: Delivery) -> Outcome {
    let seq = d.event.seq;
    let write = |name: &str| StateWrite {
        key: format!("{name}/{seq}").into_bytes(),
        value: Some(vec![1; 64]),
    };
    Outcome::ack(
        d.token,
        vec![event("out.a", None), event("out.b", None)],
        vec![write("a"), write("b")],
    )
}

fn commit(c: &mut Criterion) {
    let rt = runtime();
    let (_dir, broker) = open(&rt, Durability::Strict);
    let h = handler("committer");
    let mut sub = Subscription::new(h.clone(), vec![pattern("in.>")]);
    sub.concurrency = 4096;
    rt.block_on(broker.subscribe(sub)).expect("subscribe");
    let mut group = c.benchmark_group("commit/2_publishes_2_state_writes");
    group.throughput(Throughput::Elements(COMMITS_PER_RUN as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for committers in [1usize, 64] {
        group.bench_function(BenchmarkId::new("committers", committers), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let broker = broker.clone();
                let h = h.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let mut deliveries = leased(&broker, &h, COMMITS_PER_RUN).await;
                        let start = Instant::now();
                        let chunk = COMMITS_PER_RUN.div_ceil(committers);
                        let mut tasks = Vec::new();
                        while !deliveries.is_empty() {
                            let mine: Vec<_> =
                                deliveries.drain(..chunk.min(deliveries.len())).collect();
                            let broker = broker.clone();
                            tasks.push(tokio::spawn(async move {
                                for d in mine {
                                    let outcome = ack_with_outbox(d);
                                    broker.commit(vec![outcome]).await.expect("commit");
                                }
                            }));
                        }
                        for task in tasks {
                            task.await.expect("committer task");
                        }
                        total += start.elapsed();
                    }
                    total
                }
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    publish,
    publish_to_lease,
    catch_up,
    matching,
    commit
);
criterion_main!(benches);
