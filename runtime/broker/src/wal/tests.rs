//! The write-ahead log's tests: replay, segment reuse, and direct appends.

use super::*;
use crate::changes::Changes;

/// Group `group`'s record: it sets `k` to the group's number, as the writer would
/// set the applied key.
fn record(group: u64, out: &mut Vec<u8>) {
    let mut changes = Changes::default();
    changes.insert(&b"k"[..], &group.to_be_bytes()[..]);
    changes.insert(APPLIED_KEY, &group.to_be_bytes()[..]);
    changes.encode(group, out);
}

fn store() -> (tempfile::TempDir, sled::Tree) {
    let dir = tempfile::tempdir().unwrap();
    let db = sled::Config::new().temporary(true).open().unwrap();
    (dir, db.open_tree("t").unwrap())
}

#[test]
fn replay_applies_only_the_groups_after_the_last_one_sled_holds() {
    let (dir, tree) = store();
    let mut first = Vec::new();
    (1..=3).for_each(|g| record(g, &mut first));
    let mut second = Vec::new();
    (4..=5).for_each(|g| record(g, &mut second));
    std::fs::write(dir.path().join(segment_name(1)), &first).unwrap();
    std::fs::write(dir.path().join(segment_name(4)), &second).unwrap();
    // sled already holds group 2 (and wrote something else to `k` since).
    tree.insert(APPLIED_KEY, &2u64.to_be_bytes()).unwrap();
    tree.insert(b"k", b"newer than group 1").unwrap();

    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (5, 3));
    assert_eq!(replayed.segments.len(), 2);
    assert_eq!(tree.get(b"k").unwrap().unwrap(), 5u64.to_be_bytes());
    assert_eq!(applied_group(&tree).unwrap(), 5);
    // Replaying again changes nothing.
    assert_eq!(replay(&tree, dir.path()).unwrap().groups, 0);
}

#[test]
fn a_replay_larger_than_one_batch_applies_every_record_in_order() {
    let (dir, tree) = store();
    let mut bytes = Vec::new();
    let per_record = REPLAY_BATCH_WRITES / 2 + 1;
    for group in 1..=3u64 {
        let mut changes = Changes::default();
        for i in 0..per_record {
            // Every record rewrites the same keys: the last record must win.
            changes.insert(format!("k{i}").into_bytes(), &group.to_be_bytes()[..]);
        }
        changes.insert(APPLIED_KEY, &group.to_be_bytes()[..]);
        changes.encode(group, &mut bytes);
    }
    std::fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();

    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (3, 3));
    assert_eq!(tree.len(), per_record + 1);
    assert!(
        tree.iter()
            .values()
            .all(|v| *v.unwrap() == 3u64.to_be_bytes())
    );
}

#[test]
fn missing_groups_are_corruption() {
    let (dir, tree) = store();
    let mut bytes = Vec::new();
    record(1, &mut bytes);
    record(3, &mut bytes);
    std::fs::write(dir.path().join(segment_name(1)), &bytes).unwrap();
    let err = replay(&tree, dir.path()).unwrap_err();
    assert!(err.to_string().contains("groups are missing"), "{err}");
}

fn records(groups: std::ops::RangeInclusive<u64>) -> Vec<u8> {
    let mut bytes = Vec::new();
    groups.for_each(|g| record(g, &mut bytes));
    bytes
}

#[test]
fn a_reused_segment_reads_as_only_what_was_appended_to_it() {
    for writes in [Writes::Cached, Writes::Direct] {
        reused_segment_reads_as_only_what_was_appended(writes);
    }
}

fn reused_segment_reads_as_only_what_was_appended(writes: Writes) {
    let (dir, tree) = store();
    let mut wal = Wal::create(dir.path(), 1, writes).unwrap();
    wal.append(&mut records(1..=40)).unwrap();
    let first = wal.rotate(41).unwrap();
    replay(&tree, dir.path()).unwrap();
    assert_eq!(applied_group(&tree).unwrap(), 40);
    // Checkpointed: the segment becomes a spare, and the next segment reuses it.
    retire(&first).unwrap();
    assert!(!first.exists());
    wal.append(&mut records(41..=41)).unwrap();
    let second = wal.rotate(42).unwrap();
    assert!(
        !dir.path().join(format!("{:020}.spare", 1)).exists(),
        "reused"
    );
    assert!(
        std::fs::metadata(wal.path()).unwrap().len() > 1000,
        "the reused segment still holds its old records past the marker"
    );

    // Nothing appended yet: the reused segment reads as empty.
    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (41, 1));
    assert_eq!(replayed.segments, [second.clone(), wal.path().to_owned()]);

    wal.append(&mut records(42..=43)).unwrap();
    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (43, 2));
    assert_eq!(tree.get(b"k").unwrap().unwrap(), 43u64.to_be_bytes());
}

