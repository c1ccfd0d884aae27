//! Counting and summarising: a progress line on stderr, percentiles, and the units the
//! report prints.

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// How often the progress line is redrawn.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

/// A shared counter shown as `label: done/total` on stderr while a phase runs.
#[derive(Clone)]
pub(crate) struct Progress {
    done: Arc<AtomicU64>,
}

/// Draws a [`Progress`] until dropped, then ends its line.
pub(crate) struct ProgressLine {
    progress: Progress,
    total: u64,
    label: &'static str,
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    /// Starts a counter for `total` items and a task that draws it.
    pub(crate) fn start(label: &'static str, total: u64) -> ProgressLine {
        let progress = Progress {
            done: Arc::new(AtomicU64::new(0)),
        };
        let task = {
            let progress = progress.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(PROGRESS_EVERY).await;
                    draw(label, progress.get(), total);
                }
            })
        };
        ProgressLine {
            progress,
            total,
            label,
            task,
        }
    }

    /// A counter nobody draws.
    pub(crate) fn silent() -> Progress {
        Progress {
            done: Arc::new(AtomicU64::new(0)),
        }
    }

    pub(crate) fn add(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.done.load(Ordering::Relaxed)
    }
}

impl ProgressLine {
    /// The counter to hand to the workers.
    pub(crate) fn counter(&self) -> Progress {
        self.progress.clone()
    }
}

impl Drop for ProgressLine {
    fn drop(&mut self) {
        self.task.abort();
        draw(self.label, self.progress.get(), self.total);
        eprintln!();
    }
}

fn draw(label: &str, done: u64, total: u64) {
    eprint!("\r  {label}: {done}/{total}");
    let _ = std::io::stderr().flush();
}

/// Latency percentiles of a set of samples.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub(crate) struct Percentiles {
    /// Median, in microseconds.
    pub(crate) p50_us: u64,
    /// 99th percentile, in microseconds.
    pub(crate) p99_us: u64,
    /// How many samples.
    pub(crate) samples: usize,
}

impl Percentiles {
    /// The percentiles of `samples` (sorted here); `None` when there are none.
    pub(crate) fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let index = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index].as_micros() as u64
        };
        Some(Percentiles {
            p50_us: at(0.50),
            p99_us: at(0.99),
            samples: samples.len(),
        })
    }

    /// `p50 / p99` in readable units.
    pub(crate) fn show(&self) -> String {
        format!("p50 {} / p99 {}", micros(self.p50_us), micros(self.p99_us))
    }
}

/// A duration given in microseconds, in µs below 10 ms and ms above.
pub(crate) fn micros(us: u64) -> String {
    if us < 10_000 {
        format!("{us} µs")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

/// A rate with thousands separated, e.g. `12,345/s`.
pub(crate) fn rate(per_second: f64) -> String {
    let whole = per_second.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    format!("{out}/s")
}

/// `count` items over `elapsed`, per second.
pub(crate) fn per_second(count: u64, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(f64::EPSILON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_nearest_rank() {
        let mut samples: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        let p = Percentiles::of(&mut samples).unwrap();
        assert_eq!((p.p50_us, p.p99_us, p.samples), (50, 99, 100));
        assert!(Percentiles::of(&mut []).is_none());
    }

    #[test]
    fn rates_and_durations_read_well() {
        assert_eq!(rate(1234567.4), "1,234,567/s");
        assert_eq!(rate(999.0), "999/s");
        assert_eq!(micros(950), "950 µs");
        assert_eq!(micros(12_345), "12.3 ms");
    }
}
