//! The broker's own threads (the writer, the durability stage, the checkpointer and the
//! id index's): spawned by name and scheduled as batch work.
//!
//! Decision: on Linux they run under the `SCHED_BATCH` policy. It keeps their fair
//! share of the CPU and their niceness, and differs from the default in one thing: a
//! batch thread that wakes up does not preempt the thread running on its CPU. Under load
//! the writer is woken for every commit and publish sent to it, and with the default
//! policy it took the CPU from the async thread that sent it, mid-delivery, before that
//! thread had sent the rest of its round; the writer then built a small group, slept,
//! and was woken again. As batch work it runs when a CPU comes free or the running
//! thread's slice ends, and finds more requests waiting. A CPU left idle still runs it
//! at once, so a lone publish waits no longer. Measured with `choreo bench` (relays at
//! concurrency 8, interleaved runs; `docs/benchmarks.md`).

use std::thread::JoinHandle;

/// Spawns `body` on a thread named `name`, scheduled as batch work where the OS has
/// such a policy.
pub(crate) fn spawn<T: Send + 'static>(
    name: &str,
    body: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<JoinHandle<T>> {
    let label = name.to_owned();
    std::thread::Builder::new()
        .name(label.clone())
        .spawn(move || {
            schedule_as_batch(&label);
            body()
        })
}

#[cfg(target_os = "linux")]
fn schedule_as_batch(name: &str) {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid `sched_param` that outlives the call, which only reads
    // it; pid 0 is the calling thread.
    let status = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    if status != 0 {
        // Lowering a thread's own policy needs no privilege; a sandbox may still refuse.
        tracing::warn!(
            thread = name,
            error = %std::io::Error::last_os_error(),
            "the broker thread keeps the default scheduling policy"
        );
    }
}

#[cfg(not(target_os = "linux"))]
fn schedule_as_batch(_name: &str) {}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{Broker, Config, SledBroker};

    /// The scheduling policy of each of this process's threads whose name starts with
    /// `prefix`. A thread that ends while it is being read is skipped.
    fn policies(prefix: &str) -> Vec<(String, i32)> {
        let mut found = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let Ok(name) = std::fs::read_to_string(task.path().join("comm")) else {
                continue;
            };
            let name = name.trim().to_owned();
            let Ok(tid) = task.file_name().to_string_lossy().parse::<libc::pid_t>() else {
                continue;
            };
            if !name.starts_with(prefix) {
                continue;
            }
            // SAFETY: no arguments but the thread id; an ended thread only yields -1.
            let policy = unsafe { libc::sched_getscheduler(tid) };
            if policy >= 0 {
                found.push((name, policy));
            }
        }
        found
    }

    /// An opened broker's own threads (the writer, the durability stage, the
    /// checkpointer, the id index's) all run as batch work.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_open_brokers_threads_run_as_batch_work() {
        let dir = tempfile::tempdir().unwrap();
        let broker = SledBroker::open(Config::new(dir.path().join("broker"))).unwrap();
        // Thread names are cut to 15 bytes by the kernel.
        let expected = [
            "choreo-broker-w",
            "choreo-broker-s",
            "choreo-broker-c",
            "choreo-broker-i",
        ];
        // A thread names itself and sets its policy once it runs, a moment after `open`
        // has spawned it: look until all are there and settled, within a deadline.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let threads = loop {
            let threads = policies("choreo-broker");
            let all_there = expected
                .iter()
                .all(|name| threads.iter().any(|(found, _)| found == name));
            let settled = threads.iter().all(|(_, p)| *p == libc::SCHED_BATCH);
            if (all_there && settled) || std::time::Instant::now() >= deadline {
                break threads;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        };
        let names: std::collections::BTreeSet<&str> =
            threads.iter().map(|(name, _)| name.as_str()).collect();
        for name in expected {
            assert!(names.contains(name), "no thread {name} among {names:?}");
        }
        for (name, policy) in &threads {
            assert_eq!(*policy, libc::SCHED_BATCH, "thread {name}");
        }
        broker.close().await.unwrap();
    }
}
