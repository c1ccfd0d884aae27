//! Opening a store: what a crash left in sled's files, and a second process.
//!
//! sled writes two files in steps while it opens a store, before its own lock protects
//! anything: its configuration when it creates a store, and a snapshot every time. A
//! process killed between those steps leaves a file sled reads back as corruption. The
//! random kills of `crash.rs` land there only rarely; these tests leave the same files
//! behind on purpose, exactly as an interrupted sled leaves them.

use std::path::{Path, PathBuf};

use choreo_broker::{Broker, Config, SledBroker};

use crate::{Store, event, whole_log};

/// sled's snapshot files, by name.
fn snapshots(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("snap.")
        })
        .collect();
    found.sort();
    found
}

async fn publish(store: &Store, count: usize) {
    let events = (0..count).map(|_| event("orders.created")).collect();
    store.broker.publish(events).await.unwrap();
}

#[tokio::test]
async fn a_snapshot_sled_did_not_finish_writing_is_discarded() {
    let store = Store::new();
    publish(&store, 200).await;
    // Opening again makes sled write a snapshot of what the first run wrote.
    let store = store.reopen(|_| {}).await;
    publish(&store, 200).await;
    store.broker.close().await.unwrap();
    let Store { dir, broker } = store;
    drop(broker);
    let written = snapshots(dir.path());
    let [snapshot] = written.as_slice() else {
        panic!("sled keeps exactly one finished snapshot: {written:?}");
    };
    // The next snapshot, cut off partway: its name is a later position in sled's log,
    // and its checksum, at the end, is missing.
    let name = snapshot.file_name().unwrap().to_string_lossy().into_owned();
    let position = u64::from_str_radix(name.trim_start_matches("snap."), 16).unwrap();
    let bytes = std::fs::read(snapshot).unwrap();
    let unfinished = dir
        .path()
        .join(format!("snap.{:016X}.generating", position + 4096));
    std::fs::write(&unfinished, &bytes[..bytes.len() / 2]).unwrap();

    let broker = SledBroker::open(Config::new(dir.path())).unwrap();
    assert_eq!(
        whole_log(&broker).await.len(),
        400,
        "every event is still there"
    );
    assert!(!unfinished.exists(), "the unfinished snapshot is gone");
    publish(
        &Store {
            dir,
            broker: broker.into(),
        },
        1,
    )
    .await;
}

#[tokio::test]
async fn a_store_whose_creation_was_cut_short_opens() {
    let dir = tempfile::tempdir().unwrap();
    // sled writes its configuration, then its checksum, then creates its data file; this
    // is a kill between the first two.
    std::fs::write(
        dir.path().join("conf"),
        "segment_size: 8388608\nuse_compression: false\nversion: 0.34\n",
    )
    .unwrap();
    let broker = SledBroker::open(Config::new(dir.path())).unwrap();
    let store = Store {
        dir,
        broker: broker.into(),
    };
    publish(&store, 3).await;
    let store = store.reopen(|_| {}).await;
    assert_eq!(whole_log(&*store.broker).await.len(), 3);
}

#[tokio::test]
async fn a_second_broker_on_an_open_store_is_refused_by_name() {
    let store = Store::new();
    let err = SledBroker::open(Config::new(store.dir.path())).unwrap_err();
    let message = format!("{err}");
    assert!(
        message.contains("another process holds it"),
        "the error says why: {message}"
    );
    // The first broker is unharmed.
    publish(&store, 1).await;
    assert_eq!(whole_log(&*store.broker).await.len(), 1);
}
