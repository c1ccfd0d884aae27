//! `choreo bench` end to end: it starts its own server (the same binary), runs every
//! phase against it with the relay component built from source, and reports figures.
//! What it measures is never asserted; that it measures, and reports what it measured,
//! is.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::harness::CHOREO;

/// A debug build on a loaded two-core machine: every phase, a few hundred events each.
const BENCH_DEADLINE: Duration = Duration::from_secs(300);

#[test]
fn bench_runs_every_phase_and_reports_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(CHOREO)
        .args(["bench", "--json", "--events", "300", "--connections", "4"])
        .env("CHOREO_BENCH_RELAY", choreo_test_guests::RELAY)
        .env_remove("CHOREO_BENCH_URL")
        .env_remove("CHOREO_BENCH_NATS")
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read both pipes as the bench writes them, so it never blocks on a full one.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > BENCH_DEADLINE {
            child.kill().unwrap();
            panic!("`choreo bench` ran past {BENCH_DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stdout = stdout.join().unwrap();
    let stderr = stderr.join().unwrap();
    assert!(
        status.success(),
        "{status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{stdout}\nstderr:\n{stderr}"));

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
    positive("/deploy/cached_ms");
    positive("/memory_kib/0");
    assert_eq!(report["events"], 300);
    assert_eq!(report["durability"], "strict");
    assert!(report["jetstream"].is_null(), "JetStream was not asked for");
}
