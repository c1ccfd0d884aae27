//! What a handler costs in each guest language, on the host alone: component size, cold
//! compile, load from the artifact cache, and one delivery (`handle` on one event, in a
//! fresh instance or a kept one).
//!
//! `cargo bench -p choreo-polyglot --bench languages`
//!
//! Two workloads: `echo`, the trivial handler written alike in each language (publish the
//! event back: the Rust `echo` guest, `py-echo`, `js-echo`), and `state`, the nearest
//! like-for-like stateful handlers the tests build (the Rust `counter`, a state read and
//! write; `py-counter` and `js-enricher`, JSON in, state reads and writes, one JSON
//! publish). Size, compile and cached-load times are measured once each and printed;
//! deliveries go through criterion as `delivery/<workload>/<language>/fresh` (a fresh
//! instance per delivery, the default) and `.../kept` (the handler keeps its instance
//! between deliveries: `deliveries_per_instance`).

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Instant;

use choreo_core::{Event, RecordedEvent, Topic};
use choreo_host::{HandlerSettings, Host, MemoryState, StateReader};
use criterion::{Criterion, criterion_group, criterion_main};

/// `deliveries_per_instance` of the `kept` variant of each delivery bench.
const KEPT_DELIVERIES: u32 = 10_000;

/// (workload, language, component, topic it handles, event data). `echo` is the trivial
/// handler, the same work in every language: publish the event back. `state` is the
/// nearest like-for-like stateful handler each language's tests build.
const GUESTS: &[(&str, &str, &str, &str, &str)] = &[
    (
        "echo",
        "rust",
        choreo_test_guests::ECHO,
        "bench.in",
        r#"{"id":"o-1"}"#,
    ),
    (
        "echo",
        "python",
        choreo_polyglot::PY_ECHO,
        "bench.in",
        r#"{"id":"o-1"}"#,
    ),
    (
        "echo",
        "javascript",
        choreo_polyglot::JS_ECHO,
        "bench.in",
        r#"{"id":"o-1"}"#,
    ),
    (
        "state",
        "rust",
        choreo_test_guests::COUNTER,
        "orders.created",
        r#"{"id":"o-1"}"#,
    ),
    (
        "state",
        "python",
        choreo_polyglot::PY_COUNTER,
        "py.in.order",
        r#"{"id":"o-1","qty":2}"#,
    ),
    (
        "state",
        "javascript",
        choreo_polyglot::JS_ENRICHER,
        "js.in.order",
        r#"{"id":"o-1","items":[{"price":250,"qty":2}]}"#,
    ),
];

fn benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let host = Host::new().unwrap();
    let state: Arc<dyn StateReader> = Arc::new(MemoryState::default());
    let mut group = c.benchmark_group("delivery");
    group.sample_size(30);
    for (workload, language, path, topic, data) in GUESTS {
        let wasm = std::fs::read(path).unwrap();
        let started = Instant::now();
        let component = host.compile(language, &wasm).unwrap();
        let compile = started.elapsed();
        let artifact = host.precompile(language, &component).unwrap();
        let started = Instant::now();
        // SAFETY: the artifact was made by this host just above.
        let cached = unsafe { host.load_precompiled(language, &artifact) }.unwrap();
        let load = started.elapsed();
        let fresh = runtime
            .block_on(host.load(language, &cached, HandlerSettings::default()))
            .unwrap();
        let kept_settings = HandlerSettings {
            deliveries_per_instance: KEPT_DELIVERIES,
            ..HandlerSettings::default()
        };
        let kept = runtime
            .block_on(host.load(language, &cached, kept_settings))
            .unwrap();
        eprintln!(
            "{workload}/{language}: component {:.1} MiB, cold compile {:.2} s, cached load {:.1} ms",
            wasm.len() as f64 / (1 << 20) as f64,
            compile.as_secs_f64(),
            load.as_secs_f64() * 1e3,
        );
        let event = RecordedEvent {
            seq: 1,
            event: Event::new(
                Topic::new(*topic).unwrap(),
                "bench://languages",
                data.as_bytes().to_vec(),
            ),
        };
        for (instances, handler) in [("fresh", &fresh), ("kept", &kept)] {
            group.bench_function(format!("{workload}/{language}/{instances}"), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iters {
                            let outcome = handler.handle(&event, 1, state.clone()).await;
                            assert!(outcome.result.is_ok(), "{language}: {:?}", outcome.result);
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(languages, benches);
criterion_main!(languages);
