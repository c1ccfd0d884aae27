//! The write-ahead log: acknowledged groups come back from it alone, checkpoints keep it
//! short, a clean close leaves nothing to replay, and damage is told apart from a crash.
//!
//! A killed broker is a child process (this test binary again, running `wal_child`) that
//! publishes, reports, and waits to be killed with SIGKILL before any checkpoint is due.
//! sled writes most of its batches out on its own, so the killed store itself may need
//! little from the log; the log is also replayed alone into an empty store, which must
//! then hold every event.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use choreo_broker::{Broker, Config, Error, SledBroker};

use crate::{Store, event, whole_log, with_id};

const CHILD_ENV: &str = "CHOREO_BROKER_WAL_CHILD";
const CHILD_EVENTS: usize = 300;

/// The child: publishes [`CHILD_EVENTS`] events one by one in strict mode, says so, and
/// waits to be killed. Runs only when started by a test below.
#[test]
fn wal_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let broker = SledBroker::open(Config::new(dir)).unwrap();
        for i in 0..CHILD_EVENTS {
            broker
                .publish(vec![with_id("wal.test", &format!("e-{i}"))])
                .await
                .unwrap();
        }
        let mut out = std::io::stdout().lock();
        writeln!(out, "@@ published").unwrap();
        out.flush().unwrap();
        std::thread::sleep(std::time::Duration::from_secs(600));
    });
}

/// Runs the child on `dir` until it has published, then kills it with SIGKILL.
fn publish_then_kill(dir: &Path) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "wal::wal_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    // libtest may have started the line with the test's name.
    let published = stdout
        .lines()
        .map(Result::unwrap)
        .any(|line| line.ends_with("@@ published"));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(published, "the child ended before it published");
}

fn segments(store: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(store.join("wal"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "wal"))
        .collect();
    found.sort();
    found
}

async fn ids(broker: &SledBroker) -> Vec<String> {
    whole_log(broker)
        .await
        .into_iter()
        .map(|e| e.event.id.to_string())
        .collect()
}

fn expected_ids() -> Vec<String> {
    (0..CHILD_EVENTS).map(|i| format!("e-{i}")).collect()
}

#[test]
fn a_killed_broker_gets_every_acknowledged_event_back_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    publish_then_kill(dir.path());
    let logged = segments(dir.path());
    assert_eq!(logged.len(), 1, "one segment, no checkpoint: {logged:?}");
    assert!(std::fs::metadata(&logged[0]).unwrap().len() > 0);

    // The log alone: only its segment, copied into an empty store.
    let alone = tempfile::tempdir().unwrap();
    std::fs::create_dir(alone.path().join("wal")).unwrap();
    std::fs::copy(
        &logged[0],
        alone
            .path()
            .join("wal")
            .join(logged[0].file_name().unwrap()),
    )
    .unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let rebuilt = SledBroker::open(Config::new(alone.path())).unwrap();
        assert_eq!(
            ids(&rebuilt).await,
            expected_ids(),
            "replayed from the log alone"
        );
        drop(rebuilt);

        let broker = SledBroker::open(Config::new(dir.path())).unwrap();
        assert_eq!(ids(&broker).await, expected_ids());
        // Replayed and checkpointed: the old segment is gone, and the new one (the
        // old file, reused) starts with an end marker.
        let now = segments(dir.path());
        assert_eq!(now.len(), 1);
        assert_ne!(now, logged);
        let start = std::fs::read(&now[0]).unwrap();
        assert_eq!(start.get(..8), Some(&[0u8; 8][..]), "an end marker first");
        // The store goes on where it was: the next seq follows the replayed ones.
        let next = broker.publish(vec![event("wal.test")]).await.unwrap();
        assert_eq!(next[0].seq, CHILD_EVENTS as u64 + 1);
    });
}

