//! Strict durability really syncs: run a child (this binary again) under strace and count
//! its fdatasync calls. sled's `flush()` alone would show none (it uses sync_file_range).
//! Skipped, with a message, only when strace is not installed.

use std::process::Command;

use choreo_broker::{Broker, Config, Durability, SledBroker};

use crate::event;

const CHILD_ENV: &str = "CHOREO_BROKER_SYNC_CHILD";
const PUBLISHES: usize = 25;

/// The child: opens a store in the given mode and publishes one event at a time.
#[test]
fn sync_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (mode, dir) = spec.split_once(':').unwrap();
    let mut config = Config::new(dir);
    config.durability = if mode == "strict" {
        Durability::Strict
    } else {
        Durability::Buffered
    };
    config.sync_interval = std::time::Duration::from_secs(3600);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = SledBroker::open(config).unwrap();
        for _ in 0..PUBLISHES {
            broker.publish(vec![event("a")]).await.unwrap();
        }
    });
}

fn fdatasyncs(mode: &str) -> Option<usize> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let store = dir.path().join("store");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fdatasync", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "durability::sync_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", store.display()))
        .status();
    let status = match status {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        other => other.unwrap(),
    };
    assert!(status.success(), "the traced child failed in {mode} mode");
    let text = std::fs::read_to_string(trace).unwrap();
    Some(text.lines().filter(|l| l.contains("fdatasync(")).count())
}

#[test]
fn strict_mode_fdatasyncs_before_every_acknowledgement() {
    let Some(strict) = fdatasyncs("strict") else {
        eprintln!("SKIPPED: strace is not installed; install it to check fdatasync calls");
        return;
    };
    let buffered = fdatasyncs("buffered").expect("strace ran once already");
    eprintln!("fdatasync calls for {PUBLISHES} publishes: strict {strict}, buffered {buffered}");
    // Sequential publishes each form their own group, so each needs its own sync.
    assert!(
        strict >= PUBLISHES,
        "strict: {strict} fdatasync calls for {PUBLISHES} publishes"
    );
    assert!(
        buffered < PUBLISHES / 4,
        "buffered mode should leave syncing to the background: {buffered} calls"
    );
}
