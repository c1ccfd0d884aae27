//! What reading a structured or batch body costs, per event.
//!
//! `cargo bench -p choreo-cloudevents --bench parse`
//!
//! - `structured/one`: one CloudEvent object with an extension and about 300 bytes of
//!   JSON data, as `POST /v1/topics/{topic}` with `application/cloudevents+json` reads it.
//! - `batch/100`: an array of 100 such events, as batch mode reads it.

// Helpers outside #[test] functions panic on failure by design, like the tests.
#![allow(clippy::unwrap_used)]

use choreo_cloudevents::{Destination, parse_batch, parse_event};
use choreo_core::Topic;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn event(index: usize) -> String {
    format!(
        r#"{{"specversion": "1.0", "id": "order-{index}", "source": "/shop/checkout",
 "type": "com.example.order.created", "time": "2026-11-28T04:00:00Z",
 "datacontenttype": "application/json", "partitionkey": "customer-{key}", "priority": 3,
 "data": {{"order": {index}, "customer": "customer-{key}", "currency": "EUR",
  "lines": [{{"sku": "A-100", "quantity": 2, "price": 12.50}},
            {{"sku": "B-200", "quantity": 1, "price": 149.99}},
            {{"sku": "C-300", "quantity": 5, "price": 0.99}}],
  "shipping": {{"method": "standard", "address": "1 Example Street, 1000 Brussels"}},
  "note": "leave at the door \u00e9"}}}}"#,
        key = index % 64
    )
}

fn benches(c: &mut Criterion) {
    let topic = Topic::new("orders.created").unwrap();
    let destination = Destination::Path(&topic);
    let one = event(7);
    let batch = format!("[{}]", (0..100).map(event).collect::<Vec<_>>().join(",\n"));

    let mut group = c.benchmark_group("structured");
    group.throughput(Throughput::Elements(1));
    group.bench_function("one", |b| {
        b.iter(|| parse_event(one.as_bytes(), destination).unwrap())
    });
    group.finish();

    let mut group = c.benchmark_group("batch");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100", |b| {
        b.iter(|| parse_batch(batch.as_bytes(), destination, 1000).unwrap())
    });
    group.finish();
}

criterion_group!(parse, benches);
criterion_main!(parse);
