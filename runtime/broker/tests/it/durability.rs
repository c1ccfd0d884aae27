//! Strict durability really syncs: run a child (this binary again) under strace and count
//! the calls that put data on the disk: fdatasync, and writes to a file opened with
//! `O_DSYNC` (the write-ahead log's direct writes). sled's `flush()` alone would show
//! none (it uses sync_file_range). Skipped, with a message, only when strace is not
//! installed.
//!
//! The same runs on a file system that refuses direct I/O (ramfs, mounted in a user and
//! mount namespace of the test's own), where strict mode must fall back to the page
//! cache and fdatasync. Skipped, with a message, where `unshare` cannot make one.

use std::process::Command;

use choreo_broker::{Broker, Config, Durability, EventQuery, SledBroker};

use crate::event;

const CHILD_ENV: &str = "CHOREO_BROKER_SYNC_CHILD";
/// Set for a child that must also close its store, reopen it and read every event back.
const READ_BACK_ENV: &str = "CHOREO_BROKER_SYNC_READ_BACK";
const PUBLISHES: usize = 25;

/// The child: opens a store in the given mode and publishes one event at a time; with
/// [`READ_BACK_ENV`], then closes the store, opens it again and reads every event back.
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
        let broker = SledBroker::open(config.clone()).unwrap();
        for _ in 0..PUBLISHES {
            broker.publish(vec![event("a")]).await.unwrap();
        }
        if std::env::var_os(READ_BACK_ENV).is_none() {
            return;
        }
        broker.close().await.unwrap();
        drop(broker);
        let reopened = SledBroker::open(config).unwrap();
        let query = EventQuery {
            from_seq: 1,
            pattern: None,
            limit: 2 * PUBLISHES,
        };
        let read = reopened.read_events(query).await.unwrap().events;
        assert_eq!(read.len(), PUBLISHES, "events read back after reopening");
    });
}

/// Where the traced child keeps its store.
#[derive(Clone, Copy)]
enum Storage {
    /// A temp dir on the file system the tests run on.
    TempDir,
    /// A ramfs, which refuses `O_DIRECT`, mounted over the store's dir in a user and
    /// mount namespace made for the child.
    Ramfs,
}

/// The child's strace output (`fdatasync`, `openat` and `pwrite64` calls) in `mode`, with
/// its store on `storage`; `None` when strace is not installed (checked by the caller
/// for [`Storage::Ramfs`], where the shell would run it).
fn traced_child(mode: &str, storage: Storage) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let store = dir.path().join("store");
    let mut command = match storage {
        Storage::TempDir => Command::new("strace"),
        Storage::Ramfs => {
            std::fs::create_dir(&store).unwrap();
            let mut unshare = Command::new("unshare");
            unshare
                .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
                .arg(r#"mount -t ramfs ramfs "$0" && exec strace "$@""#)
                .arg(&store);
            unshare
        }
    };
    command
        .args(["-f", "-qq", "-e", "trace=fdatasync,openat,pwrite64", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "durability::sync_child",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, format!("{mode}:{}", store.display()));
    if let Storage::Ramfs = storage {
        command.env(READ_BACK_ENV, "1");
    }
    let status = match command.status() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        other => other.unwrap(),
    };
    assert!(status.success(), "the traced child failed in {mode} mode");
    Some(std::fs::read_to_string(trace).unwrap())
}

/// The child's calls, in `mode`, that each put data on the disk before returning.
fn syncing_calls(mode: &str) -> Option<usize> {
    traced_child(mode, Storage::TempDir).map(|trace| count_syncing_calls(&trace))
}

/// Whether this machine lets a test mount a ramfs in a user and mount namespace of its
/// own (`unshare` is installed and unprivileged user namespaces are allowed).
fn ramfs_available() -> bool {
    let dir = tempfile::tempdir().unwrap();
    Command::new("unshare")
        .args(["--user", "--map-root-user", "--mount", "sh", "-c"])
        .arg(r#"mount -t ramfs ramfs "$0""#)
        .arg(dir.path())
        .output()
        .is_ok_and(|output| output.status.success())
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

/// On a file system that refuses direct I/O, strict mode still puts every publish on
/// the disk before answering, with fdatasync, and what it wrote reads back.
#[test]
fn strict_mode_falls_back_to_fdatasync_where_direct_io_is_refused() {
    if Command::new("strace").arg("-V").output().is_err() {
        eprintln!("SKIPPED: strace is not installed; install it to check the syncing calls");
        return;
    }
    if !ramfs_available() {
        eprintln!("SKIPPED: `unshare` cannot mount a ramfs in a namespace here");
        return;
    }
    let trace = traced_child("strict", Storage::Ramfs).expect("strace is installed");
    let refused = trace
        .lines()
        .filter(|line| line.contains("O_DIRECT") && line.contains("EINVAL"))
        .count();
    assert!(
        refused > 0,
        "the child never had O_DIRECT refused, so the fallback was not exercised:\n{trace}"
    );
    let fdatasyncs = trace.lines().filter(|l| l.contains("fdatasync(")).count();
    eprintln!("on ramfs, strict: {fdatasyncs} fdatasyncs for {PUBLISHES} publishes");
    assert!(
        fdatasyncs >= PUBLISHES,
        "strict on ramfs: {fdatasyncs} fdatasyncs for {PUBLISHES} publishes"
    );
    assert_eq!(
        count_syncing_calls(&trace),
        fdatasyncs,
        "no write may go to a file opened with O_DSYNC after the fallback"
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
