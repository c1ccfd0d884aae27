//! NATS JetStream side by side with `benches/broker.rs`, on the same machine and disk.
//!
//! Run with `cargo bench -p choreo-broker --bench jetstream` in the same session as the
//! broker benches (disk sync latency drifts within an hour, so only same-session ratios
//! mean much). Starts its own `nats-server -js` on a free loopback port with a fresh
//! store dir, and skips with a message when `nats-server` is not installed (Debian:
//! `apt-get install nats-server`). Groups mirror the broker's:
//! - `jetstream_publish/{1,16,256}`: publishes of 256-byte messages to a file-backed
//!   stream, each awaiting its ack, with that many publishers in flight. JetStream acks
//!   once the message is written, before any fsync (its default `sync_interval`), so
//!   compare it with the broker's buffered mode, and strict mode against it for the
//!   cost of an fsync before every ack.
//! - `jetstream_drain/100k`: a durable pull consumer with explicit acks drains 100,000
//!   stored messages, fetching up to 1,024 at a time and acking each.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use futures_util::StreamExt;

const DATA_BYTES: usize = 256;
const DRAIN: u64 = 100_000;

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server() -> Option<Server> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let child = match child {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("nats-server did not start: {e}"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "nats-server did not listen on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server {
        child,
        url: format!("nats://127.0.0.1:{port}"),
        _dir: dir,
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

async fn context(url: &str, name: &str, subject: &str) -> jetstream::Context {
    let client = async_nats::connect(url)
        .await
        .expect("connect to nats-server");
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: name.to_owned(),
        subjects: vec![subject.to_owned()],
        storage: stream::StorageType::File,
        ..Default::default()
    })
    .await
    .expect("create the stream");
    js
}

fn benches(c: &mut Criterion) {
    let Some(server) = start_server() else {
        eprintln!("SKIPPED: nats-server is not installed; `apt-get install nats-server`");
        return;
    };
    let rt = runtime();
    let js = rt.block_on(context(&server.url, "PUBLISH", "bench.publish"));
    let payload = bytes::Bytes::from(vec![7u8; DATA_BYTES]);

    let mut group = c.benchmark_group("jetstream_publish");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(6));
    for in_flight in [1u64, 16, 256] {
        group.bench_function(BenchmarkId::from_parameter(in_flight), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let js = js.clone();
                let payload = payload.clone();
                async move {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..in_flight)
                        .map(|i| {
                            let n = iters / in_flight + u64::from(i < iters % in_flight);
                            let js = js.clone();
                            let payload = payload.clone();
                            tokio::spawn(async move {
                                for _ in 0..n {
                                    js.publish("bench.publish", payload.clone())
                                        .await
                                        .expect("publish")
                                        .await
                                        .expect("publish ack");
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
    group.finish();

    let js = rt.block_on(async {
        let js = context(&server.url, "DRAIN", "bench.drain").await;
        let mut acks = Vec::new();
        for _ in 0..DRAIN {
            acks.push(
                js.publish("bench.drain", payload.clone())
                    .await
                    .expect("publish"),
            );
            if acks.len() == 1024 {
                for ack in acks.drain(..) {
                    ack.await.expect("publish ack");
                }
            }
        }
        for ack in acks {
            ack.await.expect("publish ack");
        }
        js
    });
    let mut group = c.benchmark_group("jetstream_drain");
    group.throughput(Throughput::Elements(DRAIN));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    let mut round = 0u32;
    group.bench_function("100k", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let js = js.clone();
            round += 1;
            let first = round;
            async move {
                let stream = js.get_stream("DRAIN").await.expect("the stream");
                let mut total = Duration::ZERO;
                for i in 0..iters {
                    let name = format!("drain-{first}-{i}");
                    let start = Instant::now();
                    let consumer = stream
                        .create_consumer(pull::Config {
                            durable_name: Some(name.clone()),
                            ack_policy: jetstream::consumer::AckPolicy::Explicit,
                            max_ack_pending: 4096,
                            ..Default::default()
                        })
                        .await
                        .expect("create the consumer");
                    let mut received = 0;
                    while received < DRAIN {
                        let mut batch = consumer
                            .fetch()
                            .max_messages(1024)
                            .messages()
                            .await
                            .expect("fetch");
                        while let Some(message) = batch.next().await {
                            message.expect("a message").ack().await.expect("ack");
                            received += 1;
                        }
                    }
                    total += start.elapsed();
                    stream
                        .delete_consumer(&name)
                        .await
                        .expect("delete the consumer");
                }
                total
            }
        })
    });
    group.finish();
    drop(server);
}

criterion_group!(jetstream_benches, benches);
criterion_main!(jetstream_benches);
