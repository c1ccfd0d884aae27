//! What one delivery costs on the host, and what loading a component costs.
//!
//! `cargo bench -p choreo-host --bench delivery`
//!
//! - `delivery/echo_256B`: a fresh instance + `handle` on a 256-byte event + one publish,
//!   exactly what the dispatch loop does per event (state reader included).
//! - `query/echo`: a fresh instance + `query` reading one state key.
//! - `load/compile_echo` and `load/precompiled_echo`: compiling the component from its
//!   binary, and loading it from a precompiled artifact (the deploy cache path).

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use choreo_core::{Event, RecordedEvent, Topic};
use choreo_host::{HandlerSettings, Host, MemoryState, QueryRequest, StateReader};
use criterion::{Criterion, criterion_group, criterion_main};

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new().unwrap();
    let wasm = std::fs::read(choreo_test_guests::ECHO).unwrap();
    let component = host.compile("echo", &wasm).unwrap();
    let echo = runtime
        .block_on(host.load("echo", &component, HandlerSettings::default()))
        .unwrap();
    let event = RecordedEvent {
        seq: 1,
        event: Event::new(
            Topic::new("bench.ping").unwrap(),
            "bench://host",
            vec![7u8; 256],
        ),
    };
    let mut state = MemoryState::default();
    state.0.insert("k".into(), b"v".to_vec());
    let state: Arc<dyn StateReader> = Arc::new(state);

    c.bench_function("delivery/echo_256B", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let outcome = echo.handle(&event, 1, state.clone()).await;
                    assert_eq!(outcome.publishes.len(), 1);
                }
                started.elapsed()
            })
        })
    });

    let request = QueryRequest {
        method: "GET".into(),
        path: "/k".into(),
        ..Default::default()
    };
    c.bench_function("query/echo", |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let started = Instant::now();
                for _ in 0..iters {
                    let response = echo.query(&request, state.clone()).await.unwrap();
                    assert_eq!(response.status, 200);
                }
                started.elapsed()
            })
        })
    });

    let mut load = c.benchmark_group("load");
    load.sample_size(10)
        .measurement_time(Duration::from_secs(5));
    load.bench_function("compile_echo", |b| {
        b.iter(|| host.compile("echo", &wasm).unwrap())
    });
    let artifact = host.precompile("echo", &component).unwrap();
    load.bench_function("precompiled_echo", |b| {
        // SAFETY: the artifact was made by this host just above.
        b.iter(|| unsafe { host.load_precompiled("echo", &artifact) }.unwrap())
    });
    load.finish();
}

criterion_group!(delivery, benches);
criterion_main!(delivery);
