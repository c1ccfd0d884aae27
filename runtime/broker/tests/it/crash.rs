//! Crash safety: a child process publishes and commits outcomes in a loop and is killed
//! with SIGKILL at random points, many times, on the same store. After every kill the
//! store is reopened and checked: every publish that returned is there, every outcome is
//! complete (ack, both its publishes, both its state writes) or absent, and no queue has
//! lost or resurrected an event. One kill in four lands while the child opens the store,
//! when sled writes a snapshot and the broker replays its write-ahead log.
//!
//! The child is this test binary again, running `crash_child` with the store's directory
//! in [`CHILD_ENV`]; it reports what returned on stdout, one line per fact. Beside the
//! loop, a reader in the child keeps reading the state of the newest deliveries the way a
//! query does, and the events they caused the way a trace does, and reports what it saw:
//! a crash must keep every value and every event a reader saw.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use choreo_broker::{
    Broker, Committed, Config, Error, Outcome, RetryPolicy, SledBroker, StateView, StateWrite,
};
use choreo_core::EventId;
use rand::Rng;

use crate::{event, handler, keyed, subscription, whole_log};

const CHILD_ENV: &str = "CHOREO_BROKER_CRASH_CHILD";
const KILLS: usize = 16;
/// Every this many kills, the kill lands while the store opens: within
/// [`OPENING_KILL_WITHIN`] of the child starting to open it, about as long as opening
/// the test's store takes in a debug build.
const OPENING_KILL_EVERY: usize = 4;
const OPENING_KILL_WITHIN: Duration = Duration::from_millis(100);

fn report(line: String) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {line}").unwrap();
    out.flush().unwrap();
}

/// The child's loop: runs only when started by the crash test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    // libtest has printed `test crash::crash_child ... ` with no newline: end that line,
    // so that the first report starts one of its own.
    println!();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let mut config = Config::new(dir);
        // Small enough that kills land before, during and after checkpoints.
        config.checkpoint_bytes = 256 * 1024;
        // Small enough that kills land while id index runs are written, and reopening
        // finds runs that index groups the kill lost.
        config.index_run_entries = 64;
        report("O".to_owned());
        let broker = SledBroker::open(config).unwrap();
        let mut worker = subscription("worker", &["in.>"]);
        worker.retry = RetryPolicy {
            max_attempts: 1000,
            ..RetryPolicy::default()
        };
        worker.retry.initial_backoff = Duration::from_millis(5);
        broker.subscribe(worker).await.unwrap();
        broker
            .subscribe(subscription("audit", &[">"]))
            .await
            .unwrap();
        let broker = std::sync::Arc::new(broker);
        let newest_leased = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        tokio::spawn(read_like_a_query(broker.clone(), newest_leased.clone()));
        let mut rng = rand::rng();
        loop {
            let batch: Vec<_> = (0..rng.random_range(1..5))
                .map(|_| keyed("in.order", &format!("k{}", rng.random_range(0..3))))
                .collect();
            for p in broker.publish(batch).await.unwrap() {
                report(format!("P {} {}", p.seq, p.id));
            }
            let deliveries = broker
                .lease(
                    &handler("worker"),
                    4,
                    Duration::from_millis(50),
                    Duration::ZERO,
                )
                .await
                .unwrap();
            let mut outcomes = Vec::new();
            for d in &deliveries {
                let seq = d.event.seq;
                newest_leased
                    .lock()
                    .unwrap()
                    .push((seq, d.event.event.id.clone()));
                outcomes.push(if rng.random_bool(0.1) {
                    Outcome::retry(d.token.clone(), "flaky")
                } else {
                    let out = |suffix: &str| {
                        let mut e = event("out.order");
                        e.id = EventId::new(format!("o-{seq}-{suffix}")).unwrap();
                        e.causation_id = Some(d.event.event.id.clone());
                        e
                    };
                    let write = |suffix: &str| StateWrite {
                        key: format!("s/{seq}/{suffix}").into_bytes(),
                        value: Some(seq.to_string().into_bytes()),
                    };
                    Outcome::ack(
                        d.token.clone(),
                        vec![out("a"), out("b")],
                        vec![write("a"), write("b")],
                    )
                });
            }
            let committed = broker.commit(outcomes).await.unwrap();
            for (d, c) in deliveries.iter().zip(committed) {
                if let Committed::Acked { .. } = c {
                    report(format!("C {}", d.event.seq));
                }
            }
        }
    });
}

/// Reads the state the newest deliveries write, as a query would, and the events they
/// caused, as a trace would, and reports each one it sees.
async fn read_like_a_query(
    broker: std::sync::Arc<SledBroker>,
    leased: std::sync::Arc<std::sync::Mutex<Vec<(u64, EventId)>>>,
) {
    let mut seen = BTreeSet::new();
    let mut traced = BTreeSet::new();
    loop {
        let newest: Vec<(u64, EventId)> = {
            let leased = leased.lock().unwrap();
            leased.iter().rev().take(8).cloned().collect()
        };
        for (seq, id) in newest {
            if !seen.contains(&seq) {
                let key = format!("s/{seq}/a");
                let value = broker
                    .state_get(&handler("worker"), key.as_bytes(), StateView::Durable)
                    .await
                    .unwrap();
                if value.is_some() {
                    seen.insert(seq);
                    report(format!("S {seq}"));
                }
            }
            if !traced.contains(&seq) && !broker.caused_by(&id, 10).await.unwrap().is_empty() {
                traced.insert(seq);
                report(format!("T {seq}"));
            }
        }
        tokio::task::yield_now().await;
    }
}