/// Where a segment's records end: the offset of its end marker (a header whose length
/// is zero). A segment may go on past it with zeros or a reused file's old bytes.
fn records_end(segment: &[u8]) -> usize {
    let mut at = 0;
    loop {
        let length = u32::from_le_bytes(segment[at..at + 4].try_into().unwrap()) as usize;
        if length == 0 {
            return at;
        }
        at += 8 + length;
    }
}

#[test]
fn a_record_cut_short_by_a_crash_ends_the_log() {
    let dir = tempfile::tempdir().unwrap();
    publish_then_kill(dir.path());
    let segment = segments(dir.path()).pop().unwrap();
    // Half a record in place of the end marker: a length and checksum, and fewer bytes
    // than the length says before the zeros that follow.
    let mut bytes = std::fs::read(&segment).unwrap();
    let end = records_end(&bytes);
    bytes[end..end + 10].copy_from_slice(&[200, 0, 0, 0, 1, 2, 3, 4, 9, 9]);
    std::fs::write(&segment, &bytes).unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let broker = SledBroker::open(Config::new(dir.path())).unwrap();
        assert_eq!(ids(&broker).await, expected_ids());
    });
}

#[test]
fn a_damaged_record_before_later_segments_is_refused_as_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    publish_then_kill(dir.path());
    let segment = segments(dir.path()).pop().unwrap();
    let mut bytes = std::fs::read(&segment).unwrap();
    let middle = records_end(&bytes) / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&segment, &bytes).unwrap();
    // A later segment with something in it: the damage cannot be a crash's torn tail.
    std::fs::write(segment.with_file_name("00000000000000009999.wal"), b"x").unwrap();

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let err = SledBroker::open(Config::new(dir.path())).unwrap_err();
        assert!(matches!(err, Error::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("write-ahead log"), "{err}");
    });
}

#[tokio::test]
async fn checkpoints_keep_the_log_short_and_a_clean_close_leaves_nothing_to_replay() {
    let small = |config: &mut Config| config.checkpoint_bytes = 16 * 1024;
    let store = Store::with(small);
    for i in 0..400 {
        store
            .broker
            .publish(vec![with_id("wal.test", &format!("c-{i}"))])
            .await
            .unwrap();
        // A checkpoint runs beside the publishes; at most the active segment and the
        // ones waiting for their checkpoint remain.
        assert!(segments(store.dir.path()).len() <= 3);
    }
    let store = store.reopen(small).await;
    assert_eq!(ids(&store.broker).await.len(), 400);
    store.broker.close().await.unwrap();
    let dir = store.dir;
    drop(store.broker);
    // The close checkpointed everything, the active segment included.
    assert_eq!(segments(dir.path()), Vec::<PathBuf>::new());
}

#[tokio::test]
async fn a_store_in_another_format_is_refused_before_anything_is_written_to_it() {
    let store = Store::new();
    store.broker.publish(vec![event("wal.test")]).await.unwrap();
    store.broker.close().await.unwrap();
    let Store { dir, broker } = store;
    drop(broker);
    {
        // The counters record starts with the format, a one-byte varint: make it 5.
        let db = open_sled(dir.path());
        let tree = db.open_tree("choreo").unwrap();
        let mut meta = tree.get(b"Mmeta").unwrap().unwrap().to_vec();
        assert_eq!(meta[0], 6, "the current format");
        meta[0] = 5;
        tree.insert(b"Mmeta", meta).unwrap();
        db.flush().unwrap();
    }
    let err = SledBroker::open(Config::new(dir.path())).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Format {
                found: 5,
                expected: 6
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        segments(dir.path()),
        Vec::<PathBuf>::new(),
        "no segment was created"
    );
}

/// Opens the store's sled directly. A child another test is forking may hold a copy of
/// sled's file lock for a moment (until its exec), so a held lock is retried briefly,
/// as the broker's own open does.
fn open_sled(path: &Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match sled::open(path) {
            Ok(db) => return db,
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(e) => panic!("opening sled at {}: {e}", path.display()),
        }
    }
}