#[test]
fn direct_appends_of_any_size_read_back_as_the_same_records() {
    let (dir, tree) = store();
    let mut wal = Wal::create(dir.path(), 1, Writes::Direct).unwrap();
    // The data directory's file system decides; this machine's takes direct I/O.
    let direct = wal.writes() == Writes::Direct;
    // Appends that end inside a block, exactly on one, and span several.
    let mut group = 0;
    let mut expected = Vec::new();
    for size in [1, 7, 600, 4096 / 8, 3, 2000] {
        let mut bytes = Vec::new();
        for _ in 0..size {
            group += 1;
            record(group, &mut bytes);
        }
        expected.extend_from_slice(&bytes);
        wal.append(&mut bytes).unwrap();
        wal.sync().unwrap();
        let on_disk = std::fs::read(wal.path()).unwrap();
        assert_eq!(
            &on_disk[..expected.len()],
            &expected[..],
            "after {group} groups"
        );
        assert_eq!(&on_disk[expected.len()..][..END_MARKER.len()], &END_MARKER);
        if direct {
            assert_eq!(on_disk.len() % BLOCK, 0, "direct writes are whole blocks");
        }
    }
    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (group, group as usize));
    assert_eq!(tree.get(b"k").unwrap().unwrap(), group.to_be_bytes());
}

/// A new segment grows in whole steps of zeros ahead of its records, so most appends
/// overwrite blocks the file has; what it holds reads back all the same.
#[test]
fn a_new_segment_grows_in_zeroed_steps_ahead_of_its_appends() {
    let (dir, tree) = store();
    let mut wal = Wal::create(dir.path(), 1, Writes::Direct).unwrap();
    if wal.writes() != Writes::Direct {
        eprintln!("SKIPPED: the temp dir's file system refuses direct I/O");
        return;
    }
    let step = ZERO_AHEAD_STEP as usize;
    let mut group = 0;
    let mut appended = 0;
    let mut lengths = std::collections::BTreeSet::new();
    // About 2.5 steps of records, in appends of about 40 KiB.
    while appended < 5 * step / 2 {
        let mut bytes = Vec::new();
        for _ in 0..1000 {
            group += 1;
            record(group, &mut bytes);
        }
        appended += bytes.len();
        wal.append(&mut bytes).unwrap();
        let on_disk = std::fs::read(wal.path()).unwrap();
        assert_eq!(on_disk.len() % step, 0, "the file ends on a step");
        assert!(
            on_disk[appended..].iter().all(|&b| b == 0),
            "the end marker, then zeros to the file's end"
        );
        lengths.insert(on_disk.len());
    }
    let steps: Vec<usize> = (1..=appended.div_ceil(step)).map(|n| n * step).collect();
    assert_eq!(
        lengths.into_iter().collect::<Vec<_>>(),
        steps,
        "the file grew one step at a time"
    );
    let replayed = replay(&tree, dir.path()).unwrap();
    assert_eq!((replayed.applied, replayed.groups), (group, group as usize));
}

#[test]
fn an_aligned_slice_starts_on_a_block() {
    let mut buffer = Vec::new();
    for len in [BLOCK, 3 * BLOCK, BLOCK] {
        let slice = aligned(&mut buffer, len);
        assert_eq!(slice.len(), len);
        assert_eq!(slice.as_ptr().addr() % BLOCK, 0);
    }
}

#[test]
fn only_a_few_spares_are_kept() {
    let (dir, _tree) = store();
    for group in [1, 10, 20, 30] {
        let path = dir.path().join(segment_name(group));
        std::fs::write(&path, records(group..=group)).unwrap();
        retire(&path).unwrap();
        assert!(!path.exists());
    }
    assert_eq!(spares(dir.path()).unwrap().len(), MAX_SPARE_SEGMENTS);
    assert!(segments(dir.path()).unwrap().is_empty());
}

#[test]
fn only_numbered_segments_count_and_they_sort_by_number() {
    let (dir, _tree) = store();
    for name in [
        segment_name(10),
        segment_name(9),
        "notes.txt".into(),
        "x.wal".into(),
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    let found: Vec<_> = segments(dir.path())
        .unwrap()
        .into_iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_owned())
        .collect();
    assert_eq!(found, [segment_name(9), segment_name(10)]);
}
