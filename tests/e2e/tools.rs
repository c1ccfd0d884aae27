//! Test tools from PyPI (schemathesis, the CloudEvents SDK), installed on first use into a virtual environment
//! under cargo's target dir, so `cargo test` on a fresh clone needs only `python3`. The
//! versions are pinned here, the one place that names them.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// schemathesis, the property-based API tester that drives the OpenAPI document.
pub const SCHEMATHESIS: (&str, &str) = ("schemathesis", "4.32.5");

/// The official CloudEvents SDK for Python, a client that must work with no adapter.
pub const CLOUDEVENTS_SDK: (&str, &str) = ("cloudevents", "1.12.0");

/// How long creating a venv and installing one tool may take.
const INSTALL_DEADLINE: Duration = Duration::from_secs(600);

/// The path of `executable` from the pinned `package`, installing it first if needed.
/// Concurrent callers wait for one install (a file lock).
pub fn python_tool((package, version): (&str, &str), executable: &str) -> PathBuf {
    let tools = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("tools");
    let dir = tools.join(format!("{package}-{version}"));
    let bin = dir.join("bin").join(executable);
    let done = dir.join(".installed");
    std::fs::create_dir_all(&tools).unwrap();
    let lock = std::fs::File::create(tools.join(format!(".{package}.lock"))).unwrap();
    lock.lock().unwrap();
    if done.is_file() && bin.is_file() {
        return bin;
    }
    let _ = std::fs::remove_dir_all(&dir);
    run(
        Command::new("python3").args(["-m", "venv"]).arg(&dir),
        "`python3 -m venv` (install python3 with its venv module)",
    );
    run(
        Command::new(dir.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--timeout",
            "60",
            &format!("{package}=={version}"),
        ]),
        &format!("`pip install {package}=={version}` (it needs PyPI)"),
    );
    std::fs::write(&done, b"").unwrap();
    bin
}

fn run(command: &mut Command, what: &str) {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let status = wait(&mut child, INSTALL_DEADLINE, what);
    if !status.success() {
        let mut output = String::new();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read>),
        ]
        .into_iter()
        .flatten()
        {
            let mut stream = stream;
            let _ = stream.read_to_string(&mut output);
        }
        panic!("{what} failed ({status}): {output}");
    }
}

/// Waits for `child`, killing it and failing the test after `deadline`.
pub fn wait(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {deadline:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
