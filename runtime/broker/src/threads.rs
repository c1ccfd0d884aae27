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
    use super::*;

    #[test]
    fn a_broker_thread_runs_as_batch_work() {
        let policy = spawn("choreo-test-batch", || {
            // SAFETY: no arguments but the pid; 0 is the calling thread.
            unsafe { libc::sched_getscheduler(0) }
        })
        .unwrap()
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
        // SAFETY: as above.
        let here = unsafe { libc::sched_getscheduler(0) };
        assert_ne!(here, libc::SCHED_BATCH, "only the spawned thread changes");
    }
}
