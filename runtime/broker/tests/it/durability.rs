//! Strict durability really syncs: run a child (this binary again) under strace and count
//! the calls that put data on the disk: fdatasync, and writes to a file opened with
//! `O_DSYNC` (the write-ahead log's direct writes). sled's `flush()` alone would show
//! none (it uses sync_file_range). Skipped, with a message, only when strace is not
//! installed.

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

/// The child's calls, in `mode`, that each put data on the disk before returning.
fn syncing_calls(mode: &str) -> Option<usize> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let store = dir.path().join("store");
    let status = Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=fdatasync,openat,pwrite64", "-o"])
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
    Some(count_syncing_calls(
        &std::fs::read_to_string(trace).unwrap(),
    ))
}

/// fdatasync calls, plus writes to a descriptor that an `openat` with `O_DSYNC` returned
/// (strace lines, each `PID call(args) = result`).
fn count_syncing_calls(trace: &str) -> usize {
    let mut dsync_fds = std::collections::HashSet::new();
    let mut count = 0;
    for line in trace.lines() {
        let call = line
            .split_once(' ')
            .map_or(line, |(_, call)| call)
            .trim_start();
        if call.starts_with("fdatasync(") {
            count += 1;
        } else if call.starts_with("openat(") && call.contains("O_DSYNC") {
            if let Some(fd) = call
                .rsplit("= ")
                .next()
                .and_then(|fd| fd.trim().parse::<u32>().ok())
            {
                dsync_fds.insert(fd);
            }
        } else if let Some(args) = call.strip_prefix("pwrite64(") {
            let fd = args.split(',').next().and_then(|fd| fd.parse::<u32>().ok());
            if fd.is_some_and(|fd| dsync_fds.contains(&fd)) {
                count += 1;
            }
        }
    }
    count
}

#[test]
fn strict_mode_syncs_before_every_acknowledgement() {
    let Some(strict) = syncing_calls("strict") else {
        eprintln!("SKIPPED: strace is not installed; install it to check the syncing calls");
        return;
    };
    let buffered = syncing_calls("buffered").expect("strace ran once already");
    eprintln!("syncing calls for {PUBLISHES} publishes: strict {strict}, buffered {buffered}");
    // Sequential publishes each form their own group, so each needs its own sync.
    assert!(
        strict >= PUBLISHES,
        "strict: {strict} syncing calls for {PUBLISHES} publishes"
    );
    assert!(
        buffered < PUBLISHES / 4,
        "buffered mode should leave syncing to the background: {buffered} calls"
    );
}

#[test]
fn syncing_calls_are_fdatasyncs_and_writes_to_dsync_files() {
    let trace = "\
10 openat(AT_FDCWD, \"/s/wal/1.wal\", O_WRONLY|O_CREAT|O_DSYNC|O_DIRECT|O_CLOEXEC, 0666) = 7
10 openat(AT_FDCWD, \"/s/db\", O_RDWR|O_CREAT|O_CLOEXEC, 0666) = 8
11 pwrite64(7, \"\\0\\0\"..., 4096, 0) = 4096
11 pwrite64(8, \"abc\", 3, 0) = 3
11 fdatasync(8) = 0
11 pwrite64(7, \"\\1\\0\"..., 8192, 4096) = 8192
";
    assert_eq!(count_syncing_calls(trace), 3);
}
