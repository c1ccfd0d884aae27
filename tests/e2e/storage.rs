//! A disk that fills up under `choreo serve`: every write is then refused with an answer
//! that names the cause, the health endpoints report the node down (so an orchestrator
//! restarts it) and `/metrics` says so, nothing answered 202 is lost, and a restart on a
//! freed disk takes writes again.
//!
//! The data dir is a small tmpfs in a mount namespace of the test's own: `unshare`
//! mounts it and keeps the namespace alive in a sleeping process, each server enters it
//! with `nsenter`, and the namespace goes when that process is killed. Creating it needs
//! root (as CI runs); without that the test says so and checks nothing.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::harness::{DEADLINE, Dirs, Server};

/// How long `unshare` may take to mount the tmpfs.
const MOUNT_DEADLINE: Duration = Duration::from_secs(30);

/// A tmpfs of a chosen size in a private mount namespace.
struct SmallDisk {
    holder: Child,
    path: PathBuf,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount`'s syntax: `8m`) on `path`; `None` when this
    /// process may not create a mount namespace.
    fn mount(path: &Path, size: &str) -> Option<SmallDisk> {
        std::fs::create_dir_all(path).unwrap();
        let script = format!(
            "mount -t tmpfs -o size={size} choreo-small-disk '{}' && echo mounted && exec sleep 900",
            path.display()
        );
        let mut holder = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(&script)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
        let stdout = holder.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(MOUNT_DEADLINE).unwrap_or_default();
        if line.trim() == "mounted" {
            return Some(SmallDisk {
                holder,
                path: path.to_owned(),
            });
        }
        let _ = holder.kill();
        let _ = holder.wait();
        let mut stderr = String::new();
        let _ = holder.stderr.take().unwrap().read_to_string(&mut stderr);
        let unprivileged = ["Operation not permitted", "Permission denied"]
            .iter()
            .any(|refusal| stderr.contains(refusal));
        assert!(
            unprivileged,
            "unshare did not mount a tmpfs within {MOUNT_DEADLINE:?}: {stderr}"
        );
        eprintln!("skipped: creating a mount namespace needs root here ({stderr})");
        None
    }

    /// The command that runs its arguments inside the namespace.
    fn enter(&self) -> Vec<String> {
        ["nsenter", "-t", &self.holder.id().to_string(), "-m", "--"]
            .map(str::to_owned)
            .to_vec()
    }

    /// Gives the tmpfs a new size (what freeing space on a full disk does).
    fn resize(&self, size: &str) {
        let status = Command::new("nsenter")
            .args([
                "-t",
                &self.holder.id().to_string(),
                "-m",
                "--",
                "mount",
                "-o",
            ])
            .arg(format!("remount,size={size}"))
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success(), "remounting the tmpfs failed: {status}");
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}

#[tokio::test]
async fn a_full_disk_stops_writes_naming_the_cause_and_loses_nothing() {
    let dirs = Dirs::create();
    let Some(disk) = SmallDisk::mount(&dirs.data(), "8m") else {
        return;
    };
    let enter = disk.enter();
    let enter: Vec<&str> = enter.iter().map(String::as_str).collect();
    let mut server = Server::start_through(&enter, &dirs, &[], &[]).await;

    let data = Bytes::from(vec![b'x'; 64 * 1024]);
    let binary = [("content-type", "application/octet-stream")];
    let publish = async |server: &Server| {
        server
            .request(Method::POST, "/v1/topics/disk.fill", &binary, data.clone())
            .await
            .unwrap()
    };
    let mut accepted = Vec::new();
    let refused = loop {
        assert!(
            accepted.len() < 1000,
            "8 MiB held more than 1000 events of 64 KiB"
        );
        let reply = publish(&server).await;
        if reply.status != StatusCode::ACCEPTED {
            break reply;
        }
        accepted.push(reply.json()["id"].as_str().unwrap().to_owned());
    };
    assert!(
        accepted.len() > 10,
        "only {} events fit: {refused}",
        accepted.len()
    );
    let cause = "No space left on device";
    assert!(
        refused.is_problem(StatusCode::SERVICE_UNAVAILABLE, cause),
        "{refused}"
    );
    assert_eq!(refused.json()["type"], "/problems/storage-failed");
    // Every later write gets the same answer, and the node reports itself down.
    let again = publish(&server).await;
    assert!(
        again.is_problem(StatusCode::SERVICE_UNAVAILABLE, cause),
        "{again}"
    );
    for path in ["/healthz", "/readyz"] {
        let reply = server.get(path).await.unwrap();
        assert!(
            reply.is_problem(StatusCode::SERVICE_UNAVAILABLE, cause),
            "{path}: {reply}"
        );
    }
    assert_eq!(storage_failed_gauge(&server).await, "1");

    // It still stops when told to; then the disk gets room and choreo restarts on it.
    server.terminate(DEADLINE).await;
    drop(server);
    disk.resize("64m");
    let server = Server::start_through(&enter, &dirs, &[], &[]).await;
    let stored: HashSet<String> = server
        .events("disk.fill")
        .await
        .iter()
        .map(|event| event["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &accepted {
        assert!(
            stored.contains(id),
            "event {id} was answered 202 before the disk filled, and is gone after the restart"
        );
    }
    let reply = publish(&server).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{reply}");
    let health = server.get("/healthz").await.unwrap();
    assert_eq!(health.status, StatusCode::OK, "{health}");
    assert_eq!(storage_failed_gauge(&server).await, "0");
}

/// The value of `choreo_storage_failed` in `/metrics`, which keeps answering after a
/// storage failure so that it can be alerted on.
async fn storage_failed_gauge(server: &Server) -> String {
    let reply = server.get("/metrics").await.unwrap();
    assert_eq!(reply.status, StatusCode::OK, "{reply}");
    let text = String::from_utf8(reply.body.to_vec()).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix("choreo_storage_failed "))
        .unwrap_or_else(|| panic!("no choreo_storage_failed in /metrics:\n{text}"))
        .to_owned()
}