#[test]
fn committed_work_survives_sigkill_at_random_points() {
    // The store outlives a failed run, so that what the kill left can be studied; a run
    // that passes removes it.
    let dir = KeptOnPanic(Some(tempfile::tempdir().unwrap()));
    let mut published: BTreeMap<u64, String> = BTreeMap::new();
    let mut acked: BTreeSet<u64> = BTreeSet::new();
    let mut read: BTreeSet<u64> = BTreeSet::new();
    let mut traced: BTreeSet<u64> = BTreeSet::new();
    let mut rng = rand::rng();
    for round in 0..KILLS {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "crash::crash_child",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (seen, lines_seen) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .filter_map(|line| line.strip_prefix("@@ ").map(str::to_owned))
                .inspect(|line| drop(seen.send(line.clone())))
                .collect::<Vec<_>>()
        });
        if round % OPENING_KILL_EVERY == OPENING_KILL_EVERY - 1 {
            // A kill while the store opens: sled writes a snapshot then, and the broker
            // replays its write-ahead log.
            let opening = lines_seen.recv_timeout(Duration::from_secs(60));
            assert_eq!(
                opening.as_deref(),
                Ok("O"),
                "the child reports that it opens the store first"
            );
            std::thread::sleep(rng.random_range(Duration::ZERO..OPENING_KILL_WITHIN));
        } else {
            std::thread::sleep(Duration::from_millis(rng.random_range(30..300)));
        }
        child.kill().unwrap();
        let status = child.wait().unwrap();
        let lines = reader.join().unwrap();
        if status.success() || lines.is_empty() && round == 0 {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert!(!status.success(), "the child exited by itself: {err}");
        }
        for line in lines {
            let mut parts = line.split(' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("P"), Some(seq), Some(id)) => {
                    published.insert(seq.parse().unwrap(), id.to_owned());
                }
                (Some("C"), Some(seq), None) => {
                    acked.insert(seq.parse().unwrap());
                }
                (Some("S"), Some(seq), None) => {
                    read.insert(seq.parse().unwrap());
                }
                (Some("T"), Some(seq), None) => {
                    traced.insert(seq.parse().unwrap());
                }
                (Some("O"), None, None) => {}
                _ => panic!("unexpected child line {line:?}"),
            }
        }
        check(dir.path(), &published, &acked, &read, &traced);
    }
    eprintln!(
        "{KILLS} kills: {} publishes, {} acks, {} state reads and {} traces reported by the child, all accounted for",
        published.len(),
        acked.len(),
        read.len(),
        traced.len()
    );
    assert!(
        acked.len() > KILLS,
        "the child made progress: {} acks",
        acked.len()
    );
}

/// Reopens the store and checks every invariant.
fn check(
    path: &std::path::Path,
    published: &BTreeMap<u64, String>,
    acked: &BTreeSet<u64>,
    read: &BTreeSet<u64>,
    traced: &BTreeSet<u64>,
) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let broker = SledBroker::open(Config::new(path)).unwrap();
        let log = whole_log(&broker).await;
        let by_seq: BTreeMap<u64, String> = log
            .iter()
            .map(|e| (e.seq, e.event.id.to_string()))
            .collect();
        for (seq, id) in published {
            assert_eq!(by_seq.get(seq), Some(id), "published seq {seq} was lost");
        }
        let worker = handler("worker");
        let mut unacked = 0;
        for e in log.iter().filter(|e| e.event.topic.as_str() == "in.order") {
            let seq = e.seq;
            let out_a = by_seq.values().any(|id| *id == format!("o-{seq}-a"));
            let out_b = by_seq.values().any(|id| *id == format!("o-{seq}-b"));
            let state_a = broker
                .state_get(&worker, format!("s/{seq}/a").as_bytes(), StateView::Durable)
                .await
                .unwrap();
            let state_b = broker
                .state_get(&worker, format!("s/{seq}/b").as_bytes(), StateView::Durable)
                .await
                .unwrap();
            let caused: Vec<String> = broker
                .caused_by(&e.event.id, 10)
                .await
                .unwrap()
                .iter()
                .map(|c| c.event.id.to_string())
                .collect();
            let parts = [
                out_a,
                out_b,
                state_a.is_some(),
                state_b.is_some(),
                caused == [format!("o-{seq}-a"), format!("o-{seq}-b")],
            ];
            assert!(
                parts.iter().all(|p| *p) || parts.iter().all(|p| !*p),
                "outcome for seq {seq} is partial: {parts:?} {caused:?}"
            );
            if acked.contains(&seq) {
                assert!(out_a, "acked seq {seq} lost its outcome");
            }
            if read.contains(&seq) {
                assert!(out_a, "the state of seq {seq} was read, then lost");
            }
            if traced.contains(&seq) {
                assert!(out_a, "the events seq {seq} caused were traced, then lost");
            }
            if !out_a {
                unacked += 1;
            }
        }
        // The child subscribes both handlers before it publishes anything, so a kill
        // that came first leaves a handler unknown and the log empty.
        let depth = async |name: &str| match broker.stats(&handler(name)).await {
            Ok(stats) => stats.queue_depth,
            Err(Error::UnknownHandler { .. }) if log.is_empty() => 0,
            Err(err) => panic!("stats of {name}: {err}"),
        };
        assert_eq!(
            depth("worker").await,
            unacked,
            "worker queue = events not yet acked"
        );
        assert_eq!(
            depth("audit").await,
            log.len(),
            "audit holds every event ever published"
        );
        broker.close().await.unwrap();
    });
}

/// A temporary directory that is kept, and named on stderr, when the test panics.
struct KeptOnPanic(Option<tempfile::TempDir>);

impl KeptOnPanic {
    fn path(&self) -> &std::path::Path {
        self.0.as_ref().expect("kept until dropped").path()
    }
}

impl Drop for KeptOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("kept the store at {}", dir.keep().display());
        }
    }
}
