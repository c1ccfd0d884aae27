//! The `choreo serve` the bench measures when it is not given `--url`: a child process
//! of this same executable on a fresh temp data dir and deploy dir, port 0, stopped with
//! SIGTERM at the end.
//!
//! Its stderr is read by a thread for the whole run: first for the `listening on
//! http://ADDR` line (logs are JSON, so no colour codes get in the way), then to keep the
//! pipe drained — a full pipe would block the server's logging and stall what is being
//! measured — and to keep the last lines for the error when the server dies.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long the server may take to print its address (it opens the store first).
const START_DEADLINE: Duration = Duration::from_secs(30);
/// How long a SIGTERM may take before the server is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(20);
/// Lines of the server's log kept for error messages.
const KEPT_LOG_LINES: usize = 40;

const ADDRESS_MARKER: &str = "listening on http://";

/// A running `choreo serve` child.
pub(crate) struct Server {
    child: Child,
    /// `host:port` of its API.
    pub(crate) address: String,
    /// The folder it watches for components.
    pub(crate) deploy_dir: PathBuf,
    log: Arc<Mutex<VecDeque<String>>>,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts `choreo serve` with `durability` and waits until it prints its address.
    pub(crate) fn start(durability: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("choreo-bench-")
            .tempdir()
            .context("cannot create a temp dir for the bench server")?;
        let data_dir = dir.path().join("data");
        let deploy_dir = dir.path().join("deploy");
        std::fs::create_dir_all(&deploy_dir)
            .with_context(|| format!("cannot create {}", deploy_dir.display()))?;
        let exe = std::env::current_exe().context("cannot find the choreo executable")?;
        let mut child = Command::new(&exe)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--durability", durability])
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--deploy-dir")
            .arg(&deploy_dir)
            .env("CHOREO_LOG_FORMAT", "json")
            .env("CHOREO_LOG", "info")
            .env_remove("CHOREO_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {} serve", exe.display()))?;
        let stderr = child.stderr.take().expect("stderr was piped");
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (address_tx, address_rx) = mpsc::channel();
        {
            let log = log.clone();
            std::thread::spawn(move || {
                let mut address_tx = Some(address_tx);
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if let Some(address) = address_in(&line)
                        && let Some(tx) = address_tx.take()
                    {
                        let _ = tx.send(address);
                    }
                    let mut log = log.lock().expect("the log lock is never poisoned");
                    if log.len() == KEPT_LOG_LINES {
                        log.pop_front();
                    }
                    log.push_back(line);
                }
            });
        }
        let mut server = Server {
            child,
            address: String::new(),
            deploy_dir,
            log,
            _dir: dir,
        };
        match address_rx.recv_timeout(START_DEADLINE) {
            Ok(address) => server.address = address,
            Err(_) => anyhow::bail!(
                "the bench server printed no `{ADDRESS_MARKER}` line within {}s; its log:\n{}",
                START_DEADLINE.as_secs(),
                server.recent_log()
            ),
        }
        Ok(server)
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines the server logged, for error messages.
    pub(crate) fn recent_log(&self) -> String {
        let log = self.log.lock().expect("the log lock is never poisoned");
        log.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    /// Resident and peak resident memory, in KiB, from `/proc/<pid>/status`.
    pub(crate) fn memory(&self) -> anyhow::Result<(u64, u64)> {
        let path = format!("/proc/{}/status", self.pid());
        let status =
            std::fs::read_to_string(&path).with_context(|| format!("cannot read {path}"))?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| {
                    rest.trim()
                        .trim_end_matches("kB")
                        .trim()
                        .parse::<u64>()
                        .ok()
                })
                .with_context(|| format!("{path} has no {name} line"))
        };
        Ok((field("VmRSS:")?, field("VmHWM:")?))
    }

    /// Stops the server with SIGTERM (a graceful stop), killing it after a deadline.
    pub(crate) fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().context("waiting for the server")? {
                anyhow::ensure!(
                    status.success(),
                    "the bench server exited with {status}; its log:\n{}",
                    self.recent_log()
                );
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "the bench server did not stop within {}s of SIGTERM; killed it",
            STOP_DEADLINE.as_secs()
        )
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `host:port` in a `listening on http://ADDR` log line, JSON or plain.
fn address_in(line: &str) -> Option<String> {
    let start = line.find(ADDRESS_MARKER)? + ADDRESS_MARKER.len();
    let address: String = line[start..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '"' && *c != '/')
        .collect();
    (!address.is_empty()).then_some(address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_json_and_plain_lines() {
        let json = r#"{"level":"INFO","fields":{"message":"listening on http://127.0.0.1:4021","durability":"strict"}}"#;
        assert_eq!(address_in(json).as_deref(), Some("127.0.0.1:4021"));
        let plain =
            "2026-01-01T00:00:00Z  INFO choreo: listening on http://[::1]:80 durability=strict";
        assert_eq!(address_in(plain).as_deref(), Some("[::1]:80"));
        assert_eq!(address_in("ready"), None);
    }
}
