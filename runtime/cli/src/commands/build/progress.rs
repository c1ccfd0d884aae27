//! Progress of the slow steps of `choreo build`, on stderr: on a terminal, a spinner line
//! with the step's detail and elapsed time, redrawn by a thread until the step ends; when
//! stderr is a file or a pipe (CI logs), one line when a step starts and one when it ends.
//! Either way a step ends with `✓ <label> (<seconds> s)`, or `✗ ...` when it is dropped
//! unfinished (an error).
//!
//! Decision: a few dozen lines here rather than a progress-bar crate; a spinner and a
//! timer are all the command needs.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How often the spinner line is redrawn.
const REDRAW: Duration = Duration::from_millis(100);

const FRAMES: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// What a step is doing right now, shown after its label on a terminal.
#[derive(Debug, Clone, Default)]
pub(crate) struct Detail(Arc<Mutex<String>>);

impl Detail {
    pub(crate) fn set(&self, detail: impl Into<String>) {
        *self.0.lock().expect("the detail lock is never poisoned") = detail.into();
    }

    fn get(&self) -> String {
        self.0
            .lock()
            .expect("the detail lock is never poisoned")
            .clone()
    }
}

/// One slow step, shown from [`Step::start`] until [`Step::done`] or drop.
#[derive(Debug)]
pub(crate) struct Step {
    label: String,
    started: Instant,
    detail: Detail,
    spinner: Option<(Arc<AtomicBool>, JoinHandle<()>)>,
    finished: bool,
}

impl Step {
    pub(crate) fn start(label: impl Into<String>) -> Step {
        let label = label.into();
        let started = Instant::now();
        let detail = Detail::default();
        let spinner = if std::io::stderr().is_terminal() {
            let stop = Arc::new(AtomicBool::new(false));
            let thread = {
                let (stop, label, detail) = (stop.clone(), label.clone(), detail.clone());
                std::thread::spawn(move || {
                    let mut frame = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let detail = detail.get();
                        let separator = if detail.is_empty() { "" } else { ": " };
                        // `\r` and "erase line": the line is redrawn in place.
                        eprint!(
                            "\r\x1b[2K{} {label}{separator}{detail} ({:.0} s)",
                            FRAMES[frame % FRAMES.len()],
                            started.elapsed().as_secs_f64()
                        );
                        let _ = std::io::stderr().flush();
                        frame += 1;
                        std::thread::sleep(REDRAW);
                    }
                })
            };
            Some((stop, thread))
        } else {
            eprintln!("→ {label} …");
            None
        };
        Step {
            label,
            started,
            detail,
            spinner,
            finished: false,
        }
    }

    /// A handle to update the detail from another thread (a reader of a child's output).
    pub(crate) fn detail(&self) -> Detail {
        self.detail.clone()
    }

    /// Ends the step as a success.
    pub(crate) fn done(mut self) {
        self.finished = true;
    }

    fn stop_spinner(&mut self) {
        if let Some((stop, thread)) = self.spinner.take() {
            stop.store(true, Ordering::Relaxed);
            let _ = thread.join();
            eprint!("\r\x1b[2K");
        }
    }
}

impl Drop for Step {
    fn drop(&mut self) {
        self.stop_spinner();
        let mark = if self.finished { '✓' } else { '✗' };
        eprintln!(
            "{mark} {} ({:.1} s)",
            self.label,
            self.started.elapsed().as_secs_f64()
        );
    }
}
