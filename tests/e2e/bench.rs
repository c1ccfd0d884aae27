//! `choreo bench` end to end: it starts its own server (the same binary), runs every
//! phase against it with the relay component built from source, and reports figures.
//! What it measures is never asserted; that it measures, and reports what it measured,
//! is.

use std::time::Duration;

use serde_json::Value;

use crate::cli::run_choreo;

/// A debug build on a loaded two-core machine: every phase, a few hundred events each.
const BENCH_DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn bench_runs_every_phase_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let run = run_choreo(
        dir.path(),
        &[
            "bench",
            "--json",
            "--events",
            "300",
            "--connections",
            "4",
            "--deliveries-per-instance",
            "50",
            "--concurrency",
            "16",
        ],
        &[("CHOREO_BENCH_RELAY", choreo_test_guests::RELAY)],
        BENCH_DEADLINE,
    );
    assert!(run.ok, "{run}");
    let report: Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {run}"));

    let positive = |pointer: &str| {
        let value = report.pointer(pointer).and_then(Value::as_f64);
        assert!(
            value.is_some_and(|v| v > 0.0),
            "{pointer} is {value:?} in {report:#}"
        );
    };
    positive("/ingress/events_per_s");
    positive("/ingress/latency/p50_us");
    positive("/batch/events_per_s");
    positive("/chain/deliveries_per_s");
    positive("/chain/to_final_emit/p50_us");
    positive("/start_latency/p50_us");
    positive("/start_latency_back_to_back/p50_us");
    positive("/deploy/cached_ms");
    positive("/memory_kib/0");
    assert_eq!(report["events"], 300);
    assert_eq!(report["chain"]["deliveries_per_instance"], 50);
    assert_eq!(report["chain"]["concurrency"], 16);
    assert_eq!(report["durability"], "strict");
    assert!(report["jetstream"].is_null(), "JetStream was not asked for");
}
