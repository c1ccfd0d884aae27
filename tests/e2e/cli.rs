//! Running `choreo` commands other than `serve` to completion (`choreo publish`,
//! `choreo new`, `choreo bench`, …): their exit status and output, with a deadline.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::CHOREO;

/// What a finished `choreo` command did.
pub struct Run {
    pub ok: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub shown: String,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` exited {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.shown, self.code, self.stdout, self.stderr
        )
    }
}

/// Runs `choreo ARGS` in `cwd` with `env` and none of the caller's `CHOREO_*` settings
/// (nor an active Python virtualenv), and waits at most `deadline`; kills it after that.
/// Both pipes are read as the command writes them, so it never blocks on a full one.
pub fn run_choreo(
    cwd: &std::path::Path,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> Run {
    let shown = format!("choreo {}", args.join(" "));
    let mut command = Command::new(CHOREO);
    command
        .args(args)
        .current_dir(cwd)
        .env_remove("VIRTUAL_ENV");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHOREO_") {
            command.env_remove(name);
        }
    }
    let mut child = command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start `{shown}`: {e}"));
    let read = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stream.read_to_string(&mut text);
            text
        })
    };
    let stdout = read(Box::new(child.stdout.take().unwrap()));
    let stderr = read(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`{shown}` did not finish within {deadline:?}; stderr so far:\n{}",
                stderr.join().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Run {
        ok: status.success(),
        code: status.code(),
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
        shown,
    }
}
